/**
 * A real Consul dev agent for tests: every port set to a free loopback port (so
 * several agents can run at once), started and stopped by the test run.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consulBinary } from './binaries.js';
import { freePorts } from './ports.js';
import { trackDir, untrackDir } from './processes.js';
import { ServerProcess } from './server-process.js';

export interface ConsulOptions {
  /**
   * Agent configuration (JSON), written to a temp file passed with
   * -config-file: ACLs, TLS, or e.g. `{ session_ttl_min: '1s' }` to allow
   * session TTLs below the default minimum of 10 s.
   */
  configJson?: object;
  /** @deprecated use configJson */
  config?: object;
  /** Appended to the command line. */
  extraArgs?: string[];
  /**
   * Replaces the readiness check (GET /v1/status/leader over plain HTTP), for an
   * agent configured to serve HTTPS only.
   */
  ready?: (agent: ConsulAgent) => Promise<boolean>;
  /** How long start-up may take (default 30 s). */
  readyTimeoutMs?: number;
  /**
   * Run a real single server with a data directory instead of a -dev agent, so
   * that a restart keeps sessions, keys and raft indexes, as a production
   * Consul does. Takes a few seconds longer to start.
   */
  persistent?: boolean;
}

export interface ConsulPorts {
  http: number;
  server: number;
  serfLan: number;
  serfWan: number;
}

export class ConsulAgent {
  readonly host = '127.0.0.1';
  /** The HTTP API port. */
  readonly port: number;
  readonly ports: ConsulPorts;
  readonly process: ServerProcess;
  readonly dir: string;
  readonly #options: ConsulOptions;
  #closed = false;

  private constructor(ports: ConsulPorts, process: ServerProcess, dir: string, options: ConsulOptions) {
    this.port = ports.http;
    this.ports = ports;
    this.process = process;
    this.dir = dir;
    this.#options = options;
  }

  /** 'http://127.0.0.1:PORT' */
  get address(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** 'consul://127.0.0.1:PORT' (the project's connection strings). */
  get connectionString(): string {
    return `consul://127.0.0.1:${this.port}`;
  }

  static async start(options: ConsulOptions = {}): Promise<ConsulAgent> {
    const bin = consulBinary();
    const [http, server, serfLan, serfWan] = (await freePorts(4)) as [number, number, number, number];
    const dir = await mkdtemp(join(tmpdir(), 'vip-consul-'));
    trackDir(dir);
    const mode = options.persistent
      ? // A single server that bootstraps itself and keeps its state on disk.
        ['agent', '-server', '-bootstrap-expect', '1', '-data-dir', join(dir, 'data')]
      : // -dev: a single server that bootstraps itself and keeps everything in
        // memory, so a restart starts empty.
        ['agent', '-dev'];
    const args = [
      ...mode,
      '-bind', '127.0.0.1',
      '-client', '127.0.0.1',
      '-http-port', String(http),
      '-server-port', String(server),
      '-serf-lan-port', String(serfLan),
      '-serf-wan-port', String(serfWan),
      '-dns-port', '-1',
      '-grpc-port', '-1',
      // Node names must differ between agents that might ever gossip; the port makes them unique.
      '-node', `vip-test-${http}`, // ConsulAgent.node
      '-log-level', 'warn',
    ];
    const config = options.configJson ?? options.config;
    if (config) {
      const file = join(dir, 'config.json');
      await writeFile(file, JSON.stringify(config, null, 2));
      args.push('-config-file', file);
    }
    args.push(...(options.extraArgs ?? []));
    const agent = new ConsulAgent({ http, server, serfLan, serfWan }, new ServerProcess(`consul (:${http})`, bin, args), dir, options);
    try {
      agent.process.start();
      await agent.waitReady();
    } catch (error) {
      await agent.close();
      throw error;
    }
    return agent;
  }

  /**
   * Ready when the agent reports a raft leader and has registered its own node
   * in the catalog. Both are needed before a session can be created: a session
   * is bound to a node, and until the agent's first anti-entropy sync Consul
   * answers a session create with 500 "Missing node registration" (seen on a
   * loaded CI machine right after the leader appeared).
   */
  async waitReady(timeoutMs = this.#options.readyTimeoutMs ?? 30_000): Promise<void> {
    const check = this.#options.ready ?? ((agent: ConsulAgent) => isRegistered(agent, managementToken(this.#options)));
    await this.process.waitUntil(() => check(this), 'ready (a raft leader and its own node in the catalog)', timeoutMs);
  }

  /** The node name the agent runs under (unique per agent: it carries the HTTP port). */
  get node(): string {
    return `vip-test-${this.port}`;
  }

  /** SIGTERM and wait for the exit. A dev agent does not leave the cluster on SIGTERM; it just stops. */
  async stop(): Promise<void> {
    await this.process.stop('SIGTERM');
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<void> {
    await this.process.stop('SIGKILL');
  }

  /** SIGSTOP: the agent keeps its sockets open but answers nothing (see resume). */
  pause(): Promise<void> {
    return this.process.pause();
  }

  resume(): void {
    this.process.resume();
  }

  /** Start a stopped agent again on the same ports and config. */
  async start(): Promise<void> {
    this.process.start();
    await this.waitReady();
  }

  /**
   * Kill (SIGKILL by default) and start again on the same ports. A dev agent
   * keeps nothing: every key and session is gone, and raft indexes start over.
   */
  async restart(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.process.stop(signal);
    await this.start();
  }

  /** The agent's last output lines, for assertions and messages. */
  tail(lines?: number): string {
    return this.process.tail(lines);
  }

  /** Kill the agent and remove its temp dir. Safe to call twice. */
  async close(): Promise<void> {
    await this.kill();
    if (this.#closed) return;
    this.#closed = true;
    await rm(this.dir, { recursive: true, force: true, maxRetries: 5 });
    untrackDir(this.dir);
  }
}

/**
 * GET /v1/status/leader answers the leader's "ip:port", or "" while there is
 * none; GET /v1/catalog/node/NAME answers null until the node is registered.
 * With ACLs on (default deny) the catalog read needs a token that may read nodes.
 */
async function isRegistered(agent: ConsulAgent, token: string | undefined): Promise<boolean> {
  const headers: Record<string, string> = token ? { 'X-Consul-Token': token } : {};
  const leader = (await (await fetch(`${agent.address}/v1/status/leader`, { headers, signal: AbortSignal.timeout(2000) })).json()) as unknown;
  if (typeof leader !== 'string' || leader.length === 0) return false;
  const response = await fetch(`${agent.address}/v1/catalog/node/${agent.node}`, { headers, signal: AbortSignal.timeout(2000) });
  if (!response.ok) return false;
  const entry = (await response.json()) as { Node?: unknown } | null;
  return entry !== null && typeof entry === 'object' && entry.Node !== null && entry.Node !== undefined;
}

/** The management token of an ACL-enabled agent's config, if it names one. */
function managementToken(options: ConsulOptions): string | undefined {
  const acl = (options.configJson ?? options.config) as { acl?: { tokens?: { master?: string; initial_management?: string } } } | undefined;
  return acl?.acl?.tokens?.initial_management ?? acl?.acl?.tokens?.master;
}

export function startConsul(options?: ConsulOptions): Promise<ConsulAgent> {
  return ConsulAgent.start(options);
}
