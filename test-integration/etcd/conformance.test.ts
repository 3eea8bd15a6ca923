import { describeLockStore } from '@vip/core/testing';
import { EtcdStore } from '@vip/etcd';
import { afterAll, inject } from 'vitest';
import { startProxy, type TcpProxy } from '../harness/index.js';

// The conformance kit against a real etcd (the shared one from globalSetup).
// The partitionable client talks through a TCP proxy that the kit stalls.
const endpoints = inject('etcdEndpoints');
const proxies: TcpProxy[] = [];
afterAll(async () => {
  await Promise.all(proxies.map((proxy) => proxy.close()));
});

describeLockStore('EtcdStore', () => new EtcdStore(endpoints), {
  ttl: 5,
  // etcd raises a 1 s lease to its 2 s minimum and checks expiry every 500 ms.
  expiry: { ttl: 2, within: 6 },
  keyPrefix: '/vip-conformance/etcd/',
  partitionable: async () => {
    const target = new URL(endpoints[0]!);
    const proxy = await startProxy(Number(target.port), target.hostname);
    proxies.push(proxy);
    const store = new EtcdStore(`etcd://127.0.0.1:${proxy.port}`);
    return { store, partition: () => proxy.stall(), heal: () => proxy.heal() };
  },
});
