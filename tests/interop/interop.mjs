// What every interop script shares: how to build ably-js and @ably/chat clients for a local
// `presence-core serve`, a result recorder whose one JSON line pytest reads, event recorders a
// script waits on (never sleeps on), and a TCP relay that can cut a client's connection.
//
// A script is run as `node <script>.mjs '<json options>'`; the options always carry `port` (the
// server's) and `tag` (a prefix that keeps the channel names of concurrent scripts apart).

import net from 'node:net';
import { isDeepStrictEqual, inspect } from 'node:util';

import * as Ably from 'ably';
import { ChatClient, LogLevel } from '@ably/chat';

/** The hang guard of each wait: far beyond what any step needs, and never a verdict. */
export const WAIT_MS = 15_000;
/** The hang guard of a whole script; pytest's own guard is longer still. */
const SCRIPT_MS = 60_000;

/** The options pytest passed as the first argument. */
export const args = JSON.parse(process.argv[2] ?? '{}');

/** The name of channel (or room) `name` for this run. */
export function named(name) {
  return `${args.tag ?? 'interop'}-${name}`;
}

/**
 * ably-js client options for the local server.  Each one is needed; without it a client goes
 * to Ably's production hosts or never connects:
 *
 * - `key` ('name:secret', sent as the `key` query parameter), or `token` / `authCallback` (sent
 *   as `access_token`).  None of them makes an HTTP request.  Never `useTokenAuth` with a key:
 *   the client would first POST a token request to the server, which has no such route.
 * - `clientId`: presence enter/update/leave need one (ably-js refuses them with 40012 before
 *   sending anything otherwise).  With a token bound to a clientId it may be omitted.
 * - `endpoint: '127.0.0.1'`: an IP address (or 'localhost') is used as the host verbatim, for
 *   the realtime and the REST side alike, and leaves the client no fallback hosts.
 * - `port`: the port of ws:// and http://, used only with `tls: false`.
 * - `tls: false`: plain ws:// on `port` (with TLS the client dials wss:// on port 443).
 * - `useBinaryProtocol: false` for JSON (`format=json`); omitted or true, ably-js on Node
 *   speaks msgpack, its default there.
 * - `disableConnectivityCheck: true`: skips the HTTP "is the internet up" check that the slow
 *   connect path would make to an Ably host.
 * - `wsConnectivityCheckUrl: 'ws://127.0.0.1:<port>/'`: where the "is WebSocket reachable"
 *   probe goes when a handshake is slow (by default an Ably host).
 *
 * `format` is 'json', 'msgpack' (useBinaryProtocol omitted) or 'default' (only key, clientId,
 * endpoint, port and tls, as a user who reads no further would write).  `extra` is merged
 * last (short retry timeouts, a `recover` key, a log handler).
 */
export function clientOptions({
  clientId,
  key = args.key ?? 'app.key:s3cret',
  token,
  authCallback,
  port = args.port,
  format = args.format ?? 'json',
  ...extra
} = {}) {
  const options = { endpoint: '127.0.0.1', port, tls: false };
  if (token !== undefined) options.token = token;
  else if (authCallback !== undefined) options.authCallback = authCallback;
  else options.key = key;
  if (clientId !== undefined) options.clientId = clientId;
  if (format !== 'default') {
    options.disableConnectivityCheck = true;
    options.wsConnectivityCheckUrl = `ws://127.0.0.1:${args.port}/`;
    if (format === 'json') options.useBinaryProtocol = false;
  }
  return { ...options, ...extra };
}

/** An ably-js Realtime client made with {@link clientOptions}. */
export function realtime(spec) {
  return new Ably.Realtime(clientOptions(spec));
}

/** An ably-js Rest client made with {@link clientOptions}. */
export function rest(spec) {
  return new Ably.Rest(clientOptions(spec));
}

/**
 * An @ably/chat client over a Realtime client of {@link clientOptions} (Chat needs no more).
 * Every error either library logs is kept in `errors`, so a script can check there were none.
 */
export function chat(spec, errors = []) {
  const keep = (message) => errors.push(String(message));
  return new ChatClient(realtime({ logHandler: keep, ...spec }), { logLevel: LogLevel.Error, logHandler: keep });
}

/** `promise`, or a rejection naming `what` after {@link WAIT_MS}. */
export function within(promise, what) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

/** Wait until `client` (Realtime) reaches connection state `state`. */
export function connected(client, state = 'connected') {
  return within(client.connection.whenState(state), `connection ${state}`);
}

/** The next change of `client`'s connection to `state` (a ConnectionStateChange). */
export function nextChange(client, state) {
  return within(new Promise((resolve) => client.connection.once(state, resolve)), `connection ${state}`);
}

/** An authCallback handing out `tokens` in turn (the last one again once they run out). */
export function handOut(tokens) {
  const issued = [];
  const authCallback = (params, callback) => {
    const token = tokens[Math.min(issued.length, tokens.length - 1)];
    issued.push(token);
    callback(null, token);
  };
  return { issued, authCallback };
}

/** Whether `actual` is the data `expected`: binary by bytes (Buffer or Uint8Array), else deep. */
export function sameData(actual, expected) {
  if (expected instanceof Uint8Array) {
    return actual instanceof Uint8Array && Buffer.from(actual).equals(Buffer.from(expected));
  }
  return isDeepStrictEqual(actual, expected);
}

/** A JSON-safe picture of data, for details: binary as {bytes: [...]}. */
export function show(data) {
  if (data instanceof Uint8Array) return { bytes: Array.from(data) };
  return data;
}

/**
 * A listener that keeps every event it is given and lets a script wait for one.  For ably-js
 * presence an event is a PresenceMessage; for Chat a PresenceEvent {type, member}.  `view`
 * gives each event its (action, clientId, connectionId, data).
 */
export class Recorder {
  constructor(view = (e) => ({ action: e.action, clientId: e.clientId, connectionId: e.connectionId, data: e.data })) {
    this.view = view;
    this.events = [];
    this.waiters = new Set();
    this.listener = (event) => {
      this.events.push(this.view(event));
      for (const waiter of [...this.waiters]) waiter();
    };
  }

  /** The [action, clientId] pairs seen so far. */
  get seen() {
    return this.events.map((e) => [e.action, e.clientId]);
  }

  /** The first event (from `from` on) that `predicate` accepts, waiting for it if need be. */
  waitFor(predicate, what, from = 0) {
    const found = () => this.events.slice(from).find(predicate);
    return within(
      new Promise((resolve) => {
        const check = () => {
          const event = found();
          if (event !== undefined) {
            this.waiters.delete(check);
            resolve(event);
          }
        };
        this.waiters.add(check);
        check();
      }),
      `${what} (seen so far: ${JSON.stringify(this.seen)})`,
    );
  }

  /** Wait for an event with `action` from `clientId`. */
  waitSeen(action, clientId, from = 0) {
    return this.waitFor((e) => e.action === action && e.clientId === clientId, `${action} of ${clientId}`, from);
  }
}

/**
 * The channel frames one client receives, read from ably-js's own protocol log (log level 4
 * writes one line per frame received): each as {action, channel, channelSerial}.  Spread
 * `options` into the client's options; `waitFor` waits for a frame.
 */
export class ProtocolLog {
  constructor() {
    this.frames = [];
    this.recorder = new Recorder((frame) => frame);
    this.options = {
      logLevel: 4,
      logHandler: (line) => {
        const found = FRAME_LOG.exec(line);
        if (found) this.recorder.listener({ action: found[1], channel: found[2], channelSerial: found[3] ?? null });
      },
    };
  }

  /** Frames with `action` (ATTACHED, SYNC ...) on `channel`, in order. */
  of(action, channel) {
    return this.recorder.events.filter((f) => f.action === action && f.channel === channel);
  }

  /** Wait until `count` frames with `action` have arrived on `channel`. */
  waitFor(action, channel, count = 1) {
    return this.recorder.waitFor(() => this.of(action, channel).length >= count, `${count} ${action} on ${channel}`);
  }
}

const FRAME_LOG = /received on \w+: \[ProtocolMessage; action=(\w+); channel=([^;\]]+)(?:; channelSerial=([^;\]]*))?/;

/** The view of a Chat PresenceEvent as a Recorder keeps it. */
export const chatView = (e) => ({
  action: e.type,
  clientId: e.member.clientId,
  connectionId: e.member.connectionId,
  data: e.member.data,
});

/**
 * The named checks of one script, printed as one JSON line when it finishes:
 * `{"checks": {name: {"ok": bool, "detail": ...}}, "info": {...}}`.  pytest asserts each check
 * by name, so a script that stops early shows which checks it never reached.
 */
export class Checks {
  constructor() {
    this.checks = {};
    this.info = {};
    this.clients = [];
    const hang = setTimeout(() => {
      this.fail('script', `the script did not finish within ${SCRIPT_MS} ms`);
      this.print(1);
    }, SCRIPT_MS);
    hang.unref();
  }

  /** Record check `name`; a failure is kept over a later pass of the same name. */
  ok(name, condition, detail = null) {
    if (this.checks[name] && !this.checks[name].ok) return condition;
    this.checks[name] = { ok: Boolean(condition), detail };
    return condition;
  }

  fail(name, detail) {
    this.ok(name, false, detail);
  }

  /** Check that `actual` equals `expected` (data compared as {@link sameData} does). */
  same(name, actual, expected) {
    return this.ok(name, sameData(actual, expected), { actual: show(actual), expected: show(expected) });
  }

  /** Run `body` as check `name`: it passes if `body` returns without throwing. */
  async step(name, body) {
    try {
      const value = await body();
      this.ok(name, true);
      return value;
    } catch (error) {
      this.fail(name, describe(error));
      throw new StepFailed(name, error);
    }
  }

  /** Check that `body` rejects with Ably error `code`; returns the error. */
  async rejects(name, body, code) {
    try {
      await body();
      this.fail(name, `resolved; expected a rejection with code ${code}`);
    } catch (error) {
      this.ok(name, error?.code === code, describe(error));
      return error;
    }
    return null;
  }

  /** Keep `client` to close (or, with `close: false`, to leave unclosed) when finishing. */
  track(client) {
    this.clients.push(client);
    return client;
  }

  /** Run `main(checks)`, then close every tracked client and print the result. */
  async run(main) {
    try {
      await main(this);
    } catch (error) {
      if (!(error instanceof StepFailed)) this.fail('script', describe(error));
    }
    await Promise.allSettled(this.clients.map((client) => closeClient(client)));
    this.print(0);
  }

  print(code) {
    process.stdout.write(`${JSON.stringify({ checks: this.checks, info: this.info })}\n`, () => process.exit(code));
  }
}

class StepFailed extends Error {
  constructor(name, cause) {
    super(`step ${name} failed`, { cause });
  }
}

function describe(error) {
  if (error && typeof error === 'object' && 'code' in error) {
    return { code: error.code, statusCode: error.statusCode, message: String(error.message) };
  }
  return inspect(error);
}

/** Close a Realtime or Chat client, waiting for it to be closed (bounded). */
async function closeClient(client) {
  const realtimeClient = client.realtime ?? client;
  if (!realtimeClient.connection) return;
  const state = realtimeClient.connection.state;
  if (state === 'closed' || state === 'failed') return;
  realtimeClient.close();
  await within(realtimeClient.connection.whenState('closed'), 'close').catch(() => {});
}

/**
 * A TCP relay from a local port to the server, so a script can break a client's connection
 * the way a network does: `cut()` destroys every relayed socket at once (the server sees the
 * TCP stream end with no WebSocket close, the client a 1006), and while `block()` is in force
 * each new connection is closed as soon as it is accepted (the client's reconnects fail).
 */
export class Relay {
  constructor(targetPort = args.port) {
    this.targetPort = targetPort;
    this.pairs = new Set();
    this.blocked = false;
    this.server = net.createServer((inbound) => this.accept(inbound));
  }

  /** Start listening on a free port; returns it. */
  listen() {
    return new Promise((resolve) => {
      this.server.listen(0, '127.0.0.1', () => resolve(this.server.address().port));
    });
  }

  get port() {
    return this.server.address().port;
  }

  accept(inbound) {
    if (this.blocked) {
      inbound.destroy();
      return;
    }
    const outbound = net.connect(this.targetPort, '127.0.0.1');
    const pair = [inbound, outbound];
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    for (const socket of pair) {
      socket.on('error', end);
      socket.on('close', end);
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  }

  cut() {
    for (const [inbound, outbound] of [...this.pairs]) {
      inbound.destroy();
      outbound.destroy();
    }
    this.pairs.clear();
  }

  block() {
    this.blocked = true;
  }

  unblock() {
    this.blocked = false;
  }

  close() {
    this.cut();
    this.server.close();
  }
}

// -- scenarios several scripts share ------------------------------------------------------

/**
 * The start of most failure scripts: alice and bob connected (with extra client options
 * each), bob subscribed to channel `name`'s presence, and alice entered with `data`, once bob
 * has seen her enter.
 */
export async function enteredPair(checks, name, { alice: aliceOptions, bob: bobOptions, data = { v: 1 } } = {}) {
  const alice = checks.track(realtime({ clientId: 'alice', ...aliceOptions }));
  const bob = checks.track(realtime({ clientId: 'bob', ...bobOptions }));
  await checks.step('connect', () => Promise.all([connected(alice), connected(bob)]));
  const bobSees = new Recorder();
  await bob.channels.get(name).presence.subscribe(bobSees.listener);
  const aliceChannel = alice.channels.get(name);
  await checks.step('enter', () => aliceChannel.presence.enter(data));
  await bobSees.waitSeen('enter', 'alice');
  return { alice, bob, aliceChannel, bobSees };
}

/**
 * The checks of `auth.authorize()` on a live connection, after {@link enteredPair}: alice's
 * authCallback (from {@link handOut}) hands out the next of `tokens`, the connection stays up
 * with the same id, and her next update reaches bob.
 */
export async function checkAuthorize(checks, { alice, aliceChannel, bobSees }, { issued, tokens }) {
  const before = alice.connection.id;
  const changes = [];
  alice.connection.on((change) => changes.push(change.current));
  await checks.step('authorize', () => alice.auth.authorize());
  checks.same('authorize_used_new_token', issued, tokens);
  checks.ok('authorize_keeps_connection', alice.connection.state === 'connected' && alice.connection.id === before, {
    state: alice.connection.state,
    before,
    after: alice.connection.id,
  });
  await checks.step('presence_after_authorize', () => aliceChannel.presence.update({ v: 2 }));
  const update = await bobSees.waitSeen('update', 'alice');
  checks.same('peer_sees_update_after_authorize', update.data, { v: 2 });
  checks.ok('no_reconnect', !changes.includes('disconnected') && !changes.includes('failed'), changes);
}
