/**
 * Child processes of the harness: servers and candidate processes.
 *
 * Every child is registered, and killed with SIGKILL
 * - by `killAllChildren()` (call it in afterAll),
 * - when this process exits (the 'exit' event),
 * - and, if this process dies without an 'exit' event (SIGKILL, a vitest
 *   worker torn down with a signal, a crash in native code), by a small
 *   watchdog process: it holds the read end of a pipe from this process, sees
 *   EOF when this process is gone, and kills every child still registered.
 *   Without it an etcd or Consul agent would outlive the test run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { LogLine } from '../checker.js';
import { repositoryRoot } from './binaries.js';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

// ---------------------------------------------------------------------------
// Registry

const children = new Map<ChildProcess, Promise<Exit>>();
let watchdog: ChildProcess | undefined;

/**
 * The watchdog's program (node -e). Lines on stdin: '+PID' / '-PID' register and
 * forget a child, '>DIR' / '<DIR' a temp dir. On EOF (its parent is gone): SIGKILL
 * every child still registered, then remove the dirs.
 */
export const WATCHDOG_SOURCE = `
const { rmSync } = require('node:fs');
const pids = new Set();
const dirs = new Set();
let buffer = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buffer += chunk;
  for (let i; (i = buffer.indexOf('\\n')) >= 0; buffer = buffer.slice(i + 1)) {
    const [op, arg] = [buffer[0], buffer.slice(1, i)];
    if (op === '+') pids.add(arg); else if (op === '-') pids.delete(arg);
    else if (op === '>') dirs.add(arg); else if (op === '<') dirs.delete(arg);
  }
});
process.stdin.on('close', () => {
  for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL'); } catch {} }
  for (const dir of dirs) { try { rmSync(dir, { recursive: true, force: true, maxRetries: 5 }); } catch {} }
  process.exit(0);
});
`;

function tell(line: string): void {
  if (!watchdog) {
    // Detached: its own process group, so the Ctrl-C that stops the test run
    // does not stop it before it has done its work.
    watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
    watchdog.on('error', () => (watchdog = undefined));
    watchdog.unref();
    (watchdog.stdin as unknown as Socket).unref();
    watchdog.stdin!.on('error', () => {});
  }
  watchdog.stdin!.write(`${line}\n`);
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    // The watchdog first: it would otherwise kill the same pids a moment later,
    // by which time they may belong to other processes.
    watchdog?.kill('SIGKILL');
    for (const child of children.keys()) child.kill('SIGKILL');
    for (const dir of dirs) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
      } catch {
        // Exiting anyway; a leftover temp dir is no reason to fail.
      }
    }
  });
}

const dirs = new Set<string>();

/** Register a temp dir to be removed if this process dies before `untrackDir`. */
export function trackDir(path: string): void {
  hookExit();
  dirs.add(path);
  tell(`>${path}`);
}

export function untrackDir(path: string): void {
  dirs.delete(path);
  tell(`<${path}`);
}

/** Register `child` so that it is killed with the harness; resolves with its exit. */
export function track(child: ChildProcess): Promise<Exit> {
  hookExit();
  const exited = new Promise<Exit>((resolve) => {
    let settled = false;
    const settle = (exit: Exit): void => {
      if (settled) return;
      settled = true;
      children.delete(child);
      if (child.pid) tell(`-${child.pid}`);
      resolve(exit);
    };
    child.once('exit', (code, signal) => settle({ code, signal }));
    // A child that could not be spawned (ENOENT) gets 'error' and 'close', never 'exit'.
    child.once('error', () => {
      if (child.pid === undefined) settle({ code: null, signal: null });
    });
  });
  children.set(child, exited);
  if (child.pid) tell(`+${child.pid}`);
  return exited;
}

/** SIGKILL every child the harness started that is still running, and wait until they are gone. */
export async function killAllChildren(): Promise<void> {
  const waiting = [...children.entries()].map(([child, exited]) => {
    child.kill('SIGKILL');
    return exited;
  });
  await Promise.all(waiting);
}

/** How many children of the harness are running now. */
export function runningChildren(): number {
  return children.size;
}

// ---------------------------------------------------------------------------
// JSON-lines processes

export interface JsonLinesProcess<T> extends AsyncIterable<T> {
  readonly child: ChildProcess;
  readonly pid: number | undefined;
  /** Every JSON line printed so far, parsed, in order. */
  readonly lines: T[];
  /** Lines on stdout that were not JSON, kept for error messages. */
  readonly otherOutput: string[];
  /** The last lines the process wrote to stderr. */
  stderr(lines?: number): string;
  /**
   * The first line (from index `from` of `lines`, or arriving later) that
   * satisfies `predicate`. Rejects on timeout or when the process exits first,
   * with its recent output in the message.
   */
  waitFor(predicate: (line: T) => boolean, timeoutMs?: number, from?: number): Promise<T>;
  /** Write one line to the process's stdin. */
  send(line: string): void;
  /** Send `signal` (SIGKILL by default) and wait for the exit; resolves at once if it has exited. */
  kill(signal?: NodeJS.Signals): Promise<Exit>;
  /** Send `signal` without waiting (SIGSTOP, SIGCONT, SIGUSR1…). */
  signal(signal: NodeJS.Signals): void;
  readonly exited: Promise<Exit>;
}

export interface SpawnJsonLinesOptions<T> {
  cwd?: string;
  /** Called for every parsed line as it arrives. */
  onLine?: (line: T) => void;
  /** Start from an empty environment instead of this process's (the default adds `env` to it). */
  cleanEnv?: boolean;
}

/**
 * Spawn `command args` (e.g. `process.execPath, ['fixture.mjs']`) whose stdout
 * is one JSON object per line. Iterate it with `for await` (ends when the
 * process exits), or read `lines`, or `waitFor` a line.
 */
export function spawnJsonLines<T = Record<string, unknown>>(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  options: SpawnJsonLinesOptions<T> = {},
): JsonLinesProcess<T> {
  const child = spawn(command, args, {
    cwd: options.cwd ?? repositoryRoot,
    env: options.cleanEnv ? env : { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = track(child);
  const lines: T[] = [];
  const otherOutput: string[] = [];
  const stderrLines: string[] = [];
  const listeners = new Set<() => void>();
  let done = false;
  const notify = (): void => {
    for (const listener of listeners) listener();
  };

  let buffer = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buffer += chunk;
    for (let i; (i = buffer.indexOf('\n')) >= 0; buffer = buffer.slice(i + 1)) {
      const text = buffer.slice(0, i).trim();
      if (!text) continue;
      let parsed: T;
      try {
        parsed = JSON.parse(text) as T;
      } catch {
        remember(otherOutput, text);
        continue;
      }
      lines.push(parsed);
      options.onLine?.(parsed);
    }
    notify();
  });
  let errBuffer = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    errBuffer += chunk;
    for (let i; (i = errBuffer.indexOf('\n')) >= 0; errBuffer = errBuffer.slice(i + 1)) remember(stderrLines, errBuffer.slice(0, i));
  });
  // A process that cannot be spawned emits 'error' (and then 'exit'); keep it for the messages.
  child.on('error', (error) => remember(stderrLines, `spawn failed: ${error.message}`));
  child.stdin!.on('error', () => {});
  void exited.then(() => {
    done = true;
    notify();
  });

  const stderr = (count = 20): string => [...stderrLines, errBuffer].filter(Boolean).slice(-count).join('\n');
  const describe = (): string =>
    `${[command, ...args].join(' ')} (pid ${child.pid})\nstderr:\n${stderr()}` +
    (otherOutput.length ? `\nother stdout:\n${otherOutput.slice(-10).join('\n')}` : '') +
    `\nlast lines:\n${lines.slice(-10).map((line) => JSON.stringify(line)).join('\n')}`;

  const waitFor = (predicate: (line: T) => boolean, timeoutMs = 30_000, from = 0): Promise<T> =>
    new Promise((resolve, reject) => {
      let next = from;
      const check = (): void => {
        for (; next < lines.length; next++) {
          if (predicate(lines[next]!)) return finish(() => resolve(lines[next]!));
        }
        if (done) finish(() => reject(new Error(`process exited before the awaited line: ${describe()}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`no awaited line after ${timeoutMs} ms: ${describe()}`))), timeoutMs);
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        listeners.delete(check);
        settle();
      };
      listeners.add(check);
      check();
    });

  return {
    child,
    get pid() {
      return child.pid;
    },
    lines,
    otherOutput,
    stderr,
    waitFor,
    send(line: string) {
      child.stdin!.write(`${line}\n`);
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (signal === 'SIGSTOP' || signal === 'SIGCONT') throw new Error(`kill() waits for the exit; send ${signal} with signal()`);
      if (!done && child.pid !== undefined) {
        child.kill(signal);
        // A stopped process acts on SIGTERM only once it runs again.
        if (signal !== 'SIGKILL') child.kill('SIGCONT');
      }
      return exited;
    },
    signal(signal: NodeJS.Signals) {
      if (!done) child.kill(signal);
    },
    exited,
    async *[Symbol.asyncIterator]() {
      for (let next = 0; ; ) {
        if (next < lines.length) {
          yield lines[next++]!;
          continue;
        }
        if (done) return;
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            listeners.delete(wake);
            resolve();
          };
          listeners.add(wake);
        });
      }
    },
  };
}

function remember(ring: string[], line: string, size = 200): void {
  ring.push(line);
  if (ring.length > size) ring.splice(0, ring.length - size);
}

// ---------------------------------------------------------------------------
// Candidates (test-integration/fixtures/candidate.mjs), for the split-brain checker

const fixture = join(repositoryRoot, 'test-integration', 'fixtures', 'candidate.mjs');

export interface CandidateSpec {
  backend: 'etcd' | 'consul';
  /** Connection string the process uses (through a proxy, possibly). */
  address: string;
  path: string;
  id: string;
  ttl: number;
  requestTimeout?: number;
  /** More environment for the fixture (VIP_RESOURCE, VIP_MIN_TTL, ...: see fixtures/candidate.mjs). */
  env?: Record<string, string>;
}

/** One candidate in its own OS process; its events go to a log shared with the others. */
export class CandidateProcess {
  readonly id: string;
  readonly process: JsonLinesProcess<LogLine>;
  readonly log: LogLine[];
  readonly exited: Promise<Exit>;
  /** Times (ms since the epoch) when the test saw this process die of its SIGKILL. */
  readonly deaths: number[] = [];
  /**
   * The lines this process wrote. The shared log also holds those of earlier
   * processes with the same id (a candidate restarted after a SIGKILL): one
   * that died leading left a select with no deselect, which must not make
   * its successor look like a leader.
   */
  readonly #lines: LogLine[] = [];

  constructor(spec: CandidateSpec, log: LogLine[]) {
    this.id = spec.id;
    this.log = log;
    this.process = spawnJsonLines<LogLine>(
      process.execPath,
      [fixture],
      {
        VIP_BACKEND: spec.backend,
        VIP_ADDRESS: spec.address,
        VIP_PATH: spec.path,
        VIP_ID: spec.id,
        VIP_TTL: String(spec.ttl),
        ...(spec.requestTimeout ? { VIP_REQUEST_TIMEOUT: String(spec.requestTimeout) } : {}),
        ...spec.env,
      },
      {
        onLine: (line) => {
          this.#lines.push(line);
          log.push(line);
        },
      },
    );
    this.exited = this.process.exited;
  }

  get child(): ChildProcess {
    return this.process.child;
  }

  /** Recent stderr lines of the process (one string per line). */
  get stderr(): string[] {
    return this.process.stderr(50).split('\n');
  }

  /** This process's own events (not those of an earlier process with the same id). */
  events(name?: string): LogLine[] {
    return this.#lines.filter((line) => name === undefined || line.event === name);
  }

  isLeading(): boolean {
    const terms = this.events().filter((line) => line.event === 'select' || line.event === 'deselect');
    return terms.at(-1)?.event === 'select' && this.deaths.length === 0;
  }

  /** Graceful: `stop` on stdin; the process deselects, resigns, closes its store and exits. */
  async stop(): Promise<void> {
    this.process.send('stop');
    await this.exited;
  }

  /**
   * SIGKILL, and note the time once the exit is seen: every line the process
   * wrote was written before then, so a term it logged never seems to start
   * after its death.
   */
  async kill(): Promise<void> {
    await this.process.kill('SIGKILL');
    this.deaths.push(Date.now());
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
        const errors = this.processes.map((p) => `${p.id}: ${p.process.stderr(10)}`).join('\n');
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\nlast events:\n${tail}\nstderr:\n${errors}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.processes.map((candidate) => candidate.process.kill('SIGKILL')));
  }
}
