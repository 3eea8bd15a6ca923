import { connect } from 'node:net';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startConsul, startEtcd, startProxy, type ConsulAgent, type EtcdCluster, type TcpProxy } from './harness/index.js';

// The harness itself, checked against the real servers with nothing but fetch and net.
const b64 = (text: string): string => Buffer.from(text).toString('base64');

async function etcdPut(endpoint: string, key: string, value: string, timeoutMs = 3000): Promise<void> {
  const response = await fetch(`${endpoint}/v3/kv/put`, {
    method: 'POST',
    body: JSON.stringify({ key: b64(key), value: b64(value) }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) throw new Error(`put failed: ${response.status} ${await response.text()}`);
}

async function etcdGet(endpoint: string, key: string): Promise<string | undefined> {
  const response = await fetch(`${endpoint}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64(key) }) });
  const body = (await response.json()) as { kvs?: { value: string }[] };
  return body.kvs?.[0] ? Buffer.from(body.kvs[0].value, 'base64').toString() : undefined;
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
});

describe('test harness', () => {
  it('starts a single etcd member that stores and returns a key', async () => {
    const etcd: EtcdCluster = await startEtcd();
    cleanup.push(() => etcd.close());
    await etcdPut(etcd.endpoints[0]!, '/harness/k', 'v');
    expect(await etcdGet(etcd.endpoints[0]!, '/harness/k')).toBe('v');
  });

  it('runs a 3-member etcd cluster that survives one lost member, stops with two, and recovers', async () => {
    const etcd = await startEtcd({ members: 3 });
    cleanup.push(() => etcd.close());
    await etcd.killMember(0);
    await etcd.waitHealthy(); // the two left elect a raft leader if they lost theirs
    await etcdPut(etcd.endpoints[1]!, '/harness/q', 'one down', 10_000);
    await etcd.killMember(1);
    await expect(etcdPut(etcd.endpoints[2]!, '/harness/q', 'no quorum', 2000)).rejects.toThrow();
    await etcd.startMember(0, false);
    await etcd.startMember(1);
    await etcd.waitHealthy();
    await etcdPut(etcd.endpoints[2]!, '/harness/q', 'back');
    expect(await etcdGet(etcd.endpoints[0]!, '/harness/q')).toBe('back');
  });

  it('starts a Consul dev agent that serves KV and comes back empty after a restart', async () => {
    const consul: ConsulAgent = await startConsul();
    cleanup.push(() => consul.close());
    const put = await fetch(`${consul.address}/v1/kv/harness/k`, { method: 'PUT', body: 'v' });
    expect(await put.json()).toBe(true);
    expect(await (await fetch(`${consul.address}/v1/kv/harness/k?raw`)).text()).toBe('v');
    await consul.restart();
    expect((await fetch(`${consul.address}/v1/kv/harness/k`)).status).toBe(404);
  });

  it('proxies TCP, and cuts, stalls and heals the link', async () => {
    const echo = createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => new Promise((resolve) => echo.close(() => resolve())));
    const port = (echo.address() as { port: number }).port;
    const proxy: TcpProxy = await startProxy(port);
    cleanup.push(() => proxy.close());

    const roundTrip = (timeoutMs = 1000): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = connect(proxy.port, '127.0.0.1');
        const timer = setTimeout(() => (socket.destroy(), reject(new Error('no answer'))), timeoutMs);
        socket.on('error', (error) => (clearTimeout(timer), reject(error)));
        socket.on('data', (data) => (clearTimeout(timer), socket.destroy(), resolve(data.toString())));
        socket.write('ping');
      });

    expect(await roundTrip()).toBe('ping');
    proxy.cut();
    await expect(roundTrip()).rejects.toThrow();
    proxy.heal();
    expect(await roundTrip()).toBe('ping');
    proxy.stall();
    await expect(roundTrip(500)).rejects.toThrow('no answer');
    proxy.heal();
    expect(await roundTrip()).toBe('ping');
    expect(proxy.stats.connections).toBeGreaterThanOrEqual(3);
  });
});
