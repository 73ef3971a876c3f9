/**
 * Starts the servers the tests need, once per run: one standalone redis-server and a
 * 3-master Redis Cluster, each with the module, on free 127.0.0.1 ports. Fails loudly
 * when redis-server, redis-cli or the module is missing.
 */

import { ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const REDIS_SERVER = process.env.REDIS_SERVER || '/usr/bin/redis-server';
export const REDIS_CLI = process.env.REDIS_CLI || 'redis-cli';
export const MODULE = process.env.REDIS_OAUTH_MODULE || join(__dirname, '../../../../target/release/libredis_oauth.so');
export const HOST = '127.0.0.1';

export interface Node {
  port: number;
  process: ChildProcess;
  log: string;
}

export interface Servers {
  version: string;
  standalone: Node;
  masters: Node[];
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** One command through redis-cli (never to a Cluster with -c: it would follow MOVED). */
export async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run(REDIS_CLI, ['-h', HOST, '-p', String(port), ...args]);
  return stdout.trim();
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function startNode(dir: string, cluster: boolean, started: Node[]): Promise<Node> {
  const port = await freePort();
  const log = join(dir, `redis-${port}.log`);
  const args = ['--port', String(port), '--bind', HOST, '--loadmodule', MODULE, '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', log];
  if (cluster) args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`));
  const child = spawn(REDIS_SERVER, args, { stdio: 'ignore' });
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  const node = { port, process: child, log };
  started.push(node);
  try {
    await until(`redis-server on port ${port}`, async () => {
      if (spawnError || child.exitCode !== null) throw spawnError ?? new Error(`exited with code ${child.exitCode}`);
      return (await cli(port, 'PING').catch(() => '')) === 'PONG';
    });
  } catch (err) {
    const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-15).join('\n') : '(no log)';
    throw new Error(`${REDIS_SERVER} did not start on port ${port} with the module ${MODULE}:\n${tail}`, { cause: err });
  }
  return node;
}

function checkPrerequisites(): void {
  if (!existsSync(MODULE)) throw new Error(`the module is missing: ${MODULE} (set REDIS_OAUTH_MODULE)`);
  if (!existsSync(REDIS_SERVER)) throw new Error(`redis-server is missing: ${REDIS_SERVER} (set REDIS_SERVER)`);
}

export async function startServers(): Promise<Servers> {
  checkPrerequisites();
  const { stdout } = await run(REDIS_SERVER, ['--version']);
  await run(REDIS_CLI, ['--version']).catch((err: unknown) => {
    throw new Error(`redis-cli is missing: ${REDIS_CLI} (set REDIS_CLI)`, { cause: err });
  });
  const dir = mkdtempSync(join(tmpdir(), 'redis-oauth-node-'));
  const nodes: Node[] = [];
  const stop = (): Promise<void> => stopNodes(nodes, dir);
  process.once('exit', () => nodes.forEach((n) => n.process.kill('SIGKILL')));
  try {
    const standalone = await startNode(dir, false, nodes);
    const masters = await Promise.all([0, 1, 2].map(() => startNode(dir, true, nodes)));
    await run(REDIS_CLI, ['--cluster', 'create', ...masters.map((m) => `${HOST}:${m.port}`), '--cluster-replicas', '0', '--cluster-yes']);
    for (const m of masters) {
      await until(`cluster_state:ok on port ${m.port}`, async () => (await cli(m.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'));
    }
    return { version: stdout.trim(), standalone, masters, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function stopNodes(nodes: Node[], dir: string): Promise<void> {
  await Promise.all(
    nodes.map(
      (n) =>
        new Promise<void>((resolve) => {
          if (n.process.exitCode !== null || n.process.signalCode !== null) return resolve();
          n.process.once('exit', () => resolve());
          n.process.kill('SIGKILL');
        }),
    ),
  );
  rmSync(dir, { recursive: true, force: true });
}

/** A MONITOR connection that records every command a server runs. */
export class Monitor {
  private text = '';
  private readonly socket: Socket;

  constructor(port: number) {
    this.socket = new Socket();
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => (this.text += chunk));
    this.socket.connect(port, HOST, () => this.socket.write('MONITOR\r\n'));
  }

  /** Waits until MONITOR is on (its +OK arrived). */
  started(): Promise<void> {
    return until('MONITOR', async () => this.text.startsWith('+OK'));
  }

  lines(): string[] {
    return this.text.split('\r\n').filter((line) => line.startsWith('+') && line !== '+OK');
  }

  close(): void {
    this.socket.destroy();
  }
}
