/**
 * Candidates in their own OS processes (test-integration/fixtures/candidate.mjs),
 * with their JSON-lines event logs collected for the split-brain checker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { LogLine } from '../checker.js';
import { repositoryRoot } from './binaries.js';

const fixture = join(repositoryRoot, 'test-integration', 'fixtures', 'candidate.mjs');
const everyone = new Set<CandidateProcess>();
process.on('exit', () => {
  for (const candidate of everyone) candidate.child.kill('SIGKILL');
});

export interface CandidateSpec {
  backend: 'etcd' | 'consul';
  /** Connection string the process uses (through a proxy, possibly). */
  address: string;
  path: string;
  id: string;
  ttl: number;
  requestTimeout?: number;
}

export class CandidateProcess {
  readonly id: string;
  readonly child: ChildProcess;
  readonly log: LogLine[];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Times (ms since epoch) when the test killed this process with SIGKILL. */
  readonly deaths: number[] = [];

  constructor(spec: CandidateSpec, log: LogLine[]) {
    this.id = spec.id;
    this.log = log;
    this.child = spawn(process.execPath, [fixture], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        VIP_BACKEND: spec.backend,
        VIP_ADDRESS: spec.address,
        VIP_PATH: spec.path,
        VIP_ID: spec.id,
        VIP_TTL: String(spec.ttl),
        ...(spec.requestTimeout ? { VIP_REQUEST_TIMEOUT: String(spec.requestTimeout) } : {}),
      },
    });
    everyone.add(this);
    let buffer = '';
    this.child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.trim()) this.log.push(JSON.parse(line) as LogLine);
      }
    });
    this.child.stderr!.on('data', (chunk: Buffer) => this.stderr.push(chunk.toString()));
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        everyone.delete(this);
        resolve({ code, signal });
      }),
    );
  }

  events(name?: string): LogLine[] {
    return this.log.filter((line) => line.id === this.id && (name === undefined || line.event === name));
  }

  isLeading(): boolean {
    const terms = this.events().filter((line) => line.event === 'select' || line.event === 'deselect');
    return terms.at(-1)?.event === 'select' && this.deaths.length === 0;
  }

  /** Graceful: `stop` on stdin; the process deselects, resigns, closes its store and exits. */
  async stop(): Promise<void> {
    this.child.stdin!.write('stop\n');
    await this.exited;
  }

  async kill(): Promise<void> {
    this.deaths.push(Date.now());
    this.child.kill('SIGKILL');
    await this.exited;
  }

  pause(): void {
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child.kill('SIGCONT');
  }
}

/** A group of candidate processes sharing one log, cleaned up by `close()`. */
export class Election {
  readonly log: LogLine[] = [];
  readonly processes: CandidateProcess[] = [];

  spawn(spec: CandidateSpec): CandidateProcess {
    const candidate = new CandidateProcess(spec, this.log);
    this.processes.push(candidate);
    return candidate;
  }

  leaders(): CandidateProcess[] {
    return this.processes.filter((candidate) => candidate.isLeading() && candidate.child.exitCode === null);
  }

  deaths(): Record<string, number[]> {
    return Object.fromEntries(this.processes.map((candidate) => [candidate.id, candidate.deaths]));
  }

  /** Wait until `condition` holds; fail with the log if it does not within `timeoutMs`. */
  async until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    const start = Date.now();
    while (!condition()) {
      if (Date.now() - start > timeoutMs) {
        const tail = this.log.slice(-30).map((line) => JSON.stringify(line)).join('\n');
        const errors = this.processes.map((p) => `${p.id}: ${p.stderr.join('').slice(-500)}`).join('\n');
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\nlast events:\n${tail}\nstderr:\n${errors}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async close(): Promise<void> {
    await Promise.all(
      this.processes.map(async (candidate) => {
        candidate.resume();
        candidate.child.kill('SIGKILL');
        await candidate.exited;
      }),
    );
  }
}
