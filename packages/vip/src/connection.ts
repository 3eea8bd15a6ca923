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
import { redactConnectionString } from '@vip/core/adapter';

export type Backend = 'etcd' | 'consul' | 'memory';

export interface ParsedConnection {
  readonly backend: Backend;
  /**
   * The string handed to the adapter: the input itself (trimmed), except that
   * a bare `host:port` list becomes `etcd://…`. It may hold a password: never log it.
   */
  readonly address: string;
  /** The adapter package that serves it. */
  readonly packageName: string;
}

const EXPECTED =
  'etcd://host:port[,host:port...], etcds://... (user:password@ before the hosts for etcd auth), consul://host:port, ' +
  'consuls://..., memory://[name], or for etcd a bare host:port[,host:port...] or http(s)://host:port[,http(s)://host:port...]';

export class VipConnectionError extends TypeError {
  override readonly name = 'VipConnectionError';
}

/** The string as error messages and logs may show it (a password as `***`); the same rule as @vip/etcd's and @vip/consul's. */
export { redactConnectionString };

function refuse(input: unknown, why: string): never {
  const shown = typeof input === 'string' ? JSON.stringify(redactConnectionString(input)) : String(input);
  throw new VipConnectionError(`vip: store connection string ${shown} ${why}; expected ${EXPECTED}`);
}

/** host (a name, an IPv4 address or a bracketed IPv6 address) and an optional port. */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]@?#,]+)(?::(\d+))?$/;

function checkHost(input: string, host: string): void {
  // Not quoted when it holds an "@": that may be a password.
  if (host.includes('@')) refuse(input, 'has credentials in a host (give them once, first: etcd://user:password@host,host)');
  const match = HOST_PORT.exec(host);
  if (!match) refuse(input, host === '' ? 'has an empty host (two commas in a row, or a trailing comma?)' : `has a malformed host ${JSON.stringify(host)}`);
  const port = match[2];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
    refuse(input, `has port ${port} out of range 1-65535`);
  }
}

function checkHosts(input: string, list: string): void {
  if (list.length === 0) refuse(input, 'names no host');
  for (const host of list.split(',')) checkHost(input, host.trim());
}

/**
 * etcd's forms, as @vip/etcd reads them (packages/etcd/src/connection.ts):
 * `etcd(s)://[user:password@]h1,h2`, or a list whose members are each a bare
 * `host:port` or an `http(s)://host:port` URL. Checked here so that a mistake
 * is refused where the string is given; the adapter parses it again.
 */
function checkEtcdUrl(input: string, rest: string): void {
  const at = rest.lastIndexOf('@');
  if (at !== -1) {
    const userinfo = rest.slice(0, at);
    const colon = userinfo.indexOf(':');
    if (colon <= 0) refuse(input, 'has credentials without "user:password" before "@"');
    try {
      decodeURIComponent(userinfo);
    } catch {
      refuse(input, 'has credentials that are not valid percent-encoding');
    }
    rest = rest.slice(at + 1);
  }
  checkHosts(input, rest.replace(/\/+$/, ''));
}

function checkEtcdMembers(input: string, text: string): void {
  let secure: boolean | undefined;
  for (const entry of text.split(',')) {
    const member = entry.trim();
    const url = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is.exec(member);
    const name = url ? url[1]!.toLowerCase() : 'http'; // a bare member is plain http
    if (name !== 'http' && name !== 'https') refuse(input, `has a member with the scheme "${url![1]}://" (members are host:port or http(s)://host:port)`);
    if (secure !== undefined && secure !== (name === 'https')) refuse(input, 'mixes http and https members (etcd needs one protocol for all)');
    secure = name === 'https';
    checkHost(input, url ? url[2]!.replace(/\/+$/, '') : member);
  }
}

export function parseConnectionString(input: unknown): ParsedConnection {
  if (typeof input !== 'string' || input.trim().length === 0) refuse(input, 'is not a non-empty string');
  const text = input.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is.exec(text);
  const kind = scheme?.[1]!.toLowerCase();
  if (!scheme || kind === 'http' || kind === 'https') {
    // The seed modules took a bare etcd host list; etcdctl --endpoints takes one URL per member.
    checkEtcdMembers(input, text);
    return { backend: 'etcd', address: text.includes('://') ? text : `etcd://${text}`, packageName: '@vip/etcd' };
  }
  const rest = scheme[2]!;
  switch (kind) {
    case 'etcd':
    case 'etcds':
      checkEtcdUrl(input, rest);
      return { backend: 'etcd', address: text.replace(/\/+$/, ''), packageName: '@vip/etcd' };
    case 'consul':
    case 'consuls': {
      const host = rest.replace(/\/+$/, '');
      if (host.includes('@')) refuse(input, 'has credentials (a Consul ACL token goes in CONSUL_HTTP_TOKEN for the vip command, or { token } in new ConsulStore())');
      checkHosts(input, host);
      if (host.includes(',')) refuse(input, 'names several hosts (a Consul client talks to one agent)');
      return { backend: 'consul', address: `${kind}://${host}`, packageName: '@vip/consul' };
    }
    case 'memory':
      return { backend: 'memory', address: `memory://${rest.replace(/\/+$/, '')}`, packageName: '@vip/core' };
    default:
      return refuse(input, `has an unknown scheme "${kind}://"`);
  }
}

/** memory://NAME stores in one process share one backend, so they elect among themselves. */
const memoryBackends = new Map<string, MemoryBackend>();

interface AdapterModule {
  EtcdStore?: new (address: string) => LockStore;
  ConsulStore?: new (address: string | { host: string; port: number; secure: boolean; token: string }) => LockStore;
  parseConsulConnectionString?: (address: string) => { host: string; port: number; secure: boolean };
}

/** Import `name` at run time; `import()` of a variable keeps adapters out of the build graph. */
export async function importAdapter(name: string, input: string): Promise<AdapterModule> {
  try {
    return (await import(name)) as AdapterModule;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes(name)) {
      throw new Error(`vip: the store ${JSON.stringify(redactConnectionString(input))} needs the package ${name}; install it: npm install ${name}`, {
        cause: error,
      });
    }
    throw error;
  }
}

export interface OpenStoreOptions {
  /** A Consul ACL token, for consul:// and consuls:// (the `vip` command passes CONSUL_HTTP_TOKEN). */
  consulToken?: string;
}

/** Open the store a connection string names, loading its adapter package on demand. */
export async function openStore(input: string, options: OpenStoreOptions = {}): Promise<LockStore> {
  const parsed = parseConnectionString(input);
  if (parsed.backend === 'memory') {
    let backend = memoryBackends.get(parsed.address);
    if (!backend) memoryBackends.set(parsed.address, (backend = new MemoryBackend()));
    return new MemoryStore({ backend });
  }
  const module = await importAdapter(parsed.packageName, input);
  if (parsed.backend === 'etcd') {
    if (typeof module.EtcdStore !== 'function') throw oldAdapter(parsed.packageName, 'EtcdStore');
    return new module.EtcdStore(parsed.address);
  }
  if (typeof module.ConsulStore !== 'function') throw oldAdapter(parsed.packageName, 'ConsulStore');
  const { consulToken } = options;
  if (consulToken === undefined || consulToken === '') return new module.ConsulStore(parsed.address);
  if (typeof module.parseConsulConnectionString !== 'function') throw oldAdapter(parsed.packageName, 'parseConsulConnectionString');
  // The adapter takes a token only in its options object: the same address, read by its own parser.
  const { host, port, secure } = module.parseConsulConnectionString(parsed.address);
  return new module.ConsulStore({ host, port, secure, token: consulToken });
}

function oldAdapter(name: string, missing: string): Error {
  return new Error(`vip: ${name} does not export ${missing}; is it an old version?`);
}
