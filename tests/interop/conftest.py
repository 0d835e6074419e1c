"""Interop tests: Ably's own JavaScript clients (``ably`` and ``@ably/chat``, pinned in
package.json and package-lock.json) against ``presence-core serve``.

How a test is built (support.py has the pieces):

* ``node`` (fixture, session): the node executable.  Without Node.js the tests skip with a
  message saying so; with it they never skip, and a missing ``node_modules`` is installed by
  ``npm ci`` from the lock file first.
* ``start_server(folder, config, *flags)`` (context manager): ``presence-core serve --port 0
  --config <folder>/serve.toml *flags``, with the TOML text ``config`` (``CREDENTIALS`` holds
  the keys and tokens the scripts use; add a ``[server]`` table for settings such as
  ``grace_period`` or ``sync_page_size``).  It yields a ``Served`` (``port``, ``url``,
  ``log()``).  Tests that do not interfere share one server per module, in a module fixture.
* ``run_script(node, served, "x.mjs", **options)`` runs ``node x.mjs '<json>'`` with
  ``{"port": served.port, **options}`` and returns its ``Result``; ``start_script`` starts one
  and returns a ``Running`` (``.result()`` waits), and a ``Batch`` starts several at once so
  independent scripts overlap.  Give each script a distinct ``tag`` option: it prefixes its
  channel names, so scripts sharing a server never meet.
* ``result.assert_checks("name", ...)``: each named check ran and passed, and no other check
  the script reported failed.  A failure shows every check's detail, the script's stderr and
  the server's log.

A script imports interop.mjs: ``realtime``/``rest``/``chat`` (clients with the options the
local server needs, restated there), ``Checks`` (named checks, printed as the last stdout
line), ``Recorder`` (presence events to wait on), ``ProtocolLog`` (the frames a client
received), ``Relay`` (a TCP relay that cuts or refuses connections), ``handOut`` (an
authCallback over a list of tokens), and the shared scenarios ``enteredPair`` and
``checkAuthorize``.  A script waits for events, never for time.
"""

from __future__ import annotations

import pytest

from tests.interop.support import node_executable


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable, with this folder's packages installed (or the test skips)."""
    return node_executable()


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Python clients in interop tests run on asyncio and on trio."""
    backend: str = request.param
    return backend
