import { describe, expect, it } from 'vitest';
import { consulClientOptions, parseConsulConnectionString } from './connection.js';

describe('Consul connection strings', () => {
  it('reads consul:// as http and consuls:// as https, with Consul\'s default ports', () => {
    expect(parseConsulConnectionString('consul://10.0.0.5:8600')).toEqual({ host: '10.0.0.5', port: 8600, secure: false });
    expect(parseConsulConnectionString('consul://consul.lan')).toEqual({ host: 'consul.lan', port: 8500, secure: false });
    expect(parseConsulConnectionString('consuls://consul.lan')).toEqual({ host: 'consul.lan', port: 8501, secure: true });
    expect(parseConsulConnectionString('  CONSULS://consul.lan:443/ ')).toEqual({ host: 'consul.lan', port: 443, secure: true });
    expect(parseConsulConnectionString('http://127.0.0.1:8500')).toEqual({ host: '127.0.0.1', port: 8500, secure: false });
    expect(parseConsulConnectionString('https://[::1]:8501')).toEqual({ host: '::1', port: 8501, secure: true });
  });

  it('refuses what is not one Consul agent, quoting the string and saying what was expected', () => {
    const refused: [string, RegExp][] = [
      ['127.0.0.1:8500', /"127\.0\.0\.1:8500" has no scheme .*write "consul:\/\/127\.0\.0\.1:8500"\); expected consul:\/\/host:port or consuls:\/\/host:port/],
      ['etcd://h:2379', /"etcd:\/\/h:2379" has the scheme "etcd:\/\/", which is not Consul's/],
      ['consul://a:8500,b:8500', /names several hosts/],
      ['consul://token@h:8500', /pass an ACL token as \{ token \}/],
      ['consul://', /has no host/],
      ['consul://h:0', /out of range/],
      ['consul://h:65536', /out of range/],
      ['consul://h:port', /malformed host/],
      ['', /is empty/],
    ];
    for (const [input, message] of refused) expect(() => parseConsulConnectionString(input), input).toThrow(message);
    expect(() => parseConsulConnectionString(7 as unknown as string)).toThrow(/is not a string/);
  });
});

describe('Consul client options', () => {
  it('passes the ACL token as a default of every request, and TLS material through', () => {
    expect(consulClientOptions('consul://h:1')).toEqual({ host: 'h', port: 1, secure: false });
    expect(consulClientOptions({ token: 't' })).toEqual({ host: '127.0.0.1', port: 8500, secure: false, defaults: { token: 't' } });
    expect(consulClientOptions({ host: 'h', secure: true, ca: 'CA', cert: 'C', key: 'K' })).toEqual({
      host: 'h',
      port: 8501,
      secure: true,
      ca: 'CA',
      cert: 'C',
      key: 'K',
    });
  });

  it('brackets an IPv6 address for the client\'s URL and resolves it without the brackets', async () => {
    const options = consulClientOptions('consul://[::1]:8500');
    expect(options.host).toBe('[::1]');
    const address = await new Promise<string>((resolve, reject) =>
      (options.lookup as unknown as (host: string, opts: object, cb: (error: Error | null, address: string) => void) => void)('[::1]', {}, (error, resolved) =>
        error ? reject(error) : resolve(resolved),
      ),
    );
    expect(address).toBe('::1');
  });

  it('names the option it refuses', () => {
    expect(() => consulClientOptions({ port: 70000 })).toThrow(/"port"/);
    expect(() => consulClientOptions({ host: 'a b' })).toThrow(/"host"/);
    expect(() => consulClientOptions({ token: '' })).toThrow(/"token"/);
    expect(() => consulClientOptions({ secure: true, ca: 5 as unknown as string })).toThrow(/"ca"/);
    expect(() => consulClientOptions({ secure: true, key: 'K' })).toThrow(/"cert"/);
    expect(() => consulClientOptions({ cert: 'C', key: 'K' })).toThrow(/"secure"/);
    expect(() => consulClientOptions(null as unknown as string)).toThrow(/connection string like "consul:\/\/127\.0\.0\.1:8500"/);
  });
});

describe('connection strings with credentials', () => {
  // Found by connection.property.test.ts: the refusal quoted the whole string, password included.
  it('are refused without repeating the password', () => {
    let message = '';
    try {
      parseConsulConnectionString('consul://vip:s3cret@127.0.0.1:8500');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toBe(
      'ConsulStore: connection string "consul://vip:***@127.0.0.1:8500" has credentials (pass an ACL token as { token } in an options object); expected consul://host:port or consuls://host:port',
    );
  });
});
