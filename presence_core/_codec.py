"""JSON codec for protocol v6 frames (skeleton, implemented under issue "Core A")."""

from __future__ import annotations

from typing import Any

from presence_core._wire import ProtocolMessage

__all__ = ["decode", "encode"]


def decode(frame: dict[str, Any] | str | bytes) -> ProtocolMessage:
    """Decode one frame (a dict, or JSON text or bytes) into a ProtocolMessage."""
    raise NotImplementedError


def encode(message: ProtocolMessage) -> dict[str, Any]:
    """Encode a ProtocolMessage as a JSON-ready dict with wire field names."""
    raise NotImplementedError
