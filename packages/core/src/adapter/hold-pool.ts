/**
 * The holds of one store: one server-side hold (etcd lease, Consul session)
 * per distinct TTL, shared by every key the store holds with that TTL, and
 * renewed only when a caller asks.
 *
 * No background loop keeps a hold that carries keys alive; the one timer,
 * `keepReady`'s, renews only a hold that the store says carries none (for
 * followers, so that they acquire in one round trip). Contract promise 3 (a
 * confirmed hold lasts at least `ttl` from the call) rests on one server rule:
 * a hold is not dropped before its TTL has passed since it was created or last
 * renewed. So the only "alive" is the answer to a create or renew *sent after
 * the confirming call began*, and the only "lost" is the server saying the
 * hold is gone:
 *
 * - `confirm(hold)` resolves true only from a renew sent after it was called.
 *   Concurrent confirms share one renew (`coalesce`): every caller joins the
 *   next renew not yet sent, so refreshing 10,000 keys that come due together
 *   costs one round trip.
 * - `confirmed(ttl)` gives a hold the server keeps at least `ttl` from the
 *   call: one created by a request sent after this call began (its own or a
 *   concurrent caller's), or an existing one confirmed by such a renew. A
 *   create that was sent before the call began (still in flight when it
 *   began) does not count: the call waits for it and renews it.
 *
 * A renew answering "gone" (`false`) marks the hold `lost` for good: every key
 * on it is gone, and the next `confirmed(ttl)` creates a new one. A renew that
 * rejects (unreachable, timeout) says nothing: the hold stays, the caller's
 * confirmation rejects. A hold dropped as soon as it was created is replaced
 * at most `attempts` times per call.
 *
 * A hold lives exactly as long as some caller keeps confirming it, so a
 * process that stops refreshing stops keeping its keys.
 */
import { systemClock, type Clock, type TimerHandle } from '../clock.js';
import { coalesce } from '../coalesce.js';

/** One server-side hold, shared by every key held with its TTL. */
export interface Hold {
  /** The TTL asked for, in seconds: the key of this hold in its pool. */
  readonly ttl: number;
  /** The server's id of the hold (etcd lease ID, Consul session ID). */
  readonly id: string;
  /** The TTL the server granted: `ttl` unless `create` said otherwise (etcd raises a lease under its minimum). */
  readonly granted: number;
  /** Set once the server said the hold is gone, or the pool was told so (`lost`, `destroy`). Never unset. */
  readonly lost: boolean;
}

/** What a backend does for a `HoldPool`. */
export interface HoldBackend {
  /** Create a hold of `ttl` seconds; resolve with its id and the TTL the server granted (default `ttl`). */
  create(ttl: number): Promise<{ id: string; ttl?: number }>;
  /** One renew of `hold`, sent when called: true if the server kept it, false if it is gone; reject if unknown. */
  renew(hold: Hold): Promise<boolean>;
  /** Free `hold` on the server (and every key on it). Optional; used by `destroy()` and for holds created after `close()`. */
  destroy?(hold: Hold): Promise<void>;
}

export interface HoldPoolOptions {
  /** Who is speaking in error messages, e.g. "EtcdStore". Default "HoldPool". */
  name?: string;
  /** What a hold is called in error messages, e.g. "lease". Default "hold". */
  noun?: string;
  /** How many holds one `confirmed()` may go through when each is found gone as soon as it was created. Default 3. */
  attempts?: number;
  /** The clock of `keepReady`'s renewals (a `FakeClock` in tests). Default the system clock. */
  clock?: Clock;
}

/** The holds `keepReady` keeps for one TTL: how many callers want it, and the timer of its next renewal. */
interface Readiness {
  wanted: number;
  timer: TimerHandle | undefined;
}

/** setTimeout's longest delay (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

class PooledHold implements Hold {
  lost = false;
  constructor(
    readonly ttl: number,
    readonly id: string,
    readonly granted: number,
  ) {}
}

/** A create, settled or in flight. One object, so "the same create" has one identity. */
interface Slot {
  /** Which create this is (the pool's count of creates when it was sent): later than a call's start means sent after it. */
  readonly sent: number;
  readonly created: Promise<PooledHold>;
  hold: PooledHold | undefined;
}

export class HoldPool {
  readonly #backend: HoldBackend;
  readonly #name: string;
  readonly #noun: string;
  readonly #attempts: number;
  /** The hold in use for each TTL, or its create in flight. */
  readonly #slots = new Map<number, Slot>();
  /** Every hold this pool created and has not seen lost or destroyed, by id. */
  readonly #live = new Map<string, PooledHold>();
  /** Per hold, the next renew: not yet sent, so whoever joins it began before it goes out. */
  readonly #renews = new WeakMap<Hold, () => Promise<boolean>>();
  /** Creates sent so far. */
  #sent = 0;
  #closed = false;
  readonly #clock: Clock;
  /** Per TTL, the hold `keepReady` keeps while anybody wants it. */
  readonly #ready = new Map<number, Readiness>();
  /** Holds with a `writeOn` on its way (count), and holds one of whose writes went unanswered: never kept ready. */
  readonly #writing = new Map<Hold, number>();
  readonly #unsure = new WeakSet<Hold>();

  constructor(backend: HoldBackend, options: HoldPoolOptions = {}) {
    this.#backend = backend;
    this.#clock = options.clock ?? systemClock;
    this.#name = options.name ?? 'HoldPool';
    this.#noun = options.noun ?? 'hold';
    this.#attempts = Math.max(1, options.attempts ?? 3);
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The created, not-lost hold for `ttl`, if there is one (no I/O). */
  current(ttl: number): Hold | undefined {
    const hold = this.#slots.get(ttl)?.hold;
    return hold && !hold.lost ? hold : undefined;
  }

  /** Every hold this pool created that the server had not (as far as we know) dropped. */
  live(): Hold[] {
    return [...this.#live.values()];
  }

  /** The live hold of this pool with this id, if any: whose keys this store owns. */
  own(id: string | undefined): Hold | undefined {
    return id === undefined ? undefined : this.#live.get(id);
  }

  /**
   * A live hold of `ttl`, created or renewed by a request sent after this
   * call began: the server keeps it at least `ttl` from the call. Rejects
   * when the server cannot be asked (the create or renew rejected) and once
   * the pool is closed.
   */
  async confirmed(ttl: number): Promise<Hold> {
    const began = this.#sent;
    for (let attempt = 0; attempt < this.#attempts; attempt++) {
      if (this.#closed) throw this.#closedError();
      const slot = this.#slots.get(ttl) ?? this.#create(ttl);
      if (slot.sent > began) {
        // Created by a request sent after this call began (ours or a concurrent
        // caller's): as good as our own, its failure included.
        const hold = await slot.created;
        if (!hold.lost) return hold;
        continue; // dropped as soon as it was created
      }
      // Created by a request that may have been sent before this call began:
      // confirm it with a renew of our own.
      const hold = await slot.created.catch(() => undefined);
      if (hold && !hold.lost && (await this.confirm(hold))) return hold;
      if (hold) this.lost(hold);
      if (this.#slots.get(ttl) === slot) this.#slots.delete(ttl);
    }
    throw new Error(`${this.#name}: could not get a live ${this.#noun} with TTL ${ttl}s: the server dropped each one as soon as it was created`);
  }

  /**
   * One renew round trip sent after this call: resolves true if the server
   * kept the hold, false if it is gone (the hold is then marked lost), and
   * rejects if we cannot tell (unreachable, timeout); the hold then stays.
   */
  confirm(hold: Hold): Promise<boolean> {
    if (hold.lost) return Promise.resolve(false);
    let renew = this.#renews.get(hold);
    if (!renew) {
      // Callers arriving before the renew is sent share it (see `coalesce`).
      renew = coalesce(() => this.#backend.renew(hold));
      this.#renews.set(hold, renew);
    }
    return renew().then((alive) => {
      if (!alive) this.lost(hold);
      // Marked lost while the renew was on its way (a write on it was refused): that answer confirms nothing.
      return alive && !hold.lost;
    });
  }

  /** The server no longer has `hold` (a renew said so, or a write on it was refused): the next `confirmed()` creates a new one. */
  lost(hold: Hold): void {
    const mine = this.#live.get(hold.id);
    if (hold instanceof PooledHold) hold.lost = true;
    if (mine === hold) this.#live.delete(hold.id);
    const slot = this.#slots.get(hold.ttl);
    if (slot && slot.hold === hold) this.#slots.delete(hold.ttl);
  }

  /** Mark `hold` lost and free it on the server (the backend's `destroy`, if any). Rejects as the backend does. */
  async destroy(hold: Hold): Promise<void> {
    this.lost(hold);
    await this.#backend.destroy?.(hold);
  }

  /**
   * Keep a hold of `ttl` created, and renewed every ttl/2, until `signal`
   * aborts (`LockStore.prepare`): a candidate that finds its key free then
   * acquires with a hold in hand, in one round trip. One hold and one timer
   * per TTL, however many callers want it. A hold that `locks` says holds
   * keys, or that a `writeOn` is on its way to or went unanswered on, is not
   * renewed by this: it lives only as long as the refreshes of its keys
   * renew it (a process that stops refreshing stops keeping its keys).
   * Best effort: a failed create or renew is tried again at the next turn,
   * and nothing waits for it. Never throws.
   */
  keepReady(ttl: number, signal: AbortSignal, locks: (hold: Hold) => boolean): void {
    if (this.#closed || signal.aborted || !(ttl > 0) || !Number.isFinite(ttl)) return;
    const readiness = this.#ready.get(ttl) ?? this.#startReady(ttl, locks);
    readiness.wanted++;
    signal.addEventListener(
      'abort',
      () => {
        if (--readiness.wanted > 0 || this.#ready.get(ttl) !== readiness) return;
        this.#ready.delete(ttl);
        if (readiness.timer !== undefined) this.#clock.clearTimeout(readiness.timer);
      },
      { once: true },
    );
  }

  /**
   * Send `write`, a write that may put keys on `hold` (an acquisition), and
   * remember it: while it is on its way, and for good once it rejected
   * (applied or not, nobody knows), `keepReady` never renews `hold`, so that
   * a key the store does not know it holds still expires.
   */
  async writeOn<T>(hold: Hold, write: () => Promise<T>): Promise<T> {
    this.#writing.set(hold, (this.#writing.get(hold) ?? 0) + 1);
    try {
      return await write();
    } catch (error) {
      this.#unsure.add(hold);
      throw error;
    } finally {
      const left = this.#writing.get(hold)! - 1;
      if (left > 0) this.#writing.set(hold, left);
      else this.#writing.delete(hold);
    }
  }

  #startReady(ttl: number, locks: (hold: Hold) => boolean): Readiness {
    const readiness: Readiness = { wanted: 0, timer: undefined };
    this.#ready.set(ttl, readiness);
    const turn = (): void => {
      if (this.#closed || this.#ready.get(ttl) !== readiness) return;
      const hold = this.current(ttl);
      const mayCarryKeys = hold !== undefined && (this.#unsure.has(hold) || this.#writing.has(hold) || locks(hold));
      if (!mayCarryKeys) this.confirmed(ttl).catch(() => {}); // best effort: an acquisition gets its own anyway
      // Capped at Node's longest timer (a longer one fires at once, every 1 ms).
      readiness.timer = this.#clock.setTimeout(turn, Math.min((ttl * 1000) / 2, MAX_TIMER_MS));
      readiness.timer.unref?.();
    };
    turn();
    return readiness;
  }

  /**
   * Later `confirmed()` calls reject, and a hold whose create is still in
   * flight is destroyed when it arrives (it holds nothing). Holds already
   * created are left alone: destroy the ones that hold no key first.
   * `keepReady` stops.
   */
  close(): void {
    this.#closed = true;
    this.#slots.clear();
    this.stopKeepingReady();
  }

  /** Stop every `keepReady` now (a store that closes, before it frees its idle holds). */
  stopKeepingReady(): void {
    for (const readiness of this.#ready.values()) if (readiness.timer !== undefined) this.#clock.clearTimeout(readiness.timer);
    this.#ready.clear();
  }

  #create(ttl: number): Slot {
    this.#sent += 1;
    const created = this.#backend.create(ttl).then(({ id, ttl: granted }) => {
      const hold = new PooledHold(ttl, id, granted ?? ttl);
      if (this.#closed) {
        // Created while the store closed: it holds nothing, so it goes at once.
        hold.lost = true;
        void this.#backend.destroy?.(hold).catch(() => {});
        throw this.#closedError();
      }
      slot.hold = hold;
      this.#live.set(id, hold);
      return hold;
    });
    const slot: Slot = { sent: this.#sent, created, hold: undefined };
    this.#slots.set(ttl, slot);
    created.catch(() => {
      if (this.#slots.get(ttl) === slot) this.#slots.delete(ttl);
    });
    return slot;
  }

  #closedError(): Error {
    return new Error(`${this.#name}: the store was closed`);
  }
}
