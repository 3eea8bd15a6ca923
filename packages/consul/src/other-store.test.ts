import { VipOptionError } from '@vip/core';
import { describe, expect, it } from 'vitest';
import { ConsulStore } from './consul-store.js';

// Constructing a store contacts no server.
function refusal(attempt: () => unknown): VipOptionError {
  try {
    const store = attempt() as ConsulStore;
    void store.close();
  } catch (error) {
    expect(error).toBeInstanceOf(VipOptionError);
    return error as VipOptionError;
  }
  throw new Error('expected new ConsulStore() to throw');
}

describe('new ConsulStore(): unknown option keys', () => {
  it('refuses an unknown store option, suggesting the nearest, naming it in .option', () => {
    const error = refusal(() => new ConsulStore('consul://127.0.0.1:1', { sesionName: 'x' } as never));
    expect(error.option).toBe('sesionName');
    expect(error.message).toBe(
      'ConsulStore: unknown option "sesionName" (did you mean "sessionName"? valid options: lockDelay, behavior, sessionName, watchWait, requestTimeout, minTtl, maxRequests)',
    );
    expect(refusal(() => new ConsulStore('consul://127.0.0.1:1', { timeout: 1 } as never)).message).toMatch(/unknown option "timeout" \(valid options: lockDelay,/);
  });
});

describe("new ConsulStore(): another store's connection", () => {
  const etcdHint = (shown: string) => `use new EtcdStore(${shown}) from @vip/etcd, or openStore(${shown}) or vip(${shown}) from @vip/vip`;

  it('points an etcd address to EtcdStore and openStore()/vip(), without a password', () => {
    const error = refusal(() => new ConsulStore('etcd://127.0.0.1:2379'));
    expect(error.option).toBe('connection');
    expect(error.message).toBe(`ConsulStore: "etcd://127.0.0.1:2379" is an etcd address; ${etcdHint('"etcd://127.0.0.1:2379"')}`);
    expect(refusal(() => new ConsulStore('etcds://u:secret@h1,h2')).message).toBe(`ConsulStore: "etcds://u:***@h1,h2" is an etcd address; ${etcdHint('"etcds://u:***@h1,h2"')}`);
  });

  it("points a bare host:port list (etcd's form to vip) to EtcdStore, and says how to write it for Consul", () => {
    expect(refusal(() => new ConsulStore('127.0.0.1:2379,127.0.0.1:2380')).message).toMatch(
      /^ConsulStore: "127.0.0.1:2379,127.0.0.1:2380" has no scheme, and a bare host:port list is an etcd address to vip; for Consul write "consul:\/\/127.0.0.1:2379" \(one agent\), for etcd use new EtcdStore/,
    );
  });

  it('points memory:// to MemoryStore', () => {
    expect(refusal(() => new ConsulStore('memory://')).message).toMatch(/^ConsulStore: "memory:\/\/" is an in-process memory store address; use new MemoryStore\(\)/);
  });

  it('points an array of members and etcd options objects to EtcdStore', () => {
    expect(refusal(() => new ConsulStore(['http://h:2379'] as never)).message).toMatch(/^ConsulStore: got an array: a list of members is etcd's form; for etcd use new EtcdStore/);
    for (const key of ['hosts', 'endpoints']) {
      expect(refusal(() => new ConsulStore({ [key]: ['http://h:2379'] } as never)).message).toMatch(
        new RegExp(`^ConsulStore: got an options object with "${key}": that is etcd's form; for etcd use new EtcdStore\\(\\{ hosts: \\[\\.\\.\\.\\] \\}\\) from @vip/etcd`),
      );
    }
    const fakeEtcd3 = { kv: {}, leaseClient: {}, watch: () => {} };
    expect(refusal(() => new ConsulStore(fakeEtcd3 as never)).message).toBe('ConsulStore: got an etcd3 client (Etcd3); use new EtcdStore(client) from @vip/etcd');
  });

  it('still takes its own forms', async () => {
    for (const connection of ['consul://127.0.0.1:1', 'http://127.0.0.1:1', { host: '127.0.0.1', port: 1 }]) await new ConsulStore(connection).close();
  });
});
