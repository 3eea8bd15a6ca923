import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startEtcd, uniquePrefix, type EtcdCluster } from '../harness/index.js';
import { until, vipProcesses } from '../harness/vip-cli.js';

// `vip run` processes against a real etcd: the guarded command runs on exactly
// one node at a time, dies with its `vip`, and moves to the other node.
const TTL = 2;

const { vip, defer } = vipProcesses();

/**
 * Whether `pid` still runs. A killed process whose parent died stays a zombie
 * until the new parent (PID 1 here) reaps it, and kill(pid, 0) succeeds on a
 * zombie: that would date its death at the reap, up to a few hundred ms late.
 */
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    // Gone between the two looks, or no /proc (not Linux: kill(pid, 0) is all we know).
    return !existsSync('/proc/self/stat');
  }
};

/** The guarded command: logs its start and end, with the machine clock, to a shared file. */
function worker(logFile: string): string[] {
  const script = `
    const fs = require('fs');
    const log = (what) => fs.appendFileSync(${JSON.stringify(logFile)}, JSON.stringify({ what, id: process.env.VIP_ID, token: process.env.VIP_TOKEN, pid: process.pid, at: Date.now() }) + '\\n');
    log('start');
    process.on('SIGTERM', () => { log('stop'); process.exit(0); });
    setInterval(() => {}, 1000);`;
  return [process.execPath, '-e', script];
}

interface WorkerLine {
  what: 'start' | 'stop';
  id: string;
  token: string;
  pid: number;
  at: number;
}
const readLog = (file: string): WorkerLine[] =>
  existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as WorkerLine) : [];

async function setup() {
  const etcd: EtcdCluster = await startEtcd();
  defer(() => etcd.close());
  const dir = mkdtempSync(join(tmpdir(), 'vip-run-'));
  return { etcd, store: etcd.connectionString, path: `${uniquePrefix('vip-run')}job`, logFile: join(dir, 'workers.log') };
}

describe('vip run against a real etcd', () => {
  it('two vip run processes: exactly one command runs; kill -9 of its vip kills it, and the other starts its own after the ttl', async () => {
    const { store, path, logFile } = await setup();
    const watcher = vip(['watch', '--store', store, '--path', path, '--json']);
    await until(() => watcher.out().includes('\n'), 'the watcher to report the empty key');
    const first = vip(['run', '--store', store, '--path', path, '--id', 'first', '--ttl', String(TTL), '--', ...worker(logFile)]);
    await until(() => readLog(logFile).length === 1, 'the first command');
    const second = vip(['run', '--store', store, '--path', path, '--id', 'second', '--ttl', String(TTL), '--', ...worker(logFile)]);
    await until(() => second.err().includes('leader is first'), 'the second vip to see the leader');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(readLog(logFile).map((line) => `${line.what}:${line.id}`)).toEqual(['start:first']);

    const status = vip(['status', '--store', store, '--path', path, '--json']);
    expect(await status.exited).toBe(0);
    const running = readLog(logFile)[0]!;
    expect(JSON.parse(status.out())).toEqual({ leader: { id: 'first', value: '', token: running.token } });

    const killedAt = Date.now();
    first.child.kill('SIGKILL');
    await until(() => !alive(running.pid), 'the first command to die with its vip', 10_000);
    const diedAt = Date.now();
    await until(() => readLog(logFile).some((line) => line.what === 'start' && line.id === 'second'), 'the second command', 30_000);
    const next = readLog(logFile).find((line) => line.id === 'second')!;
    expect(next.at).toBeGreaterThanOrEqual(diedAt - 50);
    expect(next.at - killedAt).toBeGreaterThanOrEqual((TTL * 1000 * 2) / 3); // the lease had to expire
    expect(BigInt(next.token) > BigInt(running.token)).toBe(true);

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(readLog(logFile).at(-1)).toMatchObject({ what: 'stop', id: 'second' });
    const after = vip(['status', '--store', store, '--path', path]);
    expect(await after.exited).toBe(3);
    expect(after.out().trim()).toBe('no leader');

    watcher.child.kill('SIGINT');
    await watcher.exited;
    const seen = watcher.out().trim().split('\n').map((line) => (JSON.parse(line) as { leader: { id: string } | null }).leader?.id ?? null);
    expect(seen).toEqual([null, 'first', null, 'second', null]);
  });

  it("propagates the command's exit code and resigns at once", async () => {
    const { store, path } = await setup();
    const run = vip(['run', '--store', store, '--path', path, '--ttl', '10', '--', process.execPath, '-e', 'process.exit(5)']);
    expect(await run.exited).toBe(5);
    const status = vip(['status', '--store', store, '--path', path]);
    expect(await status.exited).toBe(3); // resigned: no waiting for a 10 s lease
  });
});

