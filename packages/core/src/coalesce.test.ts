import { describe, expect, it } from 'vitest';
import { coalesce } from './coalesce.js';

describe('coalesce', () => {
  it('callers in the same tick share one request, sent after all of them called', async () => {
    const sent: number[] = [];
    let calls = 0;
    const confirm = coalesce(async () => {
      sent.push(calls);
      return sent.length;
    });
    const first = [confirm(), confirm(), confirm()];
    calls = 3;
    expect(await Promise.all(first)).toEqual([1, 1, 1]);
    expect(sent).toEqual([3]); // sent after the third call began
  });

  it('a caller that arrives after a request was sent waits for a new one', async () => {
    let release!: () => void;
    let requests = 0;
    const confirm = coalesce(async () => {
      requests++;
      if (requests === 1) await new Promise<void>((resolve) => (release = resolve));
      return requests;
    });
    const early = confirm();
    await new Promise((resolve) => setImmediate(resolve)); // the first request is now in flight
    const late = confirm();
    release();
    expect(await early).toBe(1);
    expect(await late).toBe(2);
  });

  it('a failed request rejects every caller that joined it, and the next call tries again', async () => {
    let fail = true;
    const confirm = coalesce(async () => {
      if (fail) throw new Error('unreachable');
      return 'ok';
    });
    await expect(Promise.all([confirm(), confirm()])).rejects.toThrow('unreachable');
    fail = false;
    await expect(confirm()).resolves.toBe('ok');
  });
});
