/**
 * The `vip` command as the integration tests run it: real `vip` processes,
 * their output, and a poll until something happens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { repositoryRoot } from './binaries.js';
import { track } from './processes.js';

export const vipBin = join(repositoryRoot, 'packages', 'vip', 'bin', 'vip.mjs');

export interface VipProcess {
  readonly child: ChildProcess;
  /** Its exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  out(): string;
  err(): string;
}

/**
 * `vip(args)` for one test file: after each test, every `vip` it started
 * that still runs is killed (SIGKILL), then what `defer()` was given is
 * closed, last first (servers). Each child is also tracked by the harness, so
 * it never outlives the test run. Call it at the top of the file.
 */
export function vipProcesses(): { vip(args: readonly string[]): VipProcess; defer(...closes: (() => Promise<void>)[]): void } {
  const spawned: ChildProcess[] = [];
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const child of spawned.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const close of cleanup.splice(0).reverse()) await close();
  });
  return {
    vip(args) {
      const child = spawn(process.execPath, [vipBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      spawned.push(child);
      let out = '';
      let err = '';
      child.stdout!.on('data', (chunk) => (out += chunk));
      child.stderr!.on('data', (chunk) => (err += chunk));
      const exited = track(child).then(({ code }) => code);
      return { child, exited, out: () => out, err: () => err };
    },
    defer(...closes) {
      cleanup.push(...closes);
    },
  };
}

/**
 * Polls `probe` every 25 ms until it gives something other than `undefined`
 * or `false`, and returns that; after `ms` throws "timed out waiting for
 * `what`" (a function is called then, so that it can show output as it is at
 * the time).
 */
export async function until<T>(probe: () => T | Promise<T>, what: string | (() => string), ms = 30_000): Promise<Exclude<T, undefined | false>> {
  const start = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value as Exclude<T, undefined | false>;
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
