/**
 * A key's holder over time, from etcd: a linearizable read first, then a
 * watcher from the next revision, on the client's one shared watch stream.
 *
 * Ordering: every state carries the etcd revision it was true at (a read's
 * header revision, an event's mod revision). A state is yielded only if its
 * revision is newer than the last one, so a late event can never put an
 * older holder after a newer one.
 *
 * Reconnects: etcd3 re-creates its watchers on a new stream from their last
 * revision + 1 after a broken stream or an etcd restart. That replays what was
 * missed, but etcd3 moves a watcher's start revision to the server's current
 * revision as soon as the new watch is created (watch.js, updateRevision on
 * 'connected'), so events can be skipped if the stream breaks again before they
 * arrive. After every reconnect we therefore read the key again and yield it if
 * it moved. A watcher that etcd cancels (its start revision was compacted away
 * during a long outage) is replaced by a new one after a fresh read.
 */
import type { Holder, WatchTrouble } from '@vip/core';
import { troubleReporter } from '@vip/core/adapter';
import { isRecoverableError, type Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import { decodeHolder } from './codec.js';

export interface WatchContext {
  readonly client: Etcd3;
  readonly requestTimeoutMs: number;
  /** Aborted when the store closes: every watch ends, its watcher is cancelled. */
  readonly closed: AbortSignal;
  /** Live watchers, so that close() can cancel them before it closes the client. */
  readonly watchers: Set<Watcher>;
}

/** A state of the key, and the etcd revision at which it was true. */
interface State {
  readonly revision: bigint;
  readonly holder: Holder | null;
}

type Item =
  | { readonly kind: 'state'; readonly state: State }
  /** The stream broke and came back: read the key again. */
  | { readonly kind: 'reconnected' }
  /** etcd cancelled the watcher: read again and start a new one. */
  | { readonly kind: 'cancelled'; readonly error: Error };

const RETRY_INITIAL_MS = 100;
const RETRY_MAX_MS = 2000;
const CANCEL_WAIT_MS = 1000;

export async function* watchHolder(context: WatchContext, key: string, signal: AbortSignal, trouble?: WatchTrouble): AsyncGenerator<Holder | null, void, undefined> {
  const name = Buffer.from(key);
  const inbox: Item[] = [];
  let wake: (() => void) | undefined;
  const push = (item: Item): void => {
    inbox.push(item);
    wake?.();
  };
  // One signal for "this watch is over": its caller's signal, or the store closing.
  const stop = new AbortController();
  // Trouble we ride out (a broken stream etcd3 re-creates, a read we retry) is
  // told as it happens, and its end once etcd answers a read again; nothing
  // after the watch is over (etcd3 may still emit on a watcher whose cancel it never confirmed).
  const report = troubleReporter(trouble, stop.signal);
  const onStop = (): void => {
    stop.abort();
    wake?.();
  };
  signal.addEventListener('abort', onStop);
  context.closed.addEventListener('abort', onStop);
  if (signal.aborted || context.closed.aborted) stop.abort();

  let watcher: Watcher | undefined;
  try {
    if (stop.signal.aborted) return;
    const first = await read(context, name);
    let { revision, holder: last } = first;
    watcher = await openWatcher(context, name, first.revision + 1n, push, stop.signal, report, false);
    if (watcher) yield last;

    /** Take a state if it is newer than what we said; true if it is a change worth yielding. */
    const advance = (state: State): boolean => {
      if (state.revision <= revision) return false;
      revision = state.revision;
      if (sameHolder(last, state.holder)) return false;
      last = state.holder;
      return true;
    };

    while (watcher && !stop.signal.aborted) {
      const item = inbox.shift();
      if (!item) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      if (item.kind === 'state') {
        if (advance(item.state)) yield last;
        continue;
      }
      if (item.kind === 'cancelled') {
        // This watcher is dead (etcd3 has already dropped it); a new one starts after a fresh read.
        forgetWatcher(context, watcher);
        watcher = undefined;
      }
      const state = await readUntilAnswered(context, name, stop.signal, report);
      if (!state) break;
      report(null);
      if (!watcher) watcher = await openWatcher(context, name, state.revision + 1n, push, stop.signal, report, true);
      if (advance(state)) yield last;
    }
    if (context.closed.aborted && !signal.aborted) throw new Error('EtcdStore: the store was closed');
  } catch (error) {
    // A request cut short by the end of the watch is not the caller's problem.
    if (signal.aborted) return;
    if (context.closed.aborted) throw new Error('EtcdStore: the store was closed');
    throw error;
  } finally {
    signal.removeEventListener('abort', onStop);
    context.closed.removeEventListener('abort', onStop);
    if (watcher) await cancelWatcher(context, watcher);
  }
}

/** Two holders are the same to a watcher when id, token and value match. */
function sameHolder(a: Holder | null, b: Holder | null): boolean {
  if (a === null || b === null) return a === b;
  return a.id === b.id && a.token === b.token && a.value === b.value;
}

/** A linearizable read of the key (etcd's default for a range). */
async function read(context: WatchContext, name: Buffer): Promise<State> {
  const response = await context.client.kv.range({ key: name }, { deadline: new Date(Date.now() + context.requestTimeoutMs) });
  const kv: IKeyValue | undefined = response.kvs[0];
  return { revision: BigInt(response.header.revision), holder: kv ? decodeHolder(kv) : null };
}

/**
 * Read until etcd answers, backing off, until `stop` aborts (then undefined).
 * Throws an error that retrying cannot fix (permission denied, bad auth).
 */
async function readUntilAnswered(context: WatchContext, name: Buffer, stop: AbortSignal, report: (error: Error) => void): Promise<State | undefined> {
  for (let attempt = 0; !stop.aborted; attempt++) {
    try {
      return await read(context, name);
    } catch (error) {
      if (!(error instanceof Error) || !isRecoverableError(error)) throw error;
      report(error);
      await sleep(Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** attempt), stop);
    }
  }
  return undefined;
}

/**
 * Create a watcher from `startRevision` and wait until etcd has it. Undefined
 * if `stop` aborted meanwhile (the half-made watcher is cancelled).
 */
async function openWatcher(
  context: WatchContext,
  name: Buffer,
  startRevision: bigint,
  push: (item: Item) => void,
  stop: AbortSignal,
  report: (error: Error | null) => void,
  /** Report a broken stream before etcd confirmed the watcher too (a replacement: the watch already yielded). */
  reportEarly: boolean,
): Promise<Watcher | undefined> {
  // `watcher()` rather than `create()`: create() keeps the watcher to itself
  // until etcd confirms it, so a watch stopped while etcd is down could not cancel it.
  const watcher = context.client.watch().key(name).startRevision(startRevision.toString()).watcher();
  context.watchers.add(watcher);
  let created = false;
  let disconnected = false;
  const ready = new Promise<void>((resolve, reject) => {
    const onPut = (kv: IKeyValue): void => push({ kind: 'state', state: { revision: BigInt(kv.mod_revision), holder: decodeHolder(kv) } });
    const onDelete = (kv: IKeyValue): void => push({ kind: 'state', state: { revision: BigInt(kv.mod_revision), holder: null } });
    // etcd3 emits this for each failed attempt to re-create the stream.
    const onDisconnected = (error: unknown): void => {
      disconnected = true;
      if (created || reportEarly) report(error instanceof Error ? error : new Error(String(error)));
    };
    const onConnected = (): void => {
      report(null); // etcd confirmed the watcher: it answers again
      if (!created) {
        created = true;
        resolve();
      } else if (disconnected) {
        disconnected = false;
        push({ kind: 'reconnected' });
      }
    };
    const onError = (error: Error): void => {
      if (!created) reject(error);
      else push({ kind: 'cancelled', error });
    };
    watcher.on('put', onPut).on('delete', onDelete).on('disconnected', onDisconnected).on('connected', onConnected).on('error', onError);
    // Only ours: the Watcher's own listeners (revision tracking, cancel bookkeeping) must stay.
    unlisten.set(watcher, () => {
      watcher.off('put', onPut).off('delete', onDelete).off('disconnected', onDisconnected).off('connected', onConnected).off('error', onError);
    });
  });
  ready.catch(() => {}); // a late rejection is of no interest once stop won the race
  let onStop: (() => void) | undefined;
  const stopped = new Promise<void>((resolve) => {
    if (stop.aborted) return resolve();
    onStop = resolve;
    stop.addEventListener('abort', onStop, { once: true });
  });
  try {
    await Promise.race([ready, stopped]);
  } catch (error) {
    await cancelWatcher(context, watcher);
    throw error;
  } finally {
    if (onStop) stop.removeEventListener('abort', onStop);
  }
  if (!created) {
    await cancelWatcher(context, watcher);
    return undefined;
  }
  return watcher;
}

/** Cancel a watcher, waiting a bounded time for etcd to confirm. */
async function cancelWatcher(context: WatchContext, watcher: Watcher): Promise<void> {
  if (!context.watchers.has(watcher)) return;
  const cancelled = new AbortController();
  await Promise.race([watcher.cancel().catch(() => {}), sleep(CANCEL_WAIT_MS, cancelled.signal)]);
  cancelled.abort();
  forgetWatcher(context, watcher);
}

/** Our listeners on each watcher, to remove them when we are done with it. */
const unlisten = new WeakMap<Watcher, () => void>();

function forgetWatcher(context: WatchContext, watcher: Watcher): void {
  context.watchers.delete(watcher);
  unlisten.get(watcher)?.();
  unlisten.delete(watcher);
  // Keep an 'error' listener: an EventEmitter without one throws what it emits.
  watcher.on('error', () => {});
}

/** Sleep `ms`, or less if `signal` aborts. Never keeps the process alive on its own. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal?.addEventListener('abort', done, { once: true });
  });
}
