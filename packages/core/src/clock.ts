/**
 * Time as the election sees it. Every expiry decision in vip is made on this
 * process's own monotonic clock, never on a timestamp read from another node
 * (client-go learned this the hard way): safety then tolerates any offset
 * between machines' clocks, and a clock *rate* error up to
 * `safetyMargin / ttl`.
 *
 * The clock is injectable so the whole state machine runs deterministically
 * under a fake clock in tests (`FakeClock` in `@vip/core/testing`).
 */
export interface Clock {
  /** Monotonic milliseconds; only differences mean anything. */
  now(): number;
  /** Run `callback` once, `ms` milliseconds from now. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** An opaque timer handle; `unref()` lets the process exit while it is pending. */
export interface TimerHandle {
  unref?(): void;
}

/** The real clock: `performance.now()` is monotonic, unlike `Date.now()`. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, Math.max(0, ms)),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** A source of uniform random numbers in [0, 1); injectable for deterministic jitter. */
export type Random = () => number;
