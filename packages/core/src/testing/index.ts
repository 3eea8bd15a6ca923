/**
 * `@vip/core/testing`: what adapter authors and users' tests need.
 * - `describeLockStore`: the conformance kit every adapter must pass (needs vitest).
 * - `FaultyStore`: inject errors, latency and partitions into any store.
 * - `FakeClock`: drive candidates and MemoryStore deterministically.
 */
export { describeLockStore, expectHoldLivesTtlFromSend, WatchRecorder, type ConformanceOptions, type PartitionableStore } from './conformance.js';
export { FaultyStore, type StoreOperation } from './faulty-store.js';
export { FakeClock, settle } from './fake-clock.js';
