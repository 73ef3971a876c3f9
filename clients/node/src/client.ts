import {
  addCounts,
  Census,
  combineCensus,
  KindCounts,
  ListedRecord,
  nodeCensus,
  purgeStep,
  ScanOptions,
  ScanPage,
  scanPage,
  zeroCounts,
} from './admin';
import { fromReply, InvalidGrant, InvalidRequest, isReplyError } from './errors';
import { assertPkceSyntax } from './pkce';
import { RateLimitAllResult, RateLimitResult } from './ratelimit';
import { bool, Fields, int, ints, split, str, strs } from './replies';
import {
  hasLibraryKeyPrefix,
  IoredisClient,
  IoredisCluster,
  ioredisTransport,
  NodeRedisClient,
  NodeRedisCluster,
  nodeRedisTransport,
  Primary,
  Route,
  Transport,
} from './transport';

export interface ClientOptions {
  /**
   * Prepended to every key the package sends (codes, tokens, grants, cutoffs,
   * clients, states, rate-limit keys). Replies name keys without it. Must not contain
   * `{` or `}`, which would change the keys' hash slots.
   */
  prefix?: string;
}

/** A record to create: its key and lifetime in seconds. */
export interface Target {
  key: string;
  ttl: number;
}

export interface ExchangeOptions {
  /** The code's key. */
  key: string;
  clientId: string;
  /** The token request's `redirect_uri`; `''` (the default) if the authorization request had none. */
  redirectUri?: string;
  /** The PKCE `code_verifier`; `''` (the default) for none. */
  codeVerifier?: string;
  /** Create the access token. */
  issue?: Target;
  /** Create the refresh token (needs `grant`). */
  refresh?: Target;
  /** The grant set listing the code and the tokens. */
  grant?: string;
  /** Extra fields of the issued tokens (they override the code's fields of the same name). */
  fields?: Fields;
}

export interface RotateOptions {
  /** The presented refresh token's key. */
  oldKey: string;
  /** The successor's key. */
  newKey: string;
  /** The successor's lifetime in seconds. */
  ttl: number;
  /** Also create an access token. */
  issue?: Target;
  /** Seconds during which presenting `oldKey` again answers the same successor (a retry of a lost response). */
  grace?: number;
  /** Cutoff keys (OAUTH.REVOKEBEFORE) that refuse an older refresh token. */
  cutoff?: readonly string[];
  /** Fields to set on the successor and the access token; `scope` may only narrow. */
  fields?: Fields;
}

export interface RotateResult {
  /** The successor's fields. */
  fields: Fields;
  /** The successor refresh token's key (on a replay: the successor issued by the first rotation). */
  refreshKey: string;
  /** The access token's key, when one was issued. */
  accessKey?: string;
  /** True for a retry inside the grace window: nothing was created. */
  replayed: boolean;
}

/** RFC 7662: an inactive token has no other member. `exp` and `iat` are Unix seconds. */
export type Introspection = { active: true; fields: Fields; exp?: number; iat?: number } | { active: false };

export interface ClientRegistration {
  /** The registration's fields, without any secret material. */
  fields: Fields;
  /** RFC 7591: the registration's expiry, Unix seconds (never 0). */
  clientSecretExpiresAt: number;
}

export interface RateLimitOptions {
  /** Units allowed per window. */
  limit: number;
  /** The window, seconds. */
  window: number;
  /** Units this request costs (default 1; 0 peeks). */
  cost?: number;
  /** A sliding window instead of a fixed one. */
  sliding?: boolean;
}

export interface Limit {
  key: string;
  limit: number;
  window: number;
}

export interface ThrottleOptions {
  /** Units allowed at once above one: the bucket holds `maxBurst + 1`. */
  maxBurst: number;
  /** Units refilled per period. */
  count: number;
  /** Seconds. */
  period: number;
  /** Units this request takes (default 1; 0 peeks). */
  cost?: number;
}

/** The options of OAUTH.PURGECLIENT. */
export interface PurgeOptions {
  /** A SCAN `MATCH` glob on key names (the client's `prefix` is prepended). */
  match?: string;
  /** Keys looked at per step, 1 to 10000 (the module's default is 10). */
  count?: number;
}

/** A string that a SCAN `MATCH` glob matches literally. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

function fieldArgs(fields: Fields): string[] {
  const pairs = Object.entries(fields);
  return ['FIELDS', String(pairs.length), ...pairs.flat()];
}

function costArgs(cost: number | undefined): string[] {
  return cost === undefined ? [] : ['COST', String(cost)];
}

function checkPrefix(client: object, options: ClientOptions): ClientOptions {
  if (options.prefix === undefined && hasLibraryKeyPrefix(client)) {
    throw new Error(
      'this client has a keyPrefix, which its library does not apply to OAUTH.* keys: pass { prefix } as well (the same value keeps one key space, "" opts out)',
    );
  }
  return options;
}

/** The OAUTH.* commands of redis-oauth, over node-redis or ioredis, standalone or Cluster. */
export class OAuthClient {
  private readonly prefix: string;

  /**
   * Wrap a node-redis client or cluster (`createClient`, `createCluster`), versions 4
   * to 6, RESP2 or RESP3. node-redis 6's `keyPrefix` is not applied to OAUTH.* keys:
   * a client that has one must be given `prefix` explicitly.
   */
  static fromNodeRedis<Node>(client: NodeRedisClient | NodeRedisCluster<Node>, options: ClientOptions = {}): OAuthClient {
    return new OAuthClient(nodeRedisTransport(client), checkPrefix(client, options));
  }

  /**
   * Wrap an ioredis `Redis` or `Cluster`, versions 5 and 6. ioredis's `keyPrefix` is
   * not applied to OAUTH.* keys: a client that has one must be given `prefix`
   * explicitly (the same value keeps one key space).
   */
  static fromIoredis(client: IoredisClient | IoredisCluster, options: ClientOptions = {}): OAuthClient {
    return new OAuthClient(ioredisTransport(client), checkPrefix(client, options));
  }

  constructor(
    private readonly transport: Transport,
    options: ClientOptions = {},
  ) {
    this.prefix = options.prefix ?? '';
    if (/[{}]/.test(this.prefix)) throw new Error('prefix must not contain { or }: it would change the hash slot of every key');
  }

  private key(key: string): string {
    return this.prefix + key;
  }

  private unprefixed(key: string): string {
    return key.startsWith(this.prefix) ? key.slice(this.prefix.length) : key;
  }

  private async run(args: string[], route: Route): Promise<unknown> {
    try {
      return await this.transport.send(args, route);
    } catch (err) {
      throw isReplyError(err) ? fromReply(err) : err;
    }
  }

  /** The primaries: the transport's, or the one server of a standalone connection. */
  private async nodes(): Promise<Primary[]> {
    if (this.transport.primaries) return this.transport.primaries();
    return [{ address: '', send: (args) => this.transport.send(args, { readonly: false }) }];
  }

  private async runOn(node: Primary, args: string[]): Promise<unknown> {
    try {
      return await node.send(args);
    } catch (err) {
      throw isReplyError(err) ? fromReply(err) : err;
    }
  }

  /** MATCH (under the prefix) and COUNT. */
  private stepArgs(options: PurgeOptions): string[] {
    const args: string[] = [];
    const match = this.prefix === '' ? options.match : globEscape(this.prefix) + (options.match ?? '*');
    if (match !== undefined) args.push('MATCH', match);
    if (options.count !== undefined) args.push('COUNT', String(options.count));
    return args;
  }

  private async scanStep(node: Primary, cursor: string, options: ScanOptions): Promise<ScanPage> {
    const args = ['OAUTH.SCAN', cursor, ...this.stepArgs(options)];
    if (options.kind !== undefined) args.push('KIND', options.kind);
    if (options.clientId !== undefined) args.push('CLIENT', options.clientId);
    if (options.subject !== undefined) args.push('SUBJECT', options.subject);
    return scanPage(await this.runOn(node, args), (key) => this.unprefixed(key));
  }

  private write(args: string[]): Promise<unknown> {
    return this.run(args, { key: args[1], readonly: false });
  }

  private read(args: string[]): Promise<unknown> {
    return this.run(args, { key: args[1], readonly: true });
  }

  /** OAUTH.SAVECODE: store an authorization code with its PKCE challenge. Refuses a malformed `code_challenge` before sending. */
  async saveCode(key: string, ttl: number, fields: Fields): Promise<void> {
    if (fields.code_challenge !== undefined) assertPkceSyntax(fields.code_challenge, 'code_challenge');
    await this.write(['OAUTH.SAVECODE', this.key(key), String(ttl), ...fieldArgs(fields)]);
  }

  /**
   * OAUTH.EXCHANGE: redeem a code exactly once, optionally creating the tokens and
   * their grant. Answers the code's fields (without the PKCE challenge). A malformed
   * `codeVerifier` is refused (`InvalidGrant`) before sending.
   */
  async exchange(options: ExchangeOptions): Promise<Fields> {
    const { key, clientId, redirectUri = '', codeVerifier = '', issue, refresh, grant, fields } = options;
    if (codeVerifier !== '') assertPkceSyntax(codeVerifier, 'code_verifier', InvalidGrant);
    const args = ['OAUTH.EXCHANGE', this.key(key), clientId, redirectUri, codeVerifier];
    if (issue) args.push('ISSUE', this.key(issue.key), String(issue.ttl));
    if (refresh) args.push('REFRESH', this.key(refresh.key), String(refresh.ttl));
    if (grant !== undefined) args.push('GRANT', this.key(grant));
    if (fields) args.push(...fieldArgs(fields));
    return split(await this.write(args)).fields;
  }

  /** OAUTH.SAVETOKEN: store token metadata, optionally in a grant. */
  async saveToken(key: string, ttl: number, fields: Fields, options: { grant?: string } = {}): Promise<void> {
    const grant = options.grant === undefined ? [] : ['GRANT', this.key(options.grant)];
    await this.write(['OAUTH.SAVETOKEN', this.key(key), String(ttl), ...grant, ...fieldArgs(fields)]);
  }

  /** OAUTH.INTROSPECT: RFC 7662 answer; a token created at or before a cutoff is inactive. */
  async introspect(key: string, options: { cutoff?: readonly string[] } = {}): Promise<Introspection> {
    const args = ['OAUTH.INTROSPECT', this.key(key)];
    if (options.cutoff?.length) args.push('CUTOFF', String(options.cutoff.length), ...options.cutoff.map((k) => this.key(k)));
    const { fields, extra } = split(await this.read(args), ['active', 'exp', 'iat']);
    if (!bool(extra.get('active'))) return { active: false };
    const result: Introspection = { active: true, fields };
    if (extra.has('exp')) result.exp = int(extra.get('exp'));
    if (extra.has('iat')) result.iat = int(extra.get('iat'));
    return result;
  }

  /**
   * OAUTH.REVOKE: remove access and refresh tokens (a refresh token takes its grant's
   * access tokens along). Answers how many records were removed; unknown keys count 0
   * (RFC 7009). In Cluster, all keys of one call must share a slot.
   */
  async revoke(keys: string | readonly string[]): Promise<number> {
    const list = typeof keys === 'string' ? [keys] : keys;
    if (list.length === 0) return 0;
    return int(await this.write(['OAUTH.REVOKE', ...list.map((k) => this.key(k))]));
  }

  /** OAUTH.ROTATE: redeem a refresh token for its successor; reuse outside the grace window revokes the grant (`InvalidGrant`). */
  async rotate(options: RotateOptions): Promise<RotateResult> {
    const { oldKey, newKey, ttl, issue, grace, cutoff, fields } = options;
    const args = ['OAUTH.ROTATE', this.key(oldKey), this.key(newKey), String(ttl)];
    if (issue) args.push('ISSUE', this.key(issue.key), String(issue.ttl));
    if (grace !== undefined) args.push('GRACE', String(grace));
    if (cutoff?.length) args.push('CUTOFF', String(cutoff.length), ...cutoff.map((k) => this.key(k)));
    if (fields) args.push(...fieldArgs(fields));
    const reply = split(await this.write(args));
    const result: RotateResult = {
      fields: reply.fields,
      refreshKey: this.unprefixed(str(reply.extra.get('_refresh_key'))),
      replayed: bool(reply.extra.get('_replayed')),
    };
    if (reply.extra.has('_access_key')) result.accessKey = this.unprefixed(str(reply.extra.get('_access_key')));
    return result;
  }

  /** OAUTH.REVOKEGRANT: delete a grant and its records; answers how many records were deleted. */
  async revokeGrant(grantKey: string): Promise<number> {
    return int(await this.write(['OAUTH.REVOKEGRANT', this.key(grantKey)]));
  }

  /** OAUTH.REVOKEBEFORE: revoke every token created until now that is checked against this cutoff key; answers the cutoff (Unix ms). */
  async revokeBefore(cutoffKey: string): Promise<number> {
    return int(await this.write(['OAUTH.REVOKEBEFORE', this.key(cutoffKey)]));
  }

  /** OAUTH.SAVECLIENT: create or replace a registration; `client_secret` is stored as its SHA-256 only. */
  async saveClient(key: string, fields: Fields, options: { ttl?: number } = {}): Promise<{ clientSecretExpiresAt: number }> {
    const ttl = options.ttl === undefined ? [] : ['TTL', String(options.ttl)];
    const { extra } = split(await this.write(['OAUTH.SAVECLIENT', this.key(key), ...ttl, ...fieldArgs(fields)]), ['client_secret_expires_at']);
    return { clientSecretExpiresAt: int(extra.get('client_secret_expires_at')) };
  }

  /** OAUTH.VERIFYCLIENT: check a client secret in constant time; false for an unknown client too. */
  async verifyClient(key: string, secret: string): Promise<boolean> {
    return bool(await this.read(['OAUTH.VERIFYCLIENT', this.key(key), secret]));
  }

  /** OAUTH.GETCLIENT: a registration without secret material, or null. */
  async getClient(key: string): Promise<ClientRegistration | null> {
    const reply = await this.read(['OAUTH.GETCLIENT', this.key(key)]);
    if (reply === null || reply === undefined) return null;
    const { fields, extra } = split(reply, ['client_secret_expires_at']);
    return { fields, clientSecretExpiresAt: int(extra.get('client_secret_expires_at')) };
  }

  /** OAUTH.DELETECLIENT: true if a registration was deleted. */
  async deleteClient(key: string): Promise<boolean> {
    return bool(await this.write(['OAUTH.DELETECLIENT', this.key(key)]));
  }

  /** OAUTH.SAVESTATE: store a single-use state or nonce. */
  async saveState(key: string, ttl: number, fields: Fields): Promise<void> {
    await this.write(['OAUTH.SAVESTATE', this.key(key), String(ttl), ...fieldArgs(fields)]);
  }

  /** OAUTH.CONSUMESTATE: a state's fields, once; null when missing, expired or already consumed. */
  async consumeState(key: string): Promise<Fields | null> {
    const reply = await this.write(['OAUTH.CONSUMESTATE', this.key(key)]);
    return reply === null || reply === undefined ? null : split(reply).fields;
  }

  /** OAUTH.RATELIMIT: a fixed or sliding window. */
  async rateLimit(key: string, options: RateLimitOptions): Promise<RateLimitResult> {
    const args = ['OAUTH.RATELIMIT', this.key(key), String(options.limit), String(options.window), ...costArgs(options.cost)];
    if (options.sliding) args.push('SLIDING');
    return new RateLimitResult(ints(await this.write(args), 5));
  }

  /** OAUTH.RATELIMITALL: several limits counted all-or-nothing. In Cluster, their keys must share a slot. */
  async rateLimitAll(limits: readonly Limit[], options: { cost?: number; sliding?: boolean } = {}): Promise<RateLimitAllResult> {
    if (limits.length === 0) throw new InvalidRequest('rateLimitAll needs at least one limit');
    const keys = limits.map((l) => this.key(l.key));
    const args = ['OAUTH.RATELIMITALL', String(limits.length), ...keys];
    for (const l of limits) args.push(String(l.limit), String(l.window));
    args.push(...costArgs(options.cost));
    if (options.sliding) args.push('SLIDING');
    const reply = await this.run(args, { key: keys[0], readonly: false });
    return new RateLimitAllResult(ints(reply, 6), limits.map((l) => l.key));
  }

  /** OAUTH.THROTTLE: GCRA, with CL.THROTTLE's parameters. */
  async throttle(key: string, options: ThrottleOptions): Promise<RateLimitResult> {
    const { maxBurst, count, period, cost } = options;
    const args = ['OAUTH.THROTTLE', this.key(key), String(maxBurst), String(count), String(period), ...costArgs(cost)];
    return new RateLimitResult(ints(await this.write(args), 5));
  }

  /** OAUTH.HELP: one line per command. */
  async help(): Promise<string[]> {
    return strs(await this.run(['OAUTH.HELP'], { readonly: true }));
  }

  /**
   * The primaries that `scan` takes as `node`, and that `records`, `purgeClient` and
   * `census` walk: in Cluster the `host:port` of every master in the client's slots
   * table; for a standalone connection `['']`, its one server.
   */
  async primaries(): Promise<string[]> {
    return (await this.nodes()).map((n) => n.address);
  }

  /**
   * OAUTH.SCAN: one SCAN step over the keys of one node, answering the records found
   * in it that pass the filters. Start with cursor `'0'` and call again with the
   * answered cursor until it is `'0'`; a step may find nothing while the walk is not
   * over. `node` is one of `primaries()`: required in Cluster, where each master is
   * walked on its own (`records` does that for you); omitted (or `''`) standalone.
   * Keys the connection's ACL user may not read are skipped. With a `prefix`, only
   * keys under it are looked at and `key` is named without it.
   */
  async scan(cursor: string, options: ScanOptions & { node?: string } = {}): Promise<ScanPage> {
    const nodes = await this.nodes();
    const node = nodes.find((n) => n.address === (options.node ?? ''));
    if (!node) {
      throw new InvalidRequest(
        options.node === undefined
          ? 'in Cluster, scan needs { node }: one of primaries(), each walked on its own (or use records())'
          : `${options.node} is not one of primaries(): ${nodes.map((n) => n.address).join(', ')}`,
      );
    }
    return this.scanStep(node, cursor, options);
  }

  /**
   * Every record that passes the filters, walking OAUTH.SCAN on each primary in turn
   * until its cursor is 0 (`count` keys per call). As with SCAN, a record that exists
   * during the whole walk is listed, one created or deleted meanwhile may or may not
   * be, and a resize of the node's key table may list a record twice.
   */
  async *records(options: ScanOptions = {}): AsyncIterable<ListedRecord> {
    for (const node of await this.nodes()) {
      let cursor = '0';
      do {
        const page = await this.scanStep(node, cursor, options);
        cursor = page.cursor;
        yield* page.records;
      } while (cursor !== '0');
    }
  }

  /**
   * OAUTH.PURGECLIENT on every primary (in parallel), each walked until its cursor is
   * 0: deletes the client's registration, codes and their tombstones, access and
   * refresh tokens, states, and its grants whole. Answers how many records of each
   * kind were deleted, summed. Rejects with `NoPerm` when a step finds a key of the
   * client that the ACL user may read but not delete: that step deletes nothing, the
   * steps before it have deleted theirs, and a later call finishes the job. With a
   * `prefix`, only keys under it are looked at.
   */
  async purgeClient(clientId: string, options: PurgeOptions = {}): Promise<KindCounts> {
    const perNode = await Promise.all(
      (await this.nodes()).map(async (node) => {
        const total = zeroCounts();
        let cursor = '0';
        do {
          const step = purgeStep(await this.runOn(node, ['OAUTH.PURGECLIENT', clientId, cursor, ...this.stepArgs(options)]));
          addCounts(total, step.counts);
          cursor = step.cursor;
        } while (cursor !== '0');
        return total;
      }),
    );
    const total = zeroCounts();
    perNode.forEach((counts) => addCounts(total, counts));
    return total;
  }

  /**
   * `INFO oauth_census` of every primary, together: live records by kind (summed),
   * distinct subjects (summed per node, so in Cluster a subject with tokens on two
   * nodes counts twice), the fewest passes and the oldest age of any node. Each node
   * counts its own keys in the background, a batch per server tick (`oauth.census-batch`),
   * so the counts are at most one pass old; they cover every key, whatever `prefix`.
   */
  async census(): Promise<Census> {
    const nodes = await this.nodes();
    return combineCensus(await Promise.all(nodes.map(async (node) => nodeCensus(await this.runOn(node, ['INFO', 'oauth_census'])))));
  }

  /**
   * WAIT on the master that owns `key` (in Cluster; the connected server otherwise):
   * how many replicas acknowledged the writes so far, after at most `timeoutMs`.
   * Call it after an exchange whose loss on failover matters, and treat 0 as a failure.
   */
  async wait(key: string, numReplicas: number, timeoutMs: number): Promise<number> {
    return int(await this.run(['WAIT', String(numReplicas), String(timeoutMs)], { key: this.key(key), readonly: false, pinned: true }));
  }
}
