import { MemoryBackend, MemoryStore } from '@vip/core';
import { FakeClock, FaultyStore, settle } from '@vip/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { vip, type LeaderContext, type Service } from './index.js';

const TTL = 3;
const services: Service[] = [];
afterEach(async () => {
  await Promise.all(services.splice(0).map((service) => service.stop()));
});

function setup() {
  const clock = new FakeClock();
  const backend = new MemoryBackend({ clock });
  const store = new FaultyStore(new MemoryStore({ backend }), { clock });
  return { clock, backend, store };
}

describe('vip(store)(options, fn)', () => {
  it("runs every listener of an event even when one throws, and reports the throw on 'error'", async () => {
    const { clock, store } = setup();
    const service = vip(store)({ path: '/job', id: 'a', ttl: TTL, clock }, () => {});
    services.push(service);
    const calls: string[] = [];
    const errors: string[] = [];
    service.on('select', () => {
      calls.push('first');
      throw new Error('listener bug');
    });
    service.on('select', () => calls.push('second'));
    service.on('change', () => Promise.reject(new Error('async listener bug')));
    service.on('error', (error) => errors.push(error.message));
    await service.start();
    await clock.advance(100);
    expect(calls).toEqual(['first', 'second']);
    expect(service.isSelected()).toBe(true);
    expect(errors).toContain('a "select" listener threw: listener bug');
    expect(errors).toContain('a "change" listener threw: async listener bug');
  });

  it('runs fn once per term with the term token, and again on the next term', async () => {
    const { clock, store } = setup();
    const runs: LeaderContext[] = [];
    const service = vip(store)({ path: '/job', id: 'a', ttl: TTL, clock }, (context) => {
      runs.push(context);
    });
    services.push(service);
    await service.start();
    await clock.advance(5000);
    expect(runs).toHaveLength(1);
    expect(runs[0]!.token).toBe(service.token());
    expect(runs[0]!.id).toBe('a');
    await service.stop();
    expect(runs[0]!.signal.aborted).toBe(true);
    await service.start();
    await clock.advance(100);
    expect(runs).toHaveLength(2);
    expect(runs[1]!.token > runs[0]!.token).toBe(true);
  });

  it('aborts the signal when the store stops answering, strictly before the local deadline', async () => {
    const { clock, store } = setup();
    let context: LeaderContext | undefined;
    const events: { what: string; at: number }[] = [];
    const service = vip(store)({ path: '/job', ttl: TTL, clock }, (c) => {
      context = c;
      c.signal.addEventListener('abort', () => events.push({ what: 'abort', at: clock.now() }));
    });
    service.on('deselect', (reason) => events.push({ what: `deselect ${reason}`, at: clock.now() }));
    services.push(service);
    await service.start();
    await clock.advance(2000); // a refresh or two: the deadline has moved since the select
    store.partition();
    const deadline = clock.now() + service.candidate!.timeLeft()! * 1000;
    await clock.advance(5000);
    expect(events.map((e) => e.what)).toEqual(['abort', 'deselect expired']);
    expect(events[0]!.at).toBeLessThan(deadline);
    expect(events[1]!.at).toBe(deadline);
    expect(String(context!.signal.reason)).toMatch(/the store has not confirmed the hold/);
    expect(service.isSelected()).toBe(false);
    store.heal();
  });

  it('a healthy leader never hears the early warning', async () => {
    const { clock, store } = setup();
    let context: LeaderContext | undefined;
    const service = vip(store)({ path: '/job', ttl: TTL, clock }, (c) => {
      context = c;
    });
    services.push(service);
    await service.start();
    await clock.advance(TTL * 1000 * 20);
    expect(context!.signal.aborted).toBe(false);
    expect(service.isSelected()).toBe(true);
  });

  it('a refresh that lands after the early warning ends the term: the node resigns and the next term runs fn again', async () => {
    const { clock, store } = setup();
    const runs: LeaderContext[] = [];
    const deselects: string[] = [];
    const service = vip(store)({ path: '/job', id: 'a', ttl: TTL, clock }, (c) => {
      runs.push(c);
    });
    service.on('deselect', (reason) => deselects.push(reason));
    services.push(service);
    await service.start();
    await clock.advance(10);
    // The deadline is 2400 ms after the select (ttl - ttl/5), the warning 150 ms
    // before it (safetyMargin/4), the next refresh is sent at 1000 ms (ttl/3):
    // 1300 ms of latency lands its answer at 2300, between the two.
    store.latency(1300, ['refresh']);
    await clock.until(() => runs[0]!.signal.aborted, 10_000, 1);
    store.heal();
    await clock.until(() => runs.length === 2, 10_000, 1);
    expect(deselects).toEqual(['resigned']);
    expect(runs[1]!.token > runs[0]!.token).toBe(true);
    expect(runs[1]!.signal.aborted).toBe(false);
  });

  it('a throwing fn is reported and the node resigns so another node takes the job', async () => {
    const { clock, backend } = setup();
    const errors: Error[] = [];
    const ran: string[] = [];
    const make = (id: string, fail: boolean) => {
      const service = vip(new MemoryStore({ backend }))({ path: '/job', id, ttl: TTL, clock }, async () => {
        ran.push(id);
        if (fail) throw new Error(`${id} broke`);
      });
      service.on('error', (error) => errors.push(error));
      services.push(service);
      return service;
    };
    const broken = make('broken', true);
    await broken.start();
    await settle();
    const healthy = make('healthy', false);
    await healthy.start();
    await clock.advance(100);
    expect(ran).toEqual(['broken', 'healthy']);
    expect(errors.map((e) => e.message)).toEqual(['the leader function failed: broken broke']);
    expect(healthy.isSelected()).toBe(true);
    expect(broken.isSelected()).toBe(false);
  });

  it('onError "stop" stops the service (and releases the key) after fn fails', async () => {
    const { clock, backend, store } = setup();
    const errors: string[] = [];
    const deselects: string[] = [];
    const service = vip(store)({ path: '/job', ttl: TTL, clock, onError: 'stop' }, () => {
      throw new Error('oops');
    });
    service.on('error', (error) => errors.push(error.message));
    service.on('deselect', (reason) => deselects.push(reason));
    services.push(service);
    await service.start();
    await clock.advance(100);
    expect(errors).toEqual(['the leader function failed: oops']);
    expect(deselects).toEqual(['stopped']);
    expect(backend.get('/job')).toBeNull();
    await clock.advance(TTL * 1000 * 3);
    expect(service.isSelected()).toBe(false); // stopped: it does not campaign again
  });

  it('resignHoldOff: a node whose fn failed stays out of the election that long', async () => {
    const { clock, store } = setup();
    const selects: number[] = [];
    let failedAt: number | undefined;
    const service = vip(store)({ path: '/job', ttl: TTL, clock, resignHoldOff: 7 }, () => {
      selects.push(clock.now());
      if (selects.length === 1) {
        failedAt = clock.now();
        throw new Error('first try fails');
      }
    });
    services.push(service);
    await service.start();
    await clock.until(() => selects.length === 2, 60_000, 10);
    // The default hold-off would be the ttl (3 s); nobody else campaigns, so it comes back right after 7 s.
    expect(selects[1]! - failedAt!).toBeGreaterThanOrEqual(7000);
    expect(selects[1]! - failedAt!).toBeLessThan(7000 + 100);
  });

  it('onError "continue" keeps leading after fn fails', async () => {
    const { clock, store } = setup();
    const service = vip(store)({ path: '/job', ttl: TTL, clock, onError: 'continue' }, () => {
      throw new Error('oops');
    });
    services.push(service);
    await service.start();
    await clock.advance(2000);
    expect(service.isSelected()).toBe(true);
  });

  it('stop() aborts the running fn and waits for it before releasing the key', async () => {
    const { clock, backend, store } = setup();
    const order: string[] = [];
    const service = vip(store)({ path: '/job', ttl: TTL, clock }, async ({ signal }) => {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
      await settle();
      order.push(`fn finished, key held: ${backend.get('/job') !== null}`);
    });
    service.on('deselect', () => order.push('deselect'));
    services.push(service);
    await service.start();
    await clock.advance(10);
    await service.stop();
    order.push(`stopped, key held: ${backend.get('/job') !== null}`);
    expect(order).toEqual(['fn finished, key held: true', 'deselect', 'stopped, key held: false']);
  });
});

describe('terms do not overlap', () => {
  it("a new term's fn waits for the previous term's fn to settle, and stop() waits for both", async () => {
    const { clock, store } = setup();
    const order: string[] = [];
    const releases: (() => void)[] = [];
    const service = vip(store)({ path: '/job', id: 'a', ttl: TTL, clock }, ({ signal, token }) => {
      order.push(`start ${token}`);
      // Winds down only when the test says so, long after its signal aborted.
      return new Promise<void>((resolve) => {
        releases.push(() => {
          order.push(`end ${token} (aborted: ${signal.aborted})`);
          resolve();
        });
      });
    });
    service.on('select', (_v, _id, holder) => order.push(`select ${holder.token}`));
    service.on('deselect', (reason) => order.push(`deselect ${reason}`));
    services.push(service);
    await service.start();
    await clock.advance(10);
    store.partition();
    await clock.until(() => order.includes('deselect expired'), 10_000);
    store.heal();
    await clock.until(() => order.filter((line) => line.startsWith('select')).length === 2, 60_000);
    await clock.advance(1000);
    // Term 2 is selected, but its fn has not started: term 1's is still winding down.
    expect(order).toEqual(['select 1', 'start 1', 'deselect expired', 'select 2']);
    releases[0]!();
    await clock.advance(10);
    expect(order.slice(4)).toEqual(['end 1 (aborted: true)', 'start 2']);

    // Term 2 ends while its fn keeps running, then stop(): it waits for that fn.
    store.partition();
    await clock.until(() => order.filter((line) => line === 'deselect expired').length === 2, 10_000);
    let stopped = false;
    const stopping = service.stop().then(() => (stopped = true));
    await clock.advance(1000);
    expect(stopped).toBe(false);
    releases[1]!();
    await clock.until(() => stopped, 60_000); // the store is still cut off: the release times out
    await stopping;
    expect(order.at(-1)).toBe('end 2 (aborted: true)');
    store.heal();
  });

  it('stopTimeout: stop() gives up waiting for a fn that never settles, reports it, and resigns', async () => {
    const { clock, backend, store } = setup();
    const errors: string[] = [];
    const service = vip(store)({ path: '/job', ttl: TTL, clock, stopTimeout: 2 }, () => new Promise(() => {}));
    service.on('error', (error) => errors.push(error.message));
    services.push(service);
    await service.start();
    await clock.advance(10);
    let stopped = false;
    const stopping = service.stop().then(() => (stopped = true));
    await clock.advance(1999);
    expect(stopped).toBe(false);
    expect(backend.get('/job')).not.toBeNull(); // the key is not released while fn may still run
    await clock.advance(1);
    await stopping;
    expect(errors).toEqual(['the leader function did not stop within 2 s of its signal; resigning anyway']);
    expect(backend.get('/job')).toBeNull();
  });
});

describe('bad input to vip()', () => {
  it('refuses what is not a store or a connection string', () => {
    expect(() => vip(42 as never)).toThrow(/expected a LockStore or a connection string/);
    expect(() => vip('redis://x:1')).toThrow(/"redis:\/\/x:1" has an unknown scheme "redis:\/\/"; expected etcd:\/\//);
  });

  it('refuses bad options and a missing fn where they are given', () => {
    const controller = vip(new MemoryStore());
    expect(() => controller({ path: '' }, () => {})).toThrow(/"path" must be a non-empty string/);
    expect(() => controller({ path: '/p' }, 'nope' as never)).toThrow(/the leader function must be a function \(got string "nope"\)/);
    expect(() => controller({ path: '/p', onError: 'explode' as never }, () => {})).toThrow(/"onError" must be one of resign, stop, continue/);
    expect(() => vip('memory://')({ path: '/p', ttl: -1 }, () => {})).toThrow(/"ttl" must be a finite number/);
  });

  it('services on memory:// in one process elect among themselves', async () => {
    const a = vip('memory://shared-test')({ path: '/p', id: 'a' }, () => {});
    const b = vip('memory://shared-test')({ path: '/p', id: 'b' }, () => {});
    services.push(a, b);
    await a.start();
    await b.start();
    await settle();
    expect([a.isSelected(), b.isSelected()].filter(Boolean)).toHaveLength(1);
    expect(b.id()).toBe(a.id());
  });
});
