"""The channel state machine of a room, as one table: (state, input) -> (handler, next state).

Rules of this module:

* :data:`TRANSITIONS` is the only place that decides which inputs a state accepts and which
  state follows.  Each row names the rule it implements.  A handler is the name of a
  :class:`~presence_core._channel_machine.ChannelMachine` method; it runs after the state has
  moved, receives the previous state and the input's payload, and produces the Output.
* A (state, input) pair missing from the table is refused in the way its input's kind defines
  (:data:`REFUSAL`), and nothing changes:
  - a user call (attach, detach, enter, update, leave, publish) raises
    :class:`~presence_core.UsageError` with code 90001;
  - a frame from the server gives a :class:`~presence_core.FrameIgnored` event;
  - a local state change that the connection reports (RTL3) does nothing.
* PRESENCE and SYNC frames change no channel state, so they are not inputs here: the member
  map applies them only while the channel is ATTACHED (RTL17).
* An ATTACHED frame is four inputs, by its RESUMED and HAS_PRESENCE flags, so every cell says
  exactly what happens.  RESUMED matters for the state machine (RTL12, RTP17i);
  HAS_PRESENCE only for what the handler does (RTP1 or RTP19a).
* A handler may feed one follow-up input: a DETACHING channel that completes its detach runs
  the attach that waited for it (RTL4h), from DETACHED.
* The channel's timer is one input, TIMEOUT, with a row per state that keeps a timer: the
  attach timeout (RTL4f), the detach timeout (RTL5f) and the retry of a SUSPENDED channel
  (RTL13b).  When the timer is set and cleared is the rule of
  :mod:`presence_core._channel_machine`.
"""

from __future__ import annotations

import enum
from typing import Final

import attrs

from presence_core._output import ChannelState

__all__: list[str] = []


class InputKind(enum.Enum):
    """How an input arrives, which decides how a missing cell refuses it."""

    #: A call by the application: refused with a UsageError (90001).
    USER = "user"
    #: A frame from the server: ignored, with a FrameIgnored event.
    FRAME = "frame"
    #: A channel-state change that a connection state causes (RTL3): nothing happens.
    LOCAL = "local"
    #: The channel's timer came due: nothing happens.
    TIMER = "timer"


class ChannelInput(enum.Enum):
    """Everything that can move a room's channel state."""

    ATTACH = "attach"
    DETACH = "detach"
    ENTER = "enter"
    UPDATE = "update"
    LEAVE = "leave"
    PUBLISH = "publish"
    ATTACHED = "ATTACHED"
    ATTACHED_HAS_PRESENCE = "ATTACHED+HAS_PRESENCE"
    ATTACHED_RESUMED = "ATTACHED+RESUMED"
    ATTACHED_RESUMED_HAS_PRESENCE = "ATTACHED+RESUMED+HAS_PRESENCE"
    DETACHED = "DETACHED"
    ERROR = "ERROR"
    TO_ATTACHING = "local attaching"
    TO_SUSPENDED = "local suspended"
    TO_DETACHED = "local detached"
    TO_FAILED = "local failed"
    TIMEOUT = "timeout"

    @property
    def kind(self) -> InputKind:
        """The kind of this input."""
        return _KINDS[self]


_KINDS: Final = {
    **dict.fromkeys(
        (
            ChannelInput.ATTACH,
            ChannelInput.DETACH,
            ChannelInput.ENTER,
            ChannelInput.UPDATE,
            ChannelInput.LEAVE,
            ChannelInput.PUBLISH,
        ),
        InputKind.USER,
    ),
    **dict.fromkeys(
        (
            ChannelInput.ATTACHED,
            ChannelInput.ATTACHED_HAS_PRESENCE,
            ChannelInput.ATTACHED_RESUMED,
            ChannelInput.ATTACHED_RESUMED_HAS_PRESENCE,
            ChannelInput.DETACHED,
            ChannelInput.ERROR,
        ),
        InputKind.FRAME,
    ),
    **dict.fromkeys(
        (
            ChannelInput.TO_ATTACHING,
            ChannelInput.TO_SUSPENDED,
            ChannelInput.TO_DETACHED,
            ChannelInput.TO_FAILED,
        ),
        InputKind.LOCAL,
    ),
    ChannelInput.TIMEOUT: InputKind.TIMER,
}

#: The local channel-state targets :meth:`PresenceSet.set_channel_state` accepts (RTL3).
LOCAL_INPUTS: Final = {
    ChannelState.ATTACHING: ChannelInput.TO_ATTACHING,
    ChannelState.SUSPENDED: ChannelInput.TO_SUSPENDED,
    ChannelState.DETACHED: ChannelInput.TO_DETACHED,
    ChannelState.FAILED: ChannelInput.TO_FAILED,
}


def attached_input(*, resumed: bool, has_presence: bool) -> ChannelInput:
    """The input an ATTACHED frame with these flags is."""
    if resumed:
        return (
            ChannelInput.ATTACHED_RESUMED_HAS_PRESENCE
            if has_presence
            else ChannelInput.ATTACHED_RESUMED
        )
    return ChannelInput.ATTACHED_HAS_PRESENCE if has_presence else ChannelInput.ATTACHED


@attrs.frozen
class Transition:
    """One cell of the table: what runs, the state that follows, and the rule it implements.

    ``next_state`` is ``None`` in one cell only, the detach timeout (RTL5f): the channel goes
    back to the state its detach started from.
    """

    handler: str
    next_state: ChannelState | None
    rule: str


#: How a missing cell refuses its input, by kind.  Spelled out here for readers and tests.
REFUSAL: Final = {
    InputKind.USER: "raise UsageError(code=90001); nothing changes",
    InputKind.FRAME: "a FrameIgnored event; nothing changes",
    InputKind.LOCAL: "an empty Output; nothing changes",
    InputKind.TIMER: "an empty Output; nothing changes",
}

_I: Final = ChannelState.INITIALIZED
_AG: Final = ChannelState.ATTACHING
_AD: Final = ChannelState.ATTACHED
_DG: Final = ChannelState.DETACHING
_DD: Final = ChannelState.DETACHED
_S: Final = ChannelState.SUSPENDED
_F: Final = ChannelState.FAILED
_In = ChannelInput
_T = Transition

_ATTACHED_INPUTS: Final = (_In.ATTACHED, _In.ATTACHED_HAS_PRESENCE)
_RESUMED_INPUTS: Final = (_In.ATTACHED_RESUMED, _In.ATTACHED_RESUMED_HAS_PRESENCE)

TRANSITIONS: Final[dict[tuple[ChannelState, ChannelInput], Transition]] = {
    # -- attach() --------------------------------------------------------------------------
    (_I, _In.ATTACH): _T("_h_send_attach", _AG, "RTL4: send ATTACH with the room's modes"),
    (_AG, _In.ATTACH): _T("_h_nothing", _AG, "RTL4h: the pending attach completes it"),
    (_AD, _In.ATTACH): _T("_h_nothing", _AD, "RTL4a: already attached"),
    (_DG, _In.ATTACH): _T("_h_attach_after_detach", _DG, "RTL4h, D14: ATTACH once detached"),
    (_DD, _In.ATTACH): _T("_h_send_attach", _AG, "RTL4: attach again"),
    (_S, _In.ATTACH): _T("_h_send_attach", _AG, "RTL4: attach a suspended channel"),
    (_F, _In.ATTACH): _T("_h_send_attach", _AG, "RTL4g: attach a failed channel"),
    # -- detach() --------------------------------------------------------------------------
    (_I, _In.DETACH): _T("_h_nothing", _I, "RTL5a: never attached"),
    (_AG, _In.DETACH): _T("_h_send_detach", _DG, "RTL5: send DETACH"),
    (_AD, _In.DETACH): _T("_h_send_detach", _DG, "RTL5: send DETACH"),
    (_DG, _In.DETACH): _T("_h_cancel_attach", _DG, "RTL5: already detaching; RTL4h dropped"),
    (_DD, _In.DETACH): _T("_h_nothing", _DD, "RTL5a: already detached"),
    (_S, _In.DETACH): _T("_h_clear", _DD, "RTL5j: detached at once, RTP5a"),
    # (FAILED, detach) is refused: RTL5b.
    # -- enter(), update() and publish(); SUSPENDED, DETACHING and FAILED refuse them (D8) --
    **{
        (state, op): cell
        for op in (_In.ENTER, _In.UPDATE, _In.PUBLISH)
        for state, cell in (
            (_I, _T("_h_queue_and_attach", _AG, "D8: attach implicitly, queue")),
            (_AG, _T("_h_queue", _AG, "RTP16b: queue until ATTACHED")),
            (_AD, _T("_h_send_operation", _AD, "RTP16a: send at once")),
            (_DD, _T("_h_queue_and_attach", _AG, "D8: attach implicitly, queue")),
        )
    },
    # -- leave() never attaches (D8) -------------------------------------------------------
    (_I, _In.LEAVE): _T("_h_leave_noop", _I, "D8: not present, a no-op success"),
    (_AG, _In.LEAVE): _T("_h_queue", _AG, "RTP16b: queue until ATTACHED"),
    (_AD, _In.LEAVE): _T("_h_send_operation", _AD, "RTP16a: send at once"),
    (_DG, _In.LEAVE): _T("_h_leave_by_intent", _DG, "D8: refused only while present"),
    (_DD, _In.LEAVE): _T("_h_leave_noop", _DD, "D8: not present, a no-op success"),
    (_S, _In.LEAVE): _T("_h_leave_by_intent", _S, "D8: refused only while present"),
    (_F, _In.LEAVE): _T("_h_leave_by_intent", _F, "D8: refused only while present"),
    # -- ATTACHED; a FAILED channel ignores it ---------------------------------------------
    **{
        (state, attached): _T("_h_attached", _AD, "RTL2, D9/D10: RTP1 or RTP19a, re-entry")
        for attached in _ATTACHED_INPUTS + _RESUMED_INPUTS
        for state in (_I, _AG, _S)
    },
    **{
        (_AD, attached): _T("_h_attached", _AD, "RTL12, D9: presence handling reruns")
        for attached in _ATTACHED_INPUTS
    },
    **{
        (_AD, attached): _T("_h_attached_resumed", _AD, "RTL12, RTP17i: continuity kept")
        for attached in _RESUMED_INPUTS
    },
    **{
        (state, attached): _T("_h_resend_detach", state, "RTL5k: answer with DETACH")
        for attached in _ATTACHED_INPUTS + _RESUMED_INPUTS
        for state in (_DG, _DD)
    },
    # -- DETACHED --------------------------------------------------------------------------
    (_AD, _In.DETACHED): _T("_h_send_attach", _AG, "RTL13a: reattach, maps kept"),
    (_S, _In.DETACHED): _T("_h_send_attach", _AG, "RTL13a: reattach, maps kept"),
    (_AG, _In.DETACHED): _T("_h_suspend", _S, "RTL13b: the attach was refused"),
    (_DG, _In.DETACHED): _T("_h_detached", _DD, "RTL5: detach confirmed, RTP5a, then RTL4h"),
    # -- a channel ERROR -------------------------------------------------------------------
    **{
        (state, _In.ERROR): _T("_h_clear", _F, "RTL14: the channel failed, RTP5a")
        for state in (_I, _AG, _AD, _DG, _DD, _S)
    },
    # -- local changes that connection states cause (RTL3) -----------------------------------
    (_AD, _In.TO_ATTACHING): _T("_h_send_attach", _AG, "RTL3d: reattach on CONNECTED"),
    (_S, _In.TO_ATTACHING): _T("_h_send_attach", _AG, "RTL3d: reattach on CONNECTED"),
    (_AG, _In.TO_ATTACHING): _T("_h_resend_attach", _AG, "RTL3d: send ATTACH again"),
    (_DG, _In.TO_ATTACHING): _T("_h_resend_detach", _DG, "RTL3d: send DETACH again"),
    (_AG, _In.TO_SUSPENDED): _T("_h_suspend", _S, "RTL3c: RTP5f, maps kept"),
    (_AD, _In.TO_SUSPENDED): _T("_h_suspend", _S, "RTL3c: RTP5f, maps kept"),
    **{
        (state, target): _T("_h_clear", next_state, rule)
        for target, next_state, rule in (
            (_In.TO_DETACHED, _DD, "RTL3b: connection closed, RTP5a"),
            (_In.TO_FAILED, _F, "RTL3a: connection failed, RTP5a"),
        )
        for state in (_AG, _AD, _S)
    },
    # -- the channel's timer -----------------------------------------------------------------
    (_AG, _In.TIMEOUT): _T("_h_attach_timeout", _S, "RTL4f: no ATTACHED in time, 90007"),
    (_DG, _In.TIMEOUT): _T("_h_detach_timeout", None, "RTL5f: no DETACHED in time, 90007"),
    (_S, _In.TIMEOUT): _T("_h_send_attach", _AG, "RTL13b: attach again after the retry timeout"),
    (_DG, _In.TO_DETACHED): _T("_h_detached", _DD, "RTL3b: detach complete, RTP5a, then RTL4h"),
    (_DG, _In.TO_FAILED): _T("_h_clear", _F, "RTL3a: connection failed, RTP5a"),
}
