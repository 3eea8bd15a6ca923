import { describe, expect, it } from 'vitest';
import { RequestLimit } from './request-limit.js';

/** A request the test answers by hand. */
function request(log: string[], name: string): { send: () => Promise<string>; answer: () => void } {
  let answer!: () => void;
  const answered = new Promise<void>((resolve) => {
    answer = resolve;
  });
  return {
    send: async () => {
      log.push(`sent ${name}`);
      await answered;
      return name;
    },
    answer: () => answer(),
  };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('RequestLimit: at most max requests in flight', () => {
  it('sends max at once, the rest in order as answers come, session calls first', async () => {
    const log: string[] = [];
    const limit = new RequestLimit(2);
    const [a, b, c, d, s] = ['a', 'b', 'c', 'd', 's'].map((name) => request(log, name)) as [ReturnType<typeof request>, ReturnType<typeof request>, ReturnType<typeof request>, ReturnType<typeof request>, ReturnType<typeof request>];
    const results = [limit.run('other', undefined, a.send), limit.run('other', undefined, b.send), limit.run('other', undefined, c.send), limit.run('other', undefined, d.send)];
    const session = limit.run('session', undefined, s.send);
    await settle();
    expect(log).toEqual(['sent a', 'sent b']);
    expect({ active: limit.active, queued: limit.queued }).toEqual({ active: 2, queued: 3 });
    a.answer();
    await settle();
    // The renew waited less than the transactions queued before it.
    expect(log).toEqual(['sent a', 'sent b', 'sent s']);
    b.answer();
    s.answer();
    await settle();
    expect(log).toEqual(['sent a', 'sent b', 'sent s', 'sent c', 'sent d']);
    c.answer();
    d.answer();
    expect(await Promise.all([...results, session])).toEqual(['a', 'b', 'c', 'd', 's']);
    expect({ active: limit.active, queued: limit.queued }).toEqual({ active: 0, queued: 0 });
  });

  it('a failed request frees its place like an answered one', async () => {
    const limit = new RequestLimit(1);
    await expect(limit.run('other', undefined, () => Promise.reject(new Error('ECONNRESET')))).rejects.toThrow('ECONNRESET');
    expect(await limit.run('other', undefined, () => Promise.resolve('next'))).toBe('next');
    expect(limit.active).toBe(0);
  });

  it('a caller that gives up while waiting leaves the queue at once; its request is never sent', async () => {
    const log: string[] = [];
    const limit = new RequestLimit(1);
    const first = request(log, 'first');
    const running = limit.run('other', undefined, first.send);
    const controller = new AbortController();
    const waiting = limit.run('other', controller.signal, () => {
      log.push('sent abandoned');
      return Promise.resolve('abandoned');
    });
    await settle();
    controller.abort(new Error('gave up'));
    await expect(waiting).rejects.toThrow('gave up');
    expect(limit.queued).toBe(0);
    first.answer();
    await running;
    await settle();
    expect(log).toEqual(['sent first']);
  });

  it('an already aborted signal is refused before anything is queued', async () => {
    const limit = new RequestLimit(1);
    const controller = new AbortController();
    controller.abort(new Error('too late'));
    await expect(limit.run('other', controller.signal, () => Promise.resolve('x'))).rejects.toThrow('too late');
    expect({ active: limit.active, queued: limit.queued }).toEqual({ active: 0, queued: 0 });
  });
});
