import type { IKeyValue } from 'etcd3';
import { describe, expect, it } from 'vitest';
import { decodeHolder, encodeHolder, FOREIGN_HOLDER_ID, idGuard } from './codec.js';

const kv = (value: Buffer | string, createRevision = '7'): IKeyValue => ({
  key: Buffer.from('/k'),
  create_revision: createRevision,
  mod_revision: createRevision,
  version: '1',
  value: Buffer.from(value),
  lease: '0',
});

describe('holder encoding', () => {
  it.each([
    ['empty', ''],
    ['the old separator', 'a:::b'],
    ['newlines and NUL', 'x\n\r\t\u0000y'],
    ['unicode', 'élection 選挙 🗳️'],
    ['a lone surrogate', '\ud800'],
    ['JSON-looking', '{"id":"x","value":"y"}'],
  ])('round-trips any string exactly: %s', (_label, text) => {
    const claim = { id: `id ${text}`, value: text };
    expect(decodeHolder(kv(encodeHolder(claim)))).toEqual({ ...claim, token: 7n });
  });

  it('takes the token from the create revision', () => {
    expect(decodeHolder(kv(encodeHolder({ id: 'a', value: 'b' }), '123456789012')).token).toBe(123456789012n);
  });

  it('shows a value vip did not write as a holder with a clear id, never throws', () => {
    expect(decodeHolder(kv('plain text'))).toEqual({ id: FOREIGN_HOLDER_ID, value: 'plain text', token: 7n });
    expect(decodeHolder(kv('{"id":1}'))).toEqual({ id: FOREIGN_HOLDER_ID, value: '{"id":1}', token: 7n });
    expect(decodeHolder(kv('null')).id).toBe(FOREIGN_HOLDER_ID);
  });
});

describe('idGuard: "the value names this id" as two byte comparisons', () => {
  // etcd compares values with bytes.Compare; Buffer.compare is the same order.
  const passes = (value: Buffer, id: string): boolean => {
    const [above, below] = idGuard(Buffer.from('/k'), id);
    return Buffer.compare(value, above!.value!) > 0 && Buffer.compare(value, below!.value!) < 0;
  };

  it('passes for every value written for that id', () => {
    for (const value of ['', 'x', '\uffff'.repeat(3), '{"id":"b"}']) {
      expect(passes(encodeHolder({ id: 'a', value }), 'a')).toBe(true);
    }
  });

  it('fails for other ids, including ids that extend or prefix it', () => {
    for (const other of ['', 'b', 'aa', 'a"', 'a\\', 'a","value":"', 'A']) {
      expect(passes(encodeHolder({ id: other, value: 'v' }), 'a')).toBe(false);
      expect(passes(encodeHolder({ id: 'a', value: 'v' }), other)).toBe(false);
    }
    expect(passes(Buffer.from('garbage'), 'a')).toBe(false);
  });
});
