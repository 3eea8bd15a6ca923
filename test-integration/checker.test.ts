import { describe, expect, it } from 'vitest';
import { announcedOverlaps, assertNoSplitBrain, checkWrites, lateDeselects, leaderlessGaps, splitBrains, terms, type LogLine, type WriteRecord } from './checker.js';

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
    expect(() => assertNoSplitBrain(terms(log))).toThrow(/two leaders at once: a .* and b/);
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

  it('ends a term at the local deadline when the deselect is announced later (a stopped process), and reports the lateness', () => {
    const log = [
      line(0, 'a', 'select', { token: '1', deadline: 800 }),
      line(300, 'a', 'refresh', { deadline: 1100 }),
      // SIGSTOP at 400, SIGCONT at 3000: the deselect is announced late; b took over at 2000.
      line(2000, 'b', 'select', { token: '2', deadline: 2800 }),
      line(3001, 'a', 'deselect', { reason: 'expired' }),
    ];
    const all = terms(log);
    expect(all[0]).toMatchObject({ id: 'a', to: 1100, endedAt: 3001, deadline: 1100 });
    expect(splitBrains(all)).toEqual([]);
    expect(lateDeselects(all)).toEqual([{ term: all[0], lateByMs: 1901 }]);
    // Had a refreshed past b's select, both led at once.
    const refreshedLater = [...log, line(1050, 'a', 'refresh', { deadline: 2500 })];
    expect(splitBrains(terms(refreshedLater))).toEqual([expect.stringMatching(/two leaders at once: a .* and b/)]);
  });

  it('checks the fenced resource: writes in token order, each sent within its writer\'s term', () => {
    const all = terms([
      line(0, 'a', 'select', { token: '1', deadline: 1000 }),
      line(900, 'a', 'deselect', { reason: 'stopped' }),
      line(1000, 'b', 'select', { token: '2', deadline: 2000 }),
    ]);
    const write = (id: string, token: bigint, checkedAt: number, receivedAt: number, accepted: boolean): WriteRecord => ({ id, token, checkedAt, receivedAt, accepted });
    const good = checkWrites(all, [
      write('a', 1n, 100, 101, true),
      write('a', 1n, 850, 1005, true), // sent in a's term, arrived after b's select, before b wrote: late but in order
      write('b', 2n, 1010, 1011, true),
      write('a', 1n, 860, 1020, false), // refused: stale
    ]);
    expect(good).toEqual({ accepted: 3, refused: 1, late: 1, violations: [] });

    const stale = checkWrites(all, [write('b', 2n, 1010, 1011, true), write('a', 1n, 850, 1020, true)]);
    expect(stale.violations).toEqual([expect.stringMatching(/accepted a stale write: token 1 from a after token 2/)]);
    const outside = checkWrites(all, [write('a', 1n, 950, 951, false), write('c', 3n, 10, 11, true)]);
    expect(outside.violations).toEqual([
      expect.stringMatching(/^a wrote with token 1, checked at 950, outside its term/),
      expect.stringMatching(/^c wrote with token 3, checked at 10, outside its term .*terms: none.*accepted it/),
    ]);
  });

  it('finds the stretches without a leader', () => {
    const all = terms([
      line(100, 'a', 'select', { token: '1' }),
      line(200, 'a', 'deselect'),
      line(250, 'b', 'select', { token: '2' }),
      line(400, 'b', 'deselect'),
    ]);
    expect(leaderlessGaps(all, 0, 500)).toEqual([
      { from: 0, to: 100 },
      { from: 200, to: 250 },
      { from: 400, to: 500 },
    ]);
    expect(leaderlessGaps(all, 120, 300)).toEqual([{ from: 200, to: 250 }]);
  });

  it('judges what a stopped process announced by how soon it deselects once it runs again', () => {
    const log = [
      line(0, 'a', 'select', { token: '1', deadline: 800 }),
      line(2000, 'b', 'select', { token: '2', deadline: 2800 }),
      line(3010, 'a', 'deselect', { reason: 'expired' }), // SIGCONT at 3000: 10 ms to announce it
    ];
    const all = terms(log);
    expect(announcedOverlaps(all, { a: [{ from: 400, to: 3000 }] }, 600)).toEqual([]);
    // Not stopped at all: it announced its leadership for a second past b's select.
    expect(announcedOverlaps(all, {}, 600)).toEqual([expect.stringMatching(/^a \(token 1\) announced no deselect for 1010 ms of running time after b/)]);
    // Resumed at 2200 but announced the end only at 3010.
    expect(announcedOverlaps(all, { a: [{ from: 400, to: 2200 }] }, 600)).toEqual([expect.stringMatching(/810 ms of running time/)]);
  });
});
