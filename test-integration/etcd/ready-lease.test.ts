// A follower's store keeps a lease ready (LockStore.prepare), against a real
// etcd: the lease is granted before the follower ever acquires, stays alive
// past 2 × ttl while it only follows, carries the key once the follower takes
// it, and is revoked when the store closes; a lease that carries a key is not
// kept alive by it.
import { createRequire } from 'node:module';
import { Candidate } from '@vip/core';
import { FaultyStore } from '@vip/core/testing';
import { EtcdStore } from '@vip/etcd';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { uniquePrefix } from '../harness/index.js';
import { until } from '../harness/vip-cli.js';

type Etcd3 = EtcdStore['client'];
const { Etcd3: Etcd3Client } = createRequire(new URL('../../packages/etcd/package.json', import.meta.url))('etcd3') as {
  Etcd3: new (options: { hosts: string[] }) => Etcd3;
};
const endpoints = inject('etcdEndpoints');

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await Promise.resolve(close()).catch(() => {});
});

function raw(): Etcd3 {
  const client = new Etcd3Client({ hosts: endpoints });
  cleanup.push(() => client.close());
  return client;
}

async function leaseOf(client: Etcd3, key: string): Promise<string | undefined> {
  const kv = (await client.kv.range({ key: Buffer.from(key) })).kvs[0];
  return kv && kv.lease !== '0' ? kv.lease : undefined;
}

async function leases(client: Etcd3): Promise<Set<string>> {
  return new Set((await client.leaseClient.leaseLeases({})).leases.map((lease) => lease.ID));
}

async function alive(client: Etcd3, id: string): Promise<boolean> {
  return Number((await client.leaseClient.leaseTimeToLive({ ID: id })).TTL) > 0;
}

describe('etcd: a follower keeps a lease ready', () => {
  it('the follower’s lease is granted before it acquires, lives past 2 × ttl, carries the key after the handover, and close() revokes it', async () => {
    const client = raw();
    const key = `${uniquePrefix('ready')}job`;
    const leaderStore = new EtcdStore(endpoints);
    const followerStore = new EtcdStore(endpoints);
    cleanup.push(() => leaderStore.close(), () => followerStore.close());
    const a = new Candidate(leaderStore, { path: key, id: 'a', ttl: 2 });
    const b = new Candidate(followerStore, { path: key, id: 'b', ttl: 2 });
    cleanup.push(() => a.stop(), () => b.stop());
    await a.start();
    await a.whenSelected();
    const leaderLease = (await leaseOf(client, key))!;
    const before = await leases(client);
    await b.start();
    await until(() => b.id() === 'a', 'the follower to see the leader', 10_000);
    // Other tests share this etcd: a lease is the follower's if it is the one that later carries the key.
    await until(async () => [...(await leases(client))].some((id) => !before.has(id)), 'a new lease', 10_000);
    const early = await leases(client);
    await new Promise((resolve) => setTimeout(resolve, 5000)); // past 2 × ttl
    const late = await leases(client);
    await a.stop();
    await b.whenSelected();
    const ready = (await leaseOf(client, key))!;
    expect(ready).not.toBe(leaderLease);
    // Granted while following, and still alive more than 2 × ttl later: kept ready, then used.
    expect({ early: early.has(ready), late: late.has(ready), before: before.has(ready) }).toEqual({ early: true, late: true, before: false });
    await b.stop();
    await followerStore.close();
    expect(await alive(client, ready)).toBe(false);
  }, 60_000);

  it('a lease that carries a key is not kept alive by it: a leader that cannot refresh loses its key at the server while a follower of the same store campaigns on', async () => {
    const client = raw();
    const prefix = uniquePrefix('ready');
    const inner = new EtcdStore(endpoints);
    const faulty = new FaultyStore(inner);
    const other = new EtcdStore(endpoints);
    cleanup.push(() => inner.close(), () => other.close());
    const elsewhere = new Candidate(other, { path: `${prefix}theirs`, id: 'other', ttl: 2 });
    cleanup.push(() => elsewhere.stop());
    await elsewhere.start();
    await elsewhere.whenSelected();
    const leader = new Candidate(faulty, { path: `${prefix}ours`, id: 'leader', ttl: 2 });
    const follower = new Candidate(faulty, { path: `${prefix}theirs`, id: 'follower', ttl: 2 });
    cleanup.push(() => leader.stop(), () => follower.stop());
    await leader.start();
    await leader.whenSelected();
    await follower.start();
    const lease = (await leaseOf(client, `${prefix}ours`))!;
    expect(lease).toBeDefined();
    faulty.failAll(['refresh', 'compareAndSwap']);
    await until(async () => (await leaseOf(client, `${prefix}ours`)) !== lease, 'etcd to expire the leader’s lease and delete its key', 15_000);
    expect(follower.id()).toBe('other');
  }, 60_000);
});
