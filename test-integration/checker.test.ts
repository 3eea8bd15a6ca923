import { describe, expect, it } from 'vitest';
import {
  announcedOverlaps,
  assertNoSplitBrain,
  checkWrites,
  lateDeselects,
  leaderlessGaps,
  replacedWhileStopped,
  settledThroughout,
  splitBrains,
  terms,
  type LogLine,
  type WriteRecord,
} from './checker.js';

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
    const outside = checkWrites(all, [write('b', 2n, 1010, 1011, true), write('a', 1n, 950, 1012, false), write('c', 3n, 10, 1013, true)]);
    expect(outside.violations).toEqual([
      expect.stringMatching(/^a wrote with token 1, checked at 950, outside its term/),
      expect.stringMatching(/^c wrote with token 3, checked at 10, outside its term .*terms: none.*accepted it/),
    ]);
  });

  it('holds the fenced resource to its rule both ways: a stale write accepted, or a current one refused', () => {
    const all = terms([
      line(0, 'a', 'select', { token: '1', deadline: 1000 }),
      line(900, 'a', 'deselect', { reason: 'stopped' }),
      line(1000, 'b', 'select', { token: '2', deadline: 3000 }),
    ]);
    const write = (id: string, token: bigint, checkedAt: number, accepted: boolean): WriteRecord => ({ id, token, checkedAt, receivedAt: checkedAt + 1, accepted });
    // The first write of all, refused: nothing was accepted before it, so nothing made it stale.
    expect(checkWrites(all, [write('a', 1n, 100, false)]).violations).toEqual([
      expect.stringMatching(/^the resource refused a write it should have accepted: token 1 from a, .*highest: none yet/),
    ]);
    // b's token is the highest seen: refusing it turns the real leader away.
    const refusedLeader = checkWrites(all, [write('a', 1n, 100, true), write('b', 2n, 1010, true), write('b', 2n, 1200, false)]);
    expect(refusedLeader).toMatchObject({ accepted: 2, refused: 1 });
    expect(refusedLeader.violations).toEqual([expect.stringMatching(/^the resource refused a write it should have accepted: token 2 from b, .*highest: 2\)/)]);
    // A token equal to the highest is accepted (a leader writes many times in its term); only a lower one is refused.
    expect(checkWrites(all, [write('a', 1n, 100, true), write('a', 1n, 200, true), write('b', 2n, 1010, true), write('a', 1n, 850, false)]).violations).toEqual([]);
    // Refusals of a lower token stay correct after a refused one: highest only moves on an accepted write.
    expect(checkWrites(all, [write('b', 2n, 1010, true), write('a', 1n, 850, false), write('a', 1n, 860, true)]).violations).toEqual([
      expect.stringMatching(/^the resource accepted a stale write: token 1 from a after token 2/),
    ]);
  });

  it('finds a paused leader that was replaced while stopped and announced its deselect after SIGCONT', () => {
    const log = [
      line(0, 'a', 'select', { token: '1', deadline: 800 }),
      line(300, 'a', 'refresh', { deadline: 1100 }),
      // SIGSTOP at 400, b selected at 2000, SIGCONT at 3000, a's deselect at 3005.
      line(2000, 'b', 'select', { token: '2', deadline: 2800 }),
      line(3005, 'a', 'deselect', { reason: 'expired' }),
    ];
    const all = terms(log);
    expect(replacedWhileStopped(all, { a: [{ from: 400, to: 3000 }] })).toEqual([{ term: all[0], stop: { from: 400, to: 3000 }, replacedBy: all[1], lateByMs: 1905 }]);
    // Stopped, but nobody took over while it slept (b came after SIGCONT): not the case.
    expect(replacedWhileStopped(all, { a: [{ from: 400, to: 1900 }] })).toEqual([]);
    // Stopped after its deadline had passed: it no longer led when the stop hit it.
    expect(replacedWhileStopped(all, { a: [{ from: 1200, to: 3000 }] })).toEqual([]);
    // b stopped, not a leader then (before its select): not the case either.
    expect(replacedWhileStopped(all, { b: [{ from: 1500, to: 1900 }] })).toEqual([]);
    // Killed while stopped: no deselect announced after SIGCONT.
    const killed = terms(log.slice(0, 3), { a: [2500] });
    expect(replacedWhileStopped(killed, { a: [{ from: 400, to: 2500 }] })).toEqual([]);
  });

  it('checks that the election stays settled: one leader throughout, no deselect, nobody else selected', () => {
    const log = [
      line(0, 'a', 'select', { token: '1' }),
      line(1000, 'a', 'deselect', { reason: 'expired' }),
      line(1200, 'b', 'select', { token: '2' }),
      line(9000, 'b', 'deselect', { reason: 'stopped' }),
    ];
    expect(settledThroughout(terms(log), 1500, 8000)).toEqual([]);
    // b announced a deselect in the stretch and took the lead again.
    const flapped = terms([...log.slice(0, 3), line(5000, 'b', 'deselect', { reason: 'lost' }), line(5100, 'c', 'select', { token: '3' }), line(9000, 'c', 'deselect', { reason: 'stopped' })]);
    expect(settledThroughout(flapped, 1500, 8000)).toEqual([
      expect.stringMatching(/^b \(token 2\) announced its end \(lost\) at 5000, within the settled stretch \[1500, 8000\]/),
      expect.stringMatching(/^c \(token 3\) was selected at 5100, within the settled stretch/),
    ]);
    // Nobody led when the stretch began.
    expect(settledThroughout(terms(log), 1100, 8000)).toEqual([
      expect.stringMatching(/^0 terms were open at 1100/),
      expect.stringMatching(/^b \(token 2\) was selected at 1200/),
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
