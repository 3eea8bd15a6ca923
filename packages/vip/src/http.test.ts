import { createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { Candidate, MemoryBackend, MemoryStore, VipOptionError } from '@vip/core';
import { VipMetrics } from '@vip/core/metrics';
import { FakeClock, FaultyStore } from '@vip/core/testing';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { parseListenAddress, serveHttp, VipHttpError, type HttpServer } from './http.js';
import { vip } from './index.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(...args: Parameters<typeof serveHttp>): Promise<HttpServer> {
  const server = await serveHttp(...args);
  cleanups.push(() => server.close());
  return server;
}

function candidates(count: number, clock = new FakeClock()) {
  const backend = new MemoryBackend({ clock });
  return Array.from({ length: count }, (_, i) => {
    const candidate = new Candidate(new MemoryStore({ backend }), { path: '/job', id: `n${i}`, value: `v${i}`, ttl: 3, clock, random: () => 0.5 });
    candidate.on('error', () => {});
    cleanups.push(async () => {
      const stopped = candidate.stop();
      let done = false;
      void stopped.then(() => (done = true));
      for (let i = 0; i < 500 && !done; i++) await clock.advance(10);
      await stopped;
    });
    return { candidate, clock };
  });
}

async function get(server: HttpServer, path: string, method = 'GET'): Promise<{ status: number; type: string | null; body: string }> {
  const response = await fetch(server.url + path, { method });
  return { status: response.status, type: response.headers.get('content-type'), body: await response.text() };
}

describe('serveHttp', () => {
  it('serves /leader, /healthz and /metrics for a leader and a follower, each from its own server', async () => {
    const [a, b] = candidates(2);
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    await b!.candidate.start();
    await b!.clock.until(() => b!.candidate.holder()?.id === 'n0');
    const leaderServer = await serve(a!.candidate, { listen: '127.0.0.1:0' });
    const followerServer = await serve(b!.candidate, { listen: '127.0.0.1:0' });
    expect(leaderServer.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(leaderServer.port).toBeGreaterThan(0);

    const token = a!.candidate.token()!.toString();
    const leader = await get(leaderServer, '/leader');
    expect(leader.status).toBe(200);
    expect(leader.type).toMatch(/^application\/json/);
    expect(JSON.parse(leader.body)).toMatchObject({
      path: '/job',
      id: 'n0',
      leader: { id: 'n0', value: 'v0', token },
      leading: true,
      since: a!.candidate.termStart()!.toISOString(),
      healthy: true,
    });
    expect(JSON.parse(leader.body).timeLeft).toBeGreaterThan(2);
    const follower = JSON.parse((await get(followerServer, '/leader')).body);
    expect(follower).toMatchObject({ path: '/job', id: 'n1', leader: { id: 'n0', token }, leading: false, timeLeft: null, healthy: true });

    for (const server of [leaderServer, followerServer]) {
      const health = await get(server, '/healthz');
      expect(health.status).toBe(200);
      expect(health.body).toMatch(/^ok: \/job: (leading|following \(leader n0\))/);
    }
    const leaderMetrics = await get(leaderServer, '/metrics');
    expect(leaderMetrics.status).toBe(200);
    expect(leaderMetrics.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(leaderMetrics.body).toContain('vip_leader{path="/job",id="n0"} 1');
    expect(leaderMetrics.body).not.toContain('id="n1"');
    expect((await get(followerServer, '/metrics')).body).toContain('vip_leader{path="/job",id="n1"} 0');
    expect((await get(followerServer, '/metrics')).body).toContain(`vip_fencing_token{path="/job",id="n1"} ${token}`);
  });

  it('answers 503 with the reason when an election is unhealthy, one line per election', async () => {
    const [a, b] = candidates(2);
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    const server = await serve([a!.candidate, b!.candidate], { listen: '127.0.0.1:0', metrics: false });
    const health = await get(server, '/healthz');
    expect(health.status).toBe(503);
    expect(health.body).toBe(`ok: /job: ${a!.candidate.health().reason}\nunhealthy: /job: stopped\n`);
    expect(JSON.parse((await get(server, '/leader')).body)).toHaveLength(2);
  });

  it('reports a vip() service before and after it starts', async () => {
    const service = vip(new MemoryStore())({ path: '/svc', id: 'me', ttl: 3 }, async (context) => {
      await new Promise((resolve) => context.signal.addEventListener('abort', resolve));
    });
    const server = await serve(service, { listen: '127.0.0.1:0' });
    expect((await get(server, '/healthz')).status).toBe(503);
    await service.start();
    cleanups.push(() => service.stop());
    for (let i = 0; i < 100 && !service.isSelected(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(JSON.parse((await get(server, '/leader')).body)).toMatchObject({ path: '/svc', id: 'me', leading: true, leader: { id: 'me' } });
    expect((await get(server, '/healthz')).status).toBe(200);
    const metrics = (await get(server, '/metrics')).body;
    expect(metrics).toContain('vip_leader{path="/svc",id="me"} 1');
    expect(metrics).toMatch(/vip_transitions_total\{path="\/svc",id="me",kind="select",reason=""\} 1/);
    expect(metrics).toMatch(/vip_store_call_duration_seconds_count\{purpose="acquire",outcome="ok"\} 1/);
  });

  it('filters /leader by ?path=, and answers 404, 405 and HEAD as HTTP says', async () => {
    const [a] = candidates(1);
    const server = await serve(a!.candidate, { listen: '127.0.0.1:0', metrics: false });
    expect(JSON.parse((await get(server, '/leader?path=/job')).body)).toMatchObject({ path: '/job', leader: null, leading: false, since: null });
    const missing = await get(server, '/leader?path=/other');
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toEqual({ error: 'no election on path /other here', paths: ['/job'] });
    expect(await get(server, '/nope')).toMatchObject({ status: 404, body: 'not found: /nope; served here: /metrics, /healthz, /leader\n' });
    expect(await get(server, '/metrics')).toMatchObject({ status: 404, body: expect.stringMatching(/metrics: false/) });
    expect(await get(server, '/healthz', 'POST')).toMatchObject({ status: 405 });
    expect(await get(server, '/healthz', 'HEAD')).toMatchObject({ status: 503, body: '' });
  });

  it('uses a VipMetrics it is given, tracks the elections in it and leaves it open on close', async () => {
    const [a] = candidates(1);
    const metrics = new VipMetrics({ registry: new Registry() });
    cleanups.push(async () => metrics.close());
    const server = await serveHttp(a!.candidate, { listen: '127.0.0.1:0', metrics });
    expect(metrics.size).toBe(1);
    expect((await get(server, '/metrics')).body).toContain('vip_leader{path="/job",id="n0"} 0');
    await server.close();
    await server.close(); // twice is once
    expect(await metrics.registry.metrics()).toContain('vip_leader{path="/job",id="n0"} 0');
    await expect(fetch(server.url + '/healthz')).rejects.toThrow();
  });

  it('closes the metrics it made, so that the same elections can be served again', async () => {
    const [a] = candidates(1);
    const first = await serveHttp(a!.candidate, { listen: '127.0.0.1:0' });
    await first.close();
    const second = await serve(a!.candidate, { listen: '127.0.0.1:0' });
    expect((await get(second, '/metrics')).body).toContain('vip_leader{path="/job",id="n0"} 0');
  });

  it('fails at start, before serving, on a port in use, an address not on this machine or a malformed address', async () => {
    const [a] = candidates(1);
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => taken.close(() => resolve())));
    const port = (taken.address() as { port: number }).port;
    const inUse = await serveHttp(a!.candidate, { listen: `127.0.0.1:${port}`, where: 'vip run --http' }).catch((error: unknown) => error);
    expect(inUse).toBeInstanceOf(VipHttpError);
    expect((inUse as VipHttpError).code).toBe('EADDRINUSE');
    expect((inUse as Error).message).toBe(
      `vip run --http: cannot listen on 127.0.0.1:${port}: port ${port} on 127.0.0.1 is in use (another process listens there; choose another port, or :0 for any free one)`,
    );
    const elsewhere = await serveHttp(a!.candidate, { listen: '192.0.2.1:0' }).catch((error: unknown) => error);
    expect(elsewhere).toMatchObject({ name: 'VipHttpError', code: 'EADDRNOTAVAIL', message: 'serveHttp: cannot listen on 192.0.2.1:0: 192.0.2.1 is not an address of this machine' });

    for (const listen of ['9464', 'localhost', '127.0.0.1:99999', '127.0.0.1:', 'http://127.0.0.1:9464', '[127.0.0.1]:80', 'a b:80', 7]) {
      const error = await serveHttp(a!.candidate, { listen: listen as string }).catch((e: unknown) => e);
      expect(error, String(listen)).toBeInstanceOf(VipOptionError);
      expect((error as VipOptionError).option).toBe('listen');
      expect((error as Error).message).toContain('HOST:PORT such as 127.0.0.1:9464');
    }
    expect(() => parseListenAddress('9464', 'vip run', '--http')).toThrow('vip run: option "--http" must be HOST:PORT such as 127.0.0.1:9464, [::1]:9464, 0.0.0.0:9464 or :9464 (a port alone is written :9464) (got string "9464")');
  });

  it(':PORT listens on every interface, IPv6 as well as IPv4 where the machine has it', async () => {
    const [a] = candidates(1);
    const server = await serve(a!.candidate, { listen: ':0', metrics: false });
    expect((await fetch(`http://127.0.0.1:${server.port}/leader`)).status).toBe(200);
    const ipv6 = Object.values(networkInterfaces()).some((list) => list?.some((i) => i.family === 'IPv6' && i.address === '::1'));
    if (ipv6) expect((await fetch(`http://[::1]:${server.port}/leader`)).status).toBe(200);
  });

  it("passes unreachableAfter to the metrics it makes, so that vip_healthy agrees with /healthz", async () => {
    const clock = new FakeClock();
    const store = new FaultyStore(new MemoryStore({ clock }), { clock });
    const candidate = new Candidate(store, { path: '/job', id: 'f', ttl: 3, clock, random: () => 0.5 });
    candidate.on('error', () => {});
    cleanups.push(async () => {
      store.heal();
      const stopped = candidate.stop();
      for (let i = 0; i < 500; i++) await clock.advance(10);
      await stopped;
    });
    await candidate.start();
    await clock.until(() => candidate.health().state === 'following' || candidate.isSelected());
    store.disconnect();
    await clock.advance(5000); // past the ttl, within unreachableAfter
    const server = await serve(candidate, { listen: '127.0.0.1:0', unreachableAfter: 60 });
    expect((await get(server, '/healthz')).status).toBe(200);
    expect((await get(server, '/metrics')).body).toContain('vip_healthy{path="/job",id="f"} 1');
    store.heal();
  });

  it('counts a vip() service\'s suspend and resume (refreshes failing, then landing again)', async () => {
    const clock = new FakeClock();
    const store = new FaultyStore(new MemoryStore({ clock }), { clock });
    const service = vip(store)({ path: '/svc', id: 'me', ttl: 3, clock, random: () => 0.5 }, async (context) => {
      await new Promise((resolve) => context.signal.addEventListener('abort', resolve));
    });
    service.on('error', () => {});
    const server = await serve(service, { listen: '127.0.0.1:0' });
    await service.start();
    cleanups.push(async () => {
      const stopped = service.stop();
      for (let i = 0; i < 500; i++) await clock.advance(10);
      await stopped;
    });
    await clock.until(() => service.isSelected());
    store.failNext(1, ['refresh']);
    await clock.advance(1500);
    await clock.advance(1000);
    const metrics = (await get(server, '/metrics')).body;
    expect(metrics).toContain('vip_transitions_total{path="/svc",id="me",kind="suspend",reason=""} 1');
    expect(metrics).toContain('vip_transitions_total{path="/svc",id="me",kind="resume",reason=""} 1');
  });

  it('reads the address forms it documents', () => {
    expect(parseListenAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseListenAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseListenAddress(':9464')).toEqual({ host: '', port: 9464 });
    expect(parseListenAddress('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(parseListenAddress('node-1.example.org:8080')).toEqual({ host: 'node-1.example.org', port: 8080 });
  });

  it('rejects bad options and elections at the call, naming them', async () => {
    const [a] = candidates(1);
    await expect(serveHttp(a!.candidate, { listen: '127.0.0.1:0', port: 1 } as never)).rejects.toThrow(/serveHttp: unknown option "port" \(valid options: listen, metrics, unreachableAfter, where\)/);
    await expect(serveHttp(a!.candidate, null as never)).rejects.toThrow(/options/);
    await expect(serveHttp(a!.candidate, { listen: '127.0.0.1:0', metrics: {} as never })).rejects.toThrow(/option "metrics" must be a VipMetrics/);
    await expect(serveHttp(a!.candidate, { listen: '127.0.0.1:0', unreachableAfter: -2 })).rejects.toThrow(/unreachableAfter/);
    await expect(serveHttp([], { listen: '127.0.0.1:0' })).rejects.toThrow(/empty list/);
    await expect(serveHttp({} as never, { listen: '127.0.0.1:0' })).rejects.toThrow(/expected a Service \(from vip\(\)\) or a Candidate \(got object\)/);
  });
});
