// A SYNC of at least three pages arrives whole: three members on three connections, and a
// fourth client attaching (against a server with sync_page_size 1) counts the SYNC frames it
// receives (from ably-js's protocol log) and lists every member.  Options: port, tag, format.

import { Checks, ProtocolLog, connected, named, realtime } from './interop.mjs';

await new Checks().run(async (checks) => {
  const name = named('sync');
  const names = ['alice', 'bob', 'carol'];
  const members = names.map((clientId) => checks.track(realtime({ clientId })));
  await checks.step('connect', () => Promise.all(members.map((c) => connected(c))));
  await checks.step('enter', () =>
    Promise.all(members.map((c, i) => c.channels.get(name).presence.enter({ n: i, who: names[i] }))),
  );
  const log = new ProtocolLog();
  const dave = checks.track(realtime({ clientId: 'dave', ...log.options }));
  await checks.step('connect_late', () => connected(dave));
  const got = await checks.step('get', () => dave.channels.get(name).presence.get());
  checks.same(
    'sync_arrives_whole',
    got.map((m) => [m.clientId, m.data]).sort(),
    names.map((who, n) => [who, { n, who }]),
  );
  const pages = log.of('SYNC', name).map((f) => f.channelSerial);
  checks.ok('sync_in_three_pages', pages.length >= 3, pages);
  checks.ok('last_page_has_empty_cursor', pages.length > 0 && pages.at(-1).endsWith(':') && pages.slice(0, -1).every((p) => !p.endsWith(':')), pages);
});
