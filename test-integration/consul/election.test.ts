import { afterEach, describe, expect, it } from 'vitest';
import { assertNoSplitBrain, terms } from '../checker.js';
import { Election, startConsul, startProxy, uniqueConsulPrefix, type CandidateProcess, type ConsulAgent } from '../harness/index.js';
import { lastAnnounced, sawFree } from '../fixtures/candidate-log.js';

// Candidates in separate OS processes against a real Consul agent, under real
// faults, checked by the split-brain checker. Consul's shortest session TTL is
// 10 s and it may take 2 × TTL to invalidate a dead session, so these are slower
// than the etcd ones. Order is asserted from the logs, never as a wall-clock
// bound: each event is compared with another event or with a time a process
// announced. The one such time from Consul's rules is `heldUntil`: a session
// renewed by a request sent at t is not invalidated before t + ttl, so Consul
// cannot free a key by invalidation before its holder's last `heldUntil`
// (fixtures/candidate.mjs).
const TTL = 10;
// core's default (ttl / 5), given explicitly so that the fixture can log heldUntil = deadline + margin
const SAFETY_MARGIN = TTL / 5;

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
    election.spawn({ backend: 'consul', address, path, id, ttl: TTL, env: { VIP_SAFETY_MARGIN: String(SAFETY_MARGIN) } });
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
    await leader.stop();
    await election.until(() => election.leaders().length === 1, 'the next leader');
    const deselect = leader.events('deselect')[0]!;
    const held = lastAnnounced(leader, deselect.at);
    const next = election.log.find((line) => line.event === 'select' && line.id !== leader.id)!;
    expect(deselect.reason).toBe('stopped');
    expect(deselect.at).toBeLessThanOrEqual(next.at);
    // Freed by the release, not by invalidation: Consul could not have
    // invalidated the session before heldUntil, and closing the store does not
    // destroy a session that still holds a key. Without the release this
    // fails (run with VIP_NO_RELEASE=1 in the environment: the successor
    // selects only after Consul invalidates the session, 2 × ttl after its last renew).
    expect(next.at).toBeLessThan(held.heldUntil);
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
    const successor = nodes.find((node) => node.id === next.id)!;
    expect(successor).not.toBe(leader);
    // Nobody released: kill, then Consul invalidates the session and deletes
    // the key (Behavior "delete"; the successor sees it free, no sooner than
    // the dead leader's heldUntil), then the successor wins it.
    const free = sawFree(successor, killedAt);
    expect(free, 'the successor saw the key free after the kill').toBeDefined();
    expect(free!.at).toBeGreaterThanOrEqual(lastAnnounced(leader).heldUntil);
    expect(next.at).toBeGreaterThanOrEqual(free!.at);
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
    await election.until(() => other.isLeading(), 'the direct node to take over', (3 * TTL + 10) * 1000);
    const deselect = cutOff.events('deselect')[0];
    expect(deselect, 'the cut node deselected before the other took over').toBeDefined();
    const held = lastAnnounced(cutOff, deselect!.at);
    const select = other.events('select')[0]!;
    // 'expired': its local deadline passed with no renew confirmed (Consul did not tell it 'lost').
    expect(deselect!.reason).toBe('expired');
    expect(deselect!.at).toBeLessThan(select.at);
    // The other saw the key free only once Consul invalidated the cut
    // leader's session (after its deadline, and no sooner than heldUntil), and won it then.
    const free = sawFree(other, held.line.at);
    expect(free, 'the direct node saw the key free').toBeDefined();
    expect(free!.at).toBeGreaterThanOrEqual(held.heldUntil);
    expect(select.at).toBeGreaterThanOrEqual(free!.at);
    // Healed, the cut node learns who leads now and does not lead again.
    proxy.heal();
    await election.until(() => cutOff.events('change').some((line) => line.leader === other.id), 'the healed node to see the new leader', 60_000);
    expect(cutOff.events('select')).toHaveLength(1);
    expect(cutOff.isLeading()).toBe(false);
    check();
  });
});
