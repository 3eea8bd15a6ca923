/**
 * `LockStore` over Consul: a hold is a KV key locked by a session, a swap is
 * one guarded `/v1/txn`, a watch is a share of a blocking query. How each contract
 * promise is kept:
 *
 * 1. Mutual exclusion: acquiring is one txn `[check-not-exists key, lock key]`;
 *    only one contender's txn can find the key absent, and `lock` itself fails
 *    on a key another session holds. Replacing or releasing a term is one txn
 *    guarded by `check-session key == ours` and `check-index key == the
 *    ModifyIndex we last wrote or read`.
 * 2. Server-side expiry: the key is locked by a session with a TTL and no
 *    health checks (consul-http.ts, createSession). A process that stops
 *    refreshing stops renewing the session; Consul invalidates it between ttl
 *    and 2 × ttl later (SessionTTLMultiplier = 2) and, with Behavior "delete",
 *    deletes its keys. Crash failover therefore takes up to 2 × ttl (plus
 *    LockDelay, 0 by default).
 * 3. A confirmed hold lasts at least `ttl` from the call: every confirmation
 *    (refresh, acquire, rewrite) rests on a session renew or create *sent after
 *    the call began* (sessions.ts), shared by concurrent callers. Consul
 *    keeps that promise on the TTL path only: a session invalidated early
 *    (below) frees the key at once, and only a LockDelay of at least ttl then
 *    keeps others from locking it within ttl of the confirmation.
 * 4. Ownership: a store only touches keys locked by one of its own sessions
 *    (`check-session`), so another process cannot replace or release them,
 *    even with the same id.
 * 5. Fencing tokens: the token is the key's CreateIndex, a raft index, which
 *    only grows. Every term creates the key anew: release and invalidation
 *    delete it, and an acquisition never locks a key that exists (a leftover
 *    unlocked key is deleted and created again in the same txn). Not
 *    LockIndex, which starts again at 1 when a key is created again.
 *
 * What invalidates a session, and so frees its keys:
 * - its TTL running out (ttl to 2 × ttl after the last renew): the old leader
 *   has passed its local deadline by then, since that deadline is less than
 *   ttl after a renew it sent;
 * - its node leaving the catalog: `consul leave`, a client agent stopped with
 *   its default leave_on_terminate (a restart of the agent included), `consul
 *   force-leave`, PUT /v1/catalog/deregister. At once, whatever the TTL;
 * - a destroy: close() destroys only sessions that hold no key; an operator
 *   or another process with session:write can destroy any.
 * No health check can: sessions are created with none (without `Checks: []`
 * Consul binds them to the node's serfHealth, and a failure detector's
 * verdict would free the key while its leader, cut off from its agent, still
 * leads).
 *
 * LockDelay: Consul refuses, for LockDelay after a session is invalidated
 * (any of the above; not after a release or a delete), any lock on the keys
 * that session held. It is what keeps the two cases other than the TTL safe:
 * the old leader, which may not be able to reach its agent, may lead until
 * its local deadline, less than ttl after its last confirmed refresh, which
 * came before the invalidation. So `lockDelay >= ttl` means that no second
 * leader can start before the first one's deadline, whatever invalidated the
 * session; and a smaller LockDelay leaves that window open, on node
 * deregistration or destroy, for up to ttl - LockDelay. vip's default is
 * 'ttl' (the session's TTL, at most Consul's 60 s cap): a client agent
 * restarted on the leader's node (leave_on_terminate, the client default) is
 * routine, and "never two leaders" must hold through it. It costs ttl more
 * on every crash failover, where the TTL path alone would be safe; users who
 * never let an agent leave under a running leader may set `lockDelay: 0` for
 * the fastest failover. README "What you must know" says the same.
 *
 * What a store holds at the agent: an agent closes a client address's
 * connections past `limits.http_max_conns_per_client` (200 by default), so
 * the store never opens one per election. Its watches share one blocking
 * query per directory of keys (watch.ts), and its other requests are at most
 * `maxRequests` in flight (request-limit.ts, session calls first): at most
 * `maxRequests` + one connection per directory, whatever the number of
 * elections.
 *
 * Through `?acquire=` a lock-delay refusal is a plain `false`, like a held key
 * (hashicorp/consul#1006); through `/v1/txn` Consul says so ("failed to lock
 * key … due to lock delay", agent/consul/txn_endpoint.go, preCheck), and
 * `compareAndSwap` answers `{ ok: false, holder: null }`: the key is free but
 * not yet lockable, and the candidate retries with backoff rather than at once.
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
  type Claim,
  type Holder,
  type LockStore,
  type StoreLimits,
  type SwapResult,
} from '@vip/core/adapter';
import Consul from 'consul';
import { MAX_VALUE_BYTES, encodeHolder } from './codec.js';
import { consulClientOptions, type ConsulConnectionOptions } from './connection.js';
import { CLIENT_METHODS, ConsulHttp, missingClientMethods, type KvEntry, type TxnError, type TxnOp } from './consul-http.js';
import { consulKey, consulKeyRule } from './keys.js';
import { SessionPool, type Session } from './sessions.js';
import { holderOf, WatchHub } from './watch.js';

export interface ConsulStoreOptions {
  /**
   * Seconds Consul refuses to lock a key after the session holding it was
   * invalidated: 0 to 60 (Consul's cap), or 'ttl' for the TTL of the session
   * (one session per TTL), capped at 60. Default 'ttl'.
   *
   * 'ttl' (or any value >= the ttl) keeps a second leader out until the old
   * one's local deadline whatever invalidated the session, and adds its
   * length to every crash failover. 0 gives the fastest crash failover, and
   * is safe when the session is invalidated by its TTL (every crash, pause or
   * partition): the old leader has stopped at its local deadline by then. It
   * is not when the session is invalidated early, by its node leaving the
   * catalog (`consul leave`, a client agent stopped or restarted with
   * leave_on_terminate, which client agents default to) or by a destroy from
   * outside, while its leader runs: another candidate can then lead up to
   * ttl - lockDelay before the old one's local deadline. Consul's own default is 15.
   */
  lockDelay?: number | 'ttl';
  /**
   * What Consul does with the keys of an invalidated session. Default
   * "delete": the key goes, and the next term creates it anew (a new token).
   * "release" leaves the key unlocked; the next acquisition then deletes and
   * recreates it in one txn, so tokens still grow, but the stale value stays
   * visible in Consul until then.
   */
  behavior?: 'delete' | 'release';
  /** Session name shown in Consul's UI and `consul operator` output. Default "vip". */
  sessionName?: string;
  /** Seconds a watch's blocking query waits for a change before asking again, 1 to 600. Default 30. */
  watchWait?: number;
  /**
   * Seconds any single request may take before it is abandoned, its outcome
   * unknown. Default 10. Candidates usually give up sooner through their own
   * timeouts; this bounds what is left behind.
   */
  requestTimeout?: number;
  /**
   * The shortest session TTL the Consul servers accept, in seconds: their
   * `session_ttl_min` setting, 10 s unless an operator lowered it. Default 10.
   * Set it only to match servers configured with a lower `session_ttl_min`
   * (at least 1 s); a TTL below the servers' real minimum is refused by Consul at
   * the first acquire.
   */
  minTtl?: number;
  /**
   * Requests this store has in flight at once, 1 to 1024; the rest wait their
   * turn (session renewals first). Default 16. With its watches' blocking
   * queries (one per directory of election keys, watch.ts) this bounds the
   * connections the store holds to the agent, which closes a client's
   * connections past its `limits.http_max_conns_per_client` (200 by default).
   */
  maxRequests?: number;
}

/**
 * What `new ConsulStore(x)` accepts. A client is recognised by the methods
 * the store calls (CLIENT_METHODS), so a `Consul` from another copy of the
 * package works too.
 */
export type ConsulConnectionInput = string | ConsulConnectionOptions | Consul;

interface Hold {
  readonly id: string;
  readonly token: bigint;
  readonly session: Session;
  /** ModifyIndex of the key as we last wrote or read it: the `check-index` guard of our next write. */
  modifyIndex: number;
}

/** Why a txn was rolled back, from Consul's own error texts (agent/consul/state/txn.go, kvs.go; txn_endpoint.go). */
type Refusal = 'guard' | 'lock-delay' | 'session-gone';

const WHERE = 'ConsulStore';
/** Consul's longest session TTL (structs.SessionTTLMax). */
const MAX_TTL = 86400;
/** Consul's longest lock delay (structs.MaxLockDelay): longer ones are cut to it. */
const MAX_LOCK_DELAY = 60;
/** Every key of `ConsulStoreOptions` (a record, so the compiler notices a key missing here); any other is refused. */
const STORE_OPTIONS = Object.keys({
  lockDelay: true,
  behavior: true,
  sessionName: true,
  watchWait: true,
  requestTimeout: true,
  minTtl: true,
  maxRequests: true,
} satisfies Record<keyof ConsulStoreOptions, true>);
/** Keys of etcd's connection options (etcd3's `IOptions`, and etcdctl's "endpoints") that Consul's do not have: such an object was meant for etcd. */
const ETCD_KEYS = ['hosts', 'endpoints', 'auth', 'credentials', 'grpcOptions', 'dialTimeout', 'faultHandling', 'defaultCallOptions'];

export class ConsulStore implements LockStore {
  /**
   * Consul's session TTL range (`session_ttl_min`, 10 s by default, to 86400 s;
   * shorter or longer TTLs are refused when a candidate is created, never
   * clamped), and the id + value size that always fits Consul's 512 KiB
   * limits once encoded (codec.ts).
   */
  readonly limits: StoreLimits;
  /** The npm `consul` client this store talks through. */
  readonly client: Consul;
  readonly #ownsClient: boolean;
  readonly #http: ConsulHttp;
  readonly #sessions: SessionPool;
  /** The terms this store wrote, by Consul key. */
  readonly #holds = new Map<string, Hold>();
  /** Non-ASCII keys the agent has answered a GET for: it serves them (see #acquire). */
  readonly #served = new Set<string>();
  readonly #closed = new AbortController();
  readonly #watches: WatchHub;
  #closing: Promise<void> | undefined;

  /**
   * @param connection `consul://host:8500`, `consuls://host:8501` (TLS), an
   *   options object (`host`, `port`, `secure`, `token`, `ca`, `cert`, `key`),
   *   or an existing `Consul` client, which `close()` then leaves open.
   */
  constructor(connection: ConsulConnectionInput, options: ConsulStoreOptions = {}) {
    const settings = checkOptions(options);
    refuseOtherStore(connection);
    this.limits = { minTtl: settings.minTtl, maxTtl: MAX_TTL, maxValueBytes: MAX_VALUE_BYTES };
    // Whether HTTPS requests present a client certificate, to explain a refused handshake (unknown for a client given to us).
    let clientCertificate: boolean | undefined;
    if (isConsulClient(connection)) {
      this.client = connection;
      this.#ownsClient = false;
    } else {
      const built = consulClientOptions(connection) as ConstructorParameters<typeof Consul>[0] & { cert?: unknown };
      this.client = new Consul(built);
      this.#ownsClient = true;
      clientCertificate = built.cert !== undefined;
    }
    this.#http = new ConsulHttp(this.client, settings.requestTimeout * 1000, clientCertificate, settings.maxRequests);
    this.#sessions = new SessionPool(this.#http, (ttl) => ({
      name: settings.sessionName,
      ttl: `${ttl}s`,
      lockDelay: `${settings.lockDelay === 'ttl' ? Math.min(ttl, MAX_LOCK_DELAY) : settings.lockDelay}s`,
      behavior: settings.behavior,
    }));
    this.#watches = new WatchHub({ http: this.#http, waitSeconds: settings.watchWait, closed: this.#closed.signal });
    // Every group of watches listens for the store closing.
    setMaxListeners(0, this.#closed.signal);
  }

  /** What a key must be when Consul cannot name `key` exactly (keys.ts); `new Candidate()` asks it about `path`. */
  validateKey(key: string): string | undefined {
    return consulKeyRule(key);
  }

  /**
   * See `LockStore.prepare`: while candidates of `ttl` campaign, the store
   * keeps a session of that ttl created and renewed every ttl/2 (one for all
   * of them), so that a follower that sees its key free acquires with one
   * transaction (and the renew beside it) instead of a session create first.
   * A session that locks keys is renewed only by their refreshes, as always.
   */
  prepare(ttl: number, signal: AbortSignal): void {
    if (this.#closed.signal.aborted || !(ttl >= this.limits.minTtl!) || !(ttl <= MAX_TTL)) return;
    this.#sessions.keepReady(ttl, signal, (session) => {
      for (const hold of this.#holds.values()) if (hold.session === session) return true;
      return false;
    });
  }

  async compareAndSwap(key: string, expected: Holder | null, next: Claim | null, ttl: number, signal?: AbortSignal): Promise<SwapResult> {
    const where = `${WHERE}.compareAndSwap`;
    const name = consulKey(where, key);
    checkHolder(where, 'expected', expected, true);
    checkClaim(where, 'next', next, true);
    checkTtl(where, ttl, this.limits.minTtl!);
    checkSignal(where, 'signal', signal, false);
    this.#checkOpen();
    if (expected !== null) return this.#swapOwn(name, expected, next, ttl, signal);
    if (next !== null) return this.#acquire(name, next, ttl, signal);
    // Nothing to write: succeed if the key is free.
    const holder = holderOf(await this.#read(name, signal));
    return { ok: holder === null, holder };
  }

  async refresh(key: string, held: Holder, ttl: number, signal?: AbortSignal): Promise<Holder | null> {
    const where = `${WHERE}.refresh`;
    const name = consulKey(where, key);
    checkHolder(where, 'held', held, false);
    checkTtl(where, ttl, this.limits.minTtl!);
    checkSignal(where, 'signal', signal, false);
    this.#checkOpen();
    const hold = await this.#holdFor(name, held, signal);
    if (!hold) return null;
    checkSessionTtl(where, hold.session, ttl);
    // The session renew is shared with every other refresh of this tick; a
    // caller that gives up stops waiting for it, without cancelling it for the others.
    if (await abandonable(this.#sessions.confirm(hold.session), signal)) return held;
    this.#lost(hold.session);
    return null;
  }

  /**
   * See `LockStore.watch`; `trouble` hears each failed blocking query the
   * watch retries, and `null` once the agent answers again. The watches of
   * keys in one directory share one blocking query (watch.ts).
   */
  watch(key: string, signal: AbortSignal, trouble?: import('@vip/core').WatchTrouble): AsyncIterable<Holder | null> {
    const where = `${WHERE}.watch`;
    const name = consulKey(where, key);
    checkSignal(where, 'signal', signal, true);
    this.#checkOpen();
    return this.#watches.watch(name, signal, trouble);
  }

  /** What this store has open at the agent: blocking queries (one per group of watched keys), requests in flight and waiting their turn. */
  get load(): { readonly queries: number; readonly requests: number; readonly queued: number } {
    return { queries: this.#watches.queries, requests: this.#http.limit.active, queued: this.#http.limit.queued };
  }

  /**
   * Ends watches, destroys the sessions that hold no key and releases the
   * connections this store opened. Sessions that still lock keys are left to
   * expire on their own (between ttl and 2 × ttl): destroying them would free
   * those keys at once, while a candidate that was not stopped may still lead
   * until its local deadline, and a second leader could then be elected
   * before the first one stops. Stop candidates first (they resign, deleting
   * their keys), then close the store: nothing is left behind.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed.abort();
      const holding = new Set([...this.#holds.values()].map((hold) => hold.session.id));
      const idle = this.#sessions.live().filter((session) => !holding.has(session.id));
      await this.#sessions.close(idle, 2000);
      this.#holds.clear();
      if (this.#ownsClient) this.client.destroy();
    })();
    return this.#closing;
  }

  // ---- the operations ---------------------------------------------------------

  /** A new term on a key that must not exist: it gets a new CreateIndex, the token. */
  async #acquire(name: string, claim: Claim, ttl: number, signal?: AbortSignal): Promise<SwapResult> {
    const value = encodeHolder(claim).toString('base64');
    // /v1/txn writes keys that GET /v1/kv/ then refuses (400). keys.ts refuses
    // them, judging with JavaScript's Unicode tables; a non-ASCII character
    // that only this agent's (older) Go tables find unprintable is refused by
    // this first read of such a key instead, before anything is written.
    if (!this.#served.has(name) && /[^\x20-\x7e]/.test(name)) {
      await this.#read(name, signal);
      this.#served.add(name);
    }
    // Promise 3: the session is renewed or created by a request sent after
    // this call began. A session in hand is renewed beside the transaction,
    // both sent now, rather than before it (one round trip instead of two
    // on every acquisition); the term counts only once that renew answers
    // that the session lives. Without one, it is created first.
    let session = this.#sessions.current(ttl);
    let renewal: Promise<boolean> | undefined;
    if (session) {
      renewal = this.#sessions.confirm(session);
      renewal.catch(() => {}); // awaited below, after the transaction
    } else {
      session = await abandonable(this.#sessions.confirmed(ttl), signal);
    }
    /** An unlocked key left behind (Behavior "release", or a foreign unlock): replaced, never reused. */
    let leftover: KvEntry | undefined;
    for (let attempt = 0; attempt < 4; attempt++) {
      const guard: TxnOp =
        leftover === undefined
          ? { Verb: 'check-not-exists', Key: name }
          : // Delete-and-create in one txn: fails if the leftover changed since we read it.
            { Verb: 'delete-cas', Key: name, Index: leftover.ModifyIndex };
      // Counted while on its way, and for good if unanswered: the ready session is then never renewed for followers.
      const locking = session;
      const outcome = await this.#sessions.writeOn(locking, () => this.#http.txn([guard, { Verb: 'lock', Key: name, Value: value, Session: locking.id }], signal));
      /** The term won, recorded at once so that it can be released even if its renew fails. */
      let won: Holder | undefined;
      if (outcome.ok) {
        const entry = lastEntry(outcome.entries, name);
        won = { id: claim.id, value: claim.value, token: BigInt(entry.CreateIndex) };
        this.#holds.set(name, { id: claim.id, token: won.token, session, modifyIndex: entry.ModifyIndex });
      }
      if (renewal) {
        // A renew that cannot be answered leaves a won term unconfirmed: its outcome is unknown
        // (the hold is kept, so the candidate's release of it goes through).
        const alive = await abandonable(renewal, signal);
        renewal = undefined;
        if (!alive) {
          // Gone before the renew: Consul invalidated it, and deleted or released what it locked, this lock included.
          this.#lost(session);
          session = await abandonable(this.#sessions.confirmed(ttl), signal);
          leftover = undefined;
          continue;
        }
      }
      if (outcome.ok) return { ok: true, holder: won! };
      const refusal = refusalOf(outcome.errors, 1, name);
      if (refusal === 'lock-delay') return { ok: false, holder: null };
      if (refusal === 'session-gone') {
        // Invalidated between its renew and the lock: a new one, created after this call began.
        this.#lost(session);
        session = await abandonable(this.#sessions.confirmed(ttl), signal);
        continue;
      }
      const entry = await this.#read(name, signal);
      if (entry?.Session) return { ok: false, holder: holderOf(entry) };
      leftover = entry; // undefined: the key went away meanwhile; try the plain acquisition again
    }
    return { ok: false, holder: holderOf(await this.#read(name, signal)) };
  }

  /** Replace (`next` a claim) or release (`next` null) a term this store wrote. */
  async #swapOwn(name: string, expected: Holder, next: Claim | null, ttl: number, signal?: AbortSignal): Promise<SwapResult> {
    const hold = await this.#holdFor(name, expected, signal);
    if (!hold) return { ok: false, holder: holderOf(await this.#read(name, signal)) };
    const value = next && encodeHolder(next).toString('base64');
    if (next !== null) {
      checkSessionTtl(`${WHERE}.compareAndSwap`, hold.session, ttl);
      // A rewrite confirms the hold like a refresh: a renew sent after this call began.
      if (!(await abandonable(this.#sessions.confirm(hold.session), signal))) {
        this.#lost(hold.session);
        return { ok: false, holder: holderOf(await this.#read(name, signal)) };
      }
    }
    // Each failed attempt means a write of ours to this term won meanwhile
    // (nobody else can write under our session), so this ends.
    for (let attempt = 0; attempt < 16; attempt++) {
      // The guard that keeps two leaders apart: our session still locks the key,
      // unchanged since we last wrote or read this term.
      const guard: TxnOp[] = [
        { Verb: 'check-session', Key: name, Session: hold.session.id },
        { Verb: 'check-index', Key: name, Index: hold.modifyIndex },
      ];
      const write: TxnOp = value === null ? { Verb: 'delete', Key: name } : { Verb: 'lock', Key: name, Value: value, Session: hold.session.id };
      const outcome = await this.#http.txn([...guard, write], signal);
      if (outcome.ok) {
        if (next === null) {
          this.#forgetHold(name, hold);
          return { ok: true, holder: null };
        }
        hold.modifyIndex = lastEntry(outcome.entries, name).ModifyIndex;
        return { ok: true, holder: { id: next.id, value: next.value, token: hold.token } };
      }
      const refusal = refusalOf(outcome.errors, 2, name);
      if (refusal === 'session-gone') this.#lost(hold.session);
      if (refusal !== 'guard') break;
      // The key moved since our last write. Still this term under our session
      // (another call of ours rewrote it)? Then guard on what it is now.
      const entry = await this.#read(name, signal);
      if (!isTerm(entry, hold.session, expected)) {
        this.#forgetHold(name, hold);
        return { ok: false, holder: holderOf(entry) };
      }
      hold.modifyIndex = entry!.ModifyIndex;
    }
    return { ok: false, holder: holderOf(await this.#read(name, signal)) };
  }

  /**
   * The hold of `expected` on this key, if this store owns that term. Usually
   * from memory; when the store lost track of it (a compareAndSwap whose
   * answer never arrived, yet whose write happened), from the key itself:
   * locked by one of our live sessions, with the term's token and id.
   */
  async #holdFor(name: string, expected: Holder, signal?: AbortSignal): Promise<Hold | undefined> {
    const known = (): Hold | undefined => {
      const hold = this.#holds.get(name);
      return hold && hold.token === expected.token && hold.id === expected.id && !hold.session.lost ? hold : undefined;
    };
    if (this.#holds.has(name)) return known();
    const entry = await this.#read(name, signal);
    if (this.#holds.has(name)) return known(); // recorded by another call meanwhile
    const session = this.#sessions.own(entry?.Session);
    if (!session || !isTerm(entry, session, expected)) return undefined;
    const adopted: Hold = { id: expected.id, token: expected.token, session, modifyIndex: entry!.ModifyIndex };
    this.#holds.set(name, adopted);
    return adopted;
  }

  #forgetHold(name: string, hold: Hold): void {
    if (this.#holds.get(name) === hold) this.#holds.delete(name);
  }

  /** Consul no longer has `session`: neither has it any key it locked. */
  #lost(session: Session): void {
    this.#sessions.lost(session);
    for (const [name, hold] of this.#holds) if (hold.session.id === session.id) this.#holds.delete(name);
  }

  /** A consistent read: decisions about ownership never rest on a stale follower (hashicorp/consul#54). */
  async #read(name: string, signal?: AbortSignal): Promise<KvEntry | undefined> {
    return (await this.#http.readKey(name, { consistent: true, signal })).entry;
  }

  #checkOpen(): void {
    if (this.#closed.signal.aborted) throw new Error('ConsulStore: the store was closed');
  }
}

/** The key still holds `expected`'s term, locked by `session`. */
function isTerm(entry: KvEntry | undefined, session: Session, expected: Holder): boolean {
  if (!entry || entry.Session !== session.id || BigInt(entry.CreateIndex) !== expected.token) return false;
  return holderOf(entry)?.id === expected.id;
}

/** The entry a successful txn returned for its last write on `name`. */
function lastEntry(entries: readonly KvEntry[], name: string): KvEntry {
  const entry = [...entries].reverse().find((candidate) => candidate.Key === name);
  if (!entry) throw new Error(`Consul applied the transaction on "${name}" but returned no entry for it`);
  return entry;
}

/**
 * Sort a rollback into the refusals a caller can act on. Anything else
 * (permission denied by an ACL, a malformed request) is not an answer about
 * the key, so it is thrown rather than reported as "held".
 *
 * Consul says why only in words, and its words quote the key ("key %q
 * exists", "failed to lock key %q due to lock delay"): the key is cut out of
 * them before they are read, so that a key named "due to lock delay" or
 * "permission denied" is not taken for what it says.
 */
function refusalOf(errors: readonly TxnError[], lockOp: number, name: string): Refusal {
  const what = errors.map((error) => error.What).join('; ');
  const said = errors.map((error) => ({ op: error.OpIndex, text: withoutKey(error.What, name) }));
  if (said.some(({ text }) => /due to lock delay/i.test(text))) return 'lock-delay';
  if (said.some(({ op, text }) => op === lockOp && /invalid session/i.test(text))) return 'session-gone';
  const guardTexts = /\bexists\b|already held|session check|check session|index check|check index|index is stale|doesn't exist/i;
  if (said.length > 0 && said.every(({ text }) => guardTexts.test(text) && !/permission denied|acl not found/i.test(text))) return 'guard';
  throw new Error(`Consul rolled back the transaction: ${what || 'no reason given'}`);
}

/**
 * Consul's reason with the key it quotes (Go's %q, which is JSON's quoting for
 * the keys keys.ts lets through) cut out. Only the quoted key: a key such as
 * "lock" also occurs bare in Consul's own words.
 */
export function withoutKey(text: string, name: string): string {
  return text.split(JSON.stringify(name)).join('"<key>"');
}

/** Stop waiting for `promise` when `signal` aborts (the work itself goes on for whoever else shares it). */
function abandonable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const abort = (): void => reject(abortReason(signal));
    signal.addEventListener('abort', abort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', abort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', abort);
        reject(error);
      },
    );
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('ConsulStore: the call was aborted');
}

// ---- argument checks: each names the argument it refuses ------------------------

/**
 * Whether `value` is a Consul client (ours, or one from another copy of the
 * package). An object with some of a client's parts but not all the methods
 * the store calls is refused, naming them, rather than read as connection options.
 */
/**
 * Refuses a connection meant for another store, saying which class (or
 * `openStore()` / `vip()` of @vip/vip, which pick the store from the string)
 * takes it, rather than as a malformed Consul address: an `etcd://`,
 * `etcds://` or `memory://` string, a bare `host:port` list (etcd's form to
 * vip), an array of members, an etcd3 options object (`hosts`, …) or an
 * `Etcd3` client.
 */
function refuseOtherStore(connection: unknown): void {
  const refuse = (message: string): never => {
    const error = new VipOptionError(WHERE, 'connection', 'a Consul connection', connection);
    error.message = `${WHERE}: ${message}`;
    throw error;
  };
  const useEtcd = (shown: string): string => `use new EtcdStore(${shown}) from @vip/etcd, or openStore(${shown}) or vip(${shown}) from @vip/vip`;
  if (typeof connection === 'string') {
    const text = connection.trim();
    const shown = JSON.stringify(redactConnectionString(text));
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
    if (scheme === 'etcd' || scheme === 'etcds') refuse(`${shown} is an etcd address; ${useEtcd(shown)}`);
    if (scheme === 'memory') {
      refuse(`${shown} is an in-process memory store address; use new MemoryStore() from @vip/core, or openStore(${shown}) or vip(${shown}) from @vip/vip`);
    }
    if (scheme === undefined && /^[^\s/@]+:\d+(\s*,\s*[^\s/@]+:\d+)*$/.test(text)) {
      refuse(`${shown} has no scheme, and a bare host:port list is an etcd address to vip; for Consul write "consul://${text.split(',')[0]!.trim()}" (one agent), for etcd ${useEtcd(shown)}`);
    }
    return;
  }
  if (Array.isArray(connection)) refuse(`got an array: a list of members is etcd's form; for etcd ${useEtcd('[...]')}; for Consul give one agent, e.g. "consul://127.0.0.1:8500"`);
  if (connection === null || typeof connection !== 'object') return;
  if ('leaseClient' in connection && 'kv' in connection) refuse('got an etcd3 client (Etcd3); use new EtcdStore(client) from @vip/etcd');
  const etcdKey = ETCD_KEYS.find((key) => key in connection);
  if (etcdKey !== undefined && !('host' in connection)) {
    refuse(
      `got an options object with "${etcdKey}": that is etcd's form; for etcd use new EtcdStore({ hosts: [...] }) from @vip/etcd; ` +
        'for Consul give { host, port, secure, token, ca, cert, key } or a connection string like "consul://127.0.0.1:8500"',
    );
  }
}

function isConsulClient(value: unknown): value is Consul {
  if (value instanceof Consul) return true;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const missing = missingClientMethods(value);
  if (missing.length === 0) return true;
  if (['kv', 'session', 'transaction'].some((part) => part in value)) {
    throw new TypeError(
      `${WHERE}: got an object that looks like a Consul client but lacks ${missing.join(', ')}; ` +
        `pass a client of the npm "consul" package (2.x), which has ${CLIENT_METHODS.join(', ')}`,
    );
  }
  return false;
}

function checkOptions(options: ConsulStoreOptions): Required<ConsulStoreOptions> {
  checkObject(WHERE, 'options', options, 'an object like { lockDelay: 0 }');
  checkKnownKeys(WHERE, options, STORE_OPTIONS);
  const number = (name: keyof ConsulStoreOptions, value: unknown, fallback: number, min: number, max: number): number =>
    value === undefined ? fallback : checkSeconds(WHERE, name, value, { from: min, to: max });
  const lockDelay = (value: unknown): number => checkSeconds(WHERE, 'lockDelay', value, { from: 0, to: MAX_LOCK_DELAY }, "(Consul's cap), or 'ttl'");
  const behavior = options.behavior ?? 'delete';
  if (behavior !== 'delete' && behavior !== 'release') throw new VipOptionError(WHERE, 'behavior', '"delete" or "release"', behavior);
  const sessionName = options.sessionName ?? 'vip';
  checkNonEmptyString(WHERE, 'sessionName', sessionName);
  return {
    lockDelay: options.lockDelay === undefined || options.lockDelay === 'ttl' ? 'ttl' : lockDelay(options.lockDelay),
    behavior,
    sessionName,
    // Consul caps a blocking query's wait at 10 minutes.
    watchWait: number('watchWait', options.watchWait, 30, 1, 600),
    requestTimeout: number('requestTimeout', options.requestTimeout, 10, 0.1, 600),
    // vip accepts no TTL under 1 s for Consul: a session renewed more than once a second is not what Consul is built for.
    minTtl: number('minTtl', options.minTtl, 10, 1, MAX_TTL),
    maxRequests: count('maxRequests', options.maxRequests, 16, 1024),
  };
}

function count(name: keyof ConsulStoreOptions, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new VipOptionError(WHERE, name, `a whole number from 1 to ${max}`, value);
  }
  return value;
}

function checkTtl(where: string, ttl: number, minTtl: number): void {
  checkSeconds(where, 'ttl', ttl, { from: minTtl, to: MAX_TTL }, "(Consul's session TTL range)");
}

/**
 * A session's renew keeps it for its own TTL: it confirms a hold for `ttl`
 * only if the term's session was made with at least that TTL.
 */
function checkSessionTtl(where: string, session: Session, ttl: number): void {
  if (ttl > session.ttl) {
    throw new VipOptionError(where, 'ttl', `at most ${session.ttl}, the TTL this term was acquired with`, ttl);
  }
}
