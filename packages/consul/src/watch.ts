/**
 * `watch(key)` over Consul blocking queries: GET /v1/kv/:key?index=&wait=.
 *
 * Consul's rules for blocking queries (https://developer.hashicorp.com/consul/api-docs/features/blocking),
 * and what this loop does about each:
 * - An answer does not mean a change (a `wait` timeout, or a write to some
 *   other key that moved the index): holders are compared and an unchanged
 *   one is not yielded again.
 * - The index can go backwards (a `-dev` agent restarted empty, a snapshot
 *   restore, another server): the answer is set aside and the key is read
 *   again from index 0, and the order of terms starts over from what it shows.
 * - An index of 0 is never waited on (it would not block); Consul answers at
 *   least 1 for a single key anyway (agent/consul/kvs_endpoint.go, Get).
 * - Reads are served by the leader, but a partitioned old leader can still
 *   answer (hashicorp/consul#54): the first read and every read after an
 *   error are `?consistent`, and no holder older than one already yielded is
 *   ever yielded (older term: smaller CreateIndex; older write of the same
 *   term: smaller ModifyIndex).
 * - On transient errors (agent restarting, unreachable, timeout, 5xx) the
 *   loop backs off briefly (100 ms doubling to 1 s, so that failover after an
 *   agent restart is not held up) and reads the key again from scratch. A
 *   `-dev` agent that restarted has lost every key: that read finds none and
 *   yields null.
 * - Other errors end the watch with that error: a refusal (unknown ACL token,
 *   permission denied) or a TLS handshake refused, which no retry mends, and
 *   any error before the first answer, so that the caller hears of it (a
 *   candidate reports it on `error` and watches again after its own backoff)
 *   instead of waiting in silence for an agent that does not answer.
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

/** A locked key is held by its session's holder; an absent or unlocked key is free. */
export function holderOf(entry: KvEntry | undefined): Holder | null {
  if (!entry?.Session) return null;
  return decodeHolder(entry.Value, BigInt(entry.CreateIndex));
}

export async function* watchHolder(context: WatchContext, key: string, signal: AbortSignal, trouble?: WatchTrouble): AsyncGenerator<Holder | null, void, undefined> {
  const { signal: stop, dispose } = eitherAborts(signal, context.closed);
  try {
    yield* follow(context, key, stop, troubleReporter(trouble, stop));
  } finally {
    dispose();
  }
  if (context.closed.aborted && !signal.aborted) throw new Error('ConsulStore: the store was closed');
}

async function* follow(context: WatchContext, key: string, stop: AbortSignal, report: WatchTrouble): AsyncGenerator<Holder | null, void, undefined> {
  /** Index for the next blocking query; 0: read at once. */
  let waitIndex = 0;
  /** X-Consul-Index of the last answer, to see it go backwards. */
  let lastIndex = 0;
  let consistent = true;
  let failures = 0;
  /** What was yielded last (undefined: nothing yet). */
  let last: Holder | null | undefined;
  /** The newest write of a held key yielded so far: nothing older is yielded after it. */
  let newest: { token: bigint; modifyIndex: number } | undefined;

  while (!stop.aborted) {
    let answer: { entry: KvEntry | undefined; index: number };
    try {
      answer = await context.http.readKey(key, { consistent, index: waitIndex, waitSeconds: context.waitSeconds, signal: stop });
    } catch (error) {
      if (stop.aborted) break;
      if (last === undefined || !isTransient(error)) throw error;
      report(error instanceof Error ? error : new Error(String(error)));
      await sleep(retryDelay(failures++), stop);
      waitIndex = 0;
      consistent = true;
      continue;
    }
    report(null); // passed on only after trouble
    failures = 0;
    const index = Math.max(answer.index, 1);
    if (index < lastIndex) {
      // Consul's state went back in time: forget the order of terms and read again.
      lastIndex = index;
      waitIndex = 0;
      consistent = true;
      newest = undefined;
      continue;
    }
    lastIndex = index;
    waitIndex = index;
    consistent = false;

    const holder = holderOf(answer.entry);
    if (holder !== null) {
      const modifyIndex = answer.entry!.ModifyIndex;
      if (newest && (holder.token < newest.token || (holder.token === newest.token && modifyIndex < newest.modifyIndex))) continue;
      newest = { token: holder.token, modifyIndex };
    }
    if (last !== undefined && sameHolder(last, holder)) continue;
    last = holder;
    yield holder;
  }
}

/**
 * A signal that aborts when either does (AbortSignal.any, which needs Node
 * 20.3, by hand). Its listeners go as soon as it aborts or is disposed, so the
 * store's long-lived `closed` signal keeps nothing of a watch that ended.
 */
function eitherAborts(a: AbortSignal, b: AbortSignal): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const dispose = (): void => {
    a.removeEventListener('abort', abort);
    b.removeEventListener('abort', abort);
  };
  function abort(this: AbortSignal): void {
    dispose();
    controller.abort(this.reason);
  }
  if (a.aborted || b.aborted) controller.abort(a.aborted ? a.reason : b.reason);
  else {
    a.addEventListener('abort', abort, { once: true });
    b.addEventListener('abort', abort, { once: true });
  }
  return { signal: controller.signal, dispose };
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
