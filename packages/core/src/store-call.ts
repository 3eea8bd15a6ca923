/** How the state machine calls its store: every call bounded in time on the machine's own clock. */
import type { Clock } from './clock.js';
import { VipStoreError, VipTimeoutError } from './errors.js';

export interface StoreCall<T> {
  readonly clock: Clock;
  /** The election key, for error messages. */
  readonly path: string;
  readonly timeoutMs: number;
  readonly operation: VipStoreError['operation'];
  /** Sends the request; `signal` aborts when the call is given up. */
  readonly request: (signal: AbortSignal) => Promise<T>;
  /** Holds the call while it is in flight (stop() waits for these). */
  readonly pending: Set<Promise<unknown>>;
  /** Give up the call, too, when this aborts. */
  readonly follow?: AbortSignal | undefined;
}

/**
 * One store call, bounded by `timeoutMs` on `clock`: past it we stop waiting,
 * abort the call's signal and reject with a VipTimeoutError (the outcome is
 * unknown). Other failures reject with a VipStoreError naming the operation.
 */
export function callStore<T>({ clock, path, timeoutMs, operation, request, pending, follow }: StoreCall<T>): Promise<T> {
  const controller = new AbortController();
  const onFollowAbort = (): void => controller.abort(follow!.reason);
  follow?.addEventListener('abort', onFollowAbort, { once: true });
  let timer: ReturnType<Clock['setTimeout']> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(() => {
      const error = new VipTimeoutError(`${operation} on "${path}"`, timeoutMs);
      controller.abort(error);
      reject(error);
    }, timeoutMs);
  });
  const aborted = new Promise<never>((_, reject) => {
    controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true });
  });
  let attempt: Promise<T>;
  try {
    attempt = request(controller.signal);
  } catch (error) {
    attempt = Promise.reject(error);
  }
  const result = Promise.race([attempt, timeout, aborted])
    .catch((error: unknown) => {
      throw error instanceof VipTimeoutError ? error : new VipStoreError(operation, path, error);
    })
    .finally(() => {
      if (timer !== undefined) clock.clearTimeout(timer);
      follow?.removeEventListener('abort', onFollowAbort);
      pending.delete(result);
    });
  // The losers of the race may settle later; nobody waits for them.
  for (const loser of [attempt, timeout, aborted]) loser.catch(() => {});
  pending.add(result);
  return result;
}

/** Resolves after `ms` on `clock`, or at once when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
