import { randomBytes } from 'node:crypto';

/** A fresh key prefix per test, so tests on a shared server never collide. */
export function uniquePrefix(name: string): string {
  return `/vip-test/${name.replace(/[^a-zA-Z0-9-]+/g, '-')}-${randomBytes(4).toString('hex')}/`;
}
