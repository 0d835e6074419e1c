// ably-js Rest presence.get() against the server's REST route, while two Realtime clients are
// present: in JSON and in the Node default (msgpack requested; the server may answer JSON,
// which ably-js reads by the response's content type).  Options: port, tag.

import { Checks, Recorder, connected, named, realtime, rest } from './interop.mjs';

await new Checks().run(async (checks) => {
  const name = named('rest');
  const alice = checks.track(realtime({ clientId: 'alice' }));
  const bob = checks.track(realtime({ clientId: 'bob' }));
  await checks.step('connect', () => Promise.all([connected(alice), connected(bob)]));
  const seen = new Recorder();
  await alice.channels.get(name).presence.subscribe(seen.listener);
  await checks.step('enter', () =>
    Promise.all([alice.channels.get(name).presence.enter({ who: 'alice' }), bob.channels.get(name).presence.enter('bob')]),
  );
  await seen.waitSeen('enter', 'bob');

  for (const format of ['json', 'msgpack']) {
    const client = rest({ format });
    const page = await checks.step(`rest_presence_get_${format}`, () => client.channels.get(name).presence.get());
    const members = Object.fromEntries(page.items.map((m) => [m.clientId, m]));
    checks.ok(`rest_lists_members_${format}`, Object.keys(members).sort().join() === 'alice,bob', Object.keys(members));
    checks.same(`rest_data_${format}`, [members.alice?.data, members.bob?.data], [{ who: 'alice' }, 'bob']);
    checks.ok(`rest_action_present_${format}`, page.items.every((m) => m.action === 'present'), page.items.map((m) => m.action));
    const filtered = await client.channels.get(name).presence.get({ clientId: 'alice' });
    checks.ok(`rest_get_by_client_id_${format}`, filtered.items.map((m) => m.clientId).join() === 'alice', filtered.items.map((m) => m.clientId));
  }
});
