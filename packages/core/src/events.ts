/** The events a Candidate emits, and why a term ends. */
import type { Holder } from './store.js';

/**
 * Why a leader stopped leading:
 * - `stopped`: `stop()` was called;
 * - `resigned`: `resign()` was called;
 * - `error`: `resign({ reason: 'error' })`, used when the leader's own work failed;
 * - `lost`: the store said the hold is gone (refresh answered `null`) or a newer holder appeared;
 * - `expired`: the local deadline passed without a confirmed refresh (store unreachable or slow).
 */
export type DeselectReason = 'stopped' | 'resigned' | 'error' | 'lost' | 'expired';

export interface CandidateEvents {
  /**
   * On every node, when the key's holder changes. `value` and `leaderId` are
   * `null` when the key became free (followers then campaign for it on their own).
   */
  change: [value: string | null, leaderId: string | null, holder: Holder | null];
  /**
   * On the node that became leader. `holder.token` is the fencing token of
   * this term; `signal` aborts (with a `VipDeselectedError`) when the term ends.
   */
  select: [value: string, leaderId: string, holder: Holder, signal: AbortSignal];
  /** On the node that stopped leading; always after a `select`. */
  deselect: [reason: DeselectReason];
  /** On the leader, after each confirmed refresh. */
  refresh: [value: string, leaderId: string];
  /**
   * On the leader, when the store has not confirmed the hold for a refresh
   * interval (a refresh failed, or is still unanswered when the next is due).
   * It still leads, on borrowed time until its deadline: stop taking new work.
   */
  suspend: [cause: Error];
  /** On a suspended leader, when a refresh is confirmed again. */
  resume: [];
  /** On any node, when a store round trip confirms the current leader. */
  ping: [value: string, leaderId: string];
  /**
   * Store errors and listener errors. They never stop the candidate: it backs
   * off and keeps campaigning. With no `error` listener they are dropped, never thrown.
   */
  error: [error: Error];
}
