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
      '-node', `vip-test-${http}`,
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

  /** Ready when the agent reports a raft leader; a dev agent elects itself within a second or so. */
  async waitReady(timeoutMs = this.#options.readyTimeoutMs ?? 30_000): Promise<void> {
    const check = this.#options.ready ?? hasLeader;
    await this.process.waitUntil(() => check(this), 'ready (no raft leader)', timeoutMs);
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

/** GET /v1/status/leader answers the leader's "ip:port", or "" while there is none. */
async function hasLeader(agent: ConsulAgent): Promise<boolean> {
  const response = await fetch(`${agent.address}/v1/status/leader`, { signal: AbortSignal.timeout(2000) });
  const leader = (await response.json()) as unknown;
  return typeof leader === 'string' && leader.length > 0;
}

export function startConsul(options?: ConsulOptions): Promise<ConsulAgent> {
  return ConsulAgent.start(options);
}
