/**
 * Benchmarks against real servers started here (never mocks): failover
 * latency, time to first leader, store load and scale, with the peers side by
 * side on the same servers in the same run: etcd3's own Election, the seed
 * module `locked` (etcd v2 API) and `consul lock` (the CLI of the Consul server).
 *
 *   npm run bench              quick mode (a few minutes; fewer trials)
 *   npm run bench -- --full    100 trials, 10,000 elections, a minute of idle CPU
 *   npm run bench -- metrics   only figure 6, the cost of VipMetrics, at full size
 *                              (1 and 10,000 elections, minute-long idle windows): about
 *                              8 minutes; it rewrites only that section of BENCHMARKS.md
 *   npm run bench -- consul    only figure 7, Consul at scale on agents at their default
 *                              limits, at full size (10,000 elections, 30 trials per
 *                              failover row, herds of up to 100 processes); rewrites
 *                              only that section of BENCHMARKS.md
 *
 * Writes BENCHMARKS.md at the repository root and bench/failover.svg. Figures
 * are from this run on this machine: compare the ratios, not the absolute
 * numbers, across machines.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, release, totalmem, type as osType } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Candidate, type LockStore } from '@vip/core';
import { ConsulStore } from '@vip/consul';
import { EtcdStore } from '@vip/etcd';
import {
  consulBinary,
  repositoryRoot,
  spawnJsonLines,
  startConsul,
  startEtcd,
  track,
  uniqueConsulPrefix,
  uniquePrefix,
  type ConsulAgent,
  type EtcdCluster,
  type JsonLinesProcess,
} from '@vip/test-integration/harness';
import { Etcd3 } from 'etcd3';
import { CONSUL_SCALE_HEADING, consulScaleSection, countingProxy, type ConsulScaleSizes } from './consul-scale.js';
import { began, bound, elapsed, log, ms, sleep, stats, until, type Stats } from './common.js';

const full = process.argv.includes('--full');
/** Parts named on the command line (none: all of them). `metrics` (figure 6) and `consul` (figure 7) can run alone. */
const PARTS = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
for (const part of PARTS) if (part !== 'metrics' && part !== 'consul') throw new Error(`bench: unknown part ${JSON.stringify(part)} (known: metrics, consul)`);
if (PARTS.length > 1) throw new Error(`bench: name one part to run alone, or none for the whole run (got ${PARTS.join(', ')})`);
const metricsOnly = PARTS.includes('metrics');
const consulOnly = PARTS.includes('consul');
/** Figure 7: at full size with --full or alone (`npm run bench -- consul`), smaller in the quick run. */
const CONSUL_SCALE_SIZES: ConsulScaleSizes =
  full || consulOnly ? { counts: [1000, 10_000], holdSeconds: 60, trials: 30, handovers: 10 } : { counts: [1000], holdSeconds: 20, trials: 10, handovers: 5 };
const MODE = full ? 'full' : 'quick';
const TRIALS = full ? 100 : 30;
/** `locked` hands over only when the key's TTL runs out: its trials run this many at a time, each on its own key. */
const LOCKED_TRIALS = full ? 100 : 20;
const LOCKED_BATCH = 20;
const CONSUL_LOCK_TRIALS = full ? 100 : 10;
const CRASH_TRIALS = full ? 10 : 2;
const SCALE = full ? [1000, 10_000] : [1000];
const IDLE_SECONDS = full ? 60 : 5;
/** Figure 6 at full size when it runs alone: the issue asks for 1 and 10,000 elections. */
const METRICS_FULL = full || metricsOnly;
const METRICS_COUNTS = METRICS_FULL ? [1, 10_000] : [1, 1000];
/** Prometheus scrapes every minute by default; every 15 s is common. */
const SCRAPE_EVERY_SECONDS = 15;
/** Idle windows of figure 6: a whole number of scrape intervals, so that the scraped window has the scrape rate. */
const METRICS_IDLE_SECONDS = METRICS_FULL ? 60 : SCRAPE_EVERY_SECONDS;
/**
 * One TTL for every implementation on both stores. Consul refuses session TTLs
 * under its session_ttl_min (10 s by default): the benchmark's agent lowers it
 * to 1 s, as the chaos run does, and ConsulStore is told so (minTtl).
 */
const TTL = 3;
const CONSUL_MIN_TTL = 1;
/**
 * Store load is counted over this window. Consul's blocking queries (the
 * watches) come back every 30 s when nothing changes (ConsulStore's default
 * watchWait), so a shorter window would miss them or catch all of them at once.
 */
const ETCD_LOAD_SECONDS = 2 * TTL;
const CONSUL_LOAD_SECONDS = 30;

// ---------------------------------------------------------------------------
// 1. Graceful failover

/** Two candidates on separate store clients (as two processes); the leader stops; time until the other's select. */
async function gracefulVip(stores: [LockStore, LockStore], prefix: string): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const path = `${prefix}graceful-${i}`;
    const a = new Candidate(stores[0], { path, id: 'a', ttl: TTL });
    const b = new Candidate(stores[1], { path, id: 'b', ttl: TTL });
    await a.start();
    await a.whenSelected();
    await b.start();
    const bSelected = b.whenSelected();
    const started = performance.now();
    await a.stop();
    await bSelected;
    samples.push(performance.now() - started);
    await b.stop();
  }
  return samples;
}

/** The same with etcd3's Election: the leader resigns, the other's campaign resolves. */
async function gracefulEtcd3(hosts: string[], prefix: string): Promise<number[]> {
  const clients = [new Etcd3({ hosts }), new Etcd3({ hosts })] as const;
  const samples: number[] = [];
  try {
    for (let i = 0; i < TRIALS; i++) {
      const name = `${prefix}etcd3-graceful-${i}`;
      const first = clients[0].election(name, TTL).campaign('a');
      await new Promise<void>((resolve, reject) => first.once('elected', resolve).once('error', reject));
      const second = clients[1].election(name, TTL).campaign('b');
      const elected = new Promise<void>((resolve, reject) => second.once('elected', resolve).once('error', reject));
      await sleep(20); // let the second campaign reach its wait
      const started = performance.now();
      await first.resign();
      await elected;
      samples.push(performance.now() - started);
      await second.resign();
    }
  } finally {
    for (const client of clients) client.close();
  }
  return samples;
}

/** The seed module `locked` (etcd v2 API), as its README shows it. */
interface LockedNode {
  on(event: 'select' | 'deselect', listener: () => void): void;
  start(): void;
  stop(): void;
}
const locked = createRequire(import.meta.url)('locked') as (hosts: string) => (options: object) => LockedNode;

/**
 * `locked`'s graceful failover: the leader calls stop(). Its stop() deletes
 * nothing (see its index.js), so each trial lasts about a TTL: trials run
 * LOCKED_BATCH at a time, each pair on its own key with its own clients.
 */
async function gracefulLocked(host: string, trials: number): Promise<number[]> {
  const locker = locked(host);
  const samples: number[] = [];
  const trial = async (i: number): Promise<void> => {
    const path = `/bench/locked-graceful-${Date.now()}-${i}`;
    const [a, b] = (['a', 'b'] as const).map((id) => locker({ id, path, value: `value of ${id}`, ttl: TTL }));
    const aSelected = new Promise<void>((resolve) => a!.on('select', resolve));
    a!.start();
    await aSelected;
    const bSelected = new Promise<void>((resolve) => b!.on('select', resolve));
    b!.start();
    await sleep(100);
    const started = performance.now();
    a!.stop();
    await bSelected;
    samples.push(performance.now() - started);
    b!.stop();
  };
  for (let i = 0; i < trials; i += LOCKED_BATCH) {
    await Promise.all(Array.from({ length: Math.min(LOCKED_BATCH, trials - i) }, (_, j) => trial(i + j)));
  }
  return samples;
}

/**
 * What etcd does with the key of one `locked` node running alone for 2 × ttl + 1 s,
 * read from etcd's v2 watch: how often the node wrote it and how often etcd
 * expired it. A refresh that extends the key would leave no expiry.
 */
async function lockedKeyHistory(endpoint: string, host: string): Promise<{ seconds: number; writes: number; expiries: number }> {
  const path = `/bench/locked-alone-${Date.now()}`;
  const url = `${endpoint}/v2/keys${path}`;
  let next = Number((await fetch(url)).headers.get('x-etcd-index')) + 1;
  const seconds = 2 * TTL + 1;
  const stop = AbortSignal.timeout(seconds * 1000);
  const history = { seconds, writes: 0, expiries: 0 };
  const node = locked(host)({ id: 'alone', path, value: 'value of alone', ttl: TTL });
  node.start();
  try {
    while (!stop.aborted) {
      const change = (await (await fetch(`${url}?wait=true&waitIndex=${next}`, { signal: stop })).json()) as { action: string; node: { modifiedIndex: number } };
      next = change.node.modifiedIndex + 1;
      if (change.action === 'expire') history.expiries++;
      else history.writes++;
    }
  } catch (error) {
    if (!stop.aborted) throw error;
  } finally {
    node.stop();
  }
  return history;
}

/** A `consul lock` process whose child prints `started ID`; every stdout line with the time it arrived. */
function consulLock(agent: ConsulAgent, prefix: string, id: string): { lines: { at: number; text: string }[]; child: ReturnType<typeof spawn>; exited: Promise<unknown> } {
  // -pass-stdin hands our pipe to the child: if this process dies, the child
  // (cat) reads EOF and exits, so nothing outlives the benchmark; `consul
  // lock` itself is registered with the harness's watchdog.
  const child = spawn(consulBinary(), ['lock', '-verbose', '-pass-stdin', `-http-addr=${agent.address}`, prefix, `echo started ${id}; exec cat > /dev/null`], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = track(child);
  const lines: { at: number; text: string }[] = [];
  let buffer = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const at = performance.now();
    buffer += chunk;
    for (let i; (i = buffer.indexOf('\n')) >= 0; buffer = buffer.slice(i + 1)) lines.push({ at, text: buffer.slice(0, i).trim() });
  });
  child.stderr!.resume();
  child.stdin!.on('error', () => {});
  return { lines, child, exited };
}

/**
 * `consul lock`'s graceful failover: two `consul lock` processes on one prefix;
 * SIGTERM to the holder (it stops its child, releases the lock and destroys
 * its session); time until the other's child prints its first line. That
 * includes starting the child (a shell), which vip's select does not.
 */
async function gracefulConsulLock(agent: ConsulAgent, prefix: string, trials: number): Promise<Trials> {
  const samples: number[] = [];
  const failures: string[] = [];
  for (let i = 0; i < trials; i++) {
    const key = `${prefix}consul-lock-${i}`;
    const a = consulLock(agent, key, 'a');
    let b: ReturnType<typeof consulLock> | undefined;
    try {
      await until(() => a.lines.some((line) => line.text === 'started a'), 'the first consul lock to run its child', 10_000);
      b = consulLock(agent, key, 'b');
      const waiter = b;
      await until(() => waiter.lines.some((line) => line.text === 'Attempting lock acquisition'), 'the second consul lock to try the lock', 10_000);
      await sleep(100); // let it reach its blocking query
      if (waiter.lines.some((line) => line.text === 'started b')) throw new Error('the second consul lock ran its child while the first held the lock');
      const started = performance.now();
      a.child.kill('SIGTERM');
      await until(() => waiter.lines.some((line) => line.text === 'started b'), 'the second consul lock to run its child', 20_000);
      samples.push(waiter.lines.find((line) => line.text === 'started b')!.at - started);
    } catch (error) {
      failures.push((error as Error).message);
    } finally {
      for (const lock of [a, b]) {
        if (!lock) continue;
        lock.child.kill('SIGTERM');
        await Promise.race([lock.exited, bound(10_000)]);
        lock.child.kill('SIGKILL');
        await lock.exited;
      }
    }
  }
  return { samples, failures };
}

// ---------------------------------------------------------------------------
// 2. Crash failover

/** Samples of the trials that finished, and why the others did not. */
interface Trials {
  samples: number[];
  failures: string[];
}

interface EventLine {
  at: number;
  id: string;
  event: string;
}

const fixture = join(repositoryRoot, 'test-integration', 'fixtures', 'candidate.mjs');
const worker = fileURLToPath(new URL('./worker.js', import.meta.url));

/**
 * Two candidate processes (any implementation that logs `started`, `select`
 * and `deselect` lines with the machine clock); the leader gets SIGKILL; time
 * from the moment the SIGKILL is sent until the other logs its select. The
 * same baseline for every implementation. Every process is spawned through the
 * harness, so its watchdog kills it if the benchmark dies.
 */
async function crashTrials(spawnOne: (id: string, trial: number) => JsonLinesProcess<EventLine>, trials: number): Promise<Trials> {
  const samples: number[] = [];
  const failures: string[] = [];
  for (let i = 0; i < trials; i++) {
    const nodes = ['a', 'b'].map((id) => ({ id, process: spawnOne(id, i) }));
    try {
      const leading = (node: (typeof nodes)[number]): boolean =>
        node.process.lines.filter((line) => line.event === 'select' || line.event === 'deselect').at(-1)?.event === 'select';
      const settled = (): boolean => nodes.every((node) => node.process.lines.some((line) => line.event === 'started')) && nodes.filter(leading).length === 1;
      await until(settled, 'one leader among two started candidates', 30_000);
      // At a random moment of the leader's keepalive cycle (ttl/3 for every implementation
      // here): a fixed delay after the select would kill every leader at the same phase of
      // it, just after or just before a keepalive, and bias the takeover times.
      await sleep(500 + Math.random() * TTL * 1000);
      await until(settled, 'one leader among two started candidates', 30_000);
      const leader = nodes.find(leading)!;
      const other = nodes.find((node) => node !== leader)!;
      const killedAt = Date.now();
      await leader.process.kill('SIGKILL');
      const select = await other.process.waitFor((line) => line.event === 'select' && line.at >= killedAt, (3 * TTL + 10) * 1000);
      samples.push(select.at - killedAt);
    } catch (error) {
      // A trial that cannot finish is reported with the figure, not a crash of the run.
      failures.push((error as Error).message.split('\n')[0]!);
    } finally {
      await Promise.all(nodes.map((node) => node.process.kill('SIGKILL')));
    }
  }
  return { samples, failures };
}

// ---------------------------------------------------------------------------
// 3. Time to first leader

/** start() to select on a key nobody else wants. */
async function firstLeaderVip(store: LockStore, prefix: string): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const candidate = new Candidate(store, { path: `${prefix}first-${i}`, ttl: TTL });
    const started = performance.now();
    await candidate.start();
    await candidate.whenSelected();
    samples.push(performance.now() - started);
    await candidate.stop();
  }
  return samples;
}

async function firstLeaderEtcd3(hosts: string[], prefix: string): Promise<number[]> {
  const client = new Etcd3({ hosts });
  const samples: number[] = [];
  try {
    for (let i = 0; i < TRIALS; i++) {
      const started = performance.now();
      const campaign = client.election(`${prefix}etcd3-first-${i}`, TTL).campaign('x');
      await new Promise<void>((resolve, reject) => campaign.once('elected', resolve).once('error', reject));
      samples.push(performance.now() - started);
      await campaign.resign();
    }
  } finally {
    client.close();
  }
  return samples;
}

// ---------------------------------------------------------------------------
// 4. Store load

interface Load {
  /** Requests (etcd: gRPC messages received) per idle election per TTL. */
  requests: number;
  /** etcd only: gRPC streams opened per idle election per TTL. */
  streams?: number;
  /** Consul only: the requests by kind, e.g. "PUT /v1/session/renew 1.00". */
  detail?: string;
}

/**
 * etcd's own Prometheus counters: every gRPC message received (unary requests
 * and each message on a stream alike; a keepalive stream's messages would not
 * show in grpc_server_handled_total until it ends), and every stream or call started.
 */
async function etcdCounters(etcd: EtcdCluster): Promise<{ messages: number; started: number }> {
  const text = await (await fetch(`${etcd.endpoints[0]}/metrics`)).text();
  const sum = (name: string): number =>
    text
      .split('\n')
      .filter((line) => line.startsWith(`${name}{`))
      .reduce((total, line) => total + Number(line.split(' ').pop()), 0);
  return { messages: sum('grpc_server_msg_received_total'), started: sum('grpc_server_started_total') };
}

/** `count` idle leaders on one store for ETCD_LOAD_SECONDS, counted by etcd. */
async function etcdLoad(etcd: EtcdCluster, count: number, setUp: () => Promise<() => Promise<void>>): Promise<Load> {
  const tearDown = await setUp();
  const before = await etcdCounters(etcd);
  await sleep(ETCD_LOAD_SECONDS * 1000);
  const after = await etcdCounters(etcd);
  await tearDown();
  const perTtl = count * (ETCD_LOAD_SECONDS / TTL);
  return { requests: (after.messages - before.messages) / perTtl, streams: (after.started - before.started) / perTtl };
}

/** `count` leaders on `store`; `seen` (if given) learns how many were selected and the errors they reported. */
function vipLeaders(
  store: LockStore,
  prefix: string,
  count: number,
  seen?: { selected: number; errors: Map<string, number> },
  /** Gets the candidates as soon as they exist, so that a caller that gives up waiting can stop them. */
  started: Candidate[] = [],
): () => Promise<() => Promise<void>> {
  return async () => {
    const candidates = Array.from({ length: count }, (_, i) => new Candidate(store, { path: `${prefix}load-${count}-${i}`, ttl: TTL }));
    started.push(...candidates);
    if (seen) {
      for (const candidate of candidates) {
        candidate.once('select', () => seen.selected++);
        candidate.on('error', (error: Error) => seen.errors.set(error.message.replace(/"[^"]*"/, 'KEY'), (seen.errors.get(error.message.replace(/"[^"]*"/, 'KEY')) ?? 0) + 1));
      }
    }
    await Promise.all(candidates.map((candidate) => candidate.start()));
    await Promise.all(candidates.map((candidate) => candidate.whenSelected()));
    return async () => {
      await Promise.all(candidates.map((candidate) => candidate.stop()));
      await store.close();
    };
  };
}

function etcd3Leaders(hosts: string[], prefix: string, count: number): () => Promise<() => Promise<void>> {
  return async () => {
    const client = new Etcd3({ hosts });
    const campaigns = Array.from({ length: count }, (_, i) => client.election(`${prefix}etcd3-load-${count}-${i}`, TTL).campaign('x'));
    await Promise.all(campaigns.map((campaign) => new Promise<void>((resolve, reject) => campaign.once('elected', resolve).once('error', reject))));
    return async () => {
      await Promise.all(campaigns.map((campaign) => campaign.resign()));
      client.close();
    };
  };
}

/** `count` idle vip leaders on one ConsulStore for CONSUL_LOAD_SECONDS, counted by a proxy in front of the agent. */
async function consulLoad(agent: ConsulAgent, prefix: string, count: number): Promise<Load> {
  const proxy = await countingProxy(agent);
  try {
    const store = new ConsulStore(proxy.url, { minTtl: CONSUL_MIN_TTL });
    const seen = { selected: 0, errors: new Map<string, number>() };
    const started: Candidate[] = [];
    const setUp = vipLeaders(store, `${prefix}${count}-`, count, seen, started)();
    // Bounded, so that a store that cannot hold this many elections is reported instead of stalling the run.
    const timedOut = await Promise.race([setUp.then(() => false), bound(60_000).then(() => true)]);
    if (timedOut) {
      await Promise.all(started.map((candidate) => candidate.stop()));
      const errors = [...seen.errors].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([message, n]) => `${n} × ${message}`);
      await store.close().catch(() => {});
      return { requests: Number.NaN, detail: `only ${seen.selected} of ${count} elections were selected within 60 s; most frequent errors: ${errors.join('; ') || 'none'}` };
    }
    const tearDown = await setUp;
    const before = await proxy.counts();
    await sleep(CONSUL_LOAD_SECONDS * 1000);
    const during = [...(await proxy.counts())].map(([kind, n]) => [kind, n - (before.get(kind) ?? 0)] as const).filter(([, n]) => n > 0);
    await tearDown();
    const perTtl = count * (CONSUL_LOAD_SECONDS / TTL);
    return {
      requests: during.reduce((total, [, n]) => total + n, 0) / perTtl,
      detail: during
        .sort((x, y) => y[1] - x[1])
        .map(([kind, n]) => `${kind} ${(n / perTtl).toFixed(count > 1 ? 3 : 2)}`)
        .join(', '),
    };
  } finally {
    await proxy.close();
  }
}

// ---------------------------------------------------------------------------
// 5. Scale

interface Scale {
  count: number;
  settleMs: number;
  rssMb: number;
  idleCpuPercent: number;
  /** Set when the implementation could not run this many elections: the errors it reported. */
  failed?: string;
}

/**
 * `count` elections in a process of their own (vip or etcd3 Election): time
 * until all lead, memory, idle CPU. `batch` starts them that many at a time.
 */
async function scaleIn(kind: 'vip' | 'etcd3', endpoints: string[], prefix: string, count: number, batch = count): Promise<Scale> {
  const child = spawnJsonLines<Partial<Scale>>(process.execPath, [worker, 'scale', kind, endpoints.join(','), String(count), String(IDLE_SECONDS), prefix, String(batch)]);
  const timedOut = await Promise.race([child.exited.then(() => false), bound((IDLE_SECONDS + 300) * 1000).then(() => true)]);
  const exit = await child.kill('SIGKILL');
  const result = child.lines.at(-1);
  if (!timedOut && exit.code === 0 && result && result.failed === undefined) return result as Scale;
  const reason = timedOut
    ? `no result after ${IDLE_SECONDS + 300} s`
    : (result?.failed ?? /^\w*Error\b.*$/m.exec(child.stderr(50))?.[0] ?? `exit code ${exit.code}, signal ${exit.signal}: ${child.stderr(3)}`);
  log(`scale: ${kind} with ${count} elections failed: ${reason}`);
  return { count, settleMs: Number.NaN, rssMb: Number.NaN, idleCpuPercent: Number.NaN, failed: reason };
}

// ---------------------------------------------------------------------------
// 6. Cost of metrics

/** What worker.ts `metrics` reports; the scrape figures only with metrics. */
interface MetricsCost {
  count: number;
  settleMs: number;
  rssMb: number;
  heapUsedMb: number;
  idleCpuPercent: number;
  /** Resident memory at the end of the idle window without scrapes. */
  rssAfterIdleMb?: number;
  firstScrapeMs?: number;
  scrapeMs?: number;
  scrapeBytes?: number;
  scrapeSeries?: number;
  scrapedCpuPercent?: number;
  rssAfterScrapesMb?: number;
  failed?: string;
}

type MetricsKind = 'without' | 'with' | 'process';
type MetricsRun = Record<MetricsKind, MetricsCost>;

/** `count` vip elections on etcd in a process of their own, every one tracked by a VipMetrics (per election, or for the process as a whole) or none. */
async function metricsIn(kind: MetricsKind, endpoints: string[], prefix: string, count: number): Promise<MetricsCost> {
  const args = [worker, 'metrics', kind, endpoints.join(','), String(count), String(METRICS_IDLE_SECONDS), prefix, String(SCRAPE_EVERY_SECONDS)];
  const child = spawnJsonLines<Partial<MetricsCost>>(process.execPath, ['--expose-gc', ...args]);
  const limit = 2 * METRICS_IDLE_SECONDS + 300;
  const timedOut = await Promise.race([child.exited.then(() => false), bound(limit * 1000).then(() => true)]);
  const exit = await child.kill('SIGKILL');
  const result = child.lines.at(-1);
  if (!timedOut && exit.code === 0 && result?.settleMs !== undefined) return result as MetricsCost;
  const reason = timedOut ? `no result after ${limit} s` : (/^\w*Error\b.*$/m.exec(child.stderr(50))?.[0] ?? `exit code ${exit.code}, signal ${exit.signal}: ${child.stderr(3)}`);
  log(`metrics: ${count} elections, ${kind}, failed: ${reason}`);
  return { count, settleMs: Number.NaN, rssMb: Number.NaN, heapUsedMb: Number.NaN, idleCpuPercent: Number.NaN, failed: reason };
}

/** Each count without, then with metrics per election, then for the process as a whole: one process each, on the same etcd. */
async function metricsCosts(endpoints: string[], prefix: string): Promise<MetricsRun[]> {
  const pairs: MetricsRun[] = [];
  for (const count of METRICS_COUNTS) {
    log(`cost of metrics: ${count.toLocaleString('en')} election${count === 1 ? '' : 's'} on etcd without, with VipMetrics, with VipMetrics({ perElection: false }) (a process each, ${METRICS_IDLE_SECONDS} s idle windows)`);
    const without = await metricsIn('without', endpoints, prefix, count);
    const withMetrics = await metricsIn('with', endpoints, prefix, count);
    pairs.push({ without, with: withMetrics, process: await metricsIn('process', endpoints, prefix, count) });
  }
  return pairs;
}

const METRICS_HEADING = '## 6. Cost of metrics';

/** Figure 6 as a section of BENCHMARKS.md; `provenance` says where its figures come from when it is regenerated alone. */
function metricsSection(pairs: MetricsRun[], provenance = ''): string {
  const pct = (value: number | undefined): string => (value === undefined || Number.isNaN(value) ? '–' : `${value.toFixed(1)} %`);
  const mib = (value: number | undefined): string => (value === undefined || Number.isNaN(value) ? '–' : `${value.toFixed(0)} MiB`);
  const time = (value: number | undefined): string => (value === undefined || Number.isNaN(value) ? '–' : `${ms(value)} ms`);
  const bytes = (value: number | undefined): string =>
    value === undefined ? '–' : value >= 2 ** 20 ? `${(value / 2 ** 20).toFixed(1)} MiB` : value >= 1024 ? `${(value / 1024).toFixed(1)} KiB` : `${value} B`;
  const vs = (value: number | undefined, base: number): string => (value === undefined ? '' : ` (${ratio(value, base)})`);
  const costRows = pairs.flatMap(({ without: base, with: m, process: whole }) =>
    [
      ['without', base],
      ['VipMetrics, series per election', m],
      ['VipMetrics, perElection: false', whole],
    ].map(([name, r]) => {
      const row = r as MetricsCost;
      const n = row.count.toLocaleString('en');
      if (row.failed) return `| ${n} | ${name} | failed: ${row.failed.replace(/\|/g, '/').replace(/\n/g, ' ')} | | | | |`;
      const own = row === base;
      return `| ${n} | ${name} | ${time(row.settleMs)}${own ? '' : vs(row.settleMs, base.settleMs)} | ${mib(row.rssMb)}${own ? '' : vs(row.rssMb, base.rssMb)} | ${mib(row.heapUsedMb)}${own ? '' : vs(row.heapUsedMb, base.heapUsedMb)} | ${pct(row.idleCpuPercent)}${own ? '' : vs(row.idleCpuPercent, base.idleCpuPercent)} | ${own ? '–' : `${pct(row.scrapedCpuPercent)}${vs(row.scrapedCpuPercent, base.idleCpuPercent)}`} |`;
    }),
  );
  const scrapeRows = pairs.flatMap(({ with: perElection, process: whole, without: base }) =>
    ([['series per election', perElection], ['perElection: false', whole]] as const).map(([name, m]) =>
    m.failed
      ? `| ${m.count.toLocaleString('en')} | ${name} | failed | | | | | |`
      : `| ${m.count.toLocaleString('en')} | ${name} | ${time(m.firstScrapeMs)} | ${time(m.scrapeMs)} | ${bytes(m.scrapeBytes)} | ${m.scrapeSeries?.toLocaleString('en') ?? '–'} | ${mib(m.rssAfterScrapesMb)}${base.rssAfterIdleMb === undefined ? '' : vs(m.rssAfterScrapesMb, base.rssAfterIdleMb)} | ${mib(base.rssAfterIdleMb)} |`,
    ),
  );
  // The verdict for the largest count, from the figures of this run.
  const last = pairs.at(-1)!;
  let verdict = '';
  if (!last.with.failed && !last.without.failed) {
    const { with: m, without: base } = last;
    const n = m.count.toLocaleString('en');
    const extraMb = m.rssMb - base.rssMb;
    const extraHeapMb = m.heapUsedMb - base.heapUsedMb;
    const extraIdle = m.idleCpuPercent - base.idleCpuPercent;
    const extraScraped = (m.scrapedCpuPercent ?? Number.NaN) - base.idleCpuPercent;
    const perElection = (mb: number): string => `${((mb * 1024) / m.count).toFixed(1)} KiB per election`;
    const signed = (value: number, digits: number): string => `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(digits)}`;
    const notSmall: string[] = [];
    if (m.heapUsedMb > 1.25 * base.heapUsedMb) notSmall.push(`the live heap grows by more than a quarter (${ratio(m.heapUsedMb, base.heapUsedMb)})`);
    if (m.rssMb > 1.25 * base.rssMb) notSmall.push(`resident memory grows by more than a quarter (${ratio(m.rssMb, base.rssMb)})`);
    const afterScrapes = m.rssAfterScrapesMb ?? Number.NaN;
    const baseAfterIdle = base.rssAfterIdleMb ?? Number.NaN;
    if (afterScrapes > 1.25 * baseAfterIdle) notSmall.push(`after the scrapes resident memory is ${ratio(afterScrapes, baseAfterIdle)} that of the process without metrics`);
    if (extraIdle > 1) notSmall.push(`idle CPU grows by more than 1 % of a core without scrapes`);
    if (extraScraped > 2) notSmall.push(`scraping every ${SCRAPE_EVERY_SECONDS} s costs more than 2 % of a core`);
    if ((m.scrapeMs ?? 0) > 1000) notSmall.push(`a scrape takes more than a second`);
    const whole = last.process;
    const wholeNote = whole.failed
      ? ''
      : ` With \`perElection: false\` (series for the process as a whole): live heap ${signed(whole.heapUsedMb - base.heapUsedMb, 1)} MiB (${ratio(whole.heapUsedMb, base.heapUsedMb)}), idle CPU ${signed(whole.idleCpuPercent - base.idleCpuPercent, 1)} points between scrapes and ${signed((whole.scrapedCpuPercent ?? Number.NaN) - base.idleCpuPercent, 1)} points scraped every ${SCRAPE_EVERY_SECONDS} s; one scrape ${time(whole.scrapeMs)}, ${bytes(whole.scrapeBytes)} in ${whole.scrapeSeries?.toLocaleString('en') ?? '–'} series${
          whole.heapUsedMb <= 1.25 * base.heapUsedMb && whole.idleCpuPercent - base.idleCpuPercent <= 1 && (whole.scrapedCpuPercent ?? Infinity) - base.idleCpuPercent <= 2 && (whole.scrapeMs ?? Infinity) <= 1000
            ? ': small by the same limits (resident memory aside, which varies by more than that between processes here).'
            : ': not small either by the same limits.'
        } A process with thousands of elections should use it; per-election series are for a few (their cost is per election: ${perElection(extraHeapMb)}, ${((m.scrapeSeries ?? 0) / m.count).toFixed(1)} series).`;
    verdict = `At ${n} elections, with VipMetrics against without: live heap ${signed(extraHeapMb, 1)} MiB (${ratio(m.heapUsedMb, base.heapUsedMb)}; ${perElection(extraHeapMb)}), resident memory
${signed(extraMb, 0)} MiB (${ratio(m.rssMb, base.rssMb)}), idle CPU ${signed(extraIdle, 1)} points of a core between scrapes and ${signed(extraScraped, 1)} points with a scrape every ${SCRAPE_EVERY_SECONDS} s
(against the process without metrics, idle). Resident memory and CPU vary from one process to the next on this shared machine
(the garbage a process happens to hold, other work on the two cores), by more than some of these differences: the live heap
after a full collection is the steady memory figure. One scrape took ${time(m.scrapeMs)} (${time(m.firstScrapeMs)} the first, cold) and produced ${bytes(m.scrapeBytes)}
of text in ${m.scrapeSeries?.toLocaleString('en') ?? '–'} series, and after the scrapes the process held ${mib(afterScrapes)} resident (${mib(baseAfterIdle)} without metrics
at the same point); prom-client builds the text in JavaScript on the event loop, so the elections' timers wait
while it runs (their deadlines are seconds away: ttl 10 s here). ${
      notSmall.length === 0
        ? 'By the limits this benchmark sets (live heap and resident memory at most 1.25×, when all lead and after the scrapes; idle CPU at most +1 point of a core, scraped at most +2 points, a scrape under 1 s), **the cost is small**.'
        : `**The cost of series per election is not small** by the limits this benchmark sets (live heap and resident memory at most 1.25×, when all lead and after the scrapes; idle CPU at most +1 point of a core, scraped at most +2 points, a scrape under 1 s): ${notSmall.join('; ')}.`
    }${wholeNote}`;
  }
  return `${METRICS_HEADING}: VipMetrics tracking every election, per election and for the process as a whole, against none (each configuration in a process of its own)

${provenance}vip elections on one EtcdStore against the etcd above (its default limits), started all at once with ttl 10 s as in figure 5;
each configuration in a fresh process, side by side in the same run, without metrics first. With metrics, one \`VipMetrics\`
on a fresh prom-client \`Registry\` tracks every candidate (before start()): with series per election (the default), then with
\`perElection: false\`. Memory is read when all lead: resident memory as
figure 5 reads it (whatever the garbage collector left), then the heap used after a full collection (the live heap). CPU is in % of one
core over ${METRICS_IDLE_SECONDS} s idle windows while holding: first without scrapes, then (with metrics) another window of the same
length with a \`registry.metrics()\` call every ${SCRAPE_EVERY_SECONDS} s (Prometheus' default interval is 1 min; 15 s is common). Ratios are against
the process without metrics at the same count.

| elections | metrics | time until all lead | resident memory | heap used | CPU while idle (${METRICS_IDLE_SECONDS} s) | CPU while idle, scraped every ${SCRAPE_EVERY_SECONDS} s |
| ---: | --- | ---: | ---: | ---: | ---: | ---: |
${costRows.join('\n')}

One scrape, \`await registry.metrics()\` in the process with metrics (after the first idle window):

| elections | metrics | first scrape (cold) | scrape (median of the next 5) | text | series | resident memory after the scrapes | without metrics, after its idle window |
| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |
${scrapeRows.join('\n')}

${verdict}
`;
}

/** BENCHMARKS.md with the section under `heading` replaced (or inserted before the closing section), the other sections as they were. */
function withSection(markdown: string, heading: string, section: string): string {
  const start = markdown.indexOf(`\n${heading}`);
  if (start >= 0) {
    const next = markdown.indexOf('\n## ', start + 1);
    return next >= 0 ? `${markdown.slice(0, start + 1)}${section}${markdown.slice(next)}` : `${markdown.slice(0, start + 1)}${section}`;
  }
  const closing = markdown.indexOf('\n## What this means');
  if (closing >= 0) return `${markdown.slice(0, closing + 1)}${section}\n${markdown.slice(closing + 1)}`;
  return `${markdown.replace(/\n*$/, '\n\n')}${section}`;
}

/** `npm run bench -- metrics`: figure 6 alone, on an etcd of its own; rewrites only its section of BENCHMARKS.md. */
async function metricsAlone(): Promise<void> {
  const date = new Date();
  log(`figure 6 alone: cost of metrics at ${METRICS_COUNTS.map((n) => n.toLocaleString('en')).join(' and ')} elections, ${METRICS_IDLE_SECONDS} s idle windows`);
  const etcd = await startEtcd({ enableV2: true }); // the same server as the whole run starts
  try {
    const version = ((await (await fetch(`${etcd.endpoints[0]}/version`)).json()) as { etcdserver: string }).etcdserver;
    const pairs = await metricsCosts(etcd.endpoints, uniquePrefix('bench'));
    const seconds = ((performance.now() - began) / 1000).toFixed(0);
    const provenance = `Regenerated alone by \`npm run bench -- metrics\` on ${date.toISOString().slice(0, 10)}, in ${seconds} s, against etcd ${version} (1 member,
started by the benchmark); ${operatingSystem()}; ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}; Node.js ${process.version}.
The other sections are from the run described at the top.

`;
    const section = metricsSection(pairs, provenance);
    const file = join(repositoryRoot, 'BENCHMARKS.md');
    writeFileSync(file, withSection(existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n', METRICS_HEADING, section));
    console.log(section);
  } finally {
    await etcd.close();
    log(`figure 6 done in ${elapsed()} (wall time, server included)`);
  }
}

/** A dot plot of failover samples per implementation on a log time axis, as SVG. */
function failoverChart(series: [string, number[]][]): string {
  const width = 760;
  const left = 250;
  const rowHeight = 34;
  const height = 50 + series.length * rowHeight;
  const min = 1;
  const max = 100_000;
  const x = (value: number): number => left + ((Math.log10(Math.max(min, value)) - Math.log10(min)) / (Math.log10(max) - Math.log10(min))) * (width - left - 20);
  const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  for (const tick of [1, 10, 100, 1000, 10_000, 100_000]) {
    parts.push(`<line x1="${x(tick)}" y1="10" x2="${x(tick)}" y2="${height - 30}" stroke="#ddd"/>`);
    parts.push(`<text x="${x(tick)}" y="${height - 12}" text-anchor="middle" fill="#555">${tick >= 1000 ? `${tick / 1000} s` : `${tick} ms`}</text>`);
  }
  series.forEach(([name, samples], i) => {
    const y = 30 + i * rowHeight;
    parts.push(`<text x="${left - 10}" y="${y + 4}" text-anchor="end">${escape(name)}</text>`);
    for (const sample of samples) parts.push(`<circle cx="${x(sample).toFixed(1)}" cy="${y}" r="3" fill="#2a6fdb" fill-opacity="0.35"/>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

const ratio = (value: number, base: number): string => (Number.isFinite(value / base) ? `${(value / base).toFixed(1)}×` : '–');

function row(name: string, s: Stats, base?: Stats): string {
  return `| ${name} | ${s.n} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.max)} | ${base ? ratio(s.p50, base.p50) : '1×'} |`;
}

function crashRow(name: string, s: Stats, base?: Stats): string {
  const ttls = (value: number): string => (Number.isNaN(value) ? '–' : (value / 1000 / TTL).toFixed(2));
  return `| ${name} | ${TTL} s | ${s.n} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.max)} | ${ttls(s.p50)} | ${ttls(s.max)} | ${base ? ratio(s.p50, base.p50) : '1×'} |`;
}

async function serverVersions(etcd: EtcdCluster, consul: ConsulAgent): Promise<{ etcd: string; consul: string }> {
  const etcdVersion = ((await (await fetch(`${etcd.endpoints[0]}/version`)).json()) as { etcdserver: string }).etcdserver;
  const self = (await (await fetch(`${consul.address}/v1/agent/self`)).json()) as { Config: { Version: string } };
  return { etcd: etcdVersion, consul: self.Config.Version };
}

function operatingSystem(): string {
  const file = '/etc/os-release';
  const pretty = existsSync(file) ? /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync(file, 'utf8'))?.[1] : undefined;
  return `${pretty ? `${pretty}, ` : ''}${osType()} kernel ${release()}`;
}

async function main(): Promise<void> {
  const date = new Date();
  const counts = `${TRIALS} graceful trials per implementation (locked ${LOCKED_TRIALS}, consul lock ${CONSUL_LOCK_TRIALS}), ${CRASH_TRIALS} crash trials, scale up to ${SCALE.at(-1)!.toLocaleString('en')} elections, ${IDLE_SECONDS} s of idle CPU, cost of metrics at ${METRICS_COUNTS.map((n) => n.toLocaleString('en')).join(' and ')} elections with ${METRICS_IDLE_SECONDS} s idle windows`;
  const quickNote = full
    ? ''
    : `**This is a quick run** (\`npm run bench\`): ${counts}. The full figures (at least 100 graceful and 10 crash trials, 10,000 elections, a minute of idle CPU) come from \`npm run bench -- --full\`.\n\n`;
  log(`mode: ${MODE}; ${counts}`);
  const etcd = await startEtcd({ enableV2: true }); // v2 for the seed module `locked`
  // Every limit at its default (figure 7 runs on agents of its own, also at their defaults).
  const consul = await startConsul({ configJson: { session_ttl_min: `${CONSUL_MIN_TTL}s` } });
  const etcdPrefix = uniquePrefix('bench');
  const consulPrefix = uniqueConsulPrefix('bench');
  const lockedHost = `127.0.0.1:${etcd.members[0]!.clientPort}`;
  const etcdStores: [EtcdStore, EtcdStore] = [new EtcdStore(etcd.endpoints), new EtcdStore(etcd.endpoints)];
  const consulStores: [ConsulStore, ConsulStore] = [
    new ConsulStore(consul.connectionString, { minTtl: CONSUL_MIN_TTL }),
    new ConsulStore(consul.connectionString, { minTtl: CONSUL_MIN_TTL }),
  ];
  try {
    const versions = await serverVersions(etcd, consul);

    log('graceful failover: vip on etcd');
    const gEtcdSamples = await gracefulVip(etcdStores, etcdPrefix);
    log('graceful failover: etcd3 Election');
    const gEtcd3Samples = await gracefulEtcd3(etcd.endpoints, etcdPrefix);
    log(`graceful failover: the seed module locked (etcd v2), ${LOCKED_BATCH} trials at a time; and what etcd does with one locked node's key`);
    const history = lockedKeyHistory(etcd.endpoints[0]!, lockedHost);
    history.catch(() => {}); // awaited below; a failure must not end the run as an unhandled rejection before then
    const gLockedSamples = await gracefulLocked(lockedHost, LOCKED_TRIALS);
    log('graceful failover: vip on Consul');
    const gConsulSamples = await gracefulVip(consulStores, consulPrefix);
    log('graceful failover: consul lock');
    const gConsulLock = await gracefulConsulLock(consul, consulPrefix, CONSUL_LOCK_TRIALS);
    const lockedHistory = await history;
    const [gEtcd, gEtcd3, gLocked, gConsul, gConsulLockStats] = [gEtcdSamples, gEtcd3Samples, gLockedSamples, gConsulSamples, gConsulLock.samples].map(stats) as [
      Stats,
      Stats,
      Stats,
      Stats,
      Stats,
    ];

    log('crash failover (separate processes, SIGKILL): vip on etcd');
    const vipProcess = (backend: 'etcd' | 'consul', address: string, path: string, id: string): JsonLinesProcess<EventLine> =>
      spawnJsonLines<EventLine>(process.execPath, [fixture], {
        VIP_BACKEND: backend,
        VIP_ADDRESS: address,
        VIP_PATH: path,
        VIP_ID: id,
        VIP_TTL: String(TTL),
        ...(backend === 'consul' ? { VIP_MIN_TTL: String(CONSUL_MIN_TTL) } : {}),
      });
    const cEtcdTrials = await crashTrials((id, i) => vipProcess('etcd', etcd.connectionString, `${etcdPrefix}crash-${i}`, id), CRASH_TRIALS);
    log('crash failover: etcd3 Election');
    const cEtcd3Trials = await crashTrials(
      (id, i) => spawnJsonLines<EventLine>(process.execPath, [worker, 'etcd3-candidate', etcd.endpoints.join(','), `${etcdPrefix}etcd3-crash-${i}`, id, String(TTL)]),
      CRASH_TRIALS,
    );
    log('crash failover: locked');
    const lockedRun = Date.now(); // one key per trial, the same for both of its processes
    const cLockedTrials = await crashTrials(
      (id, i) => spawnJsonLines<EventLine>(process.execPath, [worker, 'locked-candidate', lockedHost, `/bench/locked-crash-${lockedRun}-${i}`, id, String(TTL)]),
      CRASH_TRIALS,
    );
    log('crash failover: vip on Consul');
    const cConsulTrials = await crashTrials((id, i) => vipProcess('consul', consul.connectionString, `${consulPrefix}crash-${i}`, id), CRASH_TRIALS);
    const crashes = { 'vip on etcd': cEtcdTrials, 'etcd3 Election': cEtcd3Trials, locked: cLockedTrials, 'vip on Consul': cConsulTrials };
    const [cEtcdSamples, cEtcd3Samples, cLockedSamples, cConsulSamples] = Object.values(crashes).map((trials) => trials.samples) as [number[], number[], number[], number[]];
    const [cEtcd, cEtcd3, cLocked, cConsul] = [cEtcdSamples, cEtcd3Samples, cLockedSamples, cConsulSamples].map(stats) as [Stats, Stats, Stats, Stats];
    const crashNote = Object.entries(crashes)
      .filter(([, trials]) => trials.failures.length > 0)
      .map(([name, trials]) => `\n\n${name}: ${trials.failures.length} of ${CRASH_TRIALS} trials did not finish: ${[...new Set(trials.failures)].join('; ')}.`)
      .join('');

    log('time to first leader');
    const fEtcd = stats(await firstLeaderVip(etcdStores[0], etcdPrefix));
    const fEtcd3 = stats(await firstLeaderEtcd3(etcd.endpoints, etcdPrefix));
    const fConsul = stats(await firstLeaderVip(consulStores[0], consulPrefix));

    log(`store load: etcd counted by etcd (${ETCD_LOAD_SECONDS} s each) and, at the same time, 1 Consul election counted by a proxy (${CONSUL_LOAD_SECONDS} s); then 1,000 Consul elections alone`);
    const [etcdLoads, consulOne] = await Promise.all([
      (async () => ({
        vip1: await etcdLoad(etcd, 1, vipLeaders(new EtcdStore(etcd.endpoints), etcdPrefix, 1)),
        vip1000: await etcdLoad(etcd, 1000, vipLeaders(new EtcdStore(etcd.endpoints), etcdPrefix, 1000)),
        etcd31: await etcdLoad(etcd, 1, etcd3Leaders(etcd.endpoints, etcdPrefix, 1)),
        etcd31000: await etcdLoad(etcd, 1000, etcd3Leaders(etcd.endpoints, etcdPrefix, 1000)),
      }))(),
      consulLoad(consul, `${consulPrefix}load-`, 1),
    ]);
    // 1,000 Consul elections alone: beside etcd's load on two cores, their transactions missed the
    // candidates' request timeouts and the figure measured the machine, not the store.
    const consulLoads = [consulOne, await consulLoad(consul, `${consulPrefix}load-`, 1000)] as const;

    const scale: { count: number; rows: [string, Scale][] }[] = [];
    for (const count of SCALE) {
      log(`scale: ${count} elections in one process (vip, then etcd3 Election, each in a process of its own)`);
      const rows: [string, Scale][] = [
        ['vip (EtcdStore)', await scaleIn('vip', etcd.endpoints, etcdPrefix, count)],
        ['etcd3 Election', await scaleIn('etcd3', etcd.endpoints, etcdPrefix, count)],
      ];
      if (rows[1]![1].failed && count > 1000) {
        log(`scale: etcd3 Election again, ${count} elections started 1,000 at a time`);
        rows.push(['etcd3 Election, started 1,000 at a time', await scaleIn('etcd3', etcd.endpoints, etcdPrefix, count, 1000)]);
      }
      scale.push({ count, rows });
    }

    const metricsPairs = await metricsCosts(etcd.endpoints, etcdPrefix);
    const consulScale = await consulScaleSection(CONSUL_SCALE_SIZES);

    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    const ttls = (value: number): string => (value / 1000 / TTL).toFixed(2);
    const scaleRow = (count: number, name: string, s: Scale, base: Scale): string =>
      s.failed
        ? `| ${count.toLocaleString('en')} | ${name} | failed: ${s.failed.replace(/\|/g, '/').replace(/\n/g, ' ')} | | |`
        : `| ${count.toLocaleString('en')} | ${name} | ${ms(s.settleMs)} ms${s === base ? '' : ` (${ratio(s.settleMs, base.settleMs)})`} | ${s.rssMb.toFixed(0)} MiB${s === base ? '' : ` (${ratio(s.rssMb, base.rssMb)})`} | ${s.idleCpuPercent.toFixed(1)} % |`;
    const consulLockNote = gConsulLock.failures.length
      ? `\n\n\`consul lock\` could not be driven in ${gConsulLock.failures.length} of ${CONSUL_LOCK_TRIALS} trials: ${[...new Set(gConsulLock.failures)].join('; ')}.`
      : '';
    const seconds = ((performance.now() - began) / 1000).toFixed(0);
    const report = `# Benchmarks

Produced by \`npm run bench${full ? ' -- --full' : ''}\` on ${date.toISOString().slice(0, 10)}, in one run of ${seconds} s, against
real servers the benchmark started itself: etcd ${versions.etcd} (${etcd.members.length} member, \`--enable-v2\` for \`locked\`) and
a Consul ${versions.consul} dev agent (\`session_ttl_min\` lowered to ${CONSUL_MIN_TTL} s so that Consul runs at the same TTL, its default minimum being 10 s;
every other limit at its default).
Machine: ${operatingSystem()}; ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; Node.js ${process.version}.
Every implementation uses a TTL of ${TTL} s. These machines are shared and noisy: read the ratios, measured side by side
in the same run, more than the absolute numbers. Times are in milliseconds.

${quickNote}![Failover latency of every trial, log scale](bench/failover.svg)

## 1. Graceful failover: the leader stops; time until another candidate is selected

| implementation | trials | p50 | p99 | max | p50 vs vip on etcd |
| --- | ---: | ---: | ---: | ---: | ---: |
${row('vip on etcd (EtcdStore)', gEtcd)}
${row('etcd3 Election (resign)', gEtcd3, gEtcd)}
${row('locked 2.4.1, the seed module (etcd v2 API)', gLocked, gEtcd)}
${row('vip on Consul (ConsulStore)', gConsul, gEtcd)}
${row(`consul lock (Consul ${versions.consul} CLI), SIGTERM to the holder`, gConsulLockStats, gEtcd)}

vip's stop() and etcd3's resign() release the key, so by design the next leader is chosen in one watch
round trip, whatever the TTL. \`locked\`'s stop() only stops its timers and deletes nothing (its index.js),
so its successor waits for the key to expire: ${ttls(gLocked.p50)} × ttl at p50 in this run (its trials ran
${LOCKED_BATCH} at a time, each pair on its own key, since each lasts about a TTL). While one \`locked\` node ran
alone for ${lockedHistory.seconds} s, it wrote its key ${lockedHistory.writes} times and etcd expired it ${lockedHistory.expiries} times${
      lockedHistory.expiries > 0
        ? ` (its refresh, from its source, writes with prevExist=false, which etcd refuses for an existing key; so the key lapses every ttl and, with two nodes, leadership is contested again each time)`
        : ''
    }.
\`consul lock\` is timed from the SIGTERM to its holder (which stops its child, then releases the lock) until the
waiting \`consul lock\`'s child prints its first line; that includes starting the child's shell.${consulLockNote}

## 2. Crash failover: the leader process gets SIGKILL; time until another process is selected

Timed for every implementation from the moment the SIGKILL is sent to the select logged by the other process.

| implementation | ttl | trials | p50 | p99 | max | p50 / ttl | max / ttl | p50 vs vip on etcd |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${crashRow('vip on etcd', cEtcd)}
${crashRow('etcd3 Election', cEtcd3, cEtcd)}
${crashRow('locked 2.4.1 (etcd v2 API)', cLocked, cEtcd)}
${crashRow('vip on Consul', cConsul, cEtcd)}

The floor is the server's rule. etcd deletes a dead holder's key when its lease expires, between ttl and
ttl + 0.5 s after the last keepalive (its lessor checks every 500 ms); the last keepalive was up to ttl/3 before
the kill, so takeover lands between 2/3 ttl and ttl + 0.5 s. etcd v2 (\`locked\`) expires a key ttl after its last
write. Consul invalidates a session between ttl and 2 × ttl after its last renew (SessionTTLMultiplier = 2), and ConsulStore's
default lock delay then keeps the key unlockable for one more ttl (so that a session invalidated early, by its node leaving
the catalog, cannot let a second leader in before the old one's deadline): between 2 × ttl and 3 × ttl in all.${crashNote}

## 3. Time to first leader on an uncontended key (start() to select)

| implementation | trials | p50 | p99 | max | p50 vs vip on etcd |
| --- | ---: | ---: | ---: | ---: | ---: |
${row('vip on etcd', fEtcd)}
${row('etcd3 Election (campaign)', fEtcd3, fEtcd)}
${row('vip on Consul', fConsul, fEtcd)}

## 4. Store load: requests each idle election costs the store per TTL (${TTL} s)

etcd, counted by etcd itself over ${ETCD_LOAD_SECONDS} s: gRPC messages received (\`grpc_server_msg_received_total\`: unary
requests and each message on a stream) and streams or calls started (\`grpc_server_started_total\`).

| implementation | messages, 1 election | messages, 1,000 elections in one process | streams started, 1 | streams started, 1,000 | messages vs vip (1 / 1,000) |
| --- | ---: | ---: | ---: | ---: | ---: |
| vip (EtcdStore: one shared lease; refreshes aligned and coalesced into one keepalive) | ${etcdLoads.vip1.requests.toFixed(2)} | ${etcdLoads.vip1000.requests.toFixed(3)} | ${etcdLoads.vip1.streams!.toFixed(2)} | ${etcdLoads.vip1000.streams!.toFixed(3)} | 1× / 1× |
| etcd3 Election (one lease per election) | ${etcdLoads.etcd31.requests.toFixed(2)} | ${etcdLoads.etcd31000.requests.toFixed(3)} | ${etcdLoads.etcd31.streams!.toFixed(2)} | ${etcdLoads.etcd31000.streams!.toFixed(3)} | ${ratio(etcdLoads.etcd31.requests, etcdLoads.vip1.requests)} / ${ratio(etcdLoads.etcd31000.requests, etcdLoads.vip1000.requests)} |

Consul, counted by an HTTP proxy between the store and the agent over ${CONSUL_LOAD_SECONDS} s (a watch's blocking query
returns every 30 s when nothing changes, so a shorter window would miss it), the proxy in a process of its own; the 1,000
elections were counted alone, after the etcd figures. No Consul peer was measured here.

| implementation | requests, 1 election | requests, 1,000 elections in one process |
| --- | ---: | ---: |
| vip (ConsulStore) | ${Number.isNaN(consulLoads[0].requests) ? "failed" : consulLoads[0].requests.toFixed(2)} | ${Number.isNaN(consulLoads[1].requests) ? 'failed' : consulLoads[1].requests.toFixed(3)} |

By request (per election per TTL): 1 election: ${consulLoads[0].detail || 'none'}; 1,000 elections: ${consulLoads[1].detail || 'none'}.

## 5. Scale: elections campaigning in one process on one etcd client (each implementation in a process of its own)

| elections | implementation | time until all lead | resident memory | CPU while idle (${IDLE_SECONDS} s) |
| ---: | --- | ---: | ---: | ---: |
${scale.flatMap(({ count, rows }) => rows.map(([name, s]) => scaleRow(count, name, s, rows[0]![1]))).join('\n')}

A failed row quotes the errors the implementation reported (each distinct error with its count).

${metricsSection(metricsPairs)}
${consulScale}
## What this means for choosing a TTL

In this run a graceful handover took ${ms(gEtcd.p50)} ms on etcd and ${ms(gConsul.p50)} ms on Consul at p50, and by design it does
not depend on the TTL. The TTL sets how long a *crashed* leader blocks the job: here ${ttls(cEtcd.p50)} × ttl at p50
(${ttls(cEtcd.max)} × ttl at most) on etcd and ${ttls(cConsul.p50)} × ttl (${ttls(cConsul.max)} × ttl at most) on Consul; and it sets how
often each process refreshes: one keepalive per ttl/3 for all its elections together (figure 4).
`;
    writeFileSync(
      join(repositoryRoot, 'bench', 'failover.svg'),
      failoverChart([
        ['graceful: vip on etcd', gEtcdSamples],
        ['graceful: etcd3 Election', gEtcd3Samples],
        ['graceful: locked (seed)', gLockedSamples],
        ['graceful: vip on Consul', gConsulSamples],
        ['graceful: consul lock', gConsulLock.samples],
        [`crash: vip on etcd (ttl ${TTL} s)`, cEtcdSamples],
        [`crash: etcd3 Election (ttl ${TTL} s)`, cEtcd3Samples],
        [`crash: locked (ttl ${TTL} s)`, cLockedSamples],
        [`crash: vip on Consul (ttl ${TTL} s)`, cConsulSamples],
      ]),
    );
    writeFileSync(join(repositoryRoot, 'BENCHMARKS.md'), report);
    console.log(report);
  } finally {
    await Promise.all([...etcdStores, ...consulStores].map((store) => store.close()));
    await Promise.all([etcd.close(), consul.close()]);
    log(`${MODE} run done in ${elapsed()} (wall time, servers included)`);
  }
}

/** `npm run bench -- consul`: figure 7 alone, at full size, on agents of its own; rewrites only its section of BENCHMARKS.md. */
async function consulAlone(): Promise<void> {
  const date = new Date();
  log('figure 7 alone: Consul at scale, agents at their default limits');
  const section = await consulScaleSection(
    CONSUL_SCALE_SIZES,
    `Regenerated alone by \`npm run bench -- consul\` on ${date.toISOString().slice(0, 10)}; ${operatingSystem()}; ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'};
Node.js ${process.version}. The other sections are from the run described at the top.

`,
  );
  const file = join(repositoryRoot, 'BENCHMARKS.md');
  writeFileSync(file, withSection(existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n', CONSUL_SCALE_HEADING, section));
  console.log(section);
  log(`figure 7 done in ${elapsed()} (wall time, servers included)`);
}

await (metricsOnly ? metricsAlone() : consulOnly ? consulAlone() : main());
