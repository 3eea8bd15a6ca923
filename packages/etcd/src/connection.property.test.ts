import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseEtcdConnectionString, parseEtcdHosts } from './connection.js';
import { EtcdStore } from './etcd-store.js';

// Whatever string `new EtcdStore(string)` is given, it parses, or it is refused
// with a TypeError that quotes the string (never a password in it) and says
// what was expected: nothing else is ever thrown.

/** Any string, lone surrogates and connection-string syntax included. */
const anyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.array(
    fc.oneof(
      fc.string({ maxLength: 3 }),
      fc.constantFrom('etcd://', 'etcds://', 'ETCD://', 'http://', 'https://', 'consul://', '://', ':', '@', ',', '/', '[', ']', '[::1]', '%', '%4', ' ', '\n', '\0', '\uD800', '2379', '99999', 'h1', 'u:p@'),
    ),
    { maxLength: 8 },
  ).map((parts) => parts.join('')),
);

const host = fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6().map((ip) => `[${ip}]`));
const port = fc.integer({ min: 1, max: 65535 });
const member = fc.tuple(host, fc.option(port, { nil: undefined }));
const show = ([h, p]: [string, number | undefined]): string => (p === undefined ? h : `${h}:${p}`);
const url = (secure: boolean, [h, p]: [string, number | undefined]): string => `${secure ? 'https' : 'http'}://${h}:${p ?? 2379}`;

/** A password no other part of a generated string can contain. */
const password = fc.string({ unit: fc.constantFrom(...'ABCDEFGHJKMNPQRSTVWXYZ0123456789@/:%'), minLength: 6, maxLength: 16 }).map((p) => `Pw${p}Qz`);

describe('etcd connection strings, property-based', () => {
  it('arbitrary strings parse to http(s) member URLs, or are refused with a TypeError that quotes them', () => {
    fc.assert(
      fc.property(anyString, (input) => {
        let parsed;
        try {
          parsed = parseEtcdConnectionString(input);
        } catch (error) {
          expect(error).toBeInstanceOf(TypeError);
          expect(Object.getPrototypeOf(error)).toBe(TypeError.prototype);
          const message = (error as Error).message;
          expect(message).toMatch(/^EtcdStore: connection string "/);
          if (!input.includes('@')) expect(message).toContain(`connection string ${JSON.stringify(input)}`);
          expect(message).toContain('expected etcd://host:port');
          // The constructor refuses it the same way, before any client exists, or,
          // for another store's address, saying which store takes it.
          expect(() => new EtcdStore(input)).toThrow(
            expect.objectContaining({ message: expect.toSatisfy((got: string) => got.includes(message) || /^EtcdStore: ".*" is (a Consul|an in-process memory store) address; use new (ConsulStore|MemoryStore)\(/s.test(got)) }),
          );
          return;
        }
        expect(parsed.hosts.length).toBeGreaterThan(0);
        for (const hostUrl of parsed.hosts) expect(hostUrl).toMatch(/^https?:\/\/(\[[0-9a-fA-F:.]+\]|[^:/\s[\]@?#,]+):\d{1,5}$/);
      }),
      { numRuns: 3000 },
    );
  });

  it('valid strings parse to exactly the hosts they name', () => {
    fc.assert(
      fc.property(fc.array(member, { minLength: 1, maxLength: 5 }), fc.constantFrom('etcd://', 'etcds://', 'ETCDS://', '', 'http', 'https'), fc.constantFrom('', '/', ' '), (members, scheme, tail) => {
        if (scheme === 'http' || scheme === 'https') {
          const input = members.map((m) => `${scheme}://${show(m)}`).join(',') + tail;
          expect(parseEtcdConnectionString(input)).toEqual({ hosts: members.map((m) => url(scheme === 'https', m)) });
          expect(parseEtcdHosts(members.map((m) => `${scheme}://${show(m)}`))).toEqual(members.map((m) => url(scheme === 'https', m)));
          return;
        }
        // A bare host list has no trailing "/" (it is not a URL).
        const input = `${scheme}${members.map(show).join(',')}${scheme === '' ? tail.replace('/', '') : tail}`;
        expect(parseEtcdConnectionString(input)).toEqual({ hosts: members.map((m) => url(scheme.toLowerCase() === 'etcds://', m)) });
      }),
    );
  });

  it('user:password@ parses to etcd auth, percent-decoded', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }).filter((u) => !u.includes(':')), fc.string(), fc.array(member, { minLength: 1, maxLength: 3 }), (user, pass, members) => {
        const input = `etcds://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@${members.map(show).join(',')}`;
        fc.pre(encodeURIComponent(user) !== '');
        expect(parseEtcdConnectionString(input)).toEqual({ hosts: members.map((m) => url(true, m)), auth: { username: user, password: pass } });
      }),
    );
  });

  it('never repeats a password in an error, whatever surrounds it', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('etcd://', 'etcds://', 'ETCDS://', ' etcd://', 'http://', 'https://', 'http://h0:1,http://', 'etcd://h0,'),
        fc.oneof(fc.constant(''), fc.constantFrom('vip', 'u/ser', 'a b', 'u%zz', ''), fc.string({ maxLength: 5 })),
        password,
        fc.oneof(anyString, fc.array(member, { minLength: 1, maxLength: 3 }).map((members) => members.map(show).join(','))),
        (scheme, user, secret, rest) => {
          fc.pre(!user.includes(secret) && !rest.includes(secret) && !scheme.includes(secret));
          const input = `${scheme}${user}:${secret}@${rest}`;
          for (const attempt of [() => parseEtcdConnectionString(input), () => parseEtcdHosts([input]), () => parseEtcdHosts(['h9:1', input])]) {
            try {
              attempt();
            } catch (error) {
              expect(error).toBeInstanceOf(TypeError);
              const message = (error as Error).message;
              expect(message).not.toContain(secret);
              expect(message).not.toContain(JSON.stringify(secret).slice(1, -1));
            }
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
