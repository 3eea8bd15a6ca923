/**
 * Real etcd for tests: one member, or a 3-member cluster with one shared
 * --initial-cluster, on free loopback ports with data in a temp dir.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdBinary } from './binaries.js';
import { freePorts } from './ports.js';
import { trackDir, untrackDir } from './processes.js';
import { ServerProcess } from './server-process.js';

export interface EtcdOptions {
  members?: 1 | 3;
  /** Also serve the v2 API (etcd 3.5 still has it behind --enable-v2), for the seed module `locked`. */
  enableV2?: boolean;
  /** Appended to every member's command line. */
  extraArgs?: string[];
  /** How long start-up may take, per wait (default 30 s). */
  readyTimeoutMs?: number;
  /**
   * Also serve clients over TLS, on a port of its own per member
   * (`member.tlsClientUrl`). The plain http client URL stays, on loopback, for
   * the harness's own health checks and etcdctl; tests of TLS connect to the
   * https one. With `clientCertAuth`, etcd refuses a TLS client without a
   * certificate signed by `ca`.
   */
  tls?: { cert: string; key: string; ca: string; clientCertAuth?: boolean };
}

export interface EtcdMember {
  readonly index: number;
  readonly name: string;
  /** http://127.0.0.1:PORT */
  readonly clientUrl: string;
  readonly clientPort: number;
  /** https://127.0.0.1:PORT when the cluster was started with `tls`. */
  readonly tlsClientUrl?: string;
  readonly tlsClientPort?: number;
  readonly peerUrl: string;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly process: ServerProcess;
}

export class EtcdCluster {
  readonly members: readonly EtcdMember[];
  readonly dataDir: string;
  readonly #readyTimeoutMs: number;
  #closed = false;

  private constructor(members: EtcdMember[], dataDir: string, readyTimeoutMs: number) {
    this.members = members;
    this.dataDir = dataDir;
    this.#readyTimeoutMs = readyTimeoutMs;
  }

  /** Client URLs of every member, e.g. ['http://127.0.0.1:23456']. */
  get endpoints(): string[] {
    return this.members.map((member) => member.clientUrl);
  }

  /** `etcd://127.0.0.1:P1,127.0.0.1:P2,...` (the project's connection strings). */
  get connectionString(): string {
    return `etcd://${this.members.map((member) => `127.0.0.1:${member.clientPort}`).join(',')}`;
  }

  static async start(options: EtcdOptions = {}): Promise<EtcdCluster> {
    const count = options.members ?? 1;
    const bin = etcdBinary();
    const ports = await freePorts(count * (options.tls ? 3 : 2));
    const tlsPort = (i: number): number | undefined => (options.tls ? ports[count * 2 + i] : undefined);
    const dataDir = await mkdtemp(join(tmpdir(), 'vip-etcd-'));
    trackDir(dataDir);
    const peerUrl = (i: number): string => `http://127.0.0.1:${ports[count + i]}`;
    const initialCluster = Array.from({ length: count }, (_, i) => `n${i}=${peerUrl(i)}`).join(',');
    const members = Array.from({ length: count }, (_, i): EtcdMember => {
      const clientUrl = `http://127.0.0.1:${ports[i]}`;
      const tlsClientUrl = options.tls ? `https://127.0.0.1:${tlsPort(i)}` : undefined;
      const clientUrls = tlsClientUrl ? `${clientUrl},${tlsClientUrl}` : clientUrl;
      const tls = options.tls
        ? ['--cert-file', options.tls.cert, '--key-file', options.tls.key, '--trusted-ca-file', options.tls.ca, ...(options.tls.clientCertAuth ? ['--client-cert-auth'] : [])]
        : [];
      const memberDir = join(dataDir, `n${i}`);
      // Once a member has data, etcd ignores the --initial-* flags on a restart
      // and rejoins from its data dir, so the same command line serves start and restart.
      const args = [
        '--name', `n${i}`,
        '--data-dir', memberDir,
        '--listen-client-urls', clientUrls,
        '--advertise-client-urls', clientUrls,
        ...tls,
        '--listen-peer-urls', peerUrl(i),
        '--initial-advertise-peer-urls', peerUrl(i),
        '--initial-cluster', initialCluster,
        // A token per cluster: members of two test clusters can never join each other.
        '--initial-cluster-token', `vip-test-${ports[0]}`,
        '--initial-cluster-state', 'new',
        // etcd logs every request at info level; warnings are enough for error messages.
        '--log-level', 'warn',
        ...(options.enableV2 ? ['--enable-v2'] : []),
        ...(options.extraArgs ?? []),
      ];
      return {
        index: i,
        name: `n${i}`,
        clientUrl,
        clientPort: ports[i]!,
        ...(tlsClientUrl ? { tlsClientUrl, tlsClientPort: tlsPort(i)! } : {}),
        peerUrl: peerUrl(i),
        peerPort: ports[count + i]!,
        dataDir: memberDir,
        process: new ServerProcess(`etcd n${i} (${clientUrl})`, bin, args),
      };
    });
    const cluster = new EtcdCluster(members, dataDir, options.readyTimeoutMs ?? 30_000);
    try {
      for (const member of members) member.process.start();
      await cluster.waitHealthy();
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  member(index: number): EtcdMember {
    const member = this.members[index];
    if (!member) throw new Error(`no etcd member ${index} (the cluster has ${this.members.length})`);
    return member;
  }

  /** Wait until every running member is healthy: it sees a leader, has quorum and serves a read. */
  async waitHealthy(timeoutMs = this.#readyTimeoutMs): Promise<void> {
    await Promise.all(
      this.members
        .filter((member) => member.process.running)
        .map((member) => member.process.waitUntil(() => healthy(member.clientUrl), 'healthy', timeoutMs)),
    );
  }

  /** SIGTERM: etcd shuts down cleanly (a leader hands over leadership first). Waits for the exit. */
  async stopMember(index: number): Promise<void> {
    await this.member(index).process.stop('SIGTERM');
  }

  /** SIGKILL: the member dies at once, as in a crash. Waits for the exit. */
  async killMember(index: number): Promise<void> {
    await this.member(index).process.stop('SIGKILL');
  }

  /** SIGSTOP: the member keeps its sockets open but answers nothing (see resumeMember). */
  pauseMember(index: number): Promise<void> {
    return this.member(index).process.pause();
  }

  resumeMember(index: number): void {
    this.member(index).process.resume();
  }

  /**
   * Start a stopped member again: same name, ports and data dir, so it rejoins
   * the cluster. With `waitHealthy` (the default) this waits until it is
   * healthy, which needs quorum. Without, it returns once the process is
   * spawned: etcd 3.5 serves its client port only after publishing itself
   * through raft (server/embed/serve.go waits on ReadyNotify), so a member that
   * is alone in a 3-member cluster does not answer at all; follow up with
   * waitHealthy() once enough members run.
   */
  async startMember(index: number, waitHealthy = true): Promise<void> {
    const member = this.member(index);
    member.process.start();
    if (waitHealthy) await member.process.waitUntil(() => healthy(member.clientUrl), 'healthy again', this.#readyTimeoutMs);
  }

  /**
   * Stop every member and start them all again on the same ports with their
   * data, then wait until the cluster is healthy. SIGKILL by default (a crash
   * of the whole cluster); pass 'SIGTERM' for a clean shutdown.
   */
  async restart(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await Promise.all(this.members.map((member) => member.process.stop(signal)));
    for (const member of this.members) member.process.start();
    await this.waitHealthy();
  }

  /** The last output lines of one member (stdout and stderr), for assertions and messages. */
  tail(index: number, lines?: number): string {
    return this.member(index).process.tail(lines);
  }

  /** Kill every member and remove the data dirs. Safe to call twice. */
  async close(): Promise<void> {
    await Promise.all(this.members.map((member) => member.process.stop('SIGKILL')));
    if (this.#closed) return;
    this.#closed = true;
    await rm(this.dataDir, { recursive: true, force: true, maxRetries: 5 });
    untrackDir(this.dataDir);
  }
}

/**
 * etcd 3.5's GET /health answers {"health":"true"} only when the member has no
 * alarm, knows a leader, and a linearizable range request succeeds, i.e. with
 * quorum (server/etcdserver/api/etcdhttp/health.go: checkLeader, checkAPI).
 */
async function healthy(clientUrl: string): Promise<boolean> {
  const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(2000) });
  const body = (await response.json()) as { health?: string };
  return body.health === 'true';
}

export function startEtcd(options?: EtcdOptions): Promise<EtcdCluster> {
  return EtcdCluster.start(options);
}
