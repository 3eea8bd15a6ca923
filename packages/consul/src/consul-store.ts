/**
 * `LockStore` over Consul: sessions, KV locks in one transaction, blocking queries.
 *
 * - A hold is a KV key locked by a session. One session per distinct TTL per
 *   store, shared by every key it holds and renewed by the store: refreshing
 *   1,000 keys costs one renew. Sessions use Behavior "delete", so when one is
 *   invalidated (a crashed process stops renewing) Consul deletes its keys.
 * - The fencing token is the key's CreateIndex, a raft index that only grows:
 *   every term creates the key anew (release and invalidation delete it). Not
 *   LockIndex, which restarts at 1 when a key is created again.
 * - A swap is one `/v1/txn` whose checks keep two leaders apart.
 *
 * Consul's rules, from its docs and sources (agent/consul/session_ttl.go,
 * agent/consul/state/kvs.go, hashicorp/consul#1006):
 * - A session TTL is between 10 s and 86400 s. The server waits up to 2 × TTL
 *   before it invalidates a session (SessionTTLMultiplier): crash failover
 *   takes between ttl and 2 × ttl. Renewing an invalidated session answers 404.
 * - LockDelay (default 15 s) keeps a key from being locked for that long
 *   after its session is invalidated. A lock refused by lock-delay looks like
 *   any refused lock. We create sessions with LockDelay "0s" by default: the
 *   candidate's local deadline already keeps an old leader from overlapping
 *   with a new one, and 15 s more on every crash failover buys nothing.
 *   (The npm client drops `lockdelay: 0` as falsy; the string "0s" gets through.)
 * - Blocking queries (`?index=&wait=`) may return without a change, and the
 *   index may go backwards (agent restart, snapshot restore): reset it to 0
 *   then; never send 0 after the first read. Reads that decide ownership are
 *   `?consistent`: a partitioned old Consul leader can serve stale reads (hashicorp/consul#54).
 */
import { EventEmitter } from 'node:events';
import { coalesce, type Claim, type Holder, type LockStore, type StoreLimits, type SwapResult } from '@vip/core';
import Consul from 'consul';
import { parseConsulConnectionString } from './connection.js';

export interface ConsulConnectionOptions {
  host?: string;
  port?: number;
  secure?: boolean;
  /** ACL token (sent as X-Consul-Token). */
  token?: string;
  /** TLS: CA certificate(s) to trust, and a client certificate and key. */
  ca?: string | Buffer | (string | Buffer)[];
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface ConsulStoreOptions {
  /**
   * Consul's lock delay for this store's sessions, in seconds. Default 0:
   * failover as soon as Consul invalidates a dead leader's session. Consul's own
   * default is 15.
   */
  lockDelay?: number;
  /** Session name shown in Consul's UI. Default "vip". */
  sessionName?: string;
  /** Seconds a blocking query waits for a change before asking again. Default 30. */
  watchWait?: number;
}

/** The bits of Consul's KV entry we read. */
interface KvEntry {
  Key: string;
  Value: string | null;
  Session?: string;
  CreateIndex: number;
  ModifyIndex: number;
}

/** The calls we make, typed here: the npm client's typings omit index, wait, consistent and Session. */
interface ConsulApi {
  kv: { get(options: object): Promise<unknown> };
  session: {
    create(options: object): Promise<{ ID: string }>;
    renew(options: object): Promise<unknown>;
    destroy(options: object): Promise<unknown>;
  };
  transaction: { create(operations: object[], options?: object): Promise<{ Results?: { KV: KvEntry }[] | null }> };
}

interface ResponseError extends Error {
  response?: { statusCode?: number; body?: unknown; headers?: Record<string, string | undefined> };
}

interface Session {
  readonly ttl: number;
  readonly id: string;
  lost: boolean;
  /** A renew shared by every caller that arrives before it is sent (see `coalesce`). */
  confirm: () => Promise<boolean>;
}

interface Hold {
  readonly id: string;
  readonly token: bigint;
  readonly session: Session;
  /** ModifyIndex of our last write: the check-index guard of our next one. */
  modifyIndex: number;
}

const statusOf = (error: unknown): number | undefined => (error as ResponseError).response?.statusCode;

/** Consul keys have no leading slash: `/jobs/report` and `jobs/report` name the same key. */
function consulKey(key: string): string {
  return key.replace(/^\/+/, '');
}

function encode(claim: Claim): string {
  return JSON.stringify({ v: 1, id: claim.id, value: claim.value });
}

/** A key without a session is not held (a leftover): as far as an election goes, it is free. */
function decode(entry: KvEntry | undefined): Holder | null {
  if (!entry || !entry.Session) return null;
  const token = BigInt(entry.CreateIndex);
  const raw = entry.Value ?? '';
  try {
    const parsed = JSON.parse(raw) as { id?: unknown; value?: unknown };
    if (typeof parsed.id === 'string' && typeof parsed.value === 'string') return { id: parsed.id, value: parsed.value, token };
  } catch {
    // Locked by something other than vip: fall through.
  }
  return { id: '(not a vip holder)', value: raw, token };
}

function check(name: string, ok: boolean, expected: string, got: unknown): void {
  if (!ok) throw new TypeError(`ConsulStore: argument "${name}" must be ${expected} (got ${typeof got === 'string' ? JSON.stringify(got) : String(got)})`);
}

/** An EventEmitter the npm client aborts a request on (`cancel`), and that asks it for the response headers. */
function requestContext(signal?: AbortSignal): EventEmitter & { includeResponse: true } {
  const ctx = Object.assign(new EventEmitter(), { includeResponse: true as const });
  if (signal) {
    if (signal.aborted) queueMicrotask(() => ctx.emit('cancel'));
    else signal.addEventListener('abort', () => ctx.emit('cancel'), { once: true });
  }
  return ctx;
}

export class ConsulStore implements LockStore {
  /** Consul's session TTL range, and its 512 KiB KV value limit less room for the encoding. */
  readonly limits: StoreLimits = { minTtl: 10, maxTtl: 86400, maxValueBytes: 64 * 1024 + 1024 };
  readonly client: Consul;
  readonly #api: ConsulApi;
  readonly #options: Required<ConsulStoreOptions>;
  readonly #sessions = new Map<number, Promise<Session>>();
  readonly #holds = new Map<string, Hold>();
  readonly #closers = new Set<() => void>();
  #closed = false;

  constructor(connection: string | ConsulConnectionOptions | Consul, options: ConsulStoreOptions = {}) {
    if (connection instanceof Consul) {
      this.client = connection;
    } else if (typeof connection === 'string') {
      this.client = new Consul(parseConsulConnectionString(connection));
    } else if (connection && typeof connection === 'object') {
      const { token, ...rest } = connection;
      this.client = new Consul({ ...rest, ...(token ? { defaults: { token } } : {}) } as ConstructorParameters<typeof Consul>[0]);
    } else {
      throw new TypeError(
        `ConsulStore: expected a connection string like "consul://127.0.0.1:8500", an options object or a Consul client (got ${String(connection)})`,
      );
    }
    this.#api = this.client as unknown as ConsulApi;
    const lockDelay = options.lockDelay ?? 0;
    check('options.lockDelay', typeof lockDelay === 'number' && Number.isFinite(lockDelay) && lockDelay >= 0 && lockDelay <= 60, 'a number of seconds from 0 to 60', lockDelay);
    const watchWait = options.watchWait ?? 30;
    check('options.watchWait', typeof watchWait === 'number' && watchWait >= 1 && watchWait <= 600, 'a number of seconds from 1 to 600', watchWait);
    this.#options = { lockDelay, sessionName: options.sessionName ?? 'vip', watchWait };
  }

  async compareAndSwap(key: string, expected: Holder | null, next: Claim | null, ttl: number, signal?: AbortSignal): Promise<SwapResult> {
    this.#checkArgs(key, ttl);
    check('next', next === null || (typeof next?.id === 'string' && typeof next.value === 'string'), 'null or { id, value } strings', next);
    const name = consulKey(key);
    if (expected === null) {
      if (next === null) return { ok: false, holder: decode(await this.#read(name, signal)) };
      const session = await this.#confirmedSession(ttl, signal);
      // Guard: the key does not exist, so the lock creates it with a new CreateIndex.
      let result = await this.#txn([{ KV: { Verb: 'check-not-exists', Key: name } }, this.#lock(name, next, session)], signal);
      if (!result.ok) {
        const current = await this.#read(name, signal);
        if (current && !current.Session) {
          // A leftover key nobody holds: delete and create it anew in one txn,
          // so the new term gets a new CreateIndex, never the leftover's.
          result = await this.#txn(
            [{ KV: { Verb: 'delete-cas', Key: name, Index: current.ModifyIndex } }, this.#lock(name, next, session)],
            signal,
          );
        }
        if (!result.ok) {
          // Held by someone, or (key absent, lock refused) a lock-delay in effect: both are "not now".
          return { ok: false, holder: decode(current ?? undefined) };
        }
      }
      const entry = result.entry!;
      const token = BigInt(entry.CreateIndex);
      this.#holds.set(key, { id: next.id, token, session, modifyIndex: entry.ModifyIndex });
      return { ok: true, holder: { id: next.id, value: next.value, token } };
    }

    const hold = this.#holds.get(key);
    if (!hold || hold.token !== expected.token || hold.id !== expected.id || hold.session.lost) {
      return { ok: false, holder: decode(await this.#read(name, signal)) };
    }
    if (next !== null && !(await this.#renew(hold.session, signal))) {
      this.#forget(hold.session);
      return { ok: false, holder: decode(await this.#read(name, signal)) };
    }
    // Guard: our session still holds the key, unchanged since our last write of this term.
    const guard = [
      { KV: { Verb: 'check-session', Key: name, Session: hold.session.id } },
      { KV: { Verb: 'check-index', Key: name, Index: hold.modifyIndex } },
    ];
    const write = next === null ? { KV: { Verb: 'delete', Key: name } } : this.#lock(name, next, hold.session);
    const result = await this.#txn([...guard, write], signal);
    if (!result.ok) {
      this.#holds.delete(key);
      return { ok: false, holder: decode(await this.#read(name, signal)) };
    }
    if (next === null) {
      this.#holds.delete(key);
      return { ok: true, holder: null };
    }
    this.#holds.set(key, { id: next.id, token: hold.token, session: hold.session, modifyIndex: result.entry!.ModifyIndex });
    return { ok: true, holder: { id: next.id, value: next.value, token: hold.token } };
  }

  async refresh(key: string, held: Holder, ttl: number, signal?: AbortSignal): Promise<Holder | null> {
    this.#checkArgs(key, ttl);
    const hold = this.#holds.get(key);
    if (!hold || hold.token !== held.token || hold.id !== held.id || hold.session.lost) return null;
    if (await this.#renew(hold.session, signal)) return held;
    this.#forget(hold.session);
    return null;
  }

  async *watch(key: string, signal: AbortSignal): AsyncIterable<Holder | null> {
    this.#checkArgs(key, 10);
    const name = consulKey(key);
    const closed = new AbortController();
    const stop = (): void => closed.abort();
    this.#closers.add(stop);
    const both = AbortSignal.any([signal, closed.signal]);
    let index = 0;
    let last: Holder | null | undefined;
    let failures = 0;
    try {
      while (!both.aborted) {
        let entry: KvEntry | undefined;
        let nextIndex: number;
        try {
          const response = await this.#blockingRead(name, index, both);
          entry = response.entry;
          nextIndex = response.index;
          failures = 0;
        } catch (error) {
          if (both.aborted) break;
          // The agent is unreachable or restarting: ask again soon, from scratch.
          await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 100 * 2 ** failures++)));
          index = 0;
          void error;
          continue;
        }
        // Consul's index rules: a smaller index means the agent's state was reset; 0 is never valid to wait on.
        index = nextIndex < index ? 0 : Math.max(nextIndex, 1);
        const holder = decode(entry);
        const same =
          last !== undefined &&
          (last === null ? holder === null : holder !== null && holder.token === last.token && holder.id === last.id && holder.value === last.value);
        if (same) continue;
        // Never go back to an older term than one already yielded (unless the agent lost its state).
        if (last && holder && holder.token < last.token && nextIndex >= index) continue;
        last = holder;
        yield holder;
      }
      if (closed.signal.aborted && !signal.aborted) throw new Error('ConsulStore: the store was closed');
    } finally {
      this.#closers.delete(stop);
    }
  }

  /** Ends watches and destroys this store's sessions (Behavior "delete" frees their keys at once). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const stop of [...this.#closers]) stop();
    const sessions = await Promise.allSettled([...this.#sessions.values()]);
    await Promise.allSettled(
      sessions.map((result) =>
        result.status === 'fulfilled' && !result.value.lost ? this.#api.session.destroy({ id: result.value.id, timeout: 2000 }) : undefined,
      ),
    );
    this.#sessions.clear();
    this.#holds.clear();
  }

  // ---- sessions ----------------------------------------------------------------

  async #confirmedSession(ttl: number, signal?: AbortSignal): Promise<Session> {
    const existing = this.#sessions.get(ttl);
    if (existing) {
      const session = await existing.catch(() => undefined);
      if (session && !session.lost && (await this.#renew(session, signal))) return session;
      if (session) this.#forget(session);
      if (this.#sessions.get(ttl) === existing) this.#sessions.delete(ttl);
    }
    let creating = this.#sessions.get(ttl);
    if (!creating) {
      creating = this.#api.session
        .create({
          name: this.#options.sessionName,
          ttl: `${ttl}s`,
          // A string: the npm client drops a numeric 0 as falsy and Consul's 15 s default applies.
          lockdelay: `${this.#options.lockDelay}s`,
          behavior: 'delete',
          timeout: 10_000,
        })
        .then((created) => this.#session(ttl, created.ID));
      this.#sessions.set(ttl, creating);
      creating.catch(() => {
        if (this.#sessions.get(ttl) === creating) this.#sessions.delete(ttl);
      });
      return creating; // created just now: alive for its TTL from now
    }
    const session = await creating;
    if (await this.#renew(session, signal)) return session;
    this.#forget(session);
    throw new Error(`ConsulStore: session ${session.id} was invalidated as soon as it was created`);
  }

  /** One renew sent after every caller joined: true if alive, false if Consul says it is gone (404). */
  // The renew is shared by several callers: one caller's abort signal must not cancel the others' renew.
  #renew(session: Session, _signal?: AbortSignal): Promise<boolean> {
    return session.lost ? Promise.resolve(false) : session.confirm();
  }

  #session(ttl: number, id: string): Session {
    const session: Session = { ttl, id, lost: false, confirm: () => Promise.resolve(false) };
    session.confirm = coalesce(async () => {
      try {
        await this.#api.session.renew({ id, timeout: 10_000 });
        return true;
      } catch (error) {
        if (statusOf(error) === 404) {
          session.lost = true;
          return false;
        }
        throw error;
      }
    });
    return session;
  }

  #forget(session: Session): void {
    session.lost = true;
    for (const [key, hold] of this.#holds) if (hold.session === session) this.#holds.delete(key);
    const current = this.#sessions.get(session.ttl);
    current?.then(
      (state) => {
        if (state === session && this.#sessions.get(session.ttl) === current) this.#sessions.delete(session.ttl);
      },
      () => {},
    );
  }

  // ---- KV ------------------------------------------------------------------------

  #lock(name: string, claim: Claim, session: Session): object {
    return { KV: { Verb: 'lock', Key: name, Value: Buffer.from(encode(claim)).toString('base64'), Session: session.id } };
  }

  /** Run a txn: `ok` false when Consul rolled it back (a check failed, or the lock was refused). */
  async #txn(operations: object[], signal?: AbortSignal): Promise<{ ok: boolean; entry?: KvEntry }> {
    try {
      const response = await this.#api.transaction.create(operations, { ctx: requestContext(signal), timeout: 10_000 });
      const body = (Array.isArray(response) ? response[1] : response) as { Results?: { KV: KvEntry }[] | null };
      const results = body.Results ?? [];
      return { ok: true, entry: results[results.length - 1]?.KV };
    } catch (error) {
      // 409: the transaction was rolled back; its Errors say which operation failed.
      if (statusOf(error) === 409) return { ok: false };
      throw error;
    }
  }

  async #read(name: string, signal?: AbortSignal): Promise<KvEntry | undefined> {
    return (await this.#blockingRead(name, 0, signal)).entry;
  }

  /** A consistent read of one key; with `index` > 0, a blocking query that returns on change or after `watchWait`. */
  async #blockingRead(name: string, index: number, signal?: AbortSignal): Promise<{ entry: KvEntry | undefined; index: number }> {
    const wait = this.#options.watchWait;
    const options = {
      key: name,
      consistent: true,
      ctx: requestContext(signal),
      ...(index > 0 ? { index: String(index), wait: `${wait}s`, timeout: (wait + 10) * 1000 } : { timeout: 10_000 }),
    };
    const [response, body] = (await this.#api.kv.get(options)) as [{ headers: Record<string, string | undefined> }, KvEntry | KvEntry[] | undefined];
    const entry = Array.isArray(body) ? body[0] : body;
    return { entry: entry ?? undefined, index: Number(response.headers['x-consul-index'] ?? 0) };
  }

  #checkArgs(key: string, ttl: number): void {
    if (this.#closed) throw new Error('ConsulStore: the store was closed');
    check('key', typeof key === 'string' && consulKey(key).length > 0, 'a non-empty string (leading slashes are dropped for Consul)', key);
    check('ttl', typeof ttl === 'number' && Number.isFinite(ttl) && ttl > 0, 'a finite number of seconds greater than 0', ttl);
  }
}
