import { describe, expect, it } from 'vitest';
import { decodeHolder, encodeHolder, FOREIGN_HOLDER_ID, MAX_VALUE_BYTES } from './codec.js';

describe('holders in Consul values', () => {
  it('round-trips any id and value exactly', () => {
    for (const value of ['', 'a:::b', 'x\ny\r\n', '\u0000\uFFFD🗳️', 'half \uD83D', '{"id":"x","value":"y"}']) {
      const text = encodeHolder({ id: 'id:::ü', value }).toString('utf8');
      expect(decodeHolder(text, 7n)).toEqual({ id: 'id:::ü', value, token: 7n });
    }
  });

  it('shows anything else as a foreign holder and never throws', () => {
    for (const value of [null, '', 'plain', '{"id":1,"value":"v"}', '[]', 'null', '\uFFFD\u0000']) {
      expect(decodeHolder(value, 3n)).toEqual({ id: FOREIGN_HOLDER_ID, value: value ?? '', token: 3n });
    }
  });

  it('keeps the worst case of maxValueBytes (control characters, 6 bytes each in JSON) under 512 KiB once base64-encoded in a txn', () => {
    const encoded = encodeHolder({ id: '', value: '\u0001'.repeat(MAX_VALUE_BYTES) });
    expect(Math.ceil(encoded.length / 3) * 4).toBeLessThan(512 * 1024 - 8 * 1024);
  });
});
