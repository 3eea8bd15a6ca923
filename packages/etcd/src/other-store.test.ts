import { VipOptionError } from '@vip/core';
import { describe, expect, it } from 'vitest';
import { EtcdStore } from './etcd-store.js';

// Constructing refuses these before any client is made: no server needed.
function refusal(attempt: () => unknown): VipOptionError {
  try {
    const store = attempt() as EtcdStore;
    void store.close();
  } catch (error) {
    expect(error).toBeInstanceOf(VipOptionError);
    return error as VipOptionError;
  }
  throw new Error('expected new EtcdStore() to throw');
}

describe('new EtcdStore(): unknown option keys', () => {
  it('refuses an unknown store option, suggesting the nearest', () => {
    const error = refusal(() => new EtcdStore('127.0.0.1:1', { requestTimout: 3 } as never));
    expect(error.option).toBe('options.requestTimout');
    expect(error.message).toBe(
      'new EtcdStore: unknown option "options.requestTimout" (did you mean "options.requestTimeout"? valid options: options.requestTimeout, options.watchRetryInitial, options.watchRetryMax)',
    );
  });

  it("refuses a key etcd3's connection options do not have", () => {
    const error = refusal(() => new EtcdStore({ hosts: ['http://127.0.0.1:1'], dailTimeout: 5 } as never));
    expect(error.option).toBe('connection.dailTimeout');
    expect(error.message).toMatch(/^new EtcdStore: unknown option "connection.dailTimeout" \(did you mean "connection.dialTimeout"\? valid options: connection.hosts, /);
  });

  it('accepts every documented key', async () => {
    const store = new EtcdStore({ hosts: ['http://127.0.0.1:1'], dialTimeout: 5, grpcOptions: {} }, { requestTimeout: 2, watchRetryInitial: 0.2, watchRetryMax: 2 });
    await store.close();
  });
});

describe("new EtcdStore(): another store's connection", () => {
  it('points a Consul address to ConsulStore and openStore()/vip(), without a password', () => {
    const error = refusal(() => new EtcdStore('consul://127.0.0.1:8500'));
    expect(error.option).toBe('connection');
    expect(error.message).toBe(
      'EtcdStore: "consul://127.0.0.1:8500" is a Consul address; use new ConsulStore("consul://127.0.0.1:8500") from @vip/consul, or openStore("consul://127.0.0.1:8500") or vip("consul://127.0.0.1:8500") from @vip/vip',
    );
    expect(refusal(() => new EtcdStore(' CONSULS://consul.lan ')).message).toMatch(/^EtcdStore: "CONSULS:\/\/consul.lan" is a Consul address; use new ConsulStore/);
    expect(refusal(() => new EtcdStore(['consul://h:8500'])).message).toMatch(/is a Consul address/);
    expect(refusal(() => new EtcdStore('consul://u:secret@h:8500')).message).not.toMatch(/secret/);
  });

  it('points memory:// to MemoryStore and openStore()/vip()', () => {
    expect(refusal(() => new EtcdStore('memory://x')).message).toMatch(/^EtcdStore: "memory:\/\/x" is an in-process memory store address; use new MemoryStore\(\) from @vip\/core, or openStore\("memory:\/\/x"\)/);
  });

  it("points ConsulStore's options object to ConsulStore", () => {
    const error = refusal(() => new EtcdStore({ host: '127.0.0.1', port: 8500 } as never));
    expect(error.message).toMatch(/^EtcdStore: got an options object with "host" and no "hosts": that is ConsulStore's form .*new ConsulStore\(\{ \.\.\. \}\) from @vip\/consul/);
  });

  it('still refuses other malformed strings as before', () => {
    expect(() => new EtcdStore('redis://x:1')).toThrow(/scheme "redis:\/\/".*not etcd's/);
  });
});
