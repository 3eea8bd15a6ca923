/**
 * `Candidate`: what an application uses to take part in an election. This
 * file is its public face (queries, `whenSelected()`, `changes()`); the state
 * machine, its timers and the safety argument are in machine.ts.
 */
import { checkKnownKeys } from './adapter/checks.js';
import { describe, VipOptionError } from './errors.js';
import type { CandidateEvents } from './events.js';
import { Machine, type ChangeListener } from './machine.js';
import type { CandidateOptions } from './options.js';
import type { Holder, LockStore } from './store.js';

export type { CandidateEvents, DeselectReason } from './events.js';

/** What `Candidate.health()` says. Times in seconds. */
export interface CandidateHealth {
  /** false: see `reason`. */
  readonly healthy: boolean;
  /** What it is doing, or why it is unhealthy, in a few words. */
  readonly reason: string;
  /** `starting`: started, the key not read yet. */
  readonly state: 'stopped' | 'starting' | 'following' | 'leading' | 'stopping';
  /** Whether this node leads now (`isSelected()`). */
  readonly leading: boolean;
  readonly suspended: boolean;
  /** The leader as last seen. */
  readonly leader: Holder | null;
  /** Seconds to the local deadline while in the leading state (negative past it), else `null`. */
  readonly timeLeft: number | null;
  /** When this node's term began, while it leads. */
  readonly termStart: Date | null;
  /** Seconds since the store stopped answering (calls failing or the watch down), `null` while it answers. */
  readonly unreachableFor: number | null;
  /** The last store failure's message while `unreachableFor` is set. */
  readonly lastError: string | null;
}

/** What `Candidate.health()` accepts; anything else is refused (`checkKnownKeys`). */
const HEALTH_OPTION_KEYS = ['unreachableAfter'] as const;

/** What a Candidate calls on its store; checked when it is created, not on first use. */
const STORE_METHODS = ['compareAndSwap', 'refresh', 'watch', 'close'] as const;

function checkStore(where: string, store: LockStore): void {
  const missing = store === null || typeof store !== 'object' ? undefined : STORE_METHODS.filter((name) => typeof store[name] !== 'function');
  if (missing === undefined || missing.length > 0) {
    const lacks = missing?.length ? `; it has no ${missing.map((name) => `${name}()`).join(', ')}` : '';
    throw new TypeError(`${where}: store must be a LockStore such as new MemoryStore() (got ${describe(store)}${lacks})`);
  }
}

export class Candidate extends Machine {
  constructor(store: LockStore, options: CandidateOptions) {
    checkStore('Candidate', store);
    super(store, options);
  }

  // ---- what a user asks (times in seconds, like the options) ---------------

  /** The current leader's id (`locked`'s name), or `null` when there is none (or none known yet). */
  id(): string | null {
    return this.holder()?.id ?? null;
  }

  /** The current leader's value, or `null`. */
  value(): string | null {
    return this.holder()?.value ?? null;
  }

  /** The current leader as last seen, with its token, or `null`. */
  holder(): Holder | null {
    return this.state.kind === 'stopped' ? null : (this.state.run.leader ?? null);
  }

  /** This candidate's own id. */
  localid(): string {
    return this.options.id;
  }

  /** This candidate's own value. */
  localvalue(): string {
    return this.options.value;
  }

  /** `id + ':::' + value`, as the `locked` module exposed it. */
  localdata(): string {
    return `${this.options.id}:::${this.options.value}`;
  }

  /** The election key. */
  path(): string {
    return this.options.path;
  }

  /** The TTL in seconds. */
  ttl(): number {
    return this.options.ttl;
  }

  /** Seconds between the local deadline and the earliest the server may expire the hold. */
  safetyMargin(): number {
    return this.options.safetyMarginMs / 1000;
  }

  /** Seconds between refreshes while leading. */
  refreshInterval(): number {
    return this.options.refreshIntervalMs / 1000;
  }

  /**
   * Whether this node leads right now. Checks the local deadline itself, so
   * it is `false` as soon as the deadline has passed, even before the timer
   * that announces `deselect` has had a chance to run.
   */
  isSelected(): boolean {
    return this.leadingTerm() !== undefined;
  }

  /** Whether this node leads on borrowed time: refreshes are failing (see the `suspend` event). */
  isSuspended(): boolean {
    return this.leadingTerm()?.suspended ?? false;
  }

  /** The fencing token of this node's current term while it leads, else `null`. */
  token(): bigint | null {
    return this.leadingTerm()?.holder.token ?? null;
  }

  /** Seconds (on this process's monotonic clock) until the local deadline while leading, else `null`. */
  timeLeft(): number | null {
    const term = this.leadingTerm();
    return term ? (term.deadline - this.clock.now()) / 1000 : null;
  }

  /**
   * When this process first saw the current holder's term (wall clock,
   * informational): its term start if this node leads, else when the watch showed it.
   * `null` when stopped or before the first read.
   */
  leaderSince(): Date | null {
    const state = this.state;
    if (state.kind === 'stopped' || !state.run.leader || state.run.leaderSince === undefined) return null;
    const term = this.leadingTerm();
    return new Date(term ? term.startedAt : state.run.leaderSince);
  }

  /** When this node's current term began (wall clock, informational) while leading, else `null`. */
  termStart(): Date | null {
    const term = this.leadingTerm();
    return term ? new Date(term.startedAt) : null;
  }

  /**
   * Whether this candidate is doing its job, for a probe or a dashboard (see
   * `CandidateHealth`). Unhealthy when it is stopped (or stopping), when it is
   * in the leading state past its local deadline (it must never be: alarm on
   * it), or when the store has been unreachable (every call failing, or, for
   * a follower, the watch down) for longer than `unreachableAfter` seconds
   * (default: the ttl). A leader's contact is its refreshes.
   * A leader with time left is healthy, even suspended.
   */
  health(options: { unreachableAfter?: number } = {}): CandidateHealth {
    if (options === null || typeof options !== 'object') {
      throw new VipOptionError('Candidate.health', 'options', 'an object like { unreachableAfter: 10 } or omitted', options);
    }
    checkKnownKeys('Candidate.health', options, HEALTH_OPTION_KEYS);
    const { unreachableAfter = this.options.ttl } = options;
    if (typeof unreachableAfter !== 'number' || !Number.isFinite(unreachableAfter) || unreachableAfter < 0) {
      throw new VipOptionError('Candidate.health', 'unreachableAfter', 'a number of seconds >= 0', unreachableAfter);
    }
    const state = this.state;
    const now = this.clock.now();
    // A leader's contact is its refreshes (every answer clears failingSince): a
    // watch that is down says nothing of a hold that keeps being confirmed.
    const watchDown = state.kind === 'leading' ? undefined : state.kind === 'stopped' ? undefined : state.run.watchDownSince;
    const since = state.kind === 'stopped' ? undefined : [this.failingSince, watchDown].filter((t) => t !== undefined);
    const unreachableFor = since && since.length > 0 ? (now - Math.min(...since)) / 1000 : null;
    const term = state.kind === 'leading' ? state.term : undefined;
    const report = {
      state: state.kind === 'following' && state.run.leader === undefined ? 'starting' : state.kind,
      leading: this.isSelected(),
      suspended: this.isSuspended(),
      leader: this.holder(),
      timeLeft: term ? (term.deadline - now) / 1000 : null,
      termStart: this.termStart(),
      unreachableFor,
      lastError: unreachableFor === null ? null : (this.lastStoreError?.message ?? null),
    } as const;
    const unhealthy = (reason: string): CandidateHealth => ({ healthy: false, reason, ...report });
    if (state.kind === 'stopped' || state.kind === 'stopping') return unhealthy(state.kind);
    if (term && now >= term.deadline) return unhealthy(`in the leading state ${Math.round(now - term.deadline)} ms past its local deadline`);
    if (unreachableFor !== null && unreachableFor > unreachableAfter) {
      return unhealthy(`store unreachable for ${Math.round(unreachableFor)} s${report.lastError ? `: ${report.lastError}` : ''}`);
    }
    const doing = term
      ? `leading (${report.timeLeft!.toFixed(1)} s to the local deadline${term.suspended ? ', suspended' : ''})`
      : report.state === 'starting'
        ? 'starting (waiting for the first read of the key)'
        : `following (${report.leader ? `leader ${report.leader.id}` : 'no leader'})`;
    return { healthy: true, reason: doing, ...report };
  }

  /** The current term's signal while leading (aborts when the term ends), else `null`. */
  termSignal(): AbortSignal | null {
    return this.leadingTerm()?.controller.signal ?? null;
  }

  /**
   * Resolves, with the term's signal, when this node is selected (at once if
   * it already is). Rejects when `signal` aborts, or when the candidate is
   * stopped before it was selected.
   */
  whenSelected(signal?: AbortSignal): Promise<AbortSignal> {
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(`Candidate.whenSelected: signal must be an AbortSignal or undefined (got ${describe(signal)})`);
    }
    const leading = this.termSignal();
    if (leading) return Promise.resolve(leading);
    return new Promise<AbortSignal>((resolve, reject) => {
      const settle = (): void => {
        this.off('select', onSelect);
        signal?.removeEventListener('abort', onAbort);
        this.endListeners.delete(onStop);
      };
      const onSelect = (...[, , , termSignal]: CandidateEvents['select']): void => {
        settle();
        resolve(termSignal);
      };
      const onAbort = (): void => {
        settle();
        reject(signal!.reason);
      };
      const onStop = (): void => {
        settle();
        reject(new Error(`Candidate "${this.options.id}" on "${this.options.path}" was stopped before it was selected`));
      };
      if (signal?.aborted) return reject(signal.reason);
      this.on('select', onSelect);
      signal?.addEventListener('abort', onAbort, { once: true });
      // Also before start(): the run that start() begins ends in the same shutdown.
      this.endListeners.add(onStop);
    });
  }

  /** The holder over time: the current holder first (once known), then every change. Ends when the candidate stops. */
  changes(): AsyncIterableIterator<Holder | null> {
    const queue: (Holder | null)[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    const listener: ChangeListener = (holder) => {
      queue.push(holder);
      wake?.();
    };
    const finish = (): void => {
      done = true;
      this.changeListeners.delete(listener);
      wake?.();
    };
    if (this.state.kind !== 'stopped' && this.state.run.leader !== undefined) queue.push(this.state.run.leader);
    this.changeListeners.add(listener);
    this.endListeners.add(finish);
    const iterator: AsyncIterableIterator<Holder | null> = {
      next: async () => {
        while (queue.length === 0 && !done) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        if (queue.length > 0) return { value: queue.shift()!, done: false };
        return { value: undefined, done: true };
      },
      return: async () => {
        this.endListeners.delete(finish);
        finish();
        queue.length = 0;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }
}

/** For users of the `locked` module: `locker(store)(options)` makes a candidate. */
export function locker(store: LockStore): (options: CandidateOptions) => Candidate {
  checkStore('locker', store);
  return (options) => new Candidate(store, options);
}
