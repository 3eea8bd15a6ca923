// EtcdStore's own behaviour against a real etcd: what the conformance kit
// cannot see from outside (leases, txn guards, tokens as create revisions,
// keepalive coalescing, the shared watch stream, close semantics) and the
// faults that need a server of our own (SIGSTOP, kill, restart, a lost member,
// compaction). No mocks: every assertion is about what etcd itself holds.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Claim, Holder, LockStore } from '@vip/core';
import { WatchRecorder } from '@vip/core/testing';
import { EtcdStore, FOREIGN_HOLDER_ID, type EtcdStoreOptions } from '@vip/etcd';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { startEtcd, startProxy, uniquePrefix, type EtcdCluster } from '../harness/index.js';

type Etcd3 = EtcdStore['client'];
// The etcd3 package the adapter itself uses (test-integration does not depend on it directly).
const { Etcd3: Etcd3Client } = createRequire(new URL('../../packages/etcd/package.json', import.meta.url))('etcd3') as {
  Etcd3: new (options: { hosts: string[] }) => Etcd3;
};

const sharedEndpoints = inject('etcdEndpoints');

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const claim = (id: string, value = `value of ${id}`): Claim => ({ id, value });

async function eventually<T>(attempt: () => Promise<T | undefined> | T | undefined, ms: number, what: string): Promise<T> {
  const start = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const value = await attempt();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await sleep(50);
  }
}

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await Promise.resolve(cleanup()).catch(() => {});
});

function open(connection: ConstructorParameters<typeof EtcdStore>[0] = sharedEndpoints, options?: EtcdStoreOptions): EtcdStore {
  const store = new EtcdStore(connection, options);
  cleanups.push(() => store.close());
  return store;
}

/** A plain etcd3 client for looking at (and meddling with) what etcd holds. */
function rawClient(endpoints: string[] = sharedEndpoints): Etcd3 {
  const client = new Etcd3Client({ hosts: endpoints });
  cleanups.push(() => client.close());
  return client;
}

async function rawKv(client: Etcd3, key: string) {
  const response = await client.kv.range({ key: Buffer.from(key) });
  return response.kvs[0];
}

/** A watch recorder stopped after the test. */
function record(store: LockStore, key: string): WatchRecorder {
  const recorder = new WatchRecorder(store, key);
  cleanups.push(() => recorder.stop());
  return recorder;
}

/** A Prometheus counter or gauge of an etcd member, summed over its label sets. */
async function metric(cluster: EtcdCluster, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${cluster.endpoints[0]}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(name) && line.includes(labels) && (line[name.length] === ' ' || line[name.length] === '{'))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

describe('EtcdStore on a shared etcd', () => {
  let prefix: string;
  beforeAll(() => {
    prefix = uniquePrefix('etcd-adapter');
  });
  const key = (name: string): string => `${prefix}${name}-${Math.random().toString(36).slice(2, 8)}`;

  describe('connecting', () => {
    it('accepts a connection string, bare hosts, an array, an options object and an Etcd3 client', async () => {
      const port = new URL(sharedEndpoints[0]!).port;
      const client = rawClient();
      const stores = [
        open(`etcd://127.0.0.1:${port}`),
        open(`127.0.0.1:${port}`),
        open(sharedEndpoints),
        open({ hosts: sharedEndpoints }),
        open(client),
      ];
      for (const [i, store] of stores.entries()) {
        expect((await store.compareAndSwap(key(`form-${i}`), null, claim(`s${i}`), 5)).ok).toBe(true);
      }
      // close() leaves a client it was given open.
      await stores[4]!.close();
      const put = key('after-close');
      await client.put(put).value('still usable');
      expect(await client.get(put).string()).toBe('still usable');
    });

    it('refuses bad arguments at the call that received them, naming the argument', async () => {
      expect(() => new EtcdStore('etcd://')).toThrow('EtcdStore: connection string "etcd://" has no hosts; expected etcd://host:port');
      expect(() => new EtcdStore(42 as never)).toThrow('option "connection" must be a connection string');
      expect(() => new EtcdStore({ hosts: [] })).toThrow('option "connection.hosts"');
      expect(() => new EtcdStore(sharedEndpoints, { requestTimeout: 0 })).toThrow('option "options.requestTimeout" must be a finite number of seconds greater than 0');
      const client = rawClient();
      // A namespaced client is not an Etcd3 in the types either; JavaScript callers can still pass one.
      expect(() => new EtcdStore(client.namespace('/x/') as never)).toThrow('pass the root Etcd3 client');

      const store = open();
      const holder: Holder = { id: 'a', value: 'v', token: 1n };
      await expect(store.compareAndSwap('', null, claim('a'), 5)).rejects.toThrow('EtcdStore.compareAndSwap: option "key" must be a non-empty string (got string "")');
      for (const ttl of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '5']) {
        await expect(store.compareAndSwap('/k', null, claim('a'), ttl as number)).rejects.toThrow('option "ttl" must be a finite number of seconds greater than 0');
      }
      await expect(store.compareAndSwap('/k', { id: 'a', value: 'v', token: 1 } as never, null, 5)).rejects.toThrow('option "expected"');
      await expect(store.compareAndSwap('/k', null, { id: 1 } as never, 5)).rejects.toThrow('option "next" must be null or a claim');
      await expect(store.compareAndSwap('/k', null, claim('a'), 5, 'soon' as never)).rejects.toThrow('option "signal"');
      await expect(store.refresh('/k', null as never, 5)).rejects.toThrow('EtcdStore.refresh: option "held"');
      expect(() => store.watch('', new AbortController().signal)).toThrow('EtcdStore.watch: option "key"');
      expect(() => store.watch('/k', undefined as never)).toThrow('option "signal" must be an AbortSignal');
      await expect(store.refresh('/k', holder, 5)).resolves.toBeNull();
    });
  });

  describe('compareAndSwap', () => {
    it('acquires a free key: the token is its create revision, the key hangs on a lease of ceil(ttl) seconds', async () => {
      const store = open();
      const raw = rawClient();
      const k = key('acquire');
      const won = await store.compareAndSwap(k, null, claim('a'), 2.2);
      expect(won).toEqual({ ok: true, holder: { id: 'a', value: 'value of a', token: expect.any(BigInt) } });
      const kv = (await rawKv(raw, k))!;
      expect(BigInt(kv.create_revision)).toBe(won.holder!.token);
      expect(JSON.parse(kv.value.toString())).toEqual({ id: 'a', value: 'value of a' });
      const lease = await raw.leaseClient.leaseTimeToLive({ ID: kv.lease });
      expect(Number(lease.grantedTTL)).toBe(3); // 2.2 s rounded up, never down
    });

    it('a ttl under etcd\'s minimum lease is raised by the server, not refused', async () => {
      const store = open();
      const raw = rawClient();
      const k = key('short');
      expect((await store.compareAndSwap(k, null, claim('a'), 0.5)).ok).toBe(true);
      const lease = await raw.leaseClient.leaseTimeToLive({ ID: (await rawKv(raw, k))!.lease });
      expect(Number(lease.grantedTTL)).toBe(2); // ceil(1.5 x 1 s election timeout), etcd-io/etcd#14857
      expect(store.limits.minTtl).toBeUndefined();
    });

    it('refuses a held key and names the holder it read in the same txn', async () => {
      const [a, b] = [open(), open()];
      const k = key('held');
      const held = (await a.compareAndSwap(k, null, claim('a'), 5)).holder;
      expect(await b.compareAndSwap(k, null, claim('b'), 5)).toEqual({ ok: false, holder: held });
      expect(await a.compareAndSwap(k, null, claim('a', 'again'), 5)).toEqual({ ok: false, holder: held });
      expect(await b.compareAndSwap(k, null, null, 5)).toEqual({ ok: false, holder: held });
      expect(await b.compareAndSwap(key('free'), null, null, 5)).toEqual({ ok: true, holder: null });
    });

    it('50 concurrent contenders on 5 stores (5 leases): exactly one wins and every loser is told who', async () => {
      const stores = Array.from({ length: 5 }, () => open());
      const k = key('contenders');
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => stores[i % 5]!.compareAndSwap(k, null, claim(`c${i}`), 5)));
      const winners = results.filter((result) => result.ok);
      expect(winners).toHaveLength(1);
      for (const result of results) expect(result.holder).toEqual(winners[0]!.holder);
    });

    it('shares one lease among the holds of one ttl, and gives another ttl its own', async () => {
      const store = open();
      const raw = rawClient();
      const keys = [key('l1'), key('l2'), key('l3'), key('l4')];
      for (const [i, k] of keys.entries()) await store.compareAndSwap(k, null, claim('a'), i < 3 ? 5 : 7);
      const leases = await Promise.all(keys.map(async (k) => (await rawKv(raw, k))!.lease));
      expect(new Set(leases.slice(0, 3)).size).toBe(1);
      expect(leases[3]).not.toBe(leases[0]);
    });

    it('a rewrite keeps the token; a new ttl moves the key to that ttl\'s lease', async () => {
      const store = open();
      const raw = rawClient();
      const k = key('rewrite');
      const held = (await store.compareAndSwap(k, null, claim('a', 'first'), 5)).holder!;
      const rewritten = await store.compareAndSwap(k, held, claim('a', 'second'), 8);
      expect(rewritten).toEqual({ ok: true, holder: { id: 'a', value: 'second', token: held.token } });
      const kv = (await rawKv(raw, k))!;
      expect(BigInt(kv.create_revision)).toBe(held.token);
      expect(Number((await raw.leaseClient.leaseTimeToLive({ ID: kv.lease })).grantedTTL)).toBe(8);
      expect(await store.refresh(k, rewritten.holder!, 8)).toEqual(rewritten.holder);
    });

    it('release frees the key; a released term cannot be released again', async () => {
      const [a, b] = [open(), open()];
      const raw = rawClient();
      const k = key('release');
      const held = (await a.compareAndSwap(k, null, claim('a'), 5)).holder!;
      expect(await a.compareAndSwap(k, held, null, 5)).toEqual({ ok: true, holder: null });
      expect(await rawKv(raw, k)).toBeUndefined();
      expect(await a.refresh(k, held, 5)).toBeNull();
      const next = (await b.compareAndSwap(k, null, claim('b'), 5)).holder!;
      expect(await a.compareAndSwap(k, held, null, 5)).toEqual({ ok: false, holder: next });
    });

    it('another store cannot release, replace or refresh our hold, even with the same id and a lease of the same ttl', async () => {
      const [a, b] = [open(), open()];
      const raw = rawClient();
      const k = key('ownership');
      const held = (await a.compareAndSwap(k, null, claim('same'), 5)).holder!;
      await b.compareAndSwap(key('b-own'), null, claim('same'), 5); // b now has a 5 s lease of its own
      expect(await b.compareAndSwap(k, held, null, 5)).toEqual({ ok: false, holder: held });
      expect(await b.compareAndSwap(k, held, claim('same', 'stolen'), 5)).toEqual({ ok: false, holder: held });
      expect(await b.refresh(k, held, 5)).toBeNull();
      expect(JSON.parse((await rawKv(raw, k))!.value.toString()).value).toBe('value of same');
      expect(await a.refresh(k, held, 5)).toEqual(held);
    });

    it('refuses an expected holder with the right token but another id, and keeps the hold', async () => {
      const store = open();
      const k = key('wrong-id');
      const held = (await store.compareAndSwap(k, null, claim('a'), 5)).holder!;
      expect(await store.compareAndSwap(k, { ...held, id: 'b' }, null, 5)).toEqual({ ok: false, holder: held });
      expect(await store.compareAndSwap(k, { ...held, token: held.token - 1n }, null, 5)).toEqual({ ok: false, holder: held });
      expect(await store.refresh(k, held, 5)).toEqual(held);
    });

    it('releases a term of its own that it has no record of (a write whose answer was lost)', async () => {
      const store = open();
      const raw = rawClient();
      const anchor = key('anchor');
      await store.compareAndSwap(anchor, null, claim('a'), 5);
      const lease = (await rawKv(raw, anchor))!.lease;
      const k = key('orphan');
      // Exactly what this store would have written, on its own lease.
      await raw.kv.put({ key: Buffer.from(k), value: Buffer.from(JSON.stringify({ id: 'a', value: 'old' })), lease });
      const orphan: Holder = { id: 'a', value: 'old', token: BigInt((await rawKv(raw, k))!.create_revision) };
      expect(await store.compareAndSwap(k, orphan, null, 5)).toEqual({ ok: true, holder: null });
      expect(await rawKv(raw, k)).toBeUndefined();
    });

    it('adopts its own write when an acquire finds exactly its claim on its own lease (an etcd3 retry after a lost answer)', async () => {
      const store = open();
      const raw = rawClient();
      const anchor = key('anchor');
      await store.compareAndSwap(anchor, null, claim('a'), 5);
      const lease = (await rawKv(raw, anchor))!.lease;
      const k = key('retried');
      await raw.kv.put({ key: Buffer.from(k), value: Buffer.from(JSON.stringify({ id: 'a', value: 'v' })), lease });
      const token = BigInt((await rawKv(raw, k))!.create_revision);
      expect(await store.compareAndSwap(k, null, claim('a', 'v'), 5)).toEqual({ ok: true, holder: { id: 'a', value: 'v', token } });
      expect(await store.refresh(k, { id: 'a', value: 'v', token }, 5)).toEqual({ id: 'a', value: 'v', token });
      // Once known, the same claim is not "won" twice.
      expect((await store.compareAndSwap(k, null, claim('a', 'v'), 5)).ok).toBe(false);
      // Another claim on our lease is not ours to adopt.
      const other = key('other');
      await raw.kv.put({ key: Buffer.from(other), value: Buffer.from(JSON.stringify({ id: 'b', value: 'v' })), lease });
      expect((await store.compareAndSwap(other, null, claim('a', 'v'), 5)).ok).toBe(false);
    });

    it('shows a key vip did not write as held, with a clear id, and never crashes on it', async () => {
      const store = open();
      const raw = rawClient();
      const k = key('foreign');
      await raw.put(k).value('not json at all');
      const refused = await store.compareAndSwap(k, null, claim('a'), 5);
      expect(refused).toEqual({ ok: false, holder: { id: FOREIGN_HOLDER_ID, value: 'not json at all', token: expect.any(BigInt) } });
      const recorder = record(store, k);
      await recorder.until((holder) => holder !== undefined, 5000, 'the first state');
      expect(recorder.seen[0]).toEqual(refused.holder);
    });

    it('fencing tokens strictly increase from term to term, through release and through expiry', async () => {
      const [a, b] = [open(), open()];
      const k = key('tokens');
      const tokens: bigint[] = [];
      for (const store of [a, b, a]) {
        const held = (await store.compareAndSwap(k, null, claim('x'), 5)).holder!;
        tokens.push(held.token);
        await store.compareAndSwap(k, held, null, 5);
      }
      const c = new EtcdStore(sharedEndpoints);
      tokens.push((await c.compareAndSwap(k, null, claim('x'), 1)).holder!.token);
      await c.close(); // not released: the lease expires
      const observer = record(b, k);
      await observer.until((holder) => holder === null, 6000, 'expiry');
      tokens.push((await b.compareAndSwap(k, null, claim('x'), 5)).holder!.token);
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]! > tokens[i - 1]!).toBe(true);
    });
  });

  describe('refresh', () => {
    it('confirms while the lease lives; resolves null once the lease is revoked behind its back, then takes a new lease', async () => {
      const store = open();
      const raw = rawClient();
      const [k1, k2, k3] = [key('r1'), key('r2'), key('r3')];
      const h1 = (await store.compareAndSwap(k1, null, claim('a'), 5)).holder!;
      const h2 = (await store.compareAndSwap(k2, null, claim('a'), 5)).holder!;
      for (let i = 0; i < 3; i++) expect(await store.refresh(k1, h1, 5)).toEqual(h1);
      const lease = (await rawKv(raw, k1))!.lease;
      await raw.leaseClient.leaseRevoke({ ID: lease });
      expect(await store.refresh(k1, h1, 5)).toBeNull();
      expect(await store.refresh(k2, h2, 5)).toBeNull(); // same lease, same fate
      const h3 = (await store.compareAndSwap(k3, null, claim('a'), 5)).holder!;
      expect((await rawKv(raw, k3))!.lease).not.toBe(lease);
      expect(await store.refresh(k3, h3, 5)).toEqual(h3);
    });

    it('refuses to refresh with a ttl longer than the hold\'s lease', async () => {
      const store = open();
      const k = key('longer');
      const held = (await store.compareAndSwap(k, null, claim('a'), 3)).holder!;
      await expect(store.refresh(k, held, 30)).rejects.toThrow('change a hold\'s ttl with compareAndSwap');
    });
  });

  describe('watch', () => {
    it('yields the current state first, then every change; keys under it and beside it do not leak in', async () => {
      const [a, b, observer] = [open(), open(), open()];
      const k = key('watched');
      const recorder = record(observer, k);
      await recorder.until((holder) => holder === null, 5000, 'the free key');
      const first = (await a.compareAndSwap(k, null, claim('a'), 5)).holder!;
      await recorder.until((holder) => holder?.token === first.token, 5000, 'the first holder');
      await a.compareAndSwap(`${k}/child`, null, claim('child'), 5);
      await a.compareAndSwap(`${k}x`, null, claim('sibling'), 5);
      const rewritten = (await a.compareAndSwap(k, first, claim('a', 'new value'), 5)).holder!;
      await recorder.until((holder) => holder?.value === 'new value', 5000, 'the new value');
      await a.refresh(k, rewritten, 5);
      await a.compareAndSwap(k, rewritten, null, 5);
      const second = (await b.compareAndSwap(k, null, claim('b'), 5)).holder!;
      await recorder.until((holder) => holder?.token === second.token, 5000, 'the second holder');
      await sleep(200);
      expect(recorder.seen).toEqual([null, first, rewritten, null, second]);
    });

    it('ends with "the store was closed" when its store closes, and cleanly when its signal aborts', async () => {
      const store = new EtcdStore(sharedEndpoints);
      const aborted = record(store, key('w1'));
      const closed = record(store, key('w2'));
      await aborted.until((holder) => holder !== undefined, 5000, 'the first state');
      await closed.until((holder) => holder !== undefined, 5000, 'the first state');
      await aborted.stop();
      expect(aborted.error).toBeUndefined();
      await store.close();
      await closed.done;
      expect(String(closed.error)).toContain('EtcdStore: the store was closed');
      expect(() => store.watch('/k', new AbortController().signal)).toThrow('closed');
      await expect(store.refresh('/k', { id: 'a', value: '', token: 1n }, 5)).rejects.toThrow('closed');
    });
  });

  describe('close()', () => {
    it('does not revoke a lease that still holds a key: the key stays until the lease expires', async () => {
      const [doomed, observer] = [new EtcdStore(sharedEndpoints), open()];
      const raw = rawClient();
      const k = key('no-revoke');
      const held = (await doomed.compareAndSwap(k, null, claim('a'), 2)).holder!;
      const recorder = record(observer, k);
      await recorder.until((holder) => holder?.token === held.token, 5000, 'the hold');
      const closedAt = Date.now();
      await doomed.close();
      await sleep(1000);
      expect(await rawKv(raw, k)).toBeDefined();
      await recorder.until((holder) => holder === null, 5000, 'the key freed by expiry');
      // Kept alive at most just before close; etcd frees it after its 2 s TTL (+ up to 0.5 s lessor tick).
      expect(Date.now() - closedAt).toBeGreaterThanOrEqual(1500);
    });

    it('revokes leases left without holds, so a clean shutdown leaves nothing behind', async () => {
      const store = new EtcdStore(sharedEndpoints);
      const raw = rawClient();
      const k = key('clean');
      const held = (await store.compareAndSwap(k, null, claim('a'), 30)).holder!;
      const lease = (await rawKv(raw, k))!.lease;
      await store.compareAndSwap(k, held, null, 30);
      await store.close();
      expect(Number((await raw.leaseClient.leaseTimeToLive({ ID: lease })).TTL)).toBe(-1); // not found
    });

    it('leaves no open handles: a process that used a store exits by itself', async () => {
      const script = `
        import { EtcdStore } from '@vip/etcd';
        const store = new EtcdStore(${JSON.stringify(sharedEndpoints)});
        const key = ${JSON.stringify(key('exit'))};
        const held = (await store.compareAndSwap(key, null, { id: 'a', value: 'v' }, 5)).holder;
        await store.refresh(key, held, 5);
        const controller = new AbortController();
        const watching = (async () => { for await (const h of store.watch(key, controller.signal)) if (h === null) break; })();
        await store.compareAndSwap(key, held, null, 5);
        await watching;
        const other = new AbortController();
        const pending = (async () => { for await (const h of store.watch(key, other.signal)) {} })().catch((e) => e.message);
        await new Promise((r) => setTimeout(r, 100));
        await store.close();
        console.log(await pending);
      `;
      const started = Date.now();
      const output = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('..', import.meta.url)), timeout: 15_000 }, (error, stdout, stderr) =>
          error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
        );
      });
      expect(output.trim()).toBe('EtcdStore: the store was closed');
      expect(Date.now() - started).toBeLessThan(10_000);
    });
  });
});

describe('EtcdStore on an etcd of its own', () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.close();
  });

  it('coalesces concurrent refreshes of many keys on one lease into one keepalive', async () => {
    const store = open(etcd.endpoints);
    const holds = await Promise.all(Array.from({ length: 100 }, async (_, i) => ({ k: `/coalesce/${i}`, held: (await store.compareAndSwap(`/coalesce/${i}`, null, claim('a'), 5)).holder! })));
    const keepalives = (): Promise<number> => metric(etcd, 'grpc_server_started_total', 'grpc_method="LeaseKeepAlive"');
    const before = await keepalives();
    const refreshed = await Promise.all(holds.map(({ k, held }) => store.refresh(k, held, 5)));
    expect(refreshed.every((held, i) => held === holds[i]!.held)).toBe(true);
    expect((await keepalives()) - before).toBe(1);
  });

  it('many watches on one store share its client\'s one watch stream', async () => {
    const store = open(etcd.endpoints);
    const recorders = Array.from({ length: 20 }, (_, i) => record(store, `/shared-stream/${i}`));
    await Promise.all(recorders.map((recorder) => recorder.until((holder) => holder !== undefined, 5000, 'the first state')));
    expect(await metric(etcd, 'etcd_debugging_mvcc_watch_stream_total')).toBe(1);
    expect(await metric(etcd, 'etcd_debugging_mvcc_watcher_total')).toBe(20);
    await Promise.all(recorders.map((recorder) => recorder.stop()));
    await eventually(async () => (await metric(etcd, 'etcd_debugging_mvcc_watcher_total')) === 0 || undefined, 5000, 'the watchers to be cancelled');
  });

  it('refresh rejects while etcd is stopped (SIGSTOP) and confirms again once it runs', async () => {
    const store = open(etcd.endpoints, { requestTimeout: 1 });
    const held = (await store.compareAndSwap('/paused', null, claim('a'), 10)).holder!;
    await etcd.pauseMember(0);
    cleanups.push(() => etcd.resumeMember(0));
    const started = Date.now();
    await expect(store.refresh('/paused', held, 10)).rejects.toThrow(); // the request deadline
    expect(Date.now() - started).toBeLessThan(3000);
    // The caller's signal ends the wait sooner, with its reason.
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('caller gave up')), 200);
    await expect(store.refresh('/paused', held, 10, controller.signal)).rejects.toThrow('caller gave up');
    etcd.resumeMember(0);
    expect(await eventually(() => store.refresh('/paused', held, 10), 10_000, 'a confirmed refresh')).toEqual(held);
  });

  it('refresh rejects while etcd is down; after a restart with the same data the hold is still ours', async () => {
    const store = open(etcd.endpoints, { requestTimeout: 2 });
    const held = (await store.compareAndSwap('/restarted', null, claim('a'), 10)).holder!;
    await etcd.killMember(0);
    await expect(store.refresh('/restarted', held, 10)).rejects.toThrow();
    await etcd.startMember(0);
    // etcd restores leases from disk and gives each its full TTL again.
    expect(await eventually(() => store.refresh('/restarted', held, 10), 10_000, 'a confirmed refresh')).toEqual(held);
  });

  it('a watch keeps going across an etcd restart and shows the states after it', async () => {
    const [store, observer] = [open(etcd.endpoints), open(etcd.endpoints)];
    const k = '/watch-restart';
    const recorder = record(observer, k);
    const first = (await store.compareAndSwap(k, null, claim('a'), 10)).holder!;
    await recorder.until((holder) => holder?.token === first.token, 5000, 'the first holder');
    await etcd.restart();
    const released = await eventually(() => store.compareAndSwap(k, first, null, 10), 10_000, 'a release after the restart');
    expect(released.ok).toBe(true);
    await recorder.until((holder) => holder === null, 10_000, 'the release after the restart');
    const second = (await store.compareAndSwap(k, null, claim('b'), 10)).holder!;
    await recorder.until((holder) => holder?.token === second.token, 5000, 'the next holder');
    expect(recorder.error).toBeUndefined();
  });

  it('a watch whose resume revision was compacted away while it was cut off starts over from a fresh read', async () => {
    const proxy = await startProxy(etcd.members[0]!.clientPort);
    cleanups.push(() => proxy.close());
    const [watching, writer] = [open(`etcd://127.0.0.1:${proxy.port}`), open(etcd.endpoints)];
    const k = '/compacted';
    const recorder = record(watching, k);
    await recorder.until((holder) => holder !== undefined, 5000, 'the first state');
    proxy.cut();
    const final = await churn(writer, k);
    const { revision } = (await writer.client.kv.range({ key: Buffer.from(k) })).header;
    await writer.client.kv.compact({ revision, physical: true });
    proxy.heal();
    // etcd3 resumes the watcher from its last revision + 1; the store reads the
    // key on reconnecting, so the final holder shows at once.
    await recorder.until((holder) => holder?.token === final.token, 10_000, 'the final holder');
    // etcd then cancels the resumed watcher as compacted; the store starts a new
    // one from its read, so later changes still arrive.
    await sleep(500);
    await writer.compareAndSwap(k, final, null, 10);
    await recorder.until((holder) => holder === null, 10_000, 'the release after the compaction');
    expect(recorder.seen).toEqual([null, final, null]);
    expect(recorder.error).toBeUndefined();
  });
});

describe('EtcdStore on a 3-member etcd', () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await startEtcd({ members: 3 });
  });
  afterAll(async () => {
    await etcd?.close();
  });

  it('a watch through a member that was down catches up with what happened meanwhile, in order', async () => {
    const k = '/catch-up';
    const watching = open([etcd.endpoints[0]!]);
    const writer = open([etcd.endpoints[1]!, etcd.endpoints[2]!]);
    const recorder = record(watching, k);
    await recorder.until((holder) => holder !== undefined, 5000, 'the first state');
    await etcd.killMember(0);
    // If member 0 led, writes proposed before the others elect a new leader are
    // dropped and time out (a candidate would retry); wait for the new leader.
    await etcd.waitHealthy();
    const final = await churn(writer, k);
    await etcd.startMember(0);
    await recorder.until((holder) => holder?.token === final.token, 15_000, 'the final holder');
    const tokens = recorder.seen.flatMap((holder) => (holder ? [holder.token] : []));
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]! > tokens[i - 1]!).toBe(true);
    expect(recorder.error).toBeUndefined();
  });
});

/** Two terms, each released, then a third that stays: returns the last holder. */
async function churn(writer: EtcdStore, k: string): Promise<Holder> {
  for (const id of ['x', 'y']) {
    const held = (await writer.compareAndSwap(k, null, claim(id), 10)).holder!;
    await writer.compareAndSwap(k, held, null, 10);
  }
  return (await writer.compareAndSwap(k, null, claim('final'), 10)).holder!;
}
