import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConnectionString, redactConnectionString, VipConnectionError } from './connection.js';

// Any input either parses or is refused with a VipConnectionError that quotes it
// (a password in it shown as ***); nothing else is ever thrown.
describe('connection strings, property-based', () => {
  it('arbitrary strings never crash the parser: parsed, or refused with a clear error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('etcd://', 'consul://', '::', ',', '[::1]')), (input) => {
        try {
          const parsed = parseConnectionString(input);
          expect(['etcd', 'consul', 'memory']).toContain(parsed.backend);
        } catch (error) {
          expect(error).toBeInstanceOf(VipConnectionError);
          expect((error as Error).message).toContain(JSON.stringify(redactConnectionString(input)));
          expect((error as Error).message).toContain('expected etcd://host:port');
        }
      }),
      { numRuns: 2000 },
    );
  });

  const host = fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6().map((ip) => `[${ip}]`));
  const hostPort = fc.tuple(host, fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`);

  it('valid etcd host lists round-trip into the address handed to the adapter', () => {
    fc.assert(
      fc.property(fc.array(hostPort, { minLength: 1, maxLength: 5 }), fc.constantFrom('etcd://', 'etcds://', ''), (hosts, scheme) => {
        const input = `${scheme}${hosts.join(',')}`;
        const parsed = parseConnectionString(input);
        expect(parsed.backend).toBe('etcd');
        expect(parsed.address).toBe(`${scheme || 'etcd://'}${hosts.join(',')}`);
      }),
    );
  });

  it('valid consul addresses round-trip', () => {
    fc.assert(
      fc.property(hostPort, fc.constantFrom('consul://', 'consuls://'), (address, scheme) => {
        expect(parseConnectionString(`${scheme}${address}`)).toMatchObject({ backend: 'consul', address: `${scheme}${address}` });
      }),
    );
  });

  it('ports out of range are refused, naming the port', () => {
    fc.assert(
      fc.property(fc.domain(), fc.integer({ min: 65536, max: 10_000_000 }), (h, port) => {
        expect(() => parseConnectionString(`etcd://${h}:${port}`)).toThrow(`port ${port} out of range`);
      }),
    );
  });

  it('a password in a refused string is never repeated; a valid one is handed to the adapter as given', () => {
    // "!" is in no host name and in none of the error's own words, so finding it means the password leaked.
    const password = fc.string({ minLength: 1, maxLength: 12 }).map((text) => `${encodeURIComponent(text)}!pw`);
    const user = fc.stringMatching(/^[a-z][a-z0-9]{0,7}$/);
    fc.assert(
      fc.property(user, password, fc.array(hostPort, { minLength: 1, maxLength: 3 }), fc.constantFrom('etcd://', 'etcds://'), fc.boolean(), (name, secret, hosts, scheme, broken) => {
        const input = `${scheme}${name}:${secret}@${hosts.join(',')}${broken ? ',' : ''}`;
        if (!broken) {
          expect(parseConnectionString(input).address).toBe(input);
          return;
        }
        let message = '';
        try {
          parseConnectionString(input);
        } catch (error) {
          message = (error as Error).message;
        }
        expect(message).toContain(`"${scheme}${name}:***@`);
        expect(message).not.toContain(secret);
      }),
    );
  });
});
