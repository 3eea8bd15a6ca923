/**
 * The leases of one store: one etcd lease per distinct TTL, shared by every
 * key the store holds with that TTL, and kept alive only on demand.
 *
 * No background keepalive loop keeps a lease that carries keys alive
 * (`keepReady` keeps only a lease that carries none, for followers). A hold is confirmed by a keepalive
 * *sent after the confirming call began* (contract promise 3: a confirmed hold
 * lasts at least `ttl` from the call): etcd then keeps the lease for its full
 * TTL from the moment the keepalive arrives, which is later than the call.
 * Callers that arrive before the next keepalive is sent share it (they all
 * began before it is sent), so refreshing 10,000 keys that come due together
 * costs one keepalive round trip.
 *
 * etcd3's own `Lease` is not used: its automatic keepalives go every TTL/3
 * whether or not anyone asked, and it reports `lost` only when the server
 * says so or ~2 × TTL after the last answer (microsoft/etcd3#110, #155), so a
 * hold confirmed from its state could be older than the call. Here the only
 * "alive" is an answer with TTL > 0 to a keepalive sent for this caller, and
 * the only "lost" is etcd saying the lease is gone.
 *
 * The sharing, the confirmation rule and the bookkeeping are core's
 * `HoldPool` (@vip/core/adapter); this file is the etcd side of it: grant,
 * keepalive (one stream per keepalive, retried once on a new stream) and revoke.
 */
import { HoldPool, type Hold } from '@vip/core/adapter';
import {
  castGrpcError,
  EtcdLeaseInvalidError,
  GRPCDeadlineExceededError,
  isRecoverableError,
  type Etcd3,
  type ILeaseKeepAliveResponse,
} from 'etcd3';

/**
 * One etcd lease, shared by all holds of one TTL: `ttl` is the TTL asked for
 * in whole seconds (the key of the lease in its pool), `id` etcd's lease ID
 * (a 64-bit integer as a decimal string), `granted` the TTL etcd granted (at
 * least `ttl`, more if the server raised it to its minimum), `lost` set once
 * etcd said the lease is gone (keepalive answered TTL 0, or "lease not found").
 */
export type SharedLease = Hold;

/** The answer-carrying part of a lease keepalive stream, as etcd3 hands it out. */
type KeepaliveStream = Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>>;

export class LeasePool {
  readonly #client: Etcd3;
  readonly #timeoutMs: number;
  readonly #pool: HoldPool;
  readonly #streams = new Set<KeepaliveStream>();

  constructor(client: Etcd3, requestTimeoutMs: number) {
    this.#client = client;
    this.#timeoutMs = requestTimeoutMs;
    this.#pool = new HoldPool(
      {
        create: (seconds) => this.#grant(seconds),
        renew: (lease) => this.#sendKeepalive(lease),
        destroy: (lease) => this.#revoke(lease),
      },
      { name: 'EtcdStore', noun: 'lease' },
    );
  }

  /**
   * Keep a lease of `seconds` granted and kept alive (every ttl/2) until
   * `signal` aborts, unless it carries keys (`locks`): `EtcdStore.prepare`,
   * so that a follower does not grant one when it finds its key free
   * (HoldPool.keepReady).
   */
  keepReady(seconds: number, signal: AbortSignal, locks: (lease: SharedLease) => boolean): void {
    this.#pool.keepReady(seconds, signal, locks);
  }

  /** Send a put on `lease`: until it answers, and for good if it does not, `keepReady` leaves it alone (HoldPool.writeOn). */
  writeOn<T>(lease: SharedLease, write: () => Promise<T>): Promise<T> {
    return this.#pool.writeOn(lease, write);
  }

  /** Stop keeping leases ready (close(), before the idle ones are revoked). */
  stopKeepingReady(): void {
    this.#pool.stopKeepingReady();
  }

  /** The granted, not-lost lease for `seconds`, if there is one (no I/O). */
  current(seconds: number): SharedLease | undefined {
    return this.#pool.current(seconds);
  }

  /** Every granted lease not known to be lost. */
  live(): SharedLease[] {
    return this.#pool.live();
  }

  /**
   * A live lease of `seconds`, confirmed by a keepalive or a grant sent after
   * this call began: etcd keeps it at least `seconds` from the call.
   * Rejects when etcd cannot be asked.
   */
  confirmed(seconds: number): Promise<SharedLease> {
    return this.#pool.confirmed(seconds);
  }

  /**
   * One keepalive round trip sent after this call: resolves true if etcd kept
   * the lease alive, false if etcd says it is gone (the lease is then marked
   * lost), and rejects if we cannot tell (unreachable, timeout). Callers
   * arriving before the keepalive is sent share it (see `coalesce`).
   */
  keepalive(lease: SharedLease): Promise<boolean> {
    return this.#pool.confirm(lease);
  }

  markLost(lease: SharedLease): void {
    this.#pool.lost(lease);
  }

  /** Revoke a lease (freeing every key on it at once). Best effort, bounded by the request timeout. */
  revoke(lease: SharedLease): Promise<void> {
    return this.#pool.destroy(lease);
  }

  /**
   * Later calls reject; a lease granted after this (its grant was in flight)
   * is revoked at once. Keepalives in flight are half-closed, not cancelled:
   * etcd3 counts a cancelled stream as a failure of its member and resets
   * every connection to it (rpc.js markFailed -> resetAllServices), which
   * would also break a caller's own client.
   */
  close(): void {
    this.#pool.close();
    for (const stream of this.#streams) stream.end();
    this.#streams.clear();
  }

  async #grant(seconds: number): Promise<{ id: string; ttl: number }> {
    const response = await this.#client.leaseClient.leaseGrant({ TTL: seconds }, this.#callOptions());
    if (response.error) throw new Error(`EtcdStore: etcd refused a lease of ${seconds} s: ${response.error}`);
    return { id: response.ID, ttl: Number(response.TTL) };
  }

  async #revoke(lease: SharedLease): Promise<void> {
    await this.#client.leaseClient.leaseRevoke({ ID: lease.id }, this.#callOptions(Math.min(this.#timeoutMs, 1000)));
  }

  async #sendKeepalive(lease: SharedLease): Promise<boolean> {
    // One retry on a new stream (likely another member) when a member refuses
    // at once; a keepalive that timed out is not repeated: the time is gone.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#keepaliveOnce(lease);
      } catch (error) {
        const retry =
          attempt < 2 && !this.#pool.closed && error instanceof Error && isRecoverableError(error) && !(error instanceof GRPCDeadlineExceededError);
        if (!retry) throw error;
      }
    }
  }

  /**
   * A stream per keepalive, ended after its one answer: no long-lived
   * keepalive stream to watch over, and a stalled member only stalls the
   * keepalives sent to it (each has a deadline). False (the pool then marks
   * the lease lost) only when etcd says the lease is gone.
   */
  async #keepaliveOnce(lease: SharedLease): Promise<boolean> {
    if (this.#pool.closed) throw new Error('EtcdStore: the store was closed');
    const stream = await this.#client.leaseClient.leaseKeepAlive(this.#callOptions());
    this.#streams.add(stream);
    try {
      const response = await new Promise<ILeaseKeepAliveResponse>((resolve, reject) => {
        stream.on('data', resolve);
        stream.on('error', (error) => reject(castGrpcError(error)));
        stream.on('end', () => reject(new Error('EtcdStore: the lease keepalive stream ended without an answer')));
        stream.write({ ID: lease.id });
      });
      // etcd 3.3+ answers TTL 0 for a lease it does not have (expired or revoked).
      return Number(response.TTL) > 0;
    } catch (error) {
      // Older etcd ended the stream with "requested lease not found" instead.
      if (error instanceof EtcdLeaseInvalidError) return false;
      throw error;
    } finally {
      // Half-close: etcd ends the stream cleanly (never cancel(), see close()).
      this.#streams.delete(stream);
      stream.end();
    }
  }

  #callOptions(timeoutMs = this.#timeoutMs): { deadline: Date } {
    return { deadline: new Date(Date.now() + timeoutMs) };
  }
}
