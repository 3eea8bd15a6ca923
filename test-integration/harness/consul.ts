/**
 * A real Consul dev agent for tests, every port on a free loopback port (so
 * several can run at once), started and stopped by the test run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consulBinary } from './binaries.js';
import { freePorts } from './ports.js';
import { ServerProcess } from './server-process.js';

export interface ConsulOptions {
  /** Written to a config file passed with -config-file (ACLs, TLS). */
  config?: object;
  extraArgs?: string[];
}

export class ConsulAgent {
  readonly host = '127.0.0.1';
  readonly port: number;
  readonly process: ServerProcess;
  readonly #dir: string;

  private constructor(port: number, process: ServerProcess, dir: string) {
    this.port = port;
    this.process = process;
    this.#dir = dir;
  }

  get address(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** `consul://127.0.0.1:PORT` */
  get connectionString(): string {
    return `consul://127.0.0.1:${this.port}`;
  }

  static async start(options: ConsulOptions = {}): Promise<ConsulAgent> {
    const [http, server, serfLan, serfWan] = await freePorts(4);
    const dir = mkdtempSync(join(tmpdir(), 'vip-consul-'));
    const args = [
      'agent', '-dev',
      '-bind', '127.0.0.1',
      '-client', '127.0.0.1',
      '-http-port', String(http),
      '-server-port', String(server),
      '-serf-lan-port', String(serfLan),
      '-serf-wan-port', String(serfWan),
      '-dns-port', '-1',
      '-grpc-port', '-1',
      '-node', `vip-test-${http}`,
      '-log-level', 'warn',
    ];
    if (options.config) {
      const file = join(dir, 'config.json');
      writeFileSync(file, JSON.stringify(options.config));
      args.push('-config-file', file);
    }
    args.push(...(options.extraArgs ?? []));
    const agent = new ConsulAgent(http!, new ServerProcess(`consul :${http}`, consulBinary(), args), dir);
    try {
      agent.process.start();
      await agent.waitReady();
    } catch (error) {
      await agent.close();
      throw error;
    }
    return agent;
  }

  /** Ready when the agent knows a raft leader (a dev agent elects itself). */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    await this.process.waitUntil(async () => {
      const response = await fetch(`${this.address}/v1/status/leader`, { signal: AbortSignal.timeout(2000) });
      const leader = (await response.json()) as string;
      return typeof leader === 'string' && leader.length > 0;
    }, 'ready (no raft leader)', timeoutMs);
  }

  async stop(): Promise<void> {
    await this.process.stop('SIGTERM');
  }

  async kill(): Promise<void> {
    await this.process.stop('SIGKILL');
  }

  /** Kill and start again on the same ports. A dev agent keeps no data: every key and session is gone. */
  async restart(): Promise<void> {
    await this.kill();
    this.process.start();
    await this.waitReady();
  }

  async close(): Promise<void> {
    await this.kill();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

export function startConsul(options?: ConsulOptions): Promise<ConsulAgent> {
  return ConsulAgent.start(options);
}
