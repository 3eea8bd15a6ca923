/**
 * The few Consul HTTP calls this store makes, typed, over the npm `consul`
 * client (2.x, on top of `papi`): the store's one HTTP layer.
 *
 * Why that client and not Node's `fetch` with an undici `Agent` (decided
 * once, for issue 13, with the pool control it needed in view):
 * - users hand the store a `Consul` client of their own (its token, TLS and
 *   http.Agent settings), a documented input; a fetch layer would have to
 *   refuse it or re-create its settings by guessing;
 * - the control a store needs over its connections is how many requests it
 *   has in flight, and that is a limit above the sockets (RequestLimit),
 *   which holds for any client, a user's own included, where an undici
 *   `Agent`'s cap would hold only for clients the store builds;
 * - Node 20's global fetch does not expose undici's `Agent`, so it would be
 *   one more dependency to pin against Node's own copy, for no behaviour
 *   this file lacks.
 * The cost is the wrappers below, which make up for the client's typings.
 *
 * Why wrappers: the client's typings omit what a lock needs (`index`, `wait`,
 * `consistent` on `kv.get`, the `Session` field of an entry, `ctx` and
 * `timeout` on every call, and the response headers that carry
 * `X-Consul-Index`), and type `transaction.create(options)` with a form the
 * code does not accept (its one-argument form takes the operations array
 * itself). Every request here:
 * - carries a timeout (papi's `timeout`, in ms; it aborts the socket);
 * - can be abandoned through an AbortSignal: papi aborts a request when its
 *   `ctx` EventEmitter emits `cancel`; the listener on the signal is removed
 *   when the request ends, so a long-lived signal collects no listeners;
 * - asks for the response (`ctx.includeResponse`), for status and headers;
 * - waits its turn in the store's RequestLimit (request-limit.ts), except the
 *   watches' blocking queries, which are one per group of keys (watch.ts):
 *   so a store holds at most `maxRequests` + its groups connections to the agent.
 */
import { EventEmitter } from 'node:events';
import type Consul from 'consul';
import { explainTlsError, isTlsError, VipOptionError, VipWrongServerError, type TlsHints } from '@vip/core/adapter';
import { RequestLimit, type Lane } from './request-limit.js';

/** A KV entry as Consul's HTTP API returns it (`Value` already base64-decoded to UTF-8 by the client). */
export interface KvEntry {
  readonly Key: string;
  readonly Value: string | null;
  /** The session that locks the key; absent or empty when nobody holds it. */
  readonly Session?: string;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
  readonly LockIndex: number;
}

/** The KV verbs of `/v1/txn` this store uses (all served by Consul 1.8 and later). */
export type TxnOp =
  | { readonly Verb: 'check-not-exists'; readonly Key: string }
  | { readonly Verb: 'check-session'; readonly Key: string; readonly Session: string }
  | { readonly Verb: 'check-index'; readonly Key: string; readonly Index: number }
  | { readonly Verb: 'lock'; readonly Key: string; readonly Value: string; readonly Session: string }
  | { readonly Verb: 'delete'; readonly Key: string }
  | { readonly Verb: 'delete-cas'; readonly Key: string; readonly Index: number };

/** One failed operation of a rolled-back transaction (HTTP 409). */
export interface TxnError {
  readonly OpIndex: number;
  readonly What: string;
}

export type TxnOutcome =
  /** Applied; `entries` holds what the write and check operations returned, in order (values blanked). */
  | { readonly ok: true; readonly entries: KvEntry[] }
  /** Rolled back: nothing was written. */
  | { readonly ok: false; readonly errors: TxnError[] };

export interface SessionSpec {
  readonly name: string;
  /** Go duration, e.g. "15s". */
  readonly ttl: string;
  /** Go duration, e.g. "0s". A string: the client drops a falsy `lockdelay` (0) and Consul's 15 s default applies. */
  readonly lockDelay: string;
  readonly behavior: 'delete' | 'release';
}

interface Response {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body?: unknown;
}

type Context = EventEmitter & { readonly includeResponse: true };

interface CallOptions {
  ctx: Context;
  timeout: number;
}

/** The client's methods as they behave with `ctx.includeResponse`: [response, body]. */
interface ClientCalls {
  kv: {
    get(options: CallOptions & { key: string; consistent?: boolean; index?: string; wait?: string }): Promise<[Response, KvEntry?]>;
    get(options: CallOptions & { key: string; recurse: true; consistent?: boolean; index?: string; wait?: string }): Promise<[Response, KvEntry[]?]>;
  };
  session: {
    create(
      options: CallOptions & { name: string; ttl: string; lockdelay: string; behavior: string; checks: readonly string[] },
    ): Promise<[Response, { ID: string }]>;
    info(options: CallOptions & { id: string; consistent: boolean }): Promise<[Response, SessionInfo?]>;
    renew(options: CallOptions & { id: string }): Promise<[Response, unknown]>;
    destroy(options: CallOptions & { id: string }): Promise<[Response]>;
  };
  transaction: {
    create(operations: { KV: TxnOp }[], options: CallOptions): Promise<[Response, { Results?: { KV?: KvEntry }[] | null }]>;
  };
}

/** The fields of GET /v1/session/info/:id this store looks at. */
interface SessionInfo {
  readonly ID: string;
  /** The node's health checks the session is bound to (Consul 1.7 and later). */
  readonly NodeChecks?: readonly string[] | null;
  /** The same, as Consul before 1.7 named them (still accepted on create, deprecated). */
  readonly Checks?: readonly string[] | null;
  readonly ServiceChecks?: readonly unknown[] | null;
}

/**
 * The client methods ConsulStore calls, which is what it takes a given
 * client to be. Looking for them rather than `instanceof Consul` lets a
 * client from another copy of the package (a second node_modules, a bundler)
 * be used as given, with its token and TLS, instead of being mistaken for an
 * options object.
 */
export const CLIENT_METHODS = ['kv.get', 'session.create', 'session.info', 'session.renew', 'session.destroy', 'transaction.create'] as const;

/** The methods of CLIENT_METHODS that `value` lacks (every one of them for a value that is no client). */
export function missingClientMethods(value: object): string[] {
  return CLIENT_METHODS.filter((path) => {
    const [group, method] = path.split('.') as [string, string];
    const holder = (value as Record<string, unknown>)[group];
    return typeof holder !== 'object' || holder === null || typeof (holder as Record<string, unknown>)[method] !== 'function';
  });
}

/** papi's errors: a ResponseError carries the response (status, decoded body). */
interface ClientError extends Error {
  readonly response?: Response;
}

export function statusOf(error: unknown): number | undefined {
  return (error as ClientError | undefined)?.response?.statusCode;
}

/**
 * Whether a failed request is worth repeating as it was: the agent is
 * restarting, unreachable, overloaded or slow (5xx, 429, a network error, a
 * timeout). A refusal (4xx: unknown ACL token, permission denied, a bad
 * request) or a TLS handshake the agent or we refused is not: no retry mends
 * it, and it must be reported.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof VipWrongServerError) return false;
  const status = statusOf(error);
  if (status !== undefined) return status >= 500 || status === 429;
  return !isTlsError(error) && !isTlsError((error as { cause?: unknown } | undefined)?.cause);
}

export class ConsulHttp {
  readonly #calls: ClientCalls;
  /** Whether a KV read was ever answered as a Consul agent answers (see readKey). */
  #answeredAsConsul = false;
  readonly #timeoutMs: number;
  readonly #tls: TlsHints | undefined;
  /** Requests in flight at once, blocking queries aside. */
  readonly limit: RequestLimit;

  /**
   * `maxRequests`: requests in flight at once, blocking queries aside.
   * `clientCertificate`: whether HTTPS requests present a client certificate (undefined: not known, or plain HTTP).
   */
  constructor(client: Consul, requestTimeoutMs: number, clientCertificate?: boolean, maxRequests = 16) {
    this.#tls = { clientCertificate, clientCertificateOptions: 'the "cert" and "key" options', caOption: 'the "ca" option' };
    this.#calls = client as unknown as ClientCalls;
    this.#timeoutMs = requestTimeoutMs;
    this.limit = new RequestLimit(maxRequests);
  }

  /** GET /v1/kv/:key, a plain read (`consistent`: verified by the leader). */
  async readKey(key: string, options: { consistent: boolean; signal?: AbortSignal }): Promise<{ entry: KvEntry | undefined; index: number }> {
    const [response, entry] = await this.#call('other', options.signal, this.#timeoutMs, (call) =>
      this.#calls.kv.get({ key, ...call, ...(options.consistent ? { consistent: true } : {}) }),
    ).catch((error: unknown) => {
      throw refusedKey(error, key);
    });
    return { entry: entry ?? undefined, index: this.#consulIndex(response, entry) };
  }

  /**
   * GET /v1/kv/:prefix?recurse: every entry whose key starts with `prefix`.
   * With `index`, a blocking query: Consul answers when the index of the
   * prefix (the largest ModifyIndex under it, deletions included through
   * their tombstones; the KV table's index when nothing is or was under it)
   * passes `index`, or after `waitSeconds` (plus up to 1/16 of it as jitter)
   * with no change. A blocking query holds a connection until it is
   * answered, so it does not wait its turn in the request limit: the watches
   * send one per group of keys (watch.ts), and only ever one at a time.
   */
  async listPrefix(
    prefix: string,
    options: { consistent: boolean; index?: number; waitSeconds?: number; signal?: AbortSignal },
  ): Promise<{ entries: KvEntry[]; index: number }> {
    const blocking = options.index !== undefined && options.index > 0 && options.waitSeconds !== undefined;
    const timeout = blocking ? Math.ceil(options.waitSeconds! * 1000 * (1 + 1 / 16)) + this.#timeoutMs : this.#timeoutMs;
    const [response, entries] = await this.#call(undefined, options.signal, timeout, (call) =>
      this.#calls.kv.get({
        key: prefix,
        recurse: true,
        ...call,
        ...(options.consistent ? { consistent: true } : {}),
        ...(blocking ? { index: String(options.index), wait: `${options.waitSeconds}s` } : {}),
      }),
    ).catch((error: unknown) => {
      throw refusedKey(error, prefix);
    });
    return { entries: Array.isArray(entries) ? entries : [], index: this.#consulIndex(response, entries) };
  }

  /**
   * The X-Consul-Index of a KV read. Every answer of a Consul agent to a KV
   * read carries it, a missing key's 404 included; etcd's HTTP gateway, a web
   * server, do not. Once the address has answered as Consul, a bare answer is
   * a passing fault (a proxy in front of the agent with no backend for a
   * moment), retried. Consul never answers 0 here (agent/consul/kvs_endpoint.go).
   */
  #consulIndex(response: Response, body: unknown): number {
    const header = response.headers['x-consul-index'];
    if (header === undefined) {
      const said = typeof body === 'string' ? ` (${JSON.stringify(String(body).trim().slice(0, 100))})` : '';
      const what = `GET /v1/kv/<key> answered ${response.statusCode}${said} without the X-Consul-Index header every Consul agent sends`;
      if (this.#answeredAsConsul) throw new Error(`${what}; a proxy in front of the agent without a backend? Retrying`);
      throw new VipWrongServerError(
        `this does not look like a Consul agent: ${what}; is the address (and port) that of an etcd server or another service? Consul's HTTP API listens on 8500 by default`,
      );
    }
    this.#answeredAsConsul = true;
    const index = Number(Array.isArray(header) ? header[0] : header);
    return Number.isSafeInteger(index) ? index : 0;
  }

  /** PUT /v1/txn. A rollback (409) resolves `{ ok: false }` with Consul's reasons; other failures reject. */
  async txn(operations: readonly TxnOp[], signal?: AbortSignal): Promise<TxnOutcome> {
    try {
      const [, body] = await this.#call('other', signal, this.#timeoutMs, (call) =>
        this.#calls.transaction.create(
          operations.map((op) => ({ KV: op })),
          call,
        ),
      );
      const entries = (body?.Results ?? []).map((result) => result.KV).filter((entry): entry is KvEntry => entry !== undefined);
      return { ok: true, entries };
    } catch (error) {
      const status = statusOf(error);
      if (status === 409) {
        const errors = ((error as ClientError).response?.body as { Errors?: TxnError[] | null } | undefined)?.Errors ?? [];
        return { ok: false, errors };
      }
      if (status === 413) {
        throw new RangeError(
          `Consul refused the transaction as too large (${describeBody(error)}); keep id and value within limits.maxValueBytes`,
          { cause: error },
        );
      }
      throw withBody(error);
    }
  }

  /**
   * PUT /v1/session/create: the session's ID. The session is bound to its TTL
   * alone: `Checks: []`. Without it Consul binds a session to the agent node's
   * `serfHealth` check, and invalidates it the moment that check goes critical
   * (the agent restarting, or out of touch with the servers): with Behavior
   * "delete" the key goes at once and, with a lock delay shorter than the
   * ttl, another candidate takes it while the old leader, unable to reach its agent, still leads
   * until its local deadline. Only the TTL gives the guarantee a leader's
   * deadline rests on: not invalidated before `ttl` after the last renew.
   *
   * Why `Checks: []` and not `NodeChecks: []`: the npm client forwards
   * `checks` (an empty array is truthy) but drops `nodechecks`; and Consul
   * reads an empty `Checks` as "no node checks at all" (agent/session_endpoint.go,
   * fixupEmptySessionChecks, since 1.7, the compatibility path for clients
   * written before NodeChecks existed; before 1.7, FixupChecks did the same).
   * Consul then answers NodeChecks: [] for it. The session is read back and
   * refused if it lists any check, so a client or agent that does otherwise
   * (another copy of the client given to the store) fails loudly instead of
   * running with sessions that a failure detector can invalidate.
   *
   * What can still invalidate such a session besides its TTL: its node leaving
   * the catalog (`consul leave`, a client agent stopped with its default
   * leave_on_terminate, `consul force-leave`, PUT /v1/catalog/deregister) and
   * an explicit destroy. See ConsulStoreOptions.lockDelay for what that means.
   */
  async createSession(spec: SessionSpec): Promise<string> {
    const [, body] = await this.#call('session', undefined, this.#timeoutMs, (call) =>
      this.#calls.session.create({ ...call, name: spec.name, ttl: spec.ttl, lockdelay: spec.lockDelay, behavior: spec.behavior, checks: [] }),
    ).catch((error: unknown) => {
      // A session is bound to the agent's node, which the agent registers in
      // the catalog by its first sync after it starts (or rejoins).
      if (/Missing node registration/i.test(describeBody(error))) {
        throw new Error(
          'Consul could not create a session: the agent\'s node is not in the catalog yet ("Missing node registration"); ' +
            'an agent registers itself shortly after it starts or rejoins, so this passes on a retry',
          { cause: error },
        );
      }
      throw withBody(error);
    });
    if (typeof body?.ID !== 'string' || body.ID === '') throw new Error('Consul answered session/create without an ID');
    await this.#checkUnbound(body.ID);
    return body.ID;
  }

  /** Refuse (and destroy) a session that Consul bound to any health check. */
  async #checkUnbound(id: string): Promise<void> {
    const [, info] = await this.#call('session', undefined, this.#timeoutMs, (call) => this.#calls.session.info({ ...call, id, consistent: true })).catch(
      (error: unknown) => {
        void this.destroySession(id).catch(() => {});
        throw withBody(error);
      },
    );
    // Gone already: nothing to refuse; its first renew or lock finds out.
    if (!info) return;
    const checks = [...(info.NodeChecks ?? []), ...(info.Checks ?? []), ...(info.ServiceChecks ?? []).map((check) => JSON.stringify(check))];
    if (checks.length === 0) return;
    await this.destroySession(id).catch(() => {});
    throw new Error(
      `Consul created a session bound to health checks (${checks.join(', ')}) although the store asked for none (Checks: []); ` +
        'a failing check would invalidate it before its TTL and let a second leader in. The client given to ConsulStore must forward ' +
        '"checks" to PUT /v1/session/create as the npm "consul" client does',
    );
  }

  /** PUT /v1/session/renew/:id. False when Consul no longer has the session (404: invalidated or destroyed). */
  async renewSession(id: string): Promise<boolean> {
    try {
      await this.#call('session', undefined, this.#timeoutMs, (call) => this.#calls.session.renew({ ...call, id }));
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw withBody(error);
    }
  }

  /** PUT /v1/session/destroy/:id (destroying an unknown session succeeds). */
  async destroySession(id: string, timeoutMs = this.#timeoutMs): Promise<void> {
    // Bounded from this call, the wait for a turn in the request limit included: close() promises a bound.
    const signal = AbortSignal.timeout(timeoutMs);
    await this.#call('session', signal, timeoutMs, (call) => this.#calls.session.destroy({ ...call, id })).catch((error: unknown) => {
      throw withBody(error);
    });
  }

  /** One request: in `lane` of the request limit (undefined: a blocking query, outside it), abandoned when `signal` aborts. */
  async #call<T>(lane: Lane | undefined, signal: AbortSignal | undefined, timeout: number, send: (call: CallOptions) => Promise<T>): Promise<T> {
    if (lane === undefined) return this.#send(signal, timeout, send);
    return this.limit.run(lane, signal, () => this.#send(signal, timeout, send));
  }

  async #send<T>(signal: AbortSignal | undefined, timeout: number, send: (call: CallOptions) => Promise<T>): Promise<T> {
    signal?.throwIfAborted();
    const ctx: Context = Object.assign(new EventEmitter(), { includeResponse: true as const });
    const cancel = (): void => {
      ctx.emit('cancel');
    };
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      return await send({ ctx, timeout });
    } catch (error) {
      // Node's text for a refused handshake names no cause a user can act on.
      if (this.#tls && isTlsError(error)) {
        throw new Error(`HTTPS to Consul failed: ${explainTlsError(error as NodeJS.ErrnoException, this.#tls)}`, { cause: error });
      }
      throw error;
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }
}

/**
 * The agent refuses the URL itself: a key with a character Go does not
 * consider printable (keys.ts). Refused like a bad argument, never retried.
 */
function refusedKey(error: unknown, key: string): unknown {
  if (statusOf(error) !== 400) return withBody(error);
  return new VipOptionError(
    'ConsulStore',
    'key',
    `a key this Consul agent serves: GET /v1/kv/<key> answered 400 Bad Request (${describeBody(error)}); agents refuse characters their Go build does not consider printable`,
    key,
  );
}

/** papi's message for a long or JSON error body is only the status text; add what Consul said. */
function withBody(error: unknown): unknown {
  const response = (error as ClientError | undefined)?.response;
  if (!(error instanceof Error) || !response) return error;
  const said = describeBody(error);
  if (said && !error.message.includes(said)) error.message = `${error.message} (HTTP ${response.statusCode}: ${said})`;
  return error;
}

function describeBody(error: unknown): string {
  const body = (error as ClientError | undefined)?.response?.body;
  if (body === undefined || body === null) return '';
  const text = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : JSON.stringify(body);
  return text.length > 300 ? `${text.slice(0, 297)}...` : text.trim();
}
