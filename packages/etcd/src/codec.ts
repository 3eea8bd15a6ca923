/**
 * How a holder is stored in etcd: the key's value is the JSON text
 * `{"id":<id>,"value":<value>}`, with `id` first. JSON, not a separator
 * (the seed modules' `id:::value`), so that any string round-trips exactly:
 * empty strings, `:::`, newlines, NUL, lone surrogates, 64 KiB.
 *
 * The fencing token is not in the value: it is the key's create revision,
 * which etcd assigns and only ever increases (see etcd-store.ts).
 */
import type { Claim, Holder } from '@vip/core';
import type { ICompare, IKeyValue } from 'etcd3';

/**
 * The id under which a value that vip did not write is reported. Such a key is
 * held as far as an election goes (it exists, so `createRevision == 0` fails),
 * so it is shown as a holder rather than as a free key, which would make every
 * candidate retry forever. Its `value` is the raw value as UTF-8 text.
 */
export const FOREIGN_HOLDER_ID = '(not written by vip)';

export function encodeHolder(claim: Claim): Buffer {
  // Property order is part of the format: `idGuard` relies on the id coming first.
  return Buffer.from(JSON.stringify({ id: claim.id, value: claim.value }));
}

/** Decode a key written by anyone. Never throws: see FOREIGN_HOLDER_ID. */
export function decodeHolder(kv: IKeyValue): Holder {
  const token = BigInt(kv.create_revision);
  const text = Buffer.from(kv.value).toString('utf8');
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null) {
      const { id, value } = parsed as { id?: unknown; value?: unknown };
      if (typeof id === 'string' && typeof value === 'string') return { id, value, token };
    }
  } catch {
    // Not JSON: somebody else's value.
  }
  return { id: FOREIGN_HOLDER_ID, value: text, token };
}

/**
 * Compares that hold only while the key's value names `id`, i.e. starts with
 * `{"id":<id as JSON>,"value":`. etcd compares values as bytes, so "starts
 * with P" is `value > P and value < P'`, where P' is P with its last byte
 * (`:`) raised by one (`;`). JSON strings are self-delimiting, so no other id
 * produces a value in that range. A compare on the value of a missing key
 * always fails (etcd server/etcdserver/txn.go, applyCompare).
 */
export function idGuard(key: Buffer, id: string): ICompare[] {
  const prefix = Buffer.from(`{"id":${JSON.stringify(id)},"value":`);
  const above = Buffer.from(prefix);
  above[above.length - 1] = prefix[prefix.length - 1]! + 1; // ':' -> ';'
  return [
    { key, target: 'Value', result: 'Greater', value: prefix },
    { key, target: 'Value', result: 'Less', value: above },
  ];
}
