/**
 * Connection strings for etcd, in the forms vip accepts everywhere:
 *
 *   127.0.0.1:4001,127.0.0.1:4002        bare hosts, as the seed modules took them: http
 *   etcd://h1:2379,h2:2379               http
 *   etcds://h1:2379,h2:2379              https (TLS with the system's trusted roots;
 *                                        pass an options object for your own CA or
 *                                        a client certificate)
 *   etcds://user:password@h1:2379,h2     etcd user/password auth (percent-encoded)
 *   http://h1:2379,http://h2:2379        one URL per member, as etcdctl --endpoints takes them
 *
 * A host without a port gets etcd's client port, 2379.
 */

import { redactConnectionString } from '@vip/core/adapter';

/** What a connection string says: the `hosts` and `auth` of etcd3's `IOptions`. */
export interface EtcdConnection {
  /** One URL per member, `http://host:port` or `https://host:port`. */
  readonly hosts: string[];
  readonly auth?: { readonly username: string; readonly password: string };
}

const EXPECTED = 'etcd://host:port[,host:port], etcds://host:port[,host:port] or host:port[,host:port]';
const DEFAULT_PORT = 2379;
/** host (a name, an IPv4 address or a bracketed IPv6 address) and an optional port. */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]@?#,]+)(?::(\d{1,5}))?$/;

/** Parse a connection string; throws a TypeError that quotes it and says what was expected. */
export function parseEtcdConnectionString(input: string): EtcdConnection {
  const refuse = (why: string): never => {
    throw new TypeError(`EtcdStore: connection string ${JSON.stringify(redact(input))} ${why}; expected ${EXPECTED}`);
  };
  if (typeof input !== 'string') refuse('is not a string');
  const text = input.trim();
  if (text === '') refuse('is empty');

  const scheme = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is.exec(text);
  if (scheme && /^etcds?$/i.test(scheme[1]!)) {
    const secure = scheme[1]!.toLowerCase() === 'etcds';
    let rest = scheme[2]!;
    let auth: EtcdConnection['auth'];
    const at = rest.lastIndexOf('@');
    if (at !== -1) {
      auth = parseCredentials(rest.slice(0, at), refuse);
      rest = rest.slice(at + 1);
    }
    rest = rest.replace(/\/+$/, '');
    if (rest === '') refuse('has no hosts');
    const hosts = rest.split(',').map((entry) => hostUrl(entry.trim(), secure, refuse));
    return auth ? { hosts, auth } : { hosts };
  }
  // Bare hosts, or one http(s) URL per member.
  return { hosts: parseHostList(text.split(','), refuse) };
}

/**
 * A list of members, each `host:port` or `http(s)://host:port`, as given in an
 * array to `new EtcdStore([...])`. All members must use the same protocol.
 */
export function parseEtcdHosts(list: readonly string[]): string[] {
  const shown = JSON.stringify(list.map(redact));
  const refuse = (why: string): never => {
    throw new TypeError(`EtcdStore: hosts ${shown} ${why}; expected an array of "host:port" or "http(s)://host:port" strings`);
  };
  if (list.length === 0) refuse('is empty');
  return parseHostList(list, refuse);
}

function parseHostList(entries: readonly unknown[], refuse: (why: string) => never): string[] {
  const hosts = entries.map((entry) => {
    if (typeof entry !== 'string') return refuse(`has an entry that is not a string (${typeof entry})`);
    const text = entry.trim();
    const url = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is.exec(text);
    if (!url) return hostUrl(text, false, refuse);
    const name = url[1]!.toLowerCase();
    if (name !== 'http' && name !== 'https') {
      return refuse(`has the scheme "${url[1]}://" in ${JSON.stringify(redact(text))}, which is not etcd's (etcd://, etcds://, http://, https://)`);
    }
    return hostUrl(url[2]!.replace(/\/+$/, ''), name === 'https', refuse);
  });
  const secure = hosts.filter((host) => host.startsWith('https:')).length;
  if (secure !== 0 && secure !== hosts.length) refuse('mixes http and https members (etcd3 needs one protocol for all)');
  return hosts;
}

function hostUrl(entry: string, secure: boolean, refuse: (why: string) => never): string {
  if (entry === '') return refuse('has an empty host (two commas in a row, or a trailing comma?)');
  // Not quoted: it may hold a password.
  if (entry.includes('@')) return refuse('has credentials in a member (give them once, first: etcd://user:password@host,host)');
  const match = HOST_PORT.exec(entry);
  if (!match) return refuse(`has a malformed host ${JSON.stringify(entry)}`);
  const port = match[2] === undefined ? DEFAULT_PORT : Number(match[2]);
  if (port < 1 || port > 65535) return refuse(`has port ${port} out of range 1-65535`);
  return `${secure ? 'https' : 'http'}://${match[1]}:${port}`;
}

/** Error messages quote the connection string, never a password in it (core's redactConnectionString). */
function redact(input: unknown): unknown {
  return typeof input === 'string' ? redactConnectionString(input) : input;
}

function parseCredentials(userinfo: string, refuse: (why: string) => never): { username: string; password: string } {
  const colon = userinfo.indexOf(':');
  if (colon <= 0) return refuse('has credentials without "user:password" before "@"');
  try {
    return { username: decodeURIComponent(userinfo.slice(0, colon)), password: decodeURIComponent(userinfo.slice(colon + 1)) };
  } catch {
    return refuse('has credentials that are not valid percent-encoding');
  }
}
