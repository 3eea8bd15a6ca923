/**
 * Argument checks for adapters: one set, so that every store refuses a bad
 * argument the same way, with a `VipOptionError` (a `TypeError`) whose
 * message names the call, the option or argument, what it must be and what
 * it got: `EtcdStore.refresh: option "ttl" must be … (got string "5")`.
 * Each throws at the call that received the value, before anything is sent.
 */
import { VipOptionError } from '../errors.js';
import type { Claim, Holder } from '../store.js';

/** An options object (not null, not a primitive). */
export function checkObject(where: string, option: string, value: unknown, expected = 'an object'): asserts value is object {
  if (value === null || typeof value !== 'object') throw new VipOptionError(where, option, expected, value);
}

/** A string that is not empty. */
export function checkNonEmptyString(where: string, option: string, value: unknown, expected = 'a non-empty string'): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) throw new VipOptionError(where, option, expected, value);
}

/** A range of seconds: above a bound (`{ greaterThan: 0 }`), or within one (`{ from: 1, to: 600 }`, both included). */
export type SecondsRange = { readonly greaterThan: number } | { readonly from: number; readonly to: number };

/**
 * A finite number of seconds within `range`; returns it. The message says
 * "a finite number of seconds greater than N" or "a number of seconds from A
 * to B", followed by `note` if given (e.g. "(Consul's session TTL range)").
 */
export function checkSeconds(where: string, option: string, value: unknown, range: SecondsRange, note?: string): number {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    ('greaterThan' in range ? value > range.greaterThan : value >= range.from && value <= range.to);
  if (!ok) {
    const expected = 'greaterThan' in range ? `a finite number of seconds greater than ${range.greaterThan}` : `a number of seconds from ${range.from} to ${range.to}`;
    throw new VipOptionError(where, option, note ? `${expected} ${note}` : expected, value);
  }
  return value as number;
}

/** A holder `{ id: string, value: string, token: bigint }`, or also null when `nullable`. */
export function checkHolder(where: string, option: string, value: unknown, nullable: boolean): asserts value is Holder | null {
  if (value === null && nullable) return;
  const h = value as Partial<Holder> | null;
  if (h === null || typeof h !== 'object' || typeof h.id !== 'string' || typeof h.value !== 'string' || typeof h.token !== 'bigint') {
    throw new VipOptionError(where, option, `${nullable ? 'null or ' : ''}a holder { id: string, value: string, token: bigint }`, value);
  }
}

/**
 * Null or a claim `{ id: string, value: string }`. With `nonEmptyId`, an
 * empty id is refused too (for a store that cannot write one).
 */
export function checkClaim(where: string, option: string, value: unknown, nonEmptyId = false): asserts value is Claim | null {
  if (value === null) return;
  const c = value as Partial<Claim> | null;
  if (c === null || typeof c !== 'object' || typeof c.id !== 'string' || (nonEmptyId && c.id === '') || typeof c.value !== 'string') {
    throw new VipOptionError(where, option, `null or a claim { id: ${nonEmptyId ? 'non-empty ' : ''}string, value: string }`, value);
  }
}

/**
 * An AbortSignal (also one from another realm: anything with the parts a
 * store uses), or also undefined unless `required`.
 */
export function checkSignal(where: string, option: string, value: unknown, required: boolean): asserts value is AbortSignal | undefined {
  if (value === undefined && !required) return;
  if (value instanceof AbortSignal) return;
  const s = value as Partial<AbortSignal> | null;
  const looksLikeSignal =
    s !== null &&
    typeof s === 'object' &&
    typeof s.aborted === 'boolean' &&
    typeof s.addEventListener === 'function' &&
    typeof s.removeEventListener === 'function' &&
    typeof s.throwIfAborted === 'function';
  if (!looksLikeSignal) throw new VipOptionError(where, option, required ? 'an AbortSignal' : 'an AbortSignal or undefined', value);
}

/**
 * Refuses an options object with a key that is not one of `known`, so that a
 * typo (`{ tll: 10 }`) fails where it was given instead of being ignored and
 * its option quietly left at the default. A key set to `undefined` counts too:
 * a typo is a typo. Throws a `VipOptionError` whose `option` is the unknown
 * key (the first one, in the object's own key order), with a message that
 * suggests the nearest known key when one is close (a case-insensitive match,
 * or an edit distance of at most 2), and lists the valid ones:
 * `Candidate: unknown option "tll" (did you mean "ttl"? valid options: path, id, …)`.
 *
 * `prefix` names a nested object's keys (`"backoff."` gives `"backoff.intial"`).
 * Only own enumerable string keys are checked; non-objects are left to the caller's own checks.
 */
export function checkKnownKeys(where: string, options: object, known: readonly string[], prefix = ''): void {
  if (options === null || typeof options !== 'object') return;
  const unknown = Object.keys(options).find((key) => !known.includes(key));
  if (unknown === undefined) return;
  const option = `${prefix}${unknown}`;
  const valid = known.map((key) => `${prefix}${key}`).join(', ');
  const nearest = nearestKey(unknown, known);
  const error = new VipOptionError(where, option, `one of ${valid}`, (options as Record<string, unknown>)[unknown]);
  error.message = `${where}: unknown option "${option}" (${nearest === undefined ? '' : `did you mean "${prefix}${nearest}"? `}valid options: ${valid})`;
  throw error;
}

/**
 * The known key `key` was most likely meant to be: the same but for case, or
 * else the one at the smallest edit distance (insertions, deletions,
 * substitutions and swaps of two neighbours; case ignored), if that is at
 * most 2 and less than the key's length (so that `"x"` does not suggest `"id"`).
 * Ties go to the key listed first.
 */
function nearestKey(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestDistance = Math.min(3, lower.length);
  for (const candidate of known) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Optimal string alignment distance (Damerau-Levenshtein without repeated edits of one substring). */
function editDistance(a: string, b: string): number {
  // rows[i][j]: distance between the first i characters of a and the first j of b.
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i]!;
    const above = rows[i - 1]!;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min(above[j]! + 1, row[j - 1]! + 1, above[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) distance = Math.min(distance, rows[i - 2]![j - 2]! + 1);
      row[j] = distance;
    }
  }
  return rows[a.length]![b.length]!;
}
