/** Where the servers are: what scripts/install-servers.mjs resolved, in .servers/servers.json. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Servers {
  etcd: { bin?: string; etcdctl?: string; version?: string; endpoints?: string[] };
  consul: { bin?: string; version?: string; addr?: string };
}

export const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function servers(): Servers {
  const file = join(repositoryRoot, '.servers', 'servers.json');
  if (!existsSync(file)) {
    throw new Error(`${file} is missing: run "node scripts/install-servers.mjs" (npm test does it for you)`);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as Servers;
}

export function etcdBinary(): string {
  const bin = servers().etcd.bin;
  if (!bin) throw new Error('no etcd binary: run "node scripts/install-servers.mjs", or set VIP_ETCD_BIN');
  return bin;
}

export function consulBinary(): string {
  const bin = servers().consul.bin;
  if (!bin) throw new Error('no consul binary: run "node scripts/install-servers.mjs", or set VIP_CONSUL_BIN');
  return bin;
}
