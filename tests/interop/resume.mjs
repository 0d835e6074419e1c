// A connection dropped abruptly (a relay cuts its TCP stream) resumes with the same connection
// id while the server still holds it, and the peers see no presence event from it.  Options:
// port, tag, format.

import { Checks, ProtocolLog, Relay, connected, enteredPair, named, nextChange } from './interop.mjs';

await new Checks().run(async (checks) => {
  const name = named('resume');
  const relay = new Relay();
  const log = new ProtocolLog();
  const aliceOptions = { port: await relay.listen(), ...log.options };
  const { alice, aliceChannel, bobSees } = await enteredPair(checks, name, { alice: aliceOptions });
  const before = alice.connection.id;

  const attachedBefore = log.of('ATTACHED', name).length;
  const dropped = nextChange(alice, 'disconnected');
  relay.cut();
  await checks.step('drop_seen_by_client', () => dropped);
  await checks.step('resumed', () => connected(alice));
  checks.ok('resume_keeps_connection_id', alice.connection.id === before, { before, after: alice.connection.id });
  checks.ok('resume_without_error', alice.connection.errorReason == null, String(alice.connection.errorReason));
  // ably-js re-enters its member as it handles the channel's new ATTACHED, so once that has
  // arrived, whatever the resume made the server send bob comes before this update's echo.
  await checks.step('reattached', () => log.waitFor('ATTACHED', name, attachedBefore + 1));
  await checks.step('update_after_resume', () => aliceChannel.presence.update({ v: 2 }));
  const update = await bobSees.waitSeen('update', 'alice');
  checks.same('resume_gives_peers_no_events', bobSees.seen, [
    ['enter', 'alice'],
    ['update', 'alice'],
  ]);
  checks.ok('same_connection_for_peers', update.connectionId === before, update.connectionId);
  relay.close();
});
