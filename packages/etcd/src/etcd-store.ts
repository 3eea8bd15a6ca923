/**
 * `LockStore` over etcd v3: leases, one transaction per swap, and watches.
 *
 * - A hold is a key attached to a lease. One lease per distinct TTL per store,
 *   shared by every key the store holds: refreshing 10,000 keys costs one
 *   keepalive. A crashed process stops keeping its lease alive and etcd
 *   deletes its keys when the lease expires (checked every 500 ms by etcd's lessor).
 * - The fencing token is the key's create revision: every term creates the
 *   key anew (release and expiry delete it), and etcd's revision only grows.
 * - A swap is one txn whose guard keeps two leaders apart (see `#guard`).
 * - Confirmations are keepalives *sent after the caller's call began*
 *   (contract promise 3), coalesced: callers that arrive before a keepalive
 *   is sent share it.
 *
 * Facts this relies on, from etcd's own sources and issue tracker:
 * - etcd leases are whole seconds, and the server raises a TTL below its
 *   minimum (ceil(1.5 × election timeout), 2 s by default) without saying so
 *   (etcd-io/etcd#14857). We round up and let etcd raise: a longer server-side
 *   lease never breaks the candidate's deadline, it only slows crash failover.
 * - On an etcd leader change every lease is extended to its full TTL plus the
 *   election timeout (etcd-io/etcd#9395): a dead holder can outlive its TTL.
 *   That too is on the safe side.
 * - The npm client's own `lost` event fires late (microsoft/etcd3#110); we
 *   never use it: a keepalive answered with TTL 0 is the only "lease gone".
 */
import { coalesce, type Claim, type Holder, type LockStore, type StoreLimits, type SwapResult } from '@vip/core';
import { circuitBreaker, ConsecutiveBreaker, handleWhen, retry } from 'cockatiel';
import { Etcd3, isRecoverableError, type IKeyValue, type IOptions, type IResponseOp } from 'etcd3';
import { parseEtcdConnectionString } from './connection.js';

export interface EtcdStoreOptions {
  /**
   * Milliseconds to wait for a watch stream to reconnect, doubling from
   * `watchRetryInitial` to `watchRetryMax` (defaults 100 and 1000). etcd3's
   * own default grows to 30 s, which would stall failover after an etcd restart.
   * Only applied to a client this store creates.
   */
  watchRetryInitial?: number;
  watchRetryMax?: number;
}

/** A hold this store wrote: the key is on `lease`, in the term `token`. */
interface Hold {
  readonly id: string;
  readonly token: bigint;
  readonly lease: LeaseState;
}

/** One lease per TTL (whole seconds). */
interface LeaseState {
  readonly ttl: number;
  readonly id: string;
  /** Set once etcd said the lease is gone; a new one is granted for later holds. */
  lost: boolean;
  /** A keepalive shared by every caller that arrives before it is sent (see `coalesce`). */
  confirm: () => Promise<boolean>;
}

const VALUE_VERSION = 1;

/** The etcd value of a hold: id and value as JSON, so any string round-trips exactly. */
function encode(claim: Claim): Buffer {
  return Buffer.from(JSON.stringify({ v: VALUE_VERSION, id: claim.id, value: claim.value }));
}

function decode(kv: IKeyValue): Holder {
  const token = BigInt(kv.create_revision);
  const raw = Buffer.from(kv.value).toString('utf8');
  try {
    const parsed = JSON.parse(raw) as { id?: unknown; value?: unknown };
    if (typeof parsed.id === 'string' && typeof parsed.value === 'string') return { id: parsed.id, value: parsed.value, token };
  } catch {
    // Not written by vip: fall through.
  }
  // Someone else wrote this key. It is held, as far as an election goes;
  // show what is there rather than pretend the key is free.
  return { id: '(not a vip holder)', value: raw, token };
}

/** A capped exponential backoff in the shape etcd3's watch manager calls (`duration`, `next()`). */
function watchBackoff(initial: number, max: number): { duration: number; next(): ReturnType<typeof watchBackoff> } {
  return { duration: initial, next: () => watchBackoff(Math.min(max, initial * 2), max) };
}

function isEtcd3(value: unknown): value is Etcd3 {
  return value instanceof Etcd3 || (typeof value === 'object' && value !== null && 'kv' in value && 'leaseClient' in value && 'watch' in value);
}

function check(name: string, ok: boolean, expected: string, got: unknown): void {
  if (!ok) throw new TypeError(`EtcdStore: argument "${name}" must be ${expected} (got ${typeof got === 'string' ? JSON.stringify(got) : String(got)})`);
}

export class EtcdStore implements LockStore {
  /**
   * etcd's default request size limit is 1.5 MiB; leave room for the key,
   * the JSON encoding and escaping (up to 6 bytes per character of a value).
   */
  readonly limits: StoreLimits = { maxValueBytes: 256 * 1024 };
  readonly client: Etcd3;
  readonly #ownsClient: boolean;
  readonly #leases = new Map<number, Promise<LeaseState>>();
  readonly #holds = new Map<string, Hold>();
  readonly #closers = new Set<() => void>();
  #closed = false;

  constructor(connection: string | string[] | IOptions | Etcd3, options: EtcdStoreOptions = {}) {
    if (isEtcd3(connection)) {
      this.client = connection;
      this.#ownsClient = false;
      return;
    }
    let clientOptions: IOptions;
    if (typeof connection === 'string') clientOptions = { hosts: parseEtcdConnectionString(connection) };
    else if (Array.isArray(connection)) clientOptions = { hosts: connection };
    else if (connection && typeof connection === 'object') clientOptions = connection;
    else {
      throw new TypeError(
        `EtcdStore: expected a connection string like "etcd://127.0.0.1:2379", an etcd3 options object or an Etcd3 client (got ${String(connection)})`,
      );
    }
    const initial = options.watchRetryInitial ?? 100;
    const max = options.watchRetryMax ?? 1000;
    this.client = new Etcd3({
      ...clientOptions,
      faultHandling: {
        // A failed call is retried on another member (so a 3-member cluster
        // rides out one lost member); a member that keeps failing is skipped
        // for 1 s, not the 5 s default, so a restarted etcd is used again quickly.
        global: retry(handleWhen(isRecoverableError), { maxAttempts: 2 }),
        host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
        watchBackoff: watchBackoff(initial, max) as never,
        ...clientOptions.faultHandling,
      },
    });
    this.#ownsClient = true;
  }

  async compareAndSwap(key: string, expected: Holder | null, next: Claim | null, ttl: number): Promise<SwapResult> {
    this.#checkArgs(key, ttl);
    check('next', next === null || (typeof next?.id === 'string' && typeof next.value === 'string'), 'null or { id, value } strings', next);
    const name = Buffer.from(key);
    if (expected === null) {
      if (next === null) return { ok: false, holder: await this.#read(key) };
      const lease = await this.#confirmedLease(ttl);
      // Guard: the key does not exist (create revision 0). Only one contender's txn can see that.
      const response = await this.client.kv.txn({
        compare: [{ key: name, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key: name, value: encode(next), lease: lease.id } }],
        failure: [{ request_range: { key: name } }],
      });
      if (!response.succeeded) return { ok: false, holder: this.#fromRange(response.responses) };
      const token = BigInt(response.header.revision);
      this.#holds.set(key, { id: next.id, token, lease });
      return { ok: true, holder: { id: next.id, value: next.value, token } };
    }

    const hold = this.#holds.get(key);
    if (!hold || hold.token !== expected.token || hold.id !== expected.id || hold.lease.lost) {
      return { ok: false, holder: await this.#read(key) };
    }
    if (next !== null && !(await this.#keepalive(hold.lease))) {
      this.#forget(hold.lease);
      return { ok: false, holder: await this.#read(key) };
    }
    // Guard: still the term we wrote (create revision) on our own lease.
    const guard = [
      { key: name, target: 'Create' as const, result: 'Equal' as const, create_revision: expected.token.toString() },
      { key: name, target: 'Lease' as const, result: 'Equal' as const, lease: hold.lease.id },
    ];
    const response = await this.client.kv.txn({
      compare: guard,
      success: [next === null ? { request_delete_range: { key: name } } : { request_put: { key: name, value: encode(next), lease: hold.lease.id } }],
      failure: [{ request_range: { key: name } }],
    });
    if (!response.succeeded) {
      this.#holds.delete(key);
      return { ok: false, holder: this.#fromRange(response.responses) };
    }
    if (next === null) {
      this.#holds.delete(key);
      return { ok: true, holder: null };
    }
    this.#holds.set(key, { id: next.id, token: hold.token, lease: hold.lease });
    return { ok: true, holder: { id: next.id, value: next.value, token: hold.token } };
  }

  async refresh(key: string, held: Holder, ttl: number): Promise<Holder | null> {
    this.#checkArgs(key, ttl);
    const hold = this.#holds.get(key);
    if (!hold || hold.token !== held.token || hold.id !== held.id || hold.lease.lost) return null;
    if (await this.#keepalive(hold.lease)) return held;
    this.#forget(hold.lease);
    return null;
  }

  async *watch(key: string, signal: AbortSignal): AsyncIterable<Holder | null> {
    this.#checkArgs(key, 1);
    type Item = { revision: bigint; holder: Holder | null } | { error: Error };
    const queue: Item[] = [];
    let wake: (() => void) | undefined;
    const push = (item: Item): void => {
      queue.push(item);
      wake?.();
    };
    const stop = (): void => wake?.();
    signal.addEventListener('abort', stop, { once: true });
    this.#closers.add(stop);

    const first = await this.client.kv.range({ key: Buffer.from(key) });
    let revision = BigInt(first.header.revision);
    let last: Holder | null = first.kvs[0] ? decode(first.kvs[0]) : null;
    const watcher = await this.client.watch().key(key).startRevision((revision + 1n).toString()).create();
    let disconnected = false;
    watcher.on('put', (kv) => push({ revision: BigInt(kv.mod_revision), holder: decode(kv) }));
    watcher.on('delete', (kv) => push({ revision: BigInt(kv.mod_revision), holder: null }));
    watcher.on('disconnected', () => (disconnected = true));
    watcher.on('connected', () => {
      if (!disconnected) return;
      disconnected = false;
      // After a reconnect, read the key again: if events were compacted away
      // or the stream resumed oddly, the level (the current state) still arrives.
      this.client.kv.range({ key: Buffer.from(key) }).then(
        (response) => push({ revision: BigInt(response.header.revision), holder: response.kvs[0] ? decode(response.kvs[0]) : null }),
        () => {},
      );
    });
    watcher.on('error', (error) => push({ error }));
    try {
      yield last;
      while (!signal.aborted && !this.#closed) {
        const item = queue.shift();
        if (!item) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        if ('error' in item) throw item.error;
        // Never go back: an item older than what we have already said is dropped.
        if (item.revision <= revision) continue;
        revision = item.revision;
        const same = last === null ? item.holder === null : item.holder !== null && item.holder.token === last.token && item.holder.id === last.id && item.holder.value === last.value;
        if (same) continue;
        last = item.holder;
        yield last;
      }
      if (this.#closed && !signal.aborted) throw new Error('EtcdStore: the store was closed');
    } finally {
      signal.removeEventListener('abort', stop);
      this.#closers.delete(stop);
      await watcher.cancel().catch(() => {});
    }
  }

  /**
   * Ends watches and revokes this store's leases, which frees at once any key
   * still held through it (stop candidates first: they resign cleanly), then
   * closes the client if this store created it.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const stop of [...this.#closers]) stop();
    const leases = await Promise.allSettled([...this.#leases.values()]);
    await Promise.allSettled(
      leases.map((result) =>
        result.status === 'fulfilled' && !result.value.lost
          ? this.client.leaseClient.leaseRevoke({ ID: result.value.id }, { deadline: new Date(Date.now() + 1000) })
          : undefined,
      ),
    );
    this.#leases.clear();
    this.#holds.clear();
    if (this.#ownsClient) this.client.close();
  }

  // ---- leases ----------------------------------------------------------------

  /** The lease for `ttl`, confirmed alive by a grant or keepalive sent after this call. */
  async #confirmedLease(ttl: number): Promise<LeaseState> {
    const seconds = Math.max(1, Math.ceil(ttl));
    const existing = this.#leases.get(seconds);
    if (existing) {
      const lease = await existing.catch(() => undefined);
      if (lease && !lease.lost && (await this.#keepalive(lease))) return lease;
      if (lease) this.#forget(lease);
      if (this.#leases.get(seconds) === existing) this.#leases.delete(seconds);
    }
    let granting = this.#leases.get(seconds);
    if (!granting) {
      granting = this.client.leaseClient
        .leaseGrant({ TTL: seconds })
        .then((response) => this.#lease(seconds, response.ID));
      this.#leases.set(seconds, granting);
      granting.catch(() => {
        if (this.#leases.get(seconds) === granting) this.#leases.delete(seconds);
      });
      return granting; // a grant sent just now: alive for its TTL from now
    }
    // Someone else's grant in flight may have been sent before we began; confirm it.
    const lease = await granting;
    if (await this.#keepalive(lease)) return lease;
    this.#forget(lease);
    throw new Error(`EtcdStore: lease ${lease.id} was lost as soon as it was granted`);
  }

  /**
   * One keepalive round trip sent after every caller joined: true if etcd
   * says the lease lives, false if it says the lease is gone, rejects if we
   * cannot tell.
   */
  #keepalive(lease: LeaseState): Promise<boolean> {
    return lease.lost ? Promise.resolve(false) : lease.confirm();
  }

  #lease(ttl: number, id: string): LeaseState {
    const lease: LeaseState = { ttl, id, lost: false, confirm: () => Promise.resolve(false) };
    lease.confirm = coalesce(() => this.#sendKeepalive(lease));
    return lease;
  }

  async #sendKeepalive(lease: LeaseState): Promise<boolean> {
    const stream = await this.client.leaseClient.leaseKeepAlive();
    try {
      const response = await new Promise<{ TTL: string }>((resolve, reject) => {
        stream.on('data', resolve);
        stream.on('error', reject);
        stream.on('end', () => reject(new Error('EtcdStore: the keepalive stream ended without an answer')));
        stream.write({ ID: lease.id });
      });
      const alive = Number(response.TTL) > 0;
      if (!alive) lease.lost = true;
      return alive;
    } finally {
      stream.end();
    }
  }

  #forget(lease: LeaseState): void {
    lease.lost = true;
    for (const [key, hold] of this.#holds) if (hold.lease === lease) this.#holds.delete(key);
    const current = this.#leases.get(lease.ttl);
    current?.then(
      (state) => {
        if (state === lease && this.#leases.get(lease.ttl) === current) this.#leases.delete(lease.ttl);
      },
      () => {},
    );
  }

  // ---- reads -------------------------------------------------------------------

  async #read(key: string): Promise<Holder | null> {
    const response = await this.client.kv.range({ key: Buffer.from(key) });
    return response.kvs[0] ? decode(response.kvs[0]) : null;
  }

  #fromRange(responses: IResponseOp[]): Holder | null {
    const kv = responses[0]?.response_range?.kvs[0];
    return kv ? decode(kv) : null;
  }

  #checkArgs(key: string, ttl: number): void {
    if (this.#closed) throw new Error('EtcdStore: the store was closed');
    check('key', typeof key === 'string' && key.length > 0, 'a non-empty string', key);
    check('ttl', typeof ttl === 'number' && Number.isFinite(ttl) && ttl > 0, 'a finite number of seconds greater than 0', ttl);
  }
}
