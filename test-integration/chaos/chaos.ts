/**
 * The chaos run: N candidate processes on one path, each behind TCP proxies of
 * its own to a real store (a 3-member etcd cluster, or a Consul server that
 * keeps its state on disk), each writing to a fenced resource while it leads.
 * Faults: SIGKILL of a candidate (then restarted with the same id), SIGSTOP of
 * a candidate for longer than the TTL (then SIGCONT), its proxies cut or
 * stalled, the store restarted, and for etcd one member lost and back, and
 * quorum lost and back. One fault at a time; every kind is drawn once, in
 * shuffled order, before any is drawn again, and the run does not end before
 * every kind has happened. The first pause is always aimed at the leader: the
 * paused-leader case must happen in every run, not in most.
 *
 * What a seed replays: the fault schedule (`faultSchedule`), and only that:
 * the same kinds in the same order, each aimed at "the leader" or at the same
 * candidate slot, with the same durations, members and pauses between faults.
 * The schedule is drawn from the seed alone (a fixed number of draws per
 * fault, whatever happens in the run), so no timing can shift it. What a seed
 * does not replay is everything the machine's timing decides: which process
 * leads when a fault aimed at the leader strikes (and whether one does: if
 * none does within the recovery bound, the fault goes to its slot), the
 * interleavings of elections, refreshes and writes, and how many faults of
 * the schedule fit into the run's duration.
 *
 * Afterwards the checker (../checker.ts) reads every process's log and the
 * resource's record. The run fails on two leaders at once, a token that does
 * not increase, a write the resource decided wrongly (a stale token accepted,
 * or a current one refused), a candidate process that died by itself, no
 * leader within `recoveryBoundMs` once the faults stop:
 *
 *   recovery bound = server expiry (serverExpiryTtls: etcd ttl; Consul
 *   3 × ttl, its session invalidation rule and lock delay) + 2 × the
 *   candidates' largest retry backoff (ttl / 3)
 *   + 15 s for the store itself to be serving again (an etcd member or Consul
 *   server that was just restarted elects a raft leader, Consul syncs its node)
 *   and for a loaded machine,
 *
 * or an election that does not stay settled: once a single leader has renewed
 * its hold since the faults stopped, it must keep leading, with nobody else
 * selected, for the next 1.5 × ttl (longer than a lease: a renewal that did not
 * really take would show as a lost lead). A run that proves nothing fails too
 * (`unexercised`, used by the short test and the long run alike): every kind of
 * fault, at least 3 terms, accepted writes, and, when pauses are among the
 * faults, a paused leader replaced while stopped that announced its deselect
 * once it ran again.
 */
import {
  announcedOverlaps,
  checkWrites,
  lateDeselects,
  leaderlessGaps,
  replacedWhileStopped,
  settledThroughout,
  splitBrains,
  terms,
  type LogLine,
  type Stop,
  type Term,
} from '../checker.js';
import {
  CandidateProcess,
  startConsul,
  startEtcd,
  startProxy,
  uniqueConsulPrefix,
  uniquePrefix,
  type ConsulAgent,
  type EtcdCluster,
  type TcpProxy,
} from '../harness/index.js';
import { FencedResource } from './fenced-resource.js';

export type Backend = 'etcd' | 'consul';
export type FaultKind = 'kill' | 'pause' | 'cut' | 'stall' | 'restart' | 'member' | 'quorum';

/** The faults each backend gets: member and quorum loss need a cluster. */
export const FAULTS: Record<Backend, readonly FaultKind[]> = {
  etcd: ['kill', 'pause', 'cut', 'stall', 'restart', 'member', 'quorum'],
  consul: ['kill', 'pause', 'cut', 'stall', 'restart'],
};

export interface ChaosOptions {
  backend: Backend;
  /** Seeds the random source of faults (printed in the report). Default: a random seed. */
  seed?: number;
  /** How long faults go on, in ms (the run also waits until every kind of fault has happened once). */
  durationMs: number;
  /** Candidate processes. Default 5. */
  candidates?: number;
  /** The candidates' TTL in seconds. Default 3. */
  ttl?: number;
  /** Progress, one line per fault. */
  onProgress?: (line: string) => void;
  /** Only these kinds of fault (default: every kind the backend gets, FAULTS). */
  faults?: readonly FaultKind[];
  /** How often a fault aimed at one candidate is aimed at the leader (0 to 1). Default 0.6 (0.8 for pause; the first pause always is). */
  preferLeader?: number;
  /** More environment for every candidate process (see fixtures/candidate.mjs). */
  candidateEnv?: Record<string, string>;
}

export interface FaultRecord {
  at: number;
  kind: FaultKind;
  target: string;
  /** For a fault aimed at one candidate: whether that candidate led (by its log) when the fault hit it. */
  leading?: boolean;
  /** How long the fault lasted (ms), from injection to heal. */
  ms: number;
}

export interface ChaosReport {
  backend: Backend;
  seed: number;
  candidates: number;
  ttl: number;
  /** From the first candidate's start to the end of the faults, ms. */
  faultWindowMs: number;
  faults: Record<FaultKind, number>;
  faultLog: FaultRecord[];
  terms: number;
  writes: { accepted: number; refused: number; late: number };
  /** The longest stretch without a leader while faults went on, ms. */
  longestGapMs: number;
  /** From the end of the faults until a leader (0 if one led throughout), ms. */
  recoveryMs: number;
  recoveryBoundMs: number;
  /** Leaders that announced their deselect after their deadline (stopped or starved processes), and by how much at most. */
  lateDeselects: { count: number; maxMs: number };
  /**
   * The paused-leader case: pauses that hit the leader, and leaders stopped
   * while they led, replaced while stopped, that announced their deselect
   * after SIGCONT (a subset of the late deselects).
   */
  pausedLeaders: { hit: number; replaced: number };
  violations: string[];
  /** Every event line of every candidate, for a replay or a closer look. */
  log: LogLine[];
}

/** A small, fast PRNG (mulberry32): the same seed gives the same sequence everywhere. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One fault of the schedule, drawn from the seed before anything of the run is known. */
export interface PlannedFault {
  kind: FaultKind;
  /**
   * For a fault aimed at one candidate (kill, pause, cut, stall): aim it at
   * whoever leads when it is injected (waiting up to the recovery bound for a
   * leader; `slot` if none leads by then). False: aim it at `slot`. Always
   * false for the faults of the store.
   */
  atLeader: boolean;
  /** The candidate (an index into the slots, from 0) when not aimed at the leader, or when nobody leads. */
  slot: number;
  /** How long the fault lasts, ms (0 for a store restart: it heals once the store serves again). */
  ms: number;
  /** The etcd members it takes down: one for `member`, two for `quorum`, none otherwise. */
  members: number[];
  /** The quiet time after it heals, before the next fault, ms. */
  gapMs: number;
}

export interface ScheduleOptions {
  backend: Backend;
  kinds: readonly FaultKind[];
  candidates: number;
  ttl: number;
  /** As in ChaosOptions. */
  preferLeader?: number;
}

/** The draws every fault takes from the random source, whatever its kind: aim, slot, duration, two members, the gap after it. */
const DRAWS_PER_FAULT = 6;

/**
 * The fault schedule of a seed, endless (the run takes as many as fit). A pure
 * function of its arguments: every fault takes the same DRAWS_PER_FAULT draws
 * and every bag of kinds the same kinds.length - 1 draws of its shuffle,
 * whatever they are used for, so nothing that happens in a run (who leads,
 * how long a heal takes) moves the stream.
 */
/**
 * The longest a server may take, in ttls, to let another candidate lock the
 * key of a holder that went silent: etcd frees it at the lease's expiry
 * (ttl); Consul invalidates the session up to 2 × ttl after its last renew,
 * and then keeps the key unlockable for the lock delay, the ttl by default.
 */
export function serverExpiryTtls(backend: Backend): number {
  return backend === 'consul' ? 3 : 1;
}

export function* faultSchedule(seed: number, options: ScheduleOptions): Generator<PlannedFault, never, undefined> {
  const { backend, kinds, candidates, ttl } = options;
  const random = seededRandom(seed);
  const between = (low: number, high: number, draw: number): number => low + (high - low) * draw;
  const expiry = serverExpiryTtls(backend) * ttl * 1000;
  let bag: FaultKind[] = [];
  let pausedLeader = false;
  for (;;) {
    if (bag.length === 0) bag = shuffle([...kinds], random);
    const kind = bag.shift()!;
    const [aim, slot, length, first, second, gap] = Array.from({ length: DRAWS_PER_FAULT }, random) as [number, number, number, number, number, number];
    const ms: Record<FaultKind, number> = {
      kill: between(200, 2000, length),
      // Longer than the server takes to let another take a silent holder's
      // key (serverExpiryTtls), so that a paused leader is replaced while it
      // sleeps and wakes up to find it so.
      pause: between(1.2, 2, length) * expiry,
      cut: between(0.3, 1.5, length) * ttl * 1000,
      stall: between(0.5, 1.5, length) * ttl * 1000,
      restart: 0,
      member: between(1000, 3000, length),
      quorum: between(0.5, 1.5, length) * ttl * 1000,
    };
    const aimed = kind === 'kill' || kind === 'pause' || kind === 'cut' || kind === 'stall';
    const prefer = options.preferLeader ?? (kind === 'pause' ? 0.8 : 0.6);
    // The first pause hits the leader whatever the draw (which is still taken).
    const atLeader = aimed && ((kind === 'pause' && !pausedLeader) || aim < prefer);
    if (kind === 'pause') pausedLeader = true;
    const one = Math.floor(first * 3);
    const members = kind === 'member' ? [one] : kind === 'quorum' ? [one, (one + 1 + Math.floor(second * 2)) % 3] : [];
    yield { kind, atLeader, slot: Math.floor(slot * candidates), ms: ms[kind], members, gapMs: between(500, 2000, gap) };
  }
}

interface Slot {
  id: string;
  proxies: TcpProxy[];
  address: string;
  process: CandidateProcess;
  /** When the current process was spawned: every line it writes is later, every line of the one before (same id) earlier. */
  spawnedAt: number;
  /** Set while the test has it stopped (SIGSTOP) or killed on purpose. */
  paused: boolean;
  killing: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { backend, durationMs } = options;
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const count = options.candidates ?? 5;
  const ttl = options.ttl ?? 3;
  const progress = options.onProgress ?? (() => {});
  const cleanup: (() => Promise<void>)[] = [];
  const log: LogLine[] = [];
  const deaths: Record<string, number[]> = {};
  /** When each process was stopped (SIGSTOP to SIGCONT), for the checker. */
  const stopped: Record<string, Stop[]> = {};
  const violations: string[] = [];
  const faultLog: FaultRecord[] = [];
  const kinds = options.faults ?? FAULTS[backend];
  for (const kind of kinds) if (!FAULTS[backend].includes(kind)) throw new Error(`runChaos: fault "${kind}" is not one ${backend} gets (${FAULTS[backend].join(', ')})`);
  if (kinds.length === 0) throw new Error('runChaos: faults must name at least one kind of fault (got none)');
  const faults = Object.fromEntries(kinds.map((kind) => [kind, 0])) as Record<FaultKind, number>;
  const { preferLeader } = options;
  if (preferLeader !== undefined && !(typeof preferLeader === 'number' && preferLeader >= 0 && preferLeader <= 1)) {
    throw new Error(`runChaos: preferLeader must be a number from 0 to 1 (got ${JSON.stringify(preferLeader)})`);
  }
  const schedule = faultSchedule(seed, { backend, kinds, candidates: count, ttl, ...(preferLeader === undefined ? {} : { preferLeader }) });
  const recoveryBoundMs = (serverExpiryTtls(backend) * ttl + (2 * ttl) / 3) * 1000 + 15_000;
  let started = 0;
  let ending = false;

  try {
    // ---- the store, the resource, the candidates -----------------------------
    let etcd: EtcdCluster | undefined;
    let consul: ConsulAgent | undefined;
    if (backend === 'etcd') {
      etcd = await startEtcd({ members: 3 });
      cleanup.push(() => etcd!.close());
    } else {
      // A server that keeps its state: a -dev agent forgets every session on a
      // restart, and no lock survives a store that forgets. session_ttl_min
      // lowered so that a TTL of a few seconds is allowed.
      consul = await startConsul({ persistent: true, configJson: { session_ttl_min: '1s' } });
      cleanup.push(() => consul!.close());
    }
    const resource = await FencedResource.start();
    cleanup.push(() => resource.close());
    const path = backend === 'etcd' ? `${uniquePrefix('chaos')}job` : `${uniqueConsulPrefix('chaos')}job`;

    const slots: Slot[] = [];
    const spawn = (slot: Omit<Slot, 'process' | 'spawnedAt'> & { process?: CandidateProcess; spawnedAt?: number }): CandidateProcess => {
      slot.spawnedAt = Date.now();
      const candidate = new CandidateProcess(
        {
          backend,
          address: slot.address,
          path,
          id: slot.id,
          ttl,
          env: { VIP_RESOURCE: resource.url, ...(backend === 'consul' ? { VIP_MIN_TTL: '1' } : {}), ...options.candidateEnv },
        },
        log,
      );
      void candidate.exited.then((exit) => {
        if (!ending && !(slot as Slot).killing) {
          violations.push(`candidate ${slot.id} exited by itself (${JSON.stringify(exit)}):\n${candidate.stderr.slice(-15).join('\n')}`);
        }
      });
      return candidate;
    };
    for (let i = 1; i <= count; i++) {
      const targets = etcd ? etcd.members.map((member) => member.clientPort) : [consul!.port];
      const proxies = await Promise.all(targets.map((port) => startProxy(port)));
      for (const proxy of proxies) cleanup.push(() => proxy.close());
      const address = etcd ? `etcd://${proxies.map((proxy) => `127.0.0.1:${proxy.port}`).join(',')}` : `consul://127.0.0.1:${proxies[0]!.port}`;
      const slot = { id: `c${i}`, proxies, address, paused: false, killing: false } as Slot;
      slot.process = spawn(slot);
      slots.push(slot);
    }
    cleanup.push(async () => {
      ending = true;
      await Promise.all(slots.map((slot) => slot.process.process.kill('SIGKILL')));
    });
    started = Date.now();
    const elapsed = (): string => `+${((Date.now() - started) / 1000).toFixed(1)}s`;
    progress(`${backend}: seed ${seed}, ${count} candidates, ttl ${ttl} s, faults for ${durationMs / 1000} s`);

    /**
     * Whether the slot's current process leads by its own log. Not
     * CandidateProcess.isLeading(), which reads every line with the slot's id:
     * a process killed while it led leaves its select without a deselect, and
     * its successor in the slot would seem to lead until its own first select.
     */
    const leads = (slot: Slot): boolean => {
      if (slot.process.child.exitCode !== null || slot.process.deaths.length > 0) return false;
      let last: string | undefined;
      for (const line of log) {
        if (line.id === slot.id && line.at >= slot.spawnedAt && (line.event === 'select' || line.event === 'deselect')) last = line.event;
      }
      return last === 'select';
    };
    const leader = (): Slot | undefined => slots.find((slot) => !slot.paused && leads(slot));
    /** The candidate a fault aims at: the leader (waiting for one, within the recovery bound) or the planned slot. */
    const target = async (plan: PlannedFault): Promise<{ slot: Slot; leading: boolean }> => {
      if (plan.atLeader) {
        const since = Date.now();
        while (!leader() && Date.now() - since < recoveryBoundMs) await sleep(25);
        const current = leader();
        if (current) return { slot: current, leading: true };
      }
      const slot = slots[plan.slot]!;
      return { slot, leading: leader() === slot };
    };
    const hold = async (
      plan: PlannedFault,
      who: string,
      leading: boolean | undefined,
      inject: () => void | Promise<void>,
      heal: () => void | Promise<void>,
    ): Promise<void> => {
      const at = Date.now();
      progress(`${elapsed()} ${plan.kind} ${who}${leading ? ' (the leader)' : ''} for ${(plan.ms / 1000).toFixed(1)} s`);
      await inject();
      await sleep(plan.ms);
      await heal();
      faults[plan.kind]++;
      faultLog.push({ at, kind: plan.kind, target: who, ...(leading === undefined ? {} : { leading }), ms: Date.now() - at });
    };

    // ---- the faults -----------------------------------------------------------
    const inject: Record<FaultKind, (plan: PlannedFault) => Promise<void>> = {
      kill: async (plan) => {
        const { slot, leading } = await target(plan);
        await hold(
          plan,
          slot.id,
          leading,
          async () => {
            slot.killing = true;
            await slot.process.kill();
            (deaths[slot.id] ??= []).push(slot.process.deaths[0]!);
          },
          () => {
            slot.process = spawn(slot);
            slot.killing = false;
          },
        );
      },
      pause: async (plan) => {
        const { slot, leading } = await target(plan);
        await hold(
          plan,
          slot.id,
          leading,
          () => {
            slot.paused = true;
            (stopped[slot.id] ??= []).push({ from: Date.now(), to: Number.POSITIVE_INFINITY });
            slot.process.pause();
          },
          () => {
            slot.process.resume();
            stopped[slot.id]!.at(-1)!.to = Date.now();
            slot.paused = false;
          },
        );
      },
      cut: async (plan) => {
        const { slot, leading } = await target(plan);
        await hold(
          plan,
          slot.id,
          leading,
          () => slot.proxies.forEach((proxy) => proxy.cut()),
          () => slot.proxies.forEach((proxy) => proxy.heal()),
        );
      },
      stall: async (plan) => {
        const { slot, leading } = await target(plan);
        await hold(
          plan,
          slot.id,
          leading,
          () => slot.proxies.forEach((proxy) => proxy.stall()),
          () => slot.proxies.forEach((proxy) => proxy.heal()),
        );
      },
      restart: async (plan) => {
        // SIGKILL of every server, then start again on the same ports and data.
        await hold(
          plan,
          backend === 'etcd' ? 'etcd (all 3 members)' : 'consul server',
          undefined,
          () => {},
          () => (etcd ? etcd.restart() : consul!.restart()),
        );
      },
      member: async (plan) => {
        const [index] = plan.members as [number];
        await hold(
          plan,
          `etcd member ${index}`,
          undefined,
          () => etcd!.killMember(index),
          () => etcd!.startMember(index),
        );
      },
      quorum: async (plan) => {
        const [first, second] = plan.members as [number, number];
        await hold(
          plan,
          `etcd members ${first} and ${second}`,
          undefined,
          () => Promise.all([etcd!.killMember(first), etcd!.killMember(second)]).then(() => {}),
          async () => {
            // A member alone does not serve clients; the two start together, then the cluster is healthy.
            await etcd!.startMember(first, false);
            await etcd!.startMember(second, false);
            await etcd!.waitHealthy();
          },
        );
      },
    };

    // Let the first election happen before the first fault.
    await sleep(ttl * 1000);
    const allHappened = (): boolean => kinds.every((kind) => faults[kind] > 0);
    while (Date.now() - started < durationMs || !allHappened()) {
      const plan = schedule.next().value;
      await inject[plan.kind](plan);
      await sleep(plan.gapMs);
    }

    // ---- recovery --------------------------------------------------------------
    const quietAt = Date.now();
    // The recovery bound, a ttl more for the new leader's first renewal (due
    // ttl / 3 after its select), and 5 s of slack for a loaded machine: past
    // it, the recovery check below has failed the run anyway.
    const settleBoundMs = recoveryBoundMs + ttl * 1000 + 5000;
    const faultWindowMs = quietAt - started;
    progress(`${elapsed()} faults stop; waiting for a settled leader (bound ${(settleBoundMs / 1000).toFixed(1)} s), then watching it for ${(ttl * 1.5).toFixed(1)} s`);
    // Settled: exactly one process leads by its log, and it has refreshed since
    // the faults stopped (the store took a renewal from it, so it is not a
    // leader left over from a fault, about to find its lease gone). Then watch
    // it for 1.5 x ttl, longer than a lease: settledThroughout below fails the
    // run if it announced a deselect or anybody else was selected meanwhile.
    let settledAt: number | undefined;
    let lastSeen: string[] = [];
    while (Date.now() - quietAt < settleBoundMs) {
      const leading = slots.filter(leads);
      lastSeen = leading.map((slot) => slot.id);
      const events = leading.length === 1 ? leading[0]!.process.events().filter((line) => line.at >= leading[0]!.spawnedAt) : [];
      const selectedAt = events.filter((line) => line.event === 'select').at(-1)?.at ?? Number.POSITIVE_INFINITY;
      if (events.some((line) => line.event === 'refresh' && line.at > quietAt && line.at > selectedAt)) {
        settledAt = Date.now();
        break;
      }
      await sleep(50);
    }
    if (settledAt !== undefined) await sleep(ttl * 1500);
    const watchedUntil = Date.now();
    ending = true;
    await Promise.all(
      slots.map(async (slot) => {
        slot.process.process.send('stop');
        const exited = await Promise.race([slot.process.exited.then(() => true), sleep(10_000).then(() => false)]);
        if (!exited) {
          violations.push(`candidate ${slot.id} did not stop within 10 s of "stop":\n${slot.process.stderr.slice(-10).join('\n')}`);
          await slot.process.process.kill('SIGKILL');
        }
      }),
    );
    progress(`${elapsed()} done`);

    // ---- the verdict -------------------------------------------------------------
    let all: Term[] = [];
    try {
      all = terms(log, deaths);
    } catch (error) {
      violations.push(`the logs do not make sense: ${(error as Error).message}`);
    }
    violations.push(...splitBrains(all));
    // The candidates' default safety margin, ttl / 5 (packages/core/src/options.ts).
    violations.push(...announcedOverlaps(all, stopped, (ttl * 1000) / 5));
    const writes = checkWrites(all, resource.writes);
    violations.push(...writes.violations);
    const during = leaderlessGaps(all, all.length ? Math.min(...all.map((term) => term.from)) : started, quietAt);
    const leadingAtQuiet = all.some((term) => term.from <= quietAt && term.to > quietAt);
    const next = all.filter((term) => term.from > quietAt).sort((a, b) => a.from - b.from)[0];
    const recoveryMs = leadingAtQuiet ? 0 : next ? next.from - quietAt : Number.POSITIVE_INFINITY;
    if (all.length === 0) violations.push('no candidate ever led');
    if (recoveryMs > recoveryBoundMs) {
      violations.push(`no leader within ${recoveryBoundMs} ms after the faults stopped (${Number.isFinite(recoveryMs) ? `${recoveryMs} ms` : 'none at all'})`);
    }
    const late = lateDeselects(all);
    if (settledAt === undefined) {
      violations.push(
        `the election never settled: no single leader had refreshed its hold ${settleBoundMs} ms after the faults stopped (leading by their logs then: ${lastSeen.join(', ') || 'none'})`,
      );
    } else {
      violations.push(...settledThroughout(all, settledAt, watchedUntil).map((message) => `the election did not stay settled after the faults stopped: ${message}`));
    }
    return {
      backend,
      seed,
      candidates: count,
      ttl,
      faultWindowMs,
      faults,
      faultLog,
      terms: all.length,
      writes: { accepted: writes.accepted, refused: writes.refused, late: writes.late },
      longestGapMs: Math.max(0, ...during.map((gap) => gap.to - gap.from)),
      recoveryMs,
      recoveryBoundMs,
      lateDeselects: { count: late.length, maxMs: Math.max(0, ...late.map((entry) => entry.lateByMs)) },
      pausedLeaders: { hit: faultLog.filter((fault) => fault.kind === 'pause' && fault.leading).length, replaced: replacedWhileStopped(all, stopped).length },
      violations,
      log,
    };
  } finally {
    ending = true;
    for (const close of cleanup.reverse()) await close().catch(() => {});
  }
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * What a run must have done to prove anything, as messages (empty: it did).
 * The short test (run-test.ts) and the long run (main.ts) both fail on any:
 * a run without accepted writes never tested the fence, one with fewer than 3
 * terms never saw leadership change hands twice, and one whose pauses never
 * caught a leader that was replaced while stopped never tested what a woken
 * leader announces.
 */
export function unexercised(report: ChaosReport): string[] {
  const found: string[] = [];
  for (const [kind, n] of Object.entries(report.faults)) if (n === 0) found.push(`no fault of kind ${kind} happened`);
  if (report.terms < 3) found.push(`only ${report.terms} term(s): leadership must change hands at least twice (3 terms)`);
  if (report.writes.accepted === 0) found.push('the fenced resource accepted no write: no leader did its work');
  if ('pause' in report.faults && report.pausedLeaders.replaced === 0) {
    found.push(
      `no paused leader was replaced while stopped and announced its deselect after SIGCONT (${report.pausedLeaders.hit} of ${report.faults.pause} pauses hit the leader): the paused-leader case did not happen`,
    );
  }
  return found;
}

/** The report as a few lines for a person. */
export function summary(report: ChaosReport): string {
  const unproven = unexercised(report);
  const faults = Object.entries(report.faults)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  return [
    `chaos ${report.backend}: seed ${report.seed}, ${report.candidates} candidates, ttl ${report.ttl} s, faults for ${(report.faultWindowMs / 1000).toFixed(0)} s`,
    `  faults: ${faults}`,
    `  terms: ${report.terms}; writes accepted ${report.writes.accepted}, refused ${report.writes.refused} (stale tokens), late but in order ${report.writes.late}`,
    `  longest leaderless gap under faults: ${(report.longestGapMs / 1000).toFixed(2)} s; a leader again ${(report.recoveryMs / 1000).toFixed(2)} s after the faults stopped (bound ${(report.recoveryBoundMs / 1000).toFixed(1)} s)`,
    `  deselects announced after the deadline (stopped or starved leaders): ${report.lateDeselects.count}, at most ${(report.lateDeselects.maxMs / 1000).toFixed(2)} s late`,
    ...('pause' in report.faults
      ? [`  paused leaders: ${report.pausedLeaders.hit} of ${report.faults.pause} pauses hit the leader; replaced while stopped, deselect announced after SIGCONT: ${report.pausedLeaders.replaced}`]
      : []),
    report.violations.length === 0 ? '  verdict: no split brain, no stale write accepted, no wrong refusal, settled after the faults' : `  VIOLATIONS (${report.violations.length}):\n    ${report.violations.join('\n    ')}`,
    ...(unproven.length === 0 ? [] : [`  NOT EXERCISED, the run proves nothing (${unproven.length}):\n    ${unproven.join('\n    ')}`]),
  ].join('\n');
}
