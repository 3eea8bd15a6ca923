import type { Clock, TimerHandle } from '../clock.js';

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

/**
 * A clock that moves only when told. Timers fire in time order, and between
 * timers every pending promise callback runs, so a candidate, a MemoryStore
 * and a FaultyStore on the same FakeClock behave as they would in real time,
 * deterministically.
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: Timer[] = [];

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const timer: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, callback };
    this.#timers.push(timer);
    this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
    return timer as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers = this.#timers.filter((timer) => timer !== handle);
  }

  /** Timers not yet fired. */
  pending(): number {
    return this.#timers.length;
  }

  /** Move time forward by `ms`, firing every timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#timers[0];
      if (!next || next.at > target) break;
      this.#timers.shift();
      this.#now = Math.max(this.#now, next.at);
      next.callback();
      await settle();
    }
    this.#now = target;
    await settle();
  }

  /**
   * Jump the clock without running any timer, as a process paused by the OS
   * (SIGSTOP, a long GC) finds on waking: time has passed, timers are late.
   */
  jump(ms: number): void {
    this.#now += ms;
  }

  /** Advance in steps of `stepMs` until `condition()` holds; throws after `limitMs`. */
  async until(condition: () => boolean, limitMs = 600_000, stepMs = 10): Promise<number> {
    const start = this.#now;
    while (!condition()) {
      if (this.#now - start >= limitMs) throw new Error(`FakeClock.until: condition still false after ${limitMs} ms`);
      await this.advance(stepMs);
    }
    return this.#now - start;
  }
}

/** Let every queued promise callback and I/O-free continuation run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
