/** The behaviour every client case must show, standalone and in Cluster. */

import assert from 'node:assert/strict';
import { it } from 'node:test';
import {
  createPkcePair,
  Exists,
  InvalidGrant,
  InvalidRequest,
  InvalidScope,
  Keys,
  OAuthClient,
  OAuthError,
  randomId,
  s256Challenge,
  WrongType,
} from 'redis-oauth';
import { randomBytes } from 'node:crypto';
import { tokenEndpoint } from '../examples/token-endpoint';
import { Connection, ConnectOptions } from './cases';

export interface Context {
  conn: Connection;
  /** A second connection of the same case with other options; closed after the test. */
  connect(options: ConnectOptions): Promise<Connection>;
}

const keys = new Keys();
const now = (): number => Math.floor(Date.now() / 1000);

function near(actual: number | undefined, expected: number, slack = 5): void {
  assert.ok(actual !== undefined && Math.abs(actual - expected) <= slack, `${actual} is not within ${slack} of ${expected}`);
}

/** An assert.rejects predicate: the error is an instance of `Class` (an OAuthError) with these properties. */
function oauthError(Class: new (...args: never[]) => OAuthError, props: Partial<Pick<OAuthError, 'code' | 'error' | 'httpStatus' | 'description'>>) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof Class, `expected ${Class.name}, got ${String(err)}`);
    assert.ok(err instanceof OAuthError);
    for (const [name, value] of Object.entries(props)) assert.equal(err[name as keyof typeof props], value, name);
    return true;
  };
}

async function exists(conn: Connection, ...list: string[]): Promise<number> {
  let total = 0;
  for (const key of list) total += Number(await conn.raw(['EXISTS', key], key));
  return total;
}

/** A code saved for a fresh grant, with everything needed to redeem it. */
async function savedCode(oauth: OAuthClient, extra: Record<string, string> = {}) {
  const grant = keys.newGrant();
  const code = grant.newToken();
  const pkce = createPkcePair();
  await oauth.saveCode(grant.code(code), 600, {
    client_id: 'app1',
    redirect_uri: 'https://app/cb',
    code_challenge: pkce.challenge,
    code_challenge_method: 'S256',
    sub: 'u42',
    scope: 'read write',
    ...extra,
  });
  const at = grant.accessToken(grant.newToken());
  const rt = grant.refreshToken(grant.newToken());
  const exchange = {
    key: grant.code(code),
    clientId: 'app1',
    redirectUri: 'https://app/cb',
    codeVerifier: pkce.verifier,
    issue: { key: at, ttl: 3600 },
    refresh: { key: rt, ttl: 86400 },
    grant: grant.grant,
  };
  return { grant, at, rt, exchange };
}

const COMMANDS = [
  'SAVECODE', 'EXCHANGE', 'SAVETOKEN', 'INTROSPECT', 'REVOKE', 'ROTATE', 'REVOKEGRANT', 'REVOKEBEFORE', 'SAVECLIENT',
  'VERIFYCLIENT', 'GETCLIENT', 'DELETECLIENT', 'SAVESTATE', 'CONSUMESTATE', 'RATELIMIT', 'RATELIMITALL', 'THROTTLE', 'HELP',
];

export function flows(ctx: () => Context): void {
  it('OAUTH.HELP lists every command', async () => {
    const lines = await ctx().conn.oauth.help();
    for (const name of COMMANDS) assert.ok(lines.some((l) => l.startsWith(`OAUTH.${name}`)), name);
  });

  it('code flow: save, exchange with PKCE S256, introspect; a replay is refused and revokes what was issued', async () => {
    const { conn } = ctx();
    const { grant, at, rt, exchange } = await savedCode(conn.oauth);
    const fields = await conn.oauth.exchange({ ...exchange, fields: { jti: 'j-1' } });
    assert.deepEqual(fields, { client_id: 'app1', redirect_uri: 'https://app/cb', sub: 'u42', scope: 'read write' });

    const info = await conn.oauth.introspect(at);
    assert.equal(info.active, true);
    assert.ok(info.active);
    assert.deepEqual(info.fields, { client_id: 'app1', redirect_uri: 'https://app/cb', sub: 'u42', scope: 'read write', jti: 'j-1' });
    near(info.exp, now() + 3600);
    near(info.iat, now());

    await assert.rejects(
      conn.oauth.exchange(exchange),
      oauthError(InvalidGrant, { code: 'INVALID_GRANT', error: 'invalid_grant', httpStatus: 400, description: 'authorization code already used' }),
    );
    assert.deepEqual(await conn.oauth.introspect(at), { active: false });
    assert.equal(await exists(conn, at, rt, grant.grant), 0);
  });

  it('exchange: a wrong client, redirect URI or verifier is InvalidGrant and counts an attempt', async () => {
    const { conn } = ctx();
    const { exchange } = await savedCode(conn.oauth);
    await assert.rejects(conn.oauth.exchange({ ...exchange, clientId: 'app2' }), oauthError(InvalidGrant, { httpStatus: 400 }));
    await assert.rejects(conn.oauth.exchange({ ...exchange, codeVerifier: createPkcePair().verifier }), oauthError(InvalidGrant, {}));
    assert.equal(String(await conn.raw(['HGET', exchange.key, '_attempts'], exchange.key)), '2');
    assert.equal((await conn.oauth.exchange(exchange)).client_id, 'app1');
  });

  it('refresh rotation: a retry inside the grace window gets the same successor; reuse revokes the grant', async () => {
    const { conn } = ctx();
    const { grant, rt, exchange } = await savedCode(conn.oauth);
    await conn.oauth.exchange(exchange);
    const rt1 = grant.refreshToken(grant.newToken());
    const at1 = grant.accessToken(grant.newToken());
    const first = await conn.oauth.rotate({ oldKey: rt, newKey: rt1, ttl: 86400, issue: { key: at1, ttl: 600 }, grace: 30, fields: { scope: 'read' } });
    assert.deepEqual(first, {
      fields: { client_id: 'app1', redirect_uri: 'https://app/cb', sub: 'u42', scope: 'read' },
      refreshKey: rt1,
      accessKey: at1,
      replayed: false,
    });

    const retry = await conn.oauth.rotate({
      oldKey: rt,
      newKey: grant.refreshToken(grant.newToken()),
      ttl: 86400,
      issue: { key: grant.accessToken(grant.newToken()), ttl: 600 },
      grace: 30,
    });
    assert.deepEqual(retry, { ...first, replayed: true });

    const rt2 = grant.refreshToken(grant.newToken());
    const second = await conn.oauth.rotate({ oldKey: rt1, newKey: rt2, ttl: 86400 });
    assert.equal(second.refreshKey, rt2);
    assert.equal(second.accessKey, undefined);
    assert.equal(second.replayed, false);

    await assert.rejects(
      conn.oauth.rotate({ oldKey: rt, newKey: grant.refreshToken(grant.newToken()), ttl: 86400, grace: 30 }),
      oauthError(InvalidGrant, { description: 'refresh token reused; its grant is revoked' }),
    );
    assert.equal(await exists(conn, grant.grant, rt1, rt2, at1), 0);
    await assert.rejects(
      conn.oauth.rotate({ oldKey: rt2, newKey: grant.refreshToken(grant.newToken()), ttl: 86400 }),
      oauthError(InvalidGrant, { description: 'refresh token not found or expired' }),
    );
  });

  it('rotation cannot widen the scope: InvalidScope', async () => {
    const { conn } = ctx();
    const { grant, rt, exchange } = await savedCode(conn.oauth);
    await conn.oauth.exchange(exchange);
    await assert.rejects(
      conn.oauth.rotate({ oldKey: rt, newKey: grant.refreshToken(grant.newToken()), ttl: 60, fields: { scope: 'read admin' } }),
      oauthError(InvalidScope, { code: 'INVALID_SCOPE', error: 'invalid_scope', httpStatus: 400 }),
    );
  });

  it('REVOKEBEFORE cuts off introspection and rotation of a subject, not later tokens', async () => {
    const { conn } = ctx();
    const subject = `s${randomId(4)}`;
    const grant = keys.newSubjectGrant(subject);
    const cutoff = [...grant.cutoffs, keys.clientCutoff(subject, 'app1')];
    const at = grant.accessToken(grant.newToken());
    await conn.oauth.saveToken(at, 3600, { sub: subject, client_id: 'app1' });
    assert.equal((await conn.oauth.introspect(at, { cutoff })).active, true);

    const code = grant.newToken();
    const pkce = createPkcePair();
    await conn.oauth.saveCode(grant.code(code), 60, { client_id: 'app1', code_challenge: pkce.challenge, code_challenge_method: 'S256' });
    const rt = grant.refreshToken(grant.newToken());
    await conn.oauth.exchange({ key: grant.code(code), clientId: 'app1', codeVerifier: pkce.verifier, refresh: { key: rt, ttl: 600 }, grant: grant.grant });

    const at2 = grant.accessToken(grant.newToken());
    const cut = await conn.oauth.revokeBefore(grant.cutoffs[0]);
    near(cut / 1000, Date.now() / 1000);
    assert.deepEqual(await conn.oauth.introspect(at, { cutoff }), { active: false });
    assert.equal((await conn.oauth.introspect(at)).active, true, 'a check without the cutoff key still passes');
    await assert.rejects(
      conn.oauth.rotate({ oldKey: rt, newKey: grant.refreshToken(grant.newToken()), ttl: 60, cutoff }),
      oauthError(InvalidGrant, { description: 'refresh token revoked' }),
    );
    await new Promise((resolve) => setTimeout(resolve, 2));
    await conn.oauth.saveToken(at2, 3600, { sub: subject });
    assert.equal((await conn.oauth.introspect(at2, { cutoff })).active, true);
  });

  it('revocation: unknown keys count 0, a refresh token takes its access tokens along, REVOKEGRANT ends the grant', async () => {
    const { conn } = ctx();
    const { grant, at, rt, exchange } = await savedCode(conn.oauth);
    await conn.oauth.exchange(exchange);
    const extra = grant.accessToken(grant.newToken());
    await conn.oauth.saveToken(extra, 600, { sub: 'u42' }, { grant: grant.grant });
    assert.equal(await conn.oauth.revoke(grant.accessToken(grant.newToken())), 0);
    assert.equal(await conn.oauth.revoke([]), 0);
    assert.equal(await conn.oauth.revoke([extra, extra]), 1);
    assert.equal(await conn.oauth.revoke(rt), 2);
    assert.equal(await exists(conn, at, rt), 0);
    assert.equal(await conn.oauth.revokeGrant(grant.grant), 1, 'the code tombstone is left');
    assert.equal(await conn.oauth.revokeGrant(grant.grant), 0);

    const other = await savedCode(conn.oauth);
    await conn.oauth.exchange(other.exchange);
    assert.equal(await conn.oauth.revokeGrant(other.grant.grant), 3);
  });

  it('introspection of an unknown key or of another kind of record is only active: false', async () => {
    const { conn } = ctx();
    const { exchange } = await savedCode(conn.oauth);
    assert.deepEqual(await conn.oauth.introspect(`oauth:{g:${randomId()}}:at:none`), { active: false });
    assert.deepEqual(await conn.oauth.introspect(exchange.key), { active: false });
  });

  it('client registrations: save, verify, get without secret, delete', async () => {
    const { conn } = ctx();
    const key = keys.client(`app-${randomId()}`);
    const secret = randomId(24);
    const saved = await conn.oauth.saveClient(key, { client_id: 'app1', client_secret: secret, redirect_uris: 'https://app/cb' }, { ttl: 86400 });
    near(saved.clientSecretExpiresAt, now() + 86400);
    assert.equal(await conn.oauth.verifyClient(key, secret), true);
    assert.equal(await conn.oauth.verifyClient(key, `${secret}x`), false);
    assert.equal(await conn.oauth.verifyClient(keys.client('unknown'), secret), false);
    assert.deepEqual(await conn.oauth.getClient(key), {
      fields: { client_id: 'app1', redirect_uris: 'https://app/cb' },
      clientSecretExpiresAt: saved.clientSecretExpiresAt,
    });
    await assert.rejects(
      conn.oauth.saveClient(key, { client_id: 'app1', client_secret: 'short' }),
      oauthError(InvalidRequest, { description: 'client_secret must be at least 16 bytes of a high-entropy secret' }),
    );
    const forever = await conn.oauth.saveClient(key, { client_id: 'app1' });
    assert.ok(forever.clientSecretExpiresAt > now() + 86400 * 365);
    assert.equal(await conn.oauth.verifyClient(key, secret), false, 'the replacement has no secret');
    assert.equal(await conn.oauth.deleteClient(key), true);
    assert.equal(await conn.oauth.deleteClient(key), false);
    assert.equal(await conn.oauth.getClient(key), null);
  });

  it('state is consumed once', async () => {
    const { conn } = ctx();
    const key = keys.state(randomId(16));
    await conn.oauth.saveState(key, 300, { redirect_uri: 'https://app/cb', nonce: 'n-1' });
    assert.deepEqual(await conn.oauth.consumeState(key), { redirect_uri: 'https://app/cb', nonce: 'n-1' });
    assert.equal(await conn.oauth.consumeState(key), null);
    await conn.oauth.saveState(key, 300, {});
    assert.deepEqual(await conn.oauth.consumeState(key), {});
  });

  it('fixed-window RATELIMIT and its headers', async () => {
    const { oauth } = ctx().conn;
    const key = `rate_limit:oauth_token:${randomId()}`;
    const first = await oauth.rateLimit(key, { limit: 3, window: 60 });
    assert.deepEqual({ ...first }, { limited: false, limit: 3, remaining: 2, retryAfter: -1, resetAfter: 60 });
    assert.deepEqual(first.headers(), { 'RateLimit-Limit': '3', 'RateLimit-Remaining': '2', 'RateLimit-Reset': '60' });
    assert.equal((await oauth.rateLimit(key, { limit: 3, window: 60, cost: 2 })).remaining, 0);
    const refused = await oauth.rateLimit(key, { limit: 3, window: 60 });
    assert.deepEqual({ ...refused }, { limited: true, limit: 3, remaining: 0, retryAfter: 60, resetAfter: 60 });
    assert.deepEqual(refused.headers(), { 'RateLimit-Limit': '3', 'RateLimit-Remaining': '0', 'RateLimit-Reset': '60', 'Retry-After': '60' });
    const peek = await oauth.rateLimit(key, { limit: 3, window: 60, cost: 0 });
    assert.equal(peek.limited, false);
    assert.equal(peek.remaining, 0);
    const never = await oauth.rateLimit(key, { limit: 3, window: 60, cost: 4 });
    assert.equal(never.limited, true);
    assert.equal(never.retryAfter, -1);
    assert.equal(never.headers()['Retry-After'], undefined, 'no Retry-After for a request that can never pass');
  });

  it('sliding-window RATELIMIT', async () => {
    const { oauth } = ctx().conn;
    const key = `rate_limit:login:${randomId()}`;
    const first = await oauth.rateLimit(key, { limit: 3, window: 60, sliding: true });
    assert.equal(first.limited, false);
    assert.equal(first.remaining, 2);
    assert.ok(first.resetAfter > 60 && first.resetAfter <= 120, String(first.resetAfter));
    await oauth.rateLimit(key, { limit: 3, window: 60, sliding: true, cost: 2 });
    const refused = await oauth.rateLimit(key, { limit: 3, window: 60, sliding: true });
    assert.equal(refused.limited, true);
    assert.ok(refused.retryAfter >= 1 && refused.retryAfter <= 120);
    assert.equal(refused.headers()['Retry-After'], String(refused.retryAfter));
    await assert.rejects(oauth.rateLimit(key, { limit: 3, window: 60 }), oauthError(WrongType, { httpStatus: 500, error: 'server_error' }));
  });

  it('RATELIMITALL counts all or nothing and names the deciding limit', async () => {
    const { oauth } = ctx().conn;
    const tag = randomId();
    const limits = [
      { key: `rl:{u:${tag}}:ip:10.0.0.7`, limit: 5, window: 60 },
      { key: `rl:{u:${tag}}:user`, limit: 3, window: 3600 },
    ];
    const first = await oauth.rateLimitAll(limits);
    assert.deepEqual({ ...first }, { limited: false, limit: 3, remaining: 2, retryAfter: -1, resetAfter: 3600, decidingIndex: 1, decidingKey: limits[1].key });
    await oauth.rateLimitAll(limits, { cost: 2 });
    const refused = await oauth.rateLimitAll(limits);
    assert.deepEqual({ ...refused }, { limited: true, limit: 3, remaining: 0, retryAfter: 3600, resetAfter: 3600, decidingIndex: 1, decidingKey: limits[1].key });
    assert.deepEqual(refused.headers(), { 'RateLimit-Limit': '3', 'RateLimit-Remaining': '0', 'RateLimit-Reset': '3600', 'Retry-After': '3600' });
    const ip = await oauth.rateLimit(limits[0].key, { limit: 5, window: 60, cost: 0 });
    assert.equal(ip.remaining, 2, 'the refused request was not counted against the first limit');
    await assert.rejects(oauth.rateLimitAll([]), InvalidRequest);
  });

  it('THROTTLE (GCRA) and its headers', async () => {
    const { oauth } = ctx().conn;
    const key = `rl:token:${randomId()}`;
    const spec = { maxBurst: 4, count: 30, period: 60 };
    assert.deepEqual({ ...(await oauth.throttle(key, spec)) }, { limited: false, limit: 5, remaining: 4, retryAfter: -1, resetAfter: 2 });
    assert.deepEqual({ ...(await oauth.throttle(key, { ...spec, cost: 3 })) }, { limited: false, limit: 5, remaining: 1, retryAfter: -1, resetAfter: 8 });
    await oauth.throttle(key, spec);
    const refused = await oauth.throttle(key, spec);
    assert.deepEqual({ ...refused }, { limited: true, limit: 5, remaining: 0, retryAfter: 2, resetAfter: 10 });
    assert.deepEqual(refused.headers(), { 'RateLimit-Limit': '5', 'RateLimit-Remaining': '0', 'RateLimit-Reset': '10', 'Retry-After': '2' });
    assert.equal((await oauth.throttle(key, { ...spec, cost: 6 })).retryAfter, -1);
  });

  it('error classes: Exists, WrongType, InvalidRequest carry the OAuth error and HTTP status', async () => {
    const { conn } = ctx();
    const { exchange } = await savedCode(conn.oauth);
    const pkce = createPkcePair();
    const fields = { client_id: 'app1', code_challenge: pkce.challenge, code_challenge_method: 'S256' };
    await assert.rejects(
      conn.oauth.saveCode(exchange.key, 600, fields),
      oauthError(Exists, { code: 'EXISTS', error: 'server_error', httpStatus: 500, description: 'key already exists' }),
    );
    await assert.rejects(
      conn.oauth.consumeState(exchange.key),
      oauthError(WrongType, { code: 'WRONGTYPE', httpStatus: 500, description: 'key does not hold a state record; it holds another kind of record or a plain hash' }),
    );
    await assert.rejects(
      conn.oauth.saveCode(keys.newGrant().code('x'), 3600, fields),
      oauthError(InvalidRequest, { code: 'INVALID_REQUEST', error: 'invalid_request', httpStatus: 400, description: 'ttl must be an integer from 1 to 600' }),
    );
    await assert.rejects(conn.oauth.saveToken(keys.newGrant().accessToken('x'), 60, { exp: '1' }), InvalidRequest);
  });

  it('prefix: applied to every module key, stripped from the keys a reply names', async () => {
    const { conn, connect } = ctx();
    const prefixed = await connect({ prefix: 'tenant1:' });
    const { oauth } = prefixed;
    const { grant, at, rt, exchange } = await savedCode(oauth);
    await oauth.exchange(exchange);
    assert.equal(await exists(conn, `tenant1:${exchange.key}`, `tenant1:${at}`, `tenant1:${rt}`, `tenant1:${grant.grant}`), 4);
    assert.equal(await exists(conn, exchange.key, at, rt, grant.grant), 0);
    const rt1 = grant.refreshToken(grant.newToken());
    const at1 = grant.accessToken(grant.newToken());
    const rotated = await oauth.rotate({ oldKey: rt, newKey: rt1, ttl: 600, issue: { key: at1, ttl: 60 } });
    assert.equal(rotated.refreshKey, rt1);
    assert.equal(rotated.accessKey, at1);
    assert.equal((await oauth.introspect(at1)).active, true);
    assert.equal((await conn.oauth.introspect(at1)).active, false, 'the unprefixed key does not exist');

    const subject = `s${randomId(4)}`;
    const cutoff = keys.subjectCutoff(subject);
    await oauth.revokeBefore(cutoff);
    assert.equal(await exists(conn, `tenant1:${cutoff}`), 1);
    const client = keys.client(randomId());
    await oauth.saveClient(client, { client_id: 'c' });
    assert.equal(await exists(conn, `tenant1:${client}`), 1);
    assert.equal(await oauth.deleteClient(client), true);
    const state = keys.state(randomId());
    await oauth.saveState(state, 60, {});
    assert.equal(await exists(conn, `tenant1:${state}`), 1);
    const tag = randomId();
    const limits = [{ key: `rl:{${tag}}:a`, limit: 2, window: 60 }, { key: `rl:{${tag}}:b`, limit: 1, window: 60 }];
    assert.equal((await oauth.rateLimitAll(limits)).decidingKey, limits[1].key);
    await oauth.rateLimit(`rl:${tag}:c`, { limit: 1, window: 60 });
    await oauth.throttle(`rl:${tag}:d`, { maxBurst: 1, count: 1, period: 60 });
    assert.equal(await exists(conn, ...['a', 'b'].map((s) => `tenant1:rl:{${tag}}:${s}`), `tenant1:rl:${tag}:c`, `tenant1:rl:${tag}:d`), 4);
    assert.equal(await oauth.revoke(at1), 1);
    assert.equal(await oauth.revokeGrant(grant.grant), 4, 'code tombstone, at, rt tombstone, rt1');
    assert.equal(await exists(conn, `tenant1:${grant.grant}`), 0);
  });

  it('PKCE: a malformed verifier or plain challenge is refused before anything is saved', async () => {
    const { conn } = ctx();
    const short = 'a'.repeat(30);
    assert.throws(() => s256Challenge(short), oauthError(InvalidRequest, { description: 'code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1); it has 30' }));
    const grant = keys.newGrant();
    const key = grant.code(grant.newToken());
    for (const challenge of [short, 'b'.repeat(129), `${'c'.repeat(42)}+`]) {
      await assert.rejects(conn.oauth.saveCode(key, 600, { client_id: 'app1', code_challenge: challenge, code_challenge_method: 'plain' }), (err: unknown) => {
        assert.ok(err instanceof InvalidRequest);
        assert.match(err.message, /^INVALID_REQUEST code_challenge must be 43 to 128 characters/);
        assert.ok(!err.message.includes(challenge));
        return true;
      });
    }
    assert.equal(await exists(conn, key), 0);

    const { exchange } = await savedCode(conn.oauth);
    await assert.rejects(conn.oauth.exchange({ ...exchange, codeVerifier: 'x'.repeat(42) }), oauthError(InvalidGrant, { code: 'INVALID_GRANT' }));
    assert.equal(await conn.raw(['HGET', exchange.key, '_attempts'], exchange.key), null, 'nothing was sent');
    assert.equal((await conn.oauth.exchange(exchange)).client_id, 'app1');
  });

  it('wait answers how many replicas acknowledged (none here)', async () => {
    assert.equal(await ctx().conn.oauth.wait(keys.newGrant().grant, 0, 10), 0);
  });

  it('the token endpoint example of docs/clients.md: code and refresh grants, retries, errors', async () => {
    const { conn } = ctx();
    const { oauth } = conn;
    const serverKey = randomBytes(32);
    const ip = `10.${randomId(6)}`;
    const clientId = `app-${randomId()}`;
    const secret = randomId(24);
    await oauth.saveClient(keys.client(clientId), { client_id: clientId, client_secret: secret, redirect_uris: 'https://app/cb' });
    const grant = keys.newGrant();
    const code = grant.newToken();
    const pkce = createPkcePair();
    await oauth.saveCode(grant.code(code), 60, { client_id: clientId, redirect_uri: 'https://app/cb', code_challenge: pkce.challenge, code_challenge_method: 'S256', scope: 'read write' });
    const form = { grant_type: 'authorization_code', code, redirect_uri: 'https://app/cb', code_verifier: pkce.verifier, client_id: clientId, client_secret: secret };

    assert.deepEqual(await tokenEndpoint(oauth, { ...form, client_secret: 'wrong' }, ip, serverKey), {
      status: 401,
      body: { error: 'invalid_client' },
      headers: { 'Cache-Control': 'no-store', 'RateLimit-Limit': '20', 'RateLimit-Remaining': '19', 'RateLimit-Reset': '60' },
    });
    const issued = await tokenEndpoint(oauth, form, ip, serverKey);
    assert.equal(issued.status, 200);
    assert.equal(issued.body.token_type, 'Bearer');
    assert.equal(issued.body.scope, 'read write');
    const accessToken = String(issued.body.access_token);
    assert.equal((await oauth.introspect(grant.accessToken(accessToken))).active, true);

    const replay = await tokenEndpoint(oauth, form, ip, serverKey);
    assert.deepEqual([replay.status, replay.body], [400, { error: 'invalid_grant', error_description: 'authorization code already used' }]);
    assert.equal((await oauth.introspect(grant.accessToken(accessToken))).active, false, 'the replay revoked the grant');

    const g2 = keys.newGrant();
    const code2 = g2.newToken();
    const pkce2 = createPkcePair();
    await oauth.saveCode(g2.code(code2), 60, { client_id: clientId, code_challenge: pkce2.challenge, code_challenge_method: 'S256', scope: 'read write' });
    const first = await tokenEndpoint(oauth, { ...form, code: code2, redirect_uri: undefined, code_verifier: pkce2.verifier }, ip, serverKey);
    assert.equal(first.status, 200);
    const refresh = { grant_type: 'refresh_token', refresh_token: String(first.body.refresh_token), client_id: clientId, client_secret: secret, scope: 'read' };
    const rotated = await tokenEndpoint(oauth, refresh, ip, serverKey);
    assert.equal(rotated.status, 200);
    assert.equal(rotated.body.scope, 'read');
    const retried = await tokenEndpoint(oauth, refresh, ip, serverKey);
    assert.deepEqual([retried.status, retried.body], [200, rotated.body], 'a retry inside the grace window gets the same tokens');
    const wider = await tokenEndpoint(oauth, { ...refresh, refresh_token: String(rotated.body.refresh_token), scope: 'read admin' }, ip, serverKey);
    assert.deepEqual([wider.status, wider.body.error], [400, 'invalid_scope']);
    assert.deepEqual((await tokenEndpoint(oauth, { ...refresh, grant_type: 'password' }, ip, serverKey)).body, { error: 'unsupported_grant_type' });
    assert.deepEqual((await tokenEndpoint(oauth, { ...refresh, refresh_token: 'not a token' }, ip, serverKey)).body, { error: 'invalid_grant' });

    for (let i = 0; i < 11; i++) await tokenEndpoint(oauth, { grant_type: 'password' }, ip, serverKey);
    const limited = await tokenEndpoint(oauth, form, ip, serverKey);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['Retry-After'], limited.headers['RateLimit-Reset']);
  });
}
