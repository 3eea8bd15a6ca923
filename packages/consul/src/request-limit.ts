/**
 * At most `max` requests of a store in flight at once; the rest wait their
 * turn, first come first served, session calls before the others.
 *
 * Why: a Consul agent serves at most `limits.http_max_conns_per_client`
 * connections (200 by default) from one client address and closes the rest,
 * so a store that sent every candidate's request at once would, past a few
 * hundred elections, get its renewals and transactions refused, and every
 * leader of the process would lose its term together. Each request in flight
 * needs one connection (the client keeps them alive and reuses them), so the
 * store never holds more than `max` of them, plus one per blocking query of
 * its watches (watch.ts: one per group of keys, not one per key).
 *
 * Session calls (create, renew, destroy) go first: a renew that waits behind
 * a thousand transactions can let every term of the process run out.
 * A caller that gives up (its signal aborts) while waiting leaves the queue
 * at once, its request never sent. A request's own timeout starts when it is
 * sent, not while it waits: waiting sends nothing, so it cannot leave an
 * outcome unknown.
 */
export type Lane = 'session' | 'other';

interface Waiter {
  readonly start: () => void;
}

export class RequestLimit {
  readonly max: number;
  #active = 0;
  readonly #waiting: Record<Lane, Waiter[]> = { session: [], other: [] };

  constructor(max: number) {
    this.max = max;
  }

  /** Requests sent and not yet answered. */
  get active(): number {
    return this.#active;
  }

  /** Requests waiting for their turn. */
  get queued(): number {
    return this.#waiting.session.length + this.#waiting.other.length;
  }

  /** Run `send` once fewer than `max` requests are in flight; rejects with the signal's reason if it aborts first. */
  async run<T>(lane: Lane, signal: AbortSignal | undefined, send: () => Promise<T>): Promise<T> {
    await this.#turn(lane, signal);
    try {
      return await send();
    } finally {
      this.#active--;
      this.#next();
    }
  }

  #turn(lane: Lane, signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    if (this.#active < this.max && this.queued === 0) {
      this.#active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const queue = this.#waiting[lane];
      const waiter: Waiter = {
        start: () => {
          signal?.removeEventListener('abort', abort);
          this.#active++;
          resolve();
        },
      };
      const abort = (): void => {
        const at = queue.indexOf(waiter);
        if (at >= 0) queue.splice(at, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', abort, { once: true });
      queue.push(waiter);
    });
  }

  #next(): void {
    while (this.#active < this.max) {
      const waiter = this.#waiting.session.shift() ?? this.#waiting.other.shift();
      if (!waiter) return;
      waiter.start();
    }
  }
}
