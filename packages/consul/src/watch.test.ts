import { getEventListeners } from 'node:events';
import type { Holder } from '@vip/core';
import { describe, expect, it } from 'vitest';
import type { ConsulHttp, KvEntry } from './consul-http.js';
import { watchHolder } from './watch.js';

// The blocking-query index rules of watch.ts, against a scripted agent: each
// readKey call is recorded (the index it waits on, whether it is consistent)
// and answered from a script. What a real agent does is covered in
// test-integration/consul/adapter.test.ts; an agent cannot be made to answer
// X-Consul-Index 0 or to go back in time on cue, this fake can.

interface Call {
  readonly index: number | undefined;
  readonly consistent: boolean;
}

type Answer = { entry: KvEntry | undefined; index: number };

function entry(id: string, createIndex: number, modifyIndex = createIndex): KvEntry {
  return { Key: 'job', Value: JSON.stringify({ id, value: '' }), Session: 'session-1', CreateIndex: createIndex, ModifyIndex: modifyIndex, LockIndex: 1 };
}

/** A fake ConsulHttp whose readKey answers `script` in order, then blocks until aborted. */
function scripted(script: Answer[]): { http: ConsulHttp; calls: Call[] } {
  const calls: Call[] = [];
  const readKey = (_key: string, options: { consistent: boolean; index?: number; signal?: AbortSignal }): Promise<Answer> => {
    calls.push({ index: options.index, consistent: options.consistent });
    const next = script.shift();
    if (next) return Promise.resolve(next);
    return new Promise((_resolve, reject) => {
      options.signal?.addEventListener('abort', () => reject(options.signal!.reason), { once: true });
    });
  };
  return { http: { readKey } as unknown as ConsulHttp, calls };
}

/** Run the watch until it has yielded `count` holders (then stop it). */
async function take(http: ConsulHttp, count: number): Promise<(Holder | null)[]> {
  const controller = new AbortController();
  const closed = new AbortController().signal;
  const seen: (Holder | null)[] = [];
  for await (const holder of watchHolder({ http, waitSeconds: 30, closed }, 'job', controller.signal)) {
    seen.push(holder);
    if (seen.length === count) break;
  }
  controller.abort();
  return seen;
}

/** Give the watch loop time to issue the call it makes after its last answer. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('watchHolder: Consul blocking-query index rules', () => {
  it('never waits on index 0: an answer with X-Consul-Index 0 is waited on as 1', async () => {
    const { http, calls } = scripted([{ entry: undefined, index: 0 }]);
    const controller = new AbortController();
    const iterator = watchHolder({ http, waitSeconds: 30, closed: new AbortController().signal }, 'job', controller.signal);
    expect((await iterator.next()).value).toBeNull();
    // Ask for the next state: the loop sends its blocking query, which the fake holds.
    const pending = iterator.next();
    await settle();
    controller.abort();
    await pending;
    // The first read is a plain consistent read; the next blocks on 1, not on 0 (which would not block).
    expect(calls).toEqual([
      { index: 0, consistent: true },
      { index: 1, consistent: false },
    ]);
  });

  it('an index that goes backwards resets to 0: a fresh consistent read, and the order of terms starts over', async () => {
    const { http, calls } = scripted([
      { entry: entry('a', 100), index: 120 },
      // The agent went back in time (a -dev agent restarted, a snapshot restore): set aside, read again.
      { entry: entry('stale', 90), index: 95 },
      { entry: entry('b', 40), index: 96 },
    ]);
    const seen = await take(http, 2);
    // 'b' has a smaller token than 'a' and is still shown: the old order was forgotten with the old index.
    expect(seen.map((holder) => holder?.id)).toEqual(['a', 'b']);
    expect(seen[1]?.token).toBe(40n);
    expect(calls).toEqual([
      { index: 0, consistent: true },
      { index: 120, consistent: false },
      { index: 0, consistent: true },
    ]);
  });

  it('without a reset, an older holder after a newer one is never yielded', async () => {
    const { http } = scripted([
      { entry: entry('a', 100), index: 120 },
      // An index that moved forward but an entry from an older term (a stale server): skipped.
      { entry: entry('old', 50), index: 130 },
      { entry: undefined, index: 140 },
    ]);
    const seen = await take(http, 2);
    expect(seen.map((holder) => holder?.id ?? null)).toEqual(['a', null]);
  });
});

describe('watchHolder: the store-wide closed signal', () => {
  it('keeps no listener of a watch that ended, by break or by its own signal', async () => {
    const closed = new AbortController();
    // Ended by the consumer leaving the loop.
    const first = new AbortController();
    for await (const holder of watchHolder({ http: scripted([{ entry: undefined, index: 5 }]).http, waitSeconds: 30, closed: closed.signal }, 'job', first.signal)) {
      expect(holder).toBeNull();
      break;
    }
    expect(getEventListeners(closed.signal, 'abort')).toHaveLength(0);
    // Ended by its signal while a blocking query is pending.
    const second = new AbortController();
    const iterator = watchHolder({ http: scripted([{ entry: undefined, index: 5 }]).http, waitSeconds: 30, closed: closed.signal }, 'job', second.signal);
    await iterator.next();
    const pending = iterator.next();
    await settle();
    expect(getEventListeners(closed.signal, 'abort')).toHaveLength(1);
    second.abort();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(getEventListeners(closed.signal, 'abort')).toHaveLength(0);
  });

  it('ends with an error when the store closes under it', async () => {
    const closed = new AbortController();
    const iterator = watchHolder({ http: scripted([{ entry: undefined, index: 5 }]).http, waitSeconds: 30, closed: closed.signal }, 'job', new AbortController().signal);
    await iterator.next();
    const pending = iterator.next();
    await settle();
    closed.abort();
    await expect(pending).rejects.toThrow('ConsulStore: the store was closed');
  });
});
