import type { EventEmitter } from 'node:events';
import { describe } from './errors.js';

/**
 * Calls every listener of `event` on `emitter`, each on its own: a listener
 * that throws, or returns a promise that rejects, does not keep the later
 * listeners from running. Its failure is emitted on `error` (the same way, so
 * one throwing `error` listener does not silence the others) as an Error that
 * names the event, with the failure as its `cause`. A failing `error` listener
 * has no one left to tell and is ignored, and an `error` with no listener is
 * dropped: unlike `EventEmitter#emit`, this never throws.
 *
 * `Candidate` emits every event this way, and so does `@vip/vip`'s service,
 * which re-emits the candidate's events to its own listeners.
 */
export function emitIsolated(emitter: EventEmitter, event: string, args: readonly unknown[]): void {
  const listeners = emitter.rawListeners(event) as ((...a: unknown[]) => unknown)[];
  for (const listener of listeners) {
    try {
      const result = listener.apply(emitter, args as unknown[]);
      if (result && typeof (result as Promise<unknown>).then === 'function') {
        (result as Promise<unknown>).then(undefined, (error: unknown) => listenerFailed(emitter, event, error));
      }
    } catch (error) {
      listenerFailed(emitter, event, error);
    }
  }
}

function listenerFailed(emitter: EventEmitter, event: string, error: unknown): void {
  if (event === 'error') return;
  const message = error instanceof Error ? error.message : describe(error);
  emitIsolated(emitter, 'error', [new Error(`a "${event}" listener threw: ${message}`, { cause: error })]);
}
