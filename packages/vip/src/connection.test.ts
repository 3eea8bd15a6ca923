import { describe, expect, it } from 'vitest';
import { importAdapter, openStore, parseConnectionString } from './connection.js';

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
    // The forms @vip/etcd reads: user:password before the hosts, one URL per member.
    ['etcds://root:s3cret@h:2379', 'etcd', 'etcds://root:s3cret@h:2379'],
    ['etcd://us%40er:p%3Ass@h1:2379,h2', 'etcd', 'etcd://us%40er:p%3Ass@h1:2379,h2'],
    ['http://a:2379,http://b:2379', 'etcd', 'http://a:2379,http://b:2379'],
    ['https://a:2379', 'etcd', 'https://a:2379'],
    ['a:2379,http://b:2379', 'etcd', 'a:2379,http://b:2379'],
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
    ['etcd://h1:99999', /port 99999 out of range/],
    ['zk://h:2181', /unknown scheme "zk:\/\/"/],
    ['consul://a:8500,b:8500', /several hosts/],
    ['h1:2379/extra', /malformed host/],
    ['etcd://h1:2379,,h2', /empty host/],
    ['etcd://root@h:2379', /credentials without "user:password"/],
    ['etcd://root:%zz@h:2379', /not valid percent-encoding/],
    ['http://a:2379,https://b:2379', /mixes http and https/],
    ['a:2379,https://b:2379', /mixes http and https/],
    ['http://a,zk://b', /member with the scheme "zk:\/\/"/],
    ['consul://tok:en@h:8500', /has credentials \(a Consul ACL token goes in CONSUL_HTTP_TOKEN/],
  ];
  for (const [input, message] of bad) {
    it(`refuses ${JSON.stringify(input)} with an error that quotes it and says what was expected`, () => {
      expect(() => parseConnectionString(input)).toThrow(message);
      expect(() => parseConnectionString(input)).toThrow(/expected etcd:\/\/host:port/);
    });
  }

  it('never repeats a password: it is shown as ***', () => {
    const cases: [string, string][] = [
      ['etcds://root:s3cret@h:99999', '"etcds://root:***@h:99999" has port 99999 out of range'],
      ['etcd://root:s3cret@h:2379,,x', '"etcd://root:***@h:2379,,x" has an empty host'],
      ['http://root:s3cret@a:2379', '"http://root:***@a:2379" has credentials in a host'],
      ['consul://root:s3cret@h:8500', '"consul://root:***@h:8500" has credentials'],
    ];
    for (const [input, message] of cases) {
      expect(() => parseConnectionString(input)).toThrow(message);
      try {
        parseConnectionString(input);
      } catch (error) {
        expect((error as Error).message).not.toContain('s3cret');
      }
    }
  });

  it('says which package to install when the adapter is missing, without the password', async () => {
    const error = await importAdapter('@vip/not-installed-adapter', 'etcd://root:s3cret@h:2379').catch((e: Error) => e);
    expect((error as Error).message).toBe(
      'vip: the store "etcd://root:***@h:2379" needs the package @vip/not-installed-adapter; install it: npm install @vip/not-installed-adapter',
    );
  });

  it('hands the etcd adapter the string as given, userinfo and member URLs included', async () => {
    const store = (await openStore('http://127.0.0.1:1,http://127.0.0.2:2')) as unknown as { client: { options: { hosts: string[] } }; close(): Promise<void> };
    try {
      expect(store.client.options.hosts).toEqual(['http://127.0.0.1:1', 'http://127.0.0.2:2']);
    } finally {
      await store.close();
    }
  });

  it('gives the Consul adapter an ACL token when one is passed (the vip command takes CONSUL_HTTP_TOKEN)', async () => {
    const store = (await openStore('consuls://[::1]:8501', { consulToken: 't0ken' })) as unknown as {
      client: { _defaults?: { token?: string }; _opts: { baseUrl: { hostname: string; port: string; protocol: string } } };
      close(): Promise<void>;
    };
    try {
      expect(store.client._defaults?.token).toBe('t0ken');
    } finally {
      await store.close();
    }
    const plain = (await openStore('consul://127.0.0.1:8500')) as unknown as { client: { _defaults?: { token?: string } }; close(): Promise<void> };
    expect(plain.client._defaults?.token).toBeUndefined();
    await plain.close();
  });

  it('opens memory:// stores that share a backend per name', async () => {
    const a = await openStore('memory://x');
    const b = await openStore('memory://x');
    const held = await a.compareAndSwap('/k', null, { id: 'a', value: '' }, 5);
    expect(held.ok).toBe(true);
    expect((await b.compareAndSwap('/k', null, { id: 'b', value: '' }, 5)).ok).toBe(false);
  });
});
