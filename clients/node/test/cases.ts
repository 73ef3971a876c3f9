/** Every client library, major version and protocol the tests run, each standalone and in Cluster. */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster as Cluster5, Redis as Redis5 } from 'ioredis5';
import { Cluster as Cluster6, Redis as Redis6 } from 'ioredis6';
import * as node4 from 'redis4';
import * as node5 from 'redis5';
import * as node6 from 'redis6';
import { ClientOptions, IoredisClient, IoredisCluster, NodeRedisClient, NodeRedisCluster, OAuthClient } from 'redis-oauth';
import { HOST } from './servers';

export type Topology = 'standalone' | 'cluster';

export interface Connection {
  oauth: OAuthClient;
  /** A plain Redis command through the same library (in Cluster, routed by `key`). */
  raw(args: string[], key?: string): Promise<unknown>;
  close(): Promise<void>;
}

export interface ConnectOptions extends ClientOptions {
  /** ioredis's own keyPrefix option. */
  keyPrefix?: string;
  /** An ACL user to log in as (every node, in Cluster). */
  auth?: { username: string; password: string };
}

export interface Case {
  library: 'node-redis' | 'ioredis';
  version: string;
  protocol: string;
  /** Whether the library has its own keyPrefix option (ioredis, node-redis 6). */
  keyPrefix: boolean;
  connect(topology: Topology, ports: { standalone: number; cluster: number[] }, options?: ConnectOptions): Promise<Connection>;
}

function version(alias: string): string {
  return JSON.parse(readFileSync(join(__dirname, '..', '..', 'node_modules', alias, 'package.json'), 'utf8')).version;
}

interface Closable {
  connect(): Promise<unknown>;
  quit(): Promise<unknown>;
}

interface NodeRedisOptions {
  RESP?: 2 | 3;
  keyPrefix?: string;
}

interface Credentials {
  username?: string;
  password?: string;
}

interface NodeRedisFactories {
  client(options: NodeRedisOptions & Credentials & { url: string }): NodeRedisClient & Closable;
  cluster(options: NodeRedisOptions & { rootNodes: Array<{ url: string }>; defaults?: Credentials }): NodeRedisCluster & Closable;
}

/** The OAuthClient of a connected library client; a refused one is closed. */
async function wrap(make: () => OAuthClient, close: () => Promise<unknown>): Promise<OAuthClient> {
  try {
    return make();
  } catch (err) {
    await close();
    throw err;
  }
}

/** `RESP` undefined: the library's default, `protocol`. */
function nodeRedis(alias: string, lib: NodeRedisFactories, protocol: 2 | 3, RESP?: 2 | 3): Case {
  return {
    library: 'node-redis',
    version: version(alias),
    protocol: `RESP${protocol}${RESP ? '' : ' (default)'}`,
    keyPrefix: alias === 'redis6',
    async connect(topology, ports, options = {}) {
      const libOptions: NodeRedisOptions = { ...(RESP && { RESP }), ...(options.keyPrefix !== undefined && { keyPrefix: options.keyPrefix }) };
      if (topology === 'standalone') {
        const client = lib.client({ url: `redis://${HOST}:${ports.standalone}`, ...libOptions, ...options.auth });
        await client.connect();
        return {
          oauth: await wrap(() => OAuthClient.fromNodeRedis(client, options), () => client.quit()),
          raw: (args) => client.sendCommand(args),
          close: async () => void (await client.quit()),
        };
      }
      const cluster = lib.cluster({
        rootNodes: ports.cluster.map((p) => ({ url: `redis://${HOST}:${p}` })),
        ...libOptions,
        ...(options.auth && { defaults: options.auth }),
      });
      await cluster.connect();
      return {
        oauth: await wrap(() => OAuthClient.fromNodeRedis(cluster, options), () => cluster.quit()),
        raw: (args, key) => cluster.sendCommand(key, false, args),
        close: async () => void (await cluster.quit()),
      };
    },
  };
}

interface IoredisOptions extends Credentials {
  protocol?: 2 | 3;
  replyMapping?: 'resp3';
  keyPrefix?: string;
}

interface IoredisConnection {
  call(command: string, args: string[]): Promise<unknown>;
  quit(): Promise<unknown>;
}

interface IoredisFactories {
  redis(options: IoredisOptions & { host: string; port: number }): IoredisClient & IoredisConnection;
  cluster(nodes: Array<{ host: string; port: number }>, options: { redisOptions: IoredisOptions }): IoredisCluster & IoredisConnection;
}

function ioredis(alias: string, make: IoredisFactories, mode: IoredisOptions = {}): Case {
  const protocol = mode.protocol === 3 ? `RESP3 replyMapping ${mode.replyMapping ?? 'legacy'}` : 'RESP2';
  return {
    library: 'ioredis',
    version: version(alias),
    protocol,
    keyPrefix: true,
    async connect(topology, ports, options = {}) {
      const redisOptions = { ...mode, ...(options.keyPrefix !== undefined && { keyPrefix: options.keyPrefix }), ...options.auth };
      const client =
        topology === 'standalone'
          ? make.redis({ host: HOST, port: ports.standalone, ...redisOptions })
          : make.cluster(ports.cluster.map((port) => ({ host: HOST, port })), { redisOptions });
      return {
        oauth: await wrap(() => OAuthClient.fromIoredis(client, options), () => client.quit()),
        raw: ([name, ...args]) => client.call(name, args),
        close: async () => void (await client.quit()),
      };
    },
  };
}

const redis4: NodeRedisFactories = { client: (o) => node4.createClient(o), cluster: (o) => node4.createCluster(o) };
const redis5: NodeRedisFactories = { client: (o) => node5.createClient(o), cluster: (o) => node5.createCluster(o) };
const redis6: NodeRedisFactories = { client: (o) => node6.createClient(o), cluster: (o) => node6.createCluster(o) };
const ioredis5: IoredisFactories = { redis: (o) => new Redis5(o), cluster: (n, o) => new Cluster5(n, o) };
const ioredis6: IoredisFactories = { redis: (o) => new Redis6(o), cluster: (n, o) => new Cluster6(n, o) };

export const cases: Case[] = [
  nodeRedis('redis4', redis4, 2),
  nodeRedis('redis5', redis5, 2),
  nodeRedis('redis5', redis5, 3, 3),
  nodeRedis('redis6', redis6, 2, 2),
  nodeRedis('redis6', redis6, 3),
  ioredis('ioredis5', ioredis5),
  ioredis('ioredis6', ioredis6, { protocol: 2 }),
  ioredis('ioredis6', ioredis6, { protocol: 3 }),
  ioredis('ioredis6', ioredis6, { protocol: 3, replyMapping: 'resp3' }),
];

export function caseName(c: Case): string {
  return `${c.library} ${c.version} ${c.protocol}`;
}
