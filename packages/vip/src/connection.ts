/**
 * Connection strings: which store a string names, and loading its adapter on
 * demand, so that an application installs only the adapter it uses.
 *
 *   etcd://h1:2379,h2:2379   etcds://…   (etcd v3, TLS)      -> @vip/etcd
 *   consul://h:8500          consuls://… (Consul, HTTPS)     -> @vip/consul
 *   memory://[name]                     (one process only)  -> @vip/core MemoryStore
 *   h1:4001,h2:4002                     (etcd, as the seed modules took it)
 */
import { MemoryBackend, MemoryStore, type LockStore } from '@vip/core';

export type Backend = 'etcd' | 'consul' | 'memory';

export interface ParsedConnection {
  readonly backend: Backend;
  /** The string handed to the adapter (a bare host list becomes `etcd://…`). */
  readonly address: string;
  /** The adapter package that serves it. */
  readonly packageName: string;
}

const EXPECTED =
  'etcd://host:port[,host:port...], etcds://..., consul://host:port, consuls://..., memory://[name], or a bare host:port[,host:port...] for etcd';

export class VipConnectionError extends TypeError {
  override readonly name = 'VipConnectionError';
}

function refuse(input: unknown, why: string): never {
  const shown = typeof input === 'string' ? JSON.stringify(input) : String(input);
  throw new VipConnectionError(`vip: store connection string ${shown} ${why}; expected ${EXPECTED}`);
}

function checkHosts(input: string, list: string): void {
  if (list.length === 0) refuse(input, 'names no host');
  for (const host of list.split(',')) {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]@?#]+)(?::(\d+))?$/.exec(host);
    if (!match) refuse(input, `has a malformed host ${JSON.stringify(host)}`);
    const port = match[2];
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
      refuse(input, `has port ${port} out of range 1-65535`);
    }
  }
}

export function parseConnectionString(input: unknown): ParsedConnection {
  if (typeof input !== 'string' || input.trim().length === 0) refuse(input, 'is not a non-empty string');
  const text = input.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(text);
  if (!scheme) {
    // The seed modules took a bare etcd host list.
    checkHosts(input, text);
    return { backend: 'etcd', address: `etcd://${text}`, packageName: '@vip/etcd' };
  }
  const kind = scheme[1]!.toLowerCase();
  const rest = scheme[2]!.replace(/\/+$/, '');
  switch (kind) {
    case 'etcd':
    case 'etcds':
      checkHosts(input, rest);
      return { backend: 'etcd', address: `${kind}://${rest}`, packageName: '@vip/etcd' };
    case 'consul':
    case 'consuls':
      checkHosts(input, rest);
      if (rest.includes(',')) refuse(input, 'names several hosts (a Consul client talks to one agent)');
      return { backend: 'consul', address: `${kind}://${rest}`, packageName: '@vip/consul' };
    case 'memory':
      return { backend: 'memory', address: `memory://${rest}`, packageName: '@vip/core' };
    default:
      return refuse(input, `has an unknown scheme "${kind}://"`);
  }
}

/** memory://NAME stores in one process share one backend, so they elect among themselves. */
const memoryBackends = new Map<string, MemoryBackend>();

interface AdapterModule {
  EtcdStore?: new (address: string) => LockStore;
  ConsulStore?: new (address: string) => LockStore;
}

/** Import `name` at run time; `import()` of a variable keeps adapters out of the build graph. */
async function importAdapter(name: string, input: string): Promise<AdapterModule> {
  try {
    return (await import(name)) as AdapterModule;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes(name)) {
      throw new Error(`vip: the store ${JSON.stringify(input)} needs the package ${name}; install it: npm install ${name}`, {
        cause: error,
      });
    }
    throw error;
  }
}

/** Open the store a connection string names, loading its adapter package on demand. */
export async function openStore(input: string): Promise<LockStore> {
  const parsed = parseConnectionString(input);
  if (parsed.backend === 'memory') {
    let backend = memoryBackends.get(parsed.address);
    if (!backend) memoryBackends.set(parsed.address, (backend = new MemoryBackend()));
    return new MemoryStore({ backend });
  }
  const module = await importAdapter(parsed.packageName, input);
  const Store = parsed.backend === 'etcd' ? module.EtcdStore : module.ConsulStore;
  if (typeof Store !== 'function') {
    throw new Error(`vip: ${parsed.packageName} does not export ${parsed.backend === 'etcd' ? 'EtcdStore' : 'ConsulStore'}; is it an old version?`);
  }
  return new Store(parsed.address);
}
