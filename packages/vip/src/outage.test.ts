import { VipStoreError, VipTimeoutError, VipWrongServerError } from '@vip/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isWrongServer, OutageReporter, plainCause } from './outage.js';

const errno = (message: string, code: string): NodeJS.ErrnoException => Object.assign(new Error(message), { code });

describe('plainCause', () => {
  // The texts the real clients produce (seen on this machine against killed servers).
  const cases: [string, unknown, string][] = [
    [
      'etcd3 with nothing listening',
      new VipStoreError('refresh', '/job', new Error('14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:2379. Resolution note: ')),
      'connection refused (connect ECONNREFUSED 127.0.0.1:2379)',
    ],
    ['etcd3 with the server killed under it', new Error('14 UNAVAILABLE: Connection dropped'), 'connection lost'],
    ["etcd3's circuit breaker", new Error('Execution prevented because the circuit breaker is open'), 'unreachable (the client paused its attempts after repeated failures)'],
    ['Consul with nothing listening', errno('connect ECONNREFUSED 127.0.0.1:8500', 'ECONNREFUSED'), 'connection refused (connect ECONNREFUSED 127.0.0.1:8500)'],
    ['a reset connection', errno('socket hang up', 'ECONNRESET'), 'connection reset'],
    ['a host that does not resolve', errno('getaddrinfo ENOTFOUND etcd.invalid', 'ENOTFOUND'), 'host name not found (getaddrinfo ENOTFOUND etcd.invalid)'],
    ['a store call past requestTimeout', new VipStoreError('watch', '/job', new VipTimeoutError('the first read of the key', 5000)), 'timed out'],
    ['an unknown ACL token', new Error('ACL not found (HTTP 403: ACL not found)'), 'authentication refused'],
    ['etcd auth', new Error('7 PERMISSION_DENIED: etcdserver: permission denied'), 'permission denied'],
    ['a refused TLS handshake', errno('unable to verify the first certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'TLS handshake failed (unable to verify the first certificate)'],
    ['something else', new Error('14 UNAVAILABLE: something odd\nmore'), 'unavailable (something odd)'],
    ['not an Error', 'plain text', 'plain text'],
  ];
  for (const [what, error, words] of cases) {
    it(`says "${words}" for ${what}`, () => expect(plainCause(error)).toBe(words));
  }

  it('gives a wrong server its own sentence, and isWrongServer finds it anywhere in the cause chain', () => {
    const wrong = new VipWrongServerError('this does not look like a Consul agent: GET /v1/kv/<key> answered 404');
    const wrapped = new VipStoreError('watch', '/job', wrong);
    expect(plainCause(wrapped)).toBe('this does not look like a Consul agent: GET /v1/kv/<key> answered 404');
    expect(isWrongServer(wrapped)).toBe(true);
    expect(isWrongServer(new Error('404 page not found'))).toBe(false);
    expect(isWrongServer(undefined)).toBe(false);
  });
});

describe('OutageReporter', () => {
  afterEach(() => vi.useRealTimers());

  function reporter() {
    const lines: string[] = [];
    const outage = new OutageReporter({ store: 'etcd://127.0.0.1:2379', log: (line) => lines.push(line), summaryEvery: 30 });
    return { outage, lines };
  }
  const refused = errno('connect ECONNREFUSED 127.0.0.1:2379', 'ECONNREFUSED');

  it('says once that the store is unreachable, summarises every 30 s, and says when it is back', () => {
    vi.useFakeTimers();
    const { outage, lines } = reporter();
    outage.answered(); // reached at start: silent
    expect(lines).toEqual([]);
    for (let i = 0; i < 5; i++) outage.failed(refused);
    expect(lines).toEqual(['store etcd://127.0.0.1:2379 unreachable: connection refused (connect ECONNREFUSED 127.0.0.1:2379); still trying']);
    expect(outage.down).toBe(true);
    vi.advanceTimersByTime(29_999);
    expect(lines).toHaveLength(1);
    outage.failed(new Error('14 UNAVAILABLE: Connection dropped'));
    vi.advanceTimersByTime(1);
    expect(lines[1]).toBe('store etcd://127.0.0.1:2379 still failing after 30 s (6 failed attempts; last: connection lost)');
    vi.advanceTimersByTime(12_000);
    outage.answered();
    outage.answered();
    expect(lines.slice(2)).toEqual(['store etcd://127.0.0.1:2379 reachable again after 42 s']);
    expect(outage.down).toBe(false);
    vi.advanceTimersByTime(120_000); // no summary once it is back
    expect(lines).toHaveLength(3);
    // A second outage is a new one: one line again, counted afresh.
    outage.failed(refused);
    vi.advanceTimersByTime(30_000);
    expect(lines.slice(3)).toEqual([
      'store etcd://127.0.0.1:2379 unreachable: connection refused (connect ECONNREFUSED 127.0.0.1:2379); still trying',
      'store etcd://127.0.0.1:2379 still failing after 30 s (1 failed attempt; last: connection refused (connect ECONNREFUSED 127.0.0.1:2379))',
    ]);
    outage.close();
    vi.advanceTimersByTime(60_000);
    expect(lines).toHaveLength(5);
  });

  it('points at --store when the store was never reached, and says "reached" when it finally is', () => {
    vi.useFakeTimers();
    const { outage, lines } = reporter();
    outage.failed(refused);
    vi.advanceTimersByTime(3000);
    outage.answered();
    expect(lines).toEqual([
      'cannot reach the store etcd://127.0.0.1:2379: connection refused (connect ECONNREFUSED 127.0.0.1:2379); still trying (check --store, or $VIP_STORE)',
      'store etcd://127.0.0.1:2379 reached after 3 s',
    ]);
  });

  it('says a server that answers "no" refused us, not that it is unreachable', () => {
    const { outage, lines } = reporter();
    outage.failed(new Error('7 PERMISSION_DENIED: etcdserver: permission denied'));
    expect(lines).toEqual(['store etcd://127.0.0.1:2379 refused us: permission denied; still trying']);
    outage.close();
  });
});
