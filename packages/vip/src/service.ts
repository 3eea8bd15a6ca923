/**
 * The run-once wrapper: run a function only while this node leads, with an
 * AbortSignal that fires when leadership ends.
 *
 * Order on the way out matters (kubernetes#139504): the leader's work is told
 * to stop (signal aborted) and awaited, bounded, *before* the key is released,
 * so the next leader never starts while this one is still winding down.
 */
import { EventEmitter } from 'node:events';
import { describeValue, emitIsolated } from '@vip/core/adapter';
import {
  Candidate,
  systemClock,
  VipOptionError,
  type CandidateEvents,
  type CandidateOptions,
  type Clock,
  type DeselectReason,
  type LockStore,
} from '@vip/core';
import { openStore, parseConnectionString } from './connection.js';
import { warnBeforeDeadline, warningLeadMs } from './early-warning.js';

/** What `fn` gets each time this node becomes leader. */
export interface LeaderContext {
  /**
   * Aborts when this term ends (deselect, stop), and at the latest a little
   * before the local deadline when the store has not confirmed the hold
   * (a quarter of the safety margin before it: see `warningLeadMs`).
   */
  readonly signal: AbortSignal;
  /** The fencing token of this term: pass it to whatever you write to. */
  readonly token: bigint;
  /** This node's id and value. */
  readonly id: string;
  readonly value: string;
}

export type LeaderFunction = (context: LeaderContext) => unknown;

export interface ServiceOptions extends CandidateOptions {
  /**
   * What to do when `fn` throws or its promise rejects. `'resign'` (default):
   * report it on `error`, give up leadership and stay out of the election for
   * `resignHoldOff` seconds so another node can take the job. `'stop'`:
   * report it and stop the service. `'continue'`: report it and keep leading.
   */
  onError?: 'resign' | 'stop' | 'continue';
  /** Seconds a resigned node waits before campaigning again. Default: ttl. */
  resignHoldOff?: number;
  /**
   * Seconds `stop()` waits for `fn` to settle after aborting its signal, and a
   * new term waits for the previous term's `fn` before calling `fn` again. Default 10.
   */
  stopTimeout?: number;
}

const ON_ERROR = ['resign', 'stop', 'continue'] as const;

/** One election plus the function it guards. Events are the candidate's. */
export class Service extends EventEmitter<CandidateEvents> {
  readonly options: ServiceOptions;
  readonly #fn: LeaderFunction;
  readonly #storeSource: LockStore | string;
  #candidate: Candidate | undefined;
  #store: LockStore | undefined;
  #ownsStore = false;
  #term: { controller: AbortController; token: bigint; settled: Promise<void> } | undefined;
  /** Every term's `fn` that has not settled yet, the current one included. */
  readonly #unsettled = new Set<Promise<void>>();
  readonly #clock: Clock;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(store: LockStore | string, options: ServiceOptions, fn: LeaderFunction) {
    super();
    if (typeof fn !== 'function') throw new TypeError(`vip: the leader function must be a function (got ${describeValue(fn)})`);
    if (options === null || typeof options !== 'object') {
      throw new TypeError(`vip: options must be an object like { path: '/my-job' } (got ${describeValue(options)})`);
    }
    const { onError = 'resign', resignHoldOff, stopTimeout = 10 } = options;
    if (!ON_ERROR.includes(onError)) throw new VipOptionError('vip', 'onError', `one of ${ON_ERROR.join(', ')}`, onError);
    if (resignHoldOff !== undefined && !(typeof resignHoldOff === 'number' && Number.isFinite(resignHoldOff) && resignHoldOff >= 0)) {
      throw new VipOptionError('vip', 'resignHoldOff', 'a number of seconds >= 0', resignHoldOff);
    }
    if (!(typeof stopTimeout === 'number' && Number.isFinite(stopTimeout) && stopTimeout > 0)) {
      throw new VipOptionError('vip', 'stopTimeout', 'a number of seconds > 0', stopTimeout);
    }
    this.options = options;
    this.#clock = options.clock ?? systemClock;
    this.#fn = fn;
    this.#storeSource = store;
    if (typeof store === 'string') {
      // Validate the string and every option now, where they were given; the
      // adapter is loaded on start() and checks its own limits (Consul's TTL) then.
      parseConnectionString(store);
      new Candidate(PROBE_STORE, options);
    } else {
      this.#candidate = this.#makeCandidate(store);
    }
  }

  /** The candidate behind the service (created on start() for a connection string). */
  get candidate(): Candidate | undefined {
    return this.#candidate;
  }

  isSelected(): boolean {
    return this.#candidate?.isSelected() ?? false;
  }

  token(): bigint | null {
    return this.#candidate?.token() ?? null;
  }

  id(): string | null {
    return this.#candidate?.id() ?? null;
  }

  value(): string | null {
    return this.#candidate?.value() ?? null;
  }

  async start(): Promise<void> {
    if (this.#stopping) await this.#stopping;
    this.#starting ??= (async () => {
      if (!this.#candidate) {
        this.#store = await openStore(this.#storeSource as string);
        this.#ownsStore = true;
        this.#candidate = this.#makeCandidate(this.#store);
      }
      await this.#candidate.start();
    })().finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  /** Abort the running function, wait for it (bounded), then resign and stop. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.#starting) await this.#starting.catch(() => {});
      await this.#endTerm();
      await this.#candidate?.stop();
      if (this.#ownsStore && this.#store) {
        await this.#store.close();
        this.#candidate = undefined;
        this.#store = undefined;
        this.#ownsStore = false;
      }
    })().finally(() => {
      this.#stopping = undefined;
    });
    return this.#stopping;
  }

  #makeCandidate(store: LockStore): Candidate {
    const candidate = new Candidate(store, this.options);
    for (const event of ['change', 'refresh', 'ping', 'error'] as const) {
      candidate.on(event, (...args: unknown[]) => this.#forward(event, args));
    }
    candidate.on('select', (...args) => {
      this.#forward('select', args);
      this.#runTerm(candidate, args[2].token);
    });
    candidate.on('deselect', (reason) => {
      this.#term?.controller.abort(new Error(`leadership ended: ${reason}`));
      this.#term = undefined;
      this.#forward('deselect', [reason]);
    });
    // The signal aborts before the deadline, not at it (when the candidate deselects).
    warnBeforeDeadline(candidate, {
      clock: this.#clock,
      leadMs: warningLeadMs(candidate),
      onWarn: (token, msLeft) => {
        if (this.#term?.token !== token) return;
        this.#term.controller.abort(
          new Error(`leadership ending: the store has not confirmed the hold and the local deadline is ${Math.round(msLeft)} ms away`),
        );
      },
    });
    return candidate;
  }

  #runTerm(candidate: Candidate, token: bigint): void {
    const controller = new AbortController();
    const context: LeaderContext = { signal: controller.signal, token, id: candidate.localid(), value: candidate.localvalue() };
    const previous = [...this.#unsettled];
    const settled = (async () => {
      // The previous term's fn may still be winding down (its signal aborted,
      // its promise pending): two copies of the job must not overlap here either.
      if (previous.length > 0) await this.#waitFor(previous, 'the previous term\'s leader function did not stop within %s s of its signal; starting the next term\'s anyway');
      if (controller.signal.aborted) return; // this term ended while we waited
      try {
        await this.#fn(context);
      } catch (error) {
        if (controller.signal.aborted) return; // failing while being stopped is not news
        this.#failed(candidate, error);
      }
    })();
    this.#unsettled.add(settled);
    void settled.finally(() => this.#unsettled.delete(settled));
    this.#term = { controller, token, settled };
  }

  #failed(candidate: Candidate, error: unknown): void {
    const wrapped = new Error(`the leader function failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    this.#forward('error', [wrapped]);
    const policy = this.options.onError ?? 'resign';
    if (policy === 'resign') {
      void candidate.resign({ reason: 'error', holdOff: this.options.resignHoldOff ?? candidate.ttl() });
    } else if (policy === 'stop') {
      void this.stop();
    }
  }

  /** Abort the current term's fn and wait (bounded) for every term's fn to settle. */
  async #endTerm(): Promise<void> {
    this.#term?.controller.abort(new Error('leadership ended: stopped'));
    if (this.#unsettled.size === 0) return;
    await this.#waitFor([...this.#unsettled], 'the leader function did not stop within %s s of its signal; resigning anyway');
  }

  /** Wait for `settled`, at most stopTimeout seconds on the candidate's clock; past it, report `message`. */
  async #waitFor(settled: Promise<void>[], message: string): Promise<void> {
    const seconds = this.options.stopTimeout ?? 10;
    let timer: ReturnType<Clock['setTimeout']> | undefined;
    const late = new Promise<'late'>((resolve) => (timer = this.#clock.setTimeout(() => resolve('late'), seconds * 1000)));
    const outcome = await Promise.race([Promise.all(settled).then(() => 'done' as const), late]);
    this.#clock.clearTimeout(timer!);
    if (outcome === 'late') {
      // Given up on once: later terms and stops do not wait for these again.
      for (const promise of settled) this.#unsettled.delete(promise);
      this.#forward('error', [new Error(message.replace('%s', String(seconds)))]);
    }
  }

  /**
   * Forward an event to this service's listeners, each on its own (as the
   * candidate does): a listener that throws or rejects is reported on `error`
   * and the others still run; an `error` nobody listens to is dropped, never thrown.
   */
  #forward(event: keyof CandidateEvents, args: unknown[]): void {
    emitIsolated(this, event, args);
  }
}

/** A stand-in store to validate options before the real adapter is loaded; never called. */
const PROBE_STORE: LockStore = {
  compareAndSwap: () => Promise.reject(new Error('probe')),
  refresh: () => Promise.reject(new Error('probe')),
  watch: () => ({ [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('probe')) }) }),
  close: () => Promise.resolve(),
};

export type { DeselectReason };
