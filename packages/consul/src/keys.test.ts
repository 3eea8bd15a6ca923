import { describe, expect, it } from 'vitest';
import { consulKey, consulKeyRule } from './keys.js';

describe('vip paths as Consul keys', () => {
  it('drops the leading slash and keeps everything else', () => {
    expect(consulKey('t', '/my-job')).toBe('my-job');
    expect(consulKey('t', 'my-job')).toBe('my-job');
    expect(consulKey('t', '///jobs/report')).toBe('jobs/report');
    expect(consulKey('t', 'jobs/report/')).toBe('jobs/report/');
    expect(consulKey('t', 'a b/ü/:::/%2F')).toBe('a b/ü/:::/%2F');
    expect(consulKey('t', 'a/.hidden/..x')).toBe('a/.hidden/..x');
  });

  it('refuses keys that Consul\'s HTTP API would fold into another key', () => {
    for (const key of ['', '/', '//', 'a//b', 'a/./b', 'a/../b', './a', 'a/..']) {
      expect(() => consulKey('ConsulStore.refresh', key), JSON.stringify(key)).toThrow(/ConsulStore\.refresh: option "key"/);
    }
    expect(() => consulKey('t', 5)).toThrow(/"key"/);
  });

  it('refuses keys with a lone surrogate, which Consul would store as U+FFFD, the name of another key', () => {
    // Found by test-integration/consul/values.property.test.ts: "p/\uD800" and "p/\uDC00" were both written
    // to "p/\uFFFD", and the txn that wrote them was reported as failed ("returned no entry for it").
    for (const key of ['p/\uD800', 'p/\uDC00', '\uDFFFa', 'a\uD83D/b']) {
      expect(() => consulKey('ConsulStore.compareAndSwap', key), JSON.stringify(key)).toThrow(/option "key" must be a Consul key path \(well-formed Unicode/);
      expect(consulKeyRule(key)).toMatch(/well-formed Unicode/);
    }
    expect(consulKey('t', 'p/\uFFFD/\uD83D\uDDF3')).toBe('p/\uFFFD/\uD83D\uDDF3');
    expect(consulKeyRule('/p/🗳️')).toBeUndefined();
  });

  it('refuses keys with characters that GET /v1/kv/ answers 400 Bad Request for (Go: not unicode.IsPrint)', () => {
    // Found by test-integration/consul/values.property.test.ts: "/v1/txn" wrote "p/a\u2028" (or NUL, a tab,
    // U+00A0, U+200D, U+FEFF...), and every read of it failed: a key that no candidate could watch.
    for (const char of ['\0', '\t', '\n', '\u007F', '\u0085', '\u00A0', '\u00AD', '\u200D', '\u2028', '\u3000', '\uE000', '\uFEFF', '\uFFFF', '\u{F0000}']) {
      expect(() => consulKey('ConsulStore.watch', `p/a${char}b`), JSON.stringify(char)).toThrow(/option "key" must be a Consul key path \(printable characters only/);
    }
    for (const char of [' ', 'ü', '\u0301', 'ключ', '鍵', '🗳️', '😀', '%', '?', '#', '"', '\\', '~']) {
      expect(consulKeyRule(`p/a${char}b`), JSON.stringify(char)).toBeUndefined();
    }
  });
});
