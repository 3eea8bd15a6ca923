/**
 * The early warning: one mechanism, shared by the run-once service (abort the
 * leader function's signal) and the `vip run` supervisor (SIGTERM, then
 * SIGKILL, the guarded command), so that a leader's work has ended *before*
 * its local deadline, not when the candidate announces `deselect('expired')`
 * at the deadline itself (in real time always a little after it).
 *
 * On `select` and on every confirmed `refresh` a timer is armed at
 * `deadline - leadMs`. A refresh that lands in time moves the deadline and
 * re-arms it, so a healthy leader never hears the warning; it fires only when
 * the store has not confirmed the hold for that long. The candidate itself
 * still deselects at the deadline, as before.
 *
 * Once warned, the term's work is over. If the store then confirms the hold
 * after all (a refresh lands between the warning and the deadline), leadership
 * and work would part ways: the node would lead with nothing running. It
 * resigns instead (holdOff 0, so it campaigns again at once), and the next
 * term starts fresh work, with a new fencing token.
 */
import type { Candidate, Clock, TimerHandle } from '@vip/core';

/**
 * How long before the local deadline the leader's work is told to stop, in
 * milliseconds, for a candidate with its timings.
 *
 * A quarter of the safety margin: the margin is the part of the ttl the user
 * already set aside as "stop this early" (it absorbs a clock-rate error up to
 * safetyMargin/ttl), so a fraction of it scales with what they chose, and a
 * quarter (0.5 s at the default ttl of 10) is clearly before the deadline even
 * on a busy event loop while shortening a doomed term by very little. It is
 * capped at half the slack between the refresh interval and the deadline
 * (ttl - safetyMargin - refreshInterval), so that a healthy refresh, which lands
 * one refreshInterval plus a round trip after the last one, always moves the
 * deadline before the warning could fire. With safetyMargin 0 it is 0: the
 * work stops at the deadline, as the user asked for no margin.
 */
export function warningLeadMs(candidate: Pick<Candidate, 'ttl' | 'safetyMargin' | 'refreshInterval'>): number {
  const [ttl, safetyMargin, refreshInterval] = [candidate.ttl(), candidate.safetyMargin(), candidate.refreshInterval()];
  const slack = Math.max(0, ttl - safetyMargin - refreshInterval);
  return Math.min(safetyMargin / 4, slack / 2) * 1000;
}

export interface EarlyWarningOptions {
  /** The candidate's clock. */
  clock: Clock;
  /** Milliseconds before the local deadline to warn (see warningLeadMs). */
  leadMs: number;
  /** The term with `token` has `msLeft` ms to its local deadline and no refresh has moved it. */
  onWarn: (token: bigint, msLeft: number) => void;
}

/** Start warning before `candidate`'s deadlines; returns a function that stops it. */
export function warnBeforeDeadline(candidate: Candidate, { clock, leadMs, onWarn }: EarlyWarningOptions): () => void {
  let timer: TimerHandle | undefined;
  /** The term last warned about: its work is over even if the store confirms it later. */
  let warned: bigint | null = null;
  const clear = (): void => {
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
  };
  const arm = (): void => {
    clear();
    const token = candidate.token();
    const seconds = candidate.timeLeft();
    if (token === null || seconds === null) return;
    const left = seconds * 1000;
    if (token === warned) {
      // Confirmed after the warning: give this term up rather than lead with no work
      // (after the listener returns, so the candidate is not re-entered mid-event).
      queueMicrotask(() => {
        if (candidate.token() === token) void candidate.resign({ holdOff: 0 });
      });
      return;
    }
    timer = clock.setTimeout(() => {
      timer = undefined;
      if (candidate.token() !== token) return;
      const now = (candidate.timeLeft() ?? 0) * 1000;
      if (now > leadMs) return arm(); // the deadline moved without a refresh event: look again then
      warned = token;
      onWarn(token, now);
    }, left - leadMs);
  };
  candidate.on('select', arm);
  candidate.on('refresh', arm);
  candidate.on('deselect', clear);
  return () => {
    candidate.off('select', arm);
    candidate.off('refresh', arm);
    candidate.off('deselect', clear);
    clear();
  };
}
