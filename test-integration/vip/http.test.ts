import { describe, expect, it } from 'vitest';
import { startConsul, startEtcd, uniqueConsulPrefix, uniquePrefix } from '../harness/index.js';
import { until, vipProcesses } from '../harness/vip-cli.js';

// Two `vip run --http` processes on one path, as an operator deploys them, against
// real etcd and Consul: what /metrics, /leader and /healthz say before and after
// the leader is killed with SIGKILL.
const { vip, defer } = vipProcesses();

function vipRun(store: string, path: string, id: string, ttl: number) {
  const command = [process.execPath, '-e', 'process.on("SIGTERM", () => process.exit(0)); setInterval(() => {}, 1000)'];
  const node = vip(['run', '--store', store, '--path', path, '--id', id, '--ttl', String(ttl), '--http', '127.0.0.1:0', '--', ...command]);
  return { ...node, id, url: () => /serving \/metrics, \/healthz and \/leader on (http:\/\/\S+)/.exec(node.err())?.[1] };
}
type Node = ReturnType<typeof vipRun>;

interface Leader {
  path: string;
  id: string;
  leading: boolean;
  healthy: boolean;
  leader: { id: string; value: string; token: string } | null;
  since: string | null;
}
const leaderOf = async (node: Node): Promise<Leader> => (await fetch(`${node.url()}/leader`)).json() as Promise<Leader>;
const leaderGauge = async (node: Node): Promise<number | undefined> => {
  const text = await (await fetch(`${node.url()}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`vip_leader{`) && l.includes(`id="${node.id}"`));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
};

/** Polls /healthz of each live node every 100 ms and keeps every answer that was not 200. */
function watchHealth(nodes: Node[]) {
  const bad: string[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      for (const node of nodes) {
        if (node.child.exitCode !== null || node.child.signalCode !== null) continue;
        try {
          const response = await fetch(`${node.url()}/healthz`);
          const body = await response.text();
          if (response.status !== 200) bad.push(`${node.id}: ${response.status} ${body.trim()}`);
        } catch (error) {
          // The node just killed: its connection is refused. Any other node must answer.
          if (node.child.exitCode === null && node.child.signalCode === null && !(node.child.killed)) bad.push(`${node.id}: ${(error as Error).message}`);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    bad,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

async function scenario(store: string, path: string, ttl: number, crashBoundMs: number): Promise<void> {
  const nodes = [vipRun(store, path, 'a', ttl), vipRun(store, path, 'b', ttl)];
  for (const node of nodes) await until(() => node.url(), `${node.id} to serve --http (stderr: ${node.err()})`, 30_000);

  // Exactly one leads, and both say so the same way in /leader and /metrics.
  const first = await until(
    async () => {
      const reports = await Promise.all(nodes.map(leaderOf));
      return reports.every((r) => r.leader !== null) ? reports : undefined;
    },
    'both nodes to see a leader',
    30_000,
  );
  expect(first.filter((r) => r.leading)).toHaveLength(1);
  const leader = nodes.find((_, i) => first[i]!.leading)!;
  const survivor = nodes.find((node) => node !== leader)!;
  for (const report of first) {
    expect(report).toMatchObject({ path, healthy: true, leader: { id: leader.id } });
  }
  expect(first.find((r) => r.leading)!.since).not.toBeNull();
  expect(await leaderGauge(leader)).toBe(1);
  expect(await leaderGauge(survivor)).toBe(0);

  const health = watchHealth(nodes);
  try {
    // A healthy steady state for a moment, then the leader dies without a word.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    const report = await until(
      async () => {
        const r = await leaderOf(survivor);
        return r.leading ? r : undefined;
      },
      `${survivor.id} to lead within the crash bound`,
      crashBoundMs,
    );
    expect(report.leader!.id).toBe(survivor.id);
    expect(BigInt(report.leader!.token)).toBeGreaterThan(BigInt(first[0]!.leader!.token));
    expect(await leaderGauge(survivor)).toBe(1);
    expect(Date.now() - killedAt).toBeLessThan(crashBoundMs);
    await new Promise((resolve) => setTimeout(resolve, 500));
  } finally {
    await health.stop();
  }
  expect(health.bad).toEqual([]);
}

describe('vip run --http: two nodes on one path', () => {
  it('etcd: one reports itself leader in /metrics and /leader; after a SIGKILL of it the other does within the crash bound; /healthz 200 throughout', async () => {
    const etcd = await startEtcd();
    defer(() => etcd.close());
    const ttl = 2;
    // etcd's crash bound: the lease expires ttl after the last keepalive (at most ttl after the kill),
    // then the follower sees the key deleted and acquires; + 5 s for two processes on a loaded machine.
    await scenario(etcd.connectionString, `${uniquePrefix('vip-http')}job`, ttl, 2 * ttl * 1000 + 5000);
  });

  it('Consul (agent with its default limits): the same, within 3 × ttl (session invalidation up to 2 × ttl, then the lock delay)', async () => {
    const consul = await startConsul();
    defer(() => consul.close());
    const ttl = 10; // Consul's smallest session TTL with its default limits
    await scenario(consul.connectionString, `${uniqueConsulPrefix('vip-http')}job`, ttl, 3 * ttl * 1000 + 5000);
  }, 120_000);
});
