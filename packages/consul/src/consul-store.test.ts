import { Candidate, VipOptionError } from '@vip/core';
import { afterEach, describe, expect, it } from 'vitest';
import { ConsulStore, withoutKey } from './consul-store.js';

// Constructing a store and a candidate contacts no server: these checks run offline.
const stores: ConsulStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
});
const open = (options?: ConstructorParameters<typeof ConsulStore>[1]): ConsulStore => {
  const store = new ConsulStore('consul://127.0.0.1:1', options);
  stores.push(store);
  return store;
};

describe('ConsulStore: the TTL range it declares', () => {
  it("is Consul's default, 10 s to 86400 s, and a candidate outside it is refused when it is created", () => {
    const store = open();
    expect(store.limits).toMatchObject({ minTtl: 10, maxTtl: 86400 });
    expect(() => new Candidate(store, { path: 'job', ttl: 5 })).toThrow(/"ttl".*10/);
    expect(() => new Candidate(store, { path: 'job', ttl: 10 })).not.toThrow();
  });

  it('follows minTtl, for servers whose session_ttl_min was lowered', () => {
    const store = open({ minTtl: 2 });
    expect(store.limits.minTtl).toBe(2);
    expect(() => new Candidate(store, { path: 'job', ttl: 2 })).not.toThrow();
    expect(() => new Candidate(store, { path: 'job', ttl: 1.5 })).toThrow(/"ttl"/);
  });

  it('refuses a minTtl that is not a number of seconds from 1 to 86400, naming the option', () => {
    for (const bad of [0, 0.5, -1, 86401, Number.NaN, '10', null]) {
      expect(() => open({ minTtl: bad as number })).toThrow(VipOptionError);
      expect(() => open({ minTtl: bad as number })).toThrow(/"minTtl".*from 1 to 86400/);
    }
  });

  it("refuses a ttl below the store's minimum at compareAndSwap and refresh too", async () => {
    const store = open({ minTtl: 3 });
    await expect(store.compareAndSwap('job', null, { id: 'a', value: '' }, 2)).rejects.toThrow(/"ttl".*from 3 to 86400/);
    await expect(store.refresh('job', { id: 'a', value: '', token: 1n }, 2)).rejects.toThrow(/"ttl".*from 3 to 86400/);
  });
});

describe('ConsulStore: what it accepts as a connection and as options', () => {
  it('refuses an unknown connection option, naming it and listing the accepted ones, instead of connecting to 127.0.0.1', () => {
    const attempt = (): ConsulStore => new ConsulStore({ hostname: 'consul.internal' } as never);
    expect(attempt).toThrow(VipOptionError);
    expect(attempt).toThrow('ConsulStore: unknown option "hostname"; the connection options are host, port, secure, token, ca, cert, key');
  });

  it('refuses an unknown store option the same way', () => {
    expect(() => open({ lockdelay: 0 } as never)).toThrow(
      'ConsulStore: unknown option "lockdelay" (did you mean "lockDelay"? valid options: lockDelay, behavior, sessionName, watchWait, requestTimeout, minTtl, maxRequests)',
    );
  });

  it("takes lockDelay 'ttl' or 0 to 60 seconds, and refuses anything else naming lockDelay", () => {
    expect(() => open({ lockDelay: 'ttl' })).not.toThrow();
    expect(() => open({ lockDelay: 60 })).not.toThrow();
    for (const bad of [-1, 61, Number.NaN, '15', 'TTL', null]) {
      expect(() => open({ lockDelay: bad as number })).toThrow(/"lockDelay".*0 to 60.*'ttl'/);
    }
  });

  it('uses an object with the client methods it calls as the client (a Consul from another copy of the package)', async () => {
    const method = (): Promise<never> => Promise.reject(new Error('not called'));
    const foreign = {
      kv: { get: method },
      session: { create: method, info: method, renew: method, destroy: method },
      transaction: { create: method },
      destroy: () => {
        throw new Error('close() must leave a client it was given open');
      },
    };
    const store = new ConsulStore(foreign as never);
    expect(store.client).toBe(foreign);
    await store.close();
  });

  it('refuses an object that looks like a client but lacks methods the store calls, naming them', () => {
    const method = (): void => {};
    expect(() => new ConsulStore({ kv: { get: method }, session: { create: method } } as never)).toThrow(
      /looks like a Consul client but lacks session\.info, session\.renew, session\.destroy, transaction\.create/,
    );
  });
});

describe('ConsulStore: argument checks', () => {
  it('refuses bad arguments with a VipOptionError (a TypeError) naming the call, the option, what it must be and what it got', async () => {
    const store = open();
    const refusals: [() => unknown, string][] = [
      [() => store.compareAndSwap('', null, { id: 'a', value: '' }, 10), 'ConsulStore.compareAndSwap: option "key" must be a non-empty string such as "my-job" (got string "")'],
      [() => store.compareAndSwap('k', null, { id: 'a', value: '' }, 5), 'ConsulStore.compareAndSwap: option "ttl" must be a number of seconds from 10 to 86400 (Consul\'s session TTL range) (got number 5)'],
      [() => store.compareAndSwap('k', { id: 'a', value: '', token: 1 } as never, null, 10), 'ConsulStore.compareAndSwap: option "expected" must be null or a holder { id: string, value: string, token: bigint } (got an object)'],
      [() => store.compareAndSwap('k', null, { id: '', value: '' }, 10), 'ConsulStore.compareAndSwap: option "next" must be null or a claim { id: non-empty string, value: string } (got an object)'],
      [() => store.compareAndSwap('k', null, null, 10, 'soon' as never), 'ConsulStore.compareAndSwap: option "signal" must be an AbortSignal or undefined (got string "soon")'],
      [() => store.refresh('k', null as never, 10), 'ConsulStore.refresh: option "held" must be a holder { id: string, value: string, token: bigint } (got null)'],
      [() => store.watch('k', undefined as never), 'ConsulStore.watch: option "signal" must be an AbortSignal (got undefined)'],
      [() => open({ requestTimeout: 0 }), 'ConsulStore: option "requestTimeout" must be a number of seconds from 0.1 to 600 (got number 0)'],
      [() => open({ sessionName: '' }), 'ConsulStore: option "sessionName" must be a non-empty string (got string "")'],
      [() => open(null as never), 'ConsulStore: option "options" must be an object like { lockDelay: 0 } (got null)'],
    ];
    for (const [call, message] of refusals) {
      const error = await Promise.resolve()
        .then(call)
        .then(
          () => undefined,
          (caught: unknown) => caught,
        );
      expect(error, message).toBeInstanceOf(VipOptionError);
      expect(error, message).toBeInstanceOf(TypeError);
      expect((error as Error).message).toBe(message);
    }
  });
});


describe('ConsulStore: maxRequests', () => {
  it('accepts a whole number from 1 to 1024 and refuses anything else, naming the option', () => {
    expect(open({ maxRequests: 1 }).load).toEqual({ queries: 0, requests: 0, queued: 0 });
    expect(() => open({ maxRequests: 1024 })).not.toThrow();
    for (const bad of [0, 1.5, 1025, -1, '16', Number.NaN]) {
      expect(() => open({ maxRequests: bad as never })).toThrow(/ConsulStore: option "maxRequests" must be a whole number from 1 to 1024/);
    }
  });
});

describe("withoutKey: Consul's reasons are read without the key they quote", () => {
  it('cuts the key out where Consul quotes it', () => {
    const key = 'jobs/due to lock delay "x"';
    expect(withoutKey(`failed to lock key ${JSON.stringify(key)} due to lock delay`, key)).toBe('failed to lock key "<key>" due to lock delay');
    expect(withoutKey(`key ${JSON.stringify(key)} exists`, key)).toBe('key "<key>" exists');
    expect(withoutKey('Permission denied', key)).toBe('Permission denied');
    // A key that is also one of Consul's words is cut out only where Consul quotes it.
    expect(withoutKey('failed to lock key "lock" due to lock delay', 'lock')).toBe('failed to lock key "<key>" due to lock delay');
    expect(withoutKey('key "x" exists', 'x')).toBe('key "<key>" exists');
  });
});
