/**
 * Real etcd for tests: one member or a 3-member cluster on free loopback
 * ports, data in a temp dir, started and stopped by the test run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdBinary } from './binaries.js';
import { freePorts } from './ports.js';
import { ServerProcess } from './server-process.js';

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly clientPort: number;
  readonly process: ServerProcess;
}

export interface EtcdOptions {
  members?: 1 | 3;
  /** Serve the v2 API too (for the seed module `locked` in benchmarks). */
  enableV2?: boolean;
  extraArgs?: string[];
}

export class EtcdCluster {
  readonly members: EtcdMember[];
  readonly #dataDir: string;

  private constructor(members: EtcdMember[], dataDir: string) {
    this.members = members;
    this.#dataDir = dataDir;
  }

  /** Client URLs of every member, e.g. ['http://127.0.0.1:40123']. */
  get endpoints(): string[] {
    return this.members.map((member) => member.clientUrl);
  }

  /** `etcd://127.0.0.1:P1,127.0.0.1:P2,...` */
  get connectionString(): string {
    return `etcd://${this.members.map((member) => `127.0.0.1:${member.clientPort}`).join(',')}`;
  }

  static async start(options: EtcdOptions = {}): Promise<EtcdCluster> {
    const count = options.members ?? 1;
    const ports = await freePorts(count * 2);
    const dataDir = mkdtempSync(join(tmpdir(), 'vip-etcd-'));
    const peers = Array.from({ length: count }, (_, i) => `n${i}=http://127.0.0.1:${ports[count + i]}`).join(',');
    const bin = etcdBinary();
    const members = Array.from({ length: count }, (_, i): EtcdMember => {
      const clientUrl = `http://127.0.0.1:${ports[i]}`;
      const peerUrl = `http://127.0.0.1:${ports[count + i]}`;
      const args = [
        '--name', `n${i}`,
        '--data-dir', join(dataDir, `n${i}`),
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', peers,
        '--initial-cluster-token', `vip-${ports[0]}`,
        '--initial-cluster-state', 'new',
        '--log-level', 'warn',
        ...(options.enableV2 ? ['--enable-v2'] : []),
        ...(options.extraArgs ?? []),
      ];
      return { name: `n${i}`, clientUrl, clientPort: ports[i]!, process: new ServerProcess(`etcd n${i}`, bin, args) };
    });
    const cluster = new EtcdCluster(members, dataDir);
    try {
      for (const member of members) member.process.start();
      await cluster.waitHealthy();
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  /** Wait until every running member reports healthy (it has a leader and quorum). */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await Promise.all(
      this.members
        .filter((member) => member.process.running)
        .map((member) => member.process.waitUntil(() => healthy(member.clientUrl), 'healthy', timeoutMs)),
    );
  }

  async stopMember(index: number): Promise<void> {
    await this.#member(index).process.stop('SIGTERM');
  }

  async killMember(index: number): Promise<void> {
    await this.#member(index).process.stop('SIGKILL');
  }

  /** Start a stopped member again, same name, ports and data: it rejoins the cluster. */
  async startMember(index: number, waitHealthy = true): Promise<void> {
    const member = this.#member(index);
    member.process.start();
    if (waitHealthy) await member.process.waitUntil(() => healthy(member.clientUrl), 'healthy again');
  }

  /** Stop every member (SIGKILL) and start them again with their data. */
  async restart(): Promise<void> {
    await Promise.all(this.members.map((member) => member.process.stop('SIGKILL')));
    for (const member of this.members) member.process.start();
    await this.waitHealthy();
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((member) => member.process.stop('SIGKILL')));
    rmSync(this.#dataDir, { recursive: true, force: true });
  }

  #member(index: number): EtcdMember {
    const member = this.members[index];
    if (!member) throw new Error(`no etcd member ${index}`);
    return member;
  }
}

/** etcd's /health answers {"health":"true"} only with a leader and quorum. */
async function healthy(clientUrl: string): Promise<boolean> {
  const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(2000) });
  const body = (await response.json()) as { health?: string };
  return body.health === 'true';
}

export function startEtcd(options?: EtcdOptions): Promise<EtcdCluster> {
  return EtcdCluster.start(options);
}
