/**
 * A server child process with its output kept in a ring buffer (for error
 * messages), killed when the test process exits even if a test failed.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();
let hooked = false;
function killAllOnExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export class ServerProcess {
  readonly name: string;
  readonly #command: string;
  readonly #args: string[];
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  readonly #output: string[] = [];

  constructor(name: string, command: string, args: string[]) {
    this.name = name;
    this.#command = command;
    this.#args = args;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  start(): void {
    if (this.#child) throw new Error(`${this.name} is already running`);
    killAllOnExit();
    const child = spawn(this.#command, this.#args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk: Buffer): void => {
      this.#output.push(...chunk.toString().split('\n').filter(Boolean));
      if (this.#output.length > 200) this.#output.splice(0, this.#output.length - 200);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    running.add(child);
    this.#child = child;
    this.#exited = new Promise((resolve) =>
      child.once('exit', () => {
        running.delete(child);
        if (this.#child === child) this.#child = undefined;
        resolve();
      }),
    );
  }

  /** Send `signal` and wait for the process to exit (SIGKILL after `graceMs`). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** SIGSTOP / SIGCONT: a process that is there but does not answer. */
  pause(): void {
    this.#child?.kill('SIGSTOP');
  }

  resume(): void {
    this.#child?.kill('SIGCONT');
  }

  tail(lines = 20): string {
    return this.#output.slice(-lines).join('\n');
  }

  /** Poll `ready` until it resolves true; fail with the server's last output. */
  async waitUntil(ready: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
    const start = Date.now();
    while (Date.now() - start < timeoutMs) {
      if (!this.#child) throw new Error(`${this.name} exited before ${what}:\n${this.tail()}`);
      if (await ready().catch(() => false)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`${this.name} not ${what} after ${timeoutMs} ms:\n${this.tail()}`);
  }
}
