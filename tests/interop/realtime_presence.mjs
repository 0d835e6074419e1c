// ably-js Realtime presence between two clients, in the format and with the data kind given:
// attach, enter with data, get, get by clientId, subscribe, update, leave, implicit attach on
// enter, detach and connection.ping().  Options: port, tag, format, data ('string', 'object'
// or 'binary').

import { Checks, Recorder, args, connected, named, realtime } from './interop.mjs';

const DATA = {
  string: ['hello', 'away'],
  object: [{ status: 'hello', n: 1, tags: ['a', 'b'], nested: { ok: true } }, { status: 'away' }],
  binary: [Buffer.from([0, 1, 2, 250, 255]), Uint8Array.of(9, 8, 7, 0)],
};
const [first, second] = DATA[args.data];
const bobData = args.data === 'binary' ? Uint8Array.of(66) : args.data === 'object' ? { who: 'bob' } : 'bob';

await new Checks().run(async (checks) => {
  const alice = checks.track(realtime({ clientId: 'alice' }));
  const bob = checks.track(realtime({ clientId: 'bob' }));
  await checks.step('connect', () => Promise.all([connected(alice), connected(bob)]));
  const name = named(`presence-${args.format}-${args.data}`);
  const aliceChannel = alice.channels.get(name);
  const bobChannel = bob.channels.get(name);

  await checks.step('attach', () => aliceChannel.attach());
  const aliceSees = new Recorder();
  await aliceChannel.presence.subscribe(aliceSees.listener);
  await checks.step('enter', () => aliceChannel.presence.enter(first));
  const own = await aliceChannel.presence.get();
  checks.ok('get_own_member_after_enter', own.length === 1 && own[0].clientId === 'alice', own.map((m) => m.clientId));
  checks.same('data_own_member', own[0]?.data, first);

  // Bob never calls attach(): enter attaches the channel by itself.
  await checks.step('implicit_attach_on_enter', () => bobChannel.presence.enter(bobData));
  checks.ok('implicit_attach_state', bobChannel.state === 'attached', bobChannel.state);
  const bobSees = new Recorder();
  await checks.step('subscribe', () => bobChannel.presence.subscribe(bobSees.listener));

  const members = await checks.step('get', () => bobChannel.presence.get());
  checks.ok('get_lists_both', members.map((m) => m.clientId).sort().join() === 'alice,bob', members.map((m) => m.clientId));
  checks.same('data_synced', members.find((m) => m.clientId === 'alice')?.data, first);
  const onlyAlice = await checks.step('get_by_client_id', () => bobChannel.presence.get({ clientId: 'alice' }));
  checks.ok('get_by_client_id_filters', onlyAlice.length === 1 && onlyAlice[0].clientId === 'alice', onlyAlice.map((m) => m.clientId));

  const bobEnter = await checks.step('subscribe_sees_enter', () => aliceSees.waitSeen('enter', 'bob'));
  checks.same('data_enter_event', bobEnter.data, bobData);

  await checks.step('update', () => aliceChannel.presence.update(second));
  const update = await checks.step('update_seen', () => bobSees.waitSeen('update', 'alice'));
  checks.same('data_update_event', update.data, second);

  await checks.step('leave', () => aliceChannel.presence.leave());
  const leave = await checks.step('leave_seen', () => bobSees.waitSeen('leave', 'alice'));
  checks.same('data_leave_event', leave.data, second);
  const after = await bobChannel.presence.get();
  checks.ok('get_after_leave', after.map((m) => m.clientId).join() === 'bob', after.map((m) => m.clientId));

  await checks.step('detach', () => aliceChannel.detach());
  checks.ok('detach_state', aliceChannel.state === 'detached', aliceChannel.state);

  const rtt = await checks.step('ping', () => bob.connection.ping());
  checks.ok('ping_round_trip', typeof rtt === 'number' && rtt >= 0, rtt);
  checks.ok('no_connection_errors', alice.connection.errorReason == null && bob.connection.errorReason == null, String(alice.connection.errorReason ?? bob.connection.errorReason));
});
