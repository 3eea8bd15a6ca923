/**
 * A real in-process `LockStore`: holds expire on the store's clock, watches
 * see every change, tokens strictly increase. For unit tests (with
 * `FakeClock`) and for elections inside a single process. It is not a
 * stand-in for etcd or Consul in adapter tests: nothing here crosses a network.
 *
 * Several `MemoryStore`s may share one `MemoryBackend`, each playing a
 * separate process with its own ownership of holds (contract promise 4).
 */
import { systemClock, type Clock, type TimerHandle } from './clock.js';
import { checkKnownKeys } from './adapter/checks.js';
import { VipOptionError } from './errors.js';
import type { Claim, Holder, LockStore, StoreLimits, SwapResult } from './store.js';

interface Entry {
  readonly holder: Holder;
  readonly owner: MemoryStore;
  expiresAt: number;
  timer: TimerHandle | undefined;
}

type WatchListener = (holder: Holder | null) => void;

/** The shared "server" behind one or more `MemoryStore` clients. */
export class MemoryBackend {
  readonly clock: Clock;
  readonly #entries = new Map<string, Entry>();
  readonly #watchers = new Map<string, Set<WatchListener>>();
  /** Like etcd's revision: one counter for the whole backend, so tokens only grow. */
  #revision = 0n;

  constructor(options: { clock?: Clock } = {}) {
    this.clock = options.clock ?? systemClock;
  }

  /** The key's holder now (for tests and tools). */
  get(key: string): Holder | null {
    return this.#entries.get(key)?.holder ?? null;
  }

  /** Forget every hold `owner` wrote, as if its lease expired now. */
  expireAll(owner: MemoryStore): void {
    for (const [key, entry] of this.#entries) if (entry.owner === owner) this.#delete(key);
  }

  swap(owner: MemoryStore, key: string, expected: Holder | null, next: Claim | null, ttl: number): SwapResult {
    const entry = this.#entries.get(key);
    const current = entry?.holder ?? null;
    // The guard that keeps two leaders apart: free key, or still exactly our term.
    const guard =
      expected === null
        ? entry === undefined
        : entry !== undefined && entry.owner === owner && current!.id === expected.id && current!.token === expected.token;
    if (!guard) return { ok: false, holder: current };
    if (next === null) {
      this.#delete(key);
      return { ok: true, holder: null };
    }
    const token = expected === null ? ++this.#revision : expected.token;
    const holder: Holder = { id: next.id, value: next.value, token };
    if (entry?.timer !== undefined) this.clock.clearTimeout(entry.timer);
    const written: Entry = { holder, owner, expiresAt: 0, timer: undefined };
    this.#entries.set(key, written);
    this.#extend(key, written, ttl);
    this.#notify(key, holder);
    return { ok: true, holder };
  }

  refresh(owner: MemoryStore, key: string, held: Holder, ttl: number): Holder | null {
    const entry = this.#entries.get(key);
    if (!entry || entry.owner !== owner || entry.holder.id !== held.id || entry.holder.token !== held.token) return null;
    this.#extend(key, entry, ttl);
    return entry.holder;
  }

  subscribe(key: string, listener: WatchListener): () => void {
    let set = this.#watchers.get(key);
    if (!set) this.#watchers.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#watchers.delete(key);
    };
  }

  #extend(key: string, entry: Entry, ttl: number): void {
    if (entry.timer !== undefined) this.clock.clearTimeout(entry.timer);
    entry.expiresAt = this.clock.now() + ttl * 1000;
    this.#arm(key, entry, ttl * 1000);
  }

  /**
   * Free the key at its deadline, never before: Node fires a timer up to a
   * millisecond early against performance.now() (it counts whole ms of loop
   * time), so a timer that comes early waits out the rest.
   */
  #arm(key: string, entry: Entry, ms: number): void {
    entry.timer = this.clock.setTimeout(() => {
      if (this.#entries.get(key) !== entry) return;
      const left = entry.expiresAt - this.clock.now();
      if (left > 0) this.#arm(key, entry, Math.ceil(left));
      else this.#delete(key);
    }, ms);
    entry.timer.unref?.();
  }

  #delete(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    if (entry.timer !== undefined) this.clock.clearTimeout(entry.timer);
    this.#entries.delete(key);
    this.#notify(key, null);
  }

  #notify(key: string, holder: Holder | null): void {
    for (const listener of [...(this.#watchers.get(key) ?? [])]) listener(holder);
  }
}

export interface MemoryStoreOptions {
  /** Share a backend to play several processes; default: a private one. */
  backend?: MemoryBackend;
  /** Clock of a private backend (ignored when `backend` is given). */
  clock?: Clock;
  /** Limits to declare, to exercise a candidate's checks. */
  limits?: StoreLimits;
}

/** Every key of `MemoryStoreOptions` and of `StoreLimits` (records, so the compiler notices a key missing here). */
const OPTION_KEYS: Record<keyof MemoryStoreOptions, true> = { backend: true, clock: true, limits: true };
const LIMIT_KEYS: Record<keyof StoreLimits, true> = { minTtl: true, maxTtl: true, maxValueBytes: true };

export class MemoryStore implements LockStore {
  readonly backend: MemoryBackend;
  readonly limits: StoreLimits | undefined;
  #closed = false;
  readonly #closers = new Set<() => void>();

  constructor(options: MemoryStoreOptions = {}) {
    if (options === null || typeof options !== 'object') throw new VipOptionError('MemoryStore', 'options', 'an object like { backend } or omitted', options);
    checkKnownKeys('MemoryStore', options, Object.keys(OPTION_KEYS));
    if (options.limits !== undefined) checkKnownKeys('MemoryStore', options.limits, Object.keys(LIMIT_KEYS), 'limits.');
    this.backend = options.backend ?? new MemoryBackend({ clock: options.clock });
    this.limits = options.limits;
  }

  async compareAndSwap(key: string, expected: Holder | null, next: Claim | null, ttl: number, _signal?: AbortSignal): Promise<SwapResult> {
    this.#check(key, ttl);
    return this.backend.swap(this, key, expected, next, ttl);
  }

  async refresh(key: string, held: Holder, ttl: number, _signal?: AbortSignal): Promise<Holder | null> {
    this.#check(key, ttl);
    return this.backend.refresh(this, key, held, ttl);
  }

  async *watch(key: string, signal: AbortSignal): AsyncIterable<Holder | null> {
    this.#check(key, 1);
    const queue: (Holder | null)[] = [this.backend.get(key)];
    let wake: (() => void) | undefined;
    let closed = false;
    const close = (): void => {
      closed = true;
      wake?.();
    };
    const unsubscribe = this.backend.subscribe(key, (holder) => {
      queue.push(holder);
      wake?.();
    });
    signal.addEventListener('abort', close, { once: true });
    this.#closers.add(close);
    try {
      while (!signal.aborted) {
        if (queue.length > 0) {
          yield queue.shift()!;
          continue;
        }
        if (closed) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      if (this.#closed && !signal.aborted) throw new Error('MemoryStore: the store was closed');
    } finally {
      unsubscribe();
      signal.removeEventListener('abort', close);
      this.#closers.delete(close);
    }
  }

  /** Ends this client's watches. Its holds stay until they expire, as after a crash. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const close of [...this.#closers]) close();
  }

  #check(key: string, ttl: number): void {
    if (this.#closed) throw new Error('MemoryStore: the store was closed');
    if (typeof key !== 'string' || key.length === 0) throw new VipOptionError('MemoryStore', 'key', 'a non-empty string', key);
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl <= 0) {
      throw new VipOptionError('MemoryStore', 'ttl', 'a finite number of seconds greater than 0', ttl);
    }
  }
}
