import { describeLockStore } from '@vip/core/testing';
import { ConsulStore } from '@vip/consul';
import { afterAll, inject } from 'vitest';
import { startProxy, type TcpProxy } from '../harness/index.js';

// The conformance kit against a real Consul agent (the shared one from globalSetup).
// The partitionable client talks through a TCP proxy that the kit stalls.
const address = new URL(inject('consulAddress'));
const proxies: TcpProxy[] = [];
afterAll(async () => {
  await Promise.all(proxies.map((proxy) => proxy.close()));
});

describeLockStore('ConsulStore', () => new ConsulStore(`consul://${address.host}`), {
  ttl: 10,
  // Consul's shortest session TTL is 10 s, and it may wait 2 × TTL before invalidating.
  expiry: { ttl: 10, within: 25 },
  keyPrefix: 'vip-conformance/consul/',
  partitionable: async () => {
    const proxy = await startProxy(Number(address.port), address.hostname);
    proxies.push(proxy);
    const store = new ConsulStore(`consul://127.0.0.1:${proxy.port}`);
    return { store, partition: () => proxy.stall(), heal: () => proxy.heal() };
  },
});
