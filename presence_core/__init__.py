"""presence_core: deterministic, sans-IO realtime presence with Ably protocol v6 semantics.

This is the one flat public namespace of the core: wire values, the codec, the reducers and the
errors.  It imports no I/O adapter.  Every private module declares its own ``__all__``, and the
names are re-exported here.
"""

from __future__ import annotations

from presence_core import (
    _codec,
    _connection,
    _errors,
    _newness,
    _output,
    _presence_set,
    _server,
    _wire,
)
from presence_core._codec import *
from presence_core._connection import *
from presence_core._errors import *
from presence_core._newness import *
from presence_core._output import *
from presence_core._presence_set import *
from presence_core._server import *
from presence_core._version import __version__
from presence_core._wire import *

__all__: list[str] = ["__version__"]
__all__ += _errors.__all__
__all__ += _wire.__all__
__all__ += _codec.__all__
__all__ += _output.__all__
__all__ += _presence_set.__all__
__all__ += _connection.__all__
__all__ += _newness.__all__
__all__ += _server.__all__
