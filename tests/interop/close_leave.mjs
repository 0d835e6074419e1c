// A client that closes its connection is seen to leave by the others at once (a CLOSE ends the
// connection, so there is no grace period).  Options: port, tag, format.

import { Checks, connected, enteredPair, named } from './interop.mjs';

await new Checks().run(async (checks) => {
  const name = named('close');
  const { alice, bob, bobSees } = await enteredPair(checks, name);
  alice.close();
  await checks.step('closed', () => connected(alice, 'closed'));
  const leave = await checks.step('close_seen_as_leave', () => bobSees.waitSeen('leave', 'alice'));
  checks.same('leave_carries_last_data', leave.data, { v: 1 });
  const members = await bob.channels.get(name).presence.get();
  checks.ok('get_after_close', members.length === 0, members.map((m) => m.clientId));
});
