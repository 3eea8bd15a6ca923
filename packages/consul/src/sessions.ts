/**
 * The Consul sessions of one store: one per distinct TTL, shared by every key
 * the store holds with that TTL, renewed only when a caller asks.
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
 * Nothing here renews on a timer: a session lives exactly as long as some
 * caller keeps confirming it, so a process that stops refreshing stops
 * keeping its keys.
 */
import { coalesce } from '@vip/core';
import type { ConsulHttp, SessionSpec } from './consul-http.js';

export interface Session {
  readonly id: string;
  readonly ttl: number;
  /** Consul said it no longer has this session. */
  readonly lost: boolean;
  /** True if a renew sent after this call found the session alive; false if it is gone. Rejects when unknown. */
  confirm(): Promise<boolean>;
}

class SharedSession implements Session {
  lost = false;
  readonly confirm: () => Promise<boolean>;

  constructor(
    readonly id: string,
    readonly ttl: number,
    http: ConsulHttp,
  ) {
    const renew = coalesce(() => http.renewSession(id));
    this.confirm = async () => {
      if (this.lost) return false;
      const alive = await renew();
      if (!alive) this.lost = true;
      return alive;
    };
  }
}

export class SessionPool {
  readonly #http: ConsulHttp;
  readonly #spec: (ttl: number) => SessionSpec;
  /** The session in use for each TTL, or its creation in flight. */
  readonly #current = new Map<number, Promise<SharedSession>>();
  /** Every session this pool created and has not seen lost or destroyed. */
  readonly #live = new Map<string, SharedSession>();
  #closed = false;

  constructor(http: ConsulHttp, spec: (ttl: number) => SessionSpec) {
    this.#http = http;
    this.#spec = spec;
  }

  /** A session of this TTL that Consul keeps for at least `ttl` seconds from this call. */
  async confirmed(ttl: number): Promise<Session> {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.#closed) throw new Error('ConsulStore: the store was closed');
      const pending = this.#current.get(ttl);
      if (pending === undefined) return this.#create(ttl); // created by a request sent after this call began
      // Another caller's session, or one being created by a request that may
      // have been sent before this call began: confirm it with a renew of our own.
      const session = await pending.catch(() => undefined);
      if (session && (await session.confirm())) return session;
      if (session) this.lost(session);
      if (this.#current.get(ttl) === pending) this.#current.delete(ttl);
    }
    throw new Error(`ConsulStore: could not get a live session with TTL ${ttl}s: Consul invalidated each one as soon as it was created`);
  }

  /** The live session of this pool with this ID, if any: whose locks this store owns. */
  own(id: string | undefined): Session | undefined {
    return id ? this.#live.get(id) : undefined;
  }

  /** Consul no longer has `session` (renew 404, or a lock refused for an invalid session). */
  lost(session: Session): void {
    const shared = this.#live.get(session.id);
    if (shared) shared.lost = true;
    this.#live.delete(session.id);
    const pending = this.#current.get(session.ttl);
    void pending?.then(
      (current) => {
        if (current === shared && this.#current.get(session.ttl) === pending) this.#current.delete(session.ttl);
      },
      () => {},
    );
  }

  /** Sessions this pool created that Consul had not (as far as we know) dropped. */
  live(): Session[] {
    return [...this.#live.values()];
  }

  /** Stop creating sessions; destroy `sessions` (bounded by `timeoutMs`, best effort). */
  async close(sessions: readonly Session[], timeoutMs: number): Promise<void> {
    this.#closed = true;
    this.#current.clear();
    await Promise.allSettled(
      sessions.map(async (session) => {
        this.#live.delete(session.id);
        await this.#http.destroySession(session.id, timeoutMs);
      }),
    );
  }

  #create(ttl: number): Promise<SharedSession> {
    const creating = this.#http.createSession(this.#spec(ttl)).then((id) => {
      const session = new SharedSession(id, ttl, this.#http);
      if (this.#closed) {
        // Created while the store closed: it holds nothing, so it goes at once.
        session.lost = true;
        void this.#http.destroySession(id).catch(() => {});
        throw new Error('ConsulStore: the store was closed');
      }
      this.#live.set(id, session);
      return session;
    });
    this.#current.set(ttl, creating);
    creating.catch(() => {
      if (this.#current.get(ttl) === creating) this.#current.delete(ttl);
    });
    return creating;
  }
}
