/**
 * Runs a child process only while a candidate leads (the engine of `vip run`).
 *
 * - select: start the child with VIP_TOKEN, VIP_PATH, VIP_ID, VIP_VALUE, in a
 *   process group of its own, so that everything it forks is signalled with it.
 * - leadership ending: when the store has not confirmed the hold and the local
 *   deadline is `lossGrace` + the early-warning lead away, SIGTERM the group;
 *   SIGKILL it `lossGrace` later, still before the deadline (early-warning.ts).
 *   When the store says the hold is gone (`lost`), SIGTERM at once, SIGKILL
 *   after `lossGrace`.
 * - the child exits by itself: restart it (`restart`, with backoff), or resign
 *   and finish with its exit code, as `consul lock` does. Whatever it left in
 *   its process group is killed first: nothing of ours outlives the term.
 * - SIGINT/SIGTERM to us: forwarded to the group; once the child has exited
 *   (SIGKILL after `grace`), resign, then finish. The child stops before the key is released.
 * - we die, even by SIGKILL: a watchdog (a tiny `sh` in a session of its own,
 *   reading a pipe from us) sees the pipe close and SIGKILLs the whole group.
 *   That works wherever there is a POSIX sh (Linux, macOS, the BSDs). On Linux
 *   the group's leader also gets the kernel's parent-death signal
 *   (`setpriv --pdeathsig`), in case the watchdog itself was killed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { systemClock, type Candidate, type Clock, type TimerHandle } from '@vip/core';
import { warnBeforeDeadline, warningLeadMs } from './early-warning.js';

export interface SupervisorOptions {
  command: string;
  args: string[];
  /** Seconds the child may take to exit after SIGTERM when we stop or are interrupted (0: SIGKILL right after). */
  grace: number;
  /** Seconds between SIGTERM and SIGKILL when leadership ends. Default: min(grace, the safety margin). */
  lossGrace?: number;
  restart: boolean;
  log: (line: string) => void;
  /** Where the candidate's `error` events go (the CLI's outage reporter); default one `log` line each. */
  onStoreError?: (error: Error) => void;
  /** Extra environment for the child (tests). */
  env?: NodeJS.ProcessEnv;
  /** The candidate's clock (tests); default the system clock. */
  clock?: Clock;
  /** Randomness for the restart backoff's jitter (tests); default Math.random. */
  random?: () => number;
}

/** --restart backoff: 250 ms, doubling, at most 10 s, jittered to [d/2, d]; reset once a child ran this long. */
const RESTART_BASE_MS = 250;
const RESTART_MAX_MS = 10_000;
const RESTART_RESET_MS = 10_000;

let setprivChecked: boolean | undefined;
/** Whether `setpriv --pdeathsig` (util-linux) can be used here. */
function hasSetpriv(): boolean {
  if (setprivChecked === undefined) {
    const probe = process.platform === 'linux' ? spawnSync('setpriv', ['--help'], { encoding: 'utf8' }) : undefined;
    setprivChecked = probe?.status === 0 && probe.stdout.includes('--pdeathsig');
  }
  return setprivChecked;
}

/** Process groups and the sh watchdog are POSIX; on Windows the child is signalled alone. */
const POSIX = process.platform !== 'win32';

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const number = signal ? constants.signals[signal] : undefined;
  return number ? 128 + number : 1;
}

type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** How a child ended, for the log: `code 0`, `signal SIGKILL`. */
const exitText = ({ code, signal }: Exit): string => (code !== null ? `code ${code}` : `signal ${signal ?? 'unknown'}`);

/** One started child: its group, its watchdog and how it is being ended. */
interface Running {
  readonly child: ChildProcess;
  readonly token: bigint;
  readonly startedAt: number;
  readonly exited: Promise<Exit>;
  /** Set once we end it, so its exit is not taken as its own. */
  ending: boolean;
  /** The last signal we sent it (SIGTERM, then maybe SIGKILL), and when, for the log. */
  sent: NodeJS.Signals | undefined;
  sentAt: number | undefined;
  killAt: number | undefined;
  killTimer: TimerHandle | undefined;
}

export class Supervisor {
  readonly #candidate: Candidate;
  readonly #options: SupervisorOptions;
  readonly #clock: Clock;
  #running: Running | undefined;
  #finishing = false;
  #finish!: (code: number) => void;
  /** Restarts in a row of a child that did not run for RESTART_RESET_MS. */
  #restarts = 0;
  #restartTimer: TimerHandle | undefined;

  constructor(candidate: Candidate, options: SupervisorOptions) {
    this.#candidate = candidate;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** Seconds between SIGTERM and SIGKILL when leadership ends. */
  #lossGraceMs(): number {
    return (this.#options.lossGrace ?? Math.min(this.#options.grace, this.#candidate.safetyMargin())) * 1000;
  }

  /** Campaign and supervise until the child exits by itself or we are interrupted; resolves the exit code. */
  async run(): Promise<number> {
    const done = new Promise<number>((resolve) => (this.#finish = resolve));
    const candidate = this.#candidate;
    const { command } = this.#options;
    candidate.on('select', (_value, _id, holder) => {
      // A new term may begin while the last term's child is still being stopped: #start waits for it.
      const waiting = this.#running !== undefined ? `, once the previous ${command} has exited` : '';
      this.#options.log(`leading ${candidate.path()} (token ${holder.token}); starting ${command}${waiting}`);
      this.#restarts = 0;
      void this.#start(holder.token);
    });
    const lossGraceMs = this.#lossGraceMs();
    const leadMs = warningLeadMs(candidate);
    const stopWarning = warnBeforeDeadline(candidate, {
      clock: this.#clock,
      // SIGTERM lossGrace before the SIGKILL, which comes `leadMs` before the deadline.
      leadMs: leadMs + lossGraceMs,
      onWarn: (token, msLeft) => {
        if (this.#running?.token !== token) return;
        this.#options.log(`the store has not confirmed leadership; ${Math.round(msLeft)} ms to the local deadline: stopping ${command}`);
        void this.#end(Math.max(0, msLeft - leadMs));
      },
    });
    candidate.on('deselect', (reason) => {
      const restartPending = this.#restartTimer !== undefined;
      this.#clearRestart();
      if (reason === 'stopped') return; // shutdown() already ended the child
      // Say what is true now: the early warning (or a resignation after it) may
      // have stopped the child already, or begun to.
      const running = this.#running;
      if (running === undefined) {
        this.#options.log(`no longer leading (${reason}); ${command} had already exited${restartPending ? '; not restarting it' : ''}`);
        return;
      }
      if (running.ending) {
        const ago = Math.round(this.#clock.now() - (running.sentAt ?? this.#clock.now()));
        this.#options.log(`no longer leading (${reason}); ${command} is already stopping (${running.sent ?? 'SIGTERM'} sent ${ago} ms ago)`);
      } else {
        this.#options.log(`no longer leading (${reason}); stopping ${command}`);
      }
      // At the deadline the child must be gone: SIGKILL now if the warning's did not do it.
      void this.#end(reason === 'expired' ? 0 : lossGraceMs);
    });
    candidate.on('change', (_value, leaderId, holder) => {
      // With the token: the same leader in a new term is visibly a new term.
      if (leaderId !== candidate.localid()) this.#options.log(leaderId ? `leader is ${leaderId}${holder ? ` (token ${holder.token})` : ''}` : 'no leader');
    });
    candidate.on('error', (error) => (this.#options.onStoreError ? this.#options.onStoreError(error) : this.#options.log(`store error: ${error.message}`)));
    const onSignal = (signal: NodeJS.Signals): void => void this.#shutdown(signal);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      await candidate.start();
      return await done;
    } finally {
      stopWarning();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }

  /** As SIGTERM to vip: end the child (SIGKILL after `grace`), resign, and let run() resolve. */
  stop(reason?: string): Promise<void> {
    return this.#shutdown('SIGTERM', reason);
  }

  async #start(token: bigint): Promise<void> {
    if (this.#running) await this.#running.exited; // the previous child must be gone first
    if (this.#finishing || this.#running || this.#candidate.token() !== token) return;
    const { command, args } = this.#options;
    const [file, argv] = hasSetpriv() ? ['setpriv', ['--pdeathsig', 'KILL', '--', command, ...args]] : [command, args];
    const child = spawn(file, argv, {
      stdio: 'inherit',
      // A process group of its own (setsid): signals reach everything it forks.
      detached: POSIX,
      env: {
        ...process.env,
        ...this.#options.env,
        VIP_TOKEN: token.toString(),
        VIP_PATH: this.#candidate.path(),
        VIP_ID: this.#candidate.localid(),
        VIP_VALUE: this.#candidate.localvalue(),
      },
    });
    const watchdog = child.pid !== undefined && POSIX ? this.#watch(child.pid) : undefined;
    const exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => {
        // What the child left in its group goes with it, before anything else
        // happens (a restart, a resignation): nothing of this term outlives it.
        // The group id cannot be reused while any member lives; the leader has
        // just been reaped, so this is the last moment it surely names our group.
        this.#signalGroup(child, 'SIGKILL');
        watchdog?.kill('SIGKILL');
        resolve({ code, signal });
      });
      child.once('error', (error) => {
        this.#options.log(`could not start ${command}: ${error.message}`);
        watchdog?.kill('SIGKILL');
        resolve({ code: 127, signal: null });
      });
    });
    const running: Running = {
      child,
      token,
      startedAt: this.#clock.now(),
      exited,
      ending: false,
      sent: undefined,
      sentAt: undefined,
      killAt: undefined,
      killTimer: undefined,
    };
    this.#running = running;
    const { code, signal } = await exited;
    if (running.killTimer !== undefined) this.#clock.clearTimeout(running.killTimer);
    this.#running = undefined;
    // Ended by shutdown(): it says so itself, then resigns.
    if (this.#finishing) return;
    if (running.ending) {
      this.#options.log(`${command} exited (${exitText({ code, signal })}) after ${running.sent ?? 'SIGTERM'}`);
      return;
    }
    const exitCode = exitCodeOf(code, signal);
    if (this.#options.restart && this.#candidate.token() === token) {
      if (this.#clock.now() - running.startedAt >= RESTART_RESET_MS) this.#restarts = 0;
      const ceiling = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** this.#restarts++);
      const delay = Math.round(ceiling * (0.5 + (this.#options.random ?? Math.random)() / 2));
      this.#options.log(`${command} exited (${exitText({ code, signal })}); restarting it in ${delay} ms (--restart)`);
      this.#restartTimer = this.#clock.setTimeout(() => {
        this.#restartTimer = undefined;
        void this.#start(token);
      }, delay);
      return;
    }
    this.#options.log(`${command} exited (${exitText({ code, signal })}); resigning`);
    this.#finishing = true;
    await this.#candidate.stop();
    this.#finish(exitCode);
  }

  /**
   * A watchdog that outlives us: `sh` in a session of its own (a Ctrl-C to our
   * group does not reach it), its stdin a pipe from us that nothing else holds
   * (Node opens pipes close-on-exec). When we die, even by SIGKILL, the pipe
   * reaches EOF and it SIGKILLs the child's whole group. We kill it ourselves
   * once the group has exited, so it never signals a group id that is gone.
   */
  #watch(pgid: number): ChildProcess {
    const watchdog = spawn('sh', ['-c', 'read _; kill -s KILL -- -"$1"', 'vip-watchdog', String(pgid)], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
    });
    watchdog.on('error', (error) => this.#options.log(`could not start the watchdog (sh): ${error.message}; the command may outlive vip if vip is killed`));
    // Neither it nor its pipe may keep us alive.
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    return watchdog;
  }

  #signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
    if (child.pid === undefined) return;
    try {
      if (POSIX) process.kill(-child.pid, signal);
      else child.kill(signal);
    } catch {
      // ESRCH: the group is already gone.
    }
  }

  /**
   * Send `signal` to the child's group (once) and SIGKILL it `graceMs` later;
   * called again while it is ending, only ever brings the SIGKILL closer.
   * Resolves when the child has exited.
   */
  #end(graceMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> | undefined {
    const running = this.#running;
    if (!running) return undefined;
    if (!running.ending) {
      running.ending = true;
      running.sent = signal;
      running.sentAt = this.#clock.now();
      this.#options.log(`sending ${signal} to ${this.#options.command}; SIGKILL in ${Math.round(graceMs) / 1000} s`);
      this.#signalGroup(running.child, signal);
    }
    const killAt = this.#clock.now() + graceMs;
    if (running.killAt === undefined || killAt < running.killAt) {
      if (running.killTimer !== undefined) this.#clock.clearTimeout(running.killTimer);
      running.killAt = killAt;
      running.killTimer = this.#clock.setTimeout(() => {
        running.killTimer = undefined;
        if (this.#running !== running) return;
        this.#options.log(`${this.#options.command} still running; sending SIGKILL`);
        running.sent = 'SIGKILL';
        running.sentAt = this.#clock.now();
        this.#signalGroup(running.child, 'SIGKILL');
      }, graceMs);
    }
    return running.exited;
  }

  #clearRestart(): void {
    if (this.#restartTimer !== undefined) this.#clock.clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
  }

  async #shutdown(signal: NodeJS.Signals, reason?: string): Promise<void> {
    if (this.#finishing) return;
    this.#finishing = true;
    this.#clearRestart();
    this.#options.log(`${reason ?? signal}: stopping`);
    const running = this.#running;
    const result = await this.#end(this.#options.grace * 1000, signal);
    // The last line before vip exits says how the child ended (or that none ran).
    if (result) this.#options.log(`${this.#options.command} exited (${exitText(result)}) after ${running?.sent ?? signal}; resigning`);
    else this.#options.log(`${this.#options.command} not running; resigning`);
    await this.#candidate.stop();
    this.#finish(result ? exitCodeOf(result.code, result.signal) : exitCodeOf(null, signal));
  }
}
