/**
 * The Consul sessions of one store: one per distinct TTL, shared by every key
 * the store holds with that TTL, renewed only when a caller asks (or, while
 * it locks no key, by `keepReady` for followers).
 *
 * Promise 3 of the store contract ("a confirmed hold lasts at least ttl from
 * the call") rests on one Consul rule: a session is not invalidated before its
 * TTL has passed since it was created or last renewed. Consul actually waits
 * up to 2 × TTL (SessionTTLMultiplier = 2, agent/consul/session_ttl.go:
 * "The contract is that a session is not expired before the TTL, but there is
 * no explicit promise about the upper bound"), which is on the safe side for a
 * leader's local deadline, and is the floor of crash failover. So:
 *
 * - `confirm()` of a session resolves true only from a renew *sent after* the
 *   confirm was called. Concurrent confirms share one renew (`coalesce`): every
 *   caller joins the next renew not yet sent, so 1,000 elections refreshing in
 *   the same tick cost one renew.
 * - `confirmed(ttl)` gives a session that lives at least `ttl` from the call:
 *   one this call created, or an existing one confirmed by such a renew.
 *
 * Renew answering 404 means Consul no longer has the session (invalidated by
 * its TTL or by its node leaving the catalog, or destroyed; sessions have no
 * health checks, see consul-http.ts createSession): it is `lost` for good,
 * every hold on it is gone, and the next `confirmed(ttl)` creates a new one.
 * Nothing renews a session that locks keys on a timer: such a session lives
 * exactly as long as some caller keeps confirming it, so a process that stops
 * refreshing stops keeping its keys. `keepReady` renews every ttl/2 only a
 * session that locks no key (and none with a lock transaction, `writeOn`, on
 * its way or unanswered), for followers.
 *
 * The sharing, the confirmation rule and the bookkeeping are core's
 * `HoldPool` (@vip/core/adapter); this file is the Consul side of it:
 * create, renew and destroy over HTTP. A session created while the store
 * closes holds nothing and is destroyed at once; `confirmed(ttl)` goes
 * through at most 3 sessions that Consul invalidates as soon as they are created.
 */
import { HoldPool, type Hold } from '@vip/core/adapter';
import type { ConsulHttp, SessionSpec } from './consul-http.js';

/** A Consul session of this store: `id`, the `ttl` it was created with, and `lost` once Consul said it no longer has it. */
export type Session = Hold;

export class SessionPool {
  readonly #http: ConsulHttp;
  readonly #pool: HoldPool;

  constructor(http: ConsulHttp, spec: (ttl: number) => SessionSpec) {
    this.#http = http;
    this.#pool = new HoldPool(
      {
        create: async (ttl) => ({ id: await http.createSession(spec(ttl)) }),
        renew: (session) => http.renewSession(session.id),
        destroy: (session) => http.destroySession(session.id),
      },
      { name: 'ConsulStore', noun: 'session', attempts: 3 },
    );
  }

  /** A session of this TTL that Consul keeps for at least `ttl` seconds from this call. */
  confirmed(ttl: number): Promise<Session> {
    return this.#pool.confirmed(ttl);
  }

  /**
   * Keep a session of `ttl` created and renewed (every ttl/2) until `signal`
   * aborts, unless it locks keys (`locks`, or a `writeOn`): `ConsulStore.prepare`, so that a
   * follower acquires in one round trip (HoldPool.keepReady).
   */
  keepReady(ttl: number, signal: AbortSignal, locks: (session: Session) => boolean): void {
    this.#pool.keepReady(ttl, signal, locks);
  }

  /** Send a lock transaction on `session`: until it answers, and for good if it does not, `keepReady` leaves it alone (HoldPool.writeOn). */
  writeOn<T>(session: Session, write: () => Promise<T>): Promise<T> {
    return this.#pool.writeOn(session, write);
  }

  /** The live session of this TTL, if one was created (no request; not confirmed). */
  current(ttl: number): Session | undefined {
    return this.#pool.current(ttl);
  }

  /** True if a renew sent after this call found `session` alive; false if it is gone (it is then lost). Rejects when unknown. */
  confirm(session: Session): Promise<boolean> {
    return this.#pool.confirm(session);
  }

  /** The live session of this pool with this ID, if any: whose locks this store owns. */
  own(id: string | undefined): Session | undefined {
    return this.#pool.own(id);
  }

  /** Consul no longer has `session` (renew 404, or a lock refused for an invalid session). */
  lost(session: Session): void {
    this.#pool.lost(session);
  }

  /** Sessions this pool created that Consul had not (as far as we know) dropped. */
  live(): Session[] {
    return this.#pool.live();
  }

  /** Stop creating sessions (and keeping one ready); destroy `sessions` (bounded by `timeoutMs`, best effort). */
  async close(sessions: readonly Session[], timeoutMs: number): Promise<void> {
    this.#pool.close();
    await Promise.allSettled(
      sessions.map(async (session) => {
        this.#pool.lost(session);
        await this.#http.destroySession(session.id, timeoutMs);
      }),
    );
  }
}
