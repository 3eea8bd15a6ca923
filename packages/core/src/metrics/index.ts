/**
 * `@vip/core/metrics`: Prometheus metrics for elections, through `prom-client`
 * (an optional peer dependency: install it to use this entry point; the rest
 * of vip never loads it).
 *
 * ```ts
 * import { Registry } from 'prom-client';
 * import { VipMetrics } from '@vip/core/metrics';
 * const metrics = new VipMetrics({ registry: new Registry() });
 * metrics.track(candidate);            // a Candidate, or a @vip/vip Service
 * console.log(await metrics.registry.metrics());
 * ```
 *
 * What it costs: gauges are read from the tracked elections when the registry
 * is scraped (nothing runs between scrapes); transitions are counted from the
 * elections' events; store-call latencies come from the `vip:store-call`
 * diagnostics channel, which costs nothing while no `VipMetrics` listens.
 * Latency histograms are labelled by purpose only (not by path), so 10,000
 * elections do not make 10,000 histograms.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Counter, Gauge, Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import type { Candidate, CandidateHealth } from '../candidate.js';
import { STORE_CALL_CHANNEL, type StoreCallMessage } from '../diagnostics.js';
import { checkKnownKeys } from '../adapter/checks.js';
import { describe, VipOptionError } from '../errors.js';
import type { DeselectReason } from '../events.js';

/** What `track()` takes: a `Candidate`, or anything that owns one and forwards its events (a `@vip/vip` Service). */
export type Trackable = Candidate | Owner;

/** Each event has its own arguments. */
type Listener = (...args: any[]) => void;

/** A `@vip/vip` Service, structurally: its candidate may be created on start() and dropped on stop(). */
export interface Owner {
  readonly candidate: Candidate | undefined;
  /** Its election's options: the labels while it has no candidate. */
  readonly options: { readonly path: string; readonly id?: string | undefined };
  on(event: TransitionKind, listener: Listener): unknown;
  off(event: TransitionKind, listener: Listener): unknown;
}

export interface VipMetricsOptions {
  /** Where the metrics are registered; default prom-client's global registry. */
  registry?: Registry;
  /** Prepended to every metric name; default `vip_`. */
  prefix?: string;
  /** Histogram buckets in seconds for store-call durations. */
  buckets?: readonly number[];
  /** Seconds without a store answer after which `vip_healthy` reports 0; default each candidate's ttl (see `Candidate.health()`). */
  unreachableAfter?: number;
  /**
   * `true` (default): series per election, labelled `path` and `id`. `false`:
   * series for the process as a whole, whatever the number of elections
   * (`vip_elections{state}`, `vip_elections_unhealthy`, `vip_time_left_min_seconds`,
   * and the counters without `path`/`id`): for processes with many elections,
   * where per-election series cost more than they tell (see BENCHMARKS.md).
   */
  perElection?: boolean;
}

/** Default buckets for store-call durations, in seconds: 1 ms to 10 s. */
export const STORE_CALL_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Every key of `VipMetricsOptions` (a record, so the compiler notices a key missing here); any other is refused. */
const OPTION_KEYS = Object.keys({ registry: true, prefix: true, buckets: true, unreachableAfter: true, perElection: true } satisfies Record<keyof VipMetricsOptions, true>);
const EVENTS = ['select', 'deselect', 'suspend', 'resume'] as const;
type TransitionKind = (typeof EVENTS)[number];

interface Entry {
  readonly target: Trackable;
  readonly listeners: ReadonlyArray<readonly [TransitionKind, Listener]>;
  /** The label sets of this election's vip_transitions_total series, to remove them on untrack. */
  readonly series: Map<string, Record<'path' | 'id' | 'kind' | 'reason', string>>;
}

/**
 * Counter series present at 0 before these rare, alert-worthy events can
 * happen (from a term's select), so that `increase()` sees the first of them:
 * a series that appears with the value 1 has no earlier sample to rise from.
 */
const ZERO_DESELECTS = ['lost', 'expired'] as const;
/** Store calls whose failures are worth an alert: their `outcome="error"` histogram series exist from the start. */
const ZERO_ERROR_CALLS = ['acquire', 'refresh', 'release'] as const;
const PURPOSES = ['acquire', 'refresh', 'verify', 'release', 'watch'] as const;
type Labels = Partial<Record<'path' | 'id', string>>;

function candidateOf(target: Trackable): Candidate | undefined {
  return 'candidate' in target ? target.candidate : target;
}

/**
 * The metrics of the elections it tracks, registered in one prom-client
 * registry. Labels: `path` (the election key) and `id` (this candidate's id);
 * with `perElection: false`, none of these per-election series but
 * `vip_elections{state}`, `vip_elections_unhealthy` and
 * `vip_time_left_min_seconds` for the process, and the counters without
 * `path` and `id`.
 *
 * - `vip_leader` (gauge): 1 while this process leads, else 0.
 * - `vip_healthy` (gauge): 1 while `health()` says healthy, else 0.
 * - `vip_time_left_seconds` (gauge): time to the local deadline, while leading.
 * - `vip_fencing_token` (gauge): the current holder's token as this process sees it, while a holder is known
 *   (exact up to 2^53).
 * - `vip_term_start_time_seconds` (gauge): Unix time the current holder's term began (its start when this
 *   process leads, else when this process first saw it), while a holder is known.
 * - `vip_store_unreachable_seconds` (gauge): how long the store has not answered, 0 while it does.
 * - `vip_transitions_total` (counter, + `kind`, `reason`): select, deselect (reason: stopped, resigned,
 *   error, lost, expired), suspend, resume.
 * - `vip_store_call_duration_seconds` (histogram, `purpose`, `outcome`): acquire, refresh, verify, release.
 * - `vip_store_errors_total` (counter, `path`, `purpose`): failed store calls, watches included.
 */
export class VipMetrics {
  readonly registry: Registry;
  readonly #entries = new Map<Trackable, Entry>();
  /** Candidate → the entry that owns it; rebuilt when an owner's candidate is not in it. */
  #byCandidate = new WeakMap<object, Entry>();
  #untracked = new WeakSet<object>();
  readonly #unreachableAfter: number | undefined;
  readonly #onStoreCall = (message: unknown): void => this.#storeCall(message as StoreCallMessage);
  readonly #transitions: Counter<'path' | 'id' | 'kind' | 'reason'>;
  readonly #durations: Histogram<'purpose' | 'outcome'>;
  readonly #errors: Counter<'path' | 'purpose'>;
  readonly #perElection: boolean;
  readonly #metricNames: string[] = [];
  #closed = false;

  constructor(options: VipMetricsOptions = {}) {
    const where = 'VipMetrics';
    if (options === null || typeof options !== 'object') throw new VipOptionError(where, 'options', 'an object or omitted', options);
    checkKnownKeys(where, options, OPTION_KEYS);
    const { registry = defaultRegistry, prefix = 'vip_', buckets = STORE_CALL_BUCKETS, unreachableAfter, perElection = true } = options;
    if (typeof perElection !== 'boolean') throw new VipOptionError(where, 'perElection', 'true (series per election) or false (for the process as a whole)', perElection);
    this.#perElection = perElection;
    if (registry === null || typeof registry !== 'object' || typeof (registry as Registry).registerMetric !== 'function') {
      throw new VipOptionError(where, 'registry', "a prom-client Registry (new Registry() from 'prom-client')", registry);
    }
    if (typeof prefix !== 'string' || !/^([a-zA-Z_:][a-zA-Z0-9_:]*)?$/.test(prefix)) {
      throw new VipOptionError(where, 'prefix', 'a Prometheus metric name prefix such as "vip_" (letters, digits, _ and :, not starting with a digit)', prefix);
    }
    if (!Array.isArray(buckets) || buckets.length === 0 || buckets.some((b, i) => typeof b !== 'number' || !(b > 0) || !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
      throw new VipOptionError(where, 'buckets', 'an increasing list of positive numbers of seconds', buckets);
    }
    if (unreachableAfter !== undefined && (typeof unreachableAfter !== 'number' || !Number.isFinite(unreachableAfter) || unreachableAfter < 0)) {
      throw new VipOptionError(where, 'unreachableAfter', 'a number of seconds >= 0, or omitted for each candidate\'s ttl', unreachableAfter);
    }
    this.registry = registry;
    this.#unreachableAfter = unreachableAfter;

    const registers = [registry];
    const entries = this.#entries;
    const labelsOf = (entry: Entry) => this.#labelsOf(entry);
    /** A gauge read from every tracked election at scrape time; `null` leaves the election's series out. */
    const gauge = (name: string, help: string, read: (candidate: Candidate | undefined) => number | null): void => {
      this.#add(prefix + name, (fullName) =>
        new Gauge({
          name: fullName,
          help,
          labelNames: ['path', 'id'],
          registers,
          collect() {
            this.reset();
            for (const entry of entries.values()) {
              const value = read(candidateOf(entry.target));
              if (value !== null) this.set(labelsOf(entry), value);
            }
          },
        }),
      );
    };
    const health = unreachableAfter === undefined ? {} : { unreachableAfter };
    // One health() per election per scrape, whichever gauges read it: a scrape collects
    // every metric in one synchronous turn, so the reports are forgotten in the next microtask.
    let reports: Map<Candidate, CandidateHealth> | undefined;
    const healthOf = (candidate: Candidate): CandidateHealth => {
      if (!reports) {
        reports = new Map();
        queueMicrotask(() => (reports = undefined));
      }
      let report = reports.get(candidate);
      if (!report) reports.set(candidate, (report = candidate.health(health)));
      return report;
    };

    if (perElection) {
      gauge('leader', 'Whether this process leads the election (1) or not (0).', (c) => (c?.isSelected() ? 1 : 0));
      gauge('healthy', 'Whether the election is healthy (1) or not (0), as Candidate.health() says: a follower with a live watch or a leader with time left.', (c) =>
        c && healthOf(c).healthy ? 1 : 0,
      );
      gauge('time_left_seconds', "Seconds left to this leader's local deadline (present only while leading).", (c) => c?.timeLeft() ?? null);
      gauge('fencing_token', "The current holder's fencing token as this process sees it (present while a holder is known).", (c) => {
        const token = c?.holder()?.token;
        return token === undefined ? null : Number(token);
      });
      gauge('term_start_time_seconds', "Unix time the current holder's term began, as this process knows it (present while a holder is known).", (c) => {
        const since = c?.leaderSince();
        return since ? since.getTime() / 1000 : null;
      });
      gauge('store_unreachable_seconds', 'Seconds the store has not answered this election (0 while it answers).', (c) => (c ? (healthOf(c).unreachableFor ?? 0) : 0));
    } else {
      // The process as a whole: one pass over the elections per scrape, a handful of series.
      let tally: { states: Map<string, number>; unhealthy: number; minTimeLeft: number | null } | undefined;
      const count = (): NonNullable<typeof tally> => {
        const states = new Map<string, number>(['leading', 'following', 'starting', 'stopping', 'stopped'].map((state) => [state, 0]));
        let unhealthy = 0;
        let minTimeLeft: number | null = null;
        for (const entry of entries.values()) {
          const candidate = candidateOf(entry.target);
          const report = candidate && healthOf(candidate);
          const state = report?.state ?? 'stopped';
          states.set(state, (states.get(state) ?? 0) + 1);
          if (!report?.healthy) unhealthy++;
          if (report?.timeLeft != null) minTimeLeft = minTimeLeft === null ? report.timeLeft : Math.min(minTimeLeft, report.timeLeft);
        }
        return { states, unhealthy, minTimeLeft };
      };
      // One count per scrape for the three gauges: a scrape collects them in one synchronous turn.
      const current = (): NonNullable<typeof tally> => {
        if (!tally) {
          tally = count();
          queueMicrotask(() => (tally = undefined));
        }
        return tally;
      };
      this.#add(`${prefix}elections`, (name) =>
        new Gauge({
          name,
          help: 'Elections tracked in this process, by state (leading, following, starting, stopping, stopped).',
          labelNames: ['state'],
          registers,
          collect() {
            this.reset();
            for (const [state, n] of current().states) this.set({ state }, n);
          },
        }),
      );
      this.#add(`${prefix}elections_unhealthy`, (name) =>
        new Gauge({
          name,
          help: 'Elections of this process that Candidate.health() says are unhealthy.',
          registers,
          collect() {
            this.set(current().unhealthy);
          },
        }),
      );
      this.#add(`${prefix}time_left_min_seconds`, (name) =>
        new Gauge({
          name,
          help: "Smallest time left to a local deadline among this process's leaders (absent when it leads none).",
          registers,
          aggregator: 'min', // cluster workers: the leader nearest its deadline, not a sum
          collect() {
            const { minTimeLeft } = current();
            this.reset();
            if (minTimeLeft !== null) this.set(minTimeLeft);
          },
        }),
      );
    }

    const election: Array<'path' | 'id'> = perElection ? ['path', 'id'] : [];
    this.#transitions = this.#add(`${prefix}transitions_total`, (name) =>
      new Counter({
        name,
        help: 'Transitions of this process in the election: kind is select, deselect, suspend or resume; reason is why a term ended (deselect only).',
        labelNames: [...election, 'kind', 'reason'],
        registers,
        // The process's zeros come back after a registry.resetMetrics() (a few series).
        collect: perElection ? undefined : () => zeroProcess(),
      }),
    );
    this.#durations = this.#add(`${prefix}store_call_duration_seconds`, (name) =>
      new Histogram({
        name,
        help: 'Duration of store calls from sending to answer: purpose is acquire, refresh, verify or release; outcome is ok or error.',
        labelNames: ['purpose', 'outcome'],
        buckets: [...buckets],
        registers,
      }),
    );
    for (const purpose of ZERO_ERROR_CALLS) this.#durations.zero({ purpose, outcome: 'error' });
    this.#errors = this.#add(`${prefix}store_errors_total`, (name) =>
      new Counter({
        name,
        help: perElection ? 'Store calls that failed (or watches that broke), by election and purpose.' : 'Store calls that failed (or watches that broke), by purpose.',
        labelNames: perElection ? ['path', 'purpose'] : ['purpose'],
        registers,
        collect: perElection ? undefined : () => zeroProcess(),
      }),
    );
    // inc(…, 0) leaves a count as it is and brings a missing series at 0.
    const zeroProcess = (): void => {
      for (const reason of ZERO_DESELECTS) this.#transitions.inc({ kind: 'deselect', reason }, 0);
      for (const purpose of PURPOSES) this.#errors.inc({ purpose }, 0);
    };
    if (!perElection) zeroProcess();
    subscribe(STORE_CALL_CHANNEL, this.#onStoreCall);
  }

  /** An election's labels: `path` and `id`, or none for the process as a whole. */
  #labelsOf(entry: Entry): Labels {
    if (!this.#perElection) return {};
    const candidate = candidateOf(entry.target);
    return { path: candidate?.path() ?? ownerPath(entry.target), id: candidate?.localid() ?? ownerId(entry.target) };
  }

  /** Register one metric; if that fails, unregister the ones before it so that the registry is as it was. */
  #add<T>(name: string, make: (name: string) => T): T {
    let metric: T;
    try {
      metric = make(name);
    } catch (error) {
      for (const registered of this.#metricNames) this.registry.removeSingleMetric(registered);
      const already = this.registry.getSingleMetric(name) !== undefined;
      throw already
        ? new VipOptionError('VipMetrics', 'registry', `a registry without a metric named ${name} (one is there already, perhaps from another VipMetrics with this prefix: close() that one first, or give this one another prefix)`, this.registry)
        : error;
    }
    this.#metricNames.push(name);
    return metric;
  }

  /** How many elections are tracked. */
  get size(): number {
    return this.#entries.size;
  }

  /** Start reporting `target` (a Candidate or a Service). Returns a function that stops it, like `untrack(target)`. */
  track(target: Trackable): () => void {
    if (this.#closed) throw new Error('VipMetrics.track: this VipMetrics is closed');
    if (target === null || typeof target !== 'object' || !('candidate' in target || typeof (target as Candidate).health === 'function')) {
      throw new TypeError(`VipMetrics.track: expected a Candidate or a Service (got ${describe(target)})`);
    }
    if (!this.#entries.has(target)) {
      const entry: Entry = {
        target,
        series: new Map(),
        listeners: EVENTS.map((kind) => [kind, ((reason?: DeselectReason) => this.#transition(entry, kind, reason)) as Listener] as const),
      };
      for (const [kind, listener] of entry.listeners) target.on(kind, listener);
      this.#entries.set(target, entry);
      // A follower's main trouble, a broken watch, at 0 from the start (per election).
      if (this.#perElection) this.#errors.inc({ path: this.#labelsOf(entry).path!, purpose: 'watch' }, 0);
      const candidate = candidateOf(target);
      if (candidate) this.#byCandidate.set(candidate, entry);
      this.#untracked = new WeakSet();
    }
    return () => this.untrack(target);
  }

  /** Stop reporting `target`; its series, counters' included, disappear at the next scrape (with `perElection: false`, the process's counters keep what it counted). */
  untrack(target: Trackable): void {
    const entry = this.#entries.get(target);
    if (!entry) return;
    for (const [kind, listener] of entry.listeners) target.off(kind, listener);
    this.#entries.delete(target);
    const candidate = candidateOf(target);
    if (candidate) this.#byCandidate.delete(candidate);
    if (!this.#perElection) return; // the process's series stay, with what they counted
    for (const labels of entry.series.values()) this.#transitions.remove(labels);
    const path = this.#labelsOf(entry).path;
    const others = [...this.#entries.values()].some((other) => this.#labelsOf(other).path === path);
    if (!others) for (const purpose of PURPOSES) this.#errors.remove({ path: path!, purpose });
  }

  /** Untrack everything, stop listening to store calls and remove the metrics from the registry. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const target of [...this.#entries.keys()]) this.untrack(target);
    unsubscribe(STORE_CALL_CHANNEL, this.#onStoreCall);
    for (const name of this.#metricNames) this.registry.removeSingleMetric(name);
  }

  #transition(entry: Entry, kind: TransitionKind, reason: DeselectReason | undefined): void {
    // A term's select brings its rare ends at 0 (per election; the process's are there from the start).
    if (kind === 'select' && this.#perElection) for (const end of ZERO_DESELECTS) this.#countTransition(entry, 'deselect', end, 0);
    this.#countTransition(entry, kind, kind === 'deselect' ? (reason ?? '') : '', 1);
  }

  #countTransition(entry: Entry, kind: string, reason: string, by: number): void {
    const labels = { ...this.#labelsOf(entry), kind, reason };
    if (this.#perElection) {
      const key = `${labels.path}\u0000${labels.id}\u0000${kind}\u0000${reason}`;
      if (!entry.series.has(key)) entry.series.set(key, labels as Record<'path' | 'id' | 'kind' | 'reason', string>);
    }
    this.#transitions.inc(labels, by);
  }

  #storeCall(message: StoreCallMessage): void {
    if (!this.#owns(message.candidate)) return;
    if (message.error) this.#errors.inc(this.#perElection ? { path: message.path, purpose: message.purpose } : { purpose: message.purpose });
    if (message.purpose !== 'watch') this.#durations.observe({ purpose: message.purpose, outcome: message.error ? 'error' : 'ok' }, message.durationMs / 1000);
  }

  /** Whether `candidate` is tracked, itself or through its owner (whose candidate may be new since track()). */
  #owns(candidate: object): boolean {
    if (this.#byCandidate.has(candidate)) return true;
    if (this.#untracked.has(candidate)) return false;
    for (const entry of this.#entries.values()) {
      const current = candidateOf(entry.target);
      if (current) this.#byCandidate.set(current, entry);
    }
    if (this.#byCandidate.has(candidate)) return true;
    this.#untracked.add(candidate);
    return false;
  }
}

function ownerPath(target: Trackable): string {
  return 'candidate' in target ? target.options.path : '';
}

function ownerId(target: Trackable): string {
  return 'candidate' in target ? (target.options.id ?? '') : '';
}
