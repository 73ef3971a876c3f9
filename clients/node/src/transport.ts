/**
 * Adapters that send one module command through node-redis or ioredis, standalone or
 * Cluster. In Cluster every command is routed by its first key, which the package
 * knows for every command, so the server never has to redirect it and no client asks
 * `COMMAND GETKEYS`.
 */

import { routingKey, slotOf } from './slot';

export interface Route {
  /** The command's first key (all keys of a call share its slot); none for OAUTH.HELP. */
  key?: string;
  /** Whether the command is read-only (node-redis may then use a replica if the cluster was created with `useReplicas`). */
  readonly: boolean;
  /** The command must run on the key's master and cannot be retried elsewhere (WAIT). */
  pinned?: boolean;
}

/** One primary (master) of a deployment, for the commands that work node by node. */
export interface Primary {
  /** `host:port` as the cluster announces it; `''` for the one server of a standalone connection. */
  address: string;
  /** Sends one command to this node. */
  send(args: string[]): Promise<unknown>;
}

export interface Transport {
  send(args: string[], route: Route): Promise<unknown>;
  /**
   * The primaries, for OAUTH.SCAN, OAUTH.PURGECLIENT and INFO, which work on the keys
   * of the node they run on. A transport without it is one server, reached by `send`.
   */
  primaries?(): Promise<Primary[]>;
}

/** What the package needs of a node-redis client (`createClient`), versions 4 to 6. */
export interface NodeRedisClient {
  sendCommand(args: string[]): Promise<unknown>;
}

/** What the package needs of a node-redis cluster (`createCluster`), versions 4 to 6. */
export interface NodeRedisCluster<Node = unknown> {
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  getSlotMaster(slot: number): Node;
  /** The masters of the slots table (each has an `address`, `host:port`). */
  readonly masters: readonly Node[];
  nodeClient(node: Node): NodeRedisClient | Promise<NodeRedisClient>;
}

/** What the package needs of an ioredis `Redis` connection, versions 5 and 6. */
export interface IoredisClient {
  call(command: string, args: string[]): Promise<unknown>;
  options: { host?: string; port?: number };
}

/** What the package needs of an ioredis `Cluster`, versions 5 and 6. */
export interface IoredisCluster {
  isCluster: boolean;
  status: string;
  slots: string[][];
  call(command: string, args: string[]): Promise<unknown>;
  nodes(role: 'master'): IoredisClient[];
  connect(): Promise<void>;
  once(event: 'ready' | 'end', listener: () => void): unknown;
  off(event: 'ready' | 'end', listener: () => void): unknown;
}

export function nodeRedisTransport<Node>(client: NodeRedisClient | NodeRedisCluster<Node>): Transport {
  if (!('getSlotMaster' in client)) return { send: (args) => client.sendCommand(args) };
  return {
    async send(args, route) {
      if (route.key === undefined) return client.sendCommand(undefined, route.readonly, args);
      // node-redis 6 sends WAIT to every master (its command policies): pin it to the key's.
      if (route.pinned) return (await client.nodeClient(client.getSlotMaster(slotOf(route.key)))).sendCommand(args);
      return client.sendCommand(routingKey(route.key), route.readonly, args);
    },
    async primaries() {
      return client.masters.map((node) => ({
        address: nodeAddress(node),
        send: async (args: string[]) => (await client.nodeClient(node)).sendCommand(args),
      }));
    },
  };
}

function nodeAddress(node: unknown): string {
  const n = node as { address?: unknown; host?: unknown; port?: unknown };
  if (typeof n.address === 'string') return n.address;
  return `${String(n.host)}:${String(n.port)}`;
}

function isIoredisCluster(client: IoredisClient | IoredisCluster): client is IoredisCluster {
  return 'isCluster' in client && client.isCluster === true;
}

export function ioredisTransport(client: IoredisClient | IoredisCluster): Transport {
  if (!isIoredisCluster(client)) return { send: ([name, ...args]) => client.call(name, args) };
  return {
    async send(args, route) {
      const [name, ...rest] = args;
      if (route.key === undefined) return client.call(name, rest);
      const node = await masterFor(client, route.key);
      if (node === undefined) {
        if (route.pinned) throw new Error(`no master is known for hash slot ${slotOf(route.key)}`);
        return client.call(name, rest);
      }
      try {
        return await node.call(name, rest);
      } catch (err) {
        // The slot moved (resharding, failover) after the slots table was read. The
        // command did not run: let ioredis follow the redirection and refresh its table.
        if (route.pinned || !(err instanceof Error) || !/^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /.test(err.message)) throw err;
        return client.call(name, rest);
      }
    },
    async primaries() {
      await ready(client);
      return client.nodes('master').map((node) => ({
        address: `${node.options.host}:${node.options.port}`,
        send: ([name, ...rest]: string[]) => node.call(name, rest),
      }));
    },
  };
}

/** The master that owns the key's slot in ioredis's slots table, once the cluster is ready. */
async function masterFor(cluster: IoredisCluster, key: string): Promise<IoredisClient | undefined> {
  await ready(cluster);
  const owner = cluster.slots[slotOf(key)]?.[0];
  return cluster.nodes('master').find((node) => `${node.options.host}:${node.options.port}` === owner);
}

async function ready(cluster: IoredisCluster): Promise<void> {
  if (cluster.status === 'ready' || cluster.status === 'end') return;
  if (cluster.status === 'wait') return cluster.connect();
  await new Promise<void>((resolve) => {
    const done = (): void => {
      cluster.off('ready', done);
      cluster.off('end', done);
      resolve();
    };
    cluster.once('ready', done);
    cluster.once('end', done);
  });
}

/**
 * Whether the client has its library's own `keyPrefix` option (ioredis, node-redis
 * 6), which the library applies only to the commands it knows, never to OAUTH.* keys.
 */
export function hasLibraryKeyPrefix(client: object): boolean {
  const c = client as {
    options?: { keyPrefix?: unknown; redisOptions?: { keyPrefix?: unknown } };
    _options?: { keyPrefix?: unknown };
  };
  return Boolean(c.options?.keyPrefix || c.options?.redisOptions?.keyPrefix || c._options?.keyPrefix);
}
