import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Candidate, VipOptionError, type Claim, type Holder, type LockStore } from '@vip/core';
import { WatchRecorder } from '@vip/core/testing';
import { ConsulStore, FOREIGN_HOLDER_ID, MAX_VALUE_BYTES, type ConsulStoreOptions } from '@vip/consul';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { freePort, startConsul, uniqueConsulPrefix, type ConsulAgent } from '../harness/index.js';

// ConsulStore against real Consul agents: the shared one from globalSetup for
// plain behaviour, an agent of its own for each test that stops, restarts or
// reconfigures one. Consul's rules these tests lean on (TTL 10 s minimum,
// invalidation after up to 2 × TTL, lock-delay, blocking queries) are
// explained in packages/consul/src/consul-store.ts.

const TTL = 10;
const shared = inject('consulAddress');

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
});

function open(address: string = shared, options?: ConsulStoreOptions): ConsulStore {
  const store = new ConsulStore(`consul://${new URL(address).host}`, options);
  cleanup.push(() => store.close());
  return store;
}

async function agent(options?: Parameters<typeof startConsul>[0]): Promise<ConsulAgent> {
  const started = await startConsul(options);
  cleanup.push(() => started.close());
  return started;
}

const claim = (id: string, value = `value of ${id}`): Claim => ({ id, value });
const key = (label: string): string => `${uniqueConsulPrefix('consul-adapter')}${label}`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function won(result: { ok: boolean; holder: Holder | null }): Holder {
  expect(result.ok).toBe(true);
  expect(result.holder).not.toBeNull();
  return result.holder!;
}

/** Consul's HTTP API, straight, to look behind the store's back and to play other clients. */
class Raw {
  constructor(
    readonly address: string,
    readonly token?: string,
  ) {}

  async request(method: string, path: string, body?: string | Buffer): Promise<Response> {
    return fetch(`${this.address}${path}`, {
      method,
      ...(body !== undefined ? { body } : {}),
      headers: this.token ? { 'X-Consul-Token': this.token } : {},
      signal: AbortSignal.timeout(10_000),
    });
  }

  async get(name: string): Promise<{ Key: string; Value: string | null; Session?: string; CreateIndex: number; ModifyIndex: number } | undefined> {
    const response = await this.request('GET', `/v1/kv/${name}?consistent`);
    if (response.status === 404) return undefined;
    if (!response.ok) throw new Error(`GET ${name}: ${response.status} ${await response.text()}`);
    return ((await response.json()) as [never])[0];
  }

  async put(name: string, value: string | Buffer, query = ''): Promise<unknown> {
    const response = await this.request('PUT', `/v1/kv/${name}${query}`, value);
    if (!response.ok) throw new Error(`PUT ${name}: ${response.status} ${await response.text()}`);
    return response.json();
  }

  async createSession(body: object = {}): Promise<string> {
    const response = await this.request('PUT', '/v1/session/create', JSON.stringify(body));
    if (!response.ok) throw new Error(`session/create: ${response.status} ${await response.text()}`);
    return ((await response.json()) as { ID: string }).ID;
  }

  async destroySession(id: string): Promise<void> {
    const response = await this.request('PUT', `/v1/session/destroy/${id}`);
    if (!response.ok) throw new Error(`session/destroy: ${response.status} ${await response.text()}`);
  }

  async session(id: string): Promise<SessionInfo | undefined> {
    const response = await this.request('GET', `/v1/session/info/${id}?consistent`);
    const sessions = (await response.json()) as SessionInfo[] | null;
    return sessions?.[0];
  }
}

/**
 * The npm `consul` client class, as @vip/consul depends on it (this workspace
 * does not depend on `consul` itself): the class of a store's own client.
 */
type Consul = ConsulStore['client'];
const Consul = new ConsulStore('consul://127.0.0.1:1').client.constructor as new (options: { host: string; port: number }) => Consul;

/** GET /v1/session/info/:id, the fields these tests look at. */
interface SessionInfo {
  ID: string;
  TTL: string;
  LockDelay: number;
  Behavior: string;
  Name: string;
  Node: string;
  NodeChecks?: string[] | null;
  Checks?: string[] | null;
  ServiceChecks?: unknown[] | null;
}

/** A watch recorder stopped after the test. */
function record(store: LockStore, key: string): WatchRecorder {
  const recorder = new WatchRecorder(store, key);
  cleanup.push(() => recorder.stop());
  return recorder;
}

/** The ID of the session that locks `name` right now. */
async function sessionOf(raw: Raw, name: string): Promise<string> {
  const entry = await raw.get(name);
  expect(entry?.Session).toBeTruthy();
  return entry!.Session!;
}

describe('ConsulStore: acquiring', () => {
  it('acquires a free key: a session lock whose token is the key\'s CreateIndex, the holder JSON in the value', async () => {
    const store = open();
    const raw = new Raw(shared);
    const name = key('free');
    const held = won(await store.compareAndSwap(name, null, claim('a'), TTL));
    expect(held).toEqual({ id: 'a', value: 'value of a', token: held.token });
    const entry = (await raw.get(name))!;
    expect(BigInt(entry.CreateIndex)).toBe(held.token);
    expect(JSON.parse(Buffer.from(entry.Value!, 'base64').toString())).toEqual({ id: 'a', value: 'value of a' });
    const session = (await raw.session(entry.Session!))!;
    // Consul's session, as this store creates it by default.
    expect(session).toMatchObject({ TTL: '10s', Behavior: 'delete', LockDelay: TTL * 1e9, Name: 'vip' });
    // Bound to its TTL alone: no node check (Consul's default is the node's serfHealth), no service check.
    expect(session.NodeChecks ?? []).toEqual([]);
    expect(session.Checks ?? []).toEqual([]);
    expect(session.ServiceChecks ?? []).toEqual([]);
    const defaults = (await raw.session(await raw.createSession({ TTL: '10s' })))!;
    expect(defaults.NodeChecks).toEqual(['serfHealth']); // what the store opts out of
    await raw.destroySession(defaults.ID);
  });

  it('refuses a second acquisition and says who holds the key', async () => {
    const [a, b] = [open(), open()];
    const name = key('held');
    const held = won(await a.compareAndSwap(name, null, claim('a'), TTL));
    expect(await b.compareAndSwap(name, null, claim('b'), TTL)).toEqual({ ok: false, holder: held });
    // The same store, another id: refused too (one key, one holder).
    expect(await a.compareAndSwap(name, null, claim('a2'), TTL)).toEqual({ ok: false, holder: held });
    // compareAndSwap(null -> null) succeeds only on a free key.
    expect(await b.compareAndSwap(name, null, null, TTL)).toEqual({ ok: false, holder: held });
    expect(await b.compareAndSwap(key('other'), null, null, TTL)).toEqual({ ok: true, holder: null });
  });

  it('50 concurrent contenders on 5 stores (5 sessions): exactly one wins, the rest are told who did', async () => {
    const stores = Array.from({ length: 5 }, () => open());
    const raw = new Raw(shared);
    const name = key('contended');
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => stores[i % stores.length]!.compareAndSwap(name, null, claim(`c${i}`), TTL)),
    );
    const winners = results.filter((result) => result.ok);
    expect(winners).toHaveLength(1);
    const winner = winners[0]!.holder!;
    for (const result of results.filter((result) => !result.ok)) expect(result.holder).toEqual(winner);
    const entry = (await raw.get(name))!;
    expect(BigInt(entry.CreateIndex)).toBe(winner.token);
    // One session per store (and TTL), shared by all of its calls.
    const sessions = new Set<string>();
    for (const [i, store] of stores.entries()) {
      const own = key(`own-${i}`);
      won(await store.compareAndSwap(own, null, claim(`s${i}`), TTL));
      sessions.add(await sessionOf(raw, own));
    }
    expect(sessions.size).toBe(5);
    expect(sessions.has(entry.Session!)).toBe(true);
  });

  it('a key left unlocked (no session) never lends a new term its old token: it is deleted and created anew', async () => {
    const store = open();
    const raw = new Raw(shared);
    const name = key('leftover');
    await raw.put(name, JSON.stringify({ id: 'ghost', value: 'left behind' }));
    const leftover = (await raw.get(name))!;
    const recorder = record(open(), name);
    await recorder.until((holder) => holder !== undefined, 10_000, 'the first state');
    expect(recorder.seen[0]).toBeNull(); // unlocked: free as far as an election goes
    const held = won(await store.compareAndSwap(name, null, claim('a'), TTL));
    expect(held.token).toBeGreaterThan(BigInt(leftover.CreateIndex));
    const entry = (await raw.get(name))!;
    expect(BigInt(entry.CreateIndex)).toBe(held.token);
    await recorder.until((holder) => holder?.token === held.token, 10_000, 'the new holder');

    // The same through Behavior "release": the session goes, the key stays unlocked.
    // (lockDelay 0: the destroy below would otherwise keep the key unlockable for the ttl; lock-delay has its own test.)
    const releasing = open(shared, { behavior: 'release', lockDelay: 0 });
    const other = key('leftover-release');
    const first = won(await releasing.compareAndSwap(other, null, claim('r'), TTL));
    await raw.destroySession(await sessionOf(raw, other));
    const stale = (await raw.get(other))!;
    expect(stale.Session).toBeUndefined();
    expect(BigInt(stale.CreateIndex)).toBe(first.token);
    const second = won(await store.compareAndSwap(other, null, claim('b'), TTL));
    expect(second.token).toBeGreaterThan(first.token);
  });

  it('tokens strictly increase from term to term, across stores and new store instances', async () => {
    const name = key('tokens');
    const tokens: bigint[] = [];
    for (let round = 0; round < 6; round++) {
      const store = round % 2 === 0 ? open() : new ConsulStore(`consul://${new URL(shared).host}`);
      const held = won(await store.compareAndSwap(name, null, claim(`t${round}`), TTL));
      tokens.push(held.token);
      // A rewrite within the term keeps the token.
      const rewritten = won(await store.compareAndSwap(name, held, claim(`t${round}`, 'new value'), TTL));
      expect(rewritten.token).toBe(held.token);
      expect((await store.compareAndSwap(name, rewritten, null, TTL)).ok).toBe(true);
      if (round % 2 === 1) await store.close();
    }
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]!).toBeGreaterThan(tokens[i - 1]!);
  });
});

describe('ConsulStore: lock-delay', () => {
  it('a lock refused by lock-delay answers "free but not yet" ({ ok: false, holder: null }); with lockDelay 0 there is none; the default is the ttl', async () => {
    const raw = new Raw(shared);
    const delayed = open(shared, { lockDelay: 5 });
    const contender = open();
    const name = key('lock-delay');
    won(await delayed.compareAndSwap(name, null, claim('a'), TTL));
    // Invalidate the session out of band, as Consul does when its TTL runs out.
    const destroyedAt = Date.now();
    await raw.destroySession(await sessionOf(raw, name));
    expect(await raw.get(name)).toBeUndefined(); // Behavior "delete"
    // Told apart from a held key by Consul's own answer ("failed to lock key … due to lock delay"),
    // not by a read of the key afterwards.
    const kv = contender.client.kv;
    const get = kv.get.bind(kv);
    let reads = 0;
    kv.get = ((...args: Parameters<typeof get>) => {
      reads++;
      return get(...args);
    }) as typeof get;
    expect(await contender.compareAndSwap(name, null, claim('b'), TTL)).toEqual({ ok: false, holder: null });
    expect(reads).toBe(0);
    kv.get = get;
    // Refused ("free but not yet") until the delay is over, then won. No upper bound on when: the
    // test's timeout catches a delay that never ends; the lower bound is Consul's promise (5 s
    // from the invalidation, which came after destroyedAt; 1 s of slack for timer granularity).
    let result = await contender.compareAndSwap(name, null, claim('b'), TTL);
    while (!result.ok) {
      expect(result.holder).toBeNull();
      await sleep(250);
      result = await contender.compareAndSwap(name, null, claim('b'), TTL);
    }
    expect(Date.now() - destroyedAt).toBeGreaterThanOrEqual(4000);

    // LockDelay "0s" (sent as a string: the npm client drops a numeric 0).
    const quick = open(shared, { lockDelay: 0 });
    const other = key('no-lock-delay');
    won(await quick.compareAndSwap(other, null, claim('a'), TTL));
    await raw.destroySession(await sessionOf(raw, other));
    won(await contender.compareAndSwap(other, null, claim('b'), TTL));

    // lockDelay 'ttl', the default: each session gets its own TTL as its lock delay (capped at Consul's 60 s).
    const byTtl = open();
    const [ten, seventy] = [key('lock-delay-ttl-10'), key('lock-delay-ttl-70')];
    won(await byTtl.compareAndSwap(ten, null, claim('a'), TTL));
    won(await byTtl.compareAndSwap(seventy, null, claim('a'), 70));
    expect((await raw.session(await sessionOf(raw, ten)))!.LockDelay).toBe(TTL * 1e9);
    expect((await raw.session(await sessionOf(raw, seventy)))!.LockDelay).toBe(60 * 1e9);
  }, 60_000);
});

describe('ConsulStore: refresh', () => {
  it('keeps the hold, and 100 holds refreshed together cost one session renew', async () => {
    const store = open();
    const names = Array.from({ length: 100 }, (_, i) => key(`many-${i}`));
    const holds = await Promise.all(names.map((name) => store.compareAndSwap(name, null, claim('a'), TTL).then(won)));
    const session = store.client.session;
    const renew = session.renew.bind(session);
    let renews = 0;
    session.renew = ((options: Parameters<typeof renew>[0]) => {
      renews++;
      return renew(options);
    }) as typeof session.renew;
    const refreshed = await Promise.all(names.map((name, i) => store.refresh(name, holds[i]!, TTL)));
    expect(refreshed).toEqual(holds);
    expect(renews).toBe(1);
    // A refresh that begins after that renew was sent gets a renew of its own (contract promise 3).
    const first = store.refresh(names[0]!, holds[0]!, TTL);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const second = store.refresh(names[1]!, holds[1]!, TTL);
    await Promise.all([first, second]);
    expect(renews).toBe(3);
  });

  it('resolves null once the session is gone (destroyed out of band); later acquisitions get a new session', async () => {
    const store = open(shared, { lockDelay: 0 }); // so that the key can be taken again at once (lock-delay has its own test)
    const raw = new Raw(shared);
    const [name, sibling] = [key('session-gone'), key('session-gone-sibling')];
    const held = won(await store.compareAndSwap(name, null, claim('a'), TTL));
    const siblingHeld = won(await store.compareAndSwap(sibling, null, claim('a'), TTL));
    const session = await sessionOf(raw, name);
    await raw.destroySession(session);
    expect(await store.refresh(name, held, TTL)).toBeNull();
    // Every hold on that session is gone with it.
    expect(await store.refresh(sibling, siblingHeld, TTL)).toBeNull();
    const again = won(await store.compareAndSwap(name, null, claim('a'), TTL));
    expect(again.token).toBeGreaterThan(held.token);
    expect(await sessionOf(raw, name)).not.toBe(session);
    expect(await store.refresh(name, again, TTL)).toEqual(again);
  });

  it('resolves null for a term that is over (released, or taken over by another store)', async () => {
    const [a, b] = [open(), open()];
    const name = key('refresh-over');
    const held = won(await a.compareAndSwap(name, null, claim('a'), TTL));
    expect((await a.compareAndSwap(name, held, null, TTL)).ok).toBe(true);
    expect(await a.refresh(name, held, TTL)).toBeNull();
    const taken = won(await b.compareAndSwap(name, null, claim('a'), TTL)); // same id, other store
    expect(await a.refresh(name, held, TTL)).toBeNull();
    expect(await a.refresh(name, taken, TTL)).toBeNull(); // not ours, even with the id and token right
    expect(await b.refresh(name, taken, TTL)).toEqual(taken);
  });

  it('rejects (outcome unknown) while the agent is stopped (SIGSTOP), and works again once it resumes', async () => {
    const consul = await agent();
    const store = open(consul.address, { requestTimeout: 1 });
    const name = key('sigstop');
    const held = won(await store.compareAndSwap(name, null, claim('a'), TTL));
    // Which timeout the renew was sent with: requestTimeout bounds the wait, not the agent.
    const session = store.client.session;
    const renew = session.renew.bind(session);
    const timeouts: unknown[] = [];
    session.renew = ((options: Parameters<typeof renew>[0]) => {
      timeouts.push((options as { timeout?: unknown }).timeout);
      return renew(options);
    }) as typeof session.renew;
    await consul.pause();
    try {
      await expect(store.refresh(name, held, TTL)).rejects.toThrow(/timed out|timeout/i);
      expect(timeouts).toEqual([1000]);
      // A caller's own signal stops its wait sooner.
      const controller = new AbortController();
      const pending = store.refresh(name, held, TTL, controller.signal);
      controller.abort(new Error('caller gave up'));
      await expect(pending).rejects.toThrow('caller gave up');
    } finally {
      consul.resume();
    }
    expect(await store.refresh(name, held, TTL)).toEqual(held);
  });
});

describe('ConsulStore: releasing and ownership', () => {
  it('a release deletes the key at once: the watch sees it free and another store acquires with no delay', async () => {
    const [a, b] = [open(), open()];
    const raw = new Raw(shared);
    const name = key('release');
    const held = won(await a.compareAndSwap(name, null, claim('a'), TTL));
    const recorder = record(open(), name);
    await recorder.until((holder) => holder?.token === held.token, 10_000, 'the holder');
    expect(await a.compareAndSwap(name, held, null, TTL)).toEqual({ ok: true, holder: null });
    expect(await raw.get(name)).toBeUndefined();
    await recorder.until((holder) => holder === null, 10_000, 'the release');
    won(await b.compareAndSwap(name, null, claim('b'), TTL));
    // Releasing again: the term is over.
    expect((await a.compareAndSwap(name, held, null, TTL)).ok).toBe(false);
  });

  it('another store cannot release or replace our hold, even with the same id and token', async () => {
    const [a, b] = [open(), open()];
    const raw = new Raw(shared);
    const name = key('ownership');
    const held = won(await a.compareAndSwap(name, null, claim('same-id'), TTL));
    expect(await b.compareAndSwap(name, held, null, TTL)).toEqual({ ok: false, holder: held });
    expect(await b.compareAndSwap(name, held, claim('same-id', 'hijack'), TTL)).toEqual({ ok: false, holder: held });
    const entry = (await raw.get(name))!;
    expect(BigInt(entry.CreateIndex)).toBe(held.token);
    expect(JSON.parse(Buffer.from(entry.Value!, 'base64').toString()).value).toBe('value of same-id');
    expect(await a.refresh(name, held, TTL)).toEqual(held);
  });

  it('a term whose acquisition answer was lost (applied, but the reply never came) can still be refreshed and released', async () => {
    const store = open();
    const raw = new Raw(shared);
    const name = key('lost-answer');
    const transaction = store.client.transaction;
    const create = transaction.create.bind(transaction);
    transaction.create = (async (...args: Parameters<typeof create>) => {
      await create(...args);
      throw new Error('simulated: the reply was lost');
    }) as unknown as typeof create;
    await expect(store.compareAndSwap(name, null, claim('a'), TTL)).rejects.toThrow('simulated');
    transaction.create = create;
    // What a candidate then learns from its watch: the key is held under its own id.
    const entry = (await raw.get(name))!;
    const held: Holder = { id: 'a', value: 'value of a', token: BigInt(entry.CreateIndex) };
    // Another store cannot touch it; the store whose session locks it can.
    expect((await open().compareAndSwap(name, held, null, TTL)).ok).toBe(false);
    expect(await store.refresh(name, held, TTL)).toEqual(held);
    expect(await store.compareAndSwap(name, held, null, TTL)).toEqual({ ok: true, holder: null });
    expect(await raw.get(name)).toBeUndefined();
  });

  it('a rewrite that raced another rewrite of ours re-reads the key and still succeeds', async () => {
    const store = open();
    const name = key('rewrites');
    const held = won(await store.compareAndSwap(name, null, claim('a'), TTL));
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => store.compareAndSwap(name, held, claim('a', `v${i}`), TTL)));
    for (const result of results) expect(result.ok).toBe(true);
    expect((await store.compareAndSwap(name, held, null, TTL)).ok).toBe(true);
  });
});

describe('ConsulStore: expiry', () => {
  it(`a store that stops renewing loses the key, never before ttl (Consul: by about 2 × ttl): ${TTL} s TTL`, async () => {
    const store = open(shared, { lockDelay: 0 }); // the key is lockable as soon as it is freed (lock-delay has its own test)
    const observer = open();
    const name = key('expiry');
    const acquiredAt = Date.now();
    const held = won(await store.compareAndSwap(name, null, claim('a'), TTL));
    const recorder = record(observer, name);
    await recorder.until((holder) => holder?.token === held.token, 10_000, 'the holder');
    // No refresh from here on: nothing renews the session. Consul promises not to invalidate it
    // before ttl after its creation (the safety a leader's deadline rests on): that lower bound is
    // asserted. Its 2 x ttl upper bound is no promise ("no explicit promise about the upper bound",
    // agent/consul/session_ttl.go) and a loaded machine delays what the watch sees, so the wait is
    // generous (4 x ttl) and only says that the key is freed at all.
    await recorder.until((holder) => holder === null, 4 * TTL * 1000, 'the key freed by Consul');
    expect(Date.now() - acquiredAt).toBeGreaterThanOrEqual(TTL * 1000);
    expect(await store.refresh(name, held, TTL)).toBeNull();
    won(await observer.compareAndSwap(name, null, claim('b'), TTL));
  }, 90_000);
});

describe('ConsulStore: watch', () => {
  it('yields the current state first, then every change; refreshes and unrelated writes are not changes', async () => {
    const [a, b] = [open(), open()];
    const raw = new Raw(shared);
    const name = key('watch');
    const recorder = record(open(shared, { watchWait: 1 }), name);
    await recorder.until((holder) => holder === null, 10_000, 'the free key');
    const first = won(await a.compareAndSwap(name, null, claim('a'), TTL));
    await recorder.until((holder) => holder?.token === first.token, 10_000, 'the first holder');
    const rewritten = won(await a.compareAndSwap(name, first, claim('a', 'new value'), TTL));
    await recorder.until((holder) => holder?.value === 'new value', 10_000, 'the new value');
    await a.refresh(name, rewritten, TTL);
    await raw.put(`${name}-unrelated`, 'x');
    await sleep(2500); // two blocking-query timeouts (watchWait 1 s) answer without a change
    expect((await a.compareAndSwap(name, rewritten, null, TTL)).ok).toBe(true);
    await recorder.until((holder) => holder === null, 10_000, 'the release');
    const second = won(await b.compareAndSwap(name, null, claim('b'), TTL));
    await recorder.until((holder) => holder?.token === second.token, 10_000, 'the second holder');
    expect(recorder.seen).toEqual([null, first, rewritten, null, second]);
  });

  it('ends when its signal aborts, at once (the blocking query is aborted)', async () => {
    const store = open(shared, { watchWait: 300 });
    // Every read the watch sends, and how it ended.
    const kv = store.client.kv;
    const get = kv.get.bind(kv);
    const reads: { wait?: string; outcome?: 'answered' | 'aborted' }[] = [];
    kv.get = ((options: Parameters<typeof get>[0]) => {
      const read: (typeof reads)[number] = { wait: (options as { wait?: string }).wait };
      reads.push(read);
      return get(options).then(
        (answer) => ((read.outcome = 'answered'), answer),
        (error: unknown) => {
          read.outcome = 'aborted';
          throw error;
        },
      );
    }) as typeof get;
    const recorder = record(store, key('watch-abort'));
    await recorder.until((holder) => holder !== undefined, 10_000, 'the first state');
    // Wait until the watch has sent its 300 s blocking query (nothing changes the key).
    for (let i = 0; i < 100 && reads.length < 2; i++) await sleep(20);
    expect(reads.map((read) => read.wait)).toEqual([undefined, '300s']);
    await recorder.stop();
    // stop() returned because the query was cancelled, not because Consul answered it.
    expect(reads[1]!.outcome).toBe('aborted');
    expect(reads).toHaveLength(2);
    expect(recorder.error).toBeUndefined();
  });

  it('throws once the store is closed under it', async () => {
    const store = new ConsulStore(`consul://${new URL(shared).host}`);
    const recorder = record(store, key('watch-closed'));
    await recorder.until((holder) => holder !== undefined, 10_000, 'the first state');
    await store.close();
    await recorder.done;
    expect(String(recorder.error)).toMatch(/closed/);
  });

  it('survives an agent restart: a -dev agent forgets the key (null), then shows the next holder even with a smaller token', async () => {
    const consul = await agent();
    const [store, observer] = [open(consul.address), open(consul.address)];
    const name = key('restart');
    // Push the raft index up so that the term after the restart has a smaller token.
    for (let i = 0; i < 20; i++) await new Raw(consul.address).put(`${name}-filler`, String(i));
    const held = won(await store.compareAndSwap(name, null, claim('before'), TTL));
    const recorder = record(observer, name);
    await recorder.until((holder) => holder?.token === held.token, 10_000, 'the holder');
    await consul.restart();
    await recorder.until((holder) => holder === null, 15_000, 'the key gone with the agent\'s memory');
    expect(await store.refresh(name, held, TTL)).toBeNull(); // its session is gone too
    const after = won(await store.compareAndSwap(name, null, claim('after'), TTL));
    expect(after.token).toBeLessThan(held.token); // why a -dev agent must not run real elections
    await recorder.until((holder) => holder?.id === 'after', 15_000, 'the holder after the restart');
    expect(recorder.error).toBeUndefined();
  });

  it('shows a key locked by something other than vip as held by FOREIGN_HOLDER_ID, and refuses to take it', async () => {
    const raw = new Raw(shared);
    const store = open();
    const name = key('foreign');
    const session = await raw.createSession({ TTL: '30s', Behavior: 'delete' });
    cleanup.push(() => raw.destroySession(session));
    expect(await raw.put(name, Buffer.from([0xff, 0xfe, 0x00, 0x41]), `?acquire=${session}`)).toBe(true);
    const recorder = record(open(), name);
    await recorder.until((holder) => holder !== undefined, 10_000, 'the first state');
    const foreign = recorder.seen[0]!;
    expect(foreign.id).toBe(FOREIGN_HOLDER_ID);
    expect(foreign.token).toBe(BigInt((await raw.get(name))!.CreateIndex));
    expect(await store.compareAndSwap(name, null, claim('a'), TTL)).toEqual({ ok: false, holder: foreign });
    // Valid JSON of the wrong shape is foreign too.
    await raw.put(name, '{"id":42}', `?acquire=${session}`);
    await recorder.until((holder) => holder?.value === '{"id":42}', 10_000, 'the new foreign value');
    expect(recorder.last()?.id).toBe(FOREIGN_HOLDER_ID);
  });
});

describe('ConsulStore: values and keys', () => {
  const values: [string, string][] = [
    ['empty', ''],
    ['the old separator', 'a:::b:::c'],
    ['newlines', 'line 1\nline 2\r\n\tend'],
    ['unicode and NUL', 'élection 選挙 🗳️ \u0000 \uFFFD'],
    ['a lone surrogate', 'half \uD83D of an emoji'],
    ['64 KiB', 'x'.repeat(64 * 1024 - 7) + 'the end'],
    ['maxValueBytes of control characters (the worst case for JSON)', '\u0001'.repeat(MAX_VALUE_BYTES - 1)],
  ];
  for (const [label, value] of values) {
    it(`round-trips exactly, through compareAndSwap and watch: ${label}`, async () => {
      const store = open();
      const name = key('value');
      const wanted = claim('i', value);
      const held = won(await store.compareAndSwap(name, null, wanted, TTL));
      expect(held.value).toBe(value);
      const recorder = record(open(), name);
      await recorder.until((holder) => holder !== undefined, 10_000, 'the holder');
      expect(recorder.seen[0]).toEqual(held);
    });
  }

  it('refuses a value Consul would refuse, with a RangeError that says so, and writes nothing', async () => {
    const store = open();
    const name = key('too-big');
    await expect(store.compareAndSwap(name, null, claim('a', '\u0001'.repeat(200 * 1024)), TTL)).rejects.toThrow(RangeError);
    expect(await store.compareAndSwap(name, null, null, TTL)).toEqual({ ok: true, holder: null });
  });

  it('a path maps to a Consul key without its leading slash; a and a/b are independent keys', async () => {
    const [a, b] = [open(), open()];
    const raw = new Raw(shared);
    const parent = key('nest');
    const held = won(await a.compareAndSwap(`/${parent}`, null, claim('a'), TTL));
    expect((await raw.get(parent))?.Key).toBe(parent);
    expect(await b.compareAndSwap(parent, null, claim('b'), TTL)).toEqual({ ok: false, holder: held }); // the same key
    const child = won(await b.compareAndSwap(`${parent}/b`, null, claim('b'), TTL));
    expect(await a.compareAndSwap(`/${parent}`, held, null, TTL)).toEqual({ ok: true, holder: null });
    expect(await b.refresh(`${parent}/b`, child, TTL)).toEqual(child);
    expect((await raw.get(`${parent}/b`))?.Key).toBe(`${parent}/b`);
  });
});

describe('ConsulStore: arguments and connection strings', () => {
  it('works through a Consul client it is given, and close() leaves that client usable', async () => {
    const { hostname, port } = new URL(shared);
    const client = new Consul({ host: hostname, port: Number(port) });
    cleanup.push(async () => client.destroy());
    const store = new ConsulStore(client);
    expect(store.client).toBe(client);
    const name = key('given-client');
    const held = won(await store.compareAndSwap(name, null, claim('a'), TTL));
    expect(await store.refresh(name, held, TTL)).toEqual(held);
    expect((await store.compareAndSwap(name, held, null, TTL)).ok).toBe(true);
    await store.close();
    // Still connected: close() does not destroy a client it did not create.
    const after = key('given-client-after-close');
    expect(await client.kv.set(after, 'still usable')).toBe(true);
    expect(((await client.kv.get(after)) as { Value: string } | undefined)?.Value).toBe('still usable');
  });

  it('recognises a client by its methods: a Consul from another copy of the package is used, not read as options', async () => {
    const { hostname, port } = new URL(shared);
    const client = new Consul({ host: hostname, port: Number(port) });
    cleanup.push(async () => client.destroy());
    // What another copy looks like from here: the same methods, another class.
    const foreign = { kv: client.kv, session: client.session, transaction: client.transaction };
    expect(foreign).not.toBeInstanceOf(Consul);
    const store = open(shared);
    const viaForeign = new ConsulStore(foreign as unknown as Consul);
    cleanup.push(() => viaForeign.close());
    expect(viaForeign.client).toBe(foreign);
    const name = key('foreign-client');
    const held = won(await viaForeign.compareAndSwap(name, null, claim('a'), TTL));
    expect(await store.compareAndSwap(name, null, claim('b'), TTL)).toEqual({ ok: false, holder: held });
  });

  it('refuses an unknown connection option instead of connecting to 127.0.0.1:8500 without it', () => {
    expect(() => new ConsulStore({ hostname: '127.0.0.1', port: 8500 } as never)).toThrow(
      'ConsulStore: unknown option "hostname"; the connection options are host, port, secure, token, ca, cert, key',
    );
    expect(() => new ConsulStore('consul://h', { lockdelay: 15 } as never)).toThrow(/unknown option "lockdelay"/);
  });

  it('refuses bad arguments at the call, naming them', async () => {
    const store = open();
    await expect(store.compareAndSwap('', null, claim('a'), TTL)).rejects.toThrow(/"key"/);
    await expect(store.compareAndSwap('a//b', null, claim('a'), TTL)).rejects.toThrow(VipOptionError);
    await expect(store.compareAndSwap('a/../b', null, claim('a'), TTL)).rejects.toThrow(/"key"/);
    await expect(store.compareAndSwap('/', null, claim('a'), TTL)).rejects.toThrow(/"key"/);
    await expect(store.compareAndSwap(key('x'), null, claim('a'), 5)).rejects.toThrow(/"ttl".*10 to 86400/);
    await expect(store.compareAndSwap(key('x'), null, claim('a'), 86401)).rejects.toThrow(/"ttl"/);
    await expect(store.compareAndSwap(key('x'), null, { id: 1 } as unknown as Claim, TTL)).rejects.toThrow(/"next"/);
    await expect(store.compareAndSwap(key('x'), { id: 'a', value: '', token: 1 } as unknown as Holder, null, TTL)).rejects.toThrow(/"expected"/);
    await expect(store.refresh(key('x'), null as unknown as Holder, TTL)).rejects.toThrow(/"held"/);
    expect(() => store.watch('', new AbortController().signal)).toThrow(/"key"/);
    expect(() => store.watch(key('x'), undefined as unknown as AbortSignal)).toThrow(/"signal"/);
  });

  it('refuses bad connection strings and options, quoting them and saying what was expected', () => {
    expect(() => new ConsulStore('127.0.0.1:8500')).toThrow(/"127\.0\.0\.1:8500".*consul:\/\/127\.0\.0\.1:8500/);
    expect(() => new ConsulStore('etcd://127.0.0.1:2379')).toThrow(/"etcd:\/\/127\.0\.0\.1:2379" is an etcd address; use new EtcdStore\("etcd:\/\/127\.0\.0\.1:2379"\) from @vip\/etcd/);
    expect(() => new ConsulStore('consul://a:8500,b:8500')).toThrow(/one agent/);
    expect(() => new ConsulStore('consul://h:99999')).toThrow(/out of range/);
    expect(() => new ConsulStore('')).toThrow(/empty/);
    expect(() => new ConsulStore(42 as unknown as string)).toThrow(/connection string like/);
    expect(() => new ConsulStore({ port: 0 })).toThrow(/"port"/);
    expect(() => new ConsulStore({ ca: 'pem' })).toThrow(/"secure"/);
    expect(() => new ConsulStore({ secure: true, cert: 'pem' })).toThrow(/"key"/);
    expect(() => new ConsulStore('consul://h', { lockDelay: -1 })).toThrow(/"lockDelay"/);
    expect(() => new ConsulStore('consul://h', { lockDelay: 61 })).toThrow(/"lockDelay"/);
    expect(() => new ConsulStore('consul://h', { behavior: 'keep' as 'delete' })).toThrow(/"behavior"/);
    expect(() => new ConsulStore('consul://h', { watchWait: 601 })).toThrow(/"watchWait"/);
  });
});

describe('ConsulStore: ACL tokens and TLS', () => {
  it('sends the ACL token; a write the token does not allow is an error, never "held"', async () => {
    const root = 'vip-test-root-token';
    const consul = await agent({
      configJson: { acl: { enabled: true, default_policy: 'deny', down_policy: 'deny', tokens: { master: root, agent: root } } },
    });
    const raw = new Raw(consul.address, root);
    const policy = await raw.request(
      'PUT',
      '/v1/acl/policy',
      JSON.stringify({ Name: 'vip-test', Rules: 'session_prefix "" { policy = "write" }\nkey_prefix "allowed/" { policy = "write" }' }),
    );
    expect(policy.ok).toBe(true);
    const token = await raw.request('PUT', '/v1/acl/token', JSON.stringify({ Policies: [{ Name: 'vip-test' }] }));
    const secret = ((await token.json()) as { SecretID: string }).SecretID;

    const anonymous = new ConsulStore({ host: '127.0.0.1', port: consul.port });
    cleanup.push(() => anonymous.close());
    await expect(anonymous.compareAndSwap('allowed/job', null, claim('a'), TTL)).rejects.toThrow(/permission denied|403/i);

    const store = new ConsulStore({ host: '127.0.0.1', port: consul.port, token: secret });
    cleanup.push(() => store.close());
    const held = won(await store.compareAndSwap('allowed/job', null, claim('a'), TTL));
    expect(await store.refresh('allowed/job', held, TTL)).toEqual(held);
    await expect(store.compareAndSwap('denied/job', null, claim('a'), TTL)).rejects.toThrow(/permission denied/i);
  });

  it('talks HTTPS with a CA and a client certificate (verify_incoming)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vip-consul-tls-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const pki = await makeCertificates(dir);
    const https = await freePort();
    await agent({
      configJson: {
        ports: { https },
        // 1.8 names; newer agents also accept them (tls { defaults { … } } since 1.12).
        ca_file: pki.ca,
        cert_file: pki.serverCert,
        key_file: pki.serverKey,
        verify_incoming_https: true,
      },
    });
    const [ca, cert, keyPem] = await Promise.all([readFile(pki.ca), readFile(pki.clientCert), readFile(pki.clientKey)]);
    const store = new ConsulStore({ host: '127.0.0.1', port: https, secure: true, ca, cert, key: keyPem });
    cleanup.push(() => store.close());
    const name = key('tls');
    const held = won(await store.compareAndSwap(name, null, claim('a'), TTL));
    const recorder = record(store, name);
    await recorder.until((holder) => holder?.token === held.token, 10_000, 'the holder over TLS');
    // Without the client certificate the agent refuses the connection: an error, not an answer.
    const anonymous = new ConsulStore({ host: '127.0.0.1', port: https, secure: true, ca });
    cleanup.push(() => anonymous.close());
    await expect(anonymous.compareAndSwap(name, null, claim('b'), TTL)).rejects.toThrow();
  });
});

describe('ConsulStore: close() and with a Candidate', () => {
  it('close() destroys the sessions that hold nothing and leaves no open handles; held keys are left to expire', async () => {
    const raw = new Raw(shared);
    const handles = (): number => process.getActiveResourcesInfo().filter((kind) => kind !== 'TTYWrap' && kind !== 'FSReqCallback').length;
    await sleep(200);
    const before = handles();
    const store = new ConsulStore(`consul://${new URL(shared).host}`);
    const [released, kept] = [key('close-released'), key('close-kept')];
    const a = won(await store.compareAndSwap(released, null, claim('a'), TTL));
    const idleSession = await sessionOf(raw, released);
    won(await store.compareAndSwap(kept, null, claim('k'), 20)); // another TTL: another session
    const keptSession = await sessionOf(raw, kept);
    expect(keptSession).not.toBe(idleSession);
    const recorder = record(store, released);
    await recorder.until((holder) => holder?.token === a.token, 10_000, 'the holder');
    expect((await store.compareAndSwap(released, a, null, TTL)).ok).toBe(true);
    await store.close();
    await recorder.done;
    expect(await raw.session(idleSession)).toBeUndefined();
    expect(await raw.session(keptSession)).toBeDefined(); // a candidate not stopped may still lead on it
    expect((await raw.get(kept))?.Session).toBe(keptSession);
    await raw.destroySession(keptSession);
    await expect(store.compareAndSwap(released, null, claim('a'), TTL)).rejects.toThrow(/closed/);
    let after = handles();
    for (let i = 0; i < 50 && after > before; i++) {
      await sleep(100);
      after = handles();
    }
    expect(after, `open handles after close(): ${process.getActiveResourcesInfo().join(', ')}`).toBeLessThanOrEqual(before);
  });

  it('two Candidates: one leads, and stopping it hands over by its release, not by its session expiring', async () => {
    const path = `/${key('candidates')}`;
    const raw = new Raw(shared);
    const [storeA, storeB] = [open(), open()];
    // a's session lives at least 60 s after its last renew: a handover that had waited for
    // Consul to invalidate it could not have happened while it still exists.
    const a = new Candidate(storeA, { path, id: 'a', value: 'http://a', ttl: 60 });
    const b = new Candidate(storeB, { path, id: 'b', value: 'http://b', ttl: 15 });
    const selected: string[] = [];
    a.on('select', () => selected.push('a'));
    b.on('select', () => selected.push('b'));
    await a.start();
    await a.whenSelected(AbortSignal.timeout(10_000));
    await b.start();
    cleanup.push(() => b.stop());
    cleanup.push(() => a.stop());
    expect(b.isSelected()).toBe(false);
    const sessionA = await sessionOf(raw, path.slice(1));
    const tokenA = a.token()!;
    await a.stop();
    await b.whenSelected(AbortSignal.timeout(30_000));
    // b leads while a's session is still alive: the key went by a's release (one watch round
    // trip), not by Consul invalidating the session.
    expect(await raw.session(sessionA)).toBeDefined();
    expect(await sessionOf(raw, path.slice(1))).not.toBe(sessionA);
    expect(selected).toEqual(['a', 'b']);
    expect(b.token()).toBeGreaterThan(tokenA);
  });
});

/** A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl. */
async function makeCertificates(dir: string): Promise<{ ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string }> {
  const run = promisify(execFile);
  const path = (name: string): string => join(dir, name);
  const openssl = (...args: string[]) => run('openssl', args, { cwd: dir });
  await openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=vip test CA', '-keyout', path('ca.key'), '-out', path('ca.pem'));
  for (const [name, extension] of [
    ['server', 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:server.dc1.consul\nextendedKeyUsage=serverAuth,clientAuth'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    await writeFile(path(`${name}.ext`), `${extension}\n`);
    await openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', path(`${name}.key`), '-out', path(`${name}.csr`));
    await openssl('x509', '-req', '-in', path(`${name}.csr`), '-CA', path('ca.pem'), '-CAkey', path('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', path(`${name}.ext`), '-out', path(`${name}.pem`));
  }
  return { ca: path('ca.pem'), serverCert: path('server.pem'), serverKey: path('server.key'), clientCert: path('client.pem'), clientKey: path('client.key') };
}
