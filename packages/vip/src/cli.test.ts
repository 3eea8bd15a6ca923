import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

// The CLI as a user runs it: a real `vip` process supervising a real child.
// memory:// keeps the election inside that one process; elections across
// processes are tested against real etcd in test-integration/.
const bin = fileURLToPath(new URL('../bin/vip.mjs', import.meta.url));
const spawned: ChildProcess[] = [];
afterEach(() => {
  for (const child of spawned.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function vip(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  spawned.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, out: () => stdout, err: () => stderr };
}

async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const node = (script: string): string[] => [process.execPath, '-e', script];
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('vip run', () => {
  it('runs the command with VIP_TOKEN, VIP_PATH, VIP_ID, VIP_VALUE and exits with its code', async () => {
    const run = vip(['run', '--store', 'memory://', '--path', '/job', '--id', 'me', '--value', 'v', '--', ...node(
      'console.log([process.env.VIP_TOKEN, process.env.VIP_PATH, process.env.VIP_ID, process.env.VIP_VALUE].join(" ")); process.exit(7)',
    )]);
    expect((await run.exited).code).toBe(7);
    expect(run.out().trim()).toBe('1 /job me v');
    expect(run.err()).toContain('resigning');
  });

  it('takes --store from VIP_STORE', async () => {
    const run = vip(['run', '--path', '/job', '--', ...node('process.exit(0)')], { VIP_STORE: 'memory://' });
    expect((await run.exited).code).toBe(0);
  });

  it('forwards SIGTERM to the command, waits for it, then exits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vip-cli-'));
    const marker = join(dir, 'got-sigterm');
    const run = vip(['run', '--store', 'memory://', '--path', '/job', '--', ...node(
      `process.on("SIGTERM", () => { require("fs").writeFileSync(${JSON.stringify(marker)}, "yes"); process.exit(0); }); console.log("ready"); setInterval(() => {}, 1000)`,
    )]);
    await until(() => run.out().includes('ready'), 'the command to start');
    run.child.kill('SIGTERM');
    const { code } = await run.exited;
    expect(existsSync(marker) && readFileSync(marker, 'utf8')).toBe('yes');
    expect(code).toBe(0);
  });

  it('kills the command with SIGKILL when it ignores SIGTERM past --grace', async () => {
    const run = vip(['run', '--store', 'memory://', '--path', '/job', '--grace', '0.5', '--', ...node(
      'process.on("SIGTERM", () => {}); process.on("SIGINT", () => {}); console.log("ready"); setInterval(() => {}, 1000)',
    )]);
    await until(() => run.out().includes('ready'), 'the command to start');
    run.child.kill('SIGINT');
    const { code } = await run.exited;
    expect(code).toBe(128 + 9);
    expect(run.err()).toContain('sending SIGKILL');
  });

  it.runIf(process.platform === 'linux')('never leaves the command running when vip itself is killed with SIGKILL', async () => {
    const run = vip(['run', '--store', 'memory://', '--path', '/job', '--', ...node('console.log(process.pid); setInterval(() => {}, 1000)')]);
    await until(() => /\d+\n/.test(run.out()), 'the command to print its pid');
    const pid = Number(run.out().trim());
    expect(alive(pid)).toBe(true);
    run.child.kill('SIGKILL');
    await run.exited;
    await until(() => !alive(pid), `the command (pid ${pid}) to die with vip`);
  });

  // The command forks a grandchild, as a shell script running a job in the background does.
  const forking = (dir: string): string[] => ['sh', '-c', `sleep 300 & echo $! > "${dir}/grandchild"; wait`];
  const grandchildOf = async (dir: string): Promise<number> => {
    await until(() => existsSync(join(dir, 'grandchild')) && readFileSync(join(dir, 'grandchild'), 'utf8').endsWith('\n'), 'the grandchild');
    const pid = Number(readFileSync(join(dir, 'grandchild'), 'utf8'));
    expect(alive(pid)).toBe(true);
    return pid;
  };

  it.runIf(process.platform !== 'win32')('never leaves a grandchild of the command running when vip is killed with SIGKILL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vip-cli-'));
    const run = vip(['run', '--store', 'memory://', '--path', '/job', '--', ...forking(dir)]);
    const pid = await grandchildOf(dir);
    run.child.kill('SIGKILL');
    await run.exited;
    await until(() => !alive(pid), `the grandchild (pid ${pid}) to die with vip`);
  });

  it.runIf(process.platform !== 'win32')('stopping vip ends the grandchildren of the command too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vip-cli-'));
    const run = vip(['run', '--store', 'memory://', '--path', '/job', '--', ...forking(dir)]);
    const pid = await grandchildOf(dir);
    run.child.kill('SIGTERM');
    await run.exited;
    await until(() => !alive(pid), `the grandchild (pid ${pid}) to end when vip stops`);
  });

  it('--grace 0 sends SIGKILL right after SIGTERM', async () => {
    const run = vip(['run', '--store', 'memory://', '--path', '/job', '--grace', '0', '--', ...node(
      'process.on("SIGTERM", () => {}); console.log("ready"); setInterval(() => {}, 1000)',
    )]);
    await until(() => run.out().includes('ready'), 'the command to start');
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(128 + 9);
    expect(run.err()).toContain('SIGKILL in 0 s');
  });

  it('--restart starts the command again when it exits while still leading', async () => {
    const run = vip(['run', '--store', 'memory://', '--path', '/job', '--restart', '--', ...node('console.log("run"); setTimeout(() => process.exit(3), 50)')]);
    await until(() => (run.out().match(/run/g) ?? []).length >= 3, 'three runs');
    run.child.kill('SIGTERM');
    await run.exited;
    expect(run.err()).toMatch(/restarting it in \d+ ms \(--restart\)/);
  });

  it('refuses bad usage with exit code 2 and a message naming the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['run', '--store', 'memory://', '--path', '/j', '--ttl', '0', '--', 'true'], /--ttl must be a number of seconds greater than 0 \(got "0"\)/],
      [['run', '--store', 'memory://', '--path', '/j'], /a command to run is required after --/],
      [['run', '--store', 'memory://', '--', 'true'], /--path is required/],
      [['status', '--store', 'nope://x', '--path', '/j'], /unknown scheme "nope:\/\/"/],
      [['run', '--store', 'memory://', '--path', '', '--', 'true'], /--path is required/],
      [['bogus'], /unknown command "bogus"/],
      [['run', '--store', 'memory://', '--path', '/j', 'extra', '--', 'true'], /unexpected argument "extra" before --/],
      [['run', '--store', 'memory://', '--path', '/j', 'true'], /the command goes after --, e\.g\. vip run --store memory:\/\/ --path \/j -- true/],
      [['run', '--store', 'memory://', '--path', '/j', 'sh', '-c', 'echo hi'], /the command goes after --, e\.g\. vip run --store memory:\/\/ --path \/j -- sh -c 'echo hi'\n/],
      [['run', '--store', 'memory://', '--path', '/j', '--json', '--', 'true'], /unknown option --json; options of vip run: --store, --path/],
      [['run', '--store', 'memory://', '--path', '/j', '--tll', '3', '--', 'true'], /^vip run: unknown option --tll \(did you mean --ttl\?\)\nRun "vip run --help" for usage\.\n$/],
      [['run', '--store', 'memory://', '--path', '/j', '--ttl', '-1', '--', 'true'], /--ttl must be a number of seconds greater than 0 \(got "-1"\)/],
      [['run', '--store', 'memory://', '--path', '/j', '--id', '', '--', 'true'], /^vip run: --id must be /],
      [['stauts'], /unknown command "stauts" \(did you mean status\?\)/],
      [[], /vip: a command is required: run, status or watch/],
      [['run', '--store', 'memory://', '--path', '/j', '--grace=-1', '--', 'true'], /--grace must be a number of seconds >= 0 \(got "-1"\)/],
      [['status', '--store', 'memory://', '--path', '/j', '--timeout', '0'], /--timeout must be a number of seconds greater than 0/],
      [['status', '--store', 'etcds://root:s3cret@h:99999', '--path', '/j'], /"etcds:\/\/root:\*\*\*@h:99999" has port 99999 out of range/],
    ];
    for (const [args, message] of cases) {
      const run = vip(args);
      expect((await run.exited).code, args.join(' ')).toBe(2);
      expect(run.err()).toMatch(message);
      expect(run.err()).not.toContain('s3cret');
    }
  }, 90_000); // eighteen CLI processes, one after another: slow on a loaded machine, not a timing claim

  it('explains every command with --help', async () => {
    for (const command of ['run', 'status', 'watch']) {
      const run = vip([command, '--help']);
      expect((await run.exited).code).toBe(0);
      expect(run.out()).toContain(`vip ${command}`);
      expect(run.out()).toContain('Example:');
    }
  });
});

describe('vip run --http', () => {
  it('serves /leader, /healthz and /metrics for its election while the command runs', async () => {
    const run = vip(['run', '--store', 'memory://', '--path', '/job', '--id', 'me', '--http', '127.0.0.1:0', '--', ...node('console.log("ready"); setInterval(() => {}, 1000)')]);
    await until(() => run.out().includes('ready'), 'the command to start');
    const url = /serving \/metrics, \/healthz and \/leader on (http:\/\/\S+)/.exec(run.err())?.[1];
    expect(url, run.err()).toBeDefined();
    const leader = (await (await fetch(`${url}/leader`)).json()) as { path: string; leading: boolean; leader: { id: string; token: string } };
    expect(leader).toMatchObject({ path: '/job', leading: true, leader: { id: 'me', token: '1' } });
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.text()).toMatch(/^ok: \/job: leading/);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('vip_leader{path="/job",id="me"} 1');
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(143);
  });

  it('fails at start, before the command runs, on an address it cannot serve', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    const dir = mkdtempSync(join(tmpdir(), 'vip-cli-'));
    const marker = join(dir, 'ran');
    const command = node(`require("fs").writeFileSync(${JSON.stringify(marker)}, "yes")`);
    try {
      const cases: [string, number, RegExp][] = [
        [`127.0.0.1:${port}`, 1, new RegExp(`^vip run: --http: cannot listen on 127.0.0.1:${port}: port ${port} on 127.0.0.1 is in use`)],
        ['192.0.2.1:9464', 1, /^vip run: --http: cannot listen on 192.0.2.1:9464: 192.0.2.1 is not an address of this machine/],
        ['9464', 2, /^vip run: --http must be HOST:PORT such as 127.0.0.1:9464.*\(a port alone is written :9464\)/],
        ['localhost:99999', 2, /^vip run: --http must be HOST:PORT/],
      ];
      for (const [address, code, message] of cases) {
        const run = vip(['run', '--store', 'memory://', '--path', '/job', '--http', address, '--', ...command]);
        expect((await run.exited).code, address).toBe(code);
        expect(run.err(), address).toMatch(message);
      }
      expect(existsSync(marker)).toBe(false);
    } finally {
      taken.close();
    }
  }, 30_000); // four CLI processes one after another: slow on a loaded machine, not a timing claim
});

describe('vip status', () => {
  it('gives up after --timeout when the store does not answer, naming the store (password hidden) and the cause', async () => {
    // A server that accepts connections and never answers: the store client waits (and retries) forever.
    const sockets = new Set<import('node:net').Socket>();
    const server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      for (const scheme of ['etcd', 'consul']) {
        const run = vip(['status', '--store', `${scheme}://root:s3cret@127.0.0.1:${port}`.replace(scheme === 'consul' ? 'root:s3cret@' : '', ''), '--path', 'j', '--timeout', '1']);
        expect((await run.exited).code).toBe(1);
        const store = scheme === 'consul' ? `consul://127.0.0.1:${port}` : `etcd://root:***@127.0.0.1:${port}`;
        expect(run.err()).toBe(`vip status: could not read "j" from the store ${store}: no answer within 1 s (--timeout)\n`);
      }
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  }, 30_000);

  it('reports a store that refuses the connection with exit code 1 and the cause', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    const run = vip(['status', '--store', `consul://127.0.0.1:${port}`, '--path', 'j', '--timeout', '5']);
    expect((await run.exited).code).toBe(1);
    expect(run.err()).toContain(`could not read "j" from the store consul://127.0.0.1:${port}: `);
    expect(run.err()).toContain('ECONNREFUSED');
  });
});
