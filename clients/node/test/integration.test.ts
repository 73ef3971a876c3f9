/**
 * Runs the flows for every client case against a standalone server and a 3-master
 * Cluster (started once for the run), then checks over the whole Cluster run that no
 * master was asked COMMAND GETKEYS and at most a handful of redirections happened.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomId, ServerError, slotOf } from 'redis-oauth';
import { Case, caseName, cases, Connection, ConnectOptions, Topology } from './cases';
import { adminFlows } from './admin';
import { flows } from './flows';
import { cli, Monitor, Servers, startServers } from './servers';

let servers: Servers;
let monitors: Monitor[] = [];

/** Per-master counters of INFO sections, parsed as `name:key=value,...`. */
async function infoCounts(port: number, section: string, field: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const line of (await cli(port, 'INFO', section)).split('\n')) {
    const match = new RegExp(`^([^:]+):.*\\b${field}=(\\d+)`).exec(line.trim());
    if (match) counts.set(match[1], Number(match[2]));
  }
  return counts;
}

async function perMaster(section: string, field: string, name: string): Promise<number[]> {
  return Promise.all(servers.masters.map(async (m) => (await infoCounts(m.port, section, field)).get(name) ?? 0));
}

before(async () => {
  servers = await startServers();
  for (const m of servers.masters) await cli(m.port, 'CONFIG', 'RESETSTAT');
  monitors = servers.masters.map((m) => new Monitor(m.port));
  await Promise.all(monitors.map((m) => m.started()));
});

after(async () => {
  monitors.forEach((m) => m.close());
  await servers?.stop();
});

function suite(c: Case, topology: Topology): void {
  describe(`${caseName(c)}, ${topology}`, () => {
    let conn: Connection;
    const extra: Connection[] = [];
    const ports = (): { standalone: number; cluster: number[] } => ({ standalone: servers.standalone.port, cluster: servers.masters.map((m) => m.port) });
    const connect = async (options: ConnectOptions = {}): Promise<Connection> => {
      const connection = await c.connect(topology, ports(), options);
      extra.push(connection);
      return connection;
    };

    before(async () => {
      conn = await c.connect(topology, ports());
    });
    after(async () => {
      await Promise.all([conn, ...extra].map((x) => x?.close()));
    });

    flows(() => ({ conn, connect }));
    adminFlows(() => ({
      conn,
      connect,
      open: (options) => c.connect(topology, ports(), options),
      everyNode: (...args) => Promise.all((topology === 'standalone' ? [servers.standalone] : servers.masters).map((n) => cli(n.port, ...args))),
    }));

    if (c.keyPrefix) {
      it("the library's keyPrefix does not reach module keys: an explicit prefix is required", async () => {
        await assert.rejects(connect({ keyPrefix: 'kp:' }), /keyPrefix, which its library does not apply to OAUTH\.\* keys/);
        const prefixed = await connect({ keyPrefix: 'kp:', prefix: 'kp:' });
        const key = `rl:${randomId()}`;
        await prefixed.oauth.rateLimit(key, { limit: 1, window: 60 });
        assert.equal(Number(await conn.raw(['EXISTS', `kp:${key}`], `kp:${key}`)), 1);
      });
    }

    if (topology === 'cluster') {
      it('spreads calls over every master, each to the owner of its key', async () => {
        const before = await perMaster('commandstats', 'calls', 'cmdstat_oauth.ratelimit');
        for (let i = 0; i < 60; i++) await conn.oauth.rateLimit(`rl:{t${randomId()}}`, { limit: 10, window: 60 });
        const calls = (await perMaster('commandstats', 'calls', 'cmdstat_oauth.ratelimit')).map((n, i) => n - before[i]);
        assert.equal(calls.reduce((a, b) => a + b), 60);
        assert.ok(calls.every((n) => n > 0), `calls per master: ${calls}`);
      });

      it('routes a key whose first hash tag is empty ({}{x}) by the whole key, as Redis does', async () => {
        for (let i = 0; i < 20; i++) await conn.oauth.rateLimit(`{}{x}:${i}`, { limit: 10, window: 60 });
      });

      it('WAIT runs on the master that owns the key', async () => {
        const key = `oauth:{g:${randomId()}}:grant`;
        const before = await perMaster('commandstats', 'calls', 'cmdstat_wait');
        assert.equal(await conn.oauth.wait(key, 0, 10), 0);
        const after = (await perMaster('commandstats', 'calls', 'cmdstat_wait')).map((n, i) => n - before[i]);
        const slot = slotOf(key);
        const owners = await Promise.all(servers.masters.map((m) => ownsSlot(m.port, slot)));
        assert.deepEqual(after, owners.map((o) => (o ? 1 : 0)));
      });

      it('CROSSSLOT reaches the app as a ServerError', async () => {
        await assert.rejects(conn.oauth.revoke([`oauth:{a${randomId()}}:at`, `oauth:{b${randomId()}}:at`]), (err: unknown) => {
          assert.ok(err instanceof ServerError);
          assert.equal(err.code, 'CROSSSLOT');
          assert.equal(err.httpStatus, 500);
          return true;
        });
      });
    }
  });
}

async function ownsSlot(port: number, slot: number): Promise<boolean> {
  const myId = await cli(port, 'CLUSTER', 'MYID');
  const nodes = await cli(port, 'CLUSTER', 'NODES');
  const mine = nodes.split('\n').find((line) => line.startsWith(myId)) ?? '';
  return mine
    .split(' ')
    .slice(8)
    .some((range) => {
      const [from, to = from] = range.split('-').map(Number);
      return slot >= from && slot <= to;
    });
}

for (const c of cases) {
  suite(c, 'standalone');
  suite(c, 'cluster');
}

describe('Cluster, over the whole run', () => {
  it('slotOf agrees with CLUSTER KEYSLOT', async (t) => {
    t.diagnostic(servers.version);
    for (const key of ['a', '{a}', '{}{a}', 'x{}y{a}', 'ab{}', '{{a}}', 'a{b}{c}', '}{a}', '{', 'oauth:{g:7f3a}:code', 'ключ{é}', '']) {
      assert.equal(slotOf(key), Number(await cli(servers.masters[0].port, 'CLUSTER', 'KEYSLOT', key)), key);
    }
  });

  it('no master was asked COMMAND GETKEYS, and every master ran module commands', async () => {
    for (const [i, monitor] of monitors.entries()) {
      const lines = monitor.lines();
      assert.deepEqual(lines.filter((l) => /"command" "getkeys/i.test(l)), [], `master ${i}`);
      assert.ok(lines.some((l) => /"OAUTH\.ROTATE"/i.test(l)), `master ${i} ran no OAUTH.ROTATE`);
    }
    assert.deepEqual(await perMaster('commandstats', 'calls', 'cmdstat_command|getkeys'), [0, 0, 0]);
  });

  it('at most a handful of redirections (MOVED, ASK) in the whole run', async (t) => {
    const moved = await perMaster('errorstats', 'count', 'errorstat_MOVED');
    const ask = await perMaster('errorstats', 'count', 'errorstat_ASK');
    const total = [...moved, ...ask].reduce((a, b) => a + b);
    t.diagnostic(`MOVED per master: ${moved}; ASK per master: ${ask}`);
    assert.ok(total <= 3, `${total} redirections`);
  });

  it('the measurements above see a deliberate MOVED and COMMAND GETKEYS', async () => {
    const key = `control{${randomId()}}`;
    const owners = await Promise.all(servers.masters.map((m) => ownsSlot(m.port, slotOf(key))));
    const wrong = servers.masters[owners.indexOf(false)];
    const monitor = monitors[owners.indexOf(false)];
    const before = (await perMaster('errorstats', 'count', 'errorstat_MOVED')).reduce((a, b) => a + b);
    assert.match(await cli(wrong.port, 'GET', key), /^MOVED /);
    assert.equal((await perMaster('errorstats', 'count', 'errorstat_MOVED')).reduce((a, b) => a + b), before + 1);
    await cli(wrong.port, 'COMMAND', 'GETKEYS', 'GET', key);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(monitor.lines().some((l) => /"command" "getkeys/i.test(l)));
  });
});
