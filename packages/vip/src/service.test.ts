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

  it('aborts the signal when leadership is lost, no later than the local deadline', async () => {
    const { clock, store } = setup();
    let context: LeaderContext | undefined;
    let abortedAt: number | undefined;
    const service = vip(store)({ path: '/job', ttl: TTL, clock }, (c) => {
      context = c;
      c.signal.addEventListener('abort', () => (abortedAt = clock.now()));
    });
    services.push(service);
    await service.start();
    await clock.advance(10);
    const selectedAt = clock.now() - 10;
    store.partition();
    await clock.advance(5000);
    expect(context!.signal.aborted).toBe(true);
    // Last confirmed send time was the acquisition at selectedAt: deadline = +0.8 ttl.
    expect(abortedAt).toBeLessThanOrEqual(selectedAt + TTL * 1000 * 0.8);
    expect(service.isSelected()).toBe(false);
    store.heal();
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
