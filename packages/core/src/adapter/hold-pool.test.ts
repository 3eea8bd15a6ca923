import { describe, expect, it } from 'vitest';
import { FakeClock } from '../testing/index.js';
import { HoldPool, type Hold, type HoldBackend } from './hold-pool.js';

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

/** A few turns of the event loop: whatever the pool sends next (coalesced renews go out on the next turn) has been sent. */
async function tick(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * A backend whose every create and renew waits until the test answers it.
 * `log` records each request as it is sent, in order.
 */
class FakeBackend implements HoldBackend {
  readonly log: string[] = [];
  readonly creates: Deferred<{ id: string; ttl?: number }>[] = [];
  readonly renews: Deferred<boolean>[] = [];
  readonly destroyed: string[] = [];
  #ids = 0;

  create(ttl: number): Promise<{ id: string; ttl?: number }> {
    this.log.push(`create ${ttl}`);
    const answer = deferred<{ id: string; ttl?: number }>();
    this.creates.push(answer);
    return answer.promise;
  }

  renew(hold: Hold): Promise<boolean> {
    this.log.push(`renew ${hold.id}`);
    const answer = deferred<boolean>();
    this.renews.push(answer);
    return answer.promise;
  }

  async destroy(hold: Hold): Promise<void> {
    this.log.push(`destroy ${hold.id}`);
    this.destroyed.push(hold.id);
  }

  /** Answer the n-th create with a new id. */
  grant(n: number, ttl?: number): string {
    const id = `h${++this.#ids}`;
    this.creates[n]!.resolve(ttl === undefined ? { id } : { id, ttl });
    return id;
  }
}

/** A pool with one created hold of `ttl` and no request in flight. */
async function withHold(ttl = 5): Promise<{ pool: HoldPool; backend: FakeBackend; hold: Hold }> {
  const backend = new FakeBackend();
  const pool = new HoldPool(backend, { name: 'TestStore', noun: 'lease' });
  const first = pool.confirmed(ttl);
  backend.grant(0);
  const hold = await first;
  backend.log.length = 0;
  return { pool, backend, hold };
}

describe('HoldPool', () => {
  it('sends one create per TTL to concurrent confirmed() calls, and shares the hold among them', async () => {
    const backend = new FakeBackend();
    const pool = new HoldPool(backend);
    const fives = [pool.confirmed(5), pool.confirmed(5), pool.confirmed(5)];
    const ten = pool.confirmed(10);
    expect(backend.log).toEqual(['create 5', 'create 10']);
    backend.grant(0, 6);
    backend.grant(1);
    const a = await fives[0];
    expect(a).toMatchObject({ ttl: 5, id: 'h1', granted: 6, lost: false });
    expect(await ten).toMatchObject({ ttl: 10, id: 'h2', granted: 10 });
    // The first call of each TTL got a hold created after it began: nothing more to send.
    // The other two began after that create was sent: it does not count for them, and
    // they share one renew, sent after the create answered.
    await tick();
    expect(backend.log).toEqual(['create 5', 'create 10', 'renew h1']);
    backend.renews[0]!.resolve(true);
    const [, b, c] = await Promise.all(fives);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(backend.log).toEqual(['create 5', 'create 10', 'renew h1']);
    expect(pool.current(5)).toBe(a);
    expect(pool.live()).toEqual([a, await ten]);
    expect(pool.own('h2')).toBe(await ten);
  });

  it('renews a hold created by a request sent before the call began, after the create answers', async () => {
    const backend = new FakeBackend();
    const pool = new HoldPool(backend);
    const early = pool.confirmed(5); // sends the create
    const late = pool.confirmed(5); // began after the create was sent
    expect(backend.log).toEqual(['create 5']);
    const id = backend.grant(0);
    expect(await early).toMatchObject({ id });
    await tick();
    // The late caller's confirmation is a renew of its own, sent after the create answered.
    expect(backend.log).toEqual(['create 5', `renew ${id}`]);
    let settled = false;
    void late.then(() => (settled = true));
    await tick();
    expect(settled).toBe(false); // waits for its renew
    backend.renews[0]!.resolve(true);
    expect(await late).toBe(await early);
    expect(backend.log).toEqual(['create 5', `renew ${id}`]);
  });

  it('an existing hold is confirmed by a renew sent after the call, shared by concurrent confirms', async () => {
    const { pool, backend, hold } = await withHold();
    const confirms = [pool.confirmed(5), pool.confirm(hold), pool.confirmed(5), pool.confirm(hold)];
    await tick();
    expect(backend.log).toEqual([`renew ${hold.id}`]);
    backend.renews[0]!.resolve(true);
    expect(await Promise.all(confirms)).toEqual([hold, true, hold, true]);
    // A confirm that arrives after that renew was sent needs a new one.
    const later = pool.confirm(hold);
    await tick();
    expect(backend.log).toEqual([`renew ${hold.id}`, `renew ${hold.id}`]);
    backend.renews[1]!.resolve(true);
    expect(await later).toBe(true);
  });

  it('a renew answering "gone" marks the hold lost, and the next confirmed() creates a new hold', async () => {
    const { pool, backend, hold } = await withHold();
    const confirm = pool.confirm(hold);
    await tick();
    backend.renews[0]!.resolve(false);
    expect(await confirm).toBe(false);
    expect(hold.lost).toBe(true);
    expect(pool.current(5)).toBeUndefined();
    expect(pool.live()).toEqual([]);
    expect(pool.own(hold.id)).toBeUndefined();
    expect(await pool.confirm(hold)).toBe(false); // lost for good: nothing sent
    const next = pool.confirmed(5);
    expect(backend.log).toEqual([`renew ${hold.id}`, 'create 5']);
    const id = backend.grant(1);
    const fresh = await next;
    expect(fresh).not.toBe(hold);
    expect(fresh).toMatchObject({ id, lost: false });
    expect(pool.current(5)).toBe(fresh);
  });

  it('confirmed() whose renew finds the hold gone creates a new one in the same call', async () => {
    const { pool, backend, hold } = await withHold();
    const confirmed = pool.confirmed(5);
    await tick();
    backend.renews[0]!.resolve(false);
    await tick();
    expect(backend.log).toEqual([`renew ${hold.id}`, 'create 5']);
    const id = backend.grant(1);
    expect(await confirmed).toMatchObject({ id });
    expect(hold.lost).toBe(true);
  });

  it('a renew that rejects rejects confirmed() and leaves the hold in place', async () => {
    const { pool, backend, hold } = await withHold();
    const confirmed = pool.confirmed(5);
    const confirm = pool.confirm(hold);
    await tick();
    backend.renews[0]!.reject(new Error('unreachable'));
    await expect(confirmed).rejects.toThrow('unreachable');
    await expect(confirm).rejects.toThrow('unreachable');
    expect(hold.lost).toBe(false);
    expect(pool.current(5)).toBe(hold);
    expect(pool.live()).toEqual([hold]);
    expect(backend.log).toEqual([`renew ${hold.id}`]); // no create: the hold may well be alive
    // The next call tries again with a renew of its own.
    const again = pool.confirmed(5);
    await tick();
    backend.renews[1]!.resolve(true);
    expect(await again).toBe(hold);
  });

  it('a failed create rejects its callers and the next call sends a new one', async () => {
    const backend = new FakeBackend();
    const pool = new HoldPool(backend);
    const first = [pool.confirmed(5), pool.confirmed(5)];
    backend.creates[0]!.reject(new Error('refused'));
    await expect(first[0]).rejects.toThrow('refused');
    // The second began after the create was sent: it does not count, so it sends its own.
    await tick();
    expect(backend.log).toEqual(['create 5', 'create 5']);
    backend.grant(1);
    expect(await first[1]).toMatchObject({ id: 'h1' });
  });

  it('gives up after `attempts` holds that are each lost as soon as they are created', async () => {
    const backend = new FakeBackend();
    const pool = new HoldPool(backend, { name: 'TestStore', noun: 'session', attempts: 2 });
    const confirmed = pool.confirmed(5);
    const outcome = confirmed.then(
      () => 'resolved',
      (error: Error) => error.message,
    );
    for (let n = 0; n < 2; n++) {
      await tick(); // the call has sent its create
      const id = backend.grant(n);
      // One microtask on: the pool has recorded the hold, the caller has not resumed yet.
      await Promise.resolve();
      const hold = pool.current(5);
      expect(hold?.id).toBe(id);
      pool.lost(hold!); // e.g. a lock refused for an invalid session
    }
    expect(await outcome).toBe('TestStore: could not get a live session with TTL 5s: the server dropped each one as soon as it was created');
    expect(backend.log).toEqual(['create 5', 'create 5']);
  });

  it('a closed pool rejects confirmed() without sending anything', async () => {
    const { pool, backend } = await withHold();
    pool.close();
    expect(pool.closed).toBe(true);
    await expect(pool.confirmed(5)).rejects.toThrow('TestStore: the store was closed');
    await expect(pool.confirmed(7)).rejects.toThrow('TestStore: the store was closed');
    await tick();
    expect(backend.log).toEqual([]);
  });

  it('destroys a hold whose create answers after close(), and rejects its callers', async () => {
    const backend = new FakeBackend();
    const pool = new HoldPool(backend, { name: 'TestStore' });
    const confirmed = pool.confirmed(5);
    pool.close();
    const id = backend.grant(0);
    await expect(confirmed).rejects.toThrow('TestStore: the store was closed');
    expect(backend.destroyed).toEqual([id]);
    expect(pool.live()).toEqual([]);
    expect(pool.own(id)).toBeUndefined();
  });

  it('destroy() marks the hold lost and frees it on the server', async () => {
    const { pool, backend, hold } = await withHold();
    await pool.destroy(hold);
    expect(hold.lost).toBe(true);
    expect(backend.log).toEqual([`destroy ${hold.id}`]);
    expect(pool.live()).toEqual([]);
    const next = pool.confirmed(5);
    expect(backend.log).toEqual([`destroy ${hold.id}`, 'create 5']);
    backend.grant(1);
    await next;
  });
});

describe('HoldPool: found in review', () => {
  it('a renew answered "alive" after the hold was marked lost is not a confirmation', async () => {
    const backend = new FakeBackend();
    const pool = new HoldPool(backend);
    const creating = pool.confirmed(5);
    await tick();
    backend.creates[0]!.resolve({ id: 'h1' });
    const hold = await creating;
    const confirming = pool.confirm(hold);
    await tick();
    pool.lost(hold); // meanwhile a write on it was refused: the session is invalid
    backend.renews[0]!.resolve(true);
    expect(await confirming).toBe(false);
  });
});

describe('HoldPool.keepReady', () => {
  async function ready(): Promise<{ pool: HoldPool; backend: FakeBackend; clock: FakeClock }> {
    const backend = new FakeBackend();
    const clock = new FakeClock();
    return { pool: new HoldPool(backend, { clock }), backend, clock };
  }

  it('creates a hold at once and renews it every ttl/2 for as long as any caller wants it; one hold and one timer per TTL', async () => {
    const { pool, backend, clock } = await ready();
    const a = new AbortController();
    const b = new AbortController();
    pool.keepReady(10, a.signal, () => false);
    pool.keepReady(10, b.signal, () => false);
    expect(backend.log).toEqual(['create 10']);
    backend.grant(0);
    await tick();
    await clock.advance(4999);
    expect(backend.log).toEqual(['create 10']);
    await clock.advance(1);
    await tick();
    expect(backend.log).toEqual(['create 10', 'renew h1']);
    backend.renews[0]!.resolve(true);
    a.abort(); // b still wants it
    await clock.advance(5000);
    await tick();
    expect(backend.log).toEqual(['create 10', 'renew h1', 'renew h1']);
    backend.renews[1]!.resolve(true);
    b.abort();
    await clock.advance(20_000);
    await tick();
    expect(backend.log).toEqual(['create 10', 'renew h1', 'renew h1']);
    expect(clock.pending()).toBe(0);
    expect(pool.current(10)?.id).toBe('h1'); // kept for an acquisition, left to expire unless one comes
  });

  it('never renews a hold that locks keys: only its keys’ refreshes keep it; renewing it again once it locks none', async () => {
    const { pool, backend, clock } = await ready();
    let locking = false;
    pool.keepReady(10, new AbortController().signal, () => locking);
    backend.grant(0);
    await tick();
    locking = true;
    await clock.advance(15_000);
    await tick();
    expect(backend.log).toEqual(['create 10']);
    locking = false;
    await clock.advance(5000);
    await tick();
    expect(backend.log).toEqual(['create 10', 'renew h1']);
  });

  it('a create or renew that fails is tried again at the next turn; a hold found gone is replaced', async () => {
    const { pool, backend, clock } = await ready();
    pool.keepReady(4, new AbortController().signal, () => false);
    backend.creates[0]!.reject(new Error('unreachable'));
    await tick();
    await clock.advance(2000);
    await tick();
    expect(backend.log).toEqual(['create 4', 'create 4']);
    backend.grant(1);
    await tick();
    await clock.advance(2000);
    await tick();
    backend.renews[0]!.resolve(false); // gone (expired meanwhile)
    await tick();
    expect(backend.log).toEqual(['create 4', 'create 4', 'renew h1', 'create 4']);
  });

  it('does nothing for an aborted signal, a TTL that is not a positive number, or a closed pool; close() stops it', async () => {
    const { pool, backend, clock } = await ready();
    pool.keepReady(10, AbortSignal.abort(), () => false);
    pool.keepReady(Number.NaN, new AbortController().signal, () => false);
    pool.keepReady(0, new AbortController().signal, () => false);
    expect(backend.log).toEqual([]);
    pool.keepReady(10, new AbortController().signal, () => false);
    backend.grant(0);
    await tick();
    pool.close();
    await clock.advance(60_000);
    await tick();
    pool.keepReady(10, new AbortController().signal, () => false);
    expect(backend.log).toEqual(['create 10']);
    expect(clock.pending()).toBe(0);
  });

  it('a TTL longer than the longest timer waits the longest timer, not at once (Node fires an overlong timer after 1 ms)', async () => {
    const { pool, backend, clock } = await ready();
    pool.keepReady(9e9, new AbortController().signal, () => false);
    backend.grant(0);
    await tick();
    await clock.advance(60_000);
    await tick();
    expect(backend.log).toEqual(['create 9000000000']);
    await clock.advance(2 ** 31 - 1);
    await tick();
    expect(backend.log).toEqual(['create 9000000000', 'renew h1']);
  });

  it('never renews a hold with a writeOn on its way, nor one whose writeOn went unanswered (it may carry a key nobody knows of)', async () => {
    const { pool, backend, clock } = await ready();
    pool.keepReady(10, new AbortController().signal, () => false);
    backend.grant(0);
    await tick();
    const hold = pool.current(10)!;
    let answer!: (value: string) => void;
    let fail!: (error: Error) => void;
    const inFlight = pool.writeOn(hold, () => new Promise<string>((resolve) => (answer = resolve)));
    await clock.advance(5000);
    await tick();
    expect(backend.log).toEqual(['create 10']);
    answer('answered');
    expect(await inFlight).toBe('answered');
    await clock.advance(5000);
    await tick();
    expect(backend.log).toEqual(['create 10', 'renew h1']);
    backend.renews[0]!.resolve(true);
    const unanswered = pool.writeOn(hold, () => new Promise<string>((_resolve, reject) => (fail = reject)));
    fail(new Error('timed out'));
    await expect(unanswered).rejects.toThrow('timed out');
    await clock.advance(20_000);
    await tick();
    expect(backend.log).toEqual(['create 10', 'renew h1']);
  });
});
