/**
 * The chaos run: N candidate processes on one path, each behind TCP proxies of
 * its own to a real store (a 3-member etcd cluster, or a Consul server that
 * keeps its state on disk), each writing to a fenced resource while it leads.
 * Faults are drawn from a seeded random source (the seed is printed; the same
 * seed draws the same faults, targets and durations, though the machine's
 * timing still varies): SIGKILL of a candidate (then restarted with the same
 * id), SIGSTOP of a candidate for longer than the TTL (then SIGCONT), its
 * proxies cut or stalled, the store restarted, and for etcd one member lost
 * and back, and quorum lost and back. One fault at a time; every kind is drawn
 * once, in shuffled order, before any is drawn again, and the run does not end
 * before every kind has happened.
 *
 * Afterwards the checker (../checker.ts) reads every process's log and the
 * resource's record. The run fails on two leaders at once, a token that does
 * not increase, a write the resource should not have accepted, a candidate
 * process that died by itself, or no leader within `recoveryBoundMs` once the
 * faults stop:
 *
 *   recovery bound = server expiry (etcd: ttl; Consul: 2 × ttl, its session
 *   invalidation rule) + 2 × the candidates' largest retry backoff (ttl / 3)
 *   + 15 s for the store itself to be serving again (an etcd member or Consul
 *   server that was just restarted elects a raft leader, Consul syncs its node)
 *   and for a loaded machine.
 */
import { announcedOverlaps, checkWrites, lateDeselects, leaderlessGaps, splitBrains, terms, type LogLine, type Term } from '../checker.js';
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
  /** How often a fault aimed at one candidate is aimed at the leader (0 to 1). Default 0.6 (0.8 for pause). */
  preferLeader?: number;
  /** More environment for every candidate process (see fixtures/candidate.mjs). */
  candidateEnv?: Record<string, string>;
}

export interface FaultRecord {
  at: number;
  kind: FaultKind;
  target: string;
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

interface Slot {
  id: string;
  proxies: TcpProxy[];
  address: string;
  process: CandidateProcess;
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
  const random = seededRandom(seed);
  const between = (low: number, high: number): number => low + (high - low) * random();
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const progress = options.onProgress ?? (() => {});
  const cleanup: (() => Promise<void>)[] = [];
  const log: LogLine[] = [];
  const deaths: Record<string, number[]> = {};
  /** When each process was stopped (SIGSTOP to SIGCONT), for the checker. */
  const stopped: Record<string, { from: number; to: number }[]> = {};
  const violations: string[] = [];
  const faultLog: FaultRecord[] = [];
  const kinds = options.faults ?? FAULTS[backend];
  for (const kind of kinds) if (!FAULTS[backend].includes(kind)) throw new Error(`runChaos: fault "${kind}" is not one ${backend} gets (${FAULTS[backend].join(', ')})`);
  const faults = Object.fromEntries(kinds.map((kind) => [kind, 0])) as Record<FaultKind, number>;
  const recoveryBoundMs = ((backend === 'consul' ? 2 : 1) * ttl + (2 * ttl) / 3) * 1000 + 15_000;
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
    const spawn = (slot: Omit<Slot, 'process'> & { process?: CandidateProcess }): CandidateProcess => {
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

    const leader = (): Slot | undefined => slots.find((slot) => !slot.paused && slot.process.child.exitCode === null && slot.process.isLeading());
    const target = (preferLeader = options.preferLeader ?? 0.6): Slot => {
      const current = leader();
      return current && random() < preferLeader ? current : pick(slots);
    };
    const hold = async (kind: FaultKind, who: string, ms: number, inject: () => void | Promise<void>, heal: () => void | Promise<void>): Promise<void> => {
      const at = Date.now();
      progress(`${elapsed()} ${kind} ${who} for ${(ms / 1000).toFixed(1)} s`);
      await inject();
      await sleep(ms);
      await heal();
      faults[kind]++;
      faultLog.push({ at, kind, target: who, ms: Date.now() - at });
    };

    // ---- the faults -----------------------------------------------------------
    const inject: Record<FaultKind, () => Promise<void>> = {
      kill: async () => {
        const slot = target();
        await hold(
          'kill',
          slot.id,
          between(200, 2000),
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
      pause: async () => {
        const slot = target(options.preferLeader ?? 0.8);
        await hold(
          'pause',
          slot.id,
          // Longer than the server takes to free a silent holder's key (etcd:
          // ttl; Consul: up to 2 x ttl), so that a paused leader is replaced
          // while it sleeps and wakes up to find it so.
          between(1.2, 2) * (backend === 'consul' ? 2 : 1) * ttl * 1000,
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
      cut: async () => {
        const slot = target();
        await hold(
          'cut',
          slot.id,
          between(0.3, 1.5) * ttl * 1000,
          () => slot.proxies.forEach((proxy) => proxy.cut()),
          () => slot.proxies.forEach((proxy) => proxy.heal()),
        );
      },
      stall: async () => {
        const slot = target();
        await hold(
          'stall',
          slot.id,
          between(0.5, 1.5) * ttl * 1000,
          () => slot.proxies.forEach((proxy) => proxy.stall()),
          () => slot.proxies.forEach((proxy) => proxy.heal()),
        );
      },
      restart: async () => {
        // SIGKILL of every server, then start again on the same ports and data.
        await hold(
          'restart',
          backend === 'etcd' ? 'etcd (all 3 members)' : 'consul server',
          0,
          () => {},
          () => (etcd ? etcd.restart() : consul!.restart()),
        );
      },
      member: async () => {
        const index = Math.floor(random() * 3);
        await hold(
          'member',
          `etcd member ${index}`,
          between(1000, 3000),
          () => etcd!.killMember(index),
          () => etcd!.startMember(index),
        );
      },
      quorum: async () => {
        const first = Math.floor(random() * 3);
        const second = (first + 1 + Math.floor(random() * 2)) % 3;
        await hold(
          'quorum',
          `etcd members ${first} and ${second}`,
          between(0.5, 1.5) * ttl * 1000,
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
    let bag: FaultKind[] = [];
    const allHappened = (): boolean => kinds.every((kind) => faults[kind] > 0);
    while (Date.now() - started < durationMs || !allHappened()) {
      if (bag.length === 0) bag = shuffle([...kinds], random);
      await inject[bag.shift()!]();
      await sleep(between(500, 2000));
    }

    // ---- recovery --------------------------------------------------------------
    const quietAt = Date.now();
    const faultWindowMs = quietAt - started;
    progress(`${elapsed()} faults stop; waiting for a leader (bound ${(recoveryBoundMs / 1000).toFixed(1)} s)`);
    while (!leader() && Date.now() - quietAt < recoveryBoundMs + 5000) await sleep(25);
    // Watch the settled election for a while: one leader, no flapping.
    await sleep(ttl * 1500);
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

/** The report as a few lines for a person. */
export function summary(report: ChaosReport): string {
  const faults = Object.entries(report.faults)
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
  return [
    `chaos ${report.backend}: seed ${report.seed}, ${report.candidates} candidates, ttl ${report.ttl} s, faults for ${(report.faultWindowMs / 1000).toFixed(0)} s`,
    `  faults: ${faults}`,
    `  terms: ${report.terms}; writes accepted ${report.writes.accepted}, refused ${report.writes.refused} (stale tokens), late but in order ${report.writes.late}`,
    `  longest leaderless gap under faults: ${(report.longestGapMs / 1000).toFixed(2)} s; a leader again ${(report.recoveryMs / 1000).toFixed(2)} s after the faults stopped (bound ${(report.recoveryBoundMs / 1000).toFixed(1)} s)`,
    `  deselects announced after the deadline (stopped or starved leaders): ${report.lateDeselects.count}, at most ${(report.lateDeselects.maxMs / 1000).toFixed(2)} s late`,
    report.violations.length === 0 ? '  verdict: no split brain, no stale write accepted' : `  VIOLATIONS (${report.violations.length}):\n    ${report.violations.join('\n    ')}`,
  ].join('\n');
}
