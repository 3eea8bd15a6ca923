/**
 * `@vip/core/adapter`: what a `LockStore` adapter is built from. Applications
 * import `@vip/core`; adapters (`@vip/etcd`, `@vip/consul`, yours) import this.
 */
export { coalesce } from '../coalesce.js';
export { emitIsolated } from '../emit.js';
export { describe as describeValue, redactConnectionString, VipOptionError, VipStoreError, VipTimeoutError, VipWrongServerError } from '../errors.js';
export { explainTlsError, isTlsError, type TlsHints } from '../tls.js';
export type { Claim, Holder, LockStore, StoreLimits, SwapResult, WatchTrouble } from '../store.js';
export { sameHolder, sameTerm } from '../store.js';
export { checkClaim, checkHolder, checkKnownKeys, checkNonEmptyString, checkObject, checkSeconds, checkSignal, type SecondsRange } from './checks.js';
export { CANDIDATE_OPTION_KEYS } from '../options.js';
export { troubleReporter } from './trouble.js';
export { HoldPool, type Hold, type HoldBackend, type HoldPoolOptions } from './hold-pool.js';
