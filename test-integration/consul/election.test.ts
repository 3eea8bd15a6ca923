import { afterEach, describe, expect, it } from 'vitest';
import { assertNoSplitBrain, terms } from '../checker.js';
import { Election, startConsul, startProxy, uniqueConsulPrefix, type CandidateProcess, type ConsulAgent } from '../harness/index.js';

// Candidates in separate OS processes against a real Consul agent, under real
// faults, checked by the split-brain checker. Consul's shortest session TTL is
// 10 s and it may take 2 × TTL to invalidate a dead session, so these are slower
// than the etcd ones; order comes from the logs, bounds only from Consul's rules.
const TTL = 10;

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
});

async function setup(options: { persistent?: boolean } = {}) {
  const consul: ConsulAgent = await startConsul(options);
  cleanup.push(() => consul.close());
  const election = new Election();
  cleanup.push(() => election.close());
  const path = `${uniqueConsulPrefix('election')}job`;
  const spawn = (id: string, address = consul.connectionString): CandidateProcess =>
    election.spawn({ backend: 'consul', address, path, id, ttl: TTL });
  const check = (): void => assertNoSplitBrain(terms(election.log, election.deaths()));
  const started = (nodes: CandidateProcess[]) => () => election.leaders().length === 1 && nodes.every((n) => n.events('started').length === 1);
  return { consul, election, spawn, check, started };
}

describe('consul: candidates in separate processes', () => {
  it('a graceful stop hands over in one blocking-query round trip', async () => {
    const { election, spawn, check, started } = await setup();
    const nodes = ['a', 'b', 'c'].map((id) => spawn(id));
    await election.until(started(nodes), 'one leader');
    const leader = election.leaders()[0]!;
    const stoppedAt = Date.now();
    await leader.stop();
    await election.until(() => election.leaders().length === 1, 'the next leader');
    const next = election.log.find((line) => line.event === 'select' && line.at >= stoppedAt)!;
    expect(leader.events('deselect')[0]!.reason).toBe('stopped');
    expect(leader.events('deselect')[0]!.at).toBeLessThanOrEqual(next.at);
    expect(next.at - stoppedAt).toBeLessThan(TTL * 1000); // not by session invalidation
    check();
  });

  it('kill -9 of the leader: another takes over once Consul invalidates its session', async () => {
    const { election, spawn, check, started } = await setup();
    const nodes = ['a', 'b'].map((id) => spawn(id));
    await election.until(started(nodes), 'one leader');
    const leader = election.leaders()[0]!;
    await leader.kill();
    const killedAt = leader.deaths[0]!;
    await election.until(() => election.leaders().length === 1, 'a new leader', (3 * TTL + 10) * 1000);
    const next = election.log.find((line) => line.event === 'select' && line.at > killedAt)!;
    expect(next.id).not.toBe(leader.id);
    expect(next.at - killedAt).toBeGreaterThanOrEqual((TTL * 1000 * 2) / 3); // the session had to expire
    check();
  });

  // A Consul server with a data directory, as in production: a -dev agent forgets
  // every session and key on restart, and its raft indexes (the fencing tokens)
  // start over, which no lock built on it can survive (see the package README).
  it('Consul server restarted under a running election: never two leaders, and a leader again afterwards', async () => {
    const { consul, election, spawn, check, started } = await setup({ persistent: true });
    const nodes = ['a', 'b', 'c'].map((id) => spawn(id));
    await election.until(started(nodes), 'one leader');
    const restartedAt = Date.now();
    await consul.restart();
    await election.until(
      () => election.leaders().length === 1 && election.log.some((line) => line.at > restartedAt && (line.event === 'select' || line.event === 'refresh')),
      'a leader after the restart',
      (3 * TTL + 10) * 1000,
    );
    check();
  });

  it('the leader cut off by a TCP proxy deselects at its local deadline; the other takes over only after that', async () => {
    const { consul, election, spawn, check } = await setup();
    const proxy = await startProxy(consul.port);
    cleanup.push(() => proxy.close());
    const cutOff = spawn('behind-proxy', `consul://127.0.0.1:${proxy.port}`);
    await election.until(() => cutOff.isLeading(), 'the proxied node to lead');
    const other = spawn('direct');
    await election.until(() => other.events('started').length === 1, 'the other node to start');
    proxy.stall();
    const stalledAt = Date.now();
    await election.until(() => other.isLeading(), 'the direct node to take over', (3 * TTL + 10) * 1000);
    const deselect = cutOff.events('deselect')[0]!;
    const select = other.events('select')[0]!;
    expect(deselect.reason).toBe('expired');
    expect(deselect.at).toBeLessThan(select.at);
    expect(deselect.at - stalledAt).toBeLessThan(TTL * 1000);
    proxy.heal();
    check();
  });
});
