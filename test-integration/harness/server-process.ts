/**
 * A server child process (etcd member, Consul agent) that can be stopped and
 * started again with the same command line. Its stdout and stderr go to a ring
 * buffer, not to the test console, and show up in error messages.
 */
import { readdir, readFile } from 'node:fs/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { track, type Exit } from './processes.js';

const RING = 300;

export class ServerProcess {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  #child: ChildProcess | undefined;
  #exited: Promise<Exit> | undefined;
  #lastExit: Exit | undefined;
  #paused = false;
  readonly #output: string[] = [];
  #partial = '';

  constructor(name: string, command: string, args: string[]) {
    this.name = name;
    this.command = command;
    this.args = args;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Started and not yet exited. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** How the last run ended, if one did. */
  get lastExit(): Exit | undefined {
    return this.#lastExit;
  }

  start(): void {
    if (this.#child) throw new Error(`${this.name} is already running (pid ${this.#child.pid})`);
    this.#remember(`--- ${new Date().toISOString()} start: ${this.command} ${this.args.join(' ')}`);
    const child = spawn(this.command, [...this.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.#keep(chunk));
    child.stderr!.on('data', (chunk: string) => this.#keep(chunk));
    child.on('error', (error) => this.#remember(`spawn failed: ${error.message}`));
    this.#child = child;
    this.#paused = false;
    this.#exited = track(child).then((exit) => {
      this.#remember(`--- exited: ${exit.signal ?? `code ${exit.code}`}`);
      this.#lastExit = exit;
      if (this.#child === child) this.#child = undefined;
      return exit;
    });
  }

  /**
   * Send `signal` and wait until the process has exited; SIGKILL if it is still
   * there after `graceMs`. Does nothing if it is not running.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return;
    child.kill(signal);
    // A stopped (SIGSTOP) process acts on SIGTERM only once it runs again.
    if (this.#paused && signal !== 'SIGKILL') child.kill('SIGCONT');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /**
   * SIGSTOP: the process is there, its sockets stay open, but it answers
   * nothing. Resolves once every thread is stopped (Linux: state T for every
   * task under /proc/PID/task): kill() only queues the signal, and a Go server's
   * threads on another core could otherwise still answer a request sent at once.
   */
  async pause(): Promise<void> {
    const child = this.#child;
    if (!child?.pid) throw new Error(`${this.name} is not running`);
    child.kill('SIGSTOP');
    this.#paused = true;
    if (process.platform !== 'linux') return;
    const tasks = `/proc/${child.pid}/task`;
    for (let i = 0; i < 200; i++) {
      const states = await readdir(tasks)
        .then((ids) => Promise.all(ids.map((id) => readFile(`${tasks}/${id}/stat`, 'utf8').catch(() => ') T'))))
        .catch(() => [] as string[]);
      if (states.every((stat) => /\) [Tt] /.test(stat))) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error(`${this.name} did not stop within 1 s of SIGSTOP`);
  }

  resume(): void {
    this.#child?.kill('SIGCONT');
    this.#paused = false;
  }

  /** The last `lines` lines of output (stdout and stderr, with start and exit markers). */
  tail(lines = 25): string {
    return [...this.#output, this.#partial].filter(Boolean).slice(-lines).join('\n');
  }

  /**
   * Poll `ready` (every 50 ms) until it resolves true. Fails with the server's
   * last output if the process exits first or `timeoutMs` passes.
   */
  async waitUntil(ready: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.#child) {
        const how = this.#lastExit ? ` (${this.#lastExit.signal ?? `exit code ${this.#lastExit.code}`})` : '';
        throw new Error(`${this.name} exited${how} before it was ${what}; its last output:\n${this.tail()}`);
      }
      if (await ready().catch(() => false)) return;
      if (Date.now() >= deadline) throw new Error(`${this.name} was not ${what} after ${timeoutMs} ms; its last output:\n${this.tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  #keep(chunk: string): void {
    this.#partial += chunk;
    for (let i; (i = this.#partial.indexOf('\n')) >= 0; this.#partial = this.#partial.slice(i + 1)) {
      this.#remember(this.#partial.slice(0, i));
    }
    if (this.#partial.length > 10_000) {
      this.#remember(this.#partial);
      this.#partial = '';
    }
  }

  #remember(line: string): void {
    if (!line) return;
    this.#output.push(line);
    if (this.#output.length > RING) this.#output.splice(0, this.#output.length - RING);
  }
}
