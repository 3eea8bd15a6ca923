import { checkClaim, checkHolder, checkNonEmptyString, checkSeconds, checkSignal, HoldPool, type Claim, type Hold, type Holder, type LockStore, type SwapResult } from '@vip/core/adapter';

/** The client of your server: a key-value store whose keys can live on a lease. */
export interface LeaseServer {
  createLease(ttlSeconds: number): Promise<string>;
  /** Resolves false when the server no longer has the lease. */
  renewLease(id: string): Promise<boolean>;
  revokeLease(id: string): Promise<void>;
  /**
   * One atomic operation: put `value` on `lease` only if `key` is at `version`
   * (0 = absent) and, when present, on `lease`; the new version, or null if refused.
   */
  putIf(key: string, version: bigint, value: string, lease: string): Promise<bigint | null>;
  /** One atomic operation: delete `key` only if it is at `version` and on `lease`. */
  deleteIf(key: string, version: bigint, lease: string): Promise<boolean>;
  get(key: string): Promise<{ value: string; version: bigint; lease: string } | null>;
  /** Every change of `key`, from its current state on, in order. */
  watch(key: string, signal: AbortSignal): AsyncIterable<{ value: string; version: bigint } | null>;
}

const encode = (claim: Claim): string => JSON.stringify([claim.id, claim.value]);
const decode = (value: string, token: bigint): Holder => {
  const [id, claimValue] = JSON.parse(value) as [string, string];
  return { id, value: claimValue, token };
};

export class SketchStore implements LockStore {
  readonly limits = { minTtl: 1 };
  readonly #server: LeaseServer;
  // One lease per TTL, confirmed only by a create or renew sent after the call began (promise 3).
  readonly #leases: HoldPool;
  /** The terms this client wrote, and the lease each is on: a refresh confirms that lease, not just any. */
  readonly #held = new Map<string, { token: bigint; lease: Hold }>();

  constructor(server: LeaseServer) {
    this.#server = server;
    this.#leases = new HoldPool(
      {
        create: async (ttl) => ({ id: await server.createLease(ttl) }),
        renew: (lease) => server.renewLease(lease.id),
        destroy: (lease) => server.revokeLease(lease.id),
      },
      { name: 'SketchStore', noun: 'lease' },
    );
  }

  async compareAndSwap(key: string, expected: Holder | null, next: Claim | null, ttl: number, signal?: AbortSignal): Promise<SwapResult> {
    const where = 'SketchStore.compareAndSwap';
    checkNonEmptyString(where, 'key', key);
    checkHolder(where, 'expected', expected, true);
    checkClaim(where, 'next', next);
    checkSeconds(where, 'ttl', ttl, { greaterThan: 0 });
    checkSignal(where, 'signal', signal, false);
    if (next === null) {
      // Release: only a hold of ours (on our lease), only that term (promise 4).
      const ours = this.#held.get(key);
      const released = expected !== null && ours?.token === expected.token && (await this.#server.deleteIf(key, expected.token, ours.lease.id));
      if (!released) return { ok: false, holder: await this.#current(key) };
      this.#held.delete(key);
      return { ok: true, holder: null };
    }
    // A lease created or renewed by a request sent after this call began (promise 3).
    const lease = await this.#leases.confirmed(ttl);
    // The version is the fencing token: it grows with every write of the key (promise 5).
    const version = await this.#server.putIf(key, expected?.token ?? 0n, encode(next), lease.id);
    if (version === null) return { ok: false, holder: await this.#current(key) };
    this.#held.set(key, { token: version, lease });
    return { ok: true, holder: { ...next, token: version } };
  }

  async refresh(key: string, held: Holder, ttl: number, signal?: AbortSignal): Promise<Holder | null> {
    const where = 'SketchStore.refresh';
    checkNonEmptyString(where, 'key', key);
    checkHolder(where, 'held', held, false);
    checkSeconds(where, 'ttl', ttl, { greaterThan: 0 });
    checkSignal(where, 'signal', signal, false);
    const ours = this.#held.get(key);
    if (ours?.token !== held.token || ours.lease.lost) return null; // not a term of ours, or its lease is gone
    // A renew sent now, shared with every caller that joined it: true, false (gone), or a rejection (unknown).
    if (!(await this.#leases.confirm(ours.lease))) return null;
    return held;
  }

  async *watch(key: string, signal: AbortSignal): AsyncIterable<Holder | null> {
    checkNonEmptyString('SketchStore.watch', 'key', key);
    checkSignal('SketchStore.watch', 'signal', signal, true);
    for await (const entry of this.#server.watch(key, signal)) yield entry && decode(entry.value, entry.version);
  }

  async close(): Promise<void> {
    const leases = this.#leases.live();
    this.#leases.close();
    await Promise.allSettled(leases.map((lease) => this.#leases.destroy(lease)));
  }

  async #current(key: string): Promise<Holder | null> {
    const entry = await this.#server.get(key);
    return entry && decode(entry.value, entry.version);
  }
}
