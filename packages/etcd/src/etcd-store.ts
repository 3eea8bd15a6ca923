/**
 * `LockStore` over etcd v3: a hold is a key on a lease, a swap is one guarded
 * txn, a watch is a read plus a watcher. How each contract promise is kept:
 *
 * 1. Mutual exclusion: acquiring is one txn guarded by `createRevision(key) == 0`
 *    (the key does not exist); only one contender's txn can see that.
 * 2. Server-side expiry: the key is written on a lease of the hold's TTL. A
 *    process that stops refreshing stops keeping the lease alive, and etcd
 *    deletes the key when the lease expires (its lessor checks every 500 ms).
 * 3. A confirmed hold lasts at least `ttl` from the call: every confirmation
 *    (refresh, acquire, rewrite) waits for a keepalive or grant *sent after the
 *    call began* and answered with TTL > 0 (leases.ts). The lease's TTL is
 *    `ceil(ttl)`, never less.
 * 4. Ownership: replacing or releasing a term is guarded by the key's lease
 *    being this store's lease, so another process cannot touch it, even with
 *    the same id.
 * 5. Fencing tokens: the token is the key's create revision. Every term
 *    creates the key anew (release and expiry delete it), etcd's revision only
 *    grows, and a rewrite within a term keeps the create revision.
 *
 * TTL facts (etcd's sources and issue tracker):
 * - Leases are whole seconds, so a fractional `ttl` is rounded UP: a lease
 *   shorter than asked would break promise 3.
 * - etcd raises a lease shorter than its minimum, ceil(1.5 × election
 *   timeout) = 2 s with default settings, without saying so (etcd-io/etcd#14857).
 *   We do not declare `limits.minTtl`, and so do not refuse such a TTL: the
 *   minimum depends on the server's --election-timeout, which a client cannot
 *   know, and a longer server-side lease is on the safe side of every promise
 *   (the candidate's deadline comes from its own clock and `ttl`). The one
 *   consequence is slower crash failover: max(ttl, minimum) + up to 0.5 s.
 * - On an etcd leader change every lease is reset to its full TTL plus the
 *   election timeout (etcd-io/etcd#9395): a crashed holder's key can outlive
 *   its TTL. Again only failover is slower; safety does not depend on it.
 */
import { setMaxListeners } from 'node:events';
import {
  checkClaim,
  checkHolder,
  checkKnownKeys,
  checkNonEmptyString,
  checkObject,
  checkSeconds,
  checkSignal,
  redactConnectionString,
  VipOptionError,
  VipWrongServerError,
  type Claim,
  type Holder,
  type LockStore,
  type StoreLimits,
  type SwapResult,
} from '@vip/core/adapter';
import { circuitBreaker, ConsecutiveBreaker, handleWhen, retry, type IBackoff } from 'cockatiel';
import {
  Etcd3,
  EtcdLeaseInvalidError,
  isRecoverableError,
  Namespace,
  type ICompare,
  type IKeyValue,
  type IOptions,
  type ITxnResponse,
  type Watcher,
} from 'etcd3';
import { decodeHolder, encodeHolder, idGuard } from './codec.js';
import { parseEtcdConnectionString, parseEtcdHosts } from './connection.js';
import { LeasePool, type SharedLease } from './leases.js';
import { isConnectionFailure, probeTls, type TlsTarget } from './tls-probe.js';
import { watchHolder, type WatchContext } from './watch.js';

export interface EtcdStoreOptions {
  /**
   * Seconds any single etcd request of this store may take before it is
   * abandoned, its outcome unknown (default 5). Callers usually give up
   * sooner through the `signal` of the call; this bounds what is left behind.
   */
  requestTimeout?: number;
  /**
   * Seconds before a broken watch stream is reconnected: from
   * `watchRetryInitial` (default 0.1), doubling up to `watchRetryMax`
   * (default 1), with jitter. etcd3's own default grows to 30 s, which would
   * stall failover after an etcd restart. Applies to a client this store
   * creates; for your own `Etcd3`, set `faultHandling.watchBackoff` yourself.
   */
  watchRetryInitial?: number;
  watchRetryMax?: number;
}

/** What `new EtcdStore()` connects with. */
export type EtcdConnectionInput = string | readonly string[] | IOptions | Etcd3;

/** A hold this store wrote: the key is on `lease`, in the term `token`. */
interface Hold {
  readonly id: string;
  readonly token: bigint;
  readonly lease: SharedLease;
}

/** etcd's largest lease TTL (server/lease/lessor.go, MaxLeaseTTL). */
const MAX_LEASE_TTL = 9_000_000_000;
/**
 * etcd refuses requests over --max-request-bytes (1.5 MiB by default). A
 * holder is stored as JSON, which can take up to 6 bytes per byte of a value
 * (control characters become \u00XX); 128 KiB of id and value stays under
 * 0.8 MiB encoded, leaving room for the key and the txn around it.
 */
const MAX_VALUE_BYTES = 128 * 1024;
/** Encoded holders over this are refused at the call rather than by etcd. */
const MAX_ENCODED_BYTES = 1024 * 1024;

export class EtcdStore implements LockStore {
  readonly limits: StoreLimits = { maxTtl: MAX_LEASE_TTL, maxValueBytes: MAX_VALUE_BYTES };
  /** The etcd3 client this store uses (yours, if you passed one). */
  readonly client: Etcd3;
  readonly #ownsClient: boolean;
  readonly #requestTimeoutMs: number;
  readonly #leases: LeasePool;
  readonly #holds = new Map<string, Hold>();
  /** Acquires in flight per key: an answer lost in one of them is only adopted when it is alone. */
  readonly #acquiring = new Map<string, number>();
  #inFlight = 0;
  /** Whether etcd ever answered this store (a call or a watch): see #explain. */
  #answered = false;
  readonly #closed = new AbortController();
  readonly #watchers = new Set<Watcher>();
  #closing: Promise<void> | undefined;
  /** The https members and credentials of a client this store built: what a failed connection is probed with. */
  readonly #tlsTargets: TlsTarget[] = [];
  /** The last probe (shared by the failures of the next few seconds, so a retrying candidate does not probe each time). */
  #probe: { at: number; result: Promise<string> } | undefined;

  /**
   * @param connection a connection string (`etcd://h1:2379,h2:2379`,
   *   `etcds://…`, `h1:2379,h2:2379`), an array of members, an etcd3 options
   *   object (`hosts`, `credentials`, `auth`, …) or an existing `Etcd3`
   *   client, which `close()` then leaves open.
   */
  constructor(connection: EtcdConnectionInput, options: EtcdStoreOptions = {}) {
    const settings = checkOptions(options);
    this.#requestTimeoutMs = settings.requestTimeoutMs;
    if (isEtcd3(connection)) {
      this.client = connection;
      this.#ownsClient = false;
    } else {
      const built = clientOptions(connection, settings);
      this.client = new Etcd3(built);
      this.#ownsClient = true;
      this.#tlsTargets = tlsTargets(built);
    }
    this.#leases = new LeasePool(this.client, this.#requestTimeoutMs);
    // Every watch listens for the store closing (and stops listening when it ends).
    setMaxListeners(0, this.#closed.signal);
  }

  /** What a key must be when etcd cannot store `key` under exactly its name; `new Candidate()` asks it about `path`. */
  validateKey(key: string): string | undefined {
    return LONE_SURROGATE.test(key) ? WELL_FORMED_KEY : undefined;
  }

  /**
   * See `LockStore.prepare`: while candidates of `ttl` campaign, the store
   * keeps a lease of that ttl granted and kept alive every ttl/2 (one for all
   * of them), so that a follower that finds its key free, even after
   * following for longer than the ttl, does not grant a lease first. A lease
   * that carries keys is kept alive only by their refreshes, as always.
   */
  prepare(ttl: number, signal: AbortSignal): void {
    if (this.#closed.signal.aborted || !(ttl > 0) || !(ttl <= MAX_LEASE_TTL)) return;
    this.#leases.keepReady(leaseSeconds(ttl), signal, (lease) => {
      for (const hold of this.#holds.values()) if (hold.lease === lease) return true;
      return false;
    });
  }

  async compareAndSwap(key: string, expected: Holder | null, next: Claim | null, ttl: number, signal?: AbortSignal): Promise<SwapResult> {
    const where = 'EtcdStore.compareAndSwap';
    checkKey(where, key);
    checkHolder(where, 'expected', expected, true);
    checkClaim(where, 'next', next);
    checkTtl(where, ttl);
    checkSignal(where, 'signal', signal, false);
    return this.#run(signal, () => {
      const name = Buffer.from(key);
      const seconds = leaseSeconds(ttl);
      if (expected === null) return next === null ? this.#checkFree(name) : this.#acquire(key, name, next, seconds);
      return this.#swapOwn(key, name, expected, next, seconds);
    });
  }

  async refresh(key: string, held: Holder, ttl: number, signal?: AbortSignal): Promise<Holder | null> {
    const where = 'EtcdStore.refresh';
    checkKey(where, key);
    checkHolder(where, 'held', held, false);
    checkTtl(where, ttl);
    checkSignal(where, 'signal', signal, false);
    return this.#run(signal, () => this.#refresh(key, held, leaseSeconds(ttl)));
  }

  /** See `LockStore.watch`; `trouble` hears each broken stream or failed read the watch retries, and `null` once etcd answers again. */
  watch(key: string, signal: AbortSignal, trouble?: import('@vip/core').WatchTrouble): AsyncIterable<Holder | null> {
    const where = 'EtcdStore.watch';
    checkKey(where, key);
    checkSignal(where, 'signal', signal, true);
    if (this.#closed.signal.aborted) throw closedError();
    const context: WatchContext = {
      client: this.client,
      requestTimeoutMs: this.#requestTimeoutMs,
      closed: this.#closed.signal,
      watchers: this.#watchers,
    };
    return explained(watchHolder(context, key, signal, trouble), (error) => this.#explain(error), () => (this.#answered = true));
  }

  /**
   * Ends this store's watches (they throw "the store was closed" unless their
   * own signal aborted), stops its keepalives, and closes the client if the
   * store created it.
   *
   * Holds are NOT released: a key still held through this store stays until
   * its lease expires (TTL + up to 0.5 s), as after a crash. Revoking the
   * lease would free the key at once, but a candidate that was not stopped
   * still believes it leads until its local deadline, and another node could
   * take the key meanwhile: two leaders. Stop candidates first (`stop()`
   * resigns, deleting the key), then close the store. Leases that carry no
   * hold any more are revoked, so a clean shutdown leaves nothing behind.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed.abort();
      this.#leases.stopKeepingReady(); // no lease granted from now on would be revoked
      // Cancel the watchers here, before the client closes under them; each watch's own
      // cleanup then finds nothing left to do. Bounded: etcd may not answer.
      const watchers = [...this.#watchers];
      this.#watchers.clear();
      await withTimeout(Promise.all(watchers.map((watcher) => watcher.cancel().catch(() => {}))), 1000);
      if (this.#inFlight === 0) {
        const held = new Set([...this.#holds.values()].map((hold) => hold.lease));
        const idle = this.#leases.live().filter((lease) => !held.has(lease));
        await Promise.allSettled(idle.map((lease) => this.#leases.revoke(lease)));
      }
      this.#leases.close();
      this.#holds.clear();
      if (this.#ownsClient) this.client.close();
    })();
    return this.#closing;
  }

  // ---- the operations ---------------------------------------------------------

  /** `compareAndSwap(key, null, null)`: succeeds if the key is free, writes nothing. */
  async #checkFree(name: Buffer): Promise<SwapResult> {
    const response = await this.client.kv.txn(
      { compare: [{ key: name, target: 'Create', result: 'Equal', create_revision: 0 }], failure: [{ request_range: { key: name } }] },
      this.#callOptions(),
    );
    return response.succeeded ? { ok: true, holder: null } : { ok: false, holder: holderIn(response) };
  }

  async #acquire(key: string, name: Buffer, claim: Claim, seconds: number): Promise<SwapResult> {
    const value = encodeHolder(claim);
    if (value.length > MAX_ENCODED_BYTES) {
      throw new RangeError(`EtcdStore.compareAndSwap: argument "next" encodes to ${value.length} bytes, over the ${MAX_ENCODED_BYTES} this store sends to etcd`);
    }
    this.#acquiring.set(key, (this.#acquiring.get(key) ?? 0) + 1);
    try {
      for (let attempt = 1; ; attempt++) {
        // A keepalive or grant sent after this call began: the key lives >= ttl from the call (promise 3).
        // Confirmed before the write, so a key is never written onto a lease about to expire.
        const lease = await this.#leases.confirmed(seconds);
        let response: ITxnResponse;
        try {
          // Counted while on its way, and for good if unanswered: the lease is then never kept alive for followers.
          response = await this.#leases.writeOn(lease, () =>
            this.client.kv.txn(
              {
                // Guard: the key does not exist. Of all contenders, only one txn can see that.
                compare: [{ key: name, target: 'Create', result: 'Equal', create_revision: 0 }],
                success: [{ request_put: { key: name, value, lease: lease.id } }],
                failure: [{ request_range: { key: name } }],
              },
              this.#callOptions(),
            ),
          );
        } catch (error) {
          // The lease was revoked between its keepalive and the txn: etcd applied
          // nothing (it checks the lease before writing). Take a new lease, once.
          if (error instanceof EtcdLeaseInvalidError && attempt === 1) {
            this.#dropLease(lease);
            continue;
          }
          throw error;
        }
        if (response.succeeded) {
          // The txn's revision is the revision of its put: the key's create revision.
          return { ok: true, holder: this.#remember(key, claim, BigInt(response.header.revision), lease) };
        }
        const kv = kvIn(response);
        if (kv && this.#isLostAnswerOfOurs(key, kv, value, lease)) {
          return { ok: true, holder: this.#remember(key, claim, BigInt(kv.create_revision), lease) };
        }
        return { ok: false, holder: kv ? decodeHolder(kv) : null };
      }
    } finally {
      const left = (this.#acquiring.get(key) ?? 1) - 1;
      if (left > 0) this.#acquiring.set(key, left);
      else this.#acquiring.delete(key);
    }
  }

  /**
   * The key already holds exactly this claim on our lease, in a term no caller
   * of ours knows about: it is our own write from an attempt whose answer was
   * lost. etcd3 retries a txn that failed with UNAVAILABLE or a timeout on
   * another member (its `global` retry policy), and the first attempt may have
   * been applied; a caller may also retry after a timeout. Adopting the term
   * is safe (the lease was confirmed for this call) and spares the candidate a
   * resign-and-campaign round. Only when no other acquire of this key by this
   * store is in flight, so two concurrent callers can never both win.
   */
  #isLostAnswerOfOurs(key: string, kv: IKeyValue, value: Buffer, lease: SharedLease): boolean {
    return (
      kv.lease === lease.id &&
      Buffer.from(kv.value).equals(value) &&
      this.#holds.get(key)?.token !== BigInt(kv.create_revision) &&
      this.#acquiring.get(key) === 1
    );
  }

  /** Replace (`next` a claim) or release (`next` null) a term this store wrote. */
  async #swapOwn(key: string, name: Buffer, expected: Holder, next: Claim | null, seconds: number): Promise<SwapResult> {
    const value = next && encodeHolder(next);
    if (value && value.length > MAX_ENCODED_BYTES) {
      throw new RangeError(`EtcdStore.compareAndSwap: argument "next" encodes to ${value.length} bytes, over the ${MAX_ENCODED_BYTES} this store sends to etcd`);
    }
    const tracked = this.#holds.get(key);
    // The lease the key must be on to be ours: the one we wrote it with, else
    // this store's lease for the TTL (a term whose write answer we never got).
    const ours = tracked?.lease ?? this.#leases.current(seconds);
    if (!ours || ours.lost) return { ok: false, holder: await this.#read(name) }; // no lease: nothing here is ours

    let target: SharedLease | undefined;
    if (next) {
      // A rewrite confirms the hold like a refresh: a keepalive sent after this
      // call began (promise 3). A new TTL moves the key to that TTL's lease.
      if (ours.ttl === seconds) {
        if (!(await this.#leases.keepalive(ours))) {
          this.#dropLease(ours);
          return { ok: false, holder: await this.#read(name) };
        }
        target = ours;
      } else {
        target = await this.#leases.confirmed(seconds);
      }
    }

    // Guard: still the term `expected` (create revision), on this store's lease, held by the same id.
    const guard: ICompare[] = [{ key: name, target: 'Create', result: 'Equal', create_revision: expected.token.toString() }, { key: name, target: 'Lease', result: 'Equal', lease: ours.id }, ...idGuard(name, expected.id)];
    let response: ITxnResponse;
    try {
      response = await this.client.kv.txn(
        {
          compare: guard,
          success: [value && target ? { request_put: { key: name, value, lease: target.id } } : { request_delete_range: { key: name } }],
          failure: [{ request_range: { key: name } }],
        },
        this.#callOptions(),
      );
    } catch (error) {
      if (!(error instanceof EtcdLeaseInvalidError) || !target) throw error;
      // The lease vanished after its keepalive: nothing was written, and the key went with it.
      this.#dropLease(target);
      return { ok: false, holder: await this.#read(name) };
    }

    if (response.succeeded) {
      if (next && target) return { ok: true, holder: this.#remember(key, next, expected.token, target) };
      if (this.#holds.get(key)?.token === expected.token) this.#holds.delete(key);
      return { ok: true, holder: null };
    }
    const kv = kvIn(response);
    // Forget our hold only if etcd shows it is gone; a wrong `expected` leaves it alone.
    if (tracked && (!kv || BigInt(kv.create_revision) !== tracked.token || kv.lease !== tracked.lease.id)) {
      if (this.#holds.get(key) === tracked) this.#holds.delete(key);
    }
    return { ok: false, holder: kv ? decodeHolder(kv) : null };
  }

  async #refresh(key: string, held: Holder, seconds: number): Promise<Holder | null> {
    const hold = this.#holds.get(key);
    // Not a term this store holds (released, lost with its lease, or never ours): definitely not ours.
    if (!hold || hold.token !== held.token || hold.id !== held.id) return null;
    if (hold.lease.granted < seconds) {
      throw new RangeError(
        `EtcdStore.refresh: option "ttl" is ${seconds} s but the hold on ${JSON.stringify(key)} is on a ${hold.lease.granted} s lease; change a hold's ttl with compareAndSwap`,
      );
    }
    // Keepalive sent after this call began, answered with TTL > 0: etcd keeps
    // the lease, and with it the key, at least its TTL from now (promise 3).
    if (!(await this.#leases.keepalive(hold.lease))) {
      this.#dropLease(hold.lease);
      return null;
    }
    const now = this.#holds.get(key);
    if (!now || now.token !== held.token || now.id !== held.id) return null; // released meanwhile
    if (now.lease !== hold.lease) return this.#refresh(key, held, seconds); // moved to another lease meanwhile
    return held;
  }

  // ---- bookkeeping ------------------------------------------------------------

  #remember(key: string, claim: Claim, token: bigint, lease: SharedLease): Holder {
    this.#holds.set(key, { id: claim.id, token, lease });
    return { id: claim.id, value: claim.value, token };
  }

  /** etcd said the lease is gone: so is every key on it. Later acquires get a new lease. */
  #dropLease(lease: SharedLease): void {
    this.#leases.markLost(lease);
    for (const [key, hold] of this.#holds) if (hold.lease === lease) this.#holds.delete(key);
  }

  async #read(name: Buffer): Promise<Holder | null> {
    const response = await this.client.kv.range({ key: name }, this.#callOptions());
    const kv = response.kvs[0];
    return kv ? decodeHolder(kv) : null;
  }

  #callOptions(): { deadline: Date } {
    return { deadline: new Date(Date.now() + this.#requestTimeoutMs) };
  }

  /** Run an operation unless closed; give up waiting for it when `signal` aborts. */
  async #run<T>(signal: AbortSignal | undefined, operation: () => Promise<T>): Promise<T> {
    if (this.#closed.signal.aborted) throw closedError();
    signal?.throwIfAborted();
    this.#inFlight++;
    const work = operation()
      .then((answer) => {
        this.#answered = true;
        return answer;
      })
      .catch(async (error: unknown) => {
        throw await this.#explain(error);
      })
      .finally(() => this.#inFlight--);
    if (!signal) return work;
    // The request itself goes on until its deadline; only the caller stops waiting.
    work.catch(() => {});
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /**
   * A request that could not connect over TLS says why, when a handshake of
   * our own finds out (see tls-probe.ts); any other error passes unchanged.
   */
  async #explain(error: unknown): Promise<unknown> {
    // Only an address that never answered as etcd is the wrong one: once it has,
    // a "Protocol error" is a passing fault (a proxy, a balancer's error page), retried.
    const wrong = this.#answered ? undefined : notEtcd(error);
    if (wrong) return wrong;
    if (this.#tlsTargets.length === 0 || !isConnectionFailure(error) || !(error instanceof Error)) return error;
    if (!this.#probe || Date.now() - this.#probe.at > 5000) {
      const targets = this.#tlsTargets;
      const result = Promise.all(targets.map((target) => probeTls(target))).then((reasons) =>
        reasons.map((reason, i) => (reason ? `${targets[i]!.url}: ${reason}` : '')).filter(Boolean).join('; '),
      );
      this.#probe = { at: Date.now(), result };
    }
    const why = await this.#probe.result;
    if (!why) return error;
    const explained = new Error(`${error.message} -- a TLS handshake of our own says: ${why}`, { cause: error });
    explained.name = error.name;
    return explained;
  }
}

/**
 * gRPC's "Protocol error": the server answered our HTTP/2 with something else,
 * an HTTP/1 server such as a Consul agent or a web server. etcd3 retries it
 * as UNAVAILABLE forever; it is the address that is wrong.
 */
function notEtcd(error: unknown): VipWrongServerError | undefined {
  if (!(error instanceof Error) || !/\bProtocol error\b/.test(error.message)) return undefined;
  return new VipWrongServerError(
    `this does not look like an etcd server: it does not speak gRPC over HTTP/2 (gRPC said "Protocol error"); is the address (and port) that of a Consul agent or another HTTP service? etcd's client port is 2379 by default`,
    error,
  );
}

/** `new EtcdStore(...)` as a function, for code that takes a store factory. */
export function createEtcdStore(connection: EtcdConnectionInput, options?: EtcdStoreOptions): EtcdStore {
  return new EtcdStore(connection, options);
}

// ---- construction -------------------------------------------------------------

interface Settings {
  requestTimeoutMs: number;
  watchRetryInitialMs: number;
  watchRetryMaxMs: number;
}

/** Every key of `EtcdStoreOptions` (a record, so the compiler notices a key missing here); any other is refused. */
const OPTION_KEYS: Record<keyof EtcdStoreOptions, true> = { requestTimeout: true, watchRetryInitial: true, watchRetryMax: true };
/** Every key of etcd3's `IOptions`, the options-object form of the connection. */
const CONNECTION_KEYS: Record<keyof IOptions, true> = {
  hosts: true,
  auth: true,
  credentials: true,
  grpcOptions: true,
  defaultCallOptions: true,
  dialTimeout: true,
  faultHandling: true,
};
/** Keys of `ConsulStore`'s connection options that etcd3's options do not have: such an object was meant for Consul. */
const CONSUL_KEYS = ['host', 'port', 'secure', 'token'];

function checkOptions(options: EtcdStoreOptions): Settings {
  checkObject('new EtcdStore', 'options', options);
  checkKnownKeys('new EtcdStore', options, Object.keys(OPTION_KEYS), 'options.');
  const seconds = (name: keyof EtcdStoreOptions, fallback: number): number =>
    checkSeconds('new EtcdStore', `options.${name}`, options[name] ?? fallback, { greaterThan: 0 }) * 1000;
  const settings = {
    requestTimeoutMs: seconds('requestTimeout', 5),
    watchRetryInitialMs: seconds('watchRetryInitial', 0.1),
    watchRetryMaxMs: seconds('watchRetryMax', 1),
  };
  if (settings.watchRetryMaxMs < settings.watchRetryInitialMs) {
    throw new VipOptionError('new EtcdStore', 'options.watchRetryMax', `at least options.watchRetryInitial (${settings.watchRetryInitialMs / 1000})`, options.watchRetryMax);
  }
  return settings;
}

/** An Etcd3 client, also one from another copy of the etcd3 package. A namespace is refused. */
function isEtcd3(value: unknown): value is Etcd3 {
  if (value instanceof Etcd3) return true;
  if (typeof value !== 'object' || value === null) return false;
  const looksLikeClient = 'kv' in value && 'leaseClient' in value && typeof (value as { watch?: unknown }).watch === 'function';
  if (!looksLikeClient) return false;
  if (value instanceof Namespace || !('cluster' in value)) {
    // A Namespace prefixes keys in its builders but not in the raw kv/lease calls this store makes.
    throw new TypeError(
      'EtcdStore: got an etcd3 Namespace (client.namespace(...)); pass the root Etcd3 client and put the prefix in the candidate\'s path instead',
    );
  }
  return true;
}

/** `source`, with its error (if it ends with one) passed through `explain`. */
async function* explained<T>(source: AsyncIterable<T>, explain: (error: unknown) => Promise<unknown>, onItem: () => void): AsyncGenerator<T> {
  try {
    for await (const item of source) {
      onItem();
      yield item;
    }
  } catch (error) {
    throw await explain(error);
  }
}

/** The https members of a client's options, with the CA and client certificate it connects with. */
function tlsTargets(options: IOptions): TlsTarget[] {
  const hosts = typeof options.hosts === 'string' ? options.hosts.split(',') : options.hosts;
  const credentials = options.credentials;
  return hosts
    .map((host) => host.trim())
    .filter((host) => /^https:\/\//i.test(host))
    .map((url) => ({ url, ca: credentials?.rootCertificate, cert: credentials?.certChain, key: credentials?.privateKey }));
}

/**
 * Refuses a connection meant for another store, saying which class (or
 * `openStore()` / `vip()` of @vip/vip, which pick the store from the string)
 * takes it, rather than as a malformed etcd address: a `consul://`,
 * `consuls://` or `memory://` string (alone or in a list of members), or an
 * object with ConsulStore's `host`/`port`/`secure`/`token` and no `hosts`.
 */
function refuseOtherStore(connection: unknown): void {
  const refuse = (message: string): never => {
    const error = new VipOptionError('new EtcdStore', 'connection', 'an etcd connection', connection);
    error.message = `EtcdStore: ${message}`;
    throw error;
  };
  const strings = typeof connection === 'string' ? [connection] : Array.isArray(connection) ? connection.filter((entry) => typeof entry === 'string') : [];
  for (const text of strings as string[]) {
    const scheme = /^\s*([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
    const shown = JSON.stringify(redactConnectionString(text.trim()));
    if (scheme === 'consul' || scheme === 'consuls') {
      refuse(`${shown} is a Consul address; use new ConsulStore(${shown}) from @vip/consul, or openStore(${shown}) or vip(${shown}) from @vip/vip`);
    }
    if (scheme === 'memory') {
      refuse(`${shown} is an in-process memory store address; use new MemoryStore() from @vip/core, or openStore(${shown}) or vip(${shown}) from @vip/vip`);
    }
  }
  if (connection !== null && typeof connection === 'object' && !Array.isArray(connection) && !('hosts' in connection)) {
    const consulKey = CONSUL_KEYS.find((key) => key in connection);
    if (consulKey !== undefined) {
      refuse(
        `got an options object with "${consulKey}" and no "hosts": that is ConsulStore's form ({ host, port, secure, token }); ` +
          'for Consul use new ConsulStore({ ... }) from @vip/consul, for etcd give { hosts: ["http://127.0.0.1:2379"] } or a connection string like "etcd://127.0.0.1:2379"',
      );
    }
  }
}

function clientOptions(connection: Exclude<EtcdConnectionInput, Etcd3>, settings: Settings): IOptions {
  refuseOtherStore(connection);
  let given: IOptions;
  if (typeof connection === 'string') given = parseEtcdConnectionString(connection);
  else if (Array.isArray(connection)) given = { hosts: parseEtcdHosts(connection as readonly string[]) };
  else if (connection !== null && typeof connection === 'object') {
    given = connection as IOptions;
    checkKnownKeys('new EtcdStore', given, Object.keys(CONNECTION_KEYS), 'connection.');
    const hosts = given.hosts;
    const ok = (typeof hosts === 'string' && hosts.trim() !== '') || (Array.isArray(hosts) && hosts.length > 0 && hosts.every((h) => typeof h === 'string' && h !== ''));
    if (!ok) throw new VipOptionError('new EtcdStore', 'connection.hosts', 'a host URL or a non-empty array of them, e.g. ["http://127.0.0.1:2379"]', hosts);
  } else {
    throw new VipOptionError(
      'new EtcdStore',
      'connection',
      'a connection string like "etcd://127.0.0.1:2379", an array of hosts, an etcd3 options object or an Etcd3 client',
      connection,
    );
  }
  return {
    ...given,
    grpcOptions: {
      // Notice a dead connection under the long-lived watch stream in ~15 s
      // rather than the OS's TCP timeout (minutes). etcd allows client pings
      // every 5 s (--grpc-keepalive-min-time) and only while a call is open,
      // which is why keepalive_permit_without_calls stays off.
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      ...given.grpcOptions,
    },
    faultHandling: {
      // A failed call is retried once on another member, so a 3-member cluster
      // rides out a dead member. A member that keeps failing is skipped for 1 s,
      // not etcd3's 5 s, so a restarted single etcd is used again quickly.
      global: retry(handleWhen(isRecoverableError), { maxAttempts: 1 }),
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
      watchBackoff: watchBackoff(settings.watchRetryInitialMs, settings.watchRetryMaxMs),
      ...given.faultHandling,
    },
  };
}

/**
 * The reconnect delays of the watch stream: doubling from `initialMs` up to
 * `maxMs`, with "equal jitter" so that many clients do not reconnect in step.
 * etcd3's watch manager calls `next()` on this object for the first delay.
 */
function watchBackoff(initialMs: number, maxMs: number, attempt = -1): IBackoff<unknown> {
  const base = attempt < 0 ? initialMs : Math.min(maxMs, initialMs * 2 ** attempt);
  return { duration: base / 2 + (Math.random() * base) / 2, next: () => watchBackoff(initialMs, maxMs, attempt + 1) };
}

// ---- arguments ----------------------------------------------------------------

/** Whole seconds for a lease: rounded up, never down (promise 3). */
function leaseSeconds(ttl: number): number {
  return Math.max(1, Math.ceil(ttl));
}

/**
 * A lone surrogate has no UTF-8 form: the key would be sent with U+FFFD in its
 * place, the name of another key ("/a\uD800" and "/a\uDC00" would be one election).
 */
const LONE_SURROGATE = /\p{Surrogate}/u;
const WELL_FORMED_KEY = 'well-formed Unicode (a lone surrogate would be stored as U+FFFD, the name of another key)';

function checkKey(where: string, key: unknown): void {
  checkNonEmptyString(where, 'key', key);
  if (LONE_SURROGATE.test(key)) throw new VipOptionError(where, 'key', WELL_FORMED_KEY, key);
}

function checkTtl(where: string, ttl: unknown): void {
  if (checkSeconds(where, 'ttl', ttl, { greaterThan: 0 }) > MAX_LEASE_TTL) throw new VipOptionError(where, 'ttl', `at most ${MAX_LEASE_TTL} seconds (etcd's longest lease)`, ttl);
}

function closedError(): Error {
  return new Error('EtcdStore: the store was closed');
}

// ---- txn answers --------------------------------------------------------------

function kvIn(response: ITxnResponse): IKeyValue | undefined {
  return response.responses[0]?.response_range?.kvs[0];
}

function holderIn(response: ITxnResponse): Holder | null {
  const kv = kvIn(response);
  return kv ? decodeHolder(kv) : null;
}

/** Wait for `work`, at most `ms`. */
async function withTimeout(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
