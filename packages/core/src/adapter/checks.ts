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
