/**
 * The leases of one store: one etcd lease per distinct TTL, shared by every
 * key the store holds with that TTL, and kept alive only on demand.
 *
 * There is no background keepalive loop. A hold is confirmed by a keepalive
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
 */
import { coalesce } from '@vip/core';
import {
  castGrpcError,
  EtcdLeaseInvalidError,
  GRPCDeadlineExceededError,
  isRecoverableError,
  type Etcd3,
  type ILeaseKeepAliveResponse,
} from 'etcd3';

/** One etcd lease, shared by all holds of one TTL. */
export interface SharedLease {
  /** The TTL asked for, in whole seconds (the key of the lease in its pool). */
  readonly seconds: number;
  /** etcd's lease ID (a 64-bit integer as a decimal string). */
  readonly id: string;
  /** The TTL etcd granted: at least `seconds`, more if the server raised it to its minimum. */
  readonly ttl: number;
  /** Set once etcd said the lease is gone (keepalive answered TTL 0, or "lease not found"). */
  lost: boolean;
}

/** A grant, settled or in flight. Kept as one object so "the same grant" has one identity. */
interface Slot {
  readonly granted: Promise<SharedLease>;
  lease: SharedLease | undefined;
}

/** The answer-carrying part of a lease keepalive stream, as etcd3 hands it out. */
type KeepaliveStream = Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>>;

export class LeasePool {
  readonly #client: Etcd3;
  readonly #timeoutMs: number;
  readonly #slots = new Map<number, Slot>();
  /** Per lease, the next keepalive: not yet sent, so whoever joins it began before it goes out. */
  readonly #keepalives = new WeakMap<SharedLease, () => Promise<boolean>>();
  readonly #streams = new Set<KeepaliveStream>();
  #closed = false;

  constructor(client: Etcd3, requestTimeoutMs: number) {
    this.#client = client;
    this.#timeoutMs = requestTimeoutMs;
  }

  /** The granted, not-lost lease for `seconds`, if there is one (no I/O). */
  current(seconds: number): SharedLease | undefined {
    const lease = this.#slots.get(seconds)?.lease;
    return lease && !lease.lost ? lease : undefined;
  }

  /** Every granted lease not known to be lost. */
  live(): SharedLease[] {
    return [...this.#slots.values()].flatMap((slot) => (slot.lease && !slot.lease.lost ? [slot.lease] : []));
  }

  /**
   * A live lease of `seconds`, confirmed by a keepalive or a grant sent after
   * this call began: etcd keeps it at least `seconds` from the call.
   * Rejects when etcd cannot be asked.
   */
  async confirmed(seconds: number): Promise<SharedLease> {
    const seen = this.#slots.get(seconds);
    if (seen) {
      // A grant in flight may have been sent before this call began: confirm it with a keepalive.
      const lease = await seen.granted.catch(() => undefined);
      if (lease && !lease.lost && (await this.keepalive(lease))) return lease;
    }
    const slot = this.#slots.get(seconds);
    // A slot other than the one seen at the start was granted after this call began: as good as our own.
    if (slot && slot !== seen && !slot.lease?.lost) return slot.granted;
    return this.#grant(seconds).granted;
  }

  /**
   * One keepalive round trip sent after this call: resolves true if etcd kept
   * the lease alive, false if etcd says it is gone (the lease is then marked
   * lost), and rejects if we cannot tell (unreachable, timeout).
   */
  keepalive(lease: SharedLease): Promise<boolean> {
    if (lease.lost) return Promise.resolve(false);
    let confirm = this.#keepalives.get(lease);
    if (!confirm) {
      // Callers arriving before the keepalive is sent share it (see `coalesce`).
      confirm = coalesce(() => this.#sendKeepalive(lease));
      this.#keepalives.set(lease, confirm);
    }
    const next = confirm();
    return next;
  }

  markLost(lease: SharedLease): void {
    lease.lost = true;
    const slot = this.#slots.get(lease.seconds);
    if (slot?.lease === lease) this.#slots.delete(lease.seconds);
  }

  /** Revoke a lease (freeing every key on it at once). Best effort, bounded by the request timeout. */
  async revoke(lease: SharedLease): Promise<void> {
    this.markLost(lease);
    await this.#client.leaseClient.leaseRevoke({ ID: lease.id }, this.#callOptions(Math.min(this.#timeoutMs, 1000)));
  }

  /**
   * Later calls reject. Keepalives in flight are half-closed, not cancelled:
   * etcd3 counts a cancelled stream as a failure of its member and resets
   * every connection to it (rpc.js markFailed -> resetAllServices), which
   * would also break a caller's own client.
   */
  close(): void {
    this.#closed = true;
    for (const stream of this.#streams) stream.end();
    this.#streams.clear();
  }

  #grant(seconds: number): Slot {
    if (this.#closed) throw new Error('EtcdStore: the store was closed');
    const granted = this.#client.leaseClient.leaseGrant({ TTL: seconds }, this.#callOptions()).then((response) => {
      if (response.error) throw new Error(`EtcdStore: etcd refused a lease of ${seconds} s: ${response.error}`);
      const lease: SharedLease = { seconds, id: response.ID, ttl: Number(response.TTL), lost: false };
      slot.lease = lease;
      return lease;
    });
    const slot: Slot = { granted, lease: undefined };
    this.#slots.set(seconds, slot);
    granted.catch(() => {
      if (this.#slots.get(seconds) === slot) this.#slots.delete(seconds);
    });
    return slot;
  }

  async #sendKeepalive(lease: SharedLease): Promise<boolean> {
    // One retry on a new stream (likely another member) when a member refuses
    // at once; a keepalive that timed out is not repeated: the time is gone.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#keepaliveOnce(lease);
      } catch (error) {
        const retry =
          attempt < 2 && !this.#closed && error instanceof Error && isRecoverableError(error) && !(error instanceof GRPCDeadlineExceededError);
        if (!retry) throw error;
      }
    }
  }

  /**
   * A stream per keepalive, ended after its one answer: no long-lived
   * keepalive stream to watch over, and a stalled member only stalls the
   * keepalives sent to it (each has a deadline).
   */
  async #keepaliveOnce(lease: SharedLease): Promise<boolean> {
    if (this.#closed) throw new Error('EtcdStore: the store was closed');
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
      if (Number(response.TTL) > 0) return true;
      this.markLost(lease);
      return false;
    } catch (error) {
      // Older etcd ended the stream with "requested lease not found" instead.
      if (error instanceof EtcdLeaseInvalidError) {
        this.markLost(lease);
        return false;
      }
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
