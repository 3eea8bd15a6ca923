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

/** The log's lines from the one matching `from` to the one matching `to`, without store errors. */
function lines(log: { line: string; at: number }[], from: RegExp, to: RegExp): string[] {
  const own = log.filter((entry) => !entry.line.startsWith('store error: '));
  const start = own.findIndex((entry) => from.test(entry.line));
  const end = own.findIndex((entry, i) => i >= start && to.test(entry.line));
  expect(start, `a line matching ${from}`).toBeGreaterThanOrEqual(0);
  expect(end, `a line matching ${to} after it`).toBeGreaterThanOrEqual(0);
  return own.slice(start, end + 1).map((entry) => entry.line);
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
      // Its exit is seen (in real time) before the clock moves on to the deadline.
      await until(() => t.logged(/^sh exited/) !== undefined, 'the exit of the child');

      await advanceUntil(t.clock, () => t.deselects.length > 0, 'deselect');
      expect(t.deselects).toEqual([{ reason: 'expired', at: deadline }]);
      // The log tells it in the order it happened: the deselect at the deadline
      // does not claim to be stopping a child that is gone already.
      expect(lines(t.log, /^the store has not confirmed/, /^no longer leading/)).toEqual([
        'the store has not confirmed leadership; 2500 ms to the local deadline: stopping sh',
        'sending SIGTERM to sh; SIGKILL in 2 s',
        'sh still running; sending SIGKILL',
        'sh exited (signal SIGKILL) after SIGKILL',
        'no longer leading (expired); sh had already exited',
      ]);
      expect(t.logged(/^no longer leading/)!.at).toBe(deadline);

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
      // The last line says how the child ended, before run() resolves.
      expect(lines(t.log, /^SIGTERM: stopping/, /resigning$/)).toEqual([
        'SIGTERM: stopping',
        'sending SIGTERM to sh; SIGKILL in 10 s',
        'sh still running; sending SIGKILL',
        'sh exited (signal SIGKILL) after SIGKILL; resigning',
      ]);
      expect(t.log.at(-1)!.line).toBe('sh exited (signal SIGKILL) after SIGKILL; resigning');
    },
    60_000,
  );

  it('on SIGTERM to vip, says how the child exited before it resigns', async () => {
    const t = setup({ script: `trap 'exit 0' TERM; echo start >> "$1/log"; while :; do sleep 0.02; done` });
    await advanceUntil(t.clock, () => t.read('log').includes('start'), 'the child');
    await t.supervisor.stop();
    await advanceUntil(t.clock, () => t.result() !== undefined, 'run() to finish');
    expect(t.result()).toBe(0);
    expect(t.log.map((entry) => entry.line)).toEqual([
      'no leader',
      'leading /job (token 1); starting sh',
      'SIGTERM: stopping',
      'sending SIGTERM to sh; SIGKILL in 10 s',
      'sh exited (code 0) after SIGTERM; resigning',
    ]);
  }, 30_000);

  it('a leadership that ends while the child is still stopping says so, and does not stop it twice', async () => {
    // The child logs SIGTERM and goes on: only the SIGKILL ends it.
    const t = setup({ script: `trap 'echo TERM >> "$1/log"' TERM; echo start >> "$1/log"; while :; do sleep 0.02; done` });
    await advanceUntil(t.clock, () => t.read('log').includes('start'), 'the child');
    t.store.partition();
    await advanceUntil(t.clock, () => t.logged(/^sending SIGTERM/) !== undefined, 'SIGTERM');
    await until(() => t.read('log').includes('TERM'), 'the child to see SIGTERM');
    // The store confirms the hold after the warning after all: the candidate resigns
    // (early-warning.ts), while the child has not yet exited.
    t.store.heal();
    await advanceUntil(t.clock, () => t.deselects.length > 0, 'deselect');
    expect(t.deselects.map((d) => d.reason)).toEqual(['resigned']);
    await advanceUntil(t.clock, () => t.logged(/^sh exited/) !== undefined, 'the exit of the child');
    expect(lines(t.log, /^the store has not confirmed/, /^sh exited/)).toEqual([
      'the store has not confirmed leadership; 2500 ms to the local deadline: stopping sh',
      'sending SIGTERM to sh; SIGKILL in 2 s',
      expect.stringMatching(/^no longer leading \(resigned\); sh is already stopping \(SIGTERM sent \d+ ms ago\)$/),
      // It campaigns again at once (holdOff 0) and wins: the new child waits for the old one.
      'no leader',
      'leading /job (token 2); starting sh, once the previous sh has exited',
      'sh still running; sending SIGKILL',
      'sh exited (signal SIGKILL) after SIGKILL',
    ]);
    await advanceUntil(t.clock, () => t.read('log').filter((line) => line === 'start').length === 2, 'the next child');
    expect(t.log.filter((entry) => entry.line.startsWith('sending SIG'))).toHaveLength(1);
    // It ignores SIGTERM too: stopping takes the SIGKILL after --grace.
    const stopped = t.supervisor.stop();
    await advanceUntil(t.clock, () => t.result() !== undefined, 'run() to finish');
    await stopped;
  }, 30_000);

  it('a follower logs the leader with its token, so that a new term of the same leader shows', async () => {
    const clock = new FakeClock();
    const backend = new MemoryBackend({ clock });
    const other = new Candidate(new MemoryStore({ backend }), { path: '/job', id: 'b', ttl: TTL, clock });
    // Ours watches, but its campaigns fail: it stays a follower.
    const store = new FaultyStore(new MemoryStore({ backend }), { clock }).failAll(['compareAndSwap']);
    const candidate = new Candidate(store, { path: '/job', id: 'a', ttl: TTL, clock });
    const log: string[] = [];
    const supervisor = new Supervisor(candidate, { command: 'true', args: [], grace: 10, restart: false, log: (line) => log.push(line), clock });
    await other.start();
    const running = supervisor.run();
    cleanup.push(() => void other.stop());
    const leaders = (): string[] => log.filter((line) => !line.startsWith('store error: '));
    await advanceUntil(clock, () => leaders().includes('leader is b (token 1)'), 'the first term of b');
    await other.resign({ holdOff: 0 });
    await advanceUntil(clock, () => leaders().some((line) => line.startsWith('leader is b (token ') && line !== 'leader is b (token 1)'), 'the next term of b');
    expect(leaders()).toEqual(['leader is b (token 1)', 'no leader', expect.stringMatching(/^leader is b \(token [2-9]\d*\)$/)]);
    await supervisor.stop();
    await running;
    await other.stop();
  }, 30_000);

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
