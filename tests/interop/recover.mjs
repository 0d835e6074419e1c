// `recover` across a client process restart.  Phase "first": enter, print the recovery key
// (connection.createRecoveryKey()) and exit without closing, so the server sees the socket end
// unannounced.  Phase "second", in a new process: a peer finds the member still present, and a
// client made with `recover: <key>` gets the same connection back, its member never having
// left.  Options: port, tag, format, phase, and (second phase) recoveryKey, connectionId.

import { Checks, Recorder, args, connected, named, realtime } from './interop.mjs';

const name = named('recover');

async function first(checks) {
  const alice = realtime({ clientId: 'alice' }); // not tracked: it must not be closed
  await checks.step('connect', () => connected(alice));
  await checks.step('enter', () => alice.channels.get(name).presence.enter({ v: 1 }));
  checks.info.recoveryKey = alice.connection.createRecoveryKey();
  checks.info.connectionId = alice.connection.id;
  checks.ok('recovery_key_made', typeof checks.info.recoveryKey === 'string', checks.info.recoveryKey);
}

async function second(checks) {
  const bob = checks.track(realtime({ clientId: 'bob' }));
  await checks.step('connect_peer', () => connected(bob));
  const bobSees = new Recorder();
  const bobChannel = bob.channels.get(name);
  await bobChannel.presence.subscribe(bobSees.listener);
  const before = await bobChannel.presence.get();
  checks.same('member_kept_while_away', before.map((m) => [m.clientId, m.connectionId]), [['alice', args.connectionId]]);

  const alice = checks.track(realtime({ clientId: 'alice', recover: args.recoveryKey }));
  await checks.step('recovered', () => connected(alice));
  checks.ok('recover_keeps_connection_id', alice.connection.id === args.connectionId, { before: args.connectionId, after: alice.connection.id });
  checks.ok('recover_without_error', alice.connection.errorReason == null, String(alice.connection.errorReason));
  const aliceChannel = alice.channels.get(name);
  await checks.step('attach_after_recover', () => aliceChannel.attach());
  await checks.step('update_after_recover', () => aliceChannel.presence.update({ v: 2 }));
  const update = await checks.step('peer_sees_update', () => bobSees.waitSeen('update', 'alice'));
  checks.ok('update_from_same_connection', update.connectionId === args.connectionId, update.connectionId);
  // The peer met alice in its attach's SYNC, then saw her update: no leave, no second enter.
  checks.same('recover_gives_peers_no_leave', bobSees.seen, [
    ['present', 'alice'],
    ['update', 'alice'],
  ]);
}

await new Checks().run(args.phase === 'first' ? first : second);
