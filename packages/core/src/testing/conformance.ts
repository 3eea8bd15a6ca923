/**
 * The conformance kit: the behaviour every `LockStore` adapter must show
 * against a real server. Call `describeLockStore` from a vitest test file of
 * the adapter; see docs/writing-an-adapter.md.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Claim, Holder, LockStore, SwapResult } from '../store.js';

/** A store client whose connection the kit can cut, to play a partition or a crash. */
export interface PartitionableStore {
  readonly store: LockStore;
  /** From now on the store's requests must not reach the server (hang or fail). */
  partition(): void | Promise<void>;
  /** Let requests through again. */
  heal(): void | Promise<void>;
}

export interface ConformanceOptions {
  /** TTL in seconds for ordinary holds; at least the store's minimum. */
  ttl: number;
  /**
   * Server-side expiry: a hold written with `ttl` whose client is cut off must
   * be gone within `within` seconds of the cut (etcd: ttl + ~1 s; Consul: 2 × ttl + a little).
   */
  expiry: { ttl: number; within: number };
  /**
   * Makes a store client whose connection can be cut (a TCP proxy in front of
   * a real server, or `FaultyStore` for MemoryStore). Needed for the "unknown"
   * refresh outcome and for expiry; without it those tests are reported as
   * skipped, never as passed.
   */
  partitionable?: () => Promise<PartitionableStore>;
  /** Prefix for the keys the kit uses; every test adds a random part. Default `/vip-conformance/`. */
  keyPrefix?: string;
  /** Per-test timeout in ms. Default: enough for the expiry test. */
  timeout?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Wait until `condition` holds, polling; fail with `what` after `ms`. */
async function eventually(condition: () => boolean, ms: number, what: string): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * Collects what a store's watch yields, for assertions in adapter tests:
 * `await recorder.until((holder) => holder === null, 5000, 'the key freed')`.
 */
export class WatchRecorder {
  readonly seen: (Holder | null)[] = [];
  readonly controller = new AbortController();
  error: unknown;
  readonly done: Promise<void>;

  constructor(store: LockStore, key: string) {
    this.done = (async () => {
      try {
        for await (const holder of store.watch(key, this.controller.signal)) this.seen.push(holder);
      } catch (error) {
        if (!this.controller.signal.aborted) this.error = error;
      }
    })();
  }

  last(): Holder | null | undefined {
    return this.seen[this.seen.length - 1];
  }

  /** Wait until `predicate` holds for the last state seen; returns the ms waited. Throws the watch's error. */
  async until(predicate: (holder: Holder | null | undefined) => boolean, ms: number, what: string): Promise<number> {
    const start = Date.now();
    while (!predicate(this.last())) {
      if (this.error !== undefined) throw this.error;
      if (Date.now() - start > ms) {
        const seen = JSON.stringify(this.seen, (_, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value));
        throw new Error(`timed out after ${ms} ms waiting for the watch to show ${what}; saw ${seen}`);
      }
      await sleep(10);
    }
    if (this.error !== undefined) throw this.error;
    return Date.now() - start;
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.done;
  }
}

/**
 * Promise 3 of the store contract, checked against a server: a hold confirmed
 * by a call *sent* at time t lives on the server until at least t + ttl, even
 * when its client is cut off right after the answer. `confirm` makes the hold
 * (or confirms it again) and answers the confirmed holder; the check then cuts
 * the client and watches, from `observer`, when the server frees the key.
 * Rejects when the key is freed before t + ttl, or not within `withinSeconds`.
 * Exported so that a test can show the kit fails a store that breaks the promise.
 */
export async function expectHoldLivesTtlFromSend(
  cut: PartitionableStore,
  observer: LockStore,
  key: string,
  ttl: number,
  withinSeconds: number,
  confirm: () => Promise<Holder | null>,
): Promise<void> {
  const sentAt = performance.now();
  const held = await confirm();
  if (held === null) throw new Error(`the hold on "${key}" was not confirmed`);
  await cut.partition();
  const recorder = new WatchRecorder(observer, key);
  try {
    await recorder.until((holder) => holder === null, withinSeconds * 1000, 'the key freed by expiry');
  } finally {
    await recorder.stop();
  }
  // The watch sees the key free no sooner than the server freed it.
  const lived = performance.now() - sentAt;
  if (lived < ttl * 1000) {
    throw new Error(`the hold confirmed on "${key}" was freed ${Math.round(lived)} ms after the confirming call was sent, before its ttl of ${ttl * 1000} ms (store contract, promise 3)`);
  }
}

const claim = (id: string, value = `value of ${id}`): Claim => ({ id, value });

function expectWon(result: SwapResult, wanted: Claim): Holder {
  expect(result.ok, 'compareAndSwap should have succeeded').toBe(true);
  const holder = result.holder;
  expect(holder).not.toBeNull();
  expect(holder!.id).toBe(wanted.id);
  expect(holder!.value).toBe(wanted.value);
  expect(typeof holder!.token).toBe('bigint');
  return holder!;
}

export function describeLockStore(
  name: string,
  factory: () => LockStore | Promise<LockStore>,
  options: ConformanceOptions,
): void {
  const { ttl } = options;
  const prefix = options.keyPrefix ?? '/vip-conformance/';
  const watchMs = 10_000;
  const timeout = options.timeout ?? Math.max(30_000, (options.expiry.within + 20) * 1000);
  const stores: LockStore[] = [];
  const recorders: WatchRecorder[] = [];
  const cuts: PartitionableStore[] = [];

  const open = async (): Promise<LockStore> => {
    const store = await factory();
    stores.push(store);
    return store;
  };
  const watch = (store: LockStore, key: string): WatchRecorder => {
    const recorder = new WatchRecorder(store, key);
    recorders.push(recorder);
    return recorder;
  };
  const freshKey = (label: string): string => `${prefix}${label}-${randomBytes(4).toString('hex')}`;
  const test = (title: string, body: () => Promise<void>): void => {
    it(title, body, timeout);
  };
  const withPartition = (title: string, body: (cut: PartitionableStore) => Promise<void>): void => {
    if (!options.partitionable) {
      it.skip(`${title} (needs options.partitionable)`, () => {});
      return;
    }
    const make = options.partitionable;
    test(title, async () => {
      const cut = await make();
      cuts.push(cut);
      stores.push(cut.store);
      await body(cut);
    });
  };

  describe(`LockStore conformance: ${name}`, () => {
    afterEach(async () => {
      for (const cut of cuts.splice(0)) await cut.heal();
      await Promise.all(recorders.splice(0).map((recorder) => recorder.stop()));
      await Promise.all(stores.splice(0).map((store) => store.close().catch(() => {})));
    });
    afterAll(async () => {
      await Promise.all(stores.splice(0).map((store) => store.close().catch(() => {})));
    });

    describe('compareAndSwap', () => {
      test('acquires a free key and returns the written holder with a token', async () => {
        const store = await open();
        const key = freshKey('free');
        expectWon(await store.compareAndSwap(key, null, claim('a'), ttl), claim('a'));
      });

      test('refuses to acquire a held key and says who holds it', async () => {
        const [a, b] = [await open(), await open()];
        const key = freshKey('held');
        const held = expectWon(await a.compareAndSwap(key, null, claim('a'), ttl), claim('a'));
        const refused = await b.compareAndSwap(key, null, claim('b'), ttl);
        expect(refused.ok).toBe(false);
        if (refused.holder !== null) expect(refused.holder).toEqual(held);
        // The same client may not take its own key twice either.
        expect((await a.compareAndSwap(key, null, claim('a2'), ttl)).ok).toBe(false);
      });

      test('refuses a swap whose expected holder is not the current term', async () => {
        const store = await open();
        const key = freshKey('wrong-expected');
        const held = expectWon(await store.compareAndSwap(key, null, claim('a'), ttl), claim('a'));
        const wrongToken = { ...held, token: held.token + 1000n };
        const wrongId = { ...held, id: 'someone-else' };
        expect((await store.compareAndSwap(key, wrongToken, null, ttl)).ok).toBe(false);
        expect((await store.compareAndSwap(key, wrongId, null, ttl)).ok).toBe(false);
        expect(await store.refresh(key, held, ttl)).toEqual(held);
      });

      test('rewriting our own term keeps its token and publishes the new value', async () => {
        const [a, observer] = [await open(), await open()];
        const key = freshKey('rewrite');
        const held = expectWon(await a.compareAndSwap(key, null, claim('a', 'first'), ttl), claim('a', 'first'));
        const recorder = watch(observer, key);
        await recorder.until((holder) => holder?.value === 'first', watchMs, 'the first value');
        const rewritten = expectWon(await a.compareAndSwap(key, held, claim('a', 'second'), ttl), claim('a', 'second'));
        expect(rewritten.token).toBe(held.token);
        await recorder.until((holder) => holder?.value === 'second', watchMs, 'the new value');
        expect(recorder.last()).toEqual(rewritten);
        expect(await a.refresh(key, rewritten, ttl)).toEqual(rewritten);
      });

      test('a release frees the key for the next contender at once', async () => {
        const [a, b] = [await open(), await open()];
        const key = freshKey('release');
        const held = expectWon(await a.compareAndSwap(key, null, claim('a'), ttl), claim('a'));
        expect(await a.compareAndSwap(key, held, null, ttl)).toEqual({ ok: true, holder: null });
        expectWon(await b.compareAndSwap(key, null, claim('b'), ttl), claim('b'));
        // Releasing a term that is already over does nothing.
        expect((await a.compareAndSwap(key, held, null, ttl)).ok).toBe(false);
      });

      test('only the client that wrote a hold can release it, even with the same id', async () => {
        const [a, b] = [await open(), await open()];
        const key = freshKey('ownership');
        const held = expectWon(await a.compareAndSwap(key, null, claim('same-id'), ttl), claim('same-id'));
        expect((await b.compareAndSwap(key, held, null, ttl)).ok).toBe(false);
        expect((await b.compareAndSwap(key, held, claim('same-id', 'stolen'), ttl)).ok).toBe(false);
        expect(await b.refresh(key, held, ttl)).toBeNull();
        expect(await a.refresh(key, held, ttl)).toEqual(held);
      });

      test('50 concurrent contenders on 5 clients: exactly one wins', async () => {
        const clients = await Promise.all(Array.from({ length: 5 }, () => open()));
        const key = freshKey('contenders');
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => clients[i % clients.length]!.compareAndSwap(key, null, claim(`c${i}`), ttl)),
        );
        const winners = results.filter((result) => result.ok);
        expect(winners).toHaveLength(1);
        const winner = winners[0]!.holder!;
        const recorder = watch(clients[0]!, key);
        await recorder.until((holder) => holder !== undefined, watchMs, 'the first state');
        expect(recorder.seen[0]).toEqual(winner);
      });
    });

    describe('refresh', () => {
      test('resolves the same holder while the hold is ours', async () => {
        const store = await open();
        const key = freshKey('refresh-ok');
        const held = expectWon(await store.compareAndSwap(key, null, claim('a'), ttl), claim('a'));
        for (let i = 0; i < 3; i++) expect(await store.refresh(key, held, ttl)).toEqual(held);
      });

      test('resolves null once the hold is definitely gone (released, or taken by another)', async () => {
        const [a, b] = [await open(), await open()];
        const key = freshKey('refresh-lost');
        const held = expectWon(await a.compareAndSwap(key, null, claim('a'), ttl), claim('a'));
        expect((await a.compareAndSwap(key, held, null, ttl)).ok).toBe(true);
        expect(await a.refresh(key, held, ttl)).toBeNull();
        expectWon(await b.compareAndSwap(key, null, claim('b'), ttl), claim('b'));
        expect(await a.refresh(key, held, ttl)).toBeNull();
      });

      withPartition('never confirms a hold while the store is unreachable (rejects or stays pending)', async (cut) => {
        const key = freshKey('refresh-unknown');
        const held = expectWon(await cut.store.compareAndSwap(key, null, claim('a'), ttl), claim('a'));
        await cut.partition();
        const controller = new AbortController();
        const outcome = cut.store.refresh(key, held, ttl, controller.signal).then(
          (value) => ({ settled: 'resolved' as const, value }),
          (error: unknown) => ({ settled: 'rejected' as const, error }),
        );
        const pending = sleep(Math.min(3000, (ttl * 1000) / 2)).then(() => ({ settled: 'pending' as const }));
        const first = await Promise.race([outcome, pending]);
        controller.abort(new Error('conformance: giving up on the refresh'));
        expect(first.settled, 'a refresh during a partition must not resolve').not.toBe('resolved');
        await cut.heal();
        await outcome;
      });
    });

    describe('expiry on the server', () => {
      withPartition('a hold whose client is cut off is freed by the server after its ttl', async (cut) => {
        const observer = await open();
        const minTtl = cut.store.limits?.minTtl;
        if (minTtl !== undefined && options.expiry.ttl < minTtl) {
          throw new Error(`options.expiry.ttl (${options.expiry.ttl} s) is below this store's minimum TTL (${minTtl} s): the server would not expire it on that ttl`);
        }
        const key = freshKey('expiry');
        const held = expectWon(await cut.store.compareAndSwap(key, null, claim('a'), options.expiry.ttl), claim('a'));
        const recorder = watch(observer, key);
        await recorder.until((holder) => holder?.token === held.token, watchMs, 'the hold');
        await cut.partition();
        await recorder.until((holder) => holder === null, options.expiry.within * 1000, 'the key freed by expiry');
        // A store may keep a key it freed by expiry unlockable for a while (Consul's lock delay);
        // it says so with { ok: false, holder: null }, "free but not yet", and the key must then become lockable.
        const lockableBy = Date.now() + options.expiry.within * 1000;
        let next = await observer.compareAndSwap(key, null, claim('b'), ttl);
        while (!next.ok && next.holder === null && Date.now() < lockableBy) {
          await sleep(250);
          next = await observer.compareAndSwap(key, null, claim('b'), ttl);
        }
        expectWon(next, claim('b'));
      });
    });

    describe('a confirmed hold lives ttl from the send (promise 3)', () => {
      withPartition('a hold won by compareAndSwap sent at t is not freed before t + ttl', async (cut) => {
        const observer = await open();
        const key = freshKey('lifetime-cas');
        await expectHoldLivesTtlFromSend(cut, observer, key, options.expiry.ttl, options.expiry.within, async () =>
          expectWon(await cut.store.compareAndSwap(key, null, claim('a'), options.expiry.ttl), claim('a')),
        );
      });

      withPartition('a hold refreshed at t is not freed before t + ttl, also beside another hold of the same client', async (cut) => {
        const observer = await open();
        const [key, other] = [freshKey('lifetime-refresh'), freshKey('lifetime-other')];
        const held = expectWon(await cut.store.compareAndSwap(key, null, claim('a'), options.expiry.ttl), claim('a'));
        // A second hold of the same client (one lease or session for both, in most adapters).
        expectWon(await cut.store.compareAndSwap(other, null, claim('a'), options.expiry.ttl), claim('a'));
        await sleep((options.expiry.ttl * 1000) / 2);
        await expectHoldLivesTtlFromSend(cut, observer, key, options.expiry.ttl, options.expiry.within, () =>
          cut.store.refresh(key, held, options.expiry.ttl),
        );
      });
    });

    describe('watch', () => {
      test('yields the current state first: null for a free key, else the holder', async () => {
        const [a, b] = [await open(), await open()];
        const free = freshKey('watch-free');
        const recorder = watch(b, free);
        await recorder.until((holder) => holder !== undefined, watchMs, 'the first state');
        expect(recorder.seen[0]).toBeNull();
        const key = freshKey('watch-held');
        const held = expectWon(await a.compareAndSwap(key, null, claim('a'), ttl), claim('a'));
        const second = watch(b, key);
        await second.until((holder) => holder !== undefined, watchMs, 'the first state');
        expect(second.seen[0]).toEqual(held);
      });

      test('then yields every change, in order', async () => {
        const [a, b, observer] = [await open(), await open(), await open()];
        const key = freshKey('watch-changes');
        const recorder = watch(observer, key);
        await recorder.until((holder) => holder === null, watchMs, 'the free key');
        const first = expectWon(await a.compareAndSwap(key, null, claim('a'), ttl), claim('a'));
        await recorder.until((holder) => holder?.token === first.token, watchMs, 'the first holder');
        await a.compareAndSwap(key, first, null, ttl);
        await recorder.until((holder) => holder === null, watchMs, 'the release');
        const second = expectWon(await b.compareAndSwap(key, null, claim('b'), ttl), claim('b'));
        await recorder.until((holder) => holder?.token === second.token, watchMs, 'the second holder');
        // Refreshes are not changes.
        await b.refresh(key, second, ttl);
        await sleep(300);
        expect(recorder.seen).toEqual([null, first, null, second]);
      });

      test('never yields an older holder after a newer one, under churn', async () => {
        const clients = await Promise.all([open(), open(), open()]);
        const key = freshKey('watch-churn');
        const recorder = watch(clients[0]!, key);
        await recorder.until((holder) => holder !== undefined, watchMs, 'the first state');
        let last: Holder | null = null;
        for (let round = 0; round < 15; round++) {
          const client = clients[round % clients.length]!;
          const result = await client.compareAndSwap(key, null, claim(`r${round}`), ttl);
          if (result.ok && result.holder) {
            last = result.holder;
            await client.compareAndSwap(key, result.holder, null, ttl);
          }
        }
        const final = expectWon(await clients[1]!.compareAndSwap(key, null, claim('final'), ttl), claim('final'));
        expect(last === null || final.token > last.token).toBe(true);
        await recorder.until((holder) => holder?.token === final.token, watchMs, 'the final holder');
        const tokens = recorder.seen.filter((holder): holder is Holder => holder !== null).map((holder) => holder.token);
        for (let i = 1; i < tokens.length; i++) expect(tokens[i]! > tokens[i - 1]!).toBe(true);
      });

      test('ends when its signal aborts', async () => {
        const store = await open();
        const recorder = new WatchRecorder(store, freshKey('watch-abort'));
        await recorder.until((holder) => holder !== undefined, watchMs, 'the first state');
        recorder.controller.abort();
        await expect(
          Promise.race([recorder.done.then(() => 'ended'), sleep(5000).then(() => 'still running')]),
        ).resolves.toBe('ended');
      });
    });

    describe('fencing tokens', () => {
      test('strictly increase from term to term, across clients', async () => {
        const [a, b] = [await open(), await open()];
        const key = freshKey('tokens');
        const tokens: bigint[] = [];
        for (const [client, id] of [[a, 'a'], [b, 'b'], [a, 'a'], [a, 'a'], [b, 'b']] as const) {
          const held = expectWon(await client.compareAndSwap(key, null, claim(id), ttl), claim(id));
          tokens.push(held.token);
          expect((await client.compareAndSwap(key, held, null, ttl)).ok).toBe(true);
        }
        for (let i = 1; i < tokens.length; i++) expect(tokens[i]! > tokens[i - 1]!).toBe(true);
      });

      test('stay constant within a term, as the leader and every follower see it', async () => {
        const [a, observer] = [await open(), await open()];
        const key = freshKey('token-term');
        const held = expectWon(await a.compareAndSwap(key, null, claim('a'), ttl), claim('a'));
        expect((await a.refresh(key, held, ttl))?.token).toBe(held.token);
        expect((await a.refresh(key, held, ttl))?.token).toBe(held.token);
        const recorder = watch(observer, key);
        await recorder.until((holder) => holder !== undefined, watchMs, 'the holder');
        expect(recorder.seen[0]?.token).toBe(held.token);
      });
    });

    describe('values and keys', () => {
      const values: [string, string][] = [
        ['empty', ''],
        ['the old separator', 'a:::b:::c'],
        ['newlines and tabs', 'line 1\nline 2\r\n\tend'],
        ['unicode', 'élection 選挙 🗳️ \u0000 \uFFFD'],
        ['JSON-looking', '{"id":"x","value":"y"}'],
        ['64 KiB (or the most the store declares in limits.maxValueBytes)', 'x'.repeat(64 * 1024 - 7) + 'the end'],
      ];
      for (const [label, given] of values) {
        test(`a value round-trips exactly: ${label}`, async () => {
          const [a, observer] = [await open(), await open()];
          const key = freshKey('value');
          const id = 'id with spaces/and:colons ü';
          // A store that declares a smaller limit is held to it: the largest value it accepts must round-trip.
          const room = (a.limits?.maxValueBytes ?? Number.POSITIVE_INFINITY) - Buffer.byteLength(id);
          const value = Buffer.byteLength(given) <= room ? given : 'x'.repeat(room - 7) + 'the end';
          const wanted = claim(id, value);
          const held = expectWon(await a.compareAndSwap(key, null, wanted, ttl), wanted);
          const recorder = watch(observer, key);
          await recorder.until((holder) => holder !== undefined, watchMs, 'the holder');
          expect(recorder.seen[0]).toEqual(held);
          expect(recorder.seen[0]?.value).toBe(value);
        });
      }

      test('keys do not leak into each other (/a vs /a/b), in either direction', async () => {
        const [a, b] = [await open(), await open()];
        const parent = freshKey('nest');
        const child = `${parent}/b`;
        const childWatch = watch(b, child);
        const parentWatch = watch(a, parent);
        await childWatch.until((holder) => holder === null, watchMs, 'the free child key');
        await parentWatch.until((holder) => holder === null, watchMs, 'the free parent key');
        const onParent = expectWon(await a.compareAndSwap(parent, null, claim('a'), ttl), claim('a'));
        await parentWatch.until((holder) => holder?.token === onParent.token, watchMs, 'the parent holder');
        const onChild = expectWon(await b.compareAndSwap(child, null, claim('b'), ttl), claim('b'));
        await childWatch.until((holder) => holder?.token === onChild.token, watchMs, 'the child holder');
        expect((await a.compareAndSwap(parent, onParent, null, ttl)).ok).toBe(true);
        expect(await b.refresh(child, onChild, ttl)).toEqual(onChild);
        await parentWatch.until((holder) => holder === null, watchMs, 'the parent key released');
        // A write to the child after the parent's last change: a prefix watch on the parent would see it.
        expect((await b.compareAndSwap(child, onChild, null, ttl)).ok).toBe(true);
        await childWatch.until((holder) => holder === null, watchMs, 'the child key released');
        await sleep(300);
        expect(childWatch.seen).toEqual([null, onChild, null]);
        expect(parentWatch.seen).toEqual([null, onParent, null]);
      });
    });

    describe('close()', () => {
      test('leaves no open handles behind', async () => {
        const handles = (): number =>
          process.getActiveResourcesInfo().filter((kind) => kind !== 'TTYWrap' && kind !== 'FSReqCallback').length;
        await sleep(200);
        const before = handles();
        const store = await factory();
        const key = freshKey('close');
        const held = expectWon(await store.compareAndSwap(key, null, claim('a'), ttl), claim('a'));
        await store.refresh(key, held, ttl);
        const recorder = new WatchRecorder(store, key);
        await recorder.until((holder) => holder !== undefined, watchMs, 'the holder');
        await recorder.stop();
        await store.compareAndSwap(key, held, null, ttl);
        await store.close();
        let after = handles();
        for (let i = 0; i < 50 && after > before; i++) {
          await sleep(100);
          after = handles();
        }
        expect(after, `open handles after close(): ${process.getActiveResourcesInfo().join(', ')}`).toBeLessThanOrEqual(before);
      });
    });
  });
}
