// One side of a mixed room: an @ably/chat client and a presence_core Python client (driven by
// the pytest process) take turns, each waiting for the other's event before its next step, so
// each sees the other's enter, update and leave with the same data.  Options: port, tag,
// format, room, peer (the Python client's clientId).

import { Checks, Recorder, args, chat, chatView, connected } from './interop.mjs';

const mine = (step) => ({ from: 'chat', step });
const theirs = (step) => ({ from: 'python', step });

await new Checks().run(async (checks) => {
  const client = checks.track(chat({ clientId: 'chatty' }));
  await checks.step('connect', () => connected(client.realtime));
  const room = await client.rooms.get(args.room);
  const seen = new Recorder(chatView);
  room.presence.subscribe(seen.listener);
  await checks.step('attach', () => room.attach());

  await checks.step('enter', () => room.presence.enter(mine(1)));
  const enter = await checks.step('sees_python_enter', () => seen.waitSeen('enter', args.peer));
  checks.same('python_enter_data', enter.data, theirs(1));
  const members = await room.presence.get();
  checks.same('get_lists_python', members.map((m) => [m.clientId, m.data]).sort(), [['chatty', mine(1)], [args.peer, theirs(1)]]);

  await checks.step('update', () => room.presence.update(mine(2)));
  const update = await checks.step('sees_python_update', () => seen.waitSeen('update', args.peer));
  checks.same('python_update_data', update.data, theirs(2));

  await checks.step('leave', () => room.presence.leave(mine(3)));
  const leave = await checks.step('sees_python_leave', () => seen.waitSeen('leave', args.peer));
  checks.same('python_leave_data', leave.data, theirs(3));
});
