"""What the server tests share: a ``presence-core serve`` subprocess, a raw HTTP GET, and a
connector whose links a test can break abruptly.

The subprocess binds port 0 and its banner names the port, so tests never race for a port.
Every subprocess is killed when its context ends, whatever happened inside.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import anyio.abc

from presence_core import ErrorInfo, ProtocolMessage
from presence_core.client import Link, WebSocketConnector
from presence_core.client._transport import Deliver

KEY_NAME: Final = "app.key"
KEY: Final = f"{KEY_NAME}:s3cret"
#: The hang guard of every wait: far beyond anything a test needs, never a timing assertion.
HANG: Final = 20.0
_BANNER: Final = re.compile(rb"ws://127\.0\.0\.1:(\d+)/")


class Served:
    """A running ``presence-core serve``: its process and where it listens."""

    def __init__(self, process: anyio.abc.Process, port: int) -> None:
        self.process = process
        self.port = port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)


@asynccontextmanager
async def served(*flags: str) -> AsyncIterator[Served]:
    """Run ``presence-core serve --port 0 --key KEY *flags`` until the context ends."""
    command = [sys.executable, "-m", "presence_core", "serve", "--port", "0", "--key", KEY, *flags]
    process = await anyio.open_process(command, stderr=None)
    try:
        assert process.stdout is not None
        line = b""
        with anyio.fail_after(HANG):
            while b"\n" not in line:
                line += await process.stdout.receive()
        found = _BANNER.search(line)
        assert found is not None, line
        yield Served(process, int(found.group(1)))
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()


async def http_get(port: int, target: str, key: str | None = KEY) -> tuple[int, Any]:
    """GET ``target`` on 127.0.0.1:``port`` (HTTP/1.1, Basic auth with ``key``): status, JSON."""
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    if key is not None:
        lines.append(f"Authorization: Basic {base64.b64encode(key.encode()).decode()}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with anyio.fail_after(HANG):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(request)
            response = b""
            try:
                while True:
                    response += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


class Breakable:
    """A WebSocket connector whose open links :meth:`break_links` ends abruptly."""

    def __init__(self, url: str) -> None:
        self._inner = WebSocketConnector(url)
        self._links: list[_BreakableLink] = []

    async def open(self, params: Mapping[str, str]) -> Link:
        link = _BreakableLink(await self._inner.open(params))
        self._links.append(link)
        return link

    def break_links(self) -> None:
        """Drop every open socket without a closing handshake, as a network failure does."""
        links, self._links = self._links, []
        for link in links:
            link.scope.cancel()


class _BreakableLink:
    def __init__(self, inner: Link) -> None:
        self._inner = inner
        self.scope = anyio.CancelScope()

    def send(self, message: ProtocolMessage) -> None:
        self._inner.send(message)

    def close(self) -> None:
        self._inner.close()

    async def run(self, deliver: Deliver) -> ErrorInfo | None:
        with self.scope:
            # Cancelled, the link's own cleanup closes the socket forcefully, frame or no frame.
            return await self._inner.run(deliver)
        return ErrorInfo(code=80003, status_code=503, message="broken by the test")
