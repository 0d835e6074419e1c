// A connection that stays away longer than the server's grace period and connection ttl (a
// relay cuts it, then refuses its reconnects until the peer has seen it leave) comes back as a
// new connection: the peers see a leave for the old connection id, then an enter for the new
// one as ably-js re-enters its member.  Needs a server with a short grace period and ttl.
// Options: port, tag, format.

import { Checks, Relay, enteredPair, named, within } from './interop.mjs';

const QUICK_RETRIES = { disconnectedRetryTimeout: 200, suspendedRetryTimeout: 200 };

await new Checks().run(async (checks) => {
  const name = named('failed-resume');
  const relay = new Relay();
  const aliceOptions = { port: await relay.listen(), ...QUICK_RETRIES };
  const { alice, bobSees } = await enteredPair(checks, name, { alice: aliceOptions });
  const before = alice.connection.id;

  relay.block();
  relay.cut();
  const leave = await checks.step('failed_resume_leave_for_old_connection', () => bobSees.waitSeen('leave', 'alice'));
  checks.ok('leave_names_old_connection', leave.connectionId === before, leave.connectionId);
  const from = bobSees.events.length;
  const changes = [];
  alice.connection.on((change) => changes.push([change.current, change.reason?.code ?? null]));
  relay.unblock();
  await checks.step('reconnected', () =>
    within(
      new Promise((resolve) => {
        const check = () => alice.connection.state === 'connected' && alice.connection.id !== before && resolve();
        alice.connection.on('connected', check);
        check();
      }),
      'alice connected again',
    ),
  );
  checks.ok('failed_resume_new_connection_id', alice.connection.id !== before, { before, after: alice.connection.id });
  const enter = await checks.step('failed_resume_enter_for_new_connection', () => bobSees.waitSeen('enter', 'alice', from));
  checks.ok('enter_names_new_connection', enter.connectionId === alice.connection.id, enter.connectionId);
  checks.same('enter_carries_data', enter.data, { v: 1 });
  checks.same('peer_events_in_order', bobSees.seen, [
    ['enter', 'alice'],
    ['leave', 'alice'],
    ['enter', 'alice'],
  ]);
  checks.info.changes = changes;
  relay.close();
});
