import { Candidate, type Holder } from '@vip/core';
import { ConsulStore, type ConsulStoreOptions } from '@vip/consul';
import { afterEach, describe, expect, it } from 'vitest';
import { startConsul, uniqueConsulPrefix, type ConsulAgent } from '../harness/index.js';

// What a session hangs on besides its TTL: the agent's node in the catalog,
// and (unless told otherwise) that node's health checks. Each test plays with
// the node of an agent of its own, through the catalog API, as Consul's
// servers do when a node's health changes or it leaves the cluster.

const TTL = 10;

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
});

async function agent(): Promise<ConsulAgent> {
  const consul = await startConsul();
  cleanup.push(() => consul.close());
  return consul;
}

function open(consul: ConsulAgent, options?: ConsulStoreOptions): ConsulStore {
  const store = new ConsulStore(consul.connectionString, options);
  cleanup.push(() => store.close());
  return store;
}

async function call(consul: ConsulAgent, method: string, path: string, body?: object): Promise<Response> {
  const response = await fetch(`${consul.address}${path}`, {
    method,
    ...(body ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response;
}

/** Put the agent's node back in the catalog (what its anti-entropy sync does), with a serfHealth check in `status` or none. */
async function register(consul: ConsulAgent, serfHealth?: 'passing' | 'critical'): Promise<void> {
  await call(consul, 'PUT', '/v1/catalog/register', {
    Node: consul.node,
    Address: '127.0.0.1',
    ...(serfHealth ? { Check: { Node: consul.node, CheckID: 'serfHealth', Name: 'Serf Health Status', Status: serfHealth } } : {}),
  });
}

async function deregister(consul: ConsulAgent): Promise<void> {
  await call(consul, 'PUT', '/v1/catalog/deregister', { Node: consul.node });
}

async function sessionExists(consul: ConsulAgent, id: string): Promise<boolean> {
  const sessions = (await (await call(consul, 'GET', `/v1/session/info/${id}?consistent`)).json()) as unknown[] | null;
  return (sessions ?? []).length > 0;
}

async function lockedBy(consul: ConsulAgent, name: string): Promise<string | undefined> {
  const response = await fetch(`${consul.address}/v1/kv/${name}?consistent`, { signal: AbortSignal.timeout(10_000) });
  if (response.status === 404) return undefined;
  return ((await response.json()) as { Session?: string }[])[0]?.Session;
}

const claim = (id: string): { id: string; value: string } => ({ id, value: `value of ${id}` });

function won(result: { ok: boolean; holder: Holder | null }): Holder {
  expect(result.ok).toBe(true);
  return result.holder!;
}

describe('ConsulStore: an agent whose node is not in the catalog', () => {
  it('says why a session cannot be created, and a candidate gets elected once the agent registers again', async () => {
    const consul = await agent();
    // Take the node out of the catalog, as when an agent has just started or rejoined.
    await deregister(consul);

    const store = open(consul);
    const name = `${uniqueConsulPrefix('node-registration')}job`;
    await expect(store.compareAndSwap(name, null, claim('a'), TTL)).rejects.toThrow(
      /the agent's node is not in the catalog yet \("Missing node registration"\)/,
    );

    // The candidate reports the error, retries, and leads once the agent has synced its node again.
    const candidate = new Candidate(store, { path: name, id: 'a', ttl: TTL });
    const errors: string[] = [];
    candidate.on('error', (error) => errors.push(error.message));
    await candidate.start();
    cleanup.push(() => candidate.stop());
    // The node comes back without any health check: the store's sessions need none (a session
    // bound to serfHealth, Consul's default, could not be created on this node).
    await register(consul);
    await candidate.whenSelected(AbortSignal.timeout(30_000)).catch((error: unknown) => {
      throw new Error(`not selected; its errors: ${errors.join(' | ')}`, { cause: error });
    });
    expect(candidate.isSelected()).toBe(true);
  });
});

describe("ConsulStore: sessions are bound to their TTL, not to the node's health", () => {
  it('a critical serfHealth (the agent out of touch, as the servers see it) invalidates a default session but not the store\'s', async () => {
    const consul = await agent();
    const store = open(consul);
    const name = `${uniqueConsulPrefix('serf-health')}job`;
    const held = won(await store.compareAndSwap(name, null, claim('a'), TTL));
    const ours = (await lockedBy(consul, name))!;
    // A control: a session as Consul makes it by default, bound to the node's serfHealth.
    const control = ((await (await call(consul, 'PUT', '/v1/session/create', { TTL: '30s' })).json()) as { ID: string }).ID;
    cleanup.push(() => call(consul, 'PUT', `/v1/session/destroy/${control}`));

    await register(consul, 'critical');
    // The check did go critical: Consul invalidated the control session for it, at once.
    expect(await sessionExists(consul, control)).toBe(false);
    // Ours is untouched, and the hold with it: only its TTL can end it.
    expect(await sessionExists(consul, ours)).toBe(true);
    expect(await lockedBy(consul, name)).toBe(ours);
    expect(await store.refresh(name, held, TTL)).toEqual(held);
  });
});

describe('ConsulStore: the node leaving the catalog under a running leader', () => {
  // A session is always bound to its node: deregistering it (`consul leave`, a client agent
  // stopped with leave_on_terminate, `consul force-leave`, PUT /v1/catalog/deregister)
  // invalidates the session at once, whatever its TTL. The old leader, whose agent may be
  // gone, can lead until its local deadline; only a lock delay of at least the TTL keeps
  // another candidate out until then (README, "What you must know about Consul").

  it('with lockDelay 0, another store takes the key at once (why it is not the default)', async () => {
    const consul = await agent();
    const [leader, contender] = [open(consul, { lockDelay: 0 }), open(consul)];
    const name = `${uniqueConsulPrefix('node-leave')}job`;
    const held = won(await leader.compareAndSwap(name, null, claim('a'), TTL));
    const session = (await lockedBy(consul, name))!;
    await deregister(consul);
    expect(await sessionExists(consul, session)).toBe(false);
    expect(await lockedBy(consul, name)).toBeUndefined(); // Behavior "delete"
    await register(consul);
    // Before the old leader has heard anything (it has not refreshed since), the key is taken.
    const next = won(await contender.compareAndSwap(name, null, claim('b'), TTL));
    expect(next.token).toBeGreaterThan(held.token);
    // The old leader learns it at its next refresh (if its agent answers by then).
    expect(await leader.refresh(name, held, TTL)).toBeNull();
  });

  it("with the default lockDelay ('ttl'), no other store can take the key until ttl after the invalidation", async () => {
    const consul = await agent();
    const [leader, contender] = [open(consul), open(consul)];
    const name = `${uniqueConsulPrefix('node-leave-delay')}job`;
    const held = won(await leader.compareAndSwap(name, null, claim('a'), TTL));
    const deregisteredAt = Date.now();
    await deregister(consul);
    expect(await lockedBy(consul, name)).toBeUndefined();
    await register(consul);
    // Free, but not lockable: "free but not yet", which a candidate retries.
    expect(await contender.compareAndSwap(name, null, claim('b'), TTL)).toEqual({ ok: false, holder: null });
    expect(await leader.refresh(name, held, TTL)).toBeNull();
    let result = await contender.compareAndSwap(name, null, claim('b'), TTL);
    while (!result.ok) {
      expect(result.holder).toBeNull();
      await new Promise((resolve) => setTimeout(resolve, 250));
      result = await contender.compareAndSwap(name, null, claim('b'), TTL);
    }
    // Consul's promise: LockDelay (here the TTL) from the invalidation, which came after
    // deregisteredAt; so by then the old leader's local deadline (< ttl after its last
    // confirmed refresh, which came before) has passed. 1 s of slack for timer granularity.
    expect(Date.now() - deregisteredAt).toBeGreaterThanOrEqual((TTL - 1) * 1000);
    expect(result.holder!.token).toBeGreaterThan(held.token);
  }, 60_000);
});
