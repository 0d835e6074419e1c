// The shortest configuration: a Realtime client with only key, clientId, endpoint, port and
// tls: false (so msgpack, Node's default) enters and sees the others, and they see it.
// Options: port, tag.

import { Checks, Recorder, connected, named, realtime } from './interop.mjs';

await new Checks().run(async (checks) => {
  const name = named('defaults');
  const bob = checks.track(realtime({ clientId: 'bob', format: 'json' }));
  const alice = checks.track(realtime({ clientId: 'alice', format: 'default' }));
  await checks.step('connect', () => Promise.all([connected(alice), connected(bob)]));
  const bobSees = new Recorder();
  const bobChannel = bob.channels.get(name);
  await bobChannel.presence.subscribe(bobSees.listener);
  await bobChannel.presence.enter({ who: 'bob' });
  const aliceChannel = alice.channels.get(name);
  await checks.step('default_options_enter', () => aliceChannel.presence.enter({ who: 'alice' }));
  const members = await checks.step('default_options_get', () => aliceChannel.presence.get());
  checks.same(
    'default_options_sees_others',
    members.map((m) => [m.clientId, m.data]).sort(),
    [['alice', { who: 'alice' }], ['bob', { who: 'bob' }]],
  );
  const enter = await checks.step('others_see_default_options_client', () => bobSees.waitSeen('enter', 'alice'));
  checks.same('default_options_data', enter.data, { who: 'alice' });
});
