/**
 * Runs a child process only while a candidate leads (the engine of `vip run`).
 *
 * - select: start the child with VIP_TOKEN, VIP_PATH, VIP_ID, VIP_VALUE.
 * - leadership lost or expired: SIGTERM, then SIGKILL after `lossGrace`
 *   (at most the safety margin: by then another node may start its copy).
 * - the child exits by itself: restart it (`restart`), or resign and finish
 *   with its exit code, as `consul lock` does.
 * - SIGINT/SIGTERM to us: forwarded to the child; once it has exited (SIGKILL
 *   after `grace`), resign, then finish. The child stops before the key is released.
 * - we die, even by SIGKILL: on Linux the child gets SIGKILL from the kernel
 *   (parent-death signal, set by `setpriv --pdeathsig`), so a new leader's copy
 *   never runs beside an orphan of ours.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Candidate } from '@vip/core';

export interface SupervisorOptions {
  command: string;
  args: string[];
  /** Seconds the child may take to exit after SIGTERM when we stop or are interrupted. */
  grace: number;
  /** Seconds the child may take after SIGTERM when leadership is lost. Default: min(grace, ttl / 5). */
  lossGrace?: number;
  restart: boolean;
  log: (line: string) => void;
  /** Extra environment for the child (tests). */
  env?: NodeJS.ProcessEnv;
}

let setprivChecked: boolean | undefined;
/** Whether `setpriv --pdeathsig` (util-linux) can be used here. */
function hasSetpriv(): boolean {
  if (setprivChecked === undefined) {
    const probe = process.platform === 'linux' ? spawnSync('setpriv', ['--help'], { encoding: 'utf8' }) : undefined;
    setprivChecked = probe?.status === 0 && probe.stdout.includes('--pdeathsig');
  }
  return setprivChecked;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const number = signal ? constants.signals[signal] : undefined;
  return number ? 128 + number : 1;
}

export class Supervisor {
  readonly #candidate: Candidate;
  readonly #options: SupervisorOptions;
  #child: ChildProcess | undefined;
  #exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  /** Set while we are the ones ending the child, so its exit is not taken as its own. */
  #killing = false;
  #finishing = false;
  #finish!: (code: number) => void;

  constructor(candidate: Candidate, options: SupervisorOptions) {
    this.#candidate = candidate;
    this.#options = options;
    if (process.platform === 'linux' && !hasSetpriv()) {
      options.log('setpriv (util-linux) not found: the command may outlive vip if vip is killed with SIGKILL');
    }
  }

  /** Campaign and supervise until the child exits by itself or we are interrupted; resolves the exit code. */
  async run(): Promise<number> {
    const done = new Promise<number>((resolve) => (this.#finish = resolve));
    const candidate = this.#candidate;
    candidate.on('select', (_value, _id, holder) => {
      this.#options.log(`leading ${candidate.path()} (token ${holder.token}); starting ${this.#options.command}`);
      void this.#start(holder.token);
    });
    candidate.on('deselect', (reason) => {
      if (reason === 'stopped') return; // shutdown() already ended the child
      this.#options.log(`no longer leading (${reason}); stopping ${this.#options.command}`);
      void this.#end(this.#options.lossGrace ?? Math.min(this.#options.grace, candidate.ttl() / 5));
    });
    candidate.on('change', (_value, leaderId) => {
      if (leaderId !== candidate.localid()) this.#options.log(leaderId ? `leader is ${leaderId}` : 'no leader');
    });
    candidate.on('error', (error) => this.#options.log(`store error: ${error.message}`));
    const onSignal = (signal: NodeJS.Signals): void => void this.#shutdown(signal);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      await candidate.start();
      return await done;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }

  async #start(token: bigint): Promise<void> {
    if (this.#exited) await this.#exited; // the previous term's child must be gone first
    if (this.#finishing || !this.#candidate.isSelected() || this.#candidate.token() !== token) return;
    const { command, args } = this.#options;
    const [file, argv] = hasSetpriv() ? ['setpriv', ['--pdeathsig', 'KILL', '--', command, ...args]] : [command, args];
    const child = spawn(file, argv, {
      stdio: 'inherit',
      env: {
        ...process.env,
        ...this.#options.env,
        VIP_TOKEN: token.toString(),
        VIP_PATH: this.#candidate.path(),
        VIP_ID: this.#candidate.localid(),
        VIP_VALUE: this.#candidate.localvalue(),
      },
    });
    this.#child = child;
    this.#killing = false;
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (error) => {
        this.#options.log(`could not start ${command}: ${error.message}`);
        resolve({ code: 127, signal: null });
      });
    });
    const { code, signal } = await this.#exited;
    if (this.#child === child) this.#child = undefined;
    this.#exited = undefined;
    if (this.#killing || this.#finishing) return;
    const exitCode = exitCodeOf(code, signal);
    if (this.#options.restart && this.#candidate.token() === token) {
      this.#options.log(`${command} exited (${signal ?? code}); restarting it (--restart)`);
      void this.#start(token);
      return;
    }
    this.#options.log(`${command} exited (${signal ?? code}); resigning`);
    this.#finishing = true;
    await this.#candidate.stop();
    this.#finish(exitCode);
  }

  /** SIGTERM the child, SIGKILL it after `graceSeconds`, and wait for it to exit. */
  async #end(graceSeconds: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return undefined;
    this.#killing = true;
    child.kill(signal);
    const timer = setTimeout(() => {
      this.#options.log(`${this.#options.command} still running ${graceSeconds} s after ${signal}; sending SIGKILL`);
      child.kill('SIGKILL');
    }, graceSeconds * 1000);
    const result = await exited;
    clearTimeout(timer);
    return result;
  }

  async #shutdown(signal: NodeJS.Signals): Promise<void> {
    if (this.#finishing) return;
    this.#finishing = true;
    this.#options.log(`${signal}: stopping`);
    const result = await this.#end(this.#options.grace, signal);
    await this.#candidate.stop();
    this.#finish(result ? exitCodeOf(result.code, result.signal) : exitCodeOf(null, signal));
  }
}
