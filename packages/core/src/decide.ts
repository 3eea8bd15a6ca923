/**
 * What a follower does next: a pure function of what it has observed and a few
 * local facts, so that the whole follower policy is one table (decide.test.ts)
 * instead of branches spread over the state machine. The machine in
 * candidate.ts only carries the step out, one store call at a time.
 */
import { sameTerm, type Holder } from './store.js';

export interface FollowerView {
  /** The key's holder as last observed (watch or own call); `undefined` before the first read. */
  readonly holder: Holder | null | undefined;
  /** This candidate's id. */
  readonly self: string;
  /** The last stale hold of ours that was released (never released twice). */
  readonly released: Holder | null;
  /** Monotonic ms before which we must not campaign (a `resign()` hold-off). */
  readonly holdOffUntil: number;
  /** Monotonic ms now. */
  readonly now: number;
}

export type FollowerStep =
  /** The key is free: try to take it (compare-and-swap null -> us). */
  | { readonly do: 'acquire' }
  /**
   * The key bears our id but is not a term we lead (a term whose deadline
   * passed, or a compare-and-swap whose answer never came): give it back, so
   * the election can go on. The store only releases a hold it wrote itself.
   */
  | { readonly do: 'release'; readonly holder: Holder }
  /** The key is free but we resigned: look again at `until`. */
  | { readonly do: 'wait'; readonly until: number }
  /** Somebody else leads, or nothing is known yet: follow. */
  | { readonly do: 'nothing' };

export function decide(view: FollowerView): FollowerStep {
  const { holder } = view;
  if (holder === undefined) return { do: 'nothing' };
  if (holder === null) return view.now < view.holdOffUntil ? { do: 'wait', until: view.holdOffUntil } : { do: 'acquire' };
  if (holder.id === view.self && !sameTerm(holder, view.released)) return { do: 'release', holder };
  return { do: 'nothing' };
}
