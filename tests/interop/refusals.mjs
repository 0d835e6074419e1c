// Refusals: entering on a key without the presence capability is NACKed 40160 (the channel
// stays attached, the connection up), and a token bound to another clientId than the one
// asked for is refused with 40102 (the connection fails).  Options: port, tag, format.

import { Checks, connected, named, realtime } from './interop.mjs';

await new Checks().run(async (checks) => {
  const name = named('refusals');
  const eve = checks.track(realtime({ clientId: 'eve', key: 'watch.key:s3cret' }));
  await checks.step('connect', () => connected(eve));
  const channel = eve.channels.get(name);
  await checks.step('attach', () => channel.attach());
  await checks.rejects('enter_without_presence_capability_nacked_40160', () => channel.presence.enter({ v: 1 }), 40160);
  checks.ok('nack_keeps_channel_attached', channel.state === 'attached', channel.state);
  checks.ok('nack_keeps_connection', eve.connection.state === 'connected', eve.connection.state);

  const mallory = checks.track(realtime({ clientId: 'alice', token: 'token-bob' }));
  await checks.step('mismatch_fails_connection', () => connected(mallory, 'failed'));
  const reason = mallory.connection.errorReason;
  checks.ok('token_for_other_client_id_refused_40102', reason?.code === 40102, reason && { code: reason.code, message: reason.message });
});
