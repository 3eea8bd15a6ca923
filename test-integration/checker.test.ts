import { describe, expect, it } from 'vitest';
import { assertNoSplitBrain, terms, type LogLine } from './checker.js';

const line = (at: number, id: string, event: string, extra: Partial<LogLine> = {}): LogLine => ({ at, id, event, ...extra });

describe('split-brain checker', () => {
  it('accepts terms that follow one another with increasing tokens', () => {
    const log = [
      line(0, 'a', 'select', { token: '5' }),
      line(10, 'a', 'deselect', { reason: 'stopped' }),
      line(11, 'b', 'select', { token: '7' }),
    ];
    expect(() => assertNoSplitBrain(terms(log))).not.toThrow();
  });

  it('fails on overlapping leadership', () => {
    const log = [line(0, 'a', 'select', { token: '5' }), line(5, 'b', 'select', { token: '7' }), line(10, 'a', 'deselect', { reason: 'expired' })];
    expect(() => assertNoSplitBrain(terms(log))).toThrow(/two leaders at once: a and b/);
  });

  it('fails on a token that does not increase', () => {
    const log = [line(0, 'a', 'select', { token: '5' }), line(1, 'a', 'deselect'), line(2, 'b', 'select', { token: '5' })];
    expect(() => assertNoSplitBrain(terms(log))).toThrow(/fencing token did not increase/);
  });

  it('ends a killed leader at its death, and fails on a second select without deselect', () => {
    const log = [line(0, 'a', 'select', { token: '1' }), line(50, 'b', 'select', { token: '2' })];
    expect(() => assertNoSplitBrain(terms(log, { a: [40] }))).not.toThrow();
    expect(() => assertNoSplitBrain(terms(log, { a: [60] }))).toThrow(/two leaders/);
    expect(() => terms([line(0, 'a', 'select', { token: '1' }), line(1, 'a', 'select', { token: '2' })])).toThrow(/selected twice/);
  });
});
