/**
 * Where the servers are: what scripts/install-servers.mjs resolved and wrote to
 * .servers/servers.json. This is the only place the harness learns about them.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface EtcdServers {
  /** The user's running etcd (VIP_ETCD_ENDPOINTS at install time). */
  endpoints?: string[];
  bin?: string;
  etcdctl?: string | null;
  version?: string;
  from?: string;
}

export interface ConsulServers {
  /** The user's running Consul agent (VIP_CONSUL_ADDR at install time). */
  addr?: string;
  bin?: string;
  version?: string;
  from?: string;
}

export interface Servers {
  etcd: EtcdServers;
  consul: ConsulServers;
}

const INSTALL = 'run "node scripts/install-servers.mjs" (npm test does it for you)';

/** The monorepo root, found upwards from here: this file also runs compiled from test-integration/dist/harness. */
export const repositoryRoot: string = (() => {
  let folder = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(folder, 'pnpm-workspace.yaml'))) {
    const parent = dirname(folder);
    if (parent === folder) throw new Error(`no pnpm-workspace.yaml above ${fileURLToPath(import.meta.url)}`);
    folder = parent;
  }
  return folder;
})();

export const serversFile = join(repositoryRoot, '.servers', 'servers.json');

export function servers(): Servers {
  if (!existsSync(serversFile)) throw new Error(`${serversFile} is missing: ${INSTALL}`);
  const parsed = JSON.parse(readFileSync(serversFile, 'utf8')) as Partial<Servers>;
  return { etcd: parsed.etcd ?? {}, consul: parsed.consul ?? {} };
}

function runnable(path: string | null | undefined, what: string, variable: string): string {
  if (!path) throw new Error(`no ${what} binary in ${serversFile}: ${INSTALL}, or set ${variable} and run it`);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`${what} binary ${path} (from ${serversFile}) is gone or not executable: ${INSTALL}`);
  }
  return path;
}

export function etcdBinary(): string {
  return runnable(servers().etcd.bin, 'etcd', 'VIP_ETCD_BIN');
}

export function etcdctlBinary(): string {
  return runnable(servers().etcd.etcdctl, 'etcdctl', 'VIP_ETCDCTL_BIN');
}

export function consulBinary(): string {
  return runnable(servers().consul.bin, 'consul', 'VIP_CONSUL_BIN');
}
