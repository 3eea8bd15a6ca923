/**
 * One measurement in a process of its own, so that memory and CPU figures of
 * one implementation are not mixed with another's, and so that a candidate can
 * be killed with SIGKILL. Prints JSON lines.
 *
 *   node dist/worker.js scale vip|etcd3 ENDPOINTS COUNT IDLE_SECONDS PREFIX [BATCH]
 *   node dist/worker.js etcd3-candidate ENDPOINTS NAME ID TTL
 *   node dist/worker.js locked-candidate HOST PATH ID TTL
 *   node dist/worker.js consul-proxy AGENT_HOST AGENT_PORT
 *
 * `scale` prints one line: { count, settleMs, rssMb, idleCpuPercent } or, when
 * the elections could not all be started, { count, failed } naming the errors.
 * BATCH starts the campaigns that many at a time (each batch elected before the
 * next starts) instead of all at once.
 *
 *   node dist/worker.js metrics with|process|without ENDPOINTS COUNT IDLE_SECONDS PREFIX SCRAPE_EVERY_SECONDS
 *
 * `metrics` runs COUNT vip elections on one EtcdStore, each tracked by one
 * VipMetrics (`with`; `process`: with perElection false) or not (`without`), and prints one line: { count,
 * settleMs, rssMb, heapUsedMb (after a full GC when run with node --expose-gc), idleCpuPercent,
 * rssAfterIdleMb } and, with metrics, the scrapes
 * (registry.metrics()): { firstScrapeMs, scrapeMs (median of the next
 * SCRAPES), scrapeBytes, scrapeSeries, scrapedCpuPercent (CPU over a second
 * idle window of the same length with a scrape every SCRAPE_EVERY_SECONDS),
 * rssAfterScrapesMb }.
 *
 *   node dist/worker.js consul-scale CONSUL_URL COUNT HOLD_SECONDS PREFIX
 *
 * `consul-scale` runs COUNT vip elections (ttl 10) on one ConsulStore and
 * prints { phase: 'settled', led, settleMs, errors } once all lead (or after
 * 120 s, with led < COUNT and settleMs null), then holds for HOLD_SECONDS and
 * prints { phase: 'held', led, errors, deselects, rssMb, idleCpuPercent }
 * (errors and deselects of the hold only; `errorText` names them). The
 * connections it holds to the agent are counted from outside, in /proc.
 *
 *   node dist/worker.js consul-raw-candidate AGENT_URL KEY ID
 *
 * `consul-raw-candidate` is the floor of a Consul handover from Node, without
 * any library: node:http with a keep-alive agent, one session (ttl 10 s),
 * the acquisition as vip sends it (check-not-exists + lock in one /v1/txn),
 * renewed every 5 s, a follower's blocking GET on the key, and on `stop` a
 * leader's release (one delete in one /v1/txn). It logs like the candidate fixture.
 *
 * `consul-proxy` forwards HTTP to a Consul agent and counts the requests by
 * method and path (the key left out). It prints { port } once listening, and
 * { counts } for every `counts` line on its stdin. In a process of its own, so
 * that proxying a thousand blocking queries does not slow the event loop of
 * the elections it counts (in the same process they missed their deadlines).
 */
import { Agent, createServer, request } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { Candidate } from '@vip/core';
import { VipMetrics } from '@vip/core/metrics';
import { ConsulStore } from '@vip/consul';
import { EtcdStore } from '@vip/etcd';
import { Etcd3 } from 'etcd3';
import { Registry } from 'prom-client';

const [mode, ...args] = process.argv.slice(2);

/** The distinct errors campaigns failed with, and how often each. */
class Failures {
  readonly #counts = new Map<string, number>();
  readonly #order: string[] = [];
  total = 0;
  add(error: unknown): void {
    this.total++;
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    if (!this.#counts.has(text)) this.#order.push(text);
    this.#counts.set(text, (this.#counts.get(text) ?? 0) + 1);
  }
  get size(): number {
    return this.#order.length;
  }
  /**
   * Each distinct error with its count. cockatiel's "circuit breaker is open"
   * (etcd3 opens its breaker after 3 consecutive failures) is a consequence,
   * never a cause: it goes last, after the errors that tripped the breaker.
   */
  describe(): string {
    const consequence = (text: string): number => (/circuit breaker is open/.test(text) ? 1 : 0);
    return [...this.#order]
      .sort((a, b) => consequence(a) - consequence(b))
      .map((text) => `${this.#counts.get(text)!.toLocaleString('en')} × ${text}`)
      .join('; ');
  }
}

async function inBatches<T>(items: T[], batch: number, run: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += batch) await Promise.all(items.slice(i, i + batch).map(run));
}

async function scale(kind: string, endpoints: string[], count: number, idleSeconds: number, prefix: string, batch: number): Promise<void> {
  const started = performance.now();
  let stop: () => Promise<void>;
  let afterIdle = (): void => {};
  if (kind === 'vip') {
    const store = new EtcdStore(endpoints);
    const candidates = Array.from({ length: count }, (_, i) => new Candidate(store, { path: `${prefix}scale-vip-${count}-${i}`, ttl: 10 }));
    await inBatches(candidates, batch, async (candidate) => {
      await candidate.start();
      await candidate.whenSelected();
    });
    stop = async () => {
      await Promise.all(candidates.map((candidate) => candidate.stop()));
      await store.close();
    };
  } else {
    const client = new Etcd3({ hosts: endpoints });
    const failures = new Failures();
    const campaigns: ReturnType<ReturnType<Etcd3['election']>['campaign']>[] = [];
    const report = (): void => {
      if (failures.size === 0) return;
      console.log(JSON.stringify({ count, failed: failures.describe() }));
      process.exit(1);
    };
    // etcd3 also rejects promises nobody awaits (its lease keepalives): without
    // this such a rejection would end the process with a stack and no report.
    process.on('unhandledRejection', (error) => {
      failures.add(error);
      report();
    });
    await inBatches(
      Array.from({ length: count }, (_, i) => i),
      batch,
      (i) =>
        new Promise<void>((resolve) => {
          const campaign = client.election(`${prefix}scale-etcd3-${count}-${batch}-${i}`, 10).campaign('x');
          campaigns.push(campaign);
          campaign.once('elected', () => resolve());
          // Every error of every campaign, also after it was elected (a lost lease), and
          // waiting for the whole batch: the report names the cause, not only the first error.
          campaign.on('error', (error: unknown) => {
            failures.add(error);
            resolve();
          });
        }),
    );
    report();
    afterIdle = report;
    stop = async () => {
      await Promise.all(campaigns.map((campaign) => campaign.resign()));
      client.close();
    };
  }
  const settleMs = performance.now() - started;
  const rssMb = process.memoryUsage().rss / 2 ** 20;
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
  const cpu = process.cpuUsage(cpuBefore);
  const idleCpuPercent = ((cpu.user + cpu.system) / 1000 / (performance.now() - wallBefore)) * 100;
  afterIdle();
  await stop();
  console.log(JSON.stringify({ count, settleMs, rssMb, idleCpuPercent }));
}

/** Scrapes timed after the first (cold) one; their median is reported. */
const SCRAPES = 5;

/** CPU of this process over `seconds` of wall time, in % of one core, while `during` runs (it may schedule work). */
async function cpuPercentOver(seconds: number, during: () => () => void = () => () => {}): Promise<number> {
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  const stop = during();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  stop();
  const cpu = process.cpuUsage(cpuBefore);
  return ((cpu.user + cpu.system) / 1000 / (performance.now() - wallBefore)) * 100;
}

/**
 * The cost of VipMetrics: `count` vip elections on one EtcdStore (as `scale`
 * runs them), with every candidate tracked by one VipMetrics or none.
 */
async function metricsCost(kind: string, endpoints: string[], count: number, idleSeconds: number, prefix: string, scrapeEverySeconds: number): Promise<void> {
  const started = performance.now();
  const store = new EtcdStore(endpoints);
  // `with`: series per election; `process`: perElection false, series for the process as a whole.
  const metrics = kind === 'without' ? undefined : new VipMetrics({ registry: new Registry(), perElection: kind !== 'process' });
  const candidates = Array.from({ length: count }, (_, i) => new Candidate(store, { path: `${prefix}metrics-${kind}-${count}-${i}`, ttl: 10 }));
  for (const candidate of candidates) metrics?.track(candidate);
  await Promise.all(
    candidates.map(async (candidate) => {
      await candidate.start();
      await candidate.whenSelected();
    }),
  );
  const settleMs = performance.now() - started;
  const rssMb = process.memoryUsage().rss / 2 ** 20; // as `scale` reads it: whatever the garbage collector left
  // The live heap: after a full collection (node --expose-gc), so that garbage does not blur the difference.
  (globalThis as { gc?: () => void }).gc?.();
  const result: Record<string, number> = { count, settleMs, rssMb, heapUsedMb: process.memoryUsage().heapUsed / 2 ** 20 };
  result.idleCpuPercent = await cpuPercentOver(idleSeconds);
  result.rssAfterIdleMb = process.memoryUsage().rss / 2 ** 20;
  if (metrics) {
    const scrape = async (): Promise<{ ms: number; text: string }> => {
      const before = performance.now();
      const text = await metrics.registry.metrics();
      return { ms: performance.now() - before, text };
    };
    const first = await scrape();
    const times: number[] = [];
    for (let i = 0; i < SCRAPES; i++) times.push((await scrape()).ms);
    times.sort((a, b) => a - b);
    result.firstScrapeMs = first.ms;
    result.scrapeMs = times[Math.floor(times.length / 2)]!;
    result.scrapeBytes = Buffer.byteLength(first.text);
    result.scrapeSeries = first.text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length;
    // A scrape every scrapeEverySeconds, the first at the window's start: a 60 s window
    // at 15 s has 4 scrapes, as a Prometheus server scraping at that interval would make.
    result.scrapedCpuPercent = await cpuPercentOver(idleSeconds, () => {
      const timers: NodeJS.Timeout[] = [];
      for (let at = 0; at < idleSeconds; at += scrapeEverySeconds) timers.push(setTimeout(() => void metrics.registry.metrics(), at * 1000));
      return () => timers.forEach(clearTimeout);
    });
    result.rssAfterScrapesMb = process.memoryUsage().rss / 2 ** 20;
  }
  metrics?.close();
  await Promise.all(candidates.map((candidate) => candidate.stop()));
  await store.close();
  console.log(JSON.stringify(result));
}

const log = (id: string, event: string): void => void process.stdout.write(`${JSON.stringify({ at: Date.now(), id, event })}\n`);

/** etcd3's Election in a process of its own, logging like test-integration/fixtures/candidate.mjs. */
async function etcd3Candidate(endpoints: string[], name: string, id: string, ttl: number): Promise<void> {
  const client = new Etcd3({ hosts: endpoints });
  const campaign = client.election(name, ttl).campaign(id);
  campaign.on('elected', () => log(id, 'select'));
  campaign.on('error', () => log(id, 'deselect'));
  log(id, 'started');
}

/** The seed module `locked` (etcd v2 API), as its README shows it. */
interface LockedNode {
  on(event: 'select' | 'deselect', listener: () => void): void;
  start(): void;
  stop(): void;
}

/** `locked` in a process of its own, logging like test-integration/fixtures/candidate.mjs. */
function lockedCandidate(host: string, path: string, id: string, ttl: number): void {
  const locked = createRequire(import.meta.url)('locked') as (hosts: string) => (options: object) => LockedNode;
  const node = locked(host)({ id, path, value: `value of ${id}`, ttl });
  node.on('select', () => log(id, 'select'));
  node.on('deselect', () => log(id, 'deselect'));
  node.start();
  log(id, 'started');
}

/** COUNT elections on one ConsulStore: time until all lead, then errors, deselects, memory and CPU over a hold. */
async function consulScale(url: string, count: number, holdSeconds: number, prefix: string): Promise<void> {
  const store = new ConsulStore(url);
  const failures = new Failures();
  let deselects = 0;
  const started = performance.now();
  const candidates = Array.from({ length: count }, (_, i) => {
    const candidate = new Candidate(store, { path: `${prefix}job-${i}`, ttl: 10 });
    candidate.on('error', (error: unknown) => failures.add(error));
    candidate.on('deselect', () => deselects++);
    return candidate;
  });
  await Promise.all(candidates.map((candidate) => candidate.start()));
  const leading = (): number => candidates.filter((candidate) => candidate.isSelected()).length;
  while (leading() < count && performance.now() - started < 120_000) await new Promise((resolve) => setTimeout(resolve, 50));
  const led = leading();
  // What the elections that did not lead were doing: their health (state, the leader they saw, store trouble).
  const stuck = candidates
    .filter((candidate) => !candidate.isSelected())
    .slice(0, 5)
    .map((candidate) => {
      const health = candidate.health();
      return { state: health.state, reason: health.reason, leader: health.leader?.id ?? null, lastError: health.lastError };
    });
  console.log(JSON.stringify({ phase: 'settled', led, settleMs: led === count ? performance.now() - started : null, errors: failures.total, errorText: failures.describe(), stuck }));
  const errorsBefore = failures.total;
  const deselectsBefore = deselects;
  const idleCpuPercent = await cpuPercentOver(holdSeconds);
  console.log(
    JSON.stringify({
      phase: 'held',
      led: leading(),
      errors: failures.total - errorsBefore,
      deselects: deselects - deselectsBefore,
      rssMb: process.memoryUsage().rss / 2 ** 20,
      idleCpuPercent,
      errorText: failures.describe(),
    }),
  );
  await Promise.all(candidates.map((candidate) => candidate.stop()));
  await store.close();
}

/** The floor of a Consul handover from Node (see the header). */
async function consulRawCandidate(agentUrl: string, key: string, id: string): Promise<void> {
  const agent = new Agent({ keepAlive: true });
  const url = new URL(agentUrl);
  const call = (method: string, path: string, body?: unknown): Promise<{ status: number; index: number; json: unknown }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path, method, agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, index: Number(res.headers['x-consul-index'] ?? 0), json: text ? (JSON.parse(text) as unknown) : undefined }));
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  const session = ((await call('PUT', '/v1/session/create', { TTL: '10s', LockDelay: '10s', Behavior: 'delete', Checks: [] })).json as { ID: string }).ID;
  // Renewed every ttl/2 for as long as the process runs, leader or follower (as a kept-ready session is).
  setInterval(() => void call('PUT', `/v1/session/renew/${session}`).catch(() => {}), 5000).unref();
  const value = Buffer.from(JSON.stringify({ id, value: '' })).toString('base64');
  const acquire = async (): Promise<boolean> =>
    (await call('PUT', '/v1/txn', [{ KV: { Verb: 'check-not-exists', Key: key } }, { KV: { Verb: 'lock', Key: key, Value: value, Session: session } }])).status === 200;
  let leading = false;
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() !== 'stop' || !leading) return;
    void call('PUT', '/v1/txn', [{ KV: { Verb: 'delete', Key: key } }]).then(() => process.exit(0));
  });
  log(id, 'started');
  if (await acquire()) {
    leading = true;
    log(id, 'select');
    return;
  }
  let index = 0;
  let announced = false;
  for (;;) {
    const answer = await call('GET', `/v1/kv/${key}?index=${index}&wait=30s`);
    index = answer.index;
    const entry = (answer.json as { Session?: string; Value?: string }[] | undefined)?.[0];
    if (entry?.Session) {
      if (!announced) process.stdout.write(`${JSON.stringify({ at: Date.now(), id, event: 'change', leader: JSON.parse(Buffer.from(entry.Value ?? '', 'base64').toString()).id })}\n`);
      announced = true;
      continue;
    }
    if (await acquire()) {
      leading = true;
      log(id, 'select');
      return;
    }
  }
}

function consulProxy(host: string, port: number): void {
  const counts: Record<string, number> = {};
  const upstream = new Agent({ keepAlive: true });
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    const kind = `${req.method} ${/^\/v1\/kv\//.test(path) ? '/v1/kv/…' : path.replace(/^(\/v1\/session\/\w+)\/.*$/, '$1/…')}`;
    counts[kind] = (counts[kind] ?? 0) + 1;
    const forward = request({ host, port, path: req.url, method: req.method, headers: req.headers, agent: upstream }, (response) => {
      res.writeHead(response.statusCode ?? 502, response.headers);
      response.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  // Blocking queries wait up to the store's watchWait (30 s): no server-side timeout may cut them first.
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: (server.address() as AddressInfo).port })));
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === 'counts') console.log(JSON.stringify({ counts }));
  });
  // The benchmark ends us with SIGKILL, or by closing our stdin when it exits.
  process.stdin.on('end', () => process.exit(0));
}

if (mode === 'scale') await scale(args[0]!, args[1]!.split(','), Number(args[2]), Number(args[3]), args[4]!, Number(args[5] ?? args[2]));
else if (mode === 'etcd3-candidate') await etcd3Candidate(args[0]!.split(','), args[1]!, args[2]!, Number(args[3]));
else if (mode === 'locked-candidate') lockedCandidate(args[0]!, args[1]!, args[2]!, Number(args[3]));
else if (mode === 'metrics') await metricsCost(args[0]!, args[1]!.split(','), Number(args[2]), Number(args[3]), args[4]!, Number(args[5]));
else if (mode === 'consul-scale') await consulScale(args[0]!, Number(args[1]), Number(args[2]), args[3]!);
else if (mode === 'consul-raw-candidate') await consulRawCandidate(args[0]!, args[1]!, args[2]!);
else if (mode === 'consul-proxy') consulProxy(args[0]!, Number(args[1]));
else throw new Error(`worker: unknown mode ${JSON.stringify(mode)}`);
