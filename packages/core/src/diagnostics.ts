/**
 * What a Candidate publishes on Node's `diagnostics_channel` about each store
 * call: free when nobody subscribes (the message is not even built), and the
 * way `@vip/core/metrics` (or a user's own tracing) times store calls without
 * wrapping the store.
 *
 * ```ts
 * import { subscribe } from 'node:diagnostics_channel';
 * import { STORE_CALL_CHANNEL, type StoreCallMessage } from '@vip/core';
 * subscribe(STORE_CALL_CHANNEL, (message) => console.log(message as StoreCallMessage));
 * ```
 */
import { channel } from 'node:diagnostics_channel';

/** The channel's name. */
export const STORE_CALL_CHANNEL = 'vip:store-call';

/**
 * Why the candidate called its store: `acquire` (CAS on a free key),
 * `refresh` (extend the hold), `verify` (CAS of our own term, when the watch
 * showed the key free while leading), `release` (CAS of our hold to free),
 * `watch` (a watch that failed or ended; published only on failure).
 */
export type StoreCallPurpose = 'acquire' | 'refresh' | 'verify' | 'release' | 'watch';

/** One message per store call that settled, published after it settled. */
export interface StoreCallMessage {
  /** The Candidate that made the call. */
  readonly candidate: object;
  /** The election key. */
  readonly path: string;
  readonly purpose: StoreCallPurpose;
  /** Milliseconds from sending to the answer (or the failure) on the candidate's clock; 0 for `watch`. */
  readonly durationMs: number;
  /** The failure (a VipStoreError or VipTimeoutError), or `undefined` when the store answered. */
  readonly error: Error | undefined;
}

/** @internal */
export const storeCalls = channel(STORE_CALL_CHANNEL);
