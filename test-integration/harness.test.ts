// The harness itself, checked against the real servers with nothing but Node
// built-ins (fetch, net, child_process) on the client side.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import {
  etcdctlBinary,
  freePorts,
  killAllChildren,
  runningChildren,
  spawnJsonLines,
  startConsul,
  startEtcd,
  startProxy,
  uniqueConsulPrefix,
  uniquePrefix,
} from './harness/index.js';
import { WATCHDOG_SOURCE } from './harness/processes.js';

const b64 = (text: string): string => Buffer.from(text).toString('base64');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** etcd's gRPC gateway: POST /v3/kv/put with base64 key and value. */
async function etcdPut(endpoint: string, key: string, value: string, timeoutMs = 3000): Promise<void> {
  const response = await fetch(`${endpoint}/v3/kv/put`, {
    method: 'POST',
    body: JSON.stringify({ key: b64(key), value: b64(value) }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) throw new Error(`put failed: ${response.status} ${await response.text()}`);
}

async function etcdGet(endpoint: string, key: string): Promise<string | undefined> {
  const response = await fetch(`${endpoint}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64(key) }), signal: AbortSignal.timeout(3000) });
  const body = (await response.json()) as { kvs?: { value: string }[] };
  return body.kvs?.[0] ? Buffer.from(body.kvs[0].value, 'base64').toString() : undefined;
}

/** Which member leads: POST /v3/maintenance/status names the leader and the answering member. */
async function etcdLeader(endpoints: string[]): Promise<number> {
  for (;;) {
    const statuses = await Promise.all(
      endpoints.map(async (endpoint) => {
        const response = await fetch(`${endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(2000) });
        return (await response.json()) as { header: { member_id: string }; leader: string };
      }),
    );
    const index = statuses.findIndex((status) => status.header.member_id === status.leader);
    if (index >= 0) return index;
    await sleep(50);
  }
}

/** Retry `action` until it succeeds or `timeoutMs` passes (a put right after a leader died waits for the next election). */
async function eventually<T>(action: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await action();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
});
afterAll(async () => {
  await killAllChildren();
  expect(runningChildren()).toBe(0);
});

describe('global setup', () => {
  it('provides a shared etcd and a shared Consul agent', async () => {
    const [endpoint] = inject('etcdEndpoints');
    const key = `${uniquePrefix('shared')}k`;
    await etcdPut(endpoint!, key, 'v');
    expect(await etcdGet(endpoint!, key)).toBe('v');

    const consul = inject('consulAddress');
    expect(await (await fetch(`${consul}/v1/status/leader`)).json()).toMatch(/^127\.0\.0\.1:\d+$/);
    const consulKey = `${uniqueConsulPrefix('shared')}k`;
    expect(await (await fetch(`${consul}/v1/kv/${consulKey}`, { method: 'PUT', body: 'v' })).json()).toBe(true);
  });
});

describe('ports', () => {
  it('hands out distinct free ports, below the ephemeral range', async () => {
    const ports = await freePorts(20);
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) expect(port).toBeLessThan(32768);
    const again = await freePorts(20);
    expect(again.filter((port) => ports.includes(port))).toEqual([]);
  });
});

describe('etcd', () => {
  it('starts a single member that stores keys (gRPC gateway, etcdctl) and serves v2 when asked', async () => {
    const etcd = await startEtcd({ enableV2: true });
    cleanup.push(() => etcd.close());
    const endpoint = etcd.endpoints[0]!;
    expect(endpoint).toBe(`http://127.0.0.1:${etcd.member(0).clientPort}`);
    expect(etcd.connectionString).toBe(`etcd://127.0.0.1:${etcd.member(0).clientPort}`);

    await etcdPut(endpoint, '/harness/k', 'gateway');
    const { stdout } = await promisify(execFile)(etcdctlBinary(), ['--endpoints', endpoint, 'get', '/harness/k', '--print-value-only']);
    expect(stdout.trim()).toBe('gateway');

    // The v2 API (a separate key space) for the seed module `locked`.
    const v2 = await fetch(`${endpoint}/v2/keys/harness`, { method: 'PUT', body: new URLSearchParams({ value: 'v2' }) });
    expect(v2.status).toBe(201);
  });

  it('reports a failed start with the server output, and leaves nothing running', async () => {
    const before = runningChildren();
    await expect(startEtcd({ extraArgs: ['--no-such-flag'], readyTimeoutMs: 10_000 })).rejects.toThrow(/exited .*no-such-flag/s);
    expect(runningChildren()).toBe(before);
  });

  it('runs a 3-member cluster that survives the loss of its leader, stops without quorum, and recovers', async () => {
    const etcd = await startEtcd({ members: 3 });
    cleanup.push(() => etcd.close());
    const endpoints = etcd.endpoints;
    await etcdPut(endpoints[0]!, '/harness/q', 'all up');

    // Kill the leader: the other two elect a new one and go on.
    const leader = await etcdLeader(endpoints);
    await etcd.killMember(leader);
    expect(etcd.member(leader).process.running).toBe(false);
    const [second, third] = [0, 1, 2].filter((i) => i !== leader) as [number, number];
    await eventually(() => etcdPut(endpoints[second]!, '/harness/q', 'one down', 1000), 15_000);
    expect(await etcdGet(endpoints[third]!, '/harness/q')).toBe('one down');

    // A second member gone (cleanly this time): no quorum, a put cannot commit.
    await etcd.stopMember(second);
    await expect(etcdPut(endpoints[third]!, '/harness/q', 'no quorum', 2000)).rejects.toThrow();

    // Both back, same ports and data: healthy again, and the first one has caught up.
    await etcd.startMember(leader, false);
    await etcd.startMember(second);
    await etcd.waitHealthy();
    await eventually(() => etcdPut(endpoints[third]!, '/harness/q', 'back', 1000), 15_000);
    expect(await etcdGet(endpoints[leader]!, '/harness/q')).toBe('back');

    // A restart of the whole cluster keeps the data.
    await etcd.restart();
    expect(await eventually(() => etcdGet(endpoints[0]!, '/harness/q'), 15_000)).toBe('back');
  });
});

describe('consul', () => {
  it('starts a dev agent with a config file that serves KV, and comes back empty after restart()', async () => {
    // session_ttl_min lowers the 10 s minimum session TTL: proof that the config file is read.
    const consul = await startConsul({ configJson: { session_ttl_min: '1s' } });
    cleanup.push(() => consul.close());
    expect(consul.address).toBe(`http://127.0.0.1:${consul.port}`);
    const key = `${uniqueConsulPrefix('harness')}k`;
    expect(await (await fetch(`${consul.address}/v1/kv/${key}`, { method: 'PUT', body: 'v' })).json()).toBe(true);
    expect(await (await fetch(`${consul.address}/v1/kv/${key}?raw`)).text()).toBe('v');
    const session = await fetch(`${consul.address}/v1/session/create`, { method: 'PUT', body: JSON.stringify({ TTL: '2s' }) });
    expect(session.status, await session.clone().text()).toBe(200);

    await consul.restart();
    expect((await fetch(`${consul.address}/v1/kv/${key}`)).status).toBe(404);
    expect(await (await fetch(`${consul.address}/v1/kv/${key}`, { method: 'PUT', body: 'again' })).json()).toBe(true);

    await consul.stop();
    await expect(fetch(`${consul.address}/v1/status/leader`)).rejects.toThrow();
    await consul.start();
    expect(await (await fetch(`${consul.address}/v1/status/leader`)).json()).not.toBe('');
  });
});

describe('TCP proxy', () => {
  async function echoServer(): Promise<number> {
    const echo = createServer((socket) => socket.on('error', () => {}).pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => echo.close(() => resolve())));
    return (echo.address() as { port: number }).port;
  }

  /** A client connection that collects what it receives and how it ended. */
  function client(port: number): { socket: Socket; received: () => string; closed: Promise<string> } {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    const closed = new Promise<string>((resolve) => {
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      socket.on('close', () => resolve('closed'));
    });
    cleanup.push(async () => socket.destroy());
    return { socket, received: () => data, closed };
  }

  async function until(condition: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  }

  it('forwards and counts bytes; cut() resets connections and refuses new ones until heal()', async () => {
    const proxy = await startProxy('127.0.0.1', await echoServer());
    cleanup.push(() => proxy.close());

    const first = client(proxy.port);
    first.socket.write('ping');
    await until(() => first.received() === 'ping', 'the echo');
    expect(proxy.stats).toMatchObject({ connections: 1, bytesUp: 4, bytesDown: 4 });
    expect(proxy.activeConnections).toBe(1);

    proxy.cut();
    expect(await first.closed).toBe('ECONNRESET');
    const refused = client(proxy.port);
    expect(await refused.closed).toBe('ECONNRESET');
    expect(proxy.stats.refused).toBe(1);

    proxy.heal();
    const after = client(proxy.port);
    after.socket.write('again');
    await until(() => after.received() === 'again', 'the echo after heal');
    expect(proxy.stats.connections).toBe(2);
  });

  it('stall() holds every byte, on open and on new connections, and heal() delivers them', async () => {
    const proxy = await startProxy(await echoServer());
    cleanup.push(() => proxy.close());
    const open = client(proxy.port);
    open.socket.write('a');
    await until(() => open.received() === 'a', 'the echo');

    proxy.stall();
    open.socket.write('b');
    const late = client(proxy.port);
    await new Promise<void>((resolve) => late.socket.once('connect', () => resolve()));
    late.socket.write('c');
    await sleep(300);
    expect(open.received()).toBe('a');
    expect(late.received()).toBe('');
    expect(proxy.stats.bytesUp).toBe(1);
    expect(proxy.activeConnections).toBe(2);

    proxy.heal();
    await until(() => open.received() === 'ab' && late.received() === 'c', 'the held bytes');
    expect(proxy.mode).toBe('open');
  });
});

describe('processes', () => {
  const script = `
    let n = 0;
    const timer = setInterval(() => console.log(JSON.stringify({ tick: ++n })), 20);
    process.stdin.on('data', (data) => {
      if (String(data).trim() === 'quit') { clearInterval(timer); console.log(JSON.stringify({ bye: true })); process.exit(3); }
    });
    console.log('not json');
    console.error('to stderr');
  `;

  it('spawns a JSON-lines process: waitFor, iteration, stdin, exit', async () => {
    const child = spawnJsonLines<{ tick?: number; bye?: boolean }>(process.execPath, ['-e', script], { SOME_VAR: '1' });
    expect(await child.waitFor((line) => (line.tick ?? 0) >= 3, 5000)).toEqual({ tick: 3 });
    const seen: number[] = [];
    for await (const line of child) {
      seen.push(line.tick!);
      if (seen.length === 5) break;
    }
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    child.send('quit');
    expect(await child.exited).toEqual({ code: 3, signal: null });
    expect(child.lines.at(-1)).toEqual({ bye: true });
    expect(child.otherOutput).toEqual(['not json']);
    expect(child.stderr()).toContain('to stderr');
    await expect(child.waitFor((line) => line.tick === 10_000, 1000)).rejects.toThrow(/exited before/);
  });

  it('registers every child: kill() and killAllChildren() end them', async () => {
    const before = runningChildren();
    const a = spawnJsonLines(process.execPath, ['-e', script]);
    const b = spawnJsonLines(process.execPath, ['-e', script]);
    await Promise.all([a.waitFor(() => true), b.waitFor(() => true)]);
    expect(runningChildren()).toBe(before + 2);
    await expect(a.waitFor(() => false, 100)).rejects.toThrow(/after 100 ms[\s\S]*to stderr/);
    expect(await a.kill()).toEqual({ code: null, signal: 'SIGKILL' });
    await killAllChildren();
    expect(await b.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(runningChildren()).toBe(0);
  });

  it('the watchdog kills registered children and removes temp dirs when their parent dies without cleaning up', async () => {
    // A parent that starts the watchdog and a long-running child, registers the
    // child and a temp dir, prints the pids, and then is SIGKILLed: no 'exit' handler runs.
    const parent = `
      const { spawn } = require('node:child_process');
      const watchdog = spawn(process.execPath, ['-e', process.env.WATCHDOG], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
      const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      watchdog.stdin.write('+' + child.pid + '\\n>' + process.env.DIR + '\\n');
      console.log(JSON.stringify({ child: child.pid, watchdog: watchdog.pid }));
      setInterval(() => {}, 1000);
    `;
    const dir = mkdtempSync(join(tmpdir(), 'vip-harness-'));
    writeFileSync(join(dir, 'data'), 'x');
    const proc = spawnJsonLines<{ child: number; watchdog: number }>(process.execPath, ['-e', parent], { WATCHDOG: WATCHDOG_SOURCE, DIR: dir });
    const { child, watchdog } = await proc.waitFor(() => true, 5000);
    // A killed orphan stays a zombie until PID 1 reaps it, and a container's PID 1 may never do so.
    const alive = (pid: number): boolean => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    expect(alive(child)).toBe(true);
    await proc.kill('SIGKILL');
    await until(() => !alive(child) && !alive(watchdog), 'the orphan and the watchdog to be gone');
    expect(existsSync(dir)).toBe(false);

    async function until(condition: () => boolean, what: string): Promise<void> {
      const deadline = Date.now() + 5000;
      while (!condition()) {
        if (Date.now() > deadline) {
          // Do not leave them behind if the watchdog failed.
          for (const pid of [child, watchdog]) if (alive(pid)) process.kill(pid, 'SIGKILL');
          throw new Error(`timed out waiting for ${what}`);
        }
        await sleep(20);
      }
    }
  });
});
