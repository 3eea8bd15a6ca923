import { Candidate, VipOptionError } from '@vip/core';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdStore } from './etcd-store.js';

// No server: these calls are refused before anything is sent (port 1 would refuse a connection anyway).
describe('EtcdStore keys', () => {
  const store = new EtcdStore('127.0.0.1:1');
  afterAll(() => store.close());

  // Found by test-integration/etcd/values.property.test.ts: etcd keys are UTF-8 bytes, and a lone
  // surrogate has no UTF-8 form, so "/p/\uD800", "/p/\uDC00" and "/p/\uFFFD" were all the key "/p/\uFFFD":
  // three elections on one key.
  it('refuses keys with a lone surrogate at every call, naming "key"', async () => {
    const signal = new AbortController().signal;
    for (const key of ['/p/\uD800', '/p/\uDC00', '\uDFFF', '/a\uD83D/b']) {
      await expect(store.compareAndSwap(key, null, { id: 'a', value: '' }, 5)).rejects.toThrow(VipOptionError);
      await expect(store.compareAndSwap(key, null, { id: 'a', value: '' }, 5)).rejects.toThrow(/EtcdStore\.compareAndSwap: option "key" must be well-formed Unicode/);
      await expect(store.refresh(key, { id: 'a', value: '', token: 1n }, 5)).rejects.toThrow(/EtcdStore\.refresh: option "key"/);
      expect(() => store.watch(key, signal)).toThrow(/EtcdStore\.watch: option "key"/);
      expect(store.validateKey(key)).toMatch(/well-formed Unicode/);
    }
  });

  it('accepts any well-formed key, lone surrogates in ids and values included', () => {
    for (const key of ['/p/\uFFFD', '/p/🗳️', 'a b/../c//', '\0']) expect(store.validateKey(key)).toBeUndefined();
    expect(() => new Candidate(store, { path: '/p', id: '\uD800', value: '\uDC00' })).not.toThrow();
  });

  it('makes new Candidate() refuse such a path where it was given, naming "path"', () => {
    expect(() => new Candidate(store, { path: '/jobs/\uD800' })).toThrow(VipOptionError);
    expect(() => new Candidate(store, { path: '/jobs/\uD800' })).toThrow(
      /Candidate: option "path" must be well-formed Unicode \(a lone surrogate .*\) for this store \(got string "\/jobs\/\\ud800"\)/,
    );
  });
});

describe('EtcdStore argument checks', () => {
  const store = new EtcdStore('127.0.0.1:1');
  afterAll(() => store.close());

  it('refuses bad arguments with a VipOptionError (a TypeError) naming the call, the option, what it must be and what it got', async () => {
    const refusals: [() => unknown, string][] = [
      [() => store.compareAndSwap('', null, { id: 'a', value: '' }, 5), 'EtcdStore.compareAndSwap: option "key" must be a non-empty string (got string "")'],
      [() => store.compareAndSwap('/k', null, { id: 'a', value: '' }, 0), 'EtcdStore.compareAndSwap: option "ttl" must be a finite number of seconds greater than 0 (got number 0)'],
      [() => store.compareAndSwap('/k', null, { id: 'a', value: '' }, 1e10), 'EtcdStore.compareAndSwap: option "ttl" must be at most 9000000000 seconds'],
      [() => store.compareAndSwap('/k', { id: 'a', value: '', token: 1 } as never, null, 5), 'EtcdStore.compareAndSwap: option "expected" must be null or a holder { id: string, value: string, token: bigint } (got an object)'],
      [() => store.compareAndSwap('/k', null, { id: 1 } as never, 5), 'EtcdStore.compareAndSwap: option "next" must be null or a claim { id: string, value: string } (got an object)'],
      [() => store.compareAndSwap('/k', null, null, 5, 'soon' as never), 'EtcdStore.compareAndSwap: option "signal" must be an AbortSignal or undefined (got string "soon")'],
      [() => store.refresh('/k', null as never, 5), 'EtcdStore.refresh: option "held" must be a holder { id: string, value: string, token: bigint } (got null)'],
      [() => store.watch('/k', undefined as never), 'EtcdStore.watch: option "signal" must be an AbortSignal (got undefined)'],
      [() => new EtcdStore('127.0.0.1:1', { requestTimeout: -1 }), 'new EtcdStore: option "options.requestTimeout" must be a finite number of seconds greater than 0 (got number -1)'],
      [() => new EtcdStore('127.0.0.1:1', null as never), 'new EtcdStore: option "options" must be an object (got null)'],
      [() => new EtcdStore({ hosts: [] }), 'new EtcdStore: option "connection.hosts" must be a host URL'],
      [() => new EtcdStore(42 as never), 'new EtcdStore: option "connection" must be a connection string'],
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
      expect((error as Error).message).toContain(message);
    }
  });
});

