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
