"""The server's rule for a re-entry older than the member, found with ably-js and pinned here
on the reducer alone (no node needed).

ably-js re-enters its members (RTP17i) as it handles a resumed channel's ATTACHED, with the
data of the last echo it had seen.  An update sent while the transport was being replaced can
be echoed after that ATTACHED, so the re-entry carries the member's previous id and data.
Applying it would roll the member back behind the user's latest update, for everyone.
"""

from __future__ import annotations

from presence_core import PresenceAction, ProtocolAction, ProtocolMessage
from presence_core.server import Server
from tests import server_support as harness

CH = "room1::$chat"


def _attached(server: Server, tid: str, client_id: str) -> harness.Client:
    client, _ = harness.connect(server, tid, client_id)
    harness.attach(server, client, CH)
    return client


def test_D10_RTP17i_reentry_older_than_the_member_is_acked_and_changes_nothing() -> None:
    server = harness.make_server(max_messages_per_second=1)
    alice, _ = _attached(server, "ta", "alice"), _attached(server, "tb", "bob")
    harness.presence(server, alice, CH, PresenceAction.ENTER, {"v": 1})
    first = f"{alice.connection_id}:0:0"
    harness.presence(server, alice, CH, PresenceAction.UPDATE, {"v": 2}, now=1_700_000_002_000)
    stale = harness.presence(
        server,
        alice,
        CH,
        PresenceAction.ENTER,
        {"v": 1},
        client_id="alice",
        id=first,
        now=1_700_000_002_000,
    )
    ack = ProtocolMessage(action=ProtocolAction.ACK, msg_serial=2, count=1)
    # ACKed although the rate budget is spent: a stale re-entry costs nothing.
    assert stale.messages_for("ta") == (ack,)
    assert stale.messages_for("tb") == ()
    assert harness.member_view(server, CH) == {(alice.connection_id, "alice"): {"v": 2}}
    (member,) = server.members(CH)
    assert member.id == f"{alice.connection_id}:1:0"


def test_D10_RTP17i_reentry_newer_than_the_member_or_from_another_connection_is_applied() -> None:
    """So is one whose id is not an id of the member's connection, however odd."""
    server = harness.make_server()
    alice, _ = _attached(server, "ta", "alice"), _attached(server, "tb", "bob")
    harness.presence(server, alice, CH, PresenceAction.ENTER, {"v": 1})
    conn = alice.connection_id
    odd = (f"{conn}:{'9' * 5000}:0", f"{conn}:\u00b2:0", f"{conn}::0", "not-an-id")
    for foreign in (f"{conn}:9:0", "otherconnection:0:0", *odd):
        out = harness.presence(server, alice, CH, PresenceAction.ENTER, foreign, id=foreign)
        (item,) = harness.presence_items(out, "tb")
        assert (item.action, item.data) == (PresenceAction.UPDATE, foreign)
