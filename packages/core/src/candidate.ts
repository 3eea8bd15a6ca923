/**
 * The election state machine. This file owns every timer and the whole safety
 * argument; stores only keep the promises written in `store.ts`.
 *
 *   stopped --start()--> following --CAS wins--> leading --refresh null / deadline--> following
 *       ^                    |                      |
 *       +------stop()--------+-------stop(): deselect, resign (CAS me -> null), stopped
 *
 * Safety rests on one number, the local deadline:
 *
 *   deadline = (monotonic time a confirmed CAS or refresh was *sent*) + ttl - safetyMargin
 *
 * The store promises the hold lives at least `ttl` from that send time, so the
 * server cannot give the key to anyone else before the deadline; and the
 * leader stops calling itself leader at the deadline whether or not the store
 * answers. `isSelected()` compares with the deadline itself, so a process that
 * was paused (GC, SIGSTOP) past it never reports a leadership it may have lost.
 */
import { EventEmitter } from 'node:events';
import type { Clock, TimerHandle } from './clock.js';
import { VipOptionError, VipStoreError, VipTimeoutError, describe } from './errors.js';
import { emitIsolated } from './emit.js';
import { backoffDelay, MAX_SECONDS, resolveOptions, type CandidateOptions, type ResolvedOptions } from './options.js';
import { sameHolder, sameTerm, type Claim, type Holder, type LockStore } from './store.js';

/**
 * Why a leader stopped leading:
 * - `stopped`: `stop()` was called;
 * - `resigned`: `resign()` was called;
 * - `error`: `resign({ reason: 'error' })`, used when the leader's own work failed;
 * - `lost`: the store said the hold is gone (refresh answered `null`) or a newer holder appeared;
 * - `expired`: the local deadline passed without a confirmed refresh (store unreachable or slow).
 */
export type DeselectReason = 'stopped' | 'resigned' | 'error' | 'lost' | 'expired';

export interface CandidateEvents {
  /**
   * On every node, when the key's holder changes. `value` and `leaderId` are
   * `null` when the key became free: that is how a user learns the key is free
   * (followers then campaign for it at once on their own).
   */
  change: [value: string | null, leaderId: string | null, holder: Holder | null];
  /** On the node that became leader. `holder.token` is the fencing token of this term. */
  select: [value: string, leaderId: string, holder: Holder];
  /** On the node that stopped leading; always after a `select`. */
  deselect: [reason: DeselectReason];
  /** On the leader, after each confirmed refresh. */
  refresh: [value: string, leaderId: string];
  /** On any node, when a store round trip confirms the current leader. */
  ping: [value: string, leaderId: string];
  /**
   * Store errors and listener errors. They never stop the candidate: it backs
   * off and keeps campaigning. With no `error` listener they are dropped, never thrown.
   */
  error: [error: Error];
}

type State = 'stopped' | 'following' | 'leading';

/** One start()..stop() cycle; work from an older run is ignored when it lands. */
interface Run {
  readonly controller: AbortController;
  readonly ready: Promise<void>;
  markReady(): void;
  /** Store calls in flight, awaited (bounded by their timeouts) by stop(). */
  readonly pending: Set<Promise<unknown>>;
}

/** The term this candidate holds while leading. */
interface Term {
  readonly holder: Holder;
  deadline: number;
  deadlineTimer: TimerHandle | undefined;
  refreshTimer: TimerHandle | undefined;
  /** Refreshes sent and not yet answered (a hung one does not hold up the next). */
  inFlight: number;
  /** The watch showed the key free while a refresh was in flight: verify once it lands. */
  verifyPending: boolean;
  refreshFailures: number;
}

type ChangeListener = (holder: Holder | null) => void;

/** What a Candidate calls on its store; checked when it is created, not on first use. */
const STORE_METHODS = ['compareAndSwap', 'refresh', 'watch', 'close'] as const;

/** The background release after a failed stop() gives up after max(this, 10 x ttl). */
const RELEASE_AFTER_STOP_MIN_MS = 60_000;

function checkStore(where: string, store: LockStore): void {
  const missing = store === null || typeof store !== 'object' ? undefined : STORE_METHODS.filter((name) => typeof store[name] !== 'function');
  if (missing === undefined || missing.length > 0) {
    const lacks = missing?.length ? `; it has no ${missing.map((name) => `${name}()`).join(', ')}` : '';
    throw new TypeError(`${where}: store must be a LockStore such as new MemoryStore() (got ${describe(store)}${lacks})`);
  }
}

export class Candidate extends EventEmitter<CandidateEvents> {
  readonly #store: LockStore;
  readonly #options: ResolvedOptions;
  readonly #clock: Clock;
  readonly #claim: Claim;

  #state: State = 'stopped';
  #run: Run | undefined;
  #stopping: Promise<void> | undefined;
  /** Counts stop() calls, so a start() that waited for a shutdown knows whether a later stop() overrode it. */
  #stopCalls = 0;
  /** Events raised by a listener wait here until the event being delivered has reached every listener. */
  readonly #eventQueue: (() => void)[] = [];
  #delivering = false;
  /** Last holder observed (watch or own CAS); `undefined` until the first read. */
  #leader: Holder | null | undefined;
  #term: Term | undefined;
  /** A follower's store call (acquire or release) is in flight. */
  #busy = false;
  /** Something was observed while busy: look again when the call is done. */
  #dirty = false;
  /** The last stale hold of ours we finished releasing; never released twice. */
  #released: Holder | null = null;
  #retryTimer: TimerHandle | undefined;
  #failures = 0;
  #holdOffUntil = 0;
  readonly #changeListeners = new Set<ChangeListener>();
  /** Called when the candidate stops, to end `changes()` iterators. */
  readonly #endListeners = new Set<() => void>();

  constructor(store: LockStore, options: CandidateOptions) {
    super();
    checkStore('Candidate', store);
    this.#store = store;
    this.#options = resolveOptions(store, options);
    this.#clock = this.#options.clock;
    this.#claim = { id: this.#options.id, value: this.#options.value };
  }

  // ---- what a user asks ---------------------------------------------------

  /** The current leader's id, or `null` when there is none (or none known yet). */
  id(): string | null {
    return this.#leader?.id ?? null;
  }

  /** The current leader's value, or `null`. */
  value(): string | null {
    return this.#leader?.value ?? null;
  }

  /** The current holder as last seen, with its token, or `null`. */
  holder(): Holder | null {
    return this.#leader ?? null;
  }

  /** This candidate's id. */
  localid(): string {
    return this.#options.id;
  }

  /** This candidate's value. */
  localvalue(): string {
    return this.#options.value;
  }

  /** `id + ':::' + value`, as the `locked` module exposed it. */
  localdata(): string {
    return `${this.#options.id}:::${this.#options.value}`;
  }

  /** The election key. */
  path(): string {
    return this.#options.path;
  }

  /** The TTL in seconds. */
  ttl(): number {
    return this.#options.ttl;
  }

  /** Seconds between the local deadline and the earliest the server may expire the hold (option or default). */
  safetyMargin(): number {
    return this.#options.safetyMarginMs / 1000;
  }

  /** Seconds between refreshes while leading (option or default). */
  refreshInterval(): number {
    return this.#options.refreshIntervalMs / 1000;
  }

  /**
   * Whether this node leads right now. Checks the local deadline itself, so
   * it is `false` as soon as the deadline has passed, even before the timer
   * that announces `deselect` has had a chance to run.
   */
  isSelected(): boolean {
    return this.#state === 'leading' && this.#term !== undefined && this.#clock.now() < this.#term.deadline;
  }

  /** The fencing token of this node's current term while it leads, else `null`. */
  token(): bigint | null {
    return this.isSelected() ? this.#term!.holder.token : null;
  }

  /**
   * Milliseconds (on this process's monotonic clock) until the local
   * deadline, or `null` when not leading. Leaders can bound their own work by it.
   */
  timeLeft(): number | null {
    if (!this.isSelected()) return null;
    return this.#term!.deadline - this.#clock.now();
  }

  /**
   * Resolves when this node is selected (at once if it already is). Rejects
   * when `signal` aborts, or when the candidate is stopped before it was
   * selected (a promise nobody could ever resolve otherwise).
   */
  whenSelected(signal?: AbortSignal): Promise<void> {
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(`Candidate.whenSelected: signal must be an AbortSignal or undefined (got ${describe(signal)})`);
    }
    if (this.isSelected()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const settle = (): void => {
        this.off('select', onSelect);
        signal?.removeEventListener('abort', onAbort);
        this.#endListeners.delete(onStop);
      };
      const onSelect = (): void => {
        settle();
        resolve();
      };
      const onAbort = (): void => {
        settle();
        reject(signal!.reason);
      };
      const onStop = (): void => {
        settle();
        reject(new Error(`Candidate "${this.#options.id}" on "${this.#options.path}" was stopped before it was selected`));
      };
      if (signal?.aborted) return reject(signal.reason);
      this.on('select', onSelect);
      signal?.addEventListener('abort', onAbort, { once: true });
      // Also before start(): the run that start() begins ends in the same shutdown.
      this.#endListeners.add(onStop);
    });
  }

  /**
   * The holder over time: the current holder first (once known), then every
   * change. Ends when the candidate stops or the loop breaks.
   */
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
      this.#changeListeners.delete(listener);
      wake?.();
    };
    if (this.#leader !== undefined && this.#state !== 'stopped') queue.push(this.#leader);
    this.#changeListeners.add(listener);
    this.#endListeners.add(finish);
    const iterator: AsyncIterableIterator<Holder | null> = {
      next: async () => {
        while (queue.length === 0 && !done) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        if (queue.length > 0) return { value: queue.shift()!, done: false };
        return { value: undefined, done: true };
      },
      return: async () => {
        this.#endListeners.delete(finish);
        finish();
        queue.length = 0;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  // ---- lifecycle ----------------------------------------------------------

  /**
   * Start campaigning. Resolves once the key's current holder has been read
   * (or the first attempt failed and was reported on `error`; the candidate
   * keeps trying). Calling it again while started returns the same promise.
   */
  async start(): Promise<void> {
    const stopCalls = this.#stopCalls;
    while (this.#stopping) {
      await this.#stopping;
      // stop() was called again after this start(): the later call wins.
      if (this.#stopCalls !== stopCalls) return;
    }
    if (this.#run) return this.#run.ready;
    let resolveReady!: () => void;
    const ready = new Promise<void>((resolve) => (resolveReady = resolve));
    // A store that never answers the first read must not leave start()
    // pending in silence: after requestTimeout it is reported on `error` and
    // start() resolves; the watch keeps trying.
    let silence: TimerHandle | undefined = this.#clock.setTimeout(() => {
      silence = undefined;
      if (this.#run !== run) return;
      this.#emitError(new VipStoreError('watch', this.#options.path, new VipTimeoutError('the first read of the key', this.#options.requestTimeoutMs)));
      resolveReady();
    }, this.#options.requestTimeoutMs);
    const markReady = (): void => {
      if (silence !== undefined) this.#clock.clearTimeout(silence);
      silence = undefined;
      resolveReady();
    };
    const run: Run = { controller: new AbortController(), ready, markReady, pending: new Set() };
    this.#run = run;
    this.#state = 'following';
    this.#failures = 0;
    // A resign() hold-off belongs to the run it was asked in: a new start() campaigns at once.
    this.#holdOffUntil = 0;
    void this.#watchLoop(run);
    return ready;
  }

  /**
   * Stop campaigning. A leader first announces `deselect('stopped')` (stop
   * your leader work in that listener), then resigns so the next leader is
   * chosen in one watch round trip instead of after a TTL. Safe to call twice.
   */
  stop(): Promise<void> {
    this.#stopCalls++;
    if (this.#stopping) return this.#stopping;
    const run = this.#run;
    if (!run) return Promise.resolve();
    const term = this.#term;
    // #stopping is set before anything else happens: deselect listeners may
    // call stop() or start() again, and must find the shutdown under way.
    let proceed!: () => void;
    const stopping: Promise<void> = new Promise<void>((resolve) => (proceed = resolve))
      .then(() => this.#shutdown(run, term))
      .finally(() => {
        if (this.#stopping === stopping) this.#stopping = undefined;
      });
    this.#stopping = stopping;
    // Aborted first, so no answer of this run that lands from now on can make us lead.
    run.controller.abort();
    this.#clearRetry();
    this.#deselect('stopped');
    proceed();
    return stopping;
  }

  /**
   * Give up leadership but keep campaigning after `holdOff` seconds (default:
   * ttl), so that another node takes the job. Does nothing when not leading.
   */
  async resign(options: { reason?: 'resigned' | 'error'; holdOff?: number } = {}): Promise<void> {
    if (options === null || typeof options !== 'object') {
      throw new TypeError(`Candidate.resign: options must be an object like { holdOff: 10 } or omitted (got ${describe(options)})`);
    }
    const holdOff = options.holdOff ?? this.#options.ttl;
    if (typeof holdOff !== 'number' || !Number.isFinite(holdOff) || holdOff < 0 || holdOff > MAX_SECONDS) {
      throw new VipOptionError('Candidate.resign', 'holdOff', `a number of seconds from 0 to ${MAX_SECONDS}`, holdOff);
    }
    const reason = options.reason ?? 'resigned';
    if (reason !== 'resigned' && reason !== 'error') throw new VipOptionError('Candidate.resign', 'reason', '"resigned" or "error"', reason);
    const run = this.#run;
    const term = this.#term;
    if (!run || !term) return;
    this.#holdOffUntil = this.#clock.now() + holdOff * 1000;
    this.#deselect(reason);
    if (!(await this.#release(run, term.holder)) && this.#run === run && !run.controller.signal.aborted) {
      // The key would stay on a lease or session that this process's other
      // elections keep alive: look again after a backoff, and #reconsider
      // releases the hold of ours it still sees (retrying until it is gone).
      this.#retryAfter(run, backoffDelay(this.#options, this.#failures++));
    }
  }

  /** After stop() has deselected: end the run, release what we hold, and settle. */
  async #shutdown(run: Run, term: Term | undefined): Promise<void> {
    // Let an acquisition in flight land (each call is bounded by its timeout,
    // and does not follow the run's abort): a key won meanwhile is released
    // by #tryAcquire, not left to expire or to live on a shared lease.
    await Promise.allSettled([...run.pending]);
    const won = this.#term as Term | undefined;
    if (won) this.#deselect('stopped');
    const ours = won?.holder ?? term?.holder ?? (this.#leader?.id === this.#options.id ? this.#leader : null);
    if (ours && !(await this.#release(run, ours))) this.#releaseAfterStop(ours, 0);
    run.markReady();
    if (this.#run === run) {
      this.#run = undefined;
      this.#state = 'stopped';
      this.#leader = undefined;
    }
    for (const end of [...this.#endListeners]) end();
    this.#endListeners.clear();
  }

  // ---- following ----------------------------------------------------------

  async #watchLoop(run: Run): Promise<void> {
    const signal = run.controller.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        for await (const holder of this.#store.watch(this.#options.path, signal)) {
          if (signal.aborted) break;
          failures = 0;
          this.#observe(run, holder);
        }
        if (signal.aborted) break;
        this.#emitError(new VipStoreError('watch', this.#options.path, new Error('the watch ended unexpectedly')));
      } catch (error) {
        if (signal.aborted) break;
        this.#emitError(new VipStoreError('watch', this.#options.path, error));
      }
      run.markReady();
      await this.#sleep(backoffDelay(this.#options, failures++), signal);
    }
  }

  /** Everything the candidate learns about the key goes through here. */
  #observe(run: Run, holder: Holder | null): void {
    if (run !== this.#run) return;
    run.markReady();
    const term = this.#term;
    if (term) {
      // A holder older than our term is a late event from before we won: ignore it.
      if (holder !== null && holder.token < term.holder.token) return;
      if (holder === null) {
        // The key looks free while we lead. The event may be late (a term that
        // began and ended between our last look and our win), so re-check
        // ownership with the store instead of trusting the wait
        // (etcd-io/etcd#11051): rewrite our own term, guarded by it. Until
        // the store answers, nobody is told the key is free.
        this.#refresh(run, term, 'verify');
        return;
      }
      // Another term: we stop leading before anyone hears of the new holder.
      if (!sameTerm(holder, term.holder)) this.#deselect('lost');
      this.#setLeader(holder);
      return;
    }
    this.#setLeader(holder);
    this.#reconsider(run);
  }

  #setLeader(holder: Holder | null): void {
    const previous = this.#leader;
    this.#leader = holder;
    if (previous === undefined || !sameHolder(previous, holder)) {
      this.#emit('change', holder?.value ?? null, holder?.id ?? null, holder);
      for (const listener of this.#changeListeners) listener(holder);
    }
    if (holder) this.#emit('ping', holder.value, holder.id);
  }

  /** What a follower does about the holder it last saw. */
  #reconsider(run: Run): void {
    if (run !== this.#run || run.controller.signal.aborted || this.#term) return;
    if (this.#busy) {
      this.#dirty = true;
      return;
    }
    if (this.#retryTimer !== undefined) return; // a retry is already scheduled
    const holder = this.#leader;
    if (holder === null) {
      const wait = this.#holdOffUntil - this.#clock.now();
      if (wait > 0) return this.#retryAfter(run, wait);
      void this.#acquire(run);
    } else if (holder !== undefined && holder.id === this.#options.id && !sameTerm(holder, this.#released)) {
      // Ours, but not a term we lead: left over from a term whose deadline
      // passed, or from a CAS whose answer we never got. Free it so the
      // election can go on; the store only releases a hold it wrote itself.
      void this.#releaseStale(run, holder);
    }
  }

  /** Run a follower's store call, then look again at anything observed meanwhile. */
  async #busyWith(run: Run, work: () => Promise<void>): Promise<void> {
    this.#busy = true;
    this.#dirty = false;
    const done = work();
    run.pending.add(done); // stop() waits for it, so a key won meanwhile is released before stop() resolves
    try {
      await done;
    } finally {
      run.pending.delete(done);
      this.#busy = false;
    }
    if (this.#dirty) {
      this.#dirty = false;
      this.#reconsider(run);
    }
  }

  #acquire(run: Run): Promise<void> {
    return this.#busyWith(run, () => this.#tryAcquire(run));
  }

  async #tryAcquire(run: Run): Promise<void> {
    const sentAt = this.#clock.now();
    // Not cut short by stop(): a CAS already on its way may still win, and
    // stop() waits for it (bounded by the timeout) so a won key is released.
    const call = this.#call(
      run,
      'compareAndSwap',
      (signal) => this.#store.compareAndSwap(this.#options.path, null, this.#claim, this.#options.ttl, signal),
      this.#options.requestTimeoutMs,
      false,
    );
    try {
      const result = await call;
      if (run !== this.#run || run.controller.signal.aborted) {
        if (result.ok && result.holder) await this.#release(run, result.holder);
        return;
      }
      if (result.ok && result.holder) {
        this.#failures = 0;
        this.#lead(run, result.holder, sentAt);
      } else if (result.holder === null) {
        // Refused although nobody holds the key (Consul lock-delay, or a term
        // that began and ended meanwhile): the watch may never move again, so
        // retry, with the backoff growing for as long as the refusals last.
        this.#retryAfter(run, backoffDelay(this.#options, this.#failures++));
      } else {
        this.#failures = 0; // somebody holds it: a plain answer, we follow
      }
    } catch (error) {
      if (run !== this.#run || run.controller.signal.aborted) return;
      this.#emitError(error);
      this.#retryAfter(run, backoffDelay(this.#options, this.#failures++));
    }
  }

  #releaseStale(run: Run, holder: Holder): Promise<void> {
    return this.#busyWith(run, async () => {
      if (await this.#release(run, holder)) {
        // Released, or no longer ours: either way that term is over for us.
        this.#released = holder;
      } else if (run === this.#run) {
        this.#retryAfter(run, backoffDelay(this.#options, this.#failures++));
      }
    });
  }

  /**
   * Release `holder` (CAS holder -> null). Resolves whether the store answered
   * (released, or refused because the hold is no longer ours); errors are
   * reported on `error`, never thrown.
   */
  async #release(run: Run, holder: Holder): Promise<boolean> {
    try {
      await this.#call(
        run,
        'release',
        (signal) => this.#store.compareAndSwap(this.#options.path, holder, null, this.#options.ttl, signal),
        this.#options.requestTimeoutMs,
        false,
      );
      return true;
    } catch (error) {
      this.#emitError(error);
      return false;
    }
  }

  /**
   * A release that failed in stop() (store unreachable) is tried again in the
   * background until the store answers: a key left behind on a lease or
   * session that other elections of this process keep alive would otherwise
   * never be freed. The timer does not keep the process alive (an exiting
   * process's holds expire on the server anyway), and a start() takes over:
   * its run releases stale holds of ours by itself.
   */
  #releaseAfterStop(holder: Holder, attempt: number, since = this.#clock.now()): void {
    // Bounded: a store that stays unreachable (or was closed) for this long is
    // not retried for ever; the key then lives until the server expires it.
    const giveUpAfterMs = Math.max(RELEASE_AFTER_STOP_MIN_MS, 10 * this.#options.ttlMs);
    if (this.#clock.now() - since >= giveUpAfterMs) {
      this.#emitError(
        new VipStoreError('release', this.#options.path, new Error(`gave up releasing the key after ${Math.round(giveUpAfterMs / 1000)} s of failures; it stays held until the store expires it`)),
      );
      return;
    }
    const timer = this.#clock.setTimeout(() => {
      if (this.#run) return;
      const detached: Run = { controller: new AbortController(), ready: Promise.resolve(), markReady() {}, pending: new Set() };
      void this.#release(detached, holder).then((answered) => {
        if (!answered) this.#releaseAfterStop(holder, attempt + 1, since);
      });
    }, backoffDelay(this.#options, attempt));
    timer.unref?.();
  }

  #retryAfter(run: Run, ms: number): void {
    this.#clearRetry();
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = undefined;
      this.#reconsider(run);
    }, ms);
  }

  #clearRetry(): void {
    if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  // ---- leading ------------------------------------------------------------

  #lead(run: Run, holder: Holder, sentAt: number): void {
    const deadline = sentAt + this.#options.ttlMs - this.#options.safetyMarginMs;
    this.#setLeader(holder);
    if (this.#clock.now() >= deadline) {
      // The answer came too late to lead on it: look again once this call is
      // done, and #reconsider gives the stale hold back.
      this.#dirty = true;
      return;
    }
    const term: Term = {
      holder,
      deadline,
      deadlineTimer: undefined,
      refreshTimer: undefined,
      inFlight: 0,
      verifyPending: false,
      refreshFailures: 0,
    };
    this.#term = term;
    this.#state = 'leading';
    this.#clearRetry();
    this.#armDeadline(run, term);
    this.#scheduleRefreshAt(run, term, this.#nextRefreshAt(sentAt));
    this.#emit('select', holder.value, holder.id, holder);
  }

  #armDeadline(run: Run, term: Term): void {
    if (term.deadlineTimer !== undefined) this.#clock.clearTimeout(term.deadlineTimer);
    term.deadlineTimer = this.#clock.setTimeout(() => {
      term.deadlineTimer = undefined;
      if (this.#term !== term) return;
      if (this.#clock.now() >= term.deadline) {
        this.#deselect('expired');
        this.#reconsider(run);
      } else {
        this.#armDeadline(run, term);
      }
    }, term.deadline - this.#clock.now());
  }

  /**
   * When to refresh next: the first grid point of multiples of
   * refreshInterval (on this process's clock) after `from`. Never later than
   * `from + refreshInterval`, and every candidate of the process with the
   * same interval refreshes at the same instants, so a store that shares one
   * lease among them (`coalesce`) confirms them all with one keepalive.
   * (The tiny slack absorbs floating-point noise in a grid point itself.)
   */
  #nextRefreshAt(from: number): number {
    const interval = this.#options.refreshIntervalMs;
    return (Math.floor(from / interval + 1e-9) + 1) * interval;
  }

  /**
   * Refresh at grid point `at`. The refresh is told which point it was for:
   * timers may fire a little early by the clock (Node rounds to whole
   * milliseconds), and a refresh sent just before its grid point must still
   * count as that point's, or the next one would be due at once.
   */
  #scheduleRefreshAt(run: Run, term: Term, at: number): void {
    this.#scheduleRefresh(run, term, at - this.#clock.now(), at);
  }

  #scheduleRefresh(run: Run, term: Term, ms: number, gridPoint?: number): void {
    if (term.refreshTimer !== undefined) this.#clock.clearTimeout(term.refreshTimer);
    term.refreshTimer = this.#clock.setTimeout(() => {
      term.refreshTimer = undefined;
      this.#refresh(run, term, term.verifyPending && term.inFlight === 0 ? 'verify' : 'refresh', gridPoint);
    }, ms);
  }

  /**
   * Confirm the hold: `refresh` extends it; `verify` (when the watch showed the
   * key free) rewrites our own term with a CAS guarded by it, which also tells
   * a key deleted behind a live lease from a late event. Both confirm the hold
   * for ttl from the send time, so both move the deadline.
   */
  #refresh(run: Run, term: Term, how: 'refresh' | 'verify' = 'refresh', gridPoint?: number): void {
    if (this.#term !== term) return;
    if (how === 'verify') {
      // Not dropped: a "key free" seen while a refresh is in flight is verified once it lands.
      if (term.inFlight > 0) {
        term.verifyPending = true;
        return;
      }
      term.verifyPending = false;
    }
    term.inFlight++;
    const sentAt = this.#clock.now();
    const gridFrom = Math.max(sentAt, gridPoint ?? sentAt);
    // The next grid point's refresh is armed now, not when this one answers:
    // a hung attempt does not hold up the next, which goes out beside it, so
    // one stuck request does not cost the term (and a slow store still has
    // until the deadline to answer each attempt).
    this.#scheduleRefreshAt(run, term, this.#nextRefreshAt(gridFrom));
    // Bounded by requestTimeout only, not by the deadline as it stands now: an
    // earlier attempt answered meanwhile may move the deadline. A hung call
    // cannot keep us leading all the same: the deadline timer ends the term,
    // and an answer handled at or after the deadline ends it too (below).
    const timeout = this.#options.requestTimeoutMs;
    const { path, ttl } = this.#options;
    // `current`: who holds the key instead, when the store said so (a refused CAS does).
    type Answer = { held: Holder | null; current?: Holder | null };
    const call = this.#call<Answer>(
      run,
      how === 'refresh' ? 'refresh' : 'compareAndSwap',
      (signal) =>
        how === 'refresh'
          ? this.#store.refresh(path, term.holder, ttl, signal).then((held) => ({ held }))
          : this.#store
              .compareAndSwap(path, term.holder, this.#claim, ttl, signal)
              .then((result) => (result.ok ? { held: result.holder } : { held: null, current: result.holder })),
      timeout,
    );
    call.then(
      ({ held, current }) => {
        term.inFlight--;
        if (this.#term !== term) return;
        if (this.#clock.now() >= term.deadline) {
          // Answered past the deadline (the process was paused, or the
          // deadline timer has not run yet): isSelected() already turned
          // false, so the term is over; a new one starts only with a new select.
          this.#deselect('expired');
          this.#reconsider(run);
          return;
        }
        if (held === null || !sameTerm(held, term.holder)) {
          this.#deselect('lost');
          if (current !== undefined) this.#setLeader(current);
          this.#reconsider(run);
          return;
        }
        term.refreshFailures = 0;
        term.deadline = Math.max(term.deadline, sentAt + this.#options.ttlMs - this.#options.safetyMarginMs);
        this.#armDeadline(run, term);
        this.#emit('refresh', held.value, held.id);
        this.#emit('ping', held.value, held.id);
        if (term.verifyPending && term.inFlight === 0 && this.#term === term) this.#refresh(run, term, 'verify');
      },
      (error: unknown) => {
        term.inFlight--;
        if (this.#term !== term) return;
        this.#emitError(error);
        // Unknown outcome: keep leading until the deadline and try again soon.
        const delay = backoffDelay(this.#options, term.refreshFailures++);
        this.#scheduleRefresh(run, term, Math.min(delay, Math.max(0, term.deadline - this.#clock.now())));
      },
    );
  }

  #deselect(reason: DeselectReason): void {
    const term = this.#term;
    if (!term) return;
    if (term.deadlineTimer !== undefined) this.#clock.clearTimeout(term.deadlineTimer);
    if (term.refreshTimer !== undefined) this.#clock.clearTimeout(term.refreshTimer);
    this.#term = undefined;
    this.#state = 'following';
    this.#emit('deselect', reason);
  }

  // ---- plumbing -------------------------------------------------------------

  /**
   * One store call, bounded by `timeoutMs` on our own clock: past it we stop
   * waiting, abort the call's signal and treat the outcome as unknown.
   */
  #call<T>(
    run: Run,
    operation: VipStoreError['operation'],
    request: (signal: AbortSignal) => Promise<T>,
    timeoutMs: number,
    followRun = true,
  ): Promise<T> {
    const controller = new AbortController();
    const onRunAbort = (): void => controller.abort(run.controller.signal.reason);
    if (followRun) run.controller.signal.addEventListener('abort', onRunAbort, { once: true });
    let timer: TimerHandle | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.#clock.setTimeout(() => {
        const error = new VipTimeoutError(`${operation} on "${this.#options.path}"`, timeoutMs);
        controller.abort(error);
        reject(error);
      }, timeoutMs);
    });
    const aborted = new Promise<never>((_, reject) => {
      controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
    });
    let attempt: Promise<T>;
    try {
      attempt = request(controller.signal);
    } catch (error) {
      attempt = Promise.reject(error);
    }
    const result = Promise.race([attempt, timeout, aborted])
      .catch((error: unknown) => {
        throw error instanceof VipTimeoutError ? error : new VipStoreError(operation, this.#options.path, error);
      })
      .finally(() => {
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        run.controller.signal.removeEventListener('abort', onRunAbort);
        run.pending.delete(result);
      });
    // The losers of the race may settle later; nobody waits for them.
    attempt.catch(() => {});
    timeout.catch(() => {});
    aborted.catch(() => {});
    run.pending.add(result);
    return result;
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const timer = this.#clock.setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        this.#clock.clearTimeout(timer);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #emitError(error: unknown): void {
    const wrapped = error instanceof Error ? error : new Error(describe(error));
    this.#emit('error', wrapped);
  }

  /**
   * Deliver an event so that no listener can break the machine: each listener
   * runs on its own, a throw (or a rejected promise from an async listener) is
   * reported on `error`, and an `error` nobody listens to is dropped.
   */
  #emit<E extends keyof CandidateEvents>(event: E, ...args: CandidateEvents[E]): void {
    // One event at a time: an event raised by a listener (a `select` listener
    // that calls stop()) is delivered once the current one has reached every
    // listener, so no listener ever hears `deselect` before its `select`.
    this.#eventQueue.push(() => emitIsolated(this, event, args));
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      for (let next = this.#eventQueue.shift(); next; next = this.#eventQueue.shift()) next();
    } finally {
      this.#delivering = false;
    }
  }
}

/** For users of the `locked` module: `locker(store)(options)` makes a candidate. */
export function locker(store: LockStore): (options: CandidateOptions) => Candidate {
  checkStore('locker', store);
  return (options) => new Candidate(store, options);
}
