import type { DeselectReason } from './events.js';

/** Thrown (synchronously, at the call that received it) for an invalid option or argument. */
export class VipOptionError extends TypeError {
  override readonly name = 'VipOptionError';
  /** The option or argument that was wrong, e.g. `"ttl"`. */
  readonly option: string;
  constructor(where: string, option: string, expected: string, got: unknown) {
    super(`${where}: option "${option}" must be ${expected} (got ${describe(got)})`);
    this.option = option;
  }
}

/**
 * The server at the store's address answered, but not as the store's server
 * would: an etcd client pointed at a Consul agent, a Consul client at etcd or
 * a web server. No retry mends it; check the address (and its port).
 */
export class VipWrongServerError extends Error {
  override readonly name = 'VipWrongServerError';
  readonly code = 'VIP_WRONG_SERVER';
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
  }
}

/** Wraps an error of a store call, saying which operation on which key failed. */
export class VipStoreError extends Error {
  override readonly name = 'VipStoreError';
  readonly operation: 'compareAndSwap' | 'refresh' | 'release' | 'watch';
  readonly key: string;
  constructor(operation: VipStoreError['operation'], key: string, cause: unknown) {
    super(`${operation} on "${key}" failed: ${cause instanceof Error ? cause.message : describe(cause)}`, { cause });
    this.operation = operation;
    this.key = key;
  }
}

/** The reason a term's signal aborts with (`select`'s signal, `termSignal()`, `whenSelected()`): the term ended. */
export class VipDeselectedError extends Error {
  override readonly name = 'VipDeselectedError';
  /** Why the term ended, as in the `deselect` event. */
  readonly reason: DeselectReason;
  constructor(reason: DeselectReason) {
    super(`the term ended: ${reason}`);
    this.reason = reason;
  }
}

/** A store call that did not answer in time: its outcome is unknown. */
export class VipTimeoutError extends Error {
  override readonly name = 'VipTimeoutError';
  constructor(what: string, ms: number) {
    super(`${what} did not answer within ${Math.round(ms)} ms`);
  }
}

/**
 * A connection string as error messages and logs may show it, never with a
 * password: whatever lies between the first ":" after "://" and the last "@"
 * (a `user:password@` before the hosts, or in a member URL) becomes `***`.
 * One rule for every package that quotes a connection string.
 */
export function redactConnectionString(input: string): string {
  const scheme = input.indexOf('://');
  const at = input.lastIndexOf('@');
  if (scheme === -1 || at < scheme) return input;
  const colon = input.indexOf(':', scheme + 3);
  return colon === -1 || colon > at ? input : `${input.slice(0, colon + 1)}***${input.slice(at)}`;
}

/** A short, readable rendering of any value for error messages. */
export function describe(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return `string ${JSON.stringify(shown)}`;
  }
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : `number ${value}`;
  if (typeof value === 'bigint') return `bigint ${value}n`;
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return 'a function';
  return typeof value === 'object' ? 'an object' : typeof value;
}
