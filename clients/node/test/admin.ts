/**
 * The operators' methods (scan, records, purgeClient, census) against the data of two
 * clients, spread over every master in Cluster by the package's own key scheme.
 */

import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  createPkcePair,
  InvalidRequest,
  KindCounts,
  Keys,
  ListedRecord,
  NoPerm,
  OAuthClient,
  randomId,
  RECORD_KINDS,
  RecordKind,
  ScanOptions,
  ServerError,
  slotOf,
} from 'redis-oauth';
import { Connection, ConnectOptions } from './cases';

export interface AdminContext {
  conn: Connection;
  connect(options: ConnectOptions): Promise<Connection>;
  /** Another connection, which the test closes itself. */
  open(options: ConnectOptions): Promise<Connection>;
  /** A command through redis-cli on every server of the topology (the standalone one, or every master). */
  everyNode(...args: string[]): Promise<string[]>;
}

const keys = new Keys();
const COUNT = 500;

/** What the tests created: each record's key and kind, with the client and subject it shows in `fields`. */
interface Made {
  key: string;
  kind: RecordKind;
  clientId?: string;
  sub?: string;
}

function counts(list: readonly { kind: RecordKind }[]): KindCounts {
  const out = Object.fromEntries(RECORD_KINDS.map((k) => [k, 0])) as KindCounts;
  for (const r of list) out[r.kind] += 1;
  return out;
}

/**
 * A new grant whose id starts with `tag`, in the `third`-th third of the hash slots:
 * one per master of the tests' Cluster (`redis-cli --cluster create` gives 3 masters
 * 0-5460, 5461-10922 and 10923-16383), so a client's grants are spread over all three.
 */
function grantIn(tag: string, third: number) {
  for (;;) {
    const grant = keys.newGrant(`${tag}${randomId(6)}`);
    const slot = slotOf(grant.grant);
    if ((slot <= 5460 ? 0 : slot <= 10922 ? 1 : 2) === third) return grant;
  }
}

/**
 * One client's records: a registration, two states, a pending code, a grant whose code
 * was redeemed into an access and a refresh token and then rotated (a second access
 * token, the successor), and a token saved outside any grant. Grant ids start with
 * `tag`, so `oauth:{g:<tag>*` matches the grant-tagged keys; in Cluster the three grants
 * are on three masters.
 */
async function populate(oauth: OAuthClient, clientId: string, tag: string, subs: [string, string]): Promise<Made[]> {
  const made: Made[] = [];
  const fields = { client_id: clientId, sub: subs[0], scope: 'read' };

  const client = keys.client(clientId);
  await oauth.saveClient(client, { client_id: clientId, client_name: `n-${clientId}` }, { ttl: 3600 });
  made.push({ key: client, kind: 'client', clientId });
  for (let i = 0; i < 2; i++) {
    const state = keys.state(randomId(16));
    await oauth.saveState(state, 300, { client_id: clientId, redirect_uri: 'https://app/cb' });
    made.push({ key: state, kind: 'state', clientId });
  }

  const pending = grantIn(tag, 0);
  const pendingCode = pending.code(pending.newToken());
  await oauth.saveCode(pendingCode, 600, { ...fields, code_challenge: createPkcePair().challenge, code_challenge_method: 'S256' });
  made.push({ key: pendingCode, kind: 'code', clientId, sub: subs[0] });

  const grant = grantIn(tag, 1);
  const code = grant.code(grant.newToken());
  const pkce = createPkcePair();
  await oauth.saveCode(code, 600, { ...fields, code_challenge: pkce.challenge, code_challenge_method: 'S256' });
  const at1 = grant.accessToken(grant.newToken());
  const rt1 = grant.refreshToken(grant.newToken());
  await oauth.exchange({ key: code, clientId, codeVerifier: pkce.verifier, issue: { key: at1, ttl: 3600 }, refresh: { key: rt1, ttl: 86400 }, grant: grant.grant });
  const at2 = grant.accessToken(grant.newToken());
  const rt2 = grant.refreshToken(grant.newToken());
  await oauth.rotate({ oldKey: rt1, newKey: rt2, ttl: 86400, issue: { key: at2, ttl: 3600 } });
  made.push(
    // Tombstones keep no client data: they go with their grant.
    { key: code, kind: 'redeemed_code' },
    { key: at1, kind: 'token', clientId, sub: subs[0] },
    { key: rt1, kind: 'rotated_refresh' },
    { key: at2, kind: 'token', clientId, sub: subs[0] },
    { key: rt2, kind: 'refresh', clientId, sub: subs[0] },
    { key: grant.grant, kind: 'grant', clientId, sub: subs[0] },
  );

  const loose = grantIn(tag, 2);
  const token = loose.accessToken(loose.newToken());
  await oauth.saveToken(token, 3600, { client_id: clientId, sub: subs[1] });
  made.push({ key: token, kind: 'token', clientId, sub: subs[1] });
  return made;
}

async function list(oauth: OAuthClient, options: ScanOptions = {}): Promise<ListedRecord[]> {
  const out: ListedRecord[] = [];
  for await (const record of oauth.records({ count: COUNT, ...options })) out.push(record);
  return out;
}

/** Keys, sorted and without duplicates (SCAN may list a key twice). */
function keySet(records: readonly { key: string }[]): string[] {
  return [...new Set(records.map((r) => r.key))].sort();
}

/** The census's numbers counted by hand: every record of every primary, walked with scan(). */
async function walk(oauth: OAuthClient): Promise<{ counts: KindCounts; subjects: number }> {
  const seen = new Map<string, ListedRecord>();
  let subjects = 0;
  for (const node of await oauth.primaries()) {
    const subs = new Set<string>();
    let cursor = '0';
    do {
      const page = await oauth.scan(cursor, { node, count: COUNT });
      for (const r of page.records) {
        seen.set(r.key, r);
        if ((r.kind === 'token' || r.kind === 'refresh') && r.fields.sub !== undefined) subs.add(r.fields.sub);
      }
      cursor = page.cursor;
    } while (cursor !== '0');
    subjects += subs.size;
  }
  return { counts: counts([...seen.values()]), subjects };
}

/** Waits until every primary completed two more census passes: the last one started after this call. */
async function freshCensus(oauth: OAuthClient): Promise<void> {
  const start = (await oauth.census()).passes;
  const deadline = Date.now() + 15000;
  while ((await oauth.census()).passes < start + 2) {
    if (Date.now() > deadline) throw new Error(`the census did not complete two passes in 15 s (from ${start})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export function adminFlows(ctx: () => AdminContext): void {
  it('records() lists the records of each kind, client, subject and key pattern; purgeClient deletes one client whole', async () => {
    const { conn } = ctx();
    const { oauth } = conn;
    const tag = randomId(4).replace(/[-_]/g, 'x');
    const [a, b] = [`adm-${tag}-a`, `adm-${tag}-b`];
    const subs = { a: [`sa1-${tag}`, `sa2-${tag}`] as [string, string], b: [`sb1-${tag}`, `sb2-${tag}`] as [string, string] };
    const madeA = await populate(oauth, a, `${tag}A`, subs.a);
    const madeB = await populate(oauth, b, `${tag}B`, subs.b);
    const made = [...madeA, ...madeB];

    if ((await oauth.primaries()).length > 1) {
      const owners = new Set<string>();
      for (const node of await oauth.primaries()) {
        let cursor = '0';
        do {
          const page = await oauth.scan(cursor, { node, count: COUNT, match: `oauth:{g:${tag}*` });
          if (page.records.length > 0) owners.add(node);
          cursor = page.cursor;
        } while (cursor !== '0');
      }
      assert.equal(owners.size, 3, 'the grants are spread over every master');
    }

    // By client: every record that names the client (a code's tombstone names none).
    for (const [client, mine] of [[a, madeA], [b, madeB]] as const) {
      const found = await list(oauth, { clientId: client });
      assert.deepEqual(keySet(found), keySet(mine.filter((m) => m.clientId === client)), client);
      const now = Date.now();
      for (const r of found) {
        const m = mine.find((x) => x.key === r.key);
        assert.equal(r.kind, m?.kind, r.key);
        assert.equal(r.fields.client_id, client);
        assert.ok(r.expiresAtMs !== null && r.expiresAtMs > now && r.expiresAtMs <= now + 86400_000 + 5000, `${r.key} expires at ${r.expiresAtMs}`);
        assert.ok(r.createdMs === null || Math.abs(r.createdMs - now) < 60_000, `${r.key} created at ${r.createdMs}`);
      }
      const grant = found.find((r) => r.kind === 'grant');
      assert.deepEqual(grant?.fields, { members: '5', client_id: client, sub: subs[client === a ? 'a' : 'b'][0] }, 'code tombstone, 2 access, 2 refresh');
      assert.equal(grant?.createdMs, null);
      assert.deepEqual(found.find((r) => r.kind === 'client')?.fields, { client_id: client, client_name: `n-${client}` });
      assert.deepEqual(found.find((r) => r.kind === 'state')?.fields, { client_id: client, redirect_uri: 'https://app/cb' });
    }

    // By kind (with and without the client): only that kind; ours all there.
    for (const kind of RECORD_KINDS) {
      const ours = madeA.filter((m) => m.kind === kind && m.clientId === a);
      assert.deepEqual(keySet(await list(oauth, { kind, clientId: a })), keySet(ours), kind);
    }
    const allTokens = await list(oauth, { kind: 'token', count: 1000 });
    assert.ok(allTokens.every((r) => r.kind === 'token'));
    for (const m of made.filter((x) => x.kind === 'token')) assert.ok(allTokens.some((r) => r.key === m.key), m.key);

    // By subject, alone and with a kind.
    for (const sub of [...subs.a, ...subs.b]) {
      assert.deepEqual(keySet(await list(oauth, { subject: sub })), keySet(made.filter((m) => m.sub === sub)), sub);
    }
    assert.deepEqual(keySet(await list(oauth, { subject: subs.a[0], kind: 'refresh' })), keySet(madeA.filter((m) => m.kind === 'refresh')));
    assert.deepEqual(await list(oauth, { subject: subs.a[0], clientId: b }), []);

    // By key pattern: the grant-tagged keys of client A, with the module's default COUNT too.
    const grantTagged = madeA.filter((m) => m.key.startsWith(`oauth:{g:${tag}A`));
    assert.deepEqual(keySet(await list(oauth, { match: `oauth:{g:${tag}A*` })), keySet(grantTagged));
    const slow: ListedRecord[] = [];
    for await (const r of oauth.records({ match: `oauth:{g:${tag}A*` })) slow.push(r);
    assert.deepEqual(keySet(slow), keySet(grantTagged));

    // purgeClient: exact counts; B untouched; nothing of A left (its tombstone went with the grant).
    const beforeB = keySet(await list(oauth, { clientId: b }));
    const purged = await oauth.purgeClient(a, { count: COUNT });
    assert.deepEqual(purged, { code: 1, redeemed_code: 1, token: 3, refresh: 1, rotated_refresh: 1, client: 1, state: 2, grant: 1 });
    assert.deepEqual(purged, counts(madeA));
    assert.deepEqual(await list(oauth, { clientId: a }), []);
    assert.deepEqual(await list(oauth, { match: `oauth:{g:${tag}A*` }), []);
    let left = 0;
    for (const m of madeA) left += Number(await conn.raw(['EXISTS', m.key], m.key));
    assert.equal(left, 0);
    assert.deepEqual(keySet(await list(oauth, { clientId: b })), beforeB);
    assert.deepEqual(await oauth.purgeClient(a), counts([]), 'a second purge finds nothing (default COUNT)');

    // MATCH limits a purge: only B's grant-tagged keys go, its registration and states stay.
    const grantTaggedB = madeB.filter((m) => m.key.startsWith(`oauth:{g:${tag}B`));
    assert.deepEqual(await oauth.purgeClient(b, { match: `oauth:{g:${tag}B*`, count: COUNT }), counts(grantTaggedB));
    assert.deepEqual(keySet(await list(oauth, { clientId: b })), keySet(madeB.filter((m) => m.kind === 'client' || m.kind === 'state')));
    assert.deepEqual(await oauth.purgeClient(b, { count: COUNT }), { ...counts([]), client: 1, state: 2 });
  });

  it('census() matches a walk of every record, once two passes completed', async () => {
    const { conn, everyNode } = ctx();
    const { oauth } = conn;
    const tag = randomId(4).replace(/[-_]/g, 'x');
    const subs: [string, string] = [`sc1-${tag}`, `sc2-${tag}`];
    const made = await populate(oauth, `cen-${tag}`, `${tag}C`, subs);
    assert.deepEqual(await everyNode('CONFIG', 'GET', 'oauth.census-batch'), (await oauth.primaries()).map(() => 'oauth.census-batch\n1000'));
    // Writes and expiries of other tests are over, but a key may still expire: retry
    // until the walks before and after the census agree.
    let checked = false;
    for (let attempt = 0; attempt < 5 && !checked; attempt++) {
      const before = await walk(oauth);
      await freshCensus(oauth);
      const census = await oauth.census();
      const after = await walk(oauth);
      if (JSON.stringify(before) !== JSON.stringify(after)) continue;
      assert.deepEqual(census.counts, after.counts);
      assert.equal(census.subjects, after.subjects);
      for (const kind of RECORD_KINDS) assert.ok(census.counts[kind] >= counts(made)[kind], kind);
      assert.equal(census.nodes, (await oauth.primaries()).length);
      assert.ok(census.passes >= 2);
      assert.ok(census.ageMs !== null && census.ageMs >= 0 && census.ageMs < 10_000, `ageMs ${census.ageMs}`);
      assert.ok(census.durationMs !== null && census.durationMs >= 0);
      assert.ok(census.keys >= Object.values(census.counts).reduce((x, y) => x + y, 0));
      checked = true;
    }
    assert.ok(checked, 'the walks before and after the census never agreed');
    assert.deepEqual(await oauth.purgeClient(`cen-${tag}`, { count: COUNT }), counts(made));
  });

  it('an ACL user limited to a key pattern sees only its keys; one that may not delete gets NoPerm, nothing deleted', async () => {
    const { conn, open, everyNode } = ctx();
    const tag = randomId(4).replace(/[-_]/g, 'x');
    const clientId = `acl-${tag}`;
    const other = `acl-${tag}-other`;
    const made = await populate(conn.oauth, clientId, `${tag}A`, [`sa-${tag}`, `sb-${tag}`]);
    const madeOther = await populate(conn.oauth, other, `${tag}B`, [`sa-${tag}`, `sb-${tag}`]);
    const mine = made.filter((m) => m.key.startsWith(`oauth:{g:${tag}A`));
    const [reader, viewer] = [`reader-${tag}`, `viewer-${tag}`];
    const password = randomId(16);
    await everyNode('ACL', 'SETUSER', reader, 'on', `>${password}`, `~oauth:{g:${tag}A*`, '+@all');
    await everyNode('ACL', 'SETUSER', viewer, 'on', `>${password}`, `%R~oauth:{g:${tag}A*`, '+@all');
    const opened: Connection[] = [];
    try {
      const limited = await open({ auth: { username: reader, password } });
      opened.push(limited);
      assert.deepEqual(keySet(await list(limited.oauth)), keySet(mine));
      assert.deepEqual(keySet(await list(limited.oauth, { clientId })), keySet(mine.filter((m) => m.clientId === clientId)));
      assert.deepEqual(await list(limited.oauth, { clientId: other }), []);

      const readOnly = await open({ auth: { username: viewer, password } });
      opened.push(readOnly);
      assert.deepEqual(keySet(await list(readOnly.oauth)), keySet(mine));
      await assert.rejects(readOnly.oauth.purgeClient(clientId, { count: COUNT }), (err: unknown) => {
        assert.ok(err instanceof NoPerm, `expected NoPerm, got ${String(err)}`);
        assert.ok(err instanceof ServerError);
        assert.equal(err.code, 'NOPERM');
        assert.equal(err.httpStatus, 500);
        assert.match(err.description, /nothing was deleted/);
        return true;
      });
      assert.deepEqual(keySet(await list(conn.oauth, { match: `oauth:{g:${tag}A*` })), keySet(mine), 'nothing was deleted');

      // The reader may delete its keys: its purge takes them, and only them.
      assert.deepEqual(await limited.oauth.purgeClient(clientId, { count: COUNT }), counts(mine));
      assert.deepEqual(keySet(await list(conn.oauth, { clientId })), keySet(made.filter((m) => !mine.includes(m))));
    } finally {
      // Closed before their user goes: ACL DELUSER drops its connections, which would reconnect.
      await Promise.all(opened.map((c) => c.close()));
      await everyNode('ACL', 'DELUSER', reader, viewer);
    }
    assert.deepEqual(await conn.oauth.purgeClient(clientId, { count: COUNT }), { ...counts([]), client: 1, state: 2 });
    assert.deepEqual(await conn.oauth.purgeClient(other, { count: COUNT }), counts(madeOther));
  });

  it('a prefix scopes records() and purgeClient() to its keys, named without it', async () => {
    const { conn, connect } = ctx();
    const prefix = `t${randomId(4).replace(/[-_]/g, 'x')}:`;
    const tenant = await connect({ prefix });
    const clientId = `pre-${randomId(4)}`;
    const grant = keys.newGrant();
    const token = grant.accessToken(grant.newToken());
    await tenant.oauth.saveToken(token, 600, { client_id: clientId, sub: 'u' });
    await conn.oauth.saveToken(token, 600, { client_id: clientId, sub: 'u' });
    assert.deepEqual(keySet(await list(tenant.oauth, { clientId })), [token]);
    assert.deepEqual(keySet(await list(conn.oauth, { clientId })), [`${prefix}${token}`, token].sort());
    assert.deepEqual(await tenant.oauth.purgeClient(clientId, { count: COUNT }), { ...counts([]), token: 1 });
    assert.deepEqual(keySet(await list(conn.oauth, { clientId })), [token]);
    assert.deepEqual(await conn.oauth.purgeClient(clientId, { count: COUNT }), { ...counts([]), token: 1 });
  });

  it('errors: a bad KIND, COUNT or cursor is InvalidRequest; scan in Cluster needs a node', async () => {
    const { oauth } = ctx().conn;
    const bad: Array<[string, () => Promise<unknown>, RegExp]> = [
      ['kind', () => list(oauth, { kind: 'tokens' as RecordKind }), /^KIND must be one of code, redeemed_code, token/],
      ['count', () => list(oauth, { count: 0 }), /COUNT/],
      ['count', () => oauth.purgeClient('x', { count: 10001 }), /COUNT/],
      ['cursor', async () => oauth.scan('abc', { node: (await oauth.primaries())[0] }), /^cursor must be/],
      ['client', () => oauth.purgeClient(''), /client_id must not be empty/],
    ];
    for (const [what, call, description] of bad) {
      await assert.rejects(call(), (err: unknown) => {
        assert.ok(err instanceof InvalidRequest, `${what}: expected InvalidRequest, got ${String(err)}`);
        assert.equal(err.httpStatus, 400);
        assert.match(err.description, description, what);
        return true;
      });
    }
    const nodes = await oauth.primaries();
    if (nodes.length > 1) {
      assert.ok(nodes.every((n) => /^127\.0\.0\.1:\d+$/.test(n)), nodes.join());
      await assert.rejects(oauth.scan('0'), (err: unknown) => err instanceof InvalidRequest && /scan needs \{ node \}/.test(err.message));
      await assert.rejects(oauth.scan('0', { node: '10.9.9.9:1' }), InvalidRequest);
    } else {
      assert.deepEqual(nodes, ['']);
    }
  });
}
