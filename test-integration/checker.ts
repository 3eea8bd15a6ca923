/**
 * The split-brain checker: reads every candidate process's event log and
 * fails on any overlap of leadership or any fencing token that does not
 * increase. Times are the shared machine clock (`Date.now()` in each process).
 */

export interface LogLine {
  at: number;
  id: string;
  event: string;
  token?: string;
  reason?: string;
  leader?: string | null;
  message?: string;
}

export interface Term {
  id: string;
  token: bigint;
  from: number;
  /** When leadership ended: the deselect, the moment the process died, or Infinity while it lasts. */
  to: number;
  reason: string;
}

/**
 * Leadership terms from the logs. `deaths` gives, per id, the times the test
 * killed that process (SIGKILL): a leader's term ends when its process dies.
 */
export function terms(lines: LogLine[], deaths: Record<string, number[]> = {}): Term[] {
  const result: Term[] = [];
  const open = new Map<string, Term>();
  const events = [...lines].sort((a, b) => a.at - b.at);
  const ends = Object.entries(deaths).flatMap(([id, times]) => times.map((at) => ({ at, id, event: 'killed' })));
  for (const line of [...events, ...ends].sort((a, b) => a.at - b.at)) {
    const current = open.get(line.id);
    if (line.event === 'select') {
      if (current) throw new Error(`${line.id} selected twice without a deselect (at ${line.at})`);
      const term: Term = { id: line.id, token: BigInt((line as LogLine).token!), from: line.at, to: Number.POSITIVE_INFINITY, reason: 'running' };
      open.set(line.id, term);
      result.push(term);
    } else if (line.event === 'deselect' || line.event === 'killed') {
      if (line.event === 'deselect' && !current) throw new Error(`${line.id} deselected without a select (at ${line.at})`);
      if (current) {
        current.to = line.at;
        current.reason = line.event === 'killed' ? 'killed' : (line as LogLine).reason ?? '?';
        open.delete(line.id);
      }
    }
  }
  return result;
}

/** Throws, with the terms in the message, on overlapping leadership or tokens that do not increase. */
export function assertNoSplitBrain(all: Term[]): void {
  const sorted = [...all].sort((a, b) => a.from - b.from);
  const show = (): string => sorted.map((t) => `${t.id} token ${t.token} [${t.from}, ${t.to}] ${t.reason}`).join('\n  ');
  for (let i = 1; i < sorted.length; i++) {
    const before = sorted[i - 1]!;
    const after = sorted[i]!;
    if (after.from < before.to) throw new Error(`two leaders at once: ${before.id} and ${after.id}\n  ${show()}`);
    if (after.token <= before.token) throw new Error(`fencing token did not increase: ${before.token} then ${after.token}\n  ${show()}`);
  }
}
