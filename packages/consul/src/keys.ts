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
 * where they are given instead of being silently folded into another key.
 */
import { VipOptionError } from '@vip/core';

export function consulKey(where: string, key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) throw new VipOptionError(where, 'key', 'a non-empty string such as "my-job"', key);
  const name = key.replace(/^\/+/, '');
  const refuse = (why: string): never => {
    throw new VipOptionError(where, 'key', `a Consul key path (${why})`, key);
  };
  if (name === '') refuse('only slashes: nothing is left once the leading "/" is dropped');
  if (name.includes('//')) refuse('no empty segment "//": Consul\'s HTTP API folds it into "/"');
  if (name.split('/').some((segment) => segment === '.' || segment === '..')) {
    refuse('no "." or ".." segment: Consul\'s HTTP API resolves them away');
  }
  return name;
}
