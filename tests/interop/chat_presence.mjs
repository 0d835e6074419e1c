// @ably/chat room presence and typing between two Chat clients: rooms.get, attach, enter,
// update, leave, get, isUserPresent, subscribe, and typing keystroke() (a MESSAGE on the
// room's channel), all without errors.  Options: port, tag, format.

import { Checks, Recorder, chat, chatView, connected, named, within } from './interop.mjs';

await new Checks().run(async (checks) => {
  const errors = [];
  const alice = checks.track(chat({ clientId: 'alice' }, errors));
  const bob = checks.track(chat({ clientId: 'bob' }, errors));
  await checks.step('connect', () => Promise.all([connected(alice.realtime), connected(bob.realtime)]));
  const name = named('chat');
  const aliceRoom = await checks.step('rooms_get', () => alice.rooms.get(name));
  const bobRoom = await bob.rooms.get(name);
  const statuses = [];
  for (const room of [aliceRoom, bobRoom]) room.onStatusChange((change) => statuses.push(change.current));

  const aliceSees = new Recorder(chatView);
  const bobSees = new Recorder(chatView);
  await checks.step('presence_subscribe', () => {
    aliceRoom.presence.subscribe(aliceSees.listener);
    bobRoom.presence.subscribe(bobSees.listener);
  });
  await checks.step('attach', () => Promise.all([aliceRoom.attach(), bobRoom.attach()]));

  await checks.step('enter', () => aliceRoom.presence.enter({ name: 'Alice' }));
  const own = await checks.step('get', () => aliceRoom.presence.get());
  checks.same('get_lists_own_member', own.map((m) => [m.clientId, m.data]), [['alice', { name: 'Alice' }]]);
  checks.ok('is_user_present', await aliceRoom.presence.isUserPresent('alice'));
  checks.ok('is_user_absent', !(await aliceRoom.presence.isUserPresent('nobody')));
  const aliceEnter = await checks.step('subscribe_sees_enter', () => bobSees.waitSeen('enter', 'alice'));
  checks.same('enter_data', aliceEnter.data, { name: 'Alice' });

  await bobRoom.presence.enter({ name: 'Bob' });
  await checks.step('peer_enter_seen', () => aliceSees.waitSeen('enter', 'bob'));
  const both = await bobRoom.presence.get();
  checks.ok('get_lists_both', both.map((m) => m.clientId).sort().join() === 'alice,bob', both.map((m) => m.clientId));

  await checks.step('update', () => aliceRoom.presence.update({ name: 'Alice', status: 'away' }));
  const update = await checks.step('update_seen', () => bobSees.waitSeen('update', 'alice'));
  checks.same('update_data', update.data, { name: 'Alice', status: 'away' });

  await checks.step('leave', () => aliceRoom.presence.leave({ bye: true }));
  const leave = await checks.step('leave_seen', () => bobSees.waitSeen('leave', 'alice'));
  checks.same('leave_data', leave.data, { bye: true });
  checks.ok('is_user_present_after_leave', !(await bobRoom.presence.isUserPresent('alice')));

  const typing = [];
  const typingSeen = new Promise((resolve) => {
    bobRoom.typing.subscribe((event) => {
      typing.push([...event.currentlyTyping]);
      if (event.currentlyTyping.has('alice')) resolve(event);
    });
  });
  await checks.step('typing_keystroke', () => aliceRoom.typing.keystroke());
  await checks.step('typing_seen', () => within(typingSeen, 'alice typing'));

  await checks.step('detach', () => aliceRoom.detach());
  checks.ok('room_never_failed', !statuses.includes('failed'), statuses);
  checks.ok('no_connection_errors', !alice.realtime.connection.errorReason && !bob.realtime.connection.errorReason);
  checks.ok('no_errors_logged', errors.length === 0, errors);
});
