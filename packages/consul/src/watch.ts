/**
 * `watch(key)` over Consul blocking queries, one query per group of keys
 * rather than one per key.
 *
 * Why groups: a blocking query holds an HTTP connection until Consul answers,
 * and an agent closes a client's connections past
 * `limits.http_max_conns_per_client` (200 by default). One query per watched
 * key would cap a process at about 200 elections, and past that the agent
 * would refuse its renewals and transactions too. So the watches of a store
 * are grouped by directory (the key up to its last "/"; a key with no "/" is
 * a group of its own, never a query on the whole KV store), and each group sends
 * one `GET /v1/kv/<prefix>?recurse` blocking query, `prefix` being the longest
 * common prefix of the keys the group has watched (the key itself for a group
 * of one), and splits each answer into the holders of its keys. A thousand
 * elections under `jobs/` cost one connection, not a thousand. The price: an
 * answer carries every key under the prefix, so keys of other applications
 * under the same directory make answers bigger and wake the query (give vip's
 * keys a directory of their own).
 *
 * The first query of a group goes out on the next turn of the event loop, so
 * that watches started together join first. When a key that does not share the group's prefix joins, the prefix
 * shortens and the query starts again (at once, from a plain read); it never
 * grows back while the group lives, so a group restarts at most once per
 * character of its keys' longest common prefix. A key that joins a group with
 * an answer gets that answer's holder at once.
 *
 * Consul's rules for blocking queries (https://developer.hashicorp.com/consul/api-docs/features/blocking),
 * and what the loop does about each:
 * - An answer does not mean a change (a `wait` timeout, a write to another
 *   key under the prefix, or, for a prefix under which nothing is or was, any
 *   write to the KV store: Consul then answers the table's index). Holders
 *   are compared, an unchanged one is not yielded again, and an answer that
 *   changed nothing for any key of the group makes the next query wait until
 *   QUIET_GAP_MS after the previous one was sent: a group whose answers bring
 *   no news sends at most 1000 / QUIET_GAP_MS queries a second, however often
 *   the KV store is written elsewhere (Consul's docs ask clients to rate-limit
 *   blocking queries). An answer with news is followed by the next query at
 *   once, so failover is not slowed.
 * - The index can go backwards (a `-dev` agent restarted empty, a snapshot
 *   restore, another server): the answer is set aside and the prefix is read
 *   again from index 0, and the order of terms starts over from what it shows.
 * - An index of 0 is never waited on (it would not block).
 * - Reads are served by the leader, but a partitioned old leader can still
 *   answer (hashicorp/consul#54): the first read and every read after an
 *   error are `?consistent`, and no holder older than one already yielded is
 *   ever yielded for a key (older term: smaller CreateIndex; older write of
 *   the same term: smaller ModifyIndex).
 * - On transient errors (agent restarting, unreachable, timeout, 5xx) the
 *   loop backs off briefly (100 ms doubling to 1 s, so that failover after an
 *   agent restart is not held up) and reads the prefix again from scratch;
 *   every watch of the group that has had an answer hears of it through its
 *   `trouble` callback. A `-dev` agent that restarted has lost every key:
 *   that read finds none and yields null.
 * - Other errors end every watch of the group with that error: a refusal
 *   (unknown ACL token, permission denied) or a TLS handshake refused, which
 *   no retry mends; so does any error before a watch's first answer, so that
 *   the caller hears of it (a candidate reports it on `error` and watches
 *   again after its own backoff) instead of waiting in silence for an agent
 *   that does not answer.
 */
import { sameHolder, type Holder, type WatchTrouble } from '@vip/core';
import { troubleReporter } from '@vip/core/adapter';
import { decodeHolder } from './codec.js';
import { isTransient, type ConsulHttp, type KvEntry } from './consul-http.js';

export interface WatchContext {
  readonly http: ConsulHttp;
  /** Seconds a blocking query waits for a change before Consul answers anyway. */
  readonly waitSeconds: number;
  /** Aborts when the store closes. */
  readonly closed: AbortSignal;
}

const RETRY_INITIAL_MS = 100;
const RETRY_MAX_MS = 1000;
/** After an answer that changed nothing the group watches, the next query is sent no sooner than this after the previous one. */
export const QUIET_GAP_MS = 100;

/** A locked key is held by its session's holder; an absent or unlocked key is free. */
export function holderOf(entry: KvEntry | undefined): Holder | null {
  if (!entry?.Session) return null;
  return decodeHolder(entry.Value, BigInt(entry.CreateIndex));
}

/** The directory of a key: what its group is known by. */
export function directoryOf(key: string): string {
  return key.slice(0, key.lastIndexOf('/') + 1);
}

/**
 * The group a key is watched in: its directory, or for a key outside any
 * directory the key itself, so that no group's prefix is ever "" (a query on
 * the whole KV store, woken by every write and carrying every key).
 */
export function groupOf(key: string): string {
  return directoryOf(key) || key;
}

/** The longest common prefix of two strings, never splitting a surrogate pair. */
export function commonPrefix(a: string, b: string): string {
  let end = 0;
  const shorter = Math.min(a.length, b.length);
  while (end < shorter && a.charCodeAt(end) === b.charCodeAt(end)) end++;
  // Cut before a high surrogate whose low half differed (or was cut off).
  if (end > 0 && end < a.length) {
    const last = a.charCodeAt(end - 1);
    if (last >= 0xd800 && last <= 0xdbff) end--;
  }
  return a.slice(0, end);
}

/** One `watch()` call, fed by its group's query. */
class Member {
  readonly key: string;
  readonly report: WatchTrouble;
  /** The holder to hand out next (undefined: nothing new). */
  pending: Holder | null | undefined;
  /** Whether this watch has had an answer: errors after that are retried, not thrown. */
  answered = false;
  error: unknown;
  /** The newest write of a held key handed out so far: nothing older is handed out after it. */
  newest: { token: bigint; modifyIndex: number } | undefined;
  /** The entry last seen for the key (to skip decoding an unchanged one). */
  seen: { modifyIndex: number; session: string | undefined } | null | undefined;
  #wake: (() => void) | undefined;

  constructor(key: string, report: WatchTrouble) {
    this.key = key;
    this.report = report;
  }

  /** What the group's answer says of this key. */
  offer(entry: KvEntry | undefined): boolean {
    this.answered = true;
    const seen = entry ? { modifyIndex: entry.ModifyIndex, session: entry.Session } : null;
    if (this.seen !== undefined && (this.seen === null ? seen === null : seen !== null && seen.modifyIndex === this.seen.modifyIndex && seen.session === this.seen.session)) {
      return false;
    }
    this.seen = seen;
    const holder = holderOf(entry);
    if (holder !== null) {
      const modifyIndex = entry!.ModifyIndex;
      const newest = this.newest;
      if (newest && (holder.token < newest.token || (holder.token === newest.token && modifyIndex < newest.modifyIndex))) return false;
      this.newest = { token: holder.token, modifyIndex };
    }
    this.pending = holder;
    this.wake();
    return true;
  }

  fail(error: unknown): void {
    this.error = error;
    this.wake();
  }

  wake(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  waitForNews(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }
}

/** The watches of one directory and the one blocking query that serves them. */
class Group {
  readonly members = new Set<Member>();
  prefix: string;
  /** The last answer, by key, for watches that join later. */
  entries = new Map<string, KvEntry>();
  answered = false;
  /** Aborted to stop the query in flight: the group ended, or its prefix changed. */
  #query = new AbortController();
  ended = false;

  constructor(prefix: string) {
    this.prefix = prefix;
  }

  get querySignal(): AbortSignal {
    return this.#query.signal;
  }

  /** Abort the query in flight so that the loop sends the next one at once. */
  restart(): void {
    this.#query.abort();
    this.#query = new AbortController();
    this.answered = false;
  }

  end(): void {
    this.ended = true;
    this.#query.abort();
  }
}

/** The watches of one store, by group. */
export class WatchHub {
  readonly #context: WatchContext;
  readonly #groups = new Map<string, Group>();

  constructor(context: WatchContext) {
    this.#context = context;
  }

  /** How many blocking queries the store's watches have open (one per group). */
  get queries(): number {
    return this.#groups.size;
  }

  async *watch(key: string, signal: AbortSignal, trouble?: WatchTrouble): AsyncGenerator<Holder | null, void, undefined> {
    const closed = this.#context.closed;
    if (signal.aborted) return;
    if (closed.aborted) throw new Error('ConsulStore: the store was closed');
    const member = new Member(key, troubleReporter(trouble, signal));
    // Aborted while paused at a yield: the watch leaves its group at once, not when (if ever) it is resumed.
    const stop = (): void => {
      this.#leave(group, member);
      member.wake();
    };
    const group = this.#join(member);
    // The store closing ends the group, which fails its watches (#run).
    signal.addEventListener('abort', stop, { once: true });
    /** What was handed out last (undefined: nothing yet). */
    let last: Holder | null | undefined;
    try {
      for (;;) {
        if (signal.aborted) return;
        if (closed.aborted) throw new Error('ConsulStore: the store was closed');
        if (member.error !== undefined) throw member.error;
        const holder = member.pending;
        if (holder !== undefined) {
          member.pending = undefined;
          if (last !== undefined && sameHolder(last, holder)) continue;
          last = holder;
          yield holder;
          continue;
        }
        await member.waitForNews();
      }
    } finally {
      signal.removeEventListener('abort', stop);
      this.#leave(group, member);
    }
  }

  #join(member: Member): Group {
    const directory = groupOf(member.key);
    let group = this.#groups.get(directory);
    if (!group || group.ended) {
      group = new Group(member.key);
      this.#groups.set(directory, group);
      group.members.add(member);
      void this.#run(directory, group);
      return group;
    }
    group.members.add(member);
    if (!member.key.startsWith(group.prefix)) {
      group.prefix = commonPrefix(group.prefix, member.key);
      group.restart();
    } else if (group.answered) {
      member.offer(group.entries.get(member.key));
    }
    return group;
  }

  #leave(group: Group, member: Member): void {
    group.members.delete(member);
    if (group.members.size > 0 || group.ended) return;
    group.end();
    for (const [directory, candidate] of this.#groups) if (candidate === group) this.#groups.delete(directory);
  }

  /** The group's blocking-query loop: runs while it has watches. */
  async #run(directory: string, group: Group): Promise<void> {
    const { http, waitSeconds, closed } = this.#context;
    /** Index for the next blocking query; 0: read at once. */
    let waitIndex = 0;
    /** X-Consul-Index of the last answer, to see it go backwards. */
    let lastIndex = 0;
    let consistent = true;
    let failures = 0;
    /** When the earliest next query may be sent (the quiet-gap rule). */
    let notBefore = 0;
    let prefix = group.prefix;
    const stopped = (): boolean => group.ended || closed.aborted;
    const close = (): void => group.end();
    closed.addEventListener('abort', close, { once: true });
    try {
      // Watches started together (candidates started in one loop) join before the first query goes out.
      await new Promise((resolve) => setImmediate(resolve));
      while (!stopped()) {
        const signal = group.querySignal;
        if (group.prefix !== prefix) {
          prefix = group.prefix;
          waitIndex = 0;
          consistent = true;
        }
        const wait = notBefore - performance.now();
        if (wait > 0) await sleep(wait, signal);
        if (stopped()) break;
        if (signal.aborted) continue; // the prefix changed meanwhile
        const sentAt = performance.now();
        let answer: { entries: KvEntry[]; index: number };
        try {
          answer = await http.listPrefix(prefix, { consistent, index: waitIndex, waitSeconds, signal });
        } catch (error) {
          if (stopped()) break;
          if (signal.aborted) continue; // restarted for a new prefix
          const transient = isTransient(error);
          // What the group knew is not current any more: a watch that joins during the backoff waits for the next answer.
          group.answered = false;
          group.entries = new Map();
          for (const member of group.members) {
            if (!member.answered || !transient) member.fail(error);
            else member.report(error instanceof Error ? error : new Error(String(error)));
          }
          if (!transient) break;
          for (const member of group.members) if (member.error !== undefined) group.members.delete(member);
          if (group.members.size === 0) break;
          await sleep(retryDelay(failures++), signal);
          waitIndex = 0;
          consistent = true;
          group.answered = false;
          continue;
        }
        if (signal.aborted) continue; // answered for the old prefix
        failures = 0;
        for (const member of group.members) if (member.answered) member.report(null); // passed on only after trouble
        const index = Math.max(answer.index, 1);
        if (index < lastIndex) {
          // Consul's state went back in time: forget the order of terms and read again.
          lastIndex = index;
          waitIndex = 0;
          consistent = true;
          for (const member of group.members) {
            member.newest = undefined;
            member.seen = undefined;
          }
          continue;
        }
        lastIndex = index;
        waitIndex = index;
        consistent = false;
        const entries = new Map<string, KvEntry>();
        for (const entry of answer.entries) entries.set(entry.Key, entry);
        group.entries = entries;
        group.answered = true;
        let news = false;
        for (const member of group.members) if (member.offer(entries.get(member.key))) news = true;
        notBefore = news ? 0 : sentAt + QUIET_GAP_MS;
      }
    } finally {
      closed.removeEventListener('abort', close);
      group.end();
      if (this.#groups.get(directory) === group) this.#groups.delete(directory);
      const error = new Error('ConsulStore: the store was closed');
      // Watches still waiting on an ended group (closed store, or an error that ended it) hear why.
      for (const member of group.members) if (member.error === undefined) member.fail(closed.aborted ? error : new Error('ConsulStore: the watch query ended'));
    }
  }
}

function retryDelay(failures: number): number {
  const ceiling = Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** Math.min(failures, 10));
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
