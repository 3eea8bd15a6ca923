/**
 * The `trouble` callback of `LockStore.watch`, called as an adapter should
 * call it, so that every adapter tells its caller the same way.
 */
import type { WatchTrouble } from '../store.js';

/**
 * Wraps the `trouble` a watch was given (or none): `report(error)` for each
 * failure the watch retries on its own; `report(null)` once the server
 * answers again, passed on only after trouble (an answer with none before it
 * says nothing); nothing at all once `ended` aborts (a client may still emit
 * for a watch that is over); and a callback that throws is the caller's
 * problem, never the watch's.
 */
export function troubleReporter(trouble: WatchTrouble | undefined, ended: AbortSignal): (error: Error | null) => void {
  let troubled = false;
  return (error) => {
    if (ended.aborted || (error === null && !troubled)) return;
    troubled = error !== null;
    try {
      trouble?.(error);
    } catch {
      // the caller's problem, not the watch's
    }
  };
}
