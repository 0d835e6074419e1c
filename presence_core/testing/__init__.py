"""Test helpers for applications built on presence_core, and for its own test suite.

* :class:`Simulation`: a deterministic simulator.  One :class:`~presence_core.Server` and N
  clients (:class:`~presence_core.Connection` reducers with their rooms) exchange encoded frames
  over a seeded network with latency, in virtual time.  A schedule of operations
  (:class:`Enter`, :class:`Update`, :class:`Leave`, :class:`Attach`, :class:`Detach`) and faults
  (:class:`DropTransport`, :class:`Partition`, :class:`Resync`) drives it; a run is a pure
  function of the seed and the schedule, and its :class:`Transcript` can be :func:`replay`-ed.
* :mod:`presence_core.testing.strategies`: hypothesis strategies for wire values, operation
  sequences and fault schedules.  It needs hypothesis, which the ``testing`` extra installs:
  ``pip install presence-core[testing]``.

Importing this package itself does not import hypothesis; only the ``strategies`` module does.
"""

from __future__ import annotations

from presence_core.testing._schedule import (
    SIMULATION_KEY as SIMULATION_KEY,
    Attach as Attach,
    ChannelFailure as ChannelFailure,
    ClientSpec as ClientSpec,
    ClockStep as ClockStep,
    Close as Close,
    ConnectionFailure as ConnectionFailure,
    Detach as Detach,
    DropTransport as DropTransport,
    Enter as Enter,
    FaultEvent as FaultEvent,
    HalfOpen as HalfOpen,
    Lag as Lag,
    Leave as Leave,
    OperationEvent as OperationEvent,
    Partition as Partition,
    Restart as Restart,
    Resync as Resync,
    ScheduleEvent as ScheduleEvent,
    ServerDetach as ServerDetach,
    ServerRestart as ServerRestart,
    Update as Update,
)
from presence_core.testing._simulator import (
    EPOCH as EPOCH,
    SIMULATION_CONFIG as SIMULATION_CONFIG,
    SimulatedClient as SimulatedClient,
    Simulation as Simulation,
    SimulationError as SimulationError,
)
from presence_core.testing._transcript import (
    SERVER as SERVER,
    Refused as Refused,
    ReplayMismatch as ReplayMismatch,
    Transcript as Transcript,
    TranscriptEntry as TranscriptEntry,
    replay as replay,
)

__all__ = [
    # what a simulation runs
    "SIMULATION_KEY",
    "ClientSpec",
    "Enter",
    "Update",
    "Leave",
    "Attach",
    "Detach",
    "DropTransport",
    "HalfOpen",
    "Partition",
    "Resync",
    "ServerDetach",
    "ChannelFailure",
    "ConnectionFailure",
    "Close",
    "Restart",
    "ServerRestart",
    "Lag",
    "ClockStep",
    "OperationEvent",
    "FaultEvent",
    "ScheduleEvent",
    # the simulator
    "EPOCH",
    "SERVER",
    "SIMULATION_CONFIG",
    "Refused",
    "TranscriptEntry",
    "Transcript",
    "ReplayMismatch",
    "SimulationError",
    "SimulatedClient",
    "Simulation",
    "replay",
]
