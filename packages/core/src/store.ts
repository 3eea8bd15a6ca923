/**
 * The store contract: what a backend (etcd, Consul, memory, or yours) must do
 * for a {@link Candidate} to elect exactly one leader on a key.
 *
 * A `LockStore` knows nothing about elections. It offers three operations on a
 * single key and promises the few properties below; the state machine in
 * `candidate.ts` builds every safety argument on these promises and on nothing
 * else. Every adapter must pass the conformance kit (`describeLockStore` in
 * `@vip/core/testing`) against a real server; docs/writing-an-adapter.md walks
 * through writing one.
 *
 * ## Promises every adapter keeps
 *
 * 1. **Mutual exclusion.** At most one holder is written on a key at a time;
 *    `compareAndSwap` is atomic on the server (one etcd txn, one Consul txn).
 * 2. **Server-side expiry.** A written hold lives only while this store keeps
 *    refreshing it: the server forgets it by itself some time after `ttl`
 *    seconds without a refresh (etcd lease, Consul session), so a crashed
 *    process frees the key without any other node's help.
 * 3. **A confirmed hold lasts at least `ttl` from the call.** When
 *    `compareAndSwap` resolves `{ ok: true }` with a holder, or `refresh`
 *    resolves a holder, the server will keep that hold for at least `ttl`
 *    seconds measured from the moment the call was *made* (not answered). An
 *    adapter whose hold hangs on a shared lease or session therefore confirms
 *    that lease with a keepalive sent after the call began. The candidate's
 *    local deadline (`call time + ttl - safetyMargin`) relies on this.
 * 4. **Ownership.** A store instance only ever replaces, refreshes or releases
 *    a hold that it wrote itself (its own lease or session), even when another
 *    process writes a holder with the same `id`.
 * 5. **Fencing tokens.** `Holder.token` strictly increases with every new term
 *    on a key, across holders and across restarts of the client, and stays
 *    constant within a term. Followers see the same token through `watch`.
 */

/** Who holds a key, as every node sees it. */
export interface Holder {
  /** The holder's candidate id (`Candidate#localid()`). */
  readonly id: string;
  /** The holder's value, any string (`Candidate#localvalue()`). */
  readonly value: string;
  /**
   * The fencing token of this term: strictly greater than the token of every
   * earlier term on the same key. Hand it to whatever the leader protects so
   * that writes from a stale leader can be refused.
   */
  readonly token: bigint;
}

/** What a candidate asks to write: a holder before the store gives it a token. */
export interface Claim {
  readonly id: string;
  readonly value: string;
}

/** The outcome of a {@link LockStore.compareAndSwap} that reached the store. */
export type SwapResult =
  /** Swapped. `holder` is the new holder, or `null` after a release. */
  | { readonly ok: true; readonly holder: Holder | null }
  /**
   * Refused: the key was not held by `expected`. `holder` is the holder the
   * store saw when it refused (`null` if the key was free), when the store can
   * tell it in the same round trip; it is information, not a promise.
   * `{ ok: false, holder: null }` when acquiring means "free, but not yet
   * lockable" (Consul's lock delay after a session was invalidated): the
   * candidate retries with backoff, since the watch may not move again.
   */
  | { readonly ok: false; readonly holder: Holder | null };

/**
 * Told by a watch about trouble it retries on its own (see `LockStore.watch`):
 * an `Error` per failed attempt, `null` when the store answers again.
 */
export type WatchTrouble = (error: Error | null) => void;

/** Limits a store puts on what a candidate may ask of it, checked at creation. */
export interface StoreLimits {
  /** Smallest TTL in seconds the server honours as asked (Consul: 10). */
  readonly minTtl?: number;
  /** Largest TTL in seconds the server accepts (Consul: 86400). */
  readonly maxTtl?: number;
  /** Largest value in bytes (UTF-8) a holder may carry. */
  readonly maxValueBytes?: number;
}

export interface LockStore {
  /** Limits checked by `new Candidate()`, so a bad TTL fails where it was given. */
  readonly limits?: StoreLimits;

  /**
   * Optional: when this store cannot use `key` as it is (a lone surrogate has
   * no UTF-8 form; Consul's HTTP API folds `a//b` into `a/b`), what a key must
   * be, e.g. `'well-formed Unicode (no lone surrogate)'`; else `undefined`.
   * `new Candidate()` asks it about `path`, so a path that every call would
   * refuse fails where it was given. The store's calls refuse the same keys
   * with a `VipOptionError` naming `"key"`.
   */
  validateKey?(key: string): string | undefined;

  /**
   * Optional: a candidate of this `ttl` campaigns on this store until `signal`
   * aborts (from its start() to its stop()). A store whose acquisition needs
   * a hold first (a Consul session, an etcd lease) may keep one of that ttl
   * ready meanwhile, so that a follower's acquisition is one round trip
   * instead of two. It changes no promise of this contract: an acquisition
   * still confirms its hold with a request sent after the call began
   * (promise 3), and a hold that locks keys is kept alive only by their
   * refreshes, never on account of this (a process that stops refreshing
   * stops keeping its keys). Best effort: it must not throw, and it makes no
   * call fail when what it keeps ready is not ready.
   */
  prepare?(ttl: number, signal: AbortSignal): void;

  /**
   * Atomically replace the key's holder if it is still `expected`.
   *
   * - `expected === null`: succeed only if the key is free (no holder).
   * - `expected` a holder: succeed only if the key still holds that term
   *   (same `id` and `token`) **and** this store instance wrote it.
   * - `next === null`: release (delete) the key, so the next leader is
   *   chosen at once instead of after a TTL.
   * - `next` a claim: write it with a hold that expires on the server after
   *   `ttl` seconds without refresh. A new term (expected `null`) gets a new,
   *   larger token; rewriting our own term (expected our holder) keeps its
   *   token, publishes the new value and confirms the hold like `refresh`.
   *
   * Resolves `{ ok: false }` when the guard failed, and rejects when the
   * outcome is unknown (network error, timeout): the caller must then treat
   * the key as possibly written by it. `signal`, when given, asks the adapter
   * to abandon the request; callers never rely on it to stop waiting.
   */
  compareAndSwap(
    key: string,
    expected: Holder | null,
    next: Claim | null,
    ttl: number,
    signal?: AbortSignal,
  ): Promise<SwapResult>;

  /**
   * Extend a hold this store wrote. Three outcomes, and they mean different
   * things to a leader:
   *
   * - resolves `held` (the same term): still ours, and the server keeps it for
   *   at least `ttl` seconds from when this call was made;
   * - resolves `null`: definitely lost (lease or session gone, key deleted or
   *   taken over): the leader deselects now;
   * - rejects: unknown (store unreachable, timeout): the leader keeps leading
   *   only until its local deadline and retries.
   *
   * What `held` proves is the *hold* (lease, session), which is what keeps the
   * key from being given to anyone else. An adapter whose hold can outlive its
   * key (etcd and Consul: a key deleted by an operator while its lease or
   * session lives) may resolve `held` without reading the key: the candidate
   * learns of such a deletion from `watch`, and verifies every "key free"
   * event with a compareAndSwap guarded by its own term, which answers the
   * truth (covered by the test "a key free event that arrives while a refresh
   * is in flight is verified once the refresh lands" in candidate.test.ts).
   * Reading the key as well is allowed, and then `null` for a deleted key.
   */
  refresh(key: string, held: Holder, ttl: number, signal?: AbortSignal): Promise<Holder | null>;

  /**
   * The key's holder over time: the current state first, then every change,
   * level-triggered. Reconnects are the adapter's business: after one it
   * re-reads the key and yields the state if it moved, and it never yields a
   * holder older than one it already yielded. Ends (returns) when `signal`
   * aborts; throws only when the watch cannot go on at all (store closed).
   *
   * `trouble`, when given, hears what the watch is riding out meanwhile: an
   * error each time a request of the watch fails and it will try again (the
   * server refused the connection, did not answer in time, the stream broke),
   * and `null` once the server answers it again. It is how a follower knows
   * (and says, and `health()` reports) that the store is unreachable although
   * no holder moves. Adapters should call it; never throw from it.
   */
  watch(key: string, signal: AbortSignal, trouble?: WatchTrouble): AsyncIterable<Holder | null>;

  /**
   * Release what the store holds open (connections, keepalives, timers).
   * Holds it wrote are not released first: stop the candidates for that.
   * A store given an existing client does not close that client.
   */
  close(): Promise<void>;
}

/** Two holders are the same term when id and token match. */
export function sameTerm(a: Holder | null, b: Holder | null): boolean {
  if (a === null || b === null) return a === b;
  return a.id === b.id && a.token === b.token;
}

/** Same term and same value: nothing a `change` listener would want to hear. */
export function sameHolder(a: Holder | null, b: Holder | null): boolean {
  return sameTerm(a, b) && (a === null || a.value === b!.value);
}
