import { describe, expect, it } from 'vitest';
import { freePort, startConsul, startEtcd, uniqueConsulPrefix, uniquePrefix } from '../harness/index.js';
import { until, vipProcesses } from '../harness/vip-cli.js';

// What an operator reads when things break, on every node: the leader's
// `vip run`, the follower's, and `vip watch`, against real servers that are
// killed and started again, and against a server of the other kind.
const { vip, defer } = vipProcesses();
/** The outages take a while: a minute for each wait. */
const wait = (condition: () => boolean, what: string | (() => string)): Promise<true> => until(condition, what, 60_000);

const command = [process.execPath, '-e', 'process.on("SIGTERM", () => process.exit(0)); setInterval(() => {}, 1000)'];
const count = (text: string, pattern: RegExp): number => text.split('\n').filter((line) => pattern.test(line)).length;

/** Leader, follower and watcher through a 10 s outage of the store: one line when it goes, one when it is back, on each. */
async function outage(store: string, path: string, ttl: number, kill: () => Promise<void>, start: () => Promise<void>): Promise<void> {
  const leader = vip(['run', '--store', store, '--path', path, '--id', 'a', '--ttl', String(ttl), '--', ...command]);
  await wait(() => leader.err().includes('leading'), `a to lead (stderr: ${leader.err()})`);
  const follower = vip(['run', '--store', store, '--path', path, '--id', 'b', '--ttl', String(ttl), '--', ...command]);
  await wait(() => follower.err().includes('leader is a'), `b to follow a (stderr: ${follower.err()})`);
  const watcher = vip(['watch', '--store', store, '--path', path]);
  await wait(() => watcher.out().includes('leader: a'), `vip watch to show a (stdout: ${watcher.out()})`);
  const nodes = { leader, follower, watcher };

  await kill();
  for (const [name, node] of Object.entries(nodes)) {
    await wait(() => / unreachable: /.test(node.err()), () => `${name} to say the store is unreachable (stderr of each: ${Object.entries(nodes).map(([n, o]) => `${n}: ${o.err()}`).join(' | ')})`);
  }
  await new Promise((resolve) => setTimeout(resolve, 10_000));
  await start();
  for (const [name, node] of Object.entries(nodes)) {
    await wait(() => /reachable again after \d+ s/.test(node.err()), () => `${name} to say the store is back (stderr: ${node.err()})`);
  }
  for (const [name, node] of Object.entries(nodes)) {
    const err = node.err();
    const prefix = name === 'watcher' ? 'vip watch' : 'vip run';
    // One line when it went, naming the store and the cause in plain words, one when it came back.
    expect(count(err, new RegExp(`^${prefix}: store ${store.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} unreachable: (connection refused|connection reset|connection lost|unavailable|timed out)`)), `${name}:\n${err}`).toBe(1);
    expect(count(err, new RegExp(`^${prefix}: store .* reachable again after \\d+ s$`)), `${name}:\n${err}`).toBe(1);
    // Never the client's raw text, never a line per retry.
    expect(err, name).not.toMatch(/store error:|UNAVAILABLE|circuit breaker|Resolution note|socket hang up/);
    expect(count(err, / unreachable/), `${name}:\n${err}`).toBeLessThanOrEqual(2); // the line, and at most one summary
  }
}

describe('what an operator reads when the store goes away and comes back', () => {
  it('etcd killed for 10 s under two vip run --ttl 3 and a vip watch', async () => {
    const etcd = await startEtcd();
    defer(() => etcd.close());
    await outage(etcd.connectionString, `${uniquePrefix('vip-outage')}job`, 3, () => etcd.killMember(0), () => etcd.startMember(0));
  }, 150_000);

  it('Consul (a server that keeps its state) killed for 10 s under two vip run and a vip watch', async () => {
    const consul = await startConsul({ persistent: true });
    defer(() => consul.close());
    await outage(consul.connectionString, `${uniqueConsulPrefix('vip-outage')}job`, 10, () => consul.kill(), () => consul.start());
  }, 150_000);
});

describe('a store that is unreachable from the start', () => {
  it('vip run and vip watch say once that they cannot reach it, with a hint to check --store, and keep trying quietly', async () => {
    const port = await freePort(); // nothing listens there
    for (const store of [`etcd://127.0.0.1:${port}`, `consul://127.0.0.1:${port}`]) {
      const nodes = [vip(['run', '--store', store, '--path', 'job', '--ttl', '10', '--', ...command]), vip(['watch', '--store', store, '--path', 'job'])];
      // Long enough for many retries of every client (etcd3's, our watch loops', Consul's).
      await new Promise((resolve) => setTimeout(resolve, 4000));
      for (const node of nodes) {
        const lines = node.err().trim().split('\n');
        expect(lines, `${store}: ${node.err()}`).toHaveLength(1);
        expect(lines[0]).toMatch(new RegExp(`^vip (run|watch): cannot reach the store ${store.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: connection refused \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\); still trying \\(check --store, or \\$VIP_STORE\\)$`));
        node.child.kill('SIGTERM');
        await node.exited;
      }
    }
  }, 60_000);
});

describe('a store address that points at the other kind of server', () => {
  it('says so on vip run, vip status and vip watch, and exits 1', async () => {
    const [etcd, consul] = await Promise.all([startEtcd(), startConsul()]);
    defer(() => etcd.close(), () => consul.close());
    const etcdPort = new URL(etcd.endpoints[0]!).port;
    const cases: [string, RegExp][] = [
      [`consul://127.0.0.1:${etcdPort}`, /this does not look like a Consul agent/],
      [`etcd://127.0.0.1:${consul.port}`, /this does not look like an etcd server/],
    ];
    for (const [store, message] of cases) {
      for (const [name, args] of [
        ['vip run', ['run', '--store', store, '--path', 'job', '--ttl', '10', '--', ...command]],
        ['vip status', ['status', '--store', store, '--path', 'job']],
        ['vip watch', ['watch', '--store', store, '--path', 'job']],
      ] as const) {
        const run = vip([...args]);
        expect(await run.exited, `${name} ${store}: ${run.err()}`).toBe(1);
        const lines = run.err().trim().split('\n');
        expect(lines[0], `${name} ${store}`).toMatch(new RegExp(`^${name}: .*${message.source}`));
        // vip run then stops as on SIGTERM (nothing runs: this node never led).
        if (name === 'vip run') expect(lines.slice(1)).toEqual(['vip run: not the store: stopping', `vip run: ${process.execPath} not running; resigning`]);
        else expect(lines, `${name} ${store}: one line`).toHaveLength(1);
      }
    }
  }, 120_000);
});
