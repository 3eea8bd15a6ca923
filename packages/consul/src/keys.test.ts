import { describe, expect, it } from 'vitest';
import { consulKey } from './keys.js';

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
});
