/**
 * How a holder is stored in Consul: the key's value is the JSON text
 * `{"id":<id>,"value":<value>}` (as in @vip/etcd), so that any string
 * round-trips exactly: empty strings, `:::`, newlines, NUL, unicode, lone
 * surrogates, 64 KiB. The holder is whoever's session locks the key; the
 * fencing token is not in the value but is the key's CreateIndex (see
 * consul-store.ts).
 *
 * Sizes. Consul refuses a KV value over 512 KiB (`kv_max_value_size`) and a
 * `/v1/txn` request body over 512 KiB (`txn_max_req_len`, at least
 * `kv_max_value_size`; agent/txn_endpoint.go, convertOps). In a txn the value
 * travels base64-encoded (4/3), and JSON takes up to 6 bytes for one byte of
 * a string (control characters become `\u00XX`). 60 KiB of id and value
 * therefore always fits, with room left for a key of several KiB:
 * 6 × 60 KiB × 4/3 = 480 KiB. A larger request that the server refuses (413)
 * is reported as a RangeError that says so (consul-http.ts).
 */
import type { Claim, Holder } from '@vip/core';

/** What `limits.maxValueBytes` promises: id and value, UTF-8, that always fit. */
export const MAX_VALUE_BYTES = 60 * 1024;

/**
 * The id under which a key that vip did not write is reported (locked by some
 * session, with a value that is not a vip holder). Such a key is held as far as
 * an election goes, so it is shown as a holder rather than as a free key.
 * Its `value` is the raw value as UTF-8 text.
 */
export const FOREIGN_HOLDER_ID = '(not written by vip)';

export function encodeHolder(claim: Claim): Buffer {
  return Buffer.from(JSON.stringify({ id: claim.id, value: claim.value }));
}

/** Decode the value of a locked key written by anyone. Never throws: see FOREIGN_HOLDER_ID. */
export function decodeHolder(value: string | null | undefined, token: bigint): Holder {
  const text = value ?? '';
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null) {
      const { id, value: held } = parsed as { id?: unknown; value?: unknown };
      if (typeof id === 'string' && typeof held === 'string') return { id, value: held, token };
    }
  } catch {
    // Not JSON: somebody else's value.
  }
  return { id: FOREIGN_HOLDER_ID, value: text, token };
}
