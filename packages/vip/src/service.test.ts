import { MemoryBackend, MemoryStore, VipOptionError, type LockStore } from '@vip/core';
import { FakeClock, FaultyStore, settle } from '@vip/core/testing';
import { afterEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { openStore } from './connection.js';
import { vip, type LeaderContext, type Service } from './index.js';

// openStore as it is, but observable: the tests of the shared store count the opens and spy on close().
vi.mock('./connection.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('./connection.js')>();
  return { ...actual, openStore: vi.fn(actual.openStore) };
});

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

describe('unknown options', () => {
  it('are refused where they are given, the service\'s own keys and the candidate\'s', () => {
    const controller = vip(new MemoryStore());
    let error: unknown;
    try {
      controller({ path: '/p', stopTimout: 1 } as never, () => {});
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(VipOptionError);
    expect((error as VipOptionError).option).toBe('stopTimout');
    expect((error as Error).message).toMatch(
      /^vip: unknown option "stopTimout" \(did you mean "stopTimeout"\? valid options: path, id, value, ttl, .*, random, onError, resignHoldOff, stopTimeout\)$/,
    );
    expect(() => vip('memory://')({ path: '/p', tll: 3 } as never, () => {})).toThrow(/vip: unknown option "tll" \(did you mean "ttl"\?/);
    // The service's own options are not passed on to the candidate, which would refuse them.
    expect(() => controller({ path: '/p', onError: 'stop', resignHoldOff: 1, stopTimeout: 2 }, () => {})).not.toThrow();
  });
});

describe('whenSelected()', () => {
  it("waits, from before start() on a connection string, for the term, and resolves with the signal fn gets", async () => {
    let context: LeaderContext | undefined;
    const service = vip('memory://when-selected-1')({ path: '/p' }, (c) => {
      context = c;
    });
    services.push(service);
    const selected = service.whenSelected();
    expect(service.candidate).toBeUndefined(); // nothing to delegate to yet
    await service.start();
    const signal = await selected;
    expect(signal).toBe(context!.signal);
    expect(service.isSelected()).toBe(true);
    // At once while leading, the same signal.
    expect(await service.whenSelected()).toBe(signal);
    await service.stop();
    expect(signal.aborted).toBe(true);
  });

  it('rejects when the service is stopped before it was selected, and when its signal aborts', async () => {
    const controller = vip('memory://when-selected-2');
    const a = controller({ path: '/p', id: 'a' }, () => {});
    const b = controller({ path: '/p', id: 'b' }, () => {});
    services.push(a, b);
    await a.start();
    await a.whenSelected();
    await b.start();
    await settle();
    const stopped = b.whenSelected();
    const reasons = new AbortController();
    const aborted = b.whenSelected(reasons.signal);
    reasons.abort(new Error('gave up'));
    await expect(aborted).rejects.toThrow('gave up');
    await expect(b.whenSelected(AbortSignal.abort(new Error('already')))).rejects.toThrow('already');
    await b.stop();
    await expect(stopped).rejects.toThrow('vip: the service on "/p" was stopped before it was selected');
    expect(() => b.whenSelected('soon' as never)).toThrow(/Service\.whenSelected: signal must be an AbortSignal or undefined \(got string "soon"\)/);
  });

  it('a stop() of a service that was not started leaves it waiting for the next start', async () => {
    const service = vip(new MemoryStore())({ path: '/p' }, () => {});
    services.push(service);
    const selected = service.whenSelected();
    await service.stop();
    await service.start();
    await expect(selected).resolves.toBeInstanceOf(AbortSignal);
  });
});

describe('vip(string): one store for all the services of a controller', () => {
  const opens = vi.mocked(openStore);
  afterEach(async () => {
    const actual = await vi.importActual<typeof import('./connection.js')>('./connection.js');
    opens.mockImplementation(actual.openStore);
    opens.mockClear();
  });

  /** Record every store the controller opens, with a spy on its close(); `gate` holds opens back until it resolves. */
  async function recordOpens(gate?: Promise<void>): Promise<{ store: LockStore; close: MockInstance }[]> {
    const actual = await vi.importActual<typeof import('./connection.js')>('./connection.js');
    const opened: { store: LockStore; close: MockInstance }[] = [];
    opens.mockClear();
    opens.mockImplementation(async (...args) => {
      await gate;
      const store = await actual.openStore(...args);
      opened.push({ store, close: vi.spyOn(store, 'close') });
      return store;
    });
    return opened;
  }

  it('two services compete on one path through one store, and exactly one leads', async () => {
    const opened = await recordOpens();
    const controller = vip('memory://shared-store-1');
    const a = controller({ path: '/p', id: 'a' }, () => {});
    const b = controller({ path: '/p', id: 'b' }, () => {});
    services.push(a, b);
    await Promise.all([a.start(), b.start()]);
    await settle();
    expect(opened).toHaveLength(1);
    expect([a.isSelected(), b.isSelected()].filter(Boolean)).toHaveLength(1);
    expect(b.id()).toBe(a.id());
  });

  it('closes the store after the last of its services has stopped, and opens another on the next start', async () => {
    const opened = await recordOpens();
    const controller = vip('memory://shared-store-2');
    const a = controller({ path: '/a' }, () => {});
    const b = controller({ path: '/b' }, () => {});
    services.push(a, b);
    await a.start();
    await b.start();
    await a.stop();
    expect(opened[0]!.close).not.toHaveBeenCalled(); // b still uses it
    await a.start(); // takes the open store again
    expect(opened).toHaveLength(1);
    await a.stop();
    await b.stop();
    expect(opened[0]!.close).toHaveBeenCalledTimes(1);
    await b.start();
    expect(opened).toHaveLength(2);
    expect(opened[1]!.store).not.toBe(opened[0]!.store);
    await b.whenSelected();
    await b.stop();
    expect(opened[1]!.close).toHaveBeenCalledTimes(1);
  });

  it('starts while the store is opening wait for that same open; a stop during the open closes it once', async () => {
    let letOpen!: () => void;
    const opened = await recordOpens(new Promise<void>((resolve) => (letOpen = resolve)));
    const controller = vip('memory://shared-store-3');
    const a = controller({ path: '/a' }, () => {});
    const b = controller({ path: '/b' }, () => {});
    services.push(a, b);
    const starts = [a.start(), b.start()];
    const stopping = a.stop();
    await settle();
    expect(opens).toHaveBeenCalledTimes(1);
    letOpen();
    await Promise.all([...starts, stopping]);
    expect(opened).toHaveLength(1);
    expect(a.candidate).toBeUndefined();
    expect(b.candidate).toBeDefined();
    expect(opened[0]!.close).not.toHaveBeenCalled();
    await b.stop();
    expect(opened[0]!.close).toHaveBeenCalledTimes(1);
  });

  it('a failed open fails the starts waiting for it, and the next start opens again', async () => {
    const opened = await recordOpens();
    const recording = opens.getMockImplementation()!;
    opens.mockImplementationOnce(async () => {
      await settle();
      throw new Error('no route to host');
    });
    const controller = vip('memory://shared-store-4');
    const a = controller({ path: '/a' }, () => {});
    const b = controller({ path: '/b' }, () => {});
    services.push(a, b);
    const results = await Promise.allSettled([a.start(), b.start()]);
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
    expect(opens).toHaveBeenCalledTimes(1);
    opens.mockImplementation(recording);
    await a.start();
    await b.start();
    expect(opens).toHaveBeenCalledTimes(2);
    expect(opened).toHaveLength(1);
    await a.stop();
    await b.stop();
    expect(opened[0]!.close).toHaveBeenCalledTimes(1);
  });

  it('each vip(string) is a controller of its own, with its own store; a LockStore passed in is never closed', async () => {
    const opened = await recordOpens();
    const a = vip('memory://shared-store-5')({ path: '/a' }, () => {});
    const b = vip('memory://shared-store-5')({ path: '/b' }, () => {});
    services.push(a, b);
    await a.start();
    await b.start();
    expect(opened).toHaveLength(2);
    const store = new MemoryStore();
    const close = vi.spyOn(store, 'close');
    const c = vip(store)({ path: '/c' }, () => {});
    await c.start();
    await c.stop();
    expect(close).not.toHaveBeenCalled();
  });
});
