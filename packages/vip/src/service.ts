/**
 * The run-once wrapper: run a function only while this node leads, with an
 * AbortSignal that fires when leadership ends.
 *
 * Order on the way out matters (kubernetes#139504): the leader's work is told
 * to stop (signal aborted) and awaited, bounded, *before* the key is released,
 * so the next leader never starts while this one is still winding down.
 */
import { EventEmitter } from 'node:events';
import { CANDIDATE_OPTION_KEYS, checkKnownKeys, describeValue, emitIsolated } from '@vip/core/adapter';
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
/** The keys `ServiceOptions` adds to the candidate's (a record, so the compiler notices one missing here). */
const OWN_OPTION_KEYS: Record<Exclude<keyof ServiceOptions, keyof CandidateOptions>, true> = { onError: true, resignHoldOff: true, stopTimeout: true };
/** Every key a service accepts; any other is refused (`checkKnownKeys`). */
const OPTION_KEYS: readonly string[] = [...CANDIDATE_OPTION_KEYS, ...Object.keys(OWN_OPTION_KEYS)];

/**
 * The store of a controller made from a connection string, shared by its
 * services: opened (with `openStore`) when the first of them starts, closed
 * once the last of them has stopped, opened again by the next start. A start
 * while it is opening waits for that same open; an open that fails fails
 * every start waiting for it, and the next start tries again. A service made
 * with `new Service(string, …)` has one of its own, so it opens its store on
 * start() and closes it on stop(). Internal: not exported by the package.
 */
export class StoreShare {
  /** The connection string, validated by the caller. */
  readonly address: string;
  readonly #open: (address: string) => Promise<LockStore>;
  /** The open in progress or done, while the store is in use (or being opened for a start). */
  #opening: Promise<LockStore> | undefined;
  /** Services holding the store, and starts waiting for it. */
  #users = 0;

  constructor(address: string, open: (address: string) => Promise<LockStore> = openStore) {
    this.address = address;
    this.#open = open;
  }

  /** The store, opening it if no service holds it. Pair each success with one `release()`. */
  async acquire(): Promise<LockStore> {
    // Counted at once, so that a release while this waits cannot close the store it is about to get.
    this.#users++;
    const opening = (this.#opening ??= this.#open(this.address));
    try {
      return await opening;
    } catch (error) {
      this.#users--;
      // Forget the failed open so that the next start tries again (unless one already has).
      if (this.#opening === opening) this.#opening = undefined;
      throw error;
    }
  }

  /** One holder is done with the store; the last one closes it (and the next acquire opens another). */
  async release(): Promise<void> {
    this.#users--;
    const opening = this.#opening;
    if (this.#users > 0 || opening === undefined) return;
    this.#opening = undefined;
    await (await opening).close();
  }
}

/** A `Service` on a controller's shared store (what `vip(string)` makes); `Service`'s public constructor takes no share. */
export function serviceOnShare(share: StoreShare, options: ServiceOptions, fn: LeaderFunction): Service {
  return new Service(share as unknown as string, options, fn);
}

/** A pending `whenSelected()`: told of the next term (with its signal), or that the service stopped first. */
interface SelectWaiter {
  selected(signal: AbortSignal): void;
  stopped(): void;
}

/** One election plus the function it guards. Events are the candidate's. */
export class Service extends EventEmitter<CandidateEvents> {
  readonly options: ServiceOptions;
  /** `options` without the service's own keys: what the candidate gets. */
  readonly #candidateOptions: CandidateOptions;
  readonly #fn: LeaderFunction;
  /** Where a candidate's store comes from for a connection string (the controller's, or this service's own); else undefined. */
  readonly #share: StoreShare | undefined;
  #candidate: Candidate | undefined;
  /** Whether this service holds the share's store (acquired on start(), released on stop()). */
  #holdsShare = false;
  /** Whether start() was called since the last stop(): a stop() then ends pending whenSelected() calls. */
  #started = false;
  readonly #selectWaiters = new Set<SelectWaiter>();
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
    checkKnownKeys('vip', options, OPTION_KEYS);
    const { onError = 'resign', resignHoldOff, stopTimeout = 10 } = options;
    if (!ON_ERROR.includes(onError)) throw new VipOptionError('vip', 'onError', `one of ${ON_ERROR.join(', ')}`, onError);
    if (resignHoldOff !== undefined && !(typeof resignHoldOff === 'number' && Number.isFinite(resignHoldOff) && resignHoldOff >= 0)) {
      throw new VipOptionError('vip', 'resignHoldOff', 'a number of seconds >= 0', resignHoldOff);
    }
    if (!(typeof stopTimeout === 'number' && Number.isFinite(stopTimeout) && stopTimeout > 0)) {
      throw new VipOptionError('vip', 'stopTimeout', 'a number of seconds > 0', stopTimeout);
    }
    this.options = options;
    this.#candidateOptions = Object.fromEntries(Object.entries(options).filter(([key]) => !(key in OWN_OPTION_KEYS))) as unknown as CandidateOptions;
    this.#clock = options.clock ?? systemClock;
    this.#fn = fn;
    const share: unknown = store;
    if (typeof store === 'string' || share instanceof StoreShare) {
      // Validate the string and every option now, where they were given; the
      // adapter is loaded on start() and checks its own limits (Consul's TTL) then.
      this.#share = share instanceof StoreShare ? share : new StoreShare(store as string);
      parseConnectionString(this.#share.address);
      new Candidate(PROBE_STORE, this.#candidateOptions);
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

  /**
   * Resolves, with the term's signal (the one `fn` gets), when this node is
   * selected (at once if it leads now). Rejects when `signal` aborts, or when
   * the service is stopped before it was selected. Like
   * `Candidate.whenSelected()`, it may be called before `start()` (with a
   * connection string the service has no candidate until then) and waits for
   * the run that start() begins; called after a stop(), it waits for the next
   * start(). A stop() of a service that was not started ends no wait. The signal
   * aborts when the term ends (deselect, stop(): before the key is released)
   * and, like `fn`'s, a little before the local deadline when the store has
   * not confirmed the hold.
   */
  whenSelected(signal?: AbortSignal): Promise<AbortSignal> {
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(`Service.whenSelected: signal must be an AbortSignal or undefined (got ${describeValue(signal)})`);
    }
    const term = this.#term;
    if (term && this.isSelected()) return Promise.resolve(term.controller.signal);
    return new Promise<AbortSignal>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const settle = (): void => {
        this.#selectWaiters.delete(waiter);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        settle();
        reject(signal!.reason);
      };
      const waiter: SelectWaiter = {
        selected: (termSignal) => {
          settle();
          resolve(termSignal);
        },
        stopped: () => {
          settle();
          reject(new Error(`vip: the service on "${this.options.path}" was stopped before it was selected`));
        },
      };
      this.#selectWaiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async start(): Promise<void> {
    if (this.#stopping) await this.#stopping;
    this.#started = true;
    this.#starting ??= (async () => {
      if (!this.#candidate) {
        const share = this.#share!;
        const store = await share.acquire();
        this.#holdsShare = true;
        try {
          this.#candidate = this.#makeCandidate(store);
        } catch (error) {
          // The adapter's own limits (Consul's minimum TTL) refused the options: give the store back.
          this.#holdsShare = false;
          await share.release();
          throw error;
        }
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
      if (this.#started) {
        this.#started = false;
        for (const waiter of [...this.#selectWaiters]) waiter.stopped();
      }
      if (this.#holdsShare) {
        // The controller's other services may still use the store: the last one to stop closes it.
        this.#candidate = undefined;
        this.#holdsShare = false;
        await this.#share!.release();
      }
    })().finally(() => {
      this.#stopping = undefined;
    });
    return this.#stopping;
  }

  #makeCandidate(store: LockStore): Candidate {
    const candidate = new Candidate(store, this.#candidateOptions);
    for (const event of ['change', 'refresh', 'ping', 'error', 'suspend', 'resume'] as const) {
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
    for (const waiter of [...this.#selectWaiters]) waiter.selected(controller.signal);
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
