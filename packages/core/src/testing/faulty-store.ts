import { systemClock, type Clock } from '../clock.js';
import type { Claim, Holder, LockStore, StoreLimits, SwapResult, WatchTrouble } from '../store.js';

export type StoreOperation = 'compareAndSwap' | 'refresh' | 'watch';

/**
 * Wraps any store and injects faults, the way a bad network would:
 * - `failNext(n)` / `failAll()`: calls reject (the "unknown outcome" case);
 * - `latency(ms)`: every call waits before it reaches the store;
 * - `loseAnswers()`: calls take effect but their answers never come back;
 * - `partition()`: calls hang and watches stop delivering until `heal()`;
 *   a hung call then reaches the store late, unless its signal was aborted,
 *   like a request stuck in a stalled TCP connection.
 * - `disconnect()`: a partition the adapter notices, as it does when the
 *   server refuses connections: watches also report the error to their
 *   `trouble` callback, and `null` on `heal()`.
 */
export class FaultyStore implements LockStore {
  readonly inner: LockStore;
  readonly #clock: Clock;
  #failures: { remaining: number; error: () => Error; operations: Set<StoreOperation> } | undefined;
  #latencyMs = 0;
  #latencyOperations = new Set<StoreOperation>();
  #lostAnswers = new Set<StoreOperation>();
  #gate: Promise<void> | undefined;
  #openGate: (() => void) | undefined;
  /** The `trouble` callbacks of open watches, and the error they were last told (if any). */
  readonly #troubled = new Map<WatchTrouble, Error | undefined>();
  #disconnected: Error | undefined;
  /** Calls seen per operation, for assertions. */
  readonly calls: Record<StoreOperation, number> = { compareAndSwap: 0, refresh: 0, watch: 0 };

  constructor(inner: LockStore, options: { clock?: Clock } = {}) {
    this.inner = inner;
    this.#clock = options.clock ?? systemClock;
  }

  get limits(): StoreLimits | undefined {
    return this.inner.limits;
  }

  /** The wrapped store's key rule, so a wrapped adapter still refuses keys it cannot name. */
  validateKey(key: string): string | undefined {
    return this.inner.validateKey?.(key);
  }

  /** Every `prepare(ttl, signal)` the wrapped store was told of, in order (passed on to it). */
  readonly prepared: { ttl: number; signal: AbortSignal }[] = [];

  prepare(ttl: number, signal: AbortSignal): void {
    this.prepared.push({ ttl, signal });
    this.inner.prepare?.(ttl, signal);
  }

  /** Make the next `count` calls (of the given operations) reject. */
  failNext(count: number, operations: StoreOperation[] = ['compareAndSwap', 'refresh', 'watch'], message = 'injected fault'): this {
    this.#failures = { remaining: count, error: () => new Error(message), operations: new Set(operations) };
    return this;
  }

  /** Make every call reject until `heal()`. */
  failAll(operations?: StoreOperation[], message = 'injected fault: store unreachable'): this {
    return this.failNext(Number.POSITIVE_INFINITY, operations, message);
  }

  /** Delay every call (of the given operations) by `ms` on the store's clock. */
  latency(ms: number, operations: StoreOperation[] = ['compareAndSwap', 'refresh', 'watch']): this {
    this.#latencyMs = ms;
    this.#latencyOperations = new Set(operations);
    return this;
  }

  /**
   * Calls reach the store and take effect, but their answers are lost: the
   * caller waits until its signal aborts. The "unknown outcome" in its purest form.
   */
  loseAnswers(operations: StoreOperation[] = ['compareAndSwap', 'refresh']): this {
    this.#lostAnswers = new Set(operations);
    return this;
  }

  partition(): this {
    if (!this.#gate) this.#gate = new Promise<void>((resolve) => (this.#openGate = resolve));
    return this;
  }

  /** A partition that open (and new) watches report to their `trouble` callback until `heal()`. */
  disconnect(message = 'injected fault: connection refused'): this {
    this.partition();
    this.#disconnected = new Error(message);
    for (const trouble of this.#troubled.keys()) this.#tell(trouble, this.#disconnected);
    return this;
  }

  #tell(trouble: WatchTrouble, error: Error | null): void {
    this.#troubled.set(trouble, error ?? undefined);
    trouble(error);
  }

  isPartitioned(): boolean {
    return this.#gate !== undefined;
  }

  /** End every fault: failures, latency and partition. */
  heal(): this {
    this.#failures = undefined;
    this.#latencyMs = 0;
    this.#lostAnswers.clear();
    this.#openGate?.();
    this.#gate = undefined;
    this.#openGate = undefined;
    this.#disconnected = undefined;
    for (const [trouble, told] of this.#troubled) if (told) this.#tell(trouble, null);
    return this;
  }

  async compareAndSwap(key: string, expected: Holder | null, next: Claim | null, ttl: number, signal?: AbortSignal): Promise<SwapResult> {
    await this.#before('compareAndSwap', signal);
    return this.#answer('compareAndSwap', this.inner.compareAndSwap(key, expected, next, ttl, signal), signal);
  }

  async refresh(key: string, held: Holder, ttl: number, signal?: AbortSignal): Promise<Holder | null> {
    await this.#before('refresh', signal);
    return this.#answer('refresh', this.inner.refresh(key, held, ttl, signal), signal);
  }

  async *watch(key: string, signal: AbortSignal, trouble?: WatchTrouble): AsyncIterable<Holder | null> {
    if (trouble) {
      this.#troubled.set(trouble, undefined);
      if (this.#disconnected) this.#tell(trouble, this.#disconnected);
    }
    try {
      await this.#before('watch', signal);
      for await (const holder of this.inner.watch(key, signal)) {
        // A partition holds events back; they arrive (latest state included) on heal.
        while (this.#gate && !signal.aborted) await this.#wait(this.#gate, signal);
        if (signal.aborted) return;
        const failure = this.#takeFailure('watch');
        if (failure) throw failure;
        yield holder;
      }
    } finally {
      if (trouble) this.#troubled.delete(trouble);
    }
  }

  close(): Promise<void> {
    this.heal();
    return this.inner.close();
  }

  async #before(operation: StoreOperation, signal: AbortSignal | undefined): Promise<void> {
    this.calls[operation]++;
    if (this.#latencyMs > 0 && this.#latencyOperations.has(operation)) {
      await this.#wait(new Promise<void>((resolve) => this.#clock.setTimeout(resolve, this.#latencyMs)), signal);
    }
    while (this.#gate) await this.#wait(this.#gate, signal);
    const failure = this.#takeFailure(operation);
    if (failure) throw failure;
  }

  async #answer<T>(operation: StoreOperation, call: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    const result = await call;
    if (this.#lostAnswers.has(operation)) {
      await this.#wait(new Promise<void>(() => {}), signal);
    }
    return result;
  }

  #takeFailure(operation: StoreOperation): Error | undefined {
    const failures = this.#failures;
    if (!failures || !failures.operations.has(operation) || failures.remaining <= 0) return undefined;
    failures.remaining--;
    return failures.error();
  }

  #wait(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
    if (!signal) return promise;
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      promise.then(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }
}
