import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Candidate, MemoryBackend, MemoryStore, type DeselectReason } from '@vip/core';
import { FakeClock, FaultyStore } from '@vip/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { Supervisor } from './supervisor.js';

// The supervisor with real child processes and the candidate on a fake clock:
// the test decides when election time passes, and waits (in real time, bounded)
// for what the processes do meanwhile.
const TTL = 10;
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const undo of cleanup.splice(0)) undo();
});

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Wait in real time (bounded) for `condition`, without moving the fake clock. */
async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Move the fake clock in small steps until `condition`, letting real I/O happen between steps. */
async function advanceUntil(clock: FakeClock, condition: () => boolean, what: string, limitMs = 120_000): Promise<void> {
  const start = clock.now();
  while (!condition()) {
    if (clock.now() - start > limitMs) throw new Error(`fake clock: ${what} still not seen after ${limitMs} ms`);
    await clock.advance(10);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function setup(options: { restart?: boolean; script: string }) {
  const dir = mkdtempSync(join(tmpdir(), 'vip-supervisor-'));
  const clock = new FakeClock();
  const backend = new MemoryBackend({ clock });
  const store = new FaultyStore(new MemoryStore({ backend }), { clock });
  const candidate = new Candidate(store, { path: '/job', id: 'a', ttl: TTL, clock });
  const log: { line: string; at: number }[] = [];
  const deselects: { reason: DeselectReason; at: number }[] = [];
  candidate.on('deselect', (reason) => deselects.push({ reason, at: clock.now() }));
  const supervisor = new Supervisor(candidate, {
    command: 'sh',
    args: ['-c', options.script, 'job', dir],
    grace: 10,
    restart: options.restart ?? false,
    log: (line) => log.push({ line, at: clock.now() }),
    clock,
    random: () => 1, // the top of the jitter range: delays are exactly 250, 500, 1000 ms...
  });
  let result: number | undefined;
  const running = supervisor.run().then((code) => (result = code));
  cleanup.push(() => void supervisor.stop());
  const file = (name: string): string => join(dir, name);
  const read = (name: string): string[] => (existsSync(file(name)) ? readFileSync(file(name), 'utf8').split('\n').filter(Boolean) : []);
  const logged = (pattern: RegExp) => log.find((entry) => pattern.test(entry.line));
  return { clock, store, candidate, supervisor, log, logged, deselects, file, read, running, result: () => result };
}

describe('Supervisor: the child of `vip run`', () => {
  it(
    'on loss of leadership sends SIGTERM, then SIGKILL to the whole group, both before the local deadline; the next term starts a fresh child',
    async () => {
      // The child ignores nothing but logs SIGTERM; its grandchild ignores SIGTERM
      // outright, so only a SIGKILL to the group can end it.
      const script = `
        trap 'echo "TERM $VIP_TOKEN" >> "$1/log"' TERM
        sh -c 'trap "" TERM; exec sleep 300' &
        echo $! > "$1/grandchild.$VIP_TOKEN"
        echo "start $VIP_TOKEN $$" >> "$1/log"
        while :; do sleep 0.02; done`;
      const t = setup({ script });
      await advanceUntil(t.clock, () => t.read('log').some((line) => line.startsWith('start 1 ')), 'the first child');
      await until(() => existsSync(t.file('grandchild.1')), 'the grandchild');
      const grandchild = Number(readFileSync(t.file('grandchild.1'), 'utf8'));
      expect(alive(grandchild)).toBe(true);

      t.store.partition();
      const deadline = t.clock.now() + t.candidate.timeLeft()! * 1000;

      await advanceUntil(t.clock, () => t.logged(/^sending SIGTERM/) !== undefined, 'SIGTERM');
      // Let the child take its SIGTERM before time moves on to the SIGKILL.
      await until(() => t.read('log').includes('TERM 1'), 'the child to see SIGTERM');
      await advanceUntil(t.clock, () => t.logged(/sending SIGKILL/) !== undefined, 'SIGKILL');
      const term = t.logged(/^sending SIGTERM/)!.at;
      const kill = t.logged(/sending SIGKILL/)!.at;
      expect(term).toBeLessThan(kill);
      expect(kill).toBeLessThan(deadline);
      await until(() => !alive(grandchild), `the grandchild (pid ${grandchild}) to die with its group`);

      await advanceUntil(t.clock, () => t.deselects.length > 0, 'deselect');
      expect(t.deselects).toEqual([{ reason: 'expired', at: deadline }]);

      t.store.heal();
      await advanceUntil(t.clock, () => t.read('log').some((line) => line.startsWith('start ') && !line.startsWith('start 1 ')), 'the next term');
      const starts = t.read('log').filter((line) => line.startsWith('start '));
      expect(starts).toHaveLength(2);
      const [, token, pid] = starts[1]!.split(' ');
      expect(BigInt(token!) > 1n).toBe(true);
      expect(pid).not.toBe(starts[0]!.split(' ')[2]);

      // Stopping ends the new child's grandchild too (SIGKILL after --grace).
      await until(() => existsSync(t.file(`grandchild.${token}`)), 'the second grandchild');
      const second = Number(readFileSync(t.file(`grandchild.${token}`), 'utf8'));
      const stopped = t.supervisor.stop();
      await advanceUntil(t.clock, () => t.result() !== undefined, 'run() to finish');
      await stopped;
      await until(() => !alive(second), `the second grandchild (pid ${second}) to die on stop`);
    },
    60_000,
  );

  it('--restart backs off exponentially, and starts over once the command ran for a while', async () => {
    // Exits at once with 3, except once: while the file "long" exists it runs until "release" appears.
    const script = `
      echo run >> "$1/log"
      if [ -e "$1/long" ]; then rm "$1/long"; while [ ! -e "$1/release" ]; do sleep 0.02; done; fi
      exit 3`;
    const t = setup({ script, restart: true });
    const delays = (): number[] => t.log.flatMap((entry) => /restarting it in (\d+) ms/.exec(entry.line)?.[1] ?? []).map(Number);
    const runs = (): number => t.read('log').length;
    // Election needs no timer on MemoryStore: the clock stays put, so no restart fires unseen.
    await t.clock.advance(0);
    await until(() => runs() === 1, 'the first run');
    for (const [n, expected] of [250, 500, 1000, 2000].entries()) {
      await until(() => delays().length === n + 1, `restart #${n + 1} to be scheduled`);
      expect(delays()[n]).toBe(expected);
      // Nothing starts before the delay is over...
      await t.clock.advance(expected - 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(runs()).toBe(n + 1);
      if (n === 3) writeFileSync(t.file('long'), '');
      // ...and the next run starts when it is.
      await t.clock.advance(1);
      await until(() => runs() === n + 2, `run #${n + 2}`);
    }
    // Run #5 is the long one: 10 s (on the candidate's clock) later it exits, and the backoff starts over.
    await t.clock.advance(10_000);
    writeFileSync(t.file('release'), '');
    await until(() => delays().length === 5, 'the restart after the long run');
    expect(delays()).toEqual([250, 500, 1000, 2000, 250]);
  }, 60_000);
});
