import { getEventListeners } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { Candidate, locker, type DeselectReason } from './candidate.js';
import { VipDeselectedError, VipOptionError, VipStoreError, VipTimeoutError } from './errors.js';
import { MemoryBackend, MemoryStore } from './memory-store.js';
import type { CandidateOptions } from './options.js';
import type { Clock } from './clock.js';
import type { Holder, LockStore } from './store.js';
import { FakeClock, FaultyStore, settle } from './testing/index.js';

const TTL = 3; // seconds: deadline at 2.4 s, refresh every 1 s

interface Logged {
  at: number;
  node: string;
  event: string;
  detail?: unknown;
}

/** N candidates, each with its own store client (a "process") on one backend and one fake clock. */
function cluster(size: number, options: Partial<CandidateOptions> = {}) {
  const clock = new FakeClock();
  clocks.add(clock);
  const backend = new MemoryBackend({ clock });
  const log: Logged[] = [];
  const nodes = Array.from({ length: size }, (_, i) => {
    const store = new FaultyStore(new MemoryStore({ backend }), { clock });
    faulty.add(store);
    const candidate = new Candidate(store, { path: '/job', id: `n${i}`, value: `v${i}`, ttl: TTL, clock, random: () => 0.5, ...options });
    const node = `n${i}`;
    for (const event of ['change', 'select', 'deselect', 'refresh', 'error'] as const) {
      candidate.on(event, (...args: unknown[]) => {
        log.push({ at: clock.now(), node, event, detail: event === 'select' ? (args[2] as Holder).token : args[0] });
      });
    }
    return { store, candidate, node };
  });
  const leaders = () => nodes.filter((n) => n.candidate.isSelected());
  return { clock, backend, log, nodes, leaders };
}

/** Advance in small steps, asserting at every step that at most one node is selected. */
async function run(c: ReturnType<typeof cluster>, ms: number, step = 50): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    await c.clock.advance(step);
    expect(c.leaders().length).toBeLessThanOrEqual(1);
  }
}

const started: Candidate[] = [];
const clocks = new Set<FakeClock>();
const faulty = new Set<FaultyStore>();
afterEach(async () => {
  for (const store of faulty) store.heal();
  const stopping = Promise.all(started.splice(0).map((candidate) => candidate.stop()));
  let done = false;
  void stopping.then(() => (done = true));
  // Stopping may wait on timers (request timeouts) of the fake clocks.
  for (let i = 0; i < 1000 && !done; i++) for (const clock of clocks) await clock.advance(10);
  await stopping;
  clocks.clear();
  faulty.clear();
});
async function startAll(c: ReturnType<typeof cluster>): Promise<void> {
  for (const { candidate } of c.nodes) {
    started.push(candidate);
    await candidate.start();
  }
}

/** A candidate on its own MemoryStore whose calls can be intercepted; `null` from a hook means "pass through". */
function single(hooks: {
  refresh?: (held: Holder, signal?: AbortSignal) => Promise<Holder | null> | null;
  compareAndSwap?: (expected: Holder | null, next: unknown) => Promise<{ ok: boolean; holder: Holder | null }> | null;
  /** Make the watch injectable: `inject(holder)` delivers an event the server never sent (a late or stale one). */
  injectable?: boolean;
}, options: Partial<CandidateOptions> = {}) {
  const clock = new FakeClock();
  clocks.add(clock);
  const backend = new MemoryBackend({ clock });
  const inner = new MemoryStore({ backend });
  let inject: (holder: Holder | null) => void = () => {
    throw new Error('single(): pass { injectable: true } to inject watch events');
  };
  async function* injectableWatch(key: string, signal: AbortSignal): AsyncGenerator<Holder | null> {
    const queue: (Holder | null)[] = [];
    let wake: (() => void) | undefined;
    inject = (holder) => (queue.push(holder), wake?.());
    const forward = (async () => {
      for await (const holder of inner.watch(key, signal)) inject(holder);
    })();
    while (!signal.aborted) {
      if (queue.length) yield queue.shift()!;
      else await new Promise<void>((resolve) => ((wake = resolve), signal.addEventListener('abort', () => resolve())));
    }
    await forward;
  }
  const store: LockStore = {
    compareAndSwap: (key, expected, next, ttl, signal) => hooks.compareAndSwap?.(expected, next) ?? inner.compareAndSwap(key, expected, next, ttl, signal),
    refresh: (key, held, ttl, signal) => hooks.refresh?.(held, signal) ?? inner.refresh(key, held, ttl, signal),
    watch: (key, signal) => (hooks.injectable ? injectableWatch(key, signal) : inner.watch(key, signal)),
    close: () => inner.close(),
  };
  const candidate = new Candidate(store, { path: '/job', id: 'a', ttl: TTL, clock, random: () => 0.5, ...options });
  started.push(candidate);
  const log: string[] = [];
  candidate.on('select', (_v, _id, holder) => log.push(`select:${holder.token}@${clock.now()}`));
  candidate.on('deselect', (reason) => log.push(`deselect:${reason}@${clock.now()}`));
  candidate.on('refresh', () => log.push(`refresh@${clock.now()}`));
  candidate.on('error', () => log.push(`error@${clock.now()}`));
  candidate.on('suspend', () => log.push(`suspend@${clock.now()}`));
  candidate.on('resume', () => log.push(`resume@${clock.now()}`));
  return { clock, backend, inner, candidate, log, inject: (holder: Holder | null) => inject(holder) };
}

const events = (c: ReturnType<typeof cluster>, node: string) => c.log.filter((l) => l.node === node && l.event !== 'refresh' && l.event !== 'change').map((l) => `${l.event}:${String(l.detail)}`);

describe('Candidate: election', () => {
  it('a single candidate elects itself, announces change then select, and holds a token', async () => {
    const c = cluster(1);
    const [{ candidate }] = c.nodes as [(typeof c.nodes)[0]];
    expect(candidate.isSelected()).toBe(false);
    await startAll(c);
    await settle();
    expect(candidate.isSelected()).toBe(true);
    expect(candidate.id()).toBe('n0');
    expect(candidate.value()).toBe('v0');
    expect(typeof candidate.token()).toBe('bigint');
    expect(c.log.filter((l) => l.event !== 'refresh').map((l) => l.event)).toEqual(['change', 'change', 'select']);
    expect(c.log[0]!.detail).toBeNull(); // first the key was seen free
  });

  it('three candidates: exactly one selected at every step, the others follow it', async () => {
    const c = cluster(3);
    await startAll(c);
    await run(c, 10_000);
    expect(c.leaders()).toHaveLength(1);
    const leader = c.leaders()[0]!;
    for (const { candidate } of c.nodes) expect(candidate.id()).toBe(leader.candidate.localid());
    expect(c.log.filter((l) => l.event === 'select')).toHaveLength(1);
    expect(c.log.filter((l) => l.event === 'deselect')).toHaveLength(0);
    // The leader refreshed every ttl/3 without ever losing the key.
    expect(c.log.filter((l) => l.event === 'refresh').length).toBeGreaterThanOrEqual(9);
  });

  it('graceful stop: deselect("stopped"), resign, and another node selected in the same instant', async () => {
    const c = cluster(3);
    await startAll(c);
    await run(c, 500);
    const leader = c.leaders()[0]!;
    const stoppedAt = c.clock.now();
    await leader.candidate.stop();
    await settle();
    const next = c.leaders();
    expect(next).toHaveLength(1);
    expect(next[0]).not.toBe(leader);
    const handover = c.log.filter((l) => l.at === stoppedAt && (l.event === 'select' || l.event === 'deselect'));
    expect(handover.map((l) => `${l.node}:${l.event}`)).toEqual([`${leader.node}:deselect`, `${next[0]!.node}:select`]);
    expect(c.log.find((l) => l.node === leader.node && l.event === 'deselect')!.detail).toBe('stopped');
  });

  it('leader crash (its store goes silent): another node takes over only after the ttl', async () => {
    const c = cluster(2);
    await startAll(c);
    await run(c, 500);
    const leader = c.leaders()[0]!;
    const other = c.nodes.find((n) => n !== leader)!;
    const crashAt = c.clock.now();
    leader.store.partition();
    await run(c, 6000);
    expect(other.candidate.isSelected()).toBe(true);
    const selectedAt = c.log.find((l) => l.node === other.node && l.event === 'select')!.at;
    // The hold was last confirmed before the crash, so the server frees it no sooner than ttl after that.
    expect(selectedAt - crashAt).toBeGreaterThan(TTL * 1000 - 1000);
    const deselect = c.log.find((l) => l.node === leader.node && l.event === 'deselect')!;
    expect(deselect.detail).toBe('expired');
    expect(deselect.at).toBeLessThan(selectedAt);
  });

  it('partition: the leader deselects at its local deadline, before the store hands the key to another', async () => {
    const c = cluster(2);
    await startAll(c);
    await run(c, 1200); // one refresh confirmed at t=1000
    const leader = c.leaders()[0]!;
    const other = c.nodes.find((n) => n !== leader)!;
    const lastRefresh = c.log.filter((l) => l.node === leader.node && l.event === 'refresh').at(-1)!;
    leader.store.partition();
    await run(c, 5000);
    const deselect = c.log.find((l) => l.node === leader.node && l.event === 'deselect')!;
    const select = c.log.find((l) => l.node === other.node && l.event === 'select')!;
    expect(deselect.detail).toBe('expired');
    // deadline = send time of the last confirmed refresh + ttl - safetyMargin (ttl/5)
    expect(deselect.at).toBe(lastRefresh.at + TTL * 1000 * 0.8);
    expect(select.at).toBeGreaterThanOrEqual(lastRefresh.at + TTL * 1000);
    expect(deselect.at).toBeLessThan(select.at);
  });

  it('after a partition heals, the old leader releases its stale hold and rejoins as a follower', async () => {
    const c = cluster(1);
    await startAll(c);
    await run(c, 500);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    const firstToken = node.candidate.token()!;
    node.store.partition();
    await run(c, 2500); // past the deadline (2.4 s) but before the server expiry (3 s)
    expect(node.candidate.isSelected()).toBe(false);
    node.store.heal();
    await run(c, 2000);
    expect(node.candidate.isSelected()).toBe(true);
    expect(node.candidate.token()! > firstToken).toBe(true);
    expect(events(c, node.node)).toEqual([`select:${firstToken}`, 'deselect:expired', `select:${node.candidate.token()}`]);
  });

  it('store errors are reported, the candidate backs off and is elected once the store recovers', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    node.store.failAll(['compareAndSwap']);
    await startAll(c);
    await run(c, 3000);
    expect(node.candidate.isSelected()).toBe(false);
    const errors = c.log.filter((l) => l.event === 'error');
    expect(errors.length).toBeGreaterThanOrEqual(3);
    // Backoff: far fewer attempts than a hot loop would make in 3 s.
    expect(node.store.calls.compareAndSwap).toBeLessThan(30);
    node.store.heal();
    await run(c, 3000);
    expect(node.candidate.isSelected()).toBe(true);
  });

  it('a refresh answered null deselects at once with "lost"', async () => {
    const c = cluster(1);
    await startAll(c);
    await run(c, 200);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    // The hold vanishes on the server (lease revoked by an operator, say).
    c.backend.expireAll(node.store.inner as MemoryStore);
    await settle();
    expect(c.log.find((l) => l.event === 'deselect')?.detail).toBe('lost');
    expect(c.log.find((l) => l.event === 'deselect')?.at).toBe(c.clock.now());
  });

  it('a newer holder seen on the watch deselects the leader with "lost"', async () => {
    const c = cluster(1);
    await startAll(c);
    await run(c, 200);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    const intruder = new MemoryStore({ backend: c.backend });
    // The server drops our hold and another process wins the key before our watch catches up.
    c.backend.expireAll(node.store.inner as MemoryStore);
    const result = await intruder.compareAndSwap('/job', null, { id: 'intruder', value: '' }, TTL);
    expect(result.ok).toBe(true);
    await settle();
    expect(node.candidate.isSelected()).toBe(false);
    expect(c.log.find((l) => l.event === 'deselect')?.detail).toBe('lost');
    expect(node.candidate.id()).toBe('intruder');
  });

  it('a late "key free" event while leading is checked with the store, not trusted', async () => {
    const clock = new FakeClock();
    clocks.add(clock);
    const inner = new MemoryStore({ clock });
    let inject: ((holder: Holder | null) => void) | undefined;
    // A store whose watch can be made to deliver a stale event, as a lagging stream would.
    const store: LockStore = {
      compareAndSwap: (...args) => inner.compareAndSwap(...args),
      refresh: (...args) => inner.refresh(...args),
      close: () => inner.close(),
      async *watch(key, signal) {
        const queue: (Holder | null)[] = [];
        let wake: (() => void) | undefined;
        inject = (holder) => (queue.push(holder), wake?.());
        const forward = (async () => {
          for await (const holder of inner.watch(key, signal)) inject!(holder);
        })();
        while (!signal.aborted) {
          if (queue.length) yield queue.shift()!;
          else await new Promise<void>((resolve) => ((wake = resolve), signal.addEventListener('abort', () => resolve())));
        }
        await forward;
      },
    };
    const candidate = new Candidate(store, { path: '/job', id: 'a', ttl: TTL, clock });
    started.push(candidate);
    const reasons: string[] = [];
    candidate.on('deselect', (reason) => reasons.push(reason));
    await candidate.start();
    await settle();
    const token = candidate.token();
    expect(token).not.toBeNull();
    const changes: (string | null)[] = [];
    candidate.on('change', (_value, leaderId) => changes.push(leaderId));
    inject!(null); // stale: the key is still ours
    await settle();
    expect(candidate.isSelected()).toBe(true);
    expect(candidate.token()).toBe(token);
    expect(candidate.id()).toBe('a');
    expect(changes).toEqual([]); // nobody was told the key is free
    expect(reasons).toEqual([]);
    // A real loss behind a live hold is caught the same way, and the candidate
    // campaigns again for the key it now knows is free.
    await inner.compareAndSwap('/job', inner.backend.get('/job'), null, TTL);
    await settle();
    expect(reasons).toEqual(['lost']);
    expect(candidate.isSelected()).toBe(true);
    expect(candidate.token()! > token!).toBe(true);
  });

  it('leaders of different keys in one process refresh at the same instants, so one keepalive can serve them all', async () => {
    const clock = new FakeClock();
    clocks.add(clock);
    const refreshedAt: number[] = [];
    const inner = new MemoryStore({ clock });
    const store: LockStore = {
      compareAndSwap: (...args) => inner.compareAndSwap(...args),
      refresh: (...args) => (refreshedAt.push(clock.now()), inner.refresh(...args)),
      watch: (key, signal) => inner.watch(key, signal),
      close: () => inner.close(),
    };
    for (const [i, delay] of [0, 137, 420, 777].entries()) {
      await clock.advance(delay - clock.now());
      const candidate = new Candidate(store, { path: `/job/${i}`, ttl: TTL, clock });
      started.push(candidate);
      await candidate.start();
    }
    refreshedAt.length = 0;
    await clock.advance(5000);
    const instants = new Set(refreshedAt);
    expect(refreshedAt.length).toBeGreaterThanOrEqual(4 * 4);
    expect(instants.size).toBeLessThanOrEqual(refreshedAt.length / 4);
    for (const at of instants) expect(at % 1000).toBe(0); // multiples of the refresh interval (ttl/3 = 1 s)
  });

  it('isSelected() is false after a long pause, before any timer has fired', async () => {
    const c = cluster(1);
    await startAll(c);
    await run(c, 100);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    expect(node.candidate.isSelected()).toBe(true);
    // Won at t=0, so the deadline is 0 + ttl - safetyMargin = 2400 ms; it is now 100 ms.
    c.clock.jump(2299); // the process was stopped; no timer ran
    expect(node.candidate.isSelected()).toBe(true); // 1 ms before the deadline
    c.clock.jump(2); // 1 ms past it, well before the server's expiry at 3000 ms
    expect(node.candidate.isSelected()).toBe(false);
    expect(node.candidate.token()).toBeNull();
    expect(node.candidate.timeLeft()).toBeNull();
  });

  it('start/stop/start cycles campaign again with a new, larger token', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    const tokens: bigint[] = [];
    for (let cycle = 0; cycle < 3; cycle++) {
      await node.candidate.start();
      await node.candidate.start(); // twice is safe
      await settle();
      expect(node.candidate.isSelected()).toBe(true);
      tokens.push(node.candidate.token()!);
      await Promise.all([node.candidate.stop(), node.candidate.stop()]); // twice is safe
      expect(node.candidate.isSelected()).toBe(false);
      expect(c.backend.get('/job')).toBeNull(); // resigned
    }
    expect(tokens[1]! > tokens[0]! && tokens[2]! > tokens[1]!).toBe(true);
    expect(events(c, 'n0')).toEqual(tokens.flatMap((t) => [`select:${t}`, 'deselect:stopped']));
  });

  it('events come in the documented order on every node through many failovers, and tokens increase', async () => {
    const c = cluster(3);
    await startAll(c);
    for (let round = 0; round < 6; round++) {
      await run(c, 700);
      const leader = c.leaders()[0]!;
      if (round % 2 === 0) {
        await leader.candidate.stop();
        started.push(leader.candidate);
        await leader.candidate.start();
      } else {
        leader.store.partition();
        await run(c, 4000);
        leader.store.heal();
      }
    }
    await run(c, 3000);
    for (const { node } of c.nodes) {
      const own = c.log.filter((l) => l.node === node && (l.event === 'select' || l.event === 'deselect'));
      own.forEach((l, i) => expect(l.event).toBe(i % 2 === 0 ? 'select' : 'deselect'));
    }
    const tokens = c.log.filter((l) => l.event === 'select').map((l) => l.detail as bigint);
    expect(tokens.length).toBeGreaterThanOrEqual(6);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]! > tokens[i - 1]!).toBe(true);
    // Terms never overlap: every select after the first follows the previous leader's deselect.
    const terms = c.log.filter((l) => l.event === 'select' || l.event === 'deselect');
    let leading: string | null = null;
    for (const l of terms) {
      if (l.event === 'select') {
        expect(leading).toBeNull();
        leading = l.node;
      } else {
        expect(leading).toBe(l.node);
        leading = null;
      }
    }
  });

  it('a compare-and-swap whose answer never came is cleaned up: the stale hold is released, never led on', async () => {
    const clock = new FakeClock();
    const backend = new MemoryBackend({ clock });
    const store = new FaultyStore(new MemoryStore({ backend }), { clock });
    clocks.add(clock);
    const candidate = new Candidate(store, { path: '/job', id: 'slow', ttl: TTL, requestTimeout: 1, clock, random: () => 0.5 });
    started.push(candidate);
    const selects: bigint[] = [];
    candidate.on('select', (_v, _id, holder) => selects.push(holder.token));
    // The CAS takes effect on the store, but its answer is lost: outcome unknown.
    store.loseAnswers(['compareAndSwap']);
    await candidate.start();
    await clock.advance(1000); // the candidate's request timeout
    expect(candidate.isSelected()).toBe(false);
    expect(backend.get('/job')?.id).toBe('slow'); // it did win, without knowing
    store.heal();
    await clock.until(() => candidate.isSelected(), 10_000);
    expect(selects).toHaveLength(1);
    expect(selects[0]! > 1n).toBe(true); // the late hold (token 1) was released, a fresh term won
  });
});

describe('Candidate: leading through refresh outcomes', () => {
  /** A candidate on a MemoryStore whose refresh answers can be replaced, with a silent watch of its own. */
  function leaderWithRefresh(answer: () => Promise<Holder | null> | undefined) {
    const clock = new FakeClock();
    clocks.add(clock);
    const inner = new MemoryStore({ clock });
    const store: LockStore = {
      compareAndSwap: (...args) => inner.compareAndSwap(...args),
      refresh: (...args) => answer() ?? inner.refresh(...args),
      watch: (key, signal) => inner.watch(key, signal),
      close: () => inner.close(),
    };
    const candidate = new Candidate(store, { path: '/job', id: 'a', ttl: TTL, clock, random: () => 0.5 });
    started.push(candidate);
    const log: string[] = [];
    candidate.on('select', () => log.push(`select@${clock.now()}`));
    candidate.on('deselect', (reason) => log.push(`deselect:${reason}@${clock.now()}`));
    candidate.on('refresh', () => log.push(`refresh@${clock.now()}`));
    candidate.on('error', () => log.push(`error@${clock.now()}`));
    return { clock, candidate, log, inner };
  }

  it('a refresh answered null deselects at that instant with "lost", while the watch saw nothing', async () => {
    let lost = false;
    const { clock, candidate, log } = leaderWithRefresh(() => (lost ? Promise.resolve(null) : undefined));
    await candidate.start();
    await clock.advance(1500); // refreshed at 1000
    lost = true; // the store now says the hold is gone; the key itself is untouched, so the watch stays quiet
    await clock.advance(1000);
    // (It then campaigns again like any follower: this store still shows the key as ours, so it frees and wins it anew.)
    expect(log.slice(0, 3)).toEqual(['select@0', 'refresh@1000', 'deselect:lost@2000']);
  });

  it('refreshes that fail (outcome unknown) are reported and retried; the leader keeps leading and recovers', async () => {
    let failures = 2;
    const { clock, candidate, log } = leaderWithRefresh(() => (failures-- > 0 ? Promise.reject(new Error('store unreachable')) : undefined));
    await candidate.start();
    await clock.advance(1500); // the refresh at 1000 fails, its retry after the backoff fails, the next succeeds
    expect(log.filter((l) => !l.startsWith('select'))).toEqual(['error@1000', 'error@1075', 'refresh@1225']);
    await clock.advance(3000); // past the first term's deadline (2400): the confirmed refresh moved it
    expect(candidate.isSelected()).toBe(true);
    expect(log.some((l) => l.startsWith('deselect'))).toBe(false);
  });

  it('a refresh timer that fires a little early (as real timers do) does not make the leader refresh twice', async () => {
    const fake = new FakeClock();
    clocks.add(fake);
    // Node rounds timers to whole milliseconds and performance.now() may then read just before the due time.
    const early: Clock = { now: () => fake.now(), setTimeout: (callback, ms) => fake.setTimeout(callback, Math.max(0, ms - 1)), clearTimeout: (handle) => fake.clearTimeout(handle) };
    let refreshes = 0;
    const inner = new MemoryStore({ clock: fake });
    const store: LockStore = {
      compareAndSwap: (...args) => inner.compareAndSwap(...args),
      refresh: (...args) => (refreshes++, inner.refresh(...args)),
      watch: (key, signal) => inner.watch(key, signal),
      close: () => inner.close(),
    };
    const candidate = new Candidate(store, { path: '/job', ttl: TTL, clock: early, random: () => 0.5 });
    started.push(candidate);
    await candidate.start();
    await fake.advance(9000);
    expect(candidate.isSelected()).toBe(true);
    expect(refreshes).toBe(9); // one per refresh interval (1 s), not two
  });
});

describe('Candidate: the store is told what it may keep ready', () => {
  it('start() tells the store the ttl of its acquisitions, for as long as that run lasts; each start() anew', async () => {
    const c = cluster(2);
    const [a, b] = c.nodes as [(typeof c.nodes)[number], (typeof c.nodes)[number]];
    started.push(a.candidate, b.candidate);
    expect(a.store.prepared).toEqual([]);
    await a.candidate.start();
    await b.candidate.start();
    await run(c, 100);
    expect(a.store.prepared.map(({ ttl }) => ttl)).toEqual([TTL]);
    expect(b.store.prepared.map(({ ttl }) => ttl)).toEqual([TTL]);
    const first = a.store.prepared[0]!;
    // Leading or following, the run goes on: what the store keeps ready stays wanted.
    expect(a.candidate.isSelected()).toBe(true);
    expect(first.signal.aborted).toBe(false);
    expect(b.store.prepared[0]!.signal.aborted).toBe(false);
    const stopping = a.candidate.stop();
    expect(first.signal.aborted).toBe(true);
    await stopping;
    await a.candidate.start();
    await run(c, 100);
    expect(a.store.prepared.map(({ signal }) => signal.aborted)).toEqual([true, false]);
  });

  it('a store whose prepare() throws (against the contract) still gets a candidate that campaigns and leads', async () => {
    const clock = new FakeClock();
    clocks.add(clock);
    const inner = new MemoryStore({ backend: new MemoryBackend({ clock }) });
    const store: LockStore = {
      compareAndSwap: (key, expected, next, ttl, signal) => inner.compareAndSwap(key, expected, next, ttl, signal),
      refresh: (key, held, ttl, signal) => inner.refresh(key, held, ttl, signal),
      watch: (key, signal) => inner.watch(key, signal),
      close: () => inner.close(),
      prepare: () => {
        throw new Error('prepare broke');
      },
    };
    const candidate = new Candidate(store, { path: '/job', id: 'a', ttl: TTL, clock });
    started.push(candidate);
    const errors: Error[] = [];
    candidate.on('error', (error: Error) => errors.push(error));
    await candidate.start();
    await clock.advance(50);
    expect(candidate.isSelected()).toBe(true);
    expect(errors).toEqual([]);
  });
});

describe('Candidate: stop() puts the release first', () => {
  it('a leader sends its release before its watch is torn down; the watch is ended once stop() resolves', async () => {
    const clock = new FakeClock();
    clocks.add(clock);
    const inner = new MemoryStore({ backend: new MemoryBackend({ clock }) });
    const order: string[] = [];
    const watchSignals: AbortSignal[] = [];
    const store: LockStore = {
      compareAndSwap: (key, expected, next, ttl, signal) => {
        if (expected !== null && next === null) order.push('release sent');
        return inner.compareAndSwap(key, expected, next, ttl, signal);
      },
      refresh: (key, held, ttl, signal) => inner.refresh(key, held, ttl, signal),
      watch: (key, signal) => {
        watchSignals.push(signal);
        signal.addEventListener('abort', () => order.push('watch aborted'));
        return inner.watch(key, signal);
      },
      close: () => inner.close(),
    };
    const candidate = new Candidate(store, { path: '/job', id: 'a', ttl: TTL, clock });
    started.push(candidate);
    candidate.on('deselect', () => order.push('deselect'));
    await candidate.start();
    await clock.advance(50);
    expect(candidate.isSelected()).toBe(true);
    await candidate.stop();
    expect(order).toEqual(['deselect', 'release sent', 'watch aborted']);
    expect(watchSignals.map((signal) => signal.aborted)).toEqual([true]);
  });

  it('a follower that stops ends its watch too', async () => {
    const c = cluster(2);
    const [a, b] = c.nodes as [(typeof c.nodes)[number], (typeof c.nodes)[number]];
    started.push(a.candidate, b.candidate);
    await a.candidate.start();
    await b.candidate.start();
    await run(c, 100);
    expect(b.store.calls.watch).toBe(1);
    await b.candidate.stop();
    await run(c, 100);
    // The leader is not disturbed, and b, stopped, no longer hears of the key.
    expect(a.candidate.isSelected()).toBe(true);
    const heard: unknown[] = [];
    b.candidate.on('change', (...args: unknown[]) => heard.push(args));
    await a.candidate.stop();
    await run(c, 100);
    expect(heard).toEqual([]);
  });
});

describe('Candidate: start() and stop() under races', () => {
  it('stop() while an acquisition is on its way waits for its answer and releases the key it won', async () => {
    const clock = new FakeClock();
    clocks.add(clock);
    const backend = new MemoryBackend({ clock });
    const inner = new MemoryStore({ backend });
    // The CAS reaches the server at once; its answer takes 50 ms to come back,
    // and the watch lags: it has shown the key free and nothing since.
    const store: LockStore = {
      compareAndSwap: async (...args) => {
        const result = await inner.compareAndSwap(...args);
        if (args[2] !== null) await new Promise<void>((resolve) => clock.setTimeout(resolve, 50)); // acquisitions only
        return result;
      },
      refresh: (...args) => inner.refresh(...args),
      async *watch(_key, signal) {
        yield null;
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
      },
      close: () => inner.close(),
    };
    const candidate = new Candidate(store, { path: '/job', id: 'a', ttl: TTL, clock });
    const selects: bigint[] = [];
    candidate.on('select', (_v, _id, holder) => selects.push(holder.token));
    await candidate.start(); // read the key free; the CAS is on its way
    await clock.advance(10);
    expect(backend.get('/job')?.id).toBe('a'); // won on the server, not yet known here
    const stopping = candidate.stop();
    await clock.advance(100);
    await stopping;
    expect(backend.get('/job')).toBeNull(); // released, not left to expire
    expect(selects).toEqual([]); // never announced a leadership it won after stop()
  });

  it('a release that fails in stop() is retried in the background until the store answers', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    expect(node.candidate.isSelected()).toBe(true);
    node.store.failAll(['compareAndSwap']); // the store cannot be reached for the release
    await node.candidate.stop(); // resolves all the same
    expect(c.backend.get('/job')?.id).toBe('n0');
    await c.clock.advance(500);
    expect(c.backend.get('/job')?.id).toBe('n0'); // still failing, still held (on a shared lease it could live on)
    node.store.heal();
    await c.clock.advance(1000);
    expect(c.backend.get('/job')).toBeNull(); // released, before the hold's own expiry at 3 s
    expect(c.log.filter((l) => l.event === 'error').length).toBeGreaterThanOrEqual(2);
  });

  it('stop(), start(), stop() in a row ends stopped: the last call wins', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    expect(node.candidate.isSelected()).toBe(true);
    const first = node.candidate.stop();
    const restart = node.candidate.start();
    const last = node.candidate.stop();
    await Promise.all([first, restart, last]);
    await run(c, 5000);
    expect(node.candidate.isSelected()).toBe(false);
    expect(c.backend.get('/job')).toBeNull();
    expect(events(c, 'n0')).toEqual([`select:${c.log.find((l) => l.event === 'select')!.detail}`, 'deselect:stopped']);
  });

  it('a deselect listener that restarts the candidate leaves one run, which a later stop() ends', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    let restarts = 0;
    node.candidate.on('deselect', async (reason) => {
      if (reason !== 'stopped' || restarts++ > 0) return;
      await node.candidate.stop();
      await node.candidate.start();
    });
    await startAll(c);
    await settle();
    await node.candidate.stop();
    await run(c, 500);
    expect(node.candidate.isSelected()).toBe(true); // the restart campaigned again and won
    await node.candidate.stop();
    const callsAfterStop = { ...node.store.calls };
    await run(c, 10_000);
    expect(node.candidate.isSelected()).toBe(false);
    expect(c.backend.get('/job')).toBeNull();
    expect(node.store.calls).toEqual(callsAfterStop); // nothing of either run is still refreshing or watching
    const tokens = c.log.filter((l) => l.event === 'select').map((l) => l.detail);
    expect(events(c, 'n0')).toEqual([`select:${tokens[0]}`, 'deselect:stopped', `select:${tokens[1]}`, 'deselect:stopped']);
  });

  it('start() resolves and reports the silence when the store never answers the first read', async () => {
    const clock = new FakeClock();
    clocks.add(clock);
    const store = new FaultyStore(new MemoryStore({ clock }), { clock }).partition();
    faulty.add(store);
    const candidate = new Candidate(store, { path: '/job', ttl: TTL, clock });
    started.push(candidate);
    const errors: Error[] = [];
    candidate.on('error', (error) => errors.push(error));
    let ready = false;
    void candidate.start().then(() => (ready = true));
    await clock.advance(2900);
    expect(ready).toBe(false);
    await clock.advance(200); // requestTimeout defaults to ttl (3 s)
    expect(ready).toBe(true);
    expect(errors.map((e) => e.message)).toEqual(['watch on "/job" failed: the first read of the key did not answer within 3000 ms']);
    store.heal();
    await clock.until(() => candidate.isSelected(), 10_000); // the watch kept trying
  });
});

describe('Candidate: events and listeners', () => {
  it('a select listener that stops the candidate: every select listener runs before the deselect', async () => {
    const clock = new FakeClock();
    clocks.add(clock);
    const candidate = new Candidate(new MemoryStore({ clock }), { path: '/job', ttl: TTL, clock });
    const order: string[] = [];
    candidate.on('select', () => {
      order.push('first select listener');
      void candidate.stop();
    });
    candidate.on('select', () => order.push(`second select listener`));
    candidate.on('deselect', (reason) => order.push(`deselect:${reason}`));
    await candidate.start();
    await clock.advance(100);
    expect(order).toEqual(['first select listener', 'second select listener', 'deselect:stopped']);
  });

  it('a leader that sees a newer holder has deselected before "change" names it', async () => {
    const c = cluster(1);
    await startAll(c);
    await run(c, 200);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    const seen: string[] = [];
    node.candidate.on('change', (_value, leaderId) => seen.push(`change:${leaderId} selected=${node.candidate.isSelected()}`));
    node.candidate.on('deselect', (reason) => seen.push(`deselect:${reason}`));
    c.backend.expireAll(node.store.inner as MemoryStore);
    await new MemoryStore({ backend: c.backend }).compareAndSwap('/job', null, { id: 'intruder', value: '' }, TTL);
    await settle();
    expect(seen).toEqual(['deselect:lost', 'change:intruder selected=false']);
  });

  it('whenSelected() rejects when the candidate is stopped before it was selected', async () => {
    const c = cluster(2);
    await startAll(c);
    await settle();
    const follower = c.nodes.find((n) => !n.candidate.isSelected())!;
    const selected = follower.candidate.whenSelected();
    await follower.candidate.stop();
    await expect(selected).rejects.toThrow(/was stopped before it was selected/);
    expect(follower.candidate.listenerCount('select')).toBe(1); // only the test's own logger is left
  });


  it('an error with no listener never crashes, and a throwing listener does not break the machine', async () => {
    const clock = new FakeClock();
    const store = new FaultyStore(new MemoryStore({ clock }), { clock }).failNext(3, ['compareAndSwap']);
    const candidate = new Candidate(store, { path: '/job', ttl: TTL, clock, random: () => 0.5 });
    started.push(candidate);
    candidate.on('select', () => {
      throw new Error('listener bug');
    });
    const later: string[] = [];
    candidate.on('select', () => later.push('second listener ran'));
    await candidate.start();
    await clock.until(() => candidate.isSelected(), 10_000);
    expect(later).toEqual(['second listener ran']);
    const errors: Error[] = [];
    candidate.on('error', (error) => errors.push(error));
    candidate.on('refresh', async () => {
      throw new Error('async listener bug');
    });
    await clock.advance(1100);
    expect(errors.map((e) => e.message)).toContain('a "refresh" listener threw: async listener bug');
    expect(candidate.isSelected()).toBe(true);
  });

  it('ping confirms the leader on followers and on the leader', async () => {
    const c = cluster(2);
    const pings: string[] = [];
    for (const { candidate, node } of c.nodes) candidate.on('ping', (_value, leaderId) => pings.push(`${node}<-${leaderId}`));
    await startAll(c);
    await run(c, 1100);
    const leader = c.leaders()[0]!.node;
    expect(pings).toContain(`${leader}<-${leader}`);
    expect(pings).toContain(`${c.nodes.find((n) => n.node !== leader)!.node}<-${leader}`);
  });

  it('whenSelected() resolves on select, at once when selected, and rejects on abort', async () => {
    const c = cluster(2);
    const [a, b] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
    const aSelected = a.candidate.whenSelected();
    started.push(a.candidate);
    await a.candidate.start();
    await settle();
    await expect(aSelected).resolves.toBeInstanceOf(AbortSignal);
    await expect(a.candidate.whenSelected()).resolves.toBe(a.candidate.termSignal());
    started.push(b.candidate);
    await b.candidate.start();
    const controller = new AbortController();
    const bSelected = b.candidate.whenSelected(controller.signal);
    controller.abort(new Error('gave up'));
    await expect(bSelected).rejects.toThrow('gave up');
  });

  it('changes() yields the current holder, then every change, and ends on stop', async () => {
    const c = cluster(2);
    const [a, b] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    const seen: (string | null)[] = [];
    const consumer = (async () => {
      for await (const holder of b.candidate.changes()) seen.push(holder?.id ?? null);
    })();
    const first = a.candidate.isSelected() ? a : b;
    await first.candidate.stop();
    await settle();
    await b.candidate.stop();
    await consumer;
    expect(seen[0]).toBe(first.node);
    expect(seen).toContain(null);
    if (first === a) expect(seen).toContain('n1');
  });

  it('locker(store)(options) makes candidates, as the locked module did', async () => {
    const node = locker(new MemoryStore())({ path: '/master', id: 'node1', value: 'apples' });
    expect(node).toBeInstanceOf(Candidate);
    expect(node.localid()).toBe('node1');
    expect(node.localvalue()).toBe('apples');
    expect(node.localdata()).toBe('node1:::apples');
  });
});

describe('Candidate: bad input is refused where it is given', () => {
  const store = new MemoryStore();
  const make = (options: unknown, on: LockStore = store) => () => new Candidate(on, options as CandidateOptions);
  const cases: [string, unknown, RegExp][] = [
    ['no options', undefined, /options must be an object/],
    ['empty path', { path: '' }, /"path" must be a non-empty string.*got string ""/],
    ['non-string path', { path: 42 }, /"path" must be a non-empty string.*got number 42/],
    ['ttl 0', { path: '/p', ttl: 0 }, /"ttl" must be a finite number of seconds greater than 0 and at most 2147483 .*\(got number 0\)/],
    ['ttl longer than a timer can wait', { path: '/p', ttl: 3e6 }, /"ttl" must be .*at most 2147483 \(the longest a timer can wait\) \(got number 3000000\)/],
    ['requestTimeout longer than a timer can wait', { path: '/p', requestTimeout: 2_147_484 }, /"requestTimeout".*at most 2147483/],
    ['backoff.max longer than a timer can wait', { path: '/p', backoff: { max: 1e7 } }, /"backoff.max".*at most 2147483/],
    ['negative ttl', { path: '/p', ttl: -1 }, /"ttl".*got number -1/],
    ['NaN ttl', { path: '/p', ttl: Number.NaN }, /"ttl".*got NaN/],
    ['Infinity ttl', { path: '/p', ttl: Number.POSITIVE_INFINITY }, /"ttl".*got number Infinity/],
    ['string ttl', { path: '/p', ttl: '10' }, /"ttl".*got string "10"/],
    ['non-string value', { path: '/p', value: 10 }, /"value" must be a string.*got number 10/],
    ['empty id', { path: '/p', id: '' }, /"id" must be a non-empty string/],
    ['refreshInterval >= ttl', { path: '/p', ttl: 10, refreshInterval: 10 }, /"refreshInterval" must be less than ttl - safetyMargin = 8/],
    ['refreshInterval past the deadline', { path: '/p', ttl: 10, refreshInterval: 9 }, /"refreshInterval"/],
    ['safetyMargin >= ttl', { path: '/p', ttl: 10, safetyMargin: 10 }, /"safetyMargin" must be a number of seconds from 0 up to \(not including\) ttl = 10/],
    ['negative safetyMargin', { path: '/p', safetyMargin: -1 }, /"safetyMargin"/],
    ['requestTimeout 0', { path: '/p', requestTimeout: 0 }, /"requestTimeout"/],
    ['backoff.max < initial', { path: '/p', backoff: { initial: 2, max: 1 } }, /"backoff.max" must be at least backoff.initial = 2/],
    ['bad clock', { path: '/p', clock: {} }, /"clock"/],
    ['bad random', { path: '/p', random: 0.5 }, /"random"/],
  ];
  for (const [label, options, message] of cases) {
    it(`refuses ${label}`, () => {
      expect(make(options)).toThrow(message);
      if (options) expect(make(options)).toThrow(VipOptionError);
    });
  }

  it('refuses a store that is not a LockStore', () => {
    expect(make({ path: '/p' }, {} as LockStore)).toThrow(/store must be a LockStore/);
  });

  it("checks the store's declared limits", () => {
    const limited = new MemoryStore({ limits: { minTtl: 10, maxTtl: 100, maxValueBytes: 16 } });
    expect(make({ path: '/p', ttl: 5 }, limited)).toThrow(/"ttl" must be at least 10 seconds for this store/);
    expect(make({ path: '/p', ttl: 101 }, limited)).toThrow(/"ttl" must be at most 100 seconds for this store/);
    expect(make({ path: '/p', ttl: 10, id: 'a', value: 'é'.repeat(8) }, limited)).toThrow(/"value" must be at most 16 bytes/);
    expect(make({ path: '/p', ttl: 10, id: 'a', value: 'x' }, limited)).not.toThrow();
  });

  it('accepts fractional seconds', () => {
    const candidate = new Candidate(store, { path: '/p', ttl: 0.75 });
    expect(candidate.ttl()).toBe(0.75);
  });

  it('refuses a bad resign holdOff', async () => {
    const candidate = new Candidate(store, { path: '/p' });
    await expect(candidate.resign({ holdOff: -1 })).rejects.toThrow(/"holdOff" must be a number of seconds from 0 to 2147483 \(got number -1\)/);
    await expect(candidate.resign({ holdOff: 3e6 })).rejects.toThrow(/"holdOff"/);
    await expect(candidate.resign(null as never)).rejects.toThrow(/resign: option "options" must be an object/);
    await expect(candidate.resign({ reason: 'bored' as never })).rejects.toThrow(/"reason" must be "resigned" or "error" \(got string "bored"\)/);
    await expect(candidate.resign({ holdOff: Number.NaN })).rejects.toThrow(/"holdOff" must be a number of seconds/);
    await expect(candidate.resign({ holdOff: '10' as never })).rejects.toThrow(/"holdOff" must be a number of seconds .*got string "10"/);
    await expect(candidate.resign({ holdOff: 2147483 })).resolves.toBeUndefined(); // the largest accepted (and not leading: nothing to do)
    await expect(candidate.resign({ holdOff: 0, reason: 'error' })).resolves.toBeUndefined();
  });

  it('refuses a store that lacks a LockStore method, naming it, at construction and in locker()', () => {
    const partial = { compareAndSwap: async () => ({ ok: false, holder: null }) } as unknown as LockStore;
    expect(() => new Candidate(partial, { path: '/p' })).toThrow(/store must be a LockStore .*it has no refresh\(\), watch\(\), close\(\)/);
    expect(() => locker(undefined as never)).toThrow(/locker: store must be a LockStore/);
  });

  it('refuses a whenSelected() signal that is not an AbortSignal', () => {
    const candidate = new Candidate(store, { path: '/p' });
    expect(() => candidate.whenSelected('soon' as never)).toThrow(/whenSelected: signal must be an AbortSignal .*got string "soon"/);
  });
});

describe('Candidate: liveness (issue 11), each test failed on the code before its fix', () => {
  it('one hung refresh does not cost the term: the attempt is cut short and another goes out before the deadline', async () => {
    let calls = 0;
    const sent: number[] = [];
    const { clock, candidate, log } = single({
      refresh: () => {
        calls++;
        sent.push(clock.now());
        return calls === 1 ? new Promise<never>(() => {}) : null; // the first refresh never answers
      },
    });
    await candidate.start();
    await settle();
    expect(candidate.isSelected()).toBe(true);
    await clock.advance(6000);
    expect(sent.filter((t) => t < 2400).length).toBeGreaterThanOrEqual(2); // two attempts before the first deadline
    expect(log.filter((l) => l.startsWith('deselect') || l.startsWith('select'))).toEqual(['select:1@0']); // same term, same token
    expect(candidate.isSelected()).toBe(true);
  });

  it('a resign() whose release fails is retried, so another node leads before the hold would expire', async () => {
    const c = cluster(2);
    const [n0, n1] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    expect(n0.candidate.isSelected()).toBe(true);
    await c.clock.advance(1500); // n0 refreshed at 1000: its hold lives on the server until 4000
    n0.store.failAll(['compareAndSwap']);
    await n0.candidate.resign({ holdOff: 60 });
    expect(c.backend.get('/job')?.id).toBe('n0'); // the release failed
    await c.clock.advance(200);
    n0.store.heal();
    await c.clock.advance(1000); // t = 2700, still before the hold's own expiry at 4000
    expect(n1.candidate.isSelected()).toBe(true);
  });

  it('"free but not yet" (a lock delay) is retried with a growing backoff, and won soon after it ends', async () => {
    let cas = 0;
    const delayedUntil = 10_000;
    const { clock, candidate } = single(
      {
        compareAndSwap: (expected, next) => {
          if (expected !== null || next === null) return null;
          cas++;
          return clock.now() < delayedUntil ? Promise.resolve({ ok: false, holder: null }) : null;
        },
      },
      { ttl: 10 },
    );
    await candidate.start();
    await clock.advance(9_990);
    expect(candidate.isSelected()).toBe(false);
    expect(cas).toBe(9); // at 0, then after 75, 150, 300, 600, 1200, 2400, 2500, 2500 ms (was 134)
    await clock.advance(4_000); // backoff max at ttl 10 is 3.33 s
    expect(candidate.isSelected()).toBe(true);
  });

  it('a "key free" event that arrives while a refresh is in flight is verified once the refresh lands', async () => {
    // A lease-based store: refresh confirms the lease, not the key (the key can be deleted behind it).
    let slow = false;
    const { clock, backend, inner, candidate, log } = single({
      refresh: (held) => (slow ? new Promise<Holder>((resolve) => clock.setTimeout(() => resolve(held), 300)) : Promise.resolve(held)),
    });
    await candidate.start();
    await settle();
    const term = candidate.holder()!;
    slow = true;
    await clock.advance(1100); // the refresh sent at 1000 is in flight until 1300
    // The key is deleted out of band while the lease lives on: the watch says "free".
    expect((await inner.compareAndSwap('/job', term, null, TTL)).ok).toBe(true);
    expect(backend.get('/job')).toBeNull();
    await clock.advance(400);
    expect(log).toContain('deselect:lost@1300'); // the verify ran when the refresh landed and found the term gone
  });

  it('the background release after stop() ends after a bounded time when the store stays unreachable', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    node.store.failAll(['compareAndSwap']);
    await node.candidate.stop();
    await node.store.close();
    await c.clock.advance(10 * 60_000);
    const errors = c.log.filter((l) => l.event === 'error').length;
    expect(errors).toBeLessThan(200); // 802 before: one per backoff for as long as the process lives
    expect(c.clock.pending()).toBe(0); // nothing left scheduled
  });

  it('a resign hold-off does not survive stop() and start(): start() campaigns at once', async () => {
    const { clock, candidate } = single({});
    await candidate.start();
    await settle();
    await candidate.resign({ holdOff: 3600 });
    await settle();
    expect(candidate.isSelected()).toBe(false);
    await candidate.stop();
    await candidate.start();
    await clock.advance(100);
    expect(candidate.isSelected()).toBe(true);
  });

  it('whenSelected() called before start() rejects when the run stops unselected, and leaves no listener', async () => {
    const c = cluster(2);
    const [n0, n1] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
    started.push(n0.candidate);
    await n0.candidate.start();
    await settle();
    const listeners = n1.candidate.listenerCount('select');
    const waiting = n1.candidate.whenSelected();
    let outcome = 'pending';
    waiting.then(() => (outcome = 'resolved'), () => (outcome = 'rejected'));
    started.push(n1.candidate);
    await n1.candidate.start();
    await c.clock.advance(100);
    await n1.candidate.stop();
    await settle();
    expect(outcome).toBe('rejected');
    expect(n1.candidate.listenerCount('select')).toBe(listeners);
  });

  it('past its deadline a term is over: a refresh answered late never makes isSelected() true again', async () => {
    let answer: ((held: Holder) => void) | undefined;
    const { clock, candidate, log } = single({
      refresh: (held) => (answer ? null : new Promise<Holder>((resolve) => (answer = () => resolve(held)))),
    });
    await candidate.start();
    await settle();
    await clock.advance(1000); // refresh sent at 1000, no answer yet
    expect(answer).toBeDefined();
    clock.jump(2000); // paused: now 3000, past the deadline (2400); no timer has run
    expect(candidate.isSelected()).toBe(false);
    answer!(candidate.holder()!); // the answer is handled before the deadline timer
    await settle();
    const terms = log.filter((l) => l.startsWith('select') || l.startsWith('deselect'));
    expect(terms.slice(0, 2)).toEqual(['select:1@0', 'deselect:expired@3000']); // the first term ended there
    // Leading again only through a new select, with a new token (the key was free for us to win anew).
    if (candidate.isSelected()) expect([terms[2], candidate.token()]).toEqual(['select:2@3000', 2n]);
  });
});

describe('Candidate: rules that only a store with latency can show', () => {
  it('the deadline counts from when a refresh was sent, not when it was answered', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    node.store.latency(500, ['refresh']); // each refresh reaches the store and answers 500 ms after it was sent
    await c.clock.advance(1600); // refresh sent at 1000, answered at 1500
    expect(c.log.filter((l) => l.event === 'refresh').map((l) => l.at)).toEqual([1500]);
    expect(node.candidate.timeLeft()).toBe((1000 + 2400 - 1600) / 1000); // sent + ttl - margin, from the send time
  });

  it('a compare-and-swap answered after the deadline it would have had is not led on', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    node.store.latency(2500, ['compareAndSwap']); // answered 2.5 s after it was sent: its deadline (2.4 s) has passed
    const selects: number[] = [];
    node.candidate.on('select', () => selects.push(c.clock.now()));
    started.push(node.candidate);
    await node.candidate.start();
    await c.clock.advance(2600);
    expect(selects).toEqual([]);
    expect(node.candidate.isSelected()).toBe(false);
  });

  it('resign() holds off for holdOff seconds before campaigning again, then wins the free key', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    const selects: number[] = [];
    node.candidate.on('select', () => selects.push(c.clock.now()));
    await node.candidate.resign({ holdOff: 2 });
    expect(c.backend.get('/job')).toBeNull(); // released at once
    await c.clock.advance(1900);
    expect(selects).toEqual([]); // the key is free, but the hold-off has not ended
    await c.clock.advance(200);
    expect(selects).toEqual([2000]);
  });

  it('a store slow but answering (1.3 s per refresh at ttl 3) keeps the term: no attempt is cut short before the deadline', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    node.store.latency(1300, ['refresh']); // every refresh answers 1.3 s after it was sent, longer than the 1 s interval
    await c.clock.advance(10_000);
    expect(c.log.filter((l) => l.node === 'n0' && (l.event === 'select' || l.event === 'deselect')).map((l) => l.event)).toEqual(['select']);
    expect(node.candidate.isSelected()).toBe(true);
  });
});

describe('Candidate: the term signal', () => {
  it('select hands over the term signal, the same as termSignal() and whenSelected(); stop() aborts it before deselect listeners run', async () => {
    const { candidate } = single({});
    const handed: AbortSignal[] = [];
    candidate.on('select', (_v, _id, _holder, signal) => handed.push(signal));
    let abortedInDeselect: unknown;
    candidate.on('deselect', () => (abortedInDeselect = candidate.listenerCount('deselect') && handed[0]!.aborted));
    await candidate.start();
    await settle();
    const signal = candidate.termSignal();
    expect(signal).toBeInstanceOf(AbortSignal);
    expect(handed).toEqual([signal]);
    expect(await candidate.whenSelected()).toBe(signal);
    expect(signal!.aborted).toBe(false);
    await candidate.stop();
    expect(abortedInDeselect).toBe(true);
    expect(signal!.reason).toBeInstanceOf(VipDeselectedError);
    expect((signal!.reason as VipDeselectedError).reason).toBe('stopped');
    expect(candidate.termSignal()).toBeNull();
  });

  const endings: [DeselectReason, (t: ReturnType<typeof single>) => Promise<void>, Parameters<typeof single>[0]?][] = [
    ['resigned', (t) => t.candidate.resign()],
    ['error', (t) => t.candidate.resign({ reason: 'error' })],
    ['expired', (t) => t.clock.advance(3000), { refresh: () => new Promise<never>(() => {}) }],
    ['lost', (t) => t.clock.advance(1500), { refresh: () => Promise.resolve(null) }],
  ];
  for (const [reason, end, hooks] of endings) {
    it(`a term that ends "${reason}" aborts its signal with that reason, and a later term has a signal of its own`, async () => {
      const t = single(hooks ?? {});
      await t.candidate.start();
      await settle();
      const signal = t.candidate.termSignal()!;
      await end(t);
      await settle();
      expect(t.log.filter((l) => l.startsWith('deselect'))[0]).toMatch(new RegExp(`^deselect:${reason}@`));
      expect(signal.aborted).toBe(true);
      expect((signal.reason as VipDeselectedError).reason).toBe(reason);
      expect((signal.reason as Error).message).toContain(reason);
      if (t.candidate.isSelected()) expect(t.candidate.termSignal()).not.toBe(signal);
    });
  }

  it('resign({ holdOff: 0 }) ends the term and the next term starts with a fresh, unaborted signal and a larger token', async () => {
    const { candidate } = single({});
    await candidate.start();
    await settle();
    const first = candidate.termSignal()!;
    const token = candidate.token()!;
    await candidate.resign({ holdOff: 0 });
    await settle();
    expect(first.aborted).toBe(true);
    expect(candidate.isSelected()).toBe(true);
    expect(candidate.termSignal()!.aborted).toBe(false);
    expect(candidate.token()! > token).toBe(true);
  });
});

describe('Candidate: suspended (leading on borrowed time) vs lost', () => {
  it('a failed refresh suspends the leader once, and the next confirmed refresh resumes it', async () => {
    let failures = 0;
    const { clock, candidate, log } = single({ refresh: () => (failures-- > 0 ? Promise.reject(new Error('store unreachable')) : null) });
    const causes: Error[] = [];
    candidate.on('suspend', (cause) => causes.push(cause));
    await candidate.start();
    await clock.advance(1500);
    expect(log.some((l) => l.startsWith('suspend'))).toBe(false); // healthy refreshes never suspend
    failures = 2;
    await clock.advance(800); // refresh at 2000 fails, its retry at 2075 fails, the one at 2225 is confirmed
    expect(candidate.isSuspended()).toBe(false);
    expect(log.filter((l) => !l.startsWith('select'))).toEqual(['refresh@1000', 'error@2000', 'suspend@2000', 'error@2075', 'refresh@2225', 'resume@2225']);
    expect(causes).toHaveLength(1);
    expect(causes[0]!.message).toContain('store unreachable');
    expect(candidate.isSelected()).toBe(true);
    await clock.advance(3000); // healthy again: no further suspend
    expect(causes).toHaveLength(1);
  });

  it('isSuspended() is true while refreshes fail, and false again once the term has ended at its deadline', async () => {
    let failing = false;
    const { clock, candidate, log } = single({ refresh: () => (failing ? Promise.reject(new Error('store unreachable')) : null) });
    await candidate.start();
    await clock.advance(1500);
    failing = true;
    await clock.advance(600); // refresh at 2000 failed
    expect(candidate.isSuspended()).toBe(true);
    expect(candidate.isSelected()).toBe(true);
    await clock.advance(1500); // deadline at 1000 + 2400
    expect(log).toContain('deselect:expired@3400');
    expect(candidate.isSuspended()).toBe(false);
    expect(log.filter((l) => l.startsWith('resume'))).toEqual([]); // a term that ended is not resumed
  });

  it('a refresh still unanswered when the next is due suspends the leader; its late answer resumes it', async () => {
    const { clock, candidate, log } = single({
      refresh: (held) => new Promise<Holder>((resolve) => clock.setTimeout(() => resolve(held), 1300)),
    });
    const causes: Error[] = [];
    candidate.on('suspend', (cause) => causes.push(cause));
    await candidate.start();
    await clock.advance(2500);
    expect(log.filter((l) => !l.startsWith('select'))).toEqual(['suspend@2000', 'refresh@2300', 'resume@2300']);
    expect(causes[0]).toBeInstanceOf(VipTimeoutError);
    expect(candidate.isSelected()).toBe(true);
  });
});

describe('Candidate: what a leader makes of events and late answers', () => {
  it('a watch event with an older token than its term is a late event from before it won: ignored', async () => {
    const { candidate, log, inject } = single({ injectable: true });
    const changes: (string | null)[] = [];
    await candidate.start();
    await settle();
    candidate.on('change', (_value, leaderId) => changes.push(leaderId));
    expect(candidate.token()).toBe(1n);
    inject({ id: 'before-us', value: 'old', token: 0n });
    await settle();
    expect(candidate.isSelected()).toBe(true);
    expect(candidate.id()).toBe('a');
    expect(changes).toEqual([]);
    expect(log.filter((l) => l.startsWith('deselect'))).toEqual([]);
  });

  it('a watch event with a newer term of another holder ends the term "lost" and names the new leader', async () => {
    const { candidate, log, inject } = single({ injectable: true });
    await candidate.start();
    await settle();
    inject({ id: 'b', value: 'w', token: 5n });
    await settle();
    expect(log.filter((l) => l.startsWith('deselect'))).toEqual(['deselect:lost@0']);
    expect(candidate.id()).toBe('b');
  });

  it('a refresh answered late and null ends the term "lost" (not "expired"): the store said the hold is gone', async () => {
    let answer: ((held: Holder | null) => void) | undefined;
    const { clock, candidate, log } = single({ refresh: () => (answer ? null : new Promise<Holder | null>((resolve) => (answer = resolve))) });
    await candidate.start();
    await settle();
    await clock.advance(1000);
    clock.jump(2000); // paused past the deadline (2400); no timer has run
    answer!(null);
    await settle();
    expect(log.filter((l) => l.startsWith('deselect'))[0]).toBe('deselect:lost@3000');
  });

  it('a "key free" event refuted by the store (another holds it) ends the term "lost" and follows the holder the store named', async () => {
    const other: Holder = { id: 'b', value: 'w', token: 9n };
    const { candidate, log, inject } = single({
      injectable: true,
      // The verify (a CAS guarded by our own term) is refused: the store names who holds the key.
      compareAndSwap: (expected, next) => (expected !== null && next !== null ? Promise.resolve({ ok: false, holder: other }) : null),
    });
    const changes: (string | null)[] = [];
    await candidate.start();
    await settle();
    candidate.on('change', (_value, leaderId) => changes.push(leaderId));
    inject(null);
    await settle();
    expect(log.filter((l) => l.startsWith('deselect'))).toEqual(['deselect:lost@0']);
    expect(changes).toEqual(['b']); // never "free": the store said who holds it
    expect(candidate.id()).toBe('b');
  });
});

describe('Candidate: queries, lifecycle edges and cleanup (found by mutation testing)', () => {
  it('queries answer null or false when nothing is known, and report the options in seconds', async () => {
    const { candidate } = single({}, { ttl: 6, safetyMargin: 1.5 });
    for (const query of [() => candidate.id(), () => candidate.value(), () => candidate.holder(), () => candidate.token(), () => candidate.timeLeft(), () => candidate.termSignal()]) {
      expect(query()).toBeNull();
    }
    expect([candidate.isSelected(), candidate.isSuspended()]).toEqual([false, false]);
    expect([candidate.path(), candidate.ttl(), candidate.safetyMargin(), candidate.refreshInterval()]).toEqual(['/job', 6, 1.5, 2]);
    expect([candidate.localid(), candidate.localdata()]).toEqual(['a', `a:::${candidate.localvalue()}`]);
    await candidate.start();
    await settle();
    await candidate.stop();
    expect([candidate.id(), candidate.value(), candidate.holder()]).toEqual([null, null, null]);
  });

  it('a stopped leader leaves no timer behind, and neither does a follower', async () => {
    const c = cluster(2);
    await startAll(c);
    await run(c, 2500);
    await c.nodes[0]!.candidate.stop();
    await c.nodes[1]!.candidate.stop();
    expect(c.clock.pending()).toBe(0);
  });

  it('a refresh in flight when stop() is called is given up at once (its signal aborts): stop() does not wait out the request timeout', async () => {
    const signals: AbortSignal[] = [];
    const { clock, candidate } = single({ refresh: (_held, signal) => (signals.push(signal!), new Promise<never>(() => {})) });
    await candidate.start();
    await clock.advance(1100);
    expect(signals).toHaveLength(1);
    let stopped = false;
    void candidate.stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(true);
    expect(signals[0]!.aborted).toBe(true);
    expect(clock.pending()).toBe(0);
  });

  it('errors name the operation that failed: refresh, compareAndSwap, release', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    const operations: string[] = [];
    node.candidate.on('error', (error) => operations.push((error as VipStoreError).operation));
    await startAll(c);
    await settle();
    node.store.failNext(1, ['refresh']);
    await c.clock.advance(1000);
    node.store.failAll(['compareAndSwap']);
    await node.candidate.resign({ holdOff: 0 });
    await c.clock.advance(100);
    expect(operations.slice(0, 2)).toEqual(['refresh', 'release']);
    node.store.heal();
    await c.clock.advance(3000);
    // Released by a retry; the candidate (hold-off 0) then campaigns: a failed acquire says so too.
    await node.candidate.stop();
    node.store.failNext(1, ['compareAndSwap']);
    await node.candidate.start();
    await c.clock.advance(100);
    expect(operations).toContain('compareAndSwap');
  });

  it('a refresh that does not answer in time is reported as a VipTimeoutError naming the operation and key', async () => {
    const { clock, candidate } = single({ refresh: () => new Promise<never>(() => {}) }, { requestTimeout: 0.5 });
    const errors: Error[] = [];
    candidate.on('error', (error) => errors.push(error));
    await candidate.start();
    await clock.advance(1600);
    expect(errors[0]).toBeInstanceOf(VipTimeoutError);
    expect(errors[0]!.message).toMatch(/refresh on "\/job"/);
  });

  it('the leader is pinged at every confirmed refresh, not only when it is selected', async () => {
    const { clock, candidate } = single({});
    const pings: number[] = [];
    candidate.on('ping', () => pings.push(clock.now()));
    await candidate.start();
    await clock.advance(2500);
    expect(pings.filter((t) => t >= 1000)).toEqual([1000, 2000]);
  });

  it('a resign hold-off counts from when resign() was called', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    await startAll(c);
    await c.clock.advance(1500);
    const selects: number[] = [];
    node.candidate.on('select', () => selects.push(c.clock.now()));
    await node.candidate.resign({ holdOff: 2 });
    await c.clock.advance(1900);
    expect(selects).toEqual([]);
    await c.clock.advance(200);
    expect(selects).toEqual([3500]);
  });

  it('resign() when not leading does nothing: no event, no release, no hold-off', async () => {
    const c = cluster(2);
    const [n0, n1] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    const casBefore = n1.store.calls.compareAndSwap;
    await n1.candidate.resign({ holdOff: 3600 });
    expect(n1.store.calls.compareAndSwap).toBe(casBefore);
    expect(c.log.filter((l) => l.node === 'n1' && l.event === 'deselect')).toEqual([]);
    await n0.candidate.stop(); // n1 was not held off: it takes over at once
    await settle();
    expect(n1.candidate.isSelected()).toBe(true);
  });

  it('a follower that sees a live leader sends no compare-and-swap of its own', async () => {
    const c = cluster(2);
    const [, n1] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
    await startAll(c);
    await run(c, 10_000);
    expect(c.leaders()[0]!.node).toBe('n0');
    expect(n1.store.calls.compareAndSwap).toBe(0);
  });

  it('stop() then start() while the release is still on its way: started again once the stop is done', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    node.store.latency(200, ['compareAndSwap']);
    const stopping = node.candidate.stop();
    const starting = node.candidate.start();
    await c.clock.advance(100);
    expect(node.candidate.isSelected()).toBe(false);
    await c.clock.advance(1000);
    await stopping;
    await starting;
    expect(node.candidate.isSelected()).toBe(true);
    expect(c.log.filter((l) => l.event === 'select').map((l) => l.detail)).toEqual([1n, 2n]);
  });

  it('stop() releases a stale hold of ours that the follower had not given back yet', async () => {
    const c = cluster(2);
    const [n0] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    // n0 leads; its refreshes fail until its term ends, but the hold on the server lives (ttl 3 from 0).
    n0.store.failAll(['refresh', 'compareAndSwap']);
    await c.clock.advance(2500); // term over at 2400, the release of the stale hold fails
    expect(n0.candidate.isSelected()).toBe(false);
    expect(c.backend.get('/job')?.id).toBe('n0');
    n0.store.heal();
    await n0.candidate.stop();
    expect(c.backend.get('/job')?.id).not.toBe('n0');
  });

  it('a watch that fails or ends is reported and opened again with a growing backoff', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    node.store.failNext(4, ['watch']);
    const errors: string[] = [];
    node.candidate.on('error', (error) => errors.push(`${(error as VipStoreError).operation}@${c.clock.now()}`));
    await startAll(c);
    await c.clock.advance(2000);
    expect(errors).toEqual(['watch@0', 'watch@75', 'watch@225', 'watch@525']); // 75, 150, 300 ms apart
    expect(node.candidate.isSelected()).toBe(true);
  });

  it('at its deadline exactly the term is over', async () => {
    const { clock, candidate } = single({ refresh: () => new Promise<never>(() => {}) });
    await candidate.start();
    await settle();
    clock.jump(2399);
    expect(candidate.isSelected()).toBe(true);
    clock.jump(1);
    expect(candidate.isSelected()).toBe(false);
  });

  it('a compare-and-swap answered at its deadline exactly is not led on', async () => {
    const { clock, candidate } = single({
      compareAndSwap: (expected, next) => (expected === null && next !== null && clock.now() < 1 ? new Promise((resolve) => clock.setTimeout(() => resolve({ ok: true, holder: { id: 'a', value: '', token: 1n } }), 2400)) : null),
    });
    const selects: number[] = [];
    candidate.on('select', () => selects.push(clock.now()));
    await candidate.start();
    await clock.advance(2400);
    expect(selects).toEqual([]);
  });
});

describe('Candidate: found in review (each test failed before its fix)', () => {
  it('a compare-and-swap won late (within its deadline) does not override a newer holder the watch already showed', async () => {
    let answer: ((result: { ok: boolean; holder: Holder | null }) => void) | undefined;
    const { clock, candidate, inject, log } = single({
      injectable: true,
      compareAndSwap: (expected, next) => (expected === null && next !== null && !answer ? new Promise((resolve) => (answer = resolve)) : null),
      refresh: (held) => Promise.resolve(held), // proves the lease only, as etcd and Consul do
    });
    await candidate.start();
    await settle();
    inject({ id: 'a', value: '', token: 5n }); // our write was applied
    inject(null); // an operator deleted the key (the lease lives on)
    inject({ id: 'b', value: 'w', token: 7n }); // b won it
    await settle();
    expect(candidate.id()).toBe('b');
    answer!({ ok: true, holder: { id: 'a', value: '', token: 5n } }); // our answer lands, within its deadline
    await settle();
    expect(candidate.id()).toBe('b');
    await clock.advance(10_000);
    expect(candidate.isSelected()).toBe(false);
    expect(log.filter((l) => l.startsWith('select'))).toEqual([]);
  });

  it('a compare-and-swap won while the watch showed the key deleted after our write: led on only once the store confirms it', async () => {
    let answer: ((result: { ok: boolean; holder: Holder | null }) => void) | undefined;
    const { candidate, inject, log } = single({
      injectable: true,
      // The first acquire is answered by the test and never reaches the store: the key there stays free.
      compareAndSwap: (expected, next) => (expected === null && next !== null && !answer ? new Promise((resolve) => (answer = resolve)) : null),
    });
    await candidate.start();
    await settle();
    inject({ id: 'a', value: '', token: 5n }); // our write was applied
    inject(null); // and deleted again
    await settle();
    answer!({ ok: true, holder: { id: 'a', value: '', token: 5n } });
    await settle();
    expect(log.slice(0, 2)).toEqual(['select:5@0', 'deselect:lost@0']); // the verify found the term gone
  });

  it('a failure of an older refresh, landing after a newer one was confirmed, does not suspend the term', async () => {
    let calls = 0;
    let fail: ((error: Error) => void) | undefined;
    const { clock, candidate, log } = single({
      refresh: () => (++calls === 1 ? new Promise<never>((_, reject) => (fail = reject)) : null),
    });
    await candidate.start();
    await clock.advance(2100); // the refresh of 1000 hangs, the one of 2000 is confirmed
    fail!(new Error('connection reset')); // the one of 1000 fails after that
    await settle();
    expect(candidate.isSuspended()).toBe(false);
    expect(log.filter((l) => /suspend|resume/.test(l))).toEqual(['suspend@2000', 'resume@2000']);
    await clock.advance(2000);
    expect(log.filter((l) => l.startsWith('refresh')).map((l) => l.slice(8))).toEqual(['2000', '3000', '4000']); // still on the grid
  });

  it('a "key free" event is verified within a refresh interval even while refreshes overlap (each slower than the interval)', async () => {
    const { clock, inner, candidate, log } = single({
      refresh: (held) => new Promise<Holder>((resolve) => clock.setTimeout(() => resolve(held), 1300)),
    });
    await candidate.start();
    await clock.advance(2500); // refreshes of 1000 and 2000 overlap, and so will every later pair
    // The key is deleted behind the live lease: the watch says "free", the refreshes would keep confirming the lease.
    expect((await inner.compareAndSwap('/job', candidate.holder(), null, TTL)).ok).toBe(true);
    await clock.advance(1000);
    expect(log).toContain('deselect:lost@3000'); // the verify went out at the next grid point and found the term gone
  });
});

describe('Candidate: more edges found by mutation testing', () => {
  it('a store that is not one is refused with a message naming what is missing', () => {
    expect(() => new Candidate(null as never, { path: '/p' })).toThrow(/^Candidate: store must be a LockStore such as new MemoryStore\(\) \(got null\)$/);
    const partial = { compareAndSwap() {}, watch() {}, close() {} } as unknown as LockStore;
    expect(() => new Candidate(partial, { path: '/p' })).toThrow(/; it has no refresh\(\)\)$/);
    expect(() => locker(partial)).toThrow(/^locker: store must be a LockStore/);
  });

  it('whenSelected() with an aborted signal rejects with its reason, and a settled wait leaves no abort listener', async () => {
    const { candidate } = single({});
    const reason = new Error('not today');
    await expect(candidate.whenSelected(AbortSignal.abort(reason))).rejects.toBe(reason);
    const controller = new AbortController();
    const waiting = candidate.whenSelected(controller.signal);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    await candidate.start();
    await waiting;
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });

  it('changes(): nothing before the first read, changes queued while nobody waits, and break() ends it', async () => {
    const c = cluster(2);
    const [a, b] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
    const early = b.candidate.changes();
    await startAll(c);
    await settle();
    await a.candidate.stop(); // n1 takes over: free, then n1, queued while nobody waits
    await settle();
    const seen: (string | null)[] = [];
    for await (const holder of early) {
      seen.push(holder?.id ?? null);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual(['n0', null, 'n1']);
    expect(await early.next()).toEqual({ value: undefined, done: true });
  });

  it('a start() whose first read is slow but stopped in time reports no timeout', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    node.store.partition();
    const errors: string[] = [];
    node.candidate.on('error', (error) => errors.push(error.message));
    void node.candidate.start();
    await c.clock.advance(100);
    node.store.heal();
    const stopping = node.candidate.stop();
    await c.clock.advance(10_000);
    await stopping;
    expect(errors.filter((m) => m.includes('first read'))).toEqual([]);
  });

  it('stop() twice at once releases once; a follower that stops sends nothing', async () => {
    const c = cluster(2);
    const [n0, n1] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    const before = [n0.store.calls.compareAndSwap, n1.store.calls.compareAndSwap];
    await n1.candidate.stop();
    await Promise.all([n0.candidate.stop(), n0.candidate.stop()]);
    expect([n0.store.calls.compareAndSwap - before[0]!, n1.store.calls.compareAndSwap - before[1]!]).toEqual([1, 0]);
  });

  it('resign() resolves only once the store has answered the release', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    await startAll(c);
    await settle();
    node.store.latency(200, ['compareAndSwap']);
    let resigned = false;
    const resigning = node.candidate.resign({ holdOff: 60 }).then(() => (resigned = true));
    await c.clock.advance(100);
    expect(resigned).toBe(false);
    await c.clock.advance(200);
    await resigning;
    expect(c.backend.get('/job')).toBeNull();
  });

  it('stop() during an acquisition resolves only once the key it won is released', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    node.store.latency(300, ['compareAndSwap']);
    await startAll(c);
    await c.clock.advance(100); // the acquire is on its way
    let stopped = false;
    const stopping = node.candidate.stop().then(() => (stopped = true));
    await c.clock.advance(250); // it wins at 300; its release answers at 600
    expect(stopped).toBe(false);
    await c.clock.advance(400);
    await stopping;
    expect(c.backend.get('/job')).toBeNull();
  });

  it('the background release after stop() gives up after 10 x ttl when that is longer than a minute', async () => {
    const c = cluster(1, { ttl: 10 });
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    const gaveUp: number[] = [];
    node.candidate.on('error', (error) => /gave up/.test(error.message) && gaveUp.push(c.clock.now()));
    await startAll(c);
    await settle();
    node.store.failAll(['compareAndSwap']);
    await node.candidate.stop();
    await c.clock.advance(99_000);
    expect(gaveUp).toEqual([]);
    await c.clock.advance(20_000);
    expect(gaveUp).toHaveLength(1);
    expect(c.log.map((l) => String(l.detail)).find((d) => d.includes('gave up'))).toMatch(/after 100 s of failures/);
  });

  it('a follower backing off after a failed acquire leaves no timer when stopped', async () => {
    const c = cluster(1);
    const [node] = c.nodes as [(typeof c.nodes)[0]];
    node.store.failNext(1, ['compareAndSwap']);
    await startAll(c);
    await settle(); // the acquire failed: a retry is scheduled
    await node.candidate.stop();
    expect(c.clock.pending()).toBe(0);
  });

  it('after a verify the leader still refreshes once per interval', async () => {
    let refreshes = 0;
    let casCalls = 0;
    const { clock, candidate, inject } = single({ injectable: true, refresh: () => (refreshes++, null), compareAndSwap: () => (casCalls++, null) });
    const verifies = (): number => casCalls - 1; // all but the acquire
    await candidate.start();
    await clock.advance(1500);
    inject(null); // a stale "free": verified with a CAS, which confirms the term
    await clock.advance(3000);
    expect(candidate.isSelected()).toBe(true);
    expect(refreshes).toBe(4); // at 1000, 2000, 3000, 4000
    expect(verifies()).toBe(1); // one verify, not one per interval from then on
  });

  it('a watch that ends is reported and opened again; one that throws because it was stopped is not an error', async () => {
    const clock = new FakeClock();
    clocks.add(clock);
    const inner = new MemoryStore({ clock });
    let opened = 0;
    const store: LockStore = {
      compareAndSwap: (...args) => inner.compareAndSwap(...args),
      refresh: (...args) => inner.refresh(...args),
      close: () => inner.close(),
      async *watch(key, signal) {
        if (++opened === 1) return; // ends at once, without a word
        for await (const holder of inner.watch(key, signal)) yield holder;
        throw new Error('aborted'); // as some clients do when their signal aborts
      },
    };
    const candidate = new Candidate(store, { path: '/job', ttl: TTL, clock, random: () => 0.5 });
    const errors: string[] = [];
    candidate.on('error', (error) => errors.push(`${error.message}@${clock.now()}`));
    await candidate.start();
    await clock.advance(500);
    expect(errors).toEqual(['watch on "/job" failed: the watch ended unexpectedly@0']);
    expect(opened).toBe(2);
    expect(candidate.isSelected()).toBe(true);
    await candidate.stop();
    await settle();
    expect(errors).toHaveLength(1);
  });
});
