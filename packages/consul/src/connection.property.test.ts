import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConsulConnectionString } from './connection.js';
import { ConsulStore } from './consul-store.js';

// Whatever string `new ConsulStore(string)` is given, it parses to one agent,
// or it is refused with a TypeError that quotes the string (never a password
// in it) and says what was expected: nothing else is ever thrown.

const anyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.array(
    fc.oneof(
      fc.string({ maxLength: 3 }),
      fc.constantFrom('consul://', 'consuls://', 'CONSUL://', 'http://', 'https://', 'etcd://', '://', ':', '@', ',', '/', '[', ']', '[::1]', '%', ' ', '\n', '\0', '\uD800', '8500', '99999', 'h1', 'u:p@'),
    ),
    { maxLength: 8 },
  ).map((parts) => parts.join('')),
);

const host = fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6().map((ip) => `[${ip}]`));
const port = fc.integer({ min: 1, max: 65535 });
const password = fc.string({ unit: fc.constantFrom(...'ABCDEFGHJKMNPQRSTVWXYZ0123456789@/:%'), minLength: 6, maxLength: 16 }).map((p) => `Pw${p}Qz`);

describe('Consul connection strings, property-based', () => {
  it('arbitrary strings parse to one agent, or are refused with a TypeError that quotes them', () => {
    fc.assert(
      fc.property(anyString, (input) => {
        let parsed;
        try {
          parsed = parseConsulConnectionString(input);
        } catch (error) {
          expect(error).toBeInstanceOf(TypeError);
          expect(Object.getPrototypeOf(error)).toBe(TypeError.prototype);
          const message = (error as Error).message;
          expect(message).toMatch(/^ConsulStore: connection string "/);
          if (!input.includes('@')) expect(message).toContain(`connection string ${JSON.stringify(input)}`);
          expect(message).toContain('expected consul://host:port');
          // The constructor refuses it the same way, before any client exists, or,
          // for another store's address, saying which store takes it.
          expect(() => new ConsulStore(input)).toThrow(
            expect.objectContaining({ message: expect.toSatisfy((got: string) => got.includes(message) || /^ConsulStore: ".*" (is an etcd address|is an in-process memory store address|has no scheme, and a bare host:port list is an etcd address to vip);/s.test(got)) }),
          );
          return;
        }
        expect(parsed.host).toMatch(/^([0-9a-fA-F:.]+|[^:/\s[\]@?#]+)$/);
        expect(Number.isInteger(parsed.port) && parsed.port >= 1 && parsed.port <= 65535).toBe(true);
        expect(typeof parsed.secure).toBe('boolean');
      }),
      { numRuns: 3000 },
    );
  });

  it('valid strings parse to exactly the agent they name', () => {
    fc.assert(
      fc.property(host, fc.option(port, { nil: undefined }), fc.constantFrom('consul://', 'consuls://', 'CONSULS://', 'http://', 'https://'), fc.constantFrom('', '/', ' ', '//'), (h, p, scheme, tail) => {
        const secure = /^(consuls|https):/i.test(scheme);
        const input = `${scheme}${h}${p === undefined ? '' : `:${p}`}${tail}`;
        expect(parseConsulConnectionString(input)).toEqual({ host: h.replace(/^\[|\]$/g, ''), port: p ?? (secure ? 8501 : 8500), secure });
      }),
    );
  });

  it('never repeats a password in an error, whatever surrounds it', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('consul://', 'consuls://', ' CONSUL://', 'http://', 'https://', 'etcd://', 'consul://h0:1,http://'),
        fc.oneof(fc.constantFrom('vip', 'u/ser', 'a b', ''), fc.string({ maxLength: 5 })),
        password,
        fc.oneof(anyString, fc.tuple(host, port).map(([h, p]) => `${h}:${p}`)),
        (scheme, user, secret, rest) => {
          fc.pre(!user.includes(secret) && !rest.includes(secret));
          const input = `${scheme}${user}:${secret}@${rest}`;
          expect(() => parseConsulConnectionString(input)).toThrow(TypeError);
          try {
            parseConsulConnectionString(input);
          } catch (error) {
            const message = (error as Error).message;
            expect(message).not.toContain(secret);
            expect(message).not.toContain(JSON.stringify(secret).slice(1, -1));
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
