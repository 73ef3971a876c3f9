/** Tests that need no server: PKCE, error mapping, rate-limit headers, key names, slots, routing fallbacks. */

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  assertPkceSyntax,
  createPkcePair,
  Exists,
  hashedPart,
  InvalidGrant,
  InvalidRequest,
  InvalidScope,
  IoredisClient,
  IoredisCluster,
  Keys,
  NoPerm,
  OAuthClient,
  Primary,
  OAuthError,
  RateLimitResult,
  s256Challenge,
  ServerError,
  sha256Hex,
  slotOf,
  Transport,
  WrongType,
} from 'redis-oauth';

class ReplyError extends Error {}
class ErrorReply extends Error {}
class SimpleError extends ErrorReply {}

/** An OAuthClient whose transport answers `reply` (or rejects with it) and records what was sent. */
function fake(reply: unknown, prefix?: string): { oauth: OAuthClient; sent: string[][] } {
  const sent: string[][] = [];
  const transport: Transport = {
    send: async (args) => {
      sent.push(args);
      if (reply instanceof Error) throw reply;
      return reply;
    },
  };
  return { oauth: new OAuthClient(transport, { prefix }), sent };
}

describe('PKCE', () => {
  it('computes the RFC 7636 Appendix B challenge', () => {
    assert.equal(s256Challenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'), 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  });

  it('creates verifiers of 43 to 128 characters with their S256 challenge', () => {
    for (const length of [43, 64, 128]) {
      const pair = createPkcePair(length);
      assert.equal(pair.verifier.length, length);
      assert.match(pair.verifier, /^[A-Za-z0-9\-._~]+$/);
      assert.equal(pair.challenge, s256Challenge(pair.verifier));
      assert.equal(pair.method, 'S256');
    }
    assert.equal(createPkcePair().verifier.length, 64);
    assert.notEqual(createPkcePair().verifier, createPkcePair().verifier);
    assert.throws(() => createPkcePair(42), InvalidRequest);
    assert.throws(() => createPkcePair(129), InvalidRequest);
  });

  it('refuses malformed values with a message that names the rule, never the value', () => {
    const secret = `${'s'.repeat(50)}é`;
    assert.throws(() => assertPkceSyntax(secret, 'code_verifier'), (err: unknown) => {
      assert.ok(err instanceof InvalidRequest);
      assert.equal(err.description, 'code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1); it has other characters');
      assert.ok(!err.message.includes(secret));
      return true;
    });
    assert.throws(() => assertPkceSyntax('a'.repeat(129), 'code_challenge', InvalidGrant), /code_challenge .* it has 129$/);
    assertPkceSyntax('a'.repeat(43), 'code_verifier');
  });

  it('exchange refuses a malformed verifier without sending; an empty verifier means none', async () => {
    const { oauth, sent } = fake(['client_id', 'app1']);
    await assert.rejects(oauth.exchange({ key: 'c', clientId: 'app1', codeVerifier: 'short' }), InvalidGrant);
    assert.equal(sent.length, 0);
    assert.deepEqual(await oauth.exchange({ key: 'c', clientId: 'app1' }), { client_id: 'app1' });
    assert.deepEqual(sent, [['OAUTH.EXCHANGE', 'c', 'app1', '', '']]);
  });
});

describe('errors', () => {
  const cases: Array<[string, new (...args: never[]) => OAuthError, string, number]> = [
    ['INVALID_GRANT authorization code already used', InvalidGrant, 'invalid_grant', 400],
    ['INVALID_REQUEST ttl is not an integer', InvalidRequest, 'invalid_request', 400],
    ['INVALID_SCOPE scope cannot widen on refresh', InvalidScope, 'invalid_scope', 400],
    ['EXISTS key already exists', Exists, 'server_error', 500],
    ['WRONGTYPE Operation against a key holding the wrong kind of value', WrongType, 'server_error', 500],
    ['ERR internal error in redis-oauth; details are in the server log', ServerError, 'server_error', 500],
    ["CROSSSLOT Keys in request don't hash to the same slot", ServerError, 'server_error', 500],
    ["NOPERM this user has no permissions to delete one of the client's keys; nothing was deleted", NoPerm, 'server_error', 500],
    ['constructor x', ServerError, 'server_error', 500],
  ];
  for (const [message, Class, error, status] of cases) {
    it(`maps "${message.split(' ')[0]}" to ${Class.name}`, async () => {
      for (const reply of [new ReplyError(message), new ErrorReply(message), new SimpleError(message)]) {
        await assert.rejects(fake(reply).oauth.revokeGrant('g'), (err: unknown) => {
          assert.ok(err instanceof Class && err instanceof OAuthError);
          assert.equal(err.name, Class.name);
          assert.equal(err.error, error);
          assert.equal(err.httpStatus, status);
          assert.equal(err.code, message.split(' ')[0]);
          assert.equal(err.description, message.slice(message.indexOf(' ') + 1));
          assert.equal(err.message, message);
          assert.equal(err.cause, reply);
          return true;
        });
      }
    });
  }

  it('passes other errors (connection, timeouts) through unchanged', async () => {
    const closed = new Error('Connection is closed.');
    await assert.rejects(fake(closed).oauth.revokeGrant('g'), (err: unknown) => err === closed);
  });

  it('reports an unexpected reply as a ServerError', async () => {
    await assert.rejects(fake('OK').oauth.rateLimit('k', { limit: 1, window: 1 }), ServerError);
  });
});

describe('admin replies', () => {
  const resp2Item = [
    'key', 'p*:oauth:{g:1}:at:ab', 'kind', 'token', 'expires_at_ms', 1700000060000, 'created_ms', 1700000000000,
    'fields', ['client_id', 'app1', 'sub', 'u1'],
  ];
  const resp3Item = {
    key: Buffer.from('p*:oauth:{g:1}:at:ab'), kind: 'token', expires_at_ms: 1700000060000, created_ms: 1700000000000,
    fields: new Map([['client_id', 'app1'], ['sub', 'u1']]),
  };
  const grantItem = ['key', 'p*:oauth:{g:1}:grant', 'kind', 'grant', 'expires_at_ms', -1, 'created_ms', -1, 'fields', { members: '3', client_id: 'app1' }];
  const expected = { key: 'oauth:{g:1}:at:ab', kind: 'token', expiresAtMs: 1700000060000, createdMs: 1700000000000, fields: { client_id: 'app1', sub: 'u1' } };

  it('reads an OAUTH.SCAN step alike in RESP2 and RESP3, without the prefix, -1 as null', async () => {
    for (const item of [resp2Item, resp3Item]) {
      const { oauth, sent } = fake(['17', [item, grantItem]], 'p*:');
      const page = await oauth.scan('0', { match: 'oauth:*', count: 100, kind: 'token', clientId: 'app1', subject: 'u1' });
      assert.deepEqual(page, {
        cursor: '17',
        records: [expected, { key: 'oauth:{g:1}:grant', kind: 'grant', expiresAtMs: null, createdMs: null, fields: { members: '3', client_id: 'app1' } }],
      });
      assert.deepEqual(sent[0], ['OAUTH.SCAN', '0', 'MATCH', 'p\\*:oauth:*', 'COUNT', '100', 'KIND', 'token', 'CLIENT', 'app1', 'SUBJECT', 'u1']);
    }
    const { oauth, sent } = fake(['0', []]);
    assert.deepEqual(await oauth.scan('5'), { cursor: '0', records: [] });
    assert.deepEqual(sent[0], ['OAUTH.SCAN', '5']);
    assert.deepEqual(await oauth.primaries(), ['']);
    await assert.rejects(oauth.scan('0', { node: '10.0.0.1:7000' }), InvalidRequest);
  });

  /** A transport with two primaries, each answering its own replies in turn. */
  function cluster(replies: Record<string, unknown[]>) {
    const sent: Array<[string, string[]]> = [];
    const primaries: Primary[] = Object.keys(replies).map((address) => ({
      address,
      send: async (args) => {
        sent.push([address, args]);
        const reply = replies[address].shift();
        if (reply instanceof Error) throw reply;
        return reply;
      },
    }));
    const transport: Transport = { send: async () => assert.fail('sent without a node'), primaries: async () => primaries };
    return { oauth: new OAuthClient(transport), sent };
  }

  it('records() walks every primary to cursor 0; scan() in Cluster needs a node', async () => {
    const { oauth, sent } = cluster({ a: [['9', []], ['0', [resp2Item]]], b: [['0', [resp3Item]]] });
    const keys: string[] = [];
    for await (const record of oauth.records({ kind: 'token' })) keys.push(record.key);
    assert.deepEqual(keys, ['p*:oauth:{g:1}:at:ab', 'p*:oauth:{g:1}:at:ab']);
    assert.deepEqual(sent.map(([node, args]) => `${node} ${args.join(' ')}`), ['a OAUTH.SCAN 0 KIND token', 'a OAUTH.SCAN 9 KIND token', 'b OAUTH.SCAN 0 KIND token']);
    assert.deepEqual(await oauth.primaries(), ['a', 'b']);
    await assert.rejects(oauth.scan('0'), (err: unknown) => err instanceof InvalidRequest && /scan needs \{ node \}/.test(err.message));
  });

  it('purgeClient sums every step of every primary by kind; NOPERM is NoPerm', async () => {
    const step = (cursor: string, token: number, grant: number) => [cursor, ['code', 0, 'redeemed_code', 0, 'token', token, 'refresh', 0, 'rotated_refresh', 0, 'client', 0, 'state', 0, 'grant', grant]];
    const { oauth, sent } = cluster({ a: [step('3', 1, 0), step('0', 2, 1)], b: [[`0`, { token: 4, client: 1 }]] });
    assert.deepEqual(await oauth.purgeClient('app1', { count: 1000 }), { code: 0, redeemed_code: 0, token: 7, refresh: 0, rotated_refresh: 0, client: 1, state: 0, grant: 1 });
    assert.deepEqual(sent[0], ['a', ['OAUTH.PURGECLIENT', 'app1', '0', 'COUNT', '1000']]);
    const refused = cluster({ a: [new ReplyError("NOPERM this user has no permissions to delete one of the client's keys; nothing was deleted")] });
    await assert.rejects(refused.oauth.purgeClient('app1'), (err: unknown) => err instanceof NoPerm && err instanceof ServerError && err.code === 'NOPERM');
  });

  it('census sums the counts and subjects, takes the fewest passes and the oldest age', async () => {
    const info = (passes: number, age: number, token: number, subjects: number) =>
      ['# oauth_census', 'oauth_census_batch:1000', `oauth_census_passes:${passes}`, `oauth_census_age_ms:${age}`, 'oauth_census_duration_ms:2', 'oauth_census_keys:10',
        'oauth_records_code:1', 'oauth_records_redeemed_code:0', `oauth_records_token:${token}`, 'oauth_records_refresh:2', 'oauth_records_rotated_refresh:0',
        'oauth_records_client:1', 'oauth_records_state:0', 'oauth_records_grant:1', `oauth_subjects:${subjects}`, ''].join('\r\n');
    const { oauth } = cluster({ a: [info(7, 40, 3, 2)], b: [new String(info(5, 90, 4, 1))] });
    assert.deepEqual(await oauth.census(), {
      counts: { code: 2, redeemed_code: 0, token: 7, refresh: 4, rotated_refresh: 0, client: 2, state: 0, grant: 2 },
      subjects: 3, keys: 20, passes: 5, ageMs: 90, durationMs: 2, nodes: 2,
    });
    const fresh = cluster({ a: [info(0, -1, 0, 0)], b: [info(1, 5, 0, 0)] });
    assert.equal((await fresh.oauth.census()).ageMs, null);
    await assert.rejects(cluster({ a: ['# oauth_census\r\n'] }).oauth.census(), ServerError);
  });
});

describe('rate-limit headers', () => {
  it('allowed: RateLimit-* only', () => {
    assert.deepEqual(new RateLimitResult([0, 3, 2, -1, 60]).headers(), { 'RateLimit-Limit': '3', 'RateLimit-Remaining': '2', 'RateLimit-Reset': '60' });
  });
  it('refused: Retry-After too', () => {
    const r = new RateLimitResult([1, 5, 0, 2, 10]);
    assert.deepEqual({ ...r }, { limited: true, limit: 5, remaining: 0, retryAfter: 2, resetAfter: 10 });
    assert.deepEqual(r.headers(), { 'RateLimit-Limit': '5', 'RateLimit-Remaining': '0', 'RateLimit-Reset': '10', 'Retry-After': '2' });
  });
  it('refused for ever (cost above the limit): no Retry-After', () => {
    assert.equal(new RateLimitResult([1, 3, 0, -1, 60]).headers()['Retry-After'], undefined);
  });
});

describe('keys', () => {
  const keys = new Keys();
  it('SHA-256 in lowercase hex', () => {
    assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });

  it('by grant: one hash tag per authorization, tokens carry it', () => {
    const grant = keys.newGrant('7f3a');
    const token = grant.newToken();
    assert.match(token, /^7f3a\.[A-Za-z0-9_-]{43}$/);
    assert.equal(grant.accessToken(token), `oauth:{g:7f3a}:at:${sha256Hex(token)}`);
    assert.equal(grant.refreshToken(token), `oauth:{g:7f3a}:rt:${sha256Hex(token)}`);
    assert.equal(grant.code(token), `oauth:{g:7f3a}:code:${sha256Hex(token)}`);
    assert.equal(grant.grant, 'oauth:{g:7f3a}:grant');
    assert.deepEqual(grant.cutoffs, []);
    assert.equal(keys.fromToken(token)?.accessToken(token), grant.accessToken(token));
  });

  it('by subject: cutoff keys share the slot', () => {
    const grant = keys.newSubjectGrant('u42', '7f3a');
    const token = grant.newToken();
    assert.match(token, /^u42\.7f3a\./);
    assert.equal(grant.accessToken(token), `oauth:{u:u42}:g:7f3a:at:${sha256Hex(token)}`);
    assert.equal(grant.grant, 'oauth:{u:u42}:g:7f3a:grant');
    assert.deepEqual(grant.cutoffs, ['oauth:{u:u42}:cutoff']);
    assert.equal(keys.clientCutoff('u42', 'app1'), 'oauth:{u:u42}:cutoff:app1');
    assert.equal(slotOf(grant.grant), slotOf(grant.cutoffs[0]));
    assert.equal(keys.fromToken(token)?.grant, grant.grant);
  });

  it('fromToken: undefined for a malformed string', () => {
    for (const bad of ['', 'nodot', 'a.b.c.d', 'a..b', 'a{b}.x', 'ü.x']) assert.equal(keys.fromToken(bad), undefined, bad);
  });

  it('states and clients', () => {
    assert.equal(keys.state('xyz'), `oauth:state:${sha256Hex('xyz')}`);
    assert.equal(keys.client('app1'), 'oauth:client:app1');
    assert.equal(new Keys('as1').client('app1'), 'as1:client:app1');
    assert.throws(() => keys.newGrant('a:b'), InvalidRequest);
    assert.throws(() => new Keys('{x}'), InvalidRequest);
  });
});

describe('slots and prefix', () => {
  it('hashedPart reads the hash tag as Redis does', () => {
    assert.equal(hashedPart('oauth:{g:1}:at'), 'g:1');
    assert.equal(hashedPart('{}{a}'), '{}{a}');
    assert.equal(hashedPart('a{b'), 'a{b');
    assert.equal(hashedPart('{{a}}'), '{a');
  });

  it('the prefix reaches every key and must not change slots', async () => {
    const { oauth, sent } = fake(['client_id', 'c', '_refresh_key', 'p:new', '_access_key', 'p:at', '_replayed', 0], 'p:');
    const rotated = await oauth.rotate({ oldKey: 'old', newKey: 'new', ttl: 60, issue: { key: 'at', ttl: 60 }, grace: 5, cutoff: ['c1', 'c2'] });
    assert.deepEqual(rotated, { fields: { client_id: 'c' }, refreshKey: 'new', accessKey: 'at', replayed: false });
    assert.deepEqual(sent[0], ['OAUTH.ROTATE', 'p:old', 'p:new', '60', 'ISSUE', 'p:at', '60', 'GRACE', '5', 'CUTOFF', '2', 'p:c1', 'p:c2']);
    assert.throws(() => new OAuthClient({ send: async () => null }, { prefix: 'a{b}' }), /prefix must not contain/);
  });
});

describe('ioredis Cluster routing', () => {
  function fakeCluster(nodeReply: () => Promise<unknown>, status = 'ready') {
    const calls: string[] = [];
    const node: IoredisClient = { options: { host: '127.0.0.1', port: 7000 }, call: async () => (calls.push('node'), nodeReply()) };
    const cluster = Object.assign(new EventEmitter(), {
      isCluster: true,
      status,
      slots: [] as string[][],
      call: async () => (calls.push('cluster'), 7),
      nodes: () => [node],
      connect: async () => undefined,
    });
    cluster.slots[slotOf('k')] = ['127.0.0.1:7000'];
    return { cluster: cluster as IoredisCluster & EventEmitter, calls };
  }

  it('sends to the master of the key, and lets ioredis follow a redirection after a topology change', async () => {
    const ok = fakeCluster(async () => 3);
    assert.equal(await OAuthClient.fromIoredis(ok.cluster).revokeGrant('k'), 3);
    assert.deepEqual(ok.calls, ['node']);
    const moved = fakeCluster(async () => Promise.reject(new Error('MOVED 1 127.0.0.1:7001')));
    assert.equal(await OAuthClient.fromIoredis(moved.cluster).revokeGrant('k'), 7);
    assert.deepEqual(moved.calls, ['node', 'cluster']);
    await assert.rejects(OAuthClient.fromIoredis(moved.cluster).wait('k', 1, 10), /^Error: MOVED/);
  });

  it('waits for the cluster to be ready before reading its slots table', async () => {
    const { cluster, calls } = fakeCluster(async () => 1, 'connecting');
    const pending = OAuthClient.fromIoredis(cluster).wait('k', 1, 10);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls, []);
    cluster.status = 'ready';
    cluster.emit('ready');
    assert.equal(await pending, 1);
  });
});

describe('docs', () => {
  it('docs/clients.md shows examples/token-endpoint.ts verbatim', () => {
    const root = join(__dirname, '..', '..');
    const example = readFileSync(join(root, 'examples', 'token-endpoint.ts'), 'utf8');
    const page = readFileSync(join(root, '..', '..', 'docs', 'clients.md'), 'utf8');
    assert.ok(page.includes(`\`\`\`ts\n${example}\`\`\``));
  });
});
