/**
 * The election state machine; `Candidate` (candidate.ts) is its public face.
 * This file owns every timer and the whole safety argument; stores only keep
 * the promises written in store.ts. Its state is `#state`, one of:
 *
 *             start()               acquire won
 *   stopped ----------> following -------------> leading
 *      ^                  |    ^                    |
 *      |                  |    +--------------------+  term ends: lost, expired, resign()
 *      |  shutdown done   |  stop()                 |  stop(): deselect('stopped')
 *      +----- stopping <--+-------------------------+
 *
 * - following{run}: the run's watch feeds `#observe`; a pure `decide()` says
 *   what to do about the holder seen, and one store call at a time (the
 *   run's slot) carries it out: acquire, release a stale hold of ours, or
 *   wait out a hold-off.
 * - leading{run, term}: the term owns its deadline, its refresh timers and an
 *   AbortSignal that aborts when the term ends (handed to `select` listeners).
 * - stopping{run}: stop() was called; start() waits for it to finish.
 *
 * Safety rests on one number, the term's local deadline:
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
import { decide } from './decide.js';
import { storeCalls, type StoreCallPurpose } from './diagnostics.js';
import { describe, VipDeselectedError, VipOptionError, VipStoreError, VipTimeoutError } from './errors.js';
import { emitIsolated } from './emit.js';
import type { CandidateEvents, DeselectReason } from './events.js';
import { backoffDelay, MAX_SECONDS, resolveOptions, type CandidateOptions, type ResolvedOptions } from './options.js';
import { callStore, sleep } from './store-call.js';
import { sameHolder, sameTerm, type Claim, type Holder, type LockStore } from './store.js';

/** One start()..stop() cycle, with the follower's state; work from an older run is ignored when it lands. */
export interface Run {
  readonly controller: AbortController;
  /**
   * The watch's own signal, aborted after the run's once stop() has released
   * the key: tearing the watch down (an HTTP request or a gRPC stream to
   * close) then happens after the release went out, not before it. Nothing
   * the watch yields meanwhile counts (the run is aborted).
   */
  readonly watchController: AbortController;
  readonly ready: Promise<void>;
  markReady(): void;
  /** Store calls in flight, awaited (bounded by their timeouts) by stop(). */
  readonly pending: Set<Promise<unknown>>;
  /** Last holder observed (watch or own call); `undefined` until the first read. */
  leader: Holder | null | undefined;
  /** How many observations this run has made: what a call's answer may have missed. */
  observed: number;
  /** The follower's one store call in flight (acquire or release). */
  slot: Promise<void> | undefined;
  /** Something was observed while the slot was busy: decide again when it is free. */
  dirty: boolean;
  retryTimer: TimerHandle | undefined;
  failures: number;
  /** Monotonic ms before which this run does not campaign (`resign()`). */
  holdOffUntil: number;
  /** The last stale hold of ours released; never released twice. */
  released: Holder | null;
  /** Wall-clock ms when this run first saw the current holder (informational). */
  leaderSince: number | undefined;
  /** Monotonic ms since which the watch has been failing (unset once it yields again). */
  watchDownSince: number | undefined;
}

/** The term this candidate leads. */
export interface Term {
  readonly holder: Holder;
  /** Aborted, with a VipDeselectedError, when the term ends. */
  readonly controller: AbortController;
  deadline: number;
  deadlineTimer: TimerHandle | undefined;
  refreshTimer: TimerHandle | undefined;
  /** Refreshes sent and not yet answered (a hung one does not hold up the next). */
  inFlight: number;
  /** The watch showed the key free while a refresh was in flight: verify once it lands. */
  verifyPending: boolean;
  failures: number;
  suspended: boolean;
  /** Wall-clock ms when the term began (informational: safety uses the monotonic deadline). */
  readonly startedAt: number;
}

export type State =
  | { readonly kind: 'stopped' }
  | { readonly kind: 'following'; readonly run: Run }
  | { readonly kind: 'leading'; readonly run: Run; readonly term: Term }
  | { readonly kind: 'stopping'; readonly run: Run; readonly done: Promise<void> };

export type ChangeListener = (holder: Holder | null) => void;

const STOPPED: State = { kind: 'stopped' };
/** The background release after a failed stop() gives up after max(this, 10 x ttl). */
const RELEASE_AFTER_STOP_MIN_MS = 60_000;

export abstract class Machine extends EventEmitter<CandidateEvents> {
  protected readonly options: ResolvedOptions;
  protected readonly clock: Clock;
  readonly #store: LockStore;
  readonly #claim: Claim;
  #state: State = STOPPED;
  /** Counts stop() calls, so a start() that waited for a shutdown knows whether a later stop() overrode it. */
  #stopCalls = 0;
  /** Events raised by a listener wait here until the event being delivered has reached every listener. */
  readonly #eventQueue: (() => void)[] = [];
  #delivering = false;
  protected readonly changeListeners = new Set<ChangeListener>();
  /** Called when the candidate stops, to end `changes()` iterators and `whenSelected()` waits. */
  protected readonly endListeners = new Set<() => void>();
  /** Monotonic ms since which every store call has failed (unset by any answer, a watch event included). */
  protected failingSince: number | undefined;
  /** The last store failure, for health(). */
  protected lastStoreError: Error | undefined;

  constructor(store: LockStore, options: CandidateOptions) {
    super();
    this.#store = store;
    this.options = resolveOptions(store, options);
    this.clock = this.options.clock;
    this.#claim = { id: this.options.id, value: this.options.value };
  }

  /** The state, for the queries of Candidate. */
  protected get state(): State {
    return this.#state;
  }

  // ---- lifecycle: start, stop and resign, applied one at a time -------------

  /**
   * Start campaigning. Resolves once the key's current holder has been read
   * (or the first attempt failed and was reported on `error`; the candidate
   * keeps trying). Calling it again while started returns the same promise.
   */
  async start(): Promise<void> {
    const stopCalls = this.#stopCalls;
    while (this.#state.kind === 'stopping') {
      await this.#state.done;
      if (this.#stopCalls !== stopCalls) return; // stop() was called again after this start(): the later call wins
    }
    if (this.#state.kind !== 'stopped') return this.#state.run.ready;
    let resolveReady!: () => void;
    const ready = new Promise<void>((resolve) => (resolveReady = resolve));
    // A store that never answers the first read must not leave start() pending
    // in silence: after requestTimeout it is reported and start() resolves.
    let silence: TimerHandle | undefined = this.clock.setTimeout(() => {
      silence = undefined;
      if (this.#state.kind === 'stopped' || this.#state.run !== run) return;
      this.#storeFailed(run, 'watch', 0, new VipStoreError('watch', this.options.path, new VipTimeoutError('the first read of the key', this.options.requestTimeoutMs)));
      resolveReady();
    }, this.options.requestTimeoutMs);
    const markReady = (): void => {
      if (silence !== undefined) this.clock.clearTimeout(silence);
      silence = undefined;
      resolveReady();
    };
    // Everything a run knows starts afresh: a resign() hold-off belongs to the run it was asked in.
    const run: Run = {
      controller: new AbortController(),
      watchController: new AbortController(),
      ready,
      markReady,
      pending: new Set(),
      leader: undefined,
      observed: 0,
      slot: undefined,
      dirty: false,
      retryTimer: undefined,
      failures: 0,
      holdOffUntil: 0,
      released: null,
      leaderSince: undefined,
      watchDownSince: undefined,
    };
    this.failingSince = undefined;
    this.lastStoreError = undefined;
    this.#state = { kind: 'following', run };
    void this.#watchLoop(run);
    // For as long as the run lasts, the store may keep a hold of our ttl ready, so
    // that taking a free key costs one round trip. Best effort by contract: a store
    // that throws here anyway only misses that (the run does not depend on it).
    try {
      this.#store.prepare?.(this.options.ttl, run.controller.signal);
    } catch {
      // nothing to undo
    }
    return ready;
  }

  /**
   * Stop campaigning. A leader first announces `deselect('stopped')` (stop
   * your leader work in that listener), then releases the key so the next
   * leader is chosen in one watch round trip instead of after a TTL. Safe to call twice.
   */
  stop(): Promise<void> {
    this.#stopCalls++;
    const state = this.#state;
    if (state.kind === 'stopping') return state.done;
    if (state.kind === 'stopped') return Promise.resolve();
    const { run } = state;
    const term = state.kind === 'leading' ? state.term : undefined;
    // The state says "stopping" before anything else happens: deselect
    // listeners may call stop() or start() again, and must find it so.
    let proceed!: () => void;
    const done = new Promise<void>((resolve) => (proceed = resolve)).then(() => this.#shutdown(run, term));
    this.#state = { kind: 'stopping', run, done };
    // Aborted first, so no answer of this run that lands from now on can make us lead.
    run.controller.abort();
    this.#clearRetry(run);
    if (term) this.#endTerm(term, 'stopped');
    proceed();
    return done;
  }

  /**
   * Give up leadership but keep campaigning after `holdOff` seconds (default:
   * ttl), so that another node takes the job. Does nothing when not leading.
   * Resolves once the store has answered the release (a failed one is retried).
   */
  async resign(options: { reason?: 'resigned' | 'error'; holdOff?: number } = {}): Promise<void> {
    if (options === null || typeof options !== 'object') {
      throw new VipOptionError('Candidate.resign', 'options', 'an object like { holdOff: 10 } or omitted', options);
    }
    const holdOff = options.holdOff ?? this.options.ttl;
    if (typeof holdOff !== 'number' || !Number.isFinite(holdOff) || holdOff < 0 || holdOff > MAX_SECONDS) {
      throw new VipOptionError('Candidate.resign', 'holdOff', `a number of seconds from 0 to ${MAX_SECONDS}`, holdOff);
    }
    const reason = options.reason ?? 'resigned';
    if (reason !== 'resigned' && reason !== 'error') throw new VipOptionError('Candidate.resign', 'reason', '"resigned" or "error"', reason);
    const state = this.#state;
    if (state.kind !== 'leading') return;
    const { run, term } = state;
    run.holdOffUntil = this.clock.now() + holdOff * 1000;
    // The term ends; the follower then sees a hold of ours that it does not
    // lead and gives it back, through the same slot and retries as any stale hold.
    this.#endTerm(term, reason);
    this.#reconsider(run);
    for (let i = 0; i < 2 && run.slot; i++) await run.slot;
  }

  /** After stop() has deselected: let calls in flight land, release what is ours, and settle. */
  async #shutdown(run: Run, term: Term | undefined): Promise<void> {
    // Each call is bounded by its timeout and does not follow the run's abort:
    // a key won meanwhile is released by #acquire, not left on a shared lease.
    try {
      await Promise.allSettled([...run.pending]);
      const stale = run.leader?.id === this.options.id && !sameTerm(run.leader, run.released) ? run.leader : null;
      const ours = term?.holder ?? stale;
      if (ours && !(await this.#release(run, ours))) this.#releaseAfterStop(ours, 0);
    } finally {
      run.watchController.abort();
    }
    run.markReady();
    this.#state = STOPPED;
    for (const end of [...this.endListeners]) end();
    this.endListeners.clear();
  }

  // ---- following ----------------------------------------------------------

  async #watchLoop(run: Run): Promise<void> {
    const signal = run.controller.signal;
    let failures = 0;
    // What the adapter rides out on its own still counts: the watch is down
    // (health(), `error`) until the store answers it again.
    const trouble = (error: Error | null): void => {
      const state = this.#state;
      if (signal.aborted || state.kind === 'stopped' || state.run !== run) return;
      if (error !== null) return this.#storeFailed(run, 'watch', 0, new VipStoreError('watch', this.options.path, error));
      if (run.watchDownSince === undefined) return;
      run.watchDownSince = undefined;
      this.failingSince = undefined;
    };
    while (!signal.aborted) {
      try {
        for await (const holder of this.#store.watch(this.options.path, run.watchController.signal, trouble)) {
          if (signal.aborted) break;
          failures = 0;
          this.#observe(run, holder);
        }
        if (signal.aborted) break;
        this.#storeFailed(run, 'watch', 0, new VipStoreError('watch', this.options.path, new Error('the watch ended unexpectedly')));
      } catch (error) {
        if (signal.aborted) break;
        this.#storeFailed(run, 'watch', 0, new VipStoreError('watch', this.options.path, error));
      }
      run.markReady();
      await sleep(this.clock, backoffDelay(this.options, failures++), signal);
    }
  }

  /** Everything the candidate learns about the key goes through here. */
  #observe(run: Run, holder: Holder | null): void {
    const state = this.#state;
    if (state.kind === 'stopped' || state.kind === 'stopping' || state.run !== run) return;
    run.markReady();
    run.observed++;
    run.watchDownSince = undefined;
    this.failingSince = undefined;
    if (state.kind === 'leading') {
      const { term } = state;
      // A holder older than our term is a late event from before we won: ignore it.
      if (holder !== null && holder.token < term.holder.token) return;
      if (holder === null) {
        // The key looks free while we lead. The event may be late (a term that
        // began and ended between our last look and our win), so re-check with
        // the store instead of trusting the watch (etcd-io/etcd#11051).
        // Until the store answers, nobody is told the key is free.
        return this.#confirm(run, term, 'verify');
      }
      // Another term: we stop leading before anyone hears of the new holder.
      if (!sameTerm(holder, term.holder)) this.#endTerm(term, 'lost');
    }
    this.#setLeader(run, holder);
    this.#reconsider(run);
  }

  #setLeader(run: Run, holder: Holder | null, at = Date.now()): void {
    const previous = run.leader;
    run.leader = holder;
    if (previous === undefined || !sameTerm(previous, holder)) run.leaderSince = at;
    if (previous === undefined || !sameHolder(previous, holder)) {
      this.#emit('change', holder?.value ?? null, holder?.id ?? null, holder);
      for (const listener of this.changeListeners) listener(holder);
    }
    if (holder) this.#emit('ping', holder.value, holder.id);
  }

  /** A follower carries out what `decide()` says, one store call at a time. */
  #reconsider(run: Run): void {
    const state = this.#state;
    if (state.kind !== 'following' || state.run !== run) return;
    if (run.slot) {
      run.dirty = true;
      return;
    }
    if (run.retryTimer !== undefined) return; // a retry is already scheduled
    const now = this.clock.now();
    const step = decide({ holder: run.leader, self: this.options.id, released: run.released, holdOffUntil: run.holdOffUntil, now });
    if (step.do === 'acquire') this.#occupy(run, () => this.#acquire(run));
    else if (step.do === 'release') this.#occupy(run, () => this.#releaseStale(run, step.holder));
    else if (step.do === 'wait') this.#retryAfter(run, step.until - now);
  }

  /** Run the follower's one store call, then decide again about anything observed meanwhile. */
  #occupy(run: Run, work: () => Promise<void>): void {
    run.dirty = false;
    const slot: Promise<void> = (async () => {
      try {
        await work();
      } finally {
        run.pending.delete(run.slot!);
        run.slot = undefined;
      }
      if (run.dirty) {
        run.dirty = false;
        this.#reconsider(run);
      }
    })();
    run.slot = slot;
    run.pending.add(slot); // stop() waits for it, so a key won meanwhile is released before stop() resolves
  }

  async #acquire(run: Run): Promise<void> {
    const sentAt = this.clock.now();
    const observed = run.observed;
    // Not cut short by stop(): a CAS already on its way may still win, and
    // stop() waits for it (bounded by the timeout) so a won key is released.
    const call = this.#call(run, 'acquire', (signal) => this.#store.compareAndSwap(this.options.path, null, this.#claim, this.options.ttl, signal), false);
    try {
      const result = await call;
      if (run.controller.signal.aborted) {
        if (result.ok && result.holder) await this.#release(run, result.holder);
        return;
      }
      if (result.ok && result.holder) {
        run.failures = 0;
        this.#lead(run, result.holder, sentAt, run.observed !== observed);
      } else if (result.holder === null) {
        // Refused although nobody holds the key (Consul's lock delay, or a term
        // that began and ended meanwhile): the watch may never move again, so
        // retry, with the backoff growing for as long as the refusals last.
        this.#retryAfter(run, backoffDelay(this.options, run.failures++));
      } else {
        run.failures = 0; // somebody holds it: a plain answer, we follow
      }
    } catch (error) {
      if (run.controller.signal.aborted) return;
      this.#emitError(error);
      this.#retryAfter(run, backoffDelay(this.options, run.failures++));
    }
  }

  async #releaseStale(run: Run, holder: Holder): Promise<void> {
    // Released, or no longer ours: either way that term is over for us.
    if (await this.#release(run, holder)) run.released = holder;
    else this.#retryAfter(run, backoffDelay(this.options, run.failures++));
  }

  /**
   * Release `holder` (CAS holder -> null). Resolves whether the store answered
   * (released, or refused because the hold is no longer ours); errors are
   * reported on `error`, never thrown.
   */
  async #release(run: Run, holder: Holder): Promise<boolean> {
    try {
      await this.#call(run, 'release', (signal) => this.#store.compareAndSwap(this.options.path, holder, null, this.options.ttl, signal), false);
      return true;
    } catch (error) {
      this.#emitError(error);
      return false;
    }
  }

  /**
   * A release that failed in stop() (store unreachable) is tried again in the
   * background: a key left on a lease or session that other elections of this
   * process keep alive would otherwise never be freed. Bounded in time; the
   * timer does not keep the process alive, and a start() takes over (its run
   * releases stale holds of ours by itself).
   */
  #releaseAfterStop(holder: Holder, attempt: number, since = this.clock.now()): void {
    const giveUpAfterMs = Math.max(RELEASE_AFTER_STOP_MIN_MS, 10 * this.options.ttlMs);
    if (this.clock.now() - since >= giveUpAfterMs) {
      const why = `gave up releasing the key after ${Math.round(giveUpAfterMs / 1000)} s of failures; it stays held until the store expires it`;
      return this.#emitError(new VipStoreError('release', this.options.path, new Error(why)));
    }
    const timer = this.clock.setTimeout(() => {
      if (this.#state.kind !== 'stopped') return;
      const detached = { controller: new AbortController(), pending: new Set<Promise<unknown>>() } as Run;
      void this.#release(detached, holder).then((answered) => {
        if (!answered) this.#releaseAfterStop(holder, attempt + 1, since);
      });
    }, backoffDelay(this.options, attempt));
    timer.unref?.();
  }

  #retryAfter(run: Run, ms: number): void {
    this.#clearRetry(run);
    run.retryTimer = this.clock.setTimeout(() => {
      run.retryTimer = undefined;
      this.#reconsider(run);
    }, ms);
  }

  #clearRetry(run: Run): void {
    if (run.retryTimer !== undefined) this.clock.clearTimeout(run.retryTimer);
    run.retryTimer = undefined;
  }

  // ---- leading ------------------------------------------------------------

  /** The term while this node leads and its deadline has not passed, else `undefined`. */
  protected leadingTerm(): Term | undefined {
    const state = this.#state;
    return state.kind === 'leading' && this.clock.now() < state.term.deadline ? state.term : undefined;
  }

  /** `missed`: the watch moved while the winning CAS was on its way; what it showed may be newer than the answer. */
  #lead(run: Run, holder: Holder, sentAt: number, missed: boolean): void {
    const deadline = sentAt + this.options.ttlMs - this.options.safetyMarginMs;
    // A newer term already seen (our key was deleted and won by another meanwhile): the answer is stale.
    const newer = run.leader && run.leader.token > holder.token;
    const seenFree = missed && run.leader === null;
    // One wall-clock reading: our term's start and leaderSince() are the same moment.
    const startedAt = Date.now();
    if (!newer) this.#setLeader(run, holder, startedAt);
    // Answered too late to lead on: decide again once this call is done, which gives the stale hold back.
    if (newer || this.clock.now() >= deadline) {
      run.dirty = true;
      return;
    }
    const term: Term = {
      holder,
      controller: new AbortController(),
      deadline,
      deadlineTimer: undefined,
      refreshTimer: undefined,
      inFlight: 0,
      verifyPending: false,
      failures: 0,
      suspended: false,
      startedAt,
    };
    this.#state = { kind: 'leading', run, term };
    this.#clearRetry(run);
    this.#armDeadline(run, term);
    this.#scheduleRefreshAt(run, term, this.#nextRefreshAt(sentAt));
    this.#emit('select', holder.value, holder.id, holder, term.controller.signal);
    // Seen free after our write was sent: maybe deleted behind our live hold; ask the store.
    if (seenFree) this.#confirm(run, term, 'verify');
  }

  /** End `term` (once): timers cleared, its signal aborted, `deselect` announced; a leader becomes a follower. */
  #endTerm(term: Term, reason: DeselectReason): void {
    if (term.controller.signal.aborted) return;
    this.clock.clearTimeout(term.deadlineTimer!);
    if (term.refreshTimer !== undefined) this.clock.clearTimeout(term.refreshTimer);
    const state = this.#state;
    if (state.kind === 'leading' && state.term === term) this.#state = { kind: 'following', run: state.run };
    term.controller.abort(new VipDeselectedError(reason));
    this.#emit('deselect', reason);
  }

  #armDeadline(run: Run, term: Term): void {
    if (term.deadlineTimer !== undefined) this.clock.clearTimeout(term.deadlineTimer);
    term.deadlineTimer = this.clock.setTimeout(() => {
      if (this.clock.now() < term.deadline) return this.#armDeadline(run, term);
      this.#endTerm(term, 'expired');
      this.#reconsider(run);
    }, term.deadline - this.clock.now());
  }

  /**
   * The first multiple of refreshInterval after `from`: every candidate of the process with the same
   * interval refreshes at the same instants, so one shared keepalive (`coalesce`) confirms them all.
   */
  #nextRefreshAt(from: number): number {
    const interval = this.options.refreshIntervalMs;
    return (Math.floor(from / interval + 1e-9) + 1) * interval;
  }

  /** Refresh at grid point `at`, told which point it is for: a timer may fire a little early (Node rounds to ms). */
  #scheduleRefreshAt(run: Run, term: Term, at: number): void {
    this.#scheduleRefresh(run, term, at - this.clock.now(), at);
  }

  #scheduleRefresh(run: Run, term: Term, ms: number, gridPoint?: number): void {
    if (term.refreshTimer !== undefined) this.clock.clearTimeout(term.refreshTimer);
    term.refreshTimer = this.clock.setTimeout(() => {
      term.refreshTimer = undefined;
      this.#confirm(run, term, term.verifyPending ? 'verify' : 'refresh', gridPoint);
    }, ms);
  }

  /**
   * Confirm the hold: `refresh` extends it; `verify` (when the watch showed the
   * key free) rewrites our own term with a CAS guarded by it, which also tells
   * a key deleted behind a live lease or session from a late event (a store's
   * refresh confirms the lease or session, see store.ts). Both confirm the
   * hold for ttl from the send time, so both move the deadline.
   */
  #confirm(run: Run, term: Term, how: 'refresh' | 'verify', gridPoint?: number): void {
    if (term.controller.signal.aborted) return;
    // A "key free" seen while a refresh is in flight is verified when it lands or at the next grid point, whichever is first.
    if (how === 'verify' && term.inFlight > 0 && gridPoint === undefined) {
      term.verifyPending = true;
      return;
    }
    if (how === 'verify') term.verifyPending = false;
    if (term.inFlight > 0) this.#suspend(term, new VipTimeoutError(`refresh on "${this.options.path}"`, this.options.refreshIntervalMs));
    term.inFlight++;
    const sentAt = this.clock.now();
    // The next grid point's refresh is armed now, not when this one answers:
    // a hung attempt does not hold up the next, which goes out beside it.
    this.#scheduleRefreshAt(run, term, this.#nextRefreshAt(Math.max(sentAt, gridPoint ?? sentAt)));
    const { path, ttl } = this.options;
    // `current`: who holds the key instead, when the store said so (a refused CAS does).
    type Answer = { held: Holder | null; current?: Holder | null };
    // Bounded by requestTimeout, not by the deadline as it stands now (an earlier attempt
    // may move it): the deadline timer ends the term whatever is in flight.
    const call = this.#call<Answer>(run, how, (signal) =>
      how === 'refresh'
        ? this.#store.refresh(path, term.holder, ttl, signal).then((held) => ({ held }))
        : this.#store.compareAndSwap(path, term.holder, this.#claim, ttl, signal).then((result) => (result.ok ? { held: result.holder } : { held: null, current: result.holder })),
    );
    call.then(
      ({ held, current }) => {
        term.inFlight--;
        if (term.controller.signal.aborted) return;
        const lost = held === null || !sameTerm(held, term.holder);
        if (lost || this.clock.now() >= term.deadline) {
          // Past the deadline isSelected() already turned false: the term is
          // over, even if the answer confirms it; a new one needs a new select.
          this.#endTerm(term, lost ? 'lost' : 'expired');
          if (lost && current !== undefined) this.#setLeader(run, current);
          return this.#reconsider(run);
        }
        term.failures = 0;
        term.deadline = Math.max(term.deadline, sentAt + this.options.ttlMs - this.options.safetyMarginMs);
        this.#armDeadline(run, term);
        this.#emit('refresh', held.value, held.id);
        this.#emit('ping', held.value, held.id);
        if (term.suspended && !term.controller.signal.aborted) {
          term.suspended = false;
          this.#emit('resume');
        }
        if (term.verifyPending && term.inFlight === 0) this.#confirm(run, term, 'verify');
      },
      (error: unknown) => {
        term.inFlight--;
        if (term.controller.signal.aborted) return;
        this.#emitError(error);
        // Older than a confirmed attempt (the deadline already counts from a later send): it says nothing new.
        if (term.deadline > sentAt + this.options.ttlMs - this.options.safetyMarginMs) return;
        this.#suspend(term, error instanceof Error ? error : new Error(describe(error)));
        // Unknown outcome: keep leading until the deadline and try again soon.
        const delay = backoffDelay(this.options, term.failures++);
        this.#scheduleRefresh(run, term, Math.min(delay, Math.max(0, term.deadline - this.clock.now())));
      },
    );
  }

  #suspend(term: Term, cause: Error): void {
    if (term.suspended || term.controller.signal.aborted) return;
    term.suspended = true;
    this.#emit('suspend', cause);
  }

  // ---- plumbing -------------------------------------------------------------

  /**
   * One store call, bounded by requestTimeout (see store-call.ts); `followRun`: also aborted when the run is.
   * Its outcome feeds health() and the diagnostics channel (a call given up because the run stopped counts as neither).
   */
  #call<T>(run: Run, purpose: Exclude<StoreCallPurpose, 'watch'>, request: (signal: AbortSignal) => Promise<T>, followRun = true): Promise<T> {
    const { clock, path, requestTimeoutMs } = this.options;
    const operation = purpose === 'acquire' || purpose === 'verify' ? 'compareAndSwap' : purpose;
    const sentAt = clock.now();
    const call = callStore({ clock, path, timeoutMs: requestTimeoutMs, operation, request, pending: run.pending, follow: followRun ? run.controller.signal : undefined });
    call.then(
      () => {
        this.failingSince = undefined;
        this.#publish(purpose, clock.now() - sentAt, undefined);
      },
      (error: unknown) => {
        if (followRun && run.controller.signal.aborted) return;
        this.#noteFailure(purpose, clock.now() - sentAt, error);
      },
    );
    return call;
  }

  /** A failed watch: reported on `error`, and the watch counts as down until it yields again. */
  #storeFailed(run: Run, purpose: 'watch', ms: number, error: Error): void {
    run.watchDownSince ??= this.clock.now();
    this.#noteFailure(purpose, ms, error);
    this.#emitError(error);
  }

  #noteFailure(purpose: StoreCallPurpose, ms: number, error: unknown): void {
    const failure = error instanceof Error ? error : new Error(describe(error));
    this.failingSince ??= this.clock.now();
    this.lastStoreError = failure;
    this.#publish(purpose, ms, failure);
  }

  #publish(purpose: StoreCallPurpose, durationMs: number, error: Error | undefined): void {
    if (storeCalls.hasSubscribers) storeCalls.publish({ candidate: this, path: this.options.path, purpose, durationMs, error });
  }

  #emitError(error: unknown): void {
    this.#emit('error', error instanceof Error ? error : new Error(describe(error)));
  }

  /**
   * Deliver an event so that no listener can break the machine (see emitIsolated), one event at a
   * time: an event raised by a listener (a `select` listener that calls stop()) is delivered once the
   * current one has reached every listener, so no listener hears `deselect` before its `select`.
   */
  #emit<E extends keyof CandidateEvents>(event: E, ...args: CandidateEvents[E]): void {
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
