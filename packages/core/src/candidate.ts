/**
 * `Candidate`: what an application uses to take part in an election. This
 * file is its public face (queries, `whenSelected()`, `changes()`); the state
 * machine, its timers and the safety argument are in machine.ts.
 */
import { describe } from './errors.js';
import type { CandidateEvents } from './events.js';
import { Machine, type ChangeListener } from './machine.js';
import type { CandidateOptions } from './options.js';
import type { Holder, LockStore } from './store.js';

export type { CandidateEvents, DeselectReason } from './events.js';

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
