/**
 * The operations endpoints: `/metrics` (Prometheus text), `/healthz` (200 or
 * 503 with a short reason) and `/leader` (JSON), for the elections of one
 * process. `vip run --http HOST:PORT` serves them for its election; an
 * application calls `serveHttp()` with its services or candidates.
 *
 * `/metrics` needs `prom-client` (an optional peer dependency); without it,
 * `serveHttp()` fails at once saying so, unless `metrics: false`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { VipOptionError, type Candidate, type CandidateHealth, type Holder } from '@vip/core';
import { checkKnownKeys } from '@vip/core/adapter';
import type { Service } from './service.js';

/** What the endpoints report on: a `Service` (from `vip()`) or a `Candidate`. */
export type Election = Service | Candidate;

/** A `VipMetrics` from `@vip/core/metrics`, structurally (so that this module's types do not need prom-client). */
export interface MetricsSource {
  readonly registry: { metrics(): Promise<string>; readonly contentType: string };
  track(election: Election): unknown;
  close(): void;
}

export interface HttpOptions {
  /** Where to listen: `HOST:PORT` (`127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`), or `:PORT` for every interface. Port 0 picks a free one. */
  listen: string;
  /**
   * Where `/metrics` comes from: a `VipMetrics` you made (the elections are
   * tracked in it), or `false` to serve no `/metrics`. Default: a new
   * `VipMetrics` on a registry of its own, closed with the server.
   */
  metrics?: MetricsSource | false;
  /** Seconds the store may stay unreachable before `/healthz` says 503; default each election's ttl. */
  unreachableAfter?: number;
  /** Name in error messages; default `serveHttp`. */
  where?: string;
}

export interface HttpServer {
  /** `http://host:port`, with the port actually bound. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Stop listening and close open connections; closes the metrics too when the server made them. */
  close(): Promise<void>;
}

/** An `--http` address that could not be served: malformed, in use, not on this machine, not permitted. */
export class VipHttpError extends Error {
  override readonly name = 'VipHttpError';
  /** The system's code (`EADDRINUSE`, `EADDRNOTAVAIL`, `EACCES`, `ENOTFOUND`), when the system refused. */
  readonly code: string | undefined;
  constructor(message: string, code?: string, cause?: unknown) {
    super(message, { cause });
    this.code = code;
  }
}

const EXAMPLE = 'HOST:PORT such as 127.0.0.1:9464, [::1]:9464, 0.0.0.0:9464 or :9464';

/** Parse `HOST:PORT` (host `''` for `:PORT`: every interface); throws a `VipOptionError` naming `option` on anything else. */
export function parseListenAddress(text: unknown, where = 'serveHttp', option = 'listen'): { host: string; port: number } {
  if (typeof text !== 'string') throw new VipOptionError(where, option, EXAMPLE, text);
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const host = match ? (match[1] ?? match[2]!) : undefined;
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    const hint = /^\d+$/.test(text.trim()) ? ` (a port alone is written :${text.trim()})` : '';
    throw new VipOptionError(where, option, `${EXAMPLE}${hint}`, text);
  }
  if (match[1] !== undefined && isIP(host!) !== 6) throw new VipOptionError(where, option, `an IPv6 address inside [ ] (${EXAMPLE})`, text);
  if (host !== '' && isIP(host!) === 0 && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/.test(host!)) {
    throw new VipOptionError(where, option, `${EXAMPLE}; "${host}" is not a host name or an IP address`, text);
  }
  // '' (from :PORT): every interface, IPv6 and IPv4 (Node's default, which falls back to 0.0.0.0 without IPv6).
  return { host: host!, port };
}

function candidateOf(election: Election): Candidate | undefined {
  return 'candidate' in election ? election.candidate : election;
}

/** What `/leader` answers for one election. Tokens are strings (they are 64-bit). */
export interface LeaderReport {
  readonly path: string;
  /** This process's candidate id. */
  readonly id: string | null;
  readonly leader: { readonly id: string; readonly value: string; readonly token: string } | null;
  /** Whether this process leads. */
  readonly leading: boolean;
  /** When the current leader's term began as this process knows it (ISO 8601), or `null`. */
  readonly since: string | null;
  /** Seconds to this leader's local deadline while it leads, else `null`. */
  readonly timeLeft: number | null;
  readonly healthy: boolean;
  readonly reason: string;
}

function holderOf(holder: Holder | null): LeaderReport['leader'] {
  return holder ? { id: holder.id, value: holder.value, token: holder.token.toString() } : null;
}

function healthOf(election: Election, unreachableAfter: number | undefined): CandidateHealth | undefined {
  const candidate = candidateOf(election);
  return candidate?.health(unreachableAfter === undefined ? {} : { unreachableAfter });
}

/** The `/leader` report of one election. */
export function leaderReport(election: Election, unreachableAfter?: number): LeaderReport {
  const candidate = candidateOf(election);
  const health = healthOf(election, unreachableAfter);
  const path = candidate?.path() ?? (election as Service).options.path;
  return {
    path,
    id: candidate?.localid() ?? (election as Service).options.id ?? null,
    leader: holderOf(health?.leader ?? null),
    leading: health?.leading ?? false,
    since: candidate?.leaderSince()?.toISOString() ?? null,
    timeLeft: health?.timeLeft == null ? null : Math.round(health.timeLeft * 1000) / 1000,
    healthy: health?.healthy ?? false,
    reason: health?.reason ?? 'not started',
  };
}

function checkElections(where: string, elections: Election | readonly Election[]): Election[] {
  const list = Array.isArray(elections) ? [...(elections as readonly Election[])] : [elections as Election];
  if (list.length === 0) throw new TypeError(`${where}: expected a Service or a Candidate, or a list of them (got an empty list)`);
  for (const election of list) {
    if (election === null || typeof election !== 'object' || !('candidate' in election || typeof (election as Candidate).health === 'function')) {
      throw new TypeError(`${where}: expected a Service (from vip()) or a Candidate (got ${election === null ? 'null' : typeof election})`);
    }
  }
  return list;
}

/** Every key of `HttpOptions` (a record, so the compiler notices a key missing here); any other is refused. */
const OPTION_KEYS = Object.keys({ listen: true, metrics: true, unreachableAfter: true, where: true } satisfies Record<keyof HttpOptions, true>);

/** Load `@vip/core/metrics` (and so prom-client), or say what to install. */
async function defaultMetrics(where: string, unreachableAfter: number | undefined): Promise<MetricsSource> {
  let module: typeof import('@vip/core/metrics');
  let promClient: typeof import('prom-client');
  try {
    promClient = await import('prom-client');
    module = await import('@vip/core/metrics');
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') {
      throw new VipHttpError(
        `${where}: /metrics needs prom-client, an optional peer dependency of @vip/vip: install it (npm install prom-client), or pass metrics: false to serve /healthz and /leader only`,
        undefined,
        error,
      );
    }
    throw error;
  }
  const registry = new promClient.Registry();
  return new module.VipMetrics(unreachableAfter === undefined ? { registry } : { registry, unreachableAfter });
}

/**
 * Serve `/metrics`, `/healthz` and `/leader` for `elections` on `options.listen`.
 * Resolves once listening; rejects with a `VipHttpError` (port in use, address
 * not on this machine, not permitted) or a `VipOptionError` (malformed address).
 *
 * - `/healthz`: 200 when every election is healthy (`Candidate.health()`: a
 *   follower whose watch is live, a leader with time left), else 503; the body
 *   says why in one line per election.
 * - `/leader`: `LeaderReport` as JSON for one election; for several, an array,
 *   or one with `?path=/the/key`.
 */
export async function serveHttp(elections: Election | readonly Election[], options: HttpOptions): Promise<HttpServer> {
  const where = options?.where ?? 'serveHttp';
  if (options === null || typeof options !== 'object') throw new VipOptionError(where, 'options', 'an object like { listen: "127.0.0.1:9464" }', options);
  checkKnownKeys(where, options, OPTION_KEYS);
  const list = checkElections(where, elections);
  const { host, port } = parseListenAddress(options.listen, where, 'listen');
  const { unreachableAfter } = options;
  if (unreachableAfter !== undefined && !(typeof unreachableAfter === 'number' && Number.isFinite(unreachableAfter) && unreachableAfter >= 0)) {
    throw new VipOptionError(where, 'unreachableAfter', "a number of seconds >= 0, or omitted for each election's ttl", unreachableAfter);
  }
  const given = options.metrics;
  if (given !== undefined && given !== false && (given === null || typeof given !== 'object' || typeof given.track !== 'function' || typeof given.registry?.metrics !== 'function')) {
    throw new VipOptionError(where, 'metrics', 'a VipMetrics from @vip/core/metrics, false, or omitted', given);
  }
  const ownsMetrics = given === undefined;
  const metrics = given === false ? undefined : (given ?? (await defaultMetrics(where, unreachableAfter)));
  for (const election of list) metrics?.track(election);

  const server = createServer((request, response) => {
    handle(request, response, list, metrics, unreachableAfter).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(`internal error: ${error instanceof Error ? error.message : String(error)}\n`);
    });
  });
  try {
    await listen(server, host, port);
  } catch (error) {
    if (ownsMetrics) metrics?.close();
    throw listenError(where, options.listen, host, port, error);
  }
  const address = server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  const boundHost = host === '' && typeof address === 'object' && address ? address.address : host;
  const shownHost = isIP(boundHost) === 6 ? `[${boundHost}]` : boundHost;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${bound}`,
    host: boundHost,
    port: bound,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).finally(() => {
        if (ownsMetrics) metrics?.close();
      });
      return closing;
    },
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(host === '' ? { port } : { host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function listenError(where: string, text: string, host: string, port: number, error: unknown): Error {
  const code = (error as { code?: string }).code;
  const reason =
    code === 'EADDRINUSE'
      ? `port ${port} on ${host === '' ? 'every interface' : host} is in use (another process listens there; choose another port, or :0 for any free one)`
      : code === 'EADDRNOTAVAIL'
        ? `${host} is not an address of this machine`
        : code === 'EACCES'
          ? `not permitted to listen on port ${port}${port < 1024 ? ' (ports below 1024 need privileges)' : ''}`
          : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
            ? `cannot resolve the host name ${host}`
            : error instanceof Error
              ? error.message
              : String(error);
  return new VipHttpError(`${where}: cannot listen on ${text}: ${reason}`, code, error);
}

async function handle(request: IncomingMessage, response: ServerResponse, elections: Election[], metrics: MetricsSource | undefined, unreachableAfter: number | undefined): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const send = (status: number, type: string, body: string): void => {
    response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    response.end(request.method === 'HEAD' ? undefined : body);
  };
  const text = 'text/plain; charset=utf-8';
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('allow', 'GET, HEAD');
    return send(405, text, `${request.method} is not served here: use GET\n`);
  }
  switch (url.pathname) {
    case '/metrics':
      if (!metrics) return send(404, text, 'no /metrics here: this server was started with metrics: false\n');
      return send(200, metrics.registry.contentType, await metrics.registry.metrics());
    case '/healthz': {
      const reports = elections.map((election) => leaderReport(election, unreachableAfter));
      const healthy = reports.every((report) => report.healthy);
      const lines = reports.map((report) => `${report.healthy ? 'ok' : 'unhealthy'}: ${report.path}: ${report.reason}`);
      return send(healthy ? 200 : 503, text, `${lines.join('\n')}\n`);
    }
    case '/leader': {
      const wanted = url.searchParams.get('path');
      const reports = elections.map((election) => leaderReport(election, unreachableAfter));
      const json = 'application/json; charset=utf-8';
      if (wanted !== null) {
        const report = reports.find((r) => r.path === wanted);
        if (!report) return send(404, json, `${JSON.stringify({ error: `no election on path ${wanted} here`, paths: reports.map((r) => r.path) })}\n`);
        return send(200, json, `${JSON.stringify(report)}\n`);
      }
      return send(200, json, `${JSON.stringify(reports.length === 1 ? reports[0] : reports)}\n`);
    }
    default:
      return send(404, text, `not found: ${url.pathname}; served here: /metrics, /healthz, /leader\n`);
  }
}
