import { describe, expect, it } from 'vitest';
import { parseEtcdConnectionString, parseEtcdHosts } from './connection.js';

describe('parseEtcdConnectionString', () => {
  it('reads bare hosts as the seed modules did: http, port 2379 when omitted', () => {
    expect(parseEtcdConnectionString('127.0.0.1:4001,127.0.0.1:4002')).toEqual({
      hosts: ['http://127.0.0.1:4001', 'http://127.0.0.1:4002'],
    });
    expect(parseEtcdConnectionString('etcd-1')).toEqual({ hosts: ['http://etcd-1:2379'] });
  });

  it('reads etcd:// as http and etcds:// as https', () => {
    expect(parseEtcdConnectionString('etcd://h1:2379,h2:2380')).toEqual({ hosts: ['http://h1:2379', 'http://h2:2380'] });
    expect(parseEtcdConnectionString('ETCDS://h1,h2:2380/')).toEqual({ hosts: ['https://h1:2379', 'https://h2:2380'] });
  });

  it('takes one http(s) URL per member, as etcdctl --endpoints does', () => {
    expect(parseEtcdConnectionString('http://127.0.0.1:1,http://127.0.0.1:2')).toEqual({
      hosts: ['http://127.0.0.1:1', 'http://127.0.0.1:2'],
    });
  });

  it('reads user:password@ as etcd auth, percent-decoded', () => {
    expect(parseEtcdConnectionString('etcds://vip:p%40ss:w@h1:2379,h2')).toEqual({
      hosts: ['https://h1:2379', 'https://h2:2379'],
      auth: { username: 'vip', password: 'p@ss:w' },
    });
  });

  it('keeps IPv6 addresses in brackets', () => {
    expect(parseEtcdConnectionString('etcd://[::1]:2379,[fe80::1]')).toEqual({ hosts: ['http://[::1]:2379', 'http://[fe80::1]:2379'] });
  });

  it.each([
    ['', 'is empty'],
    ['etcd://', 'has no hosts'],
    ['etcd://h1,,h2', 'has an empty host'],
    ['etcd://h1:99999', 'has port 99999 out of range'],
    ['consul://h:8500', 'has the scheme "consul://"'],
    ['etcd://h1/some/path', 'has a malformed host'],
    ['http://a:1,https://b:2', 'mixes http and https'],
    ['etcd://user@h1', 'without "user:password"'],
  ])('refuses %j, quoting it and saying what was expected', (input, why) => {
    let message = '';
    try {
      parseEtcdConnectionString(input);
    } catch (error) {
      expect(error).toBeInstanceOf(TypeError);
      message = (error as Error).message;
    }
    expect(message).toContain(`connection string ${JSON.stringify(input)}`);
    expect(message).toContain(why);
    expect(message).toContain('expected etcd://host:port');
  });

  it('never repeats a password in an error', () => {
    expect(() => parseEtcdConnectionString('etcds://vip:secret@h1:99999')).toThrow('"etcds://vip:***@h1:99999"');
  });

  // Found by connection.property.test.ts: only an etcd(s):// prefix was redacted, and a member was quoted whole.
  it('never repeats a password given in a member URL, or in a list of members', () => {
    for (const attempt of [
      () => parseEtcdConnectionString('http://vip:secret@h1:2379'),
      () => parseEtcdConnectionString('http://h0:1,https://vip:secret@h1'),
      () => parseEtcdConnectionString('etcds://us/er:secret@bad host'),
      () => parseEtcdHosts(['http://vip:secret@h1:2379']),
      () => parseEtcdHosts(['etcd://vip:secret@h1:2379']),
    ]) {
      expect(attempt).toThrow(TypeError);
      expect(attempt).not.toThrow(/secret/);
    }
    expect(() => parseEtcdConnectionString('http://vip:secret@h1:2379')).toThrow('"http://vip:***@h1:2379" has credentials in a member');
  });
});

describe('parseEtcdHosts', () => {
  it('accepts the URLs a test harness hands out', () => {
    expect(parseEtcdHosts(['http://127.0.0.1:23456', '127.0.0.1:23457'])).toEqual(['http://127.0.0.1:23456', 'http://127.0.0.1:23457']);
  });

  it('refuses an empty list and non-strings, naming the list', () => {
    expect(() => parseEtcdHosts([])).toThrow('EtcdStore: hosts [] is empty');
    expect(() => parseEtcdHosts([42 as unknown as string])).toThrow('not a string');
  });
});
