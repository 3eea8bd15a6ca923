import { describe, expect, it } from 'vitest';
import { troubleReporter } from './trouble.js';

describe('troubleReporter', () => {
  it('passes each failure on, a recovery only after trouble, nothing once ended, and swallows a throwing callback', () => {
    const told: (string | null)[] = [];
    const ended = new AbortController();
    const report = troubleReporter((error) => told.push(error && error.message), ended.signal);
    report(null); // no trouble before it: nothing to say
    report(new Error('refused'));
    report(new Error('refused again'));
    report(null);
    report(null);
    expect(told).toEqual(['refused', 'refused again', null]);
    ended.abort();
    report(new Error('late'));
    expect(told).toHaveLength(3);
    const throwing = troubleReporter(() => {
      throw new Error('listener bug');
    }, new AbortController().signal);
    expect(() => throwing(new Error('x'))).not.toThrow();
    expect(() => troubleReporter(undefined, new AbortController().signal)(new Error('x'))).not.toThrow();
  });
});
