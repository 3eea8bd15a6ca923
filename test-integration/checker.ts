/**
 * The split-brain checker: reads every candidate process's event log (and the
 * fenced resource's record of writes) and fails on
 * - two processes considering themselves leader at the same time,
 * - a fencing token that does not increase from one term to the next,
 * - a write the fenced resource decided wrongly: accepted with a token lower
 *   than one it had already accepted (a stale write got through the fence), or
 *   refused with a token at least as high as any it had accepted (a fence that
 *   turns away the real leader), or any write by a process that was not
 *   leading by its own log when it checked `isSelected()` before the work,
 * - an election that does not stay settled once the faults have stopped
 *   (`settledThroughout`).
 * Times are the shared machine clock (`Date.now()` in each process).
 *
 * When does a process consider itself leader? From its `select` until the
 * earliest of: its `deselect`, its death (SIGKILL by the test), and its local
 * deadline, which `select` and `refresh` lines carry. `isSelected()` checks the
 * deadline itself, so a process that is stopped (SIGSTOP) or starved past its
 * deadline does not lead after it, even though it can only announce the
 * deselect once it runs again; that late announcement is reported by
 * `lateDeselects`, not counted as leadership. A process that refreshes keeps
 * moving its deadline, so a leader that really went on leading is judged by
 * its deselect.
 */

export interface LogLine {
  at: number;
  id: string;
  event: string;
  token?: string;
  reason?: string;
  leader?: string | null;
  message?: string;
  /** On select and refresh: the local deadline at that moment (ms since the epoch). */
  deadline?: number;
}

export interface Term {
  id: string;
  token: bigint;
  from: number;
  /**
   * When leadership ended: the earliest of the deselect, the moment the
   * process died and its last announced local deadline; Infinity while it lasts.
   */
  to: number;
  reason: string;
  /** The last local deadline the process announced during the term, if it announced any. */
  deadline?: number;
  /** When the process announced the end (deselect) or died; Infinity while it lasts. */
  endedAt: number;
}

/**
 * Leadership terms from the logs. `deaths` gives, per id, the times the test
 * killed that process (SIGKILL): a leader's term ends when its process dies.
 */
export function terms(lines: LogLine[], deaths: Record<string, number[]> = {}): Term[] {
  const result: Term[] = [];
  const open = new Map<string, Term>();
  const ends = Object.entries(deaths).flatMap(([id, times]) => times.map((at): LogLine => ({ at, id, event: 'killed' })));
  // A stable sort: lines of one process keep their order when two share a millisecond.
  for (const line of [...lines, ...ends].sort((a, b) => a.at - b.at)) {
    const current = open.get(line.id);
    if (line.event === 'select') {
      if (current) throw new Error(`${line.id} selected twice without a deselect (at ${line.at})`);
      if (line.token === undefined) throw new Error(`${line.id}: a select line without a token (at ${line.at})`);
      const term: Term = { id: line.id, token: BigInt(line.token), from: line.at, to: Number.POSITIVE_INFINITY, reason: 'running', endedAt: Number.POSITIVE_INFINITY };
      if (line.deadline !== undefined) term.deadline = line.deadline;
      open.set(line.id, term);
      result.push(term);
    } else if (line.event === 'refresh' && current && line.deadline !== undefined) {
      current.deadline = Math.max(current.deadline ?? line.deadline, line.deadline);
    } else if (line.event === 'deselect' || line.event === 'killed') {
      if (line.event === 'deselect' && !current) throw new Error(`${line.id} deselected without a select (at ${line.at})`);
      if (current) {
        current.endedAt = line.at;
        current.to = Math.min(line.at, current.deadline ?? Number.POSITIVE_INFINITY);
        current.reason = line.event === 'killed' ? 'killed' : (line.reason ?? '?');
        open.delete(line.id);
      }
    }
  }
  return result;
}

const show = (all: Term[]): string =>
  [...all]
    .sort((a, b) => a.from - b.from)
    .map((t) => `${t.id} token ${t.token} [${t.from}, ${t.to}] ${t.reason}`)
    .join('\n  ');

/** Every overlap of leadership and every token that does not increase, as messages (empty: none). */
export function splitBrains(all: Term[]): string[] {
  const sorted = [...all].sort((a, b) => a.from - b.from);
  const found: string[] = [];
  for (let i = 1; i < sorted.length; i++) {
    const before = sorted[i - 1]!;
    const after = sorted[i]!;
    if (after.from < before.to) found.push(`two leaders at once: ${before.id} (token ${before.token}, until ${before.to}) and ${after.id} (token ${after.token}, from ${after.from})`);
    if (after.token <= before.token) found.push(`fencing token did not increase: ${before.id} had ${before.token}, then ${after.id} had ${after.token}`);
  }
  return found;
}

/** Throws, with the terms in the message, on overlapping leadership or tokens that do not increase. */
export function assertNoSplitBrain(all: Term[]): void {
  const found = splitBrains(all);
  if (found.length > 0) throw new Error(`${found[0]}\n  ${show(all)}`);
}

/**
 * The other reading of "two leaders at once": what each process *announced*.
 * A term lasts, as announced, from its select to its deselect (or death),
 * except while the test had the process stopped (SIGSTOP): a stopped process
 * does nothing, and is judged by how soon it deselects once it runs again.
 * Any stretch longer than `allowanceMs` in which a running process had not yet
 * announced the end of its term while another process's term had begun is
 * reported. The allowance is the documented safety margin: the time between a
 * leader's local deadline and the earliest moment the store can free its key.
 */
export function announcedOverlaps(all: Term[], stopped: Record<string, Stop[]>, allowanceMs: number): string[] {
  const found: string[] = [];
  for (const before of all) {
    const end = before.endedAt;
    for (const after of all) {
      if (after === before || after.from < before.from || after.from >= end) continue;
      // [after.from, min(end, after.to)] minus the stretches `before`'s process was stopped.
      const from = after.from;
      const to = Math.min(end, after.to);
      let running = to - from;
      for (const stop of stopped[before.id] ?? []) running -= Math.max(0, Math.min(to, stop.to) - Math.max(from, stop.from));
      if (running > allowanceMs) {
        found.push(
          `${before.id} (token ${before.token}) announced no deselect for ${running} ms of running time after ${after.id} (token ${after.token}) was selected at ${after.from}; allowed: ${allowanceMs} ms`,
        );
      }
    }
  }
  return found;
}

/** Terms whose deselect came later than their deadline: the process was stopped or starved (not a split brain). */
export function lateDeselects(all: Term[]): { term: Term; lateByMs: number }[] {
  return all
    .filter((term) => term.deadline !== undefined && term.endedAt !== Number.POSITIVE_INFINITY && term.reason !== 'killed' && term.endedAt > term.deadline)
    .map((term) => ({ term, lateByMs: term.endedAt - term.deadline! }));
}

/** A stretch when the test had a process stopped (SIGSTOP to SIGCONT). */
export interface Stop {
  from: number;
  to: number;
}

/** A leader stopped while it led, replaced while it was stopped, which announced its deselect once it ran again. */
export interface ReplacedWhileStopped {
  term: Term;
  stop: Stop;
  /** The first term that began while `term`'s process was stopped. */
  replacedBy: Term;
  /** How long after its deadline the stopped leader announced its deselect. */
  lateByMs: number;
}

/**
 * The classic paused-leader case, as it happened: a process stopped (SIGSTOP)
 * while it led, another selected while it was stopped, and the stopped one's
 * deselect announced once it ran again (SIGCONT), after its deadline: one of
 * `lateDeselects`. A chaos run that pauses processes must show at least one,
 * or it never tested what a woken leader does.
 */
export function replacedWhileStopped(all: Term[], stopped: Record<string, Stop[]>): ReplacedWhileStopped[] {
  const found: ReplacedWhileStopped[] = [];
  for (const { term, lateByMs } of lateDeselects(all)) {
    for (const stop of stopped[term.id] ?? []) {
      // Stopped while it led (by its deadline), and announced the end only after SIGCONT.
      if (stop.from < term.from || stop.from >= term.to || term.endedAt < stop.to) continue;
      const replacedBy = [...all].sort((a, b) => a.from - b.from).find((other) => other !== term && other.from >= stop.from && other.from <= stop.to);
      if (replacedBy) {
        found.push({ term, stop, replacedBy, lateByMs });
        break;
      }
    }
  }
  return found;
}

/**
 * Once the faults have stopped and a leader holds again, the election must stay
 * put: within [from, to] exactly one term leads throughout (selected by `from`,
 * its deselect announced only after `to`) and nobody else is selected. Messages
 * for every way it did not (empty: it stayed settled).
 */
export function settledThroughout(all: Term[], from: number, to: number): string[] {
  const found: string[] = [];
  const holding = all.filter((term) => term.from <= from && term.endedAt > from);
  if (holding.length !== 1) found.push(`${holding.length} terms were open at ${from}, when the election was taken as settled (expected exactly one)`);
  for (const term of holding) {
    if (term.endedAt <= to) found.push(`${term.id} (token ${term.token}) announced its end (${term.reason}) at ${term.endedAt}, within the settled stretch [${from}, ${to}]`);
  }
  for (const term of all) {
    if (term.from > from && term.from <= to) found.push(`${term.id} (token ${term.token}) was selected at ${term.from}, within the settled stretch [${from}, ${to}]`);
  }
  return found;
}

/**
 * A write is checked against a deadline that the writer logged as
 * `Date.now() + 1000 * timeLeft()`, a wall-clock time computed from its monotonic
 * clock; the two clocks may drift apart by NTP's slew rate (at most 500 ppm,
 * so under 2 ms over a term's few seconds between refreshes).
 */
const CLOCK_SLACK_MS = 2;

/** One write as the fenced resource recorded it (chaos/fenced-resource.ts). */
export interface WriteRecord {
  id: string;
  token: bigint;
  /** When the writer checked `isSelected()` (the write went out after its work). */
  checkedAt: number;
  receivedAt: number;
  accepted: boolean;
}

export interface WriteCheck {
  accepted: number;
  refused: number;
  /** Accepted writes that arrived after a newer term had begun (the newer leader had not written yet): late, but in token order. */
  late: number;
  violations: string[];
}

/**
 * Checks the fenced resource's record, in the order it received the writes:
 * - an accepted write never carries a token lower than one accepted before it
 *   (the fence held), and a refused write always does (the fence refuses only
 *   what is stale: a resource that also turned away the current leader would
 *   be "safe" and useless). The resource's own rule is this one; the checker
 *   holds its record to it independently of how it decided;
 * - every write, accepted or refused, was decided on within a term of its
 *   writer with that token: `isSelected()` said yes inside the term (nobody
 *   worked without leading, or with another's token). The write itself may go
 *   out later (the work takes time, or the writer was stopped meanwhile):
 *   that is what the fence is for.
 */
export function checkWrites(all: Term[], writes: readonly WriteRecord[]): WriteCheck {
  const byKey = new Map<string, Term[]>();
  for (const term of all) {
    const key = `${term.id}\u0000${term.token}`;
    byKey.set(key, [...(byKey.get(key) ?? []), term]);
  }
  const starts = [...all].sort((a, b) => a.from - b.from);
  const result: WriteCheck = { accepted: 0, refused: 0, late: 0, violations: [] };
  let highest = -1n;
  for (const write of writes) {
    const terms = byKey.get(`${write.id}\u0000${write.token}`) ?? [];
    const within = terms.some((term) => write.checkedAt >= term.from && write.checkedAt <= term.to + CLOCK_SLACK_MS);
    if (!within) {
      const known = terms.map((term) => `[${term.from}, ${term.to}]`).join(', ') || 'none';
      result.violations.push(`${write.id} wrote with token ${write.token}, checked at ${write.checkedAt}, outside its term with that token (terms: ${known})${write.accepted ? ', and the resource accepted it' : ''}`);
    }
    const stale = write.token < highest;
    if (!write.accepted) {
      result.refused++;
      if (!stale) {
        result.violations.push(
          `the resource refused a write it should have accepted: token ${write.token} from ${write.id}, not lower than any accepted before it (highest: ${highest < 0n ? 'none yet' : highest})`,
        );
      }
      continue;
    }
    result.accepted++;
    if (stale) result.violations.push(`the resource accepted a stale write: token ${write.token} from ${write.id} after token ${highest}`);
    if (write.token > highest) highest = write.token;
    if (starts.some((term) => term.token > write.token && term.from <= write.receivedAt)) result.late++;
  }
  return result;
}

/** The stretches within [from, to] when no process led. */
export function leaderlessGaps(all: Term[], from: number, to: number): { from: number; to: number }[] {
  const gaps: { from: number; to: number }[] = [];
  let covered = from;
  for (const term of [...all].sort((a, b) => a.from - b.from)) {
    if (term.to <= covered) continue;
    if (term.from > covered) gaps.push({ from: covered, to: Math.min(term.from, to) });
    covered = Math.max(covered, term.to);
    if (covered >= to) break;
  }
  if (covered < to) gaps.push({ from: covered, to });
  return gaps.filter((gap) => gap.to > gap.from);
}
