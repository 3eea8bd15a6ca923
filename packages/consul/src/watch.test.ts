import { getEventListeners } from 'node:events';
import type { Holder } from '@vip/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ConsulHttp, KvEntry } from './consul-http.js';
import { commonPrefix, directoryOf, QUIET_GAP_MS, WatchHub } from './watch.js';

// The blocking-query rules of watch.ts, against a scripted agent: each
// listPrefix call is recorded (the prefix, the index it waits on, whether it
// is consistent) and answered from a script. What a real agent does is
// covered in test-integration/consul/adapter.test.ts; an agent cannot be made
// to answer X-Consul-Index 0 or to go back in time on cue, this fake can.

interface Call {
  readonly prefix: string;
  readonly index: number | undefined;
  readonly consistent: boolean;
}

/** A scripted answer: entries and index, an error to throw, or BLOCK: hold the call until it is aborted. */
type Answer = { entries: KvEntry[]; index: number } | Error | typeof BLOCK;
const BLOCK = Symbol('block');

function entry(id: string, createIndex: number, modifyIndex = createIndex, key = 'job'): KvEntry {
  return { Key: key, Value: JSON.stringify({ id, value: '' }), Session: 'session-1', CreateIndex: createIndex, ModifyIndex: modifyIndex, LockIndex: 1 };
}

/** A fake ConsulHttp whose listPrefix answers `script` in order (one script per prefix, given a record), then blocks until aborted. */
function scripted(scripts: Answer[] | Record<string, Answer[]>): { http: ConsulHttp; calls: Call[]; inFlight: () => number; maxInFlight: () => number } {
  const calls: Call[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const listPrefix = async (prefix: string, options: { consistent: boolean; index?: number; signal?: AbortSignal }): Promise<{ entries: KvEntry[]; index: number }> => {
    calls.push({ prefix, index: options.index, consistent: options.consistent });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      const next = (Array.isArray(scripts) ? scripts : (scripts[prefix] ?? [])).shift();
      if (next instanceof Error) throw next;
      if (next && next !== BLOCK) return await Promise.resolve(next);
      return await new Promise((_resolve, reject) => {
        options.signal?.addEventListener('abort', () => reject(options.signal!.reason), { once: true });
      });
    } finally {
      inFlight--;
    }
  };
  return { http: { listPrefix } as unknown as ConsulHttp, calls, inFlight: () => inFlight, maxInFlight: () => maxInFlight };
}

function hubOf(http: ConsulHttp, closed = new AbortController().signal): WatchHub {
  return new WatchHub({ http, waitSeconds: 30, closed });
}

/** Run the watch until it has yielded `count` holders (then stop it). */
async function take(http: ConsulHttp, count: number, key = 'job'): Promise<(Holder | null)[]> {
  const controller = new AbortController();
  const seen: (Holder | null)[] = [];
  for await (const holder of hubOf(http).watch(key, controller.signal)) {
    seen.push(holder);
    if (seen.length === count) break;
  }
  controller.abort();
  return seen;
}

/** Give the watch loop time to issue the call it makes after its last answer. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

afterEach(() => {
  vi.useRealTimers();
});

describe('WatchHub: Consul blocking-query index rules', () => {
  it('never waits on index 0: an answer with X-Consul-Index 0 is waited on as 1', async () => {
    const { http, calls } = scripted([{ entries: [], index: 0 }]);
    const controller = new AbortController();
    const iterator = hubOf(http).watch('job', controller.signal);
    expect((await iterator.next()).value).toBeNull();
    // Ask for the next state: the loop sends its blocking query, which the fake holds.
    const pending = iterator.next();
    await settle();
    controller.abort();
    await pending;
    // The first read is a plain consistent read; the next blocks on 1, not on 0 (which would not block).
    expect(calls).toEqual([
      { prefix: 'job', index: 0, consistent: true },
      { prefix: 'job', index: 1, consistent: false },
    ]);
  });

  it('an index that goes backwards resets to 0: a fresh consistent read, and the order of terms starts over', async () => {
    const { http, calls } = scripted([
      { entries: [entry('a', 100)], index: 120 },
      // The agent went back in time (a -dev agent restarted, a snapshot restore): set aside, read again.
      { entries: [entry('stale', 90)], index: 95 },
      { entries: [entry('b', 40)], index: 96 },
    ]);
    const seen = await take(http, 2);
    // 'b' has a smaller token than 'a' and is still shown: the old order was forgotten with the old index.
    expect(seen.map((holder) => holder?.id)).toEqual(['a', 'b']);
    expect(seen[1]?.token).toBe(40n);
    // (The loop runs ahead of its consumer: what it sends after its last answer is left out.)
    expect(calls.slice(0, 3).map(({ index, consistent }) => ({ index, consistent }))).toEqual([
      { index: 0, consistent: true },
      { index: 120, consistent: false },
      { index: 0, consistent: true },
    ]);
  });

  it('without a reset, an older holder after a newer one is never yielded', async () => {
    const { http } = scripted([
      { entries: [entry('a', 100)], index: 120 },
      // An index that moved forward but an entry from an older term (a stale server): skipped.
      { entries: [entry('old', 50)], index: 130 },
      { entries: [], index: 140 },
    ]);
    const seen = await take(http, 2);
    expect(seen.map((holder) => holder?.id ?? null)).toEqual(['a', null]);
  });

  it('reads only its own key out of an answer that carries others under the prefix', async () => {
    const { http } = scripted([
      // "job" is free; "job-2" (same prefix) is held: not ours.
      { entries: [entry('other', 10, 10, 'job-2')], index: 20 },
      { entries: [entry('other', 10, 10, 'job-2'), entry('me', 30, 30, 'job')], index: 30 },
    ]);
    const seen = await take(http, 2);
    expect(seen.map((holder) => holder?.id ?? null)).toEqual([null, 'me']);
  });
});

describe('WatchHub: one blocking query per directory', () => {
  it('the watches of keys in one directory share one query on their common prefix, and each reads its own holder', async () => {
    const { http, calls, maxInFlight } = scripted([
      { entries: [entry('x', 5, 5, 'jobs/a'), entry('y', 6, 6, 'jobs/b'), entry('z', 7, 7, 'jobs/c')], index: 7 },
    ]);
    const hub = hubOf(http);
    const controller = new AbortController();
    const iterators = ['jobs/a', 'jobs/b', 'jobs/c'].map((key) => hub.watch(key, controller.signal));
    // All three join in the same tick: the group's prefix has shrunk to what they share before the first query goes.
    const firsts = await Promise.all(iterators.map((iterator) => iterator.next()));
    expect(firsts.map((result) => (result.value as Holder).id)).toEqual(['x', 'y', 'z']);
    expect(hub.queries).toBe(1);
    expect(maxInFlight()).toBe(1);
    expect(calls[0]).toEqual({ prefix: 'jobs/', index: 0, consistent: true });
    controller.abort();
    await Promise.all(iterators.map((iterator) => iterator.next()));
    expect(hub.queries).toBe(0);
  });

  it('a key that shares the prefix joins without a query of its own and gets the last answer at once', async () => {
    const { http, calls } = scripted([{ entries: [entry('x', 5, 5, 'jobs/a'), entry('y', 6, 6, 'jobs/ab')], index: 7 }]);
    const hub = hubOf(http);
    const controller = new AbortController();
    const first = hub.watch('jobs/a', controller.signal);
    expect(((await first.next()).value as Holder).id).toBe('x');
    const pending = first.next();
    await settle();
    // "jobs/ab" starts with the group's prefix "jobs/a": served from the answer in hand.
    const second = hub.watch('jobs/ab', controller.signal);
    expect(((await second.next()).value as Holder).id).toBe('y');
    expect(calls.map((call) => call.prefix)).toEqual(['jobs/a', 'jobs/a']);
    controller.abort();
    await Promise.all([pending, second.next()]);
  });

  it('a key that does not share the prefix shortens it: the query starts again from a consistent read', async () => {
    const { http, calls } = scripted([
      { entries: [entry('x', 5, 5, 'jobs/a')], index: 7 },
      BLOCK,
      { entries: [entry('x', 5, 5, 'jobs/a'), entry('y', 6, 6, 'jobs/b')], index: 7 },
    ]);
    const hub = hubOf(http);
    const controller = new AbortController();
    const first = hub.watch('jobs/a', controller.signal);
    expect(((await first.next()).value as Holder).id).toBe('x');
    const pending = first.next();
    await settle(); // the blocking query on "jobs/a" is out
    const second = hub.watch('jobs/b', controller.signal);
    expect(((await second.next()).value as Holder).id).toBe('y');
    expect(calls.slice(0, 3)).toEqual([
      { prefix: 'jobs/a', index: 0, consistent: true },
      { prefix: 'jobs/a', index: 7, consistent: false },
      { prefix: 'jobs/', index: 0, consistent: true },
    ]);
    controller.abort();
    await Promise.all([pending, second.next()]);
  });

  it('keys in different directories have a query each', async () => {
    const { http, calls } = scripted({ 'a/job': [{ entries: [], index: 3 }], 'b/job': [{ entries: [], index: 3 }] });
    const hub = hubOf(http);
    const controller = new AbortController();
    const iterators = ['a/job', 'b/job'].map((key) => hub.watch(key, controller.signal));
    await Promise.all(iterators.map((iterator) => iterator.next()));
    expect(hub.queries).toBe(2);
    expect([...new Set(calls.map((call) => call.prefix))].sort()).toEqual(['a/job', 'b/job']);
    controller.abort();
    await Promise.all(iterators.map((iterator) => iterator.next()));
  });
});

describe('WatchHub: blocking queries that bring no news are rate-limited', () => {
  it('after an answer that changed nothing, the next query waits until QUIET_GAP_MS after the previous one was sent', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { http, calls } = scripted([
      { entries: [], index: 5 },
      // Woken by a write elsewhere: the index moved, the key is still free.
      { entries: [], index: 6 },
      { entries: [], index: 7 },
    ]);
    const controller = new AbortController();
    const iterator = hubOf(http).watch('job', controller.signal);
    expect((await iterator.next()).value).toBeNull();
    const pending = iterator.next();
    await settle();
    // The first answer was news (the first holder): the blocking query went at once; its answer was not.
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(QUIET_GAP_MS - 1);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(3);
    controller.abort();
    await pending;
  });

  it('an answer with news is followed by the next query at once', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    const { http, calls } = scripted([
      { entries: [], index: 5 },
      { entries: [entry('a', 6)], index: 6 },
    ]);
    const controller = new AbortController();
    const iterator = hubOf(http).watch('job', controller.signal);
    expect((await iterator.next()).value).toBeNull();
    expect(((await iterator.next()).value as Holder).id).toBe('a');
    const pending = iterator.next();
    await settle();
    expect(calls.map((call) => call.index)).toEqual([0, 5, 6]);
    controller.abort();
    await pending;
  });
});

describe('WatchHub: errors', () => {
  const transient = (): Error => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8500'), { code: 'ECONNREFUSED' });

  it('an error before the first answer ends the watch with it', async () => {
    const { http } = scripted([transient()]);
    const iterator = hubOf(http).watch('job', new AbortController().signal);
    await expect(iterator.next()).rejects.toThrow('ECONNREFUSED');
  });

  it('a transient error after an answer is reported as trouble and retried with a consistent read; recovery is reported', async () => {
    const { http, calls } = scripted([{ entries: [], index: 5 }, transient(), { entries: [entry('a', 9)], index: 9 }]);
    const trouble: (string | null)[] = [];
    const controller = new AbortController();
    const iterator = hubOf(http).watch('job', controller.signal, (error) => trouble.push(error?.message ?? null));
    expect((await iterator.next()).value).toBeNull();
    expect(((await iterator.next()).value as Holder).id).toBe('a');
    expect(trouble).toEqual(['connect ECONNREFUSED 127.0.0.1:8500', null]);
    expect(calls.slice(0, 3).map(({ index, consistent }) => ({ index, consistent }))).toEqual([
      { index: 0, consistent: true },
      { index: 5, consistent: false },
      { index: 0, consistent: true },
    ]);
    controller.abort();
  });

  it('a refusal (4xx) ends every watch of the group, answered or not', async () => {
    const refusal = Object.assign(new Error('Permission denied'), { response: { statusCode: 403, headers: {} } });
    const { http } = scripted([{ entries: [], index: 5 }, refusal]);
    const iterator = hubOf(http).watch('job', new AbortController().signal);
    expect((await iterator.next()).value).toBeNull();
    await expect(iterator.next()).rejects.toThrow('Permission denied');
  });
});

describe('WatchHub: the store-wide closed signal', () => {
  it('keeps one listener per group, none once the group has no watch left', async () => {
    const closed = new AbortController();
    const hub = hubOf(scripted([{ entries: [], index: 5 }]).http, closed.signal);
    // Ended by the consumer leaving the loop.
    for await (const holder of hub.watch('job', new AbortController().signal)) {
      expect(holder).toBeNull();
      break;
    }
    await settle();
    expect(getEventListeners(closed.signal, 'abort')).toHaveLength(0);
    // Two watches of one directory, ended by their signal while a blocking query is pending.
    const second = new AbortController();
    const hub2 = hubOf(scripted([{ entries: [], index: 5 }]).http, closed.signal);
    const iterators = [hub2.watch('dir/a', second.signal), hub2.watch('dir/b', second.signal)];
    await Promise.all(iterators.map((iterator) => iterator.next()));
    const pending = iterators.map((iterator) => iterator.next());
    await settle();
    expect(getEventListeners(closed.signal, 'abort')).toHaveLength(1);
    second.abort();
    expect(await Promise.all(pending)).toEqual([
      { done: true, value: undefined },
      { done: true, value: undefined },
    ]);
    await settle();
    expect(getEventListeners(closed.signal, 'abort')).toHaveLength(0);
  });

  it('ends with an error when the store closes under it', async () => {
    const closed = new AbortController();
    const iterator = hubOf(scripted([{ entries: [], index: 5 }]).http, closed.signal).watch('job', new AbortController().signal);
    await iterator.next();
    const pending = iterator.next();
    await settle();
    closed.abort();
    await expect(pending).rejects.toThrow('ConsulStore: the store was closed');
  });
});

describe('grouping keys', () => {
  it('a key belongs to its directory', () => {
    expect(directoryOf('jobs/nightly')).toBe('jobs/');
    expect(directoryOf('a/b/c')).toBe('a/b/');
    expect(directoryOf('leader')).toBe('');
  });

  it('keys outside any directory are watched one query each, never by a query on the whole KV store (prefix "")', async () => {
    const agent = scripted({ a: [{ entries: [], index: 5 }], b: [{ entries: [], index: 6 }] });
    const hub = hubOf(agent.http);
    const controller = new AbortController();
    const first = hub.watch('a', controller.signal)[Symbol.asyncIterator]();
    const second = hub.watch('b', controller.signal)[Symbol.asyncIterator]();
    expect(await Promise.all([first.next(), second.next()])).toEqual([
      { done: false, value: null },
      { done: false, value: null },
    ]);
    expect(new Set(agent.calls.map((call) => call.prefix))).toEqual(new Set(['a', 'b']));
    expect(hub.queries).toBe(2);
    controller.abort();
  });

  it('the common prefix never splits a surrogate pair', () => {
    expect(commonPrefix('jobs/a', 'jobs/b')).toBe('jobs/');
    expect(commonPrefix('job', 'job-2')).toBe('job');
    // U+1F600 and U+1F601 share their high surrogate.
    expect(commonPrefix('x\u{1F600}', 'x\u{1F601}')).toBe('x');
  });
});
