import { randomBytes } from 'node:crypto';

/**
 * A fresh key prefix per test, like '/vip-test/<name>-<random>/', so tests on a
 * shared server never collide.
 */
export function uniquePrefix(name: string): string {
  return `/vip-test/${name.replace(/[^a-zA-Z0-9-]+/g, '-')}-${randomBytes(4).toString('hex')}/`;
}

/**
 * The same without the leading slash, for Consul: its HTTP API cleans the path,
 * so GET /v1/kv//a answers 301 Moved Permanently to /v1/kv/a.
 */
export function uniqueConsulPrefix(name: string): string {
  return uniquePrefix(name).slice(1);
}
