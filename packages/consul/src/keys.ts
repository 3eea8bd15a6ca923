/**
 * How a vip path names a Consul key.
 *
 * Consul keys have no leading slash: the HTTP API takes the key from the URL
 * path (`/v1/kv/<key>`), so `/my-job` is stored as `my-job`, and `/my-job` and
 * `my-job` name the same key. Every other character is kept: `a` and `a/b` are
 * two independent keys.
 *
 * Consul's HTTP server cleans URL paths before routing them (Go's ServeMux
 * answers `/v1/kv/a//b` and `/v1/kv/a/./b` with a 301 to `/v1/kv/a/b`). A key
 * written through `/v1/txn` (where the key travels in the body) could then not
 * be read back through `/v1/kv/` under the same name, so such keys are refused
 * where they are given instead of being silently folded into another key. So
 * are keys with a lone surrogate (no UTF-8 form: Consul stores U+FFFD instead)
 * and keys that GET /v1/kv/ refuses (UNPRINTABLE below).
 */
import { checkNonEmptyString, VipOptionError } from '@vip/core/adapter';

/**
 * Characters Consul's HTTP API refuses in a URL path: Go's `unicode.IsPrint`
 * is false for them (it allows letters, marks, numbers, punctuation, symbols
 * and the ASCII space), and the agent answers 400 Bad Request, while
 * `/v1/txn` still writes such a key. Judged with JavaScript's Unicode tables:
 * a character assigned in a newer Unicode version than the agent's Go build
 * knows passes here and is refused by the agent at the first call (consul-http.ts).
 */
const UNPRINTABLE = /[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/u;

export function consulKey(where: string, key: unknown): string {
  checkNonEmptyString(where, 'key', key, 'a non-empty string such as "my-job"');
  const rule = consulKeyRule(key);
  if (rule !== undefined) throw new VipOptionError(where, 'key', rule, key);
  return key.replace(/^\/+/, '');
}

/** What a Consul key must be, when the non-empty string `key` cannot name one exactly; else `undefined`. */
export function consulKeyRule(key: string): string | undefined {
  const name = key.replace(/^\/+/, '');
  const rule = (why: string): string => `a Consul key path (${why})`;
  if (name === '') return rule('only slashes: nothing is left once the leading "/" is dropped');
  if (name.includes('//')) return rule('no empty segment "//": Consul\'s HTTP API folds it into "/"');
  if (name.split('/').some((segment) => segment === '.' || segment === '..')) {
    return rule('no "." or ".." segment: Consul\'s HTTP API resolves them away');
  }
  // A lone surrogate has no UTF-8 form: Consul would store U+FFFD, another key's name.
  if (/\p{Surrogate}/u.test(name)) return rule('well-formed Unicode: a lone surrogate would be stored as U+FFFD, the name of another key');
  if (UNPRINTABLE.test(name)) {
    return rule('printable characters only: Consul\'s HTTP API answers 400 Bad Request for a key with a control, format, private-use or unassigned character or a space other than " "');
  }
  return undefined;
}
