// Ably JWTs minted on the Python side (presence_core's mint_jwt), used by ably-js:
//
// - alice's authCallback returns a JWT: she connects with its clientId and enters;
//   auth.authorize() renews it on the live connection (an AUTH frame, same connection id);
// - carol's first JWT expires while she is connected: the server sends DISCONNECTED 40142,
//   her authCallback is asked again, and she resumes the same connection;
// - dave passes an expired JWT as a static token: refused, and with no means to renew it his
//   connection fails;
// - erin's authCallback first returns an expired JWT, then a valid one: she connects.
//
// Options: port, tag, jwts {alice1, alice2, carol1, carol2, dave, erin1, erin2}.

import { Checks, args, checkAuthorize, connected, enteredPair, handOut, named, nextChange, realtime } from './interop.mjs';

/** A JSON-safe picture of an ErrorInfo. */
function reason(error) {
  return error ? { code: error.code, statusCode: error.statusCode } : null;
}

/** Keep every state change of `client` as [state, reason], for the checks and the details. */
function statesOf(client) {
  const states = [];
  client.connection.on((change) => states.push([change.current, reason(change.reason)]));
  return states;
}

await new Checks().run(async (checks) => {
  const { jwts } = args;
  const name = named('jwt');

  // Carol first, so her token's expiry runs while the other steps do.
  const carolAuth = handOut([jwts.carol1, jwts.carol2]);
  const carol = checks.track(realtime({ authCallback: carolAuth.authCallback }));
  const carolStates = statesOf(carol);
  await checks.step('short_jwt_connects', () => connected(carol));
  const carolId = carol.connection.id;

  // An authCallback returning a JWT (no clientId option: the token's is adopted), then
  // authorize() renewing it.
  const aliceTokens = [jwts.alice1, jwts.alice2];
  const aliceAuth = handOut(aliceTokens);
  const pair = await enteredPair(checks, name, { alice: { clientId: undefined, authCallback: aliceAuth.authCallback } });
  checks.same('jwt_client_id_adopted', pair.alice.auth.clientId, 'alice');
  const carolChannel = carol.channels.get(name);
  await checks.step('short_jwt_enter', () => carolChannel.presence.enter({ who: 'carol' }));
  await pair.bobSees.waitSeen('enter', 'carol');
  await checkAuthorize(checks, pair, { issued: aliceAuth.issued, tokens: aliceTokens });

  // An expired JWT as a static token, and one from an authCallback that then has a new one.
  const dave = checks.track(realtime({ token: jwts.dave }));
  const daveStates = statesOf(dave);
  const erinAuth = handOut([jwts.erin1, jwts.erin2]);
  const erin = checks.track(realtime({ authCallback: erinAuth.authCallback }));
  await checks.step('expired_static_jwt_fails', () => connected(dave, 'failed'));
  checks.info.dave_states = daveStates;
  checks.same('expired_static_jwt_reason', reason(dave.connection.errorReason), { code: 40171, statusCode: 403 });
  checks.ok('expired_static_jwt_saw_40142_first', daveStates.some(([, r]) => r?.code === 40142), daveStates);
  await checks.step('expired_callback_jwt_renewed', () => connected(erin));
  checks.same('expired_callback_jwt_asked_twice', erinAuth.issued.length, 2);
  checks.same('renewed_client_id', erin.auth.clientId, 'erin');

  // Carol's token expires: DISCONNECTED 40142, a new token, the same connection.
  if (carol.connection.state === 'connected' && carolAuth.issued.length === 1) {
    await checks.step('expiry_disconnects', () => nextChange(carol, 'disconnected'));
  }
  await checks.step('expiry_reconnects', () => connected(carol));
  checks.info.carol_states = carolStates;
  checks.ok(
    'expiry_reason_40142',
    carolStates.some(([state, r]) => state === 'disconnected' && r?.code === 40142 && r?.statusCode === 401),
    carolStates,
  );
  checks.same('expiry_asked_for_a_new_jwt', carolAuth.issued, [jwts.carol1, jwts.carol2]);
  checks.same('expiry_resumes_the_same_connection', carol.connection.id, carolId);
  const bobSaw = pair.bobSees.seen;
  checks.ok('expiry_peer_sees_no_leave', !bobSaw.some(([action, who]) => action === 'leave' && who === 'carol'), bobSaw);
  await checks.step('presence_after_expiry', () => carolChannel.presence.update({ who: 'carol', v: 2 }));
  await pair.bobSees.waitSeen('update', 'carol');
});
