import { ConsulStore } from '@vip/consul';
import { inject } from 'vitest';
import { uniqueConsulPrefix } from '../harness/index.js';
import { describeValueProperties } from '../values-properties.js';

// Arbitrary ids, values, keys and candidate options against the shared real
// Consul agent (the properties are in ../values-properties.ts). A key is stored
// without its leading "/" (packages/consul/src/keys.ts); keys Consul's HTTP API
// would fold into another name are refused.
const address = inject('consulAddress');

describeValueProperties('ConsulStore', {
  open: () => new ConsulStore(`consul://${new URL(address).host}`),
  prefix: uniqueConsulPrefix('values-property'),
  ttl: 10,
  serverKey: (key) => key.replace(/^\/+/, ''),
  serverJudgesKeys:
    "the agent refuses characters its Go build's Unicode tables find unprintable; ConsulStore.validateKey judges with JavaScript's (newer) tables",
  listKeys: async (prefix) => {
    const response = await fetch(`${address}/v1/kv/${prefix}?keys`);
    if (response.status === 404) return [];
    if (!response.ok) throw new Error(`GET /v1/kv/${prefix}?keys: HTTP ${response.status} ${await response.text()}`);
    return (await response.json()) as string[];
  },
});
