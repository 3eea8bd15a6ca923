/**
 * How to reach Consul: connection strings and the options object.
 *
 *   consul://127.0.0.1:8500     http  (port 8500 if omitted)
 *   consuls://consul.lan:8501   https with the system's trusted roots (port 8501
 *                               if omitted); pass an options object for your own
 *                               CA or a client certificate
 *   http://h:8500, https://h    the same, as CONSUL_HTTP_ADDR is usually written
 *
 * A Consul client talks to one agent (usually the local one), so a connection
 * string names one host. A bare `host:port` is refused: to vip it means etcd.
 */
import { lookup as dnsLookup } from 'node:dns';
import { isIPv6 } from 'node:net';
import type { LookupFunction } from 'node:net';
import { redactConnectionString, VipOptionError } from '@vip/core/adapter';

export interface ConsulAddress {
  readonly host: string;
  readonly port: number;
  readonly secure: boolean;
}

/** The options object form of `new ConsulStore({ ... })`. */
export interface ConsulConnectionOptions {
  /** Default "127.0.0.1". */
  host?: string;
  /** Default 8500, or 8501 with `secure`. */
  port?: number;
  /** HTTPS. Default false. */
  secure?: boolean;
  /** ACL token, sent as X-Consul-Token on every request. Needs `session:write` and `key:write` on the election keys. */
  token?: string;
  /** TLS: CA certificate(s) to trust instead of the system's roots (PEM). */
  ca?: string | Buffer | (string | Buffer)[];
  /** TLS: client certificate (PEM), for agents with `verify_incoming`. */
  cert?: string | Buffer;
  /** TLS: the client certificate's private key (PEM). */
  key?: string | Buffer;
}

const EXPECTED = 'consul://host:port or consuls://host:port';
const CONNECTION_OPTIONS: readonly (keyof ConsulConnectionOptions)[] = ['host', 'port', 'secure', 'token', 'ca', 'cert', 'key'];
const WHERE = 'ConsulStore';

/** Parse a connection string; throws a TypeError that quotes it and says what was expected. */
export function parseConsulConnectionString(input: string): ConsulAddress {
  const refuse = (why: string): never => {
    throw new TypeError(`${WHERE}: connection string ${JSON.stringify(redact(input))} ${why}; expected ${EXPECTED}`);
  };
  if (typeof input !== 'string') refuse('is not a string');
  const text = input.trim();
  if (text === '') refuse('is empty');
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is.exec(text);
  if (!match) {
    return refuse(`has no scheme (a bare host:port means etcd to vip; for Consul write "consul://${text}")`);
  }
  const scheme = match[1]!.toLowerCase();
  if (!['consul', 'consuls', 'http', 'https'].includes(scheme)) refuse(`has the scheme "${match[1]}://", which is not Consul's`);
  const rest = match[2]!.replace(/\/+$/, '');
  if (rest.includes(',')) refuse('names several hosts (a Consul client talks to one agent, usually the local one)');
  if (rest.includes('@')) refuse('has credentials (pass an ACL token as { token } in an options object)');
  const host = /^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]@?#]+)(?::(\d{1,5}))?$/.exec(rest);
  if (!host) return refuse(rest === '' ? 'has no host' : `has a malformed host ${JSON.stringify(rest)}`);
  const secure = scheme === 'consuls' || scheme === 'https';
  const port = host[2] === undefined ? (secure ? 8501 : 8500) : Number(host[2]);
  if (port < 1 || port > 65535) refuse(`has port ${port} out of range 1-65535`);
  return { host: host[1]!.replace(/^\[|\]$/g, ''), port, secure };
}

/** The npm client's constructor options (TLS options are passed through to https.request). */
export interface ConsulClientOptions {
  host: string;
  lookup?: LookupFunction;
  port: number;
  secure: boolean;
  defaults?: { token: string };
  ca?: string | Buffer | (string | Buffer)[];
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** Options for the npm client from a connection string or an options object; names the option it refuses. */
export function consulClientOptions(connection: string | ConsulConnectionOptions): ConsulClientOptions {
  if (typeof connection === 'string') {
    const { host, port, secure } = parseConsulConnectionString(connection);
    return { ...(isIPv6(host) ? ipv6(host) : { host }), port, secure };
  }
  if (connection === null || typeof connection !== 'object' || Array.isArray(connection)) {
    throw new TypeError(
      `${WHERE}: expected a connection string like "consul://127.0.0.1:8500", an options object { host, port, secure, token, ca, cert, key } or a Consul client (got ${describe(connection)})`,
    );
  }
  // A typo ({ hostname }) must not quietly connect to 127.0.0.1 without the caller's token or TLS.
  refuseUnknownOptions(WHERE, connection, CONNECTION_OPTIONS, 'connection options');
  const { host = '127.0.0.1', secure = false, token, ca, cert, key } = connection;
  if (typeof host !== 'string' || host === '' || /[\s/?#@]/.test(host)) throw new VipOptionError(WHERE, 'host', 'a host name or IP address', host);
  if (typeof secure !== 'boolean') throw new VipOptionError(WHERE, 'secure', 'true or false', secure);
  const port = connection.port ?? (secure ? 8501 : 8500);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new VipOptionError(WHERE, 'port', 'an integer from 1 to 65535', port);
  }
  if (token !== undefined && (typeof token !== 'string' || token === '')) throw new VipOptionError(WHERE, 'token', 'a non-empty ACL token string', token);
  const pem = (name: string, value: unknown, list: boolean): void => {
    const one = (item: unknown): boolean => typeof item === 'string' || Buffer.isBuffer(item);
    if (value !== undefined && !(one(value) || (list && Array.isArray(value) && value.every(one)))) {
      throw new VipOptionError(WHERE, name, list ? 'PEM text, a Buffer, or an array of them' : 'PEM text or a Buffer', value);
    }
  };
  pem('ca', ca, true);
  pem('cert', cert, false);
  pem('key', key, false);
  if ((cert === undefined) !== (key === undefined)) {
    throw new VipOptionError(WHERE, cert === undefined ? 'cert' : 'key', 'given together with its pair (cert and key)', undefined);
  }
  if (!secure && (ca !== undefined || cert !== undefined)) {
    throw new VipOptionError(WHERE, 'secure', 'true when ca, cert or key is given (they only apply to HTTPS)', secure);
  }
  const bare = host.replace(/^\[|\]$/g, '');
  return {
    ...(isIPv6(bare) ? ipv6(bare) : { host: bare }),
    port,
    secure,
    ...(token !== undefined ? { defaults: { token } } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
  };
}

/** Throws a VipOptionError naming the first own key of `options` that is not in `known`, and listing those that are. */
export function refuseUnknownOptions(where: string, options: object, known: readonly string[], what: string): void {
  const unknown = Object.keys(options).find((name) => !known.includes(name));
  if (unknown === undefined) return;
  const error = new VipOptionError(where, unknown, `one of the ${what}`, (options as Record<string, unknown>)[unknown]);
  error.message = `${where}: unknown option "${unknown}"; the ${what} are ${known.join(', ')}`;
  throw error;
}

/** Error messages quote the connection string, never a password in it (core's redactConnectionString). */
function redact(input: unknown): unknown {
  return typeof input === 'string' ? redactConnectionString(input) : input;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/**
 * The npm client builds its URL as `http://${host}:${port}`, so an IPv6
 * address needs brackets there; papi then hands the bracketed hostname to
 * http.request, whose DNS lookup of "[::1]" fails (ENOTFOUND). A lookup that
 * drops the brackets makes IPv6 literals work.
 */
function ipv6(address: string): { host: string; lookup: LookupFunction } {
  const lookup = ((hostname: string, options: object, callback: never) =>
    dnsLookup(hostname.replace(/^\[|\]$/g, ''), options, callback)) as unknown as LookupFunction;
  return { host: `[${address}]`, lookup };
}
