/**
 * What `vip run` and `vip watch` print when the store goes away: one line
 * when it becomes unreachable (the store and the cause in plain words), a
 * summary now and then while it stays so (never a line per retry), and one
 * line when it answers again. Every node prints the same, leader, follower
 * and watcher alike, since each hears of the store through its own calls.
 */
import { isTlsError } from '@vip/core/adapter';

/** Node's and the stores' clients' words for a failed connection, in an operator's words. */
const CAUSES: [RegExp, string][] = [
  [/ECONNREFUSED/, 'connection refused'],
  [/ENOTFOUND|EAI_AGAIN|getaddrinfo/, 'host name not found'],
  [/EHOSTUNREACH|ENETUNREACH|EHOSTDOWN|ENETDOWN/, 'host unreachable'],
  [/ETIMEDOUT|DEADLINE_EXCEEDED|VipTimeoutError|no answer within|did not answer within|timed out|timeout/i, 'timed out'],
  [/UNAUTHENTICATED|invalid auth token|authentication failed|ACL not found|invalid user ID or password/i, 'authentication refused'],
  [/PERMISSION_DENIED|Permission denied|permission denied/, 'permission denied'],
  [/ECONNRESET|socket hang up|EPIPE|ECONNABORTED/, 'connection reset'],
  [/Connection dropped|Connection closed|stream removed|GOAWAY/i, 'connection lost'],
  [/circuit breaker is open/, 'unreachable (the client paused its attempts after repeated failures)'],
  [/UNAVAILABLE|No connection established|5\d\d /, 'unavailable'],
];

/** An error and its causes, outermost first (at most 8: a guard against a cause that loops). */
function causes(error: unknown): unknown[] {
  const found: unknown[] = [];
  for (let e: unknown = error; e !== undefined && e !== null && found.length < 8; e = e instanceof Error ? e.cause : undefined) found.push(e);
  return found;
}

/** Whether the store's address is served by something else (VipWrongServerError anywhere in the cause chain). */
export function isWrongServer(error: unknown): boolean {
  return causes(error).some((e) => e instanceof Error && (e as { code?: unknown }).code === 'VIP_WRONG_SERVER');
}

/** Every message and code along an error's cause chain, as one text. */
function chain(error: unknown): string {
  return causes(error)
    .flatMap((e) => {
      if (!(e instanceof Error)) return [String(e)];
      const code = (e as { code?: unknown }).code;
      return typeof code === 'string' ? [`${e.name}: ${e.message}`, code] : [`${e.name}: ${e.message}`];
    })
    .join(' | ');
}

/**
 * The cause of a store failure in a few plain words, with the system's own
 * detail when there is one: `connection refused (connect ECONNREFUSED
 * 127.0.0.1:2379)`, `timed out`, `TLS handshake failed (…)`.
 */
export function plainCause(error: unknown): string {
  const text = chain(error);
  const last = causes(error).at(-1) ?? error;
  const innermost = last instanceof Error ? last.message : String(last);
  if (/does not look like/.test(text)) return /(this does not look like[^|]*)/.exec(text)?.[1]?.trim() ?? innermost;
  if (error instanceof Error && (isTlsError(error) || (error.cause instanceof Error && isTlsError(error.cause)))) {
    return `TLS handshake failed (${firstLine(innermost)})`;
  }
  const syscall = /\b(?:connect|getaddrinfo|read|write) E[A-Z]+(?: [^\s|]+[^\s|.])?/.exec(text)?.[0];
  for (const [pattern, words] of CAUSES) {
    if (pattern.test(text)) return syscall ? `${words} (${syscall})` : words === 'unavailable' ? `unavailable (${firstLine(innermost)})` : words;
  }
  return firstLine(innermost);
}

function firstLine(text: string): string {
  // gRPC's "14 UNAVAILABLE: " says nothing an operator can use; what follows may.
  return text.split('\n')[0]!.replace(/\s*Resolution note:\s*$/, '').replace(/^\d+ [A-Z_]+: /, '').trim() || 'unknown error';
}

export interface OutageOptions {
  /** The store as the user gave it, password hidden: `etcd://127.0.0.1:2379`. */
  store: string;
  log: (line: string) => void;
  /** Seconds between the summaries while the store stays unreachable (default 30). */
  summaryEvery?: number;
  /** The flag that names the store, for the hint when it was never reached. */
  flag?: string;
}

export class OutageReporter {
  readonly #options: Required<OutageOptions>;
  #reached = false;
  #downSince: number | undefined;
  #failures = 0;
  #last = '';
  #summary: ReturnType<typeof setInterval> | undefined;

  constructor(options: OutageOptions) {
    this.#options = { summaryEvery: 30, flag: '--store', ...options };
  }

  /** Whether the store is unreachable now, as far as this reporter heard. */
  get down(): boolean {
    return this.#downSince !== undefined;
  }

  /** A store call failed (each retry may say so: only the first of an outage is printed). */
  failed(error: unknown): void {
    const cause = plainCause(error);
    this.#failures++;
    this.#last = cause;
    if (this.#downSince !== undefined) return;
    this.#downSince = Date.now();
    const { store, log, flag } = this.#options;
    // A server that answers "no" is reachable: it is the credentials or certificates that are wrong.
    const refused = /^(authentication refused|permission denied|TLS handshake failed)/.test(cause);
    log(
      refused
        ? `store ${store} refused us: ${cause}; still trying`
        : this.#reached
          ? `store ${store} unreachable: ${cause}; still trying`
          : `cannot reach the store ${store}: ${cause}; still trying (check ${flag}, or $VIP_STORE)`,
    );
    this.#summary = setInterval(() => this.#summarize(), this.#options.summaryEvery * 1000);
    this.#summary.unref();
  }

  /** The store answered. */
  answered(): void {
    const wasDown = this.#downSince;
    const reachedBefore = this.#reached;
    this.#reached = true;
    if (wasDown === undefined) return;
    this.#end();
    const seconds = Math.round((Date.now() - wasDown) / 1000);
    this.#options.log(`store ${this.#options.store} ${reachedBefore ? 'reachable again' : 'reached'} after ${seconds} s`);
  }

  close(): void {
    this.#end();
  }

  #summarize(): void {
    if (this.#downSince === undefined) return;
    const seconds = Math.round((Date.now() - this.#downSince) / 1000);
    const attempts = this.#failures === 1 ? '1 failed attempt' : `${this.#failures} failed attempts`;
    this.#options.log(`store ${this.#options.store} still failing after ${seconds} s (${attempts}; last: ${this.#last})`);
  }

  #end(): void {
    clearInterval(this.#summary);
    this.#summary = undefined;
    this.#downSince = undefined;
    this.#failures = 0;
  }
}
