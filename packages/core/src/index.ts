export { Candidate, locker, type CandidateEvents, type CandidateHealth, type DeselectReason } from './candidate.js';
export { STORE_CALL_CHANNEL, type StoreCallMessage, type StoreCallPurpose } from './diagnostics.js';
export { systemClock, type Clock, type Random, type TimerHandle } from './clock.js';
export { VipDeselectedError, VipOptionError, VipStoreError, VipTimeoutError, VipWrongServerError } from './errors.js';
export { MemoryBackend, MemoryStore, type MemoryStoreOptions } from './memory-store.js';
export type { BackoffOptions, CandidateOptions } from './options.js';
export type { Claim, Holder, LockStore, StoreLimits, SwapResult, WatchTrouble } from './store.js';
export { sameHolder, sameTerm } from './store.js';
