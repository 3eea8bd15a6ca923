import { EtcdStore } from '@vip/etcd';
import { afterAll, inject } from 'vitest';
import { uniquePrefix } from '../harness/index.js';
import { describeValueProperties } from '../values-properties.js';

// Arbitrary ids, values, keys and candidate options against the shared real etcd
// (the properties are in ../values-properties.ts). etcd keys are bytes: a key
// is stored as its UTF-8 text, under exactly its name.
const endpoints = inject('etcdEndpoints');
const raw = new EtcdStore(endpoints);
afterAll(() => raw.close());

describeValueProperties('EtcdStore', {
  open: () => new EtcdStore(endpoints),
  prefix: uniquePrefix('values-property'),
  ttl: 5,
  serverKey: (key) => key,
  listKeys: async (prefix) => (await raw.client.getAll().prefix(prefix).keyBuffers()).map((key) => key.toString('utf8')),
});
