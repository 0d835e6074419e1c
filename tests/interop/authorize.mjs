// auth.authorize() with a new opaque token on a live connection: the connection stays up with
// the same id and presence goes on.  Alice gets her tokens from an authCallback (no key); bob
// passes a token alone, with no clientId, and adopts the token's.  Options: port, tag, format.

import { Checks, checkAuthorize, enteredPair, handOut, named } from './interop.mjs';

await new Checks().run(async (checks) => {
  const tokens = ['token-alice-1', 'token-alice-2'];
  const auth = handOut(tokens);
  const pair = await enteredPair(checks, named('authorize'), {
    alice: { authCallback: auth.authCallback },
    bob: { clientId: undefined, token: 'token-bob' },
  });
  checks.ok('token_client_id_adopted', pair.bob.auth.clientId === 'bob', pair.bob.auth.clientId);
  await checkAuthorize(checks, pair, { issued: auth.issued, tokens });
});
