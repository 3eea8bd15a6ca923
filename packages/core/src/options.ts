/**
 * Candidate options and the timing policy, validated in one place when a
 * candidate is created so that a bad value fails at the call that received it.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { systemClock, type Clock, type Random } from './clock.js';
import { checkKnownKeys } from './adapter/checks.js';
import { VipOptionError, describe } from './errors.js';
import type { LockStore } from './store.js';

export interface BackoffOptions {
  /** First retry delay after a store error, in seconds. Default 0.1. */
  initial?: number;
  /** Largest retry delay, in seconds. Default: `min(5, ttl / 3)`. */
  max?: number;
}

export interface CandidateOptions {
  /** The key all candidates of one election share, e.g. `/http-router`. Required. */
  path: string;
  /**
   * This candidate's id, unique among the candidates of one path. Default:
   * `<hostname>-<pid>-<random>`. A hold on the path that bears this id but is
   * not this candidate's current term (an earlier term that expired while the
   * store was unreachable) is released, so give every candidate its own id.
   */
  id?: string;
  /** The value this candidate publishes while it leads (any string). Default `''`. */
  value?: string;
  /**
   * Seconds a hold lives on the server without refresh; fractions allowed.
   * Default 10. A crashed leader is replaced after about this long (the
   * store may add its own delay: Consul up to 2 × ttl, etcd ~0.5 s).
   */
  ttl?: number;
  /** Seconds between refreshes while leading. Default `ttl / 3`. */
  refreshInterval?: number;
  /**
   * Seconds before the server could expire the hold at which the leader
   * gives up leadership by itself. Default `ttl / 5`.
   *
   * Why a fifth: the local deadline is `send time of the last confirmed
   * refresh + ttl - safetyMargin`, measured on this process's monotonic
   * clock only. The margin absorbs a clock that runs slow compared to the
   * server's (safety holds for a rate error up to `safetyMargin / ttl`, 20%
   * by default, far above real oscillator drift) and the time between the
   * deadline timer firing and listeners reacting (event-loop lag). With the
   * default refresh interval of ttl/3 it still leaves two refresh attempts
   * (at ttl/3 and 2ttl/3) before the deadline at 0.8 ttl.
   */
  safetyMargin?: number;
  /**
   * Seconds a store call may take before the candidate gives up waiting and
   * treats its outcome as unknown. Default: `ttl`. While leading, a hung
   * request can never keep a leader past its local deadline (kubernetes#125530):
   * the term ends there whatever is in flight, and a hung refresh does not
   * hold up the next one, which goes out beside it at the next refresh interval.
   */
  requestTimeout?: number;
  /** Exponential backoff with jitter after store errors. */
  backoff?: BackoffOptions;
  /** Monotonic clock and timers; inject `FakeClock` in tests. */
  clock?: Clock;
  /** Uniform random numbers in [0, 1) for jitter; inject for deterministic tests. */
  random?: Random;
}

/** Options after defaults and validation, all durations in milliseconds. */
export interface ResolvedOptions {
  readonly path: string;
  readonly id: string;
  readonly value: string;
  readonly ttl: number;
  readonly ttlMs: number;
  readonly refreshIntervalMs: number;
  readonly safetyMarginMs: number;
  readonly requestTimeoutMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly clock: Clock;
  readonly random: Random;
}

const WHERE = 'Candidate';

/**
 * Every key of `CandidateOptions` and of `BackoffOptions`, in the order the
 * types document them: an unknown key is refused (`checkKnownKeys`). A record
 * rather than a list so that the compiler notices a key added to the type but
 * not here, or one left here after it was removed.
 */
const OPTION_KEYS: Record<keyof CandidateOptions, true> = {
  path: true,
  id: true,
  value: true,
  ttl: true,
  refreshInterval: true,
  safetyMargin: true,
  requestTimeout: true,
  backoff: true,
  clock: true,
  random: true,
};
const BACKOFF_KEYS: Record<keyof BackoffOptions, true> = { initial: true, max: true };

/** The keys `new Candidate()` accepts, for wrappers that take candidate options plus their own (`vip()`'s service). */
export const CANDIDATE_OPTION_KEYS: readonly (keyof CandidateOptions)[] = Object.freeze(Object.keys(OPTION_KEYS) as (keyof CandidateOptions)[]);

function fail(option: string, expected: string, got: unknown): never {
  throw new VipOptionError(WHERE, option, expected, got);
}

/**
 * The longest duration a timer can wait: Node's setTimeout (and every browser's)
 * keeps delays in a signed 32-bit millisecond count and fires a longer one
 * after 1 ms instead, with only a TimeoutOverflowWarning. A ttl past it would
 * make every deadline and request timeout fire at once, so it is refused.
 */
export const MAX_SECONDS = 2_147_483;

function seconds(option: string, got: unknown, fallback: number): number {
  if (got === undefined) return fallback;
  if (typeof got !== 'number' || !Number.isFinite(got) || got <= 0 || got > MAX_SECONDS) {
    fail(option, `a finite number of seconds greater than 0 and at most ${MAX_SECONDS} (the longest a timer can wait)`, got);
  }
  return got;
}

function defaultId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export function resolveOptions(store: LockStore, options: CandidateOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') {
    throw new TypeError(`${WHERE}: options must be an object like { path: '/my-job' } (got ${describe(options)})`);
  }
  checkKnownKeys(WHERE, options, CANDIDATE_OPTION_KEYS);
  const { path, id, value } = options;
  if (typeof path !== 'string' || path.length === 0) fail('path', 'a non-empty string such as "/my-job"', path);
  const keyRule = typeof store.validateKey === 'function' ? store.validateKey(path) : undefined;
  if (keyRule !== undefined) fail('path', `${keyRule} for this store`, path);
  if (id !== undefined && (typeof id !== 'string' || id.length === 0)) fail('id', 'a non-empty string', id);
  if (value !== undefined && typeof value !== 'string') {
    fail('value', 'a string (convert other values yourself, e.g. String(x) or JSON.stringify(x))', value);
  }

  const ttl = seconds('ttl', options.ttl, 10);
  const limits = store.limits ?? {};
  if (limits.minTtl !== undefined && ttl < limits.minTtl) {
    fail('ttl', `at least ${limits.minTtl} seconds for this store (its minimum TTL)`, ttl);
  }
  if (limits.maxTtl !== undefined && ttl > limits.maxTtl) {
    fail('ttl', `at most ${limits.maxTtl} seconds for this store (its maximum TTL)`, ttl);
  }
  const safetyMargin = options.safetyMargin === undefined ? ttl / 5 : options.safetyMargin;
  if (typeof safetyMargin !== 'number' || !Number.isFinite(safetyMargin) || safetyMargin < 0 || safetyMargin >= ttl) {
    fail('safetyMargin', `a number of seconds from 0 up to (not including) ttl = ${ttl}`, safetyMargin);
  }
  const refreshInterval = seconds('refreshInterval', options.refreshInterval, ttl / 3);
  if (refreshInterval >= ttl - safetyMargin) {
    fail(
      'refreshInterval',
      `less than ttl - safetyMargin = ${ttl - safetyMargin} seconds, or the leader would reach its deadline before refreshing`,
      refreshInterval,
    );
  }
  const requestTimeout = seconds('requestTimeout', options.requestTimeout, ttl);

  const backoff = options.backoff ?? {};
  if (backoff === null || typeof backoff !== 'object') fail('backoff', 'an object like { initial: 0.1, max: 5 }', backoff);
  checkKnownKeys(WHERE, backoff, Object.keys(BACKOFF_KEYS), 'backoff.');
  const backoffInitial = seconds('backoff.initial', backoff.initial, 0.1);
  const backoffMax = seconds('backoff.max', backoff.max, Math.max(backoffInitial, Math.min(5, ttl / 3)));
  if (backoffMax < backoffInitial) fail('backoff.max', `at least backoff.initial = ${backoffInitial}`, backoffMax);

  const clock = options.clock ?? systemClock;
  if (typeof clock?.now !== 'function' || typeof clock.setTimeout !== 'function' || typeof clock.clearTimeout !== 'function') {
    fail('clock', 'an object with now(), setTimeout() and clearTimeout()', clock);
  }
  const random = options.random ?? Math.random;
  if (typeof random !== 'function') fail('random', 'a function returning numbers in [0, 1)', random);

  const resolved = {
    path,
    id: id ?? defaultId(),
    value: value ?? '',
    ttl,
    ttlMs: ttl * 1000,
    refreshIntervalMs: refreshInterval * 1000,
    safetyMarginMs: safetyMargin * 1000,
    requestTimeoutMs: requestTimeout * 1000,
    backoffInitialMs: backoffInitial * 1000,
    backoffMaxMs: backoffMax * 1000,
    clock,
    random,
  };
  if (limits.maxValueBytes !== undefined) {
    const bytes = Buffer.byteLength(resolved.id) + Buffer.byteLength(resolved.value);
    if (bytes > limits.maxValueBytes) {
      fail('value', `at most ${limits.maxValueBytes} bytes (UTF-8, with the id) for this store`, `${bytes} bytes`);
    }
  }
  return resolved;
}

/** Delay before retry number `attempt` (0-based): exponential, with "equal jitter". */
export function backoffDelay(options: ResolvedOptions, attempt: number): number {
  const ceiling = Math.min(options.backoffMaxMs, options.backoffInitialMs * 2 ** Math.min(attempt, 30));
  return ceiling / 2 + (options.random() * ceiling) / 2;
}
