import { describe, expect, it } from 'vitest';
import { openStore, parseConnectionString } from './connection.js';

describe('connection strings', () => {
  const good: [string, string, string][] = [
    ['127.0.0.1:4001,127.0.0.1:4002', 'etcd', 'etcd://127.0.0.1:4001,127.0.0.1:4002'],
    ['etcd://h1:2379,h2:2379', 'etcd', 'etcd://h1:2379,h2:2379'],
    ['etcds://h1:2379', 'etcd', 'etcds://h1:2379'],
    ['consul://127.0.0.1:8500', 'consul', 'consul://127.0.0.1:8500'],
    ['consuls://consul.internal:8501/', 'consul', 'consuls://consul.internal:8501'],
    ['memory://', 'memory', 'memory://'],
    ['etcd://[::1]:2379', 'etcd', 'etcd://[::1]:2379'],
    ['localhost', 'etcd', 'etcd://localhost'],
  ];
  for (const [input, backend, address] of good) {
    it(`reads ${input}`, () => {
      expect(parseConnectionString(input)).toMatchObject({ backend, address });
    });
  }

  const bad: [unknown, RegExp][] = [
    ['', /"" is not a non-empty string/],
    [42, /42 is not a non-empty string/],
    ['etcd://', /"etcd:\/\/" names no host/],
    ['etcd://h1:2379,,h2', /malformed host ""/],
    ['etcd://h1:99999', /port 99999 out of range/],
    ['zk://h:2181', /unknown scheme "zk:\/\/"/],
    ['consul://a:8500,b:8500', /several hosts/],
    ['h1:2379/extra', /malformed host/],
  ];
  for (const [input, message] of bad) {
    it(`refuses ${JSON.stringify(input)} with an error that quotes it and says what was expected`, () => {
      expect(() => parseConnectionString(input)).toThrow(message);
      expect(() => parseConnectionString(input)).toThrow(/expected etcd:\/\/host:port/);
    });
  }

  it('opens memory:// stores that share a backend per name', async () => {
    const a = await openStore('memory://x');
    const b = await openStore('memory://x');
    const held = await a.compareAndSwap('/k', null, { id: 'a', value: '' }, 5);
    expect(held.ok).toBe(true);
    expect((await b.compareAndSwap('/k', null, { id: 'b', value: '' }, 5)).ok).toBe(false);
  });
});
