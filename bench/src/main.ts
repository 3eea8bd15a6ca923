/**
 * Benchmarks against real servers started here (never mocks): failover
 * latency, time to first leader, store load and scale, with etcd3's own
 * Election side by side on the same etcd in the same run.
 *
 *   npm run bench              quick mode (a few minutes)
 *   npm run bench -- --full    more trials, 10,000 elections, a minute of idle CPU
 *
 * Writes BENCHMARKS.md at the repository root. Figures are from this run on
 * this machine: compare the ratios, not the absolute numbers, across machines.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Candidate, type LockStore } from '@vip/core';
import { ConsulStore } from '@vip/consul';
import { EtcdStore } from '@vip/etcd';
import { Election, repositoryRoot, startConsul, startEtcd, uniqueConsulPrefix, uniquePrefix, type EtcdCluster } from '@vip/test-integration/harness';
import { Etcd3 } from 'etcd3';

const full = process.argv.includes('--full');
const TRIALS = full ? 100 : 30;
const SCALE = full ? [1000, 10_000] : [1000];
const IDLE_SECONDS = full ? 60 : 10;
const ETCD_TTL = 3;
const CONSUL_TTL = 10;
const CRASH_TRIALS = { etcd: full ? 10 : 5, consul: full ? 10 : 3 };

interface Stats {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value.toFixed(1));
const log = (line: string): void => console.log(`[bench] ${line}`);

/** Two candidates on separate store clients (as two processes); the leader stops; time until the other's select. */
async function gracefulVip(stores: [LockStore, LockStore], prefix: string, ttl: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const path = `${prefix}graceful-${i}`;
    const a = new Candidate(stores[0], { path, id: 'a', ttl });
    const b = new Candidate(stores[1], { path, id: 'b', ttl });
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
async function gracefulEtcd3(hosts: string[], prefix: string, ttl: number): Promise<number[]> {
  const clients = [new Etcd3({ hosts }), new Etcd3({ hosts })] as const;
  const samples: number[] = [];
  try {
    for (let i = 0; i < TRIALS; i++) {
      const name = `${prefix}etcd3-graceful-${i}`;
      const first = clients[0].election(name, ttl).campaign('a');
      await new Promise<void>((resolve, reject) => first.once('elected', resolve).once('error', reject));
      const second = clients[1].election(name, ttl).campaign('b');
      const elected = new Promise<void>((resolve, reject) => second.once('elected', resolve).once('error', reject));
      await new Promise((resolve) => setTimeout(resolve, 20)); // let the second campaign reach its wait
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

/**
 * Crash failover: two candidate processes; the leader gets SIGKILL; time until
 * the other is selected (the server must first expire the dead leader's hold).
 */
async function crashVip(backend: 'etcd' | 'consul', address: string, prefix: string, ttl: number, trials: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < trials; i++) {
    const election = new Election();
    try {
      const path = `${prefix}crash-${i}`;
      const nodes = ['a', 'b'].map((id) => election.spawn({ backend, address, path, id, ttl }));
      await election.until(() => election.leaders().length === 1 && nodes.every((node) => node.events('started').length > 0), 'a leader');
      await new Promise((resolve) => setTimeout(resolve, 500));
      const leader = election.leaders()[0]!;
      await leader.kill();
      const killedAt = leader.deaths[0]!;
      await election.until(() => election.leaders().length === 1, 'the takeover', (3 * ttl + 10) * 1000);
      const select = election.log.find((line) => line.event === 'select' && line.at > killedAt)!;
      samples.push(select.at - killedAt);
    } finally {
      await election.close();
    }
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
 * `locked`'s graceful failover: the leader calls stop(). It never deletes its
 * key, so the other node takes over when the key's TTL runs out.
 */
async function gracefulLocked(host: string, trials: number, ttl: number): Promise<number[]> {
  const locker = locked(host);
  const samples: number[] = [];
  for (let i = 0; i < trials; i++) {
    const path = `/bench/locked-graceful-${Date.now()}-${i}`;
    const [a, b] = (['a', 'b'] as const).map((id) => locker({ id, path, value: `value of ${id}`, ttl }));
    const aSelected = new Promise<void>((resolve) => a!.on('select', resolve));
    a!.start();
    await aSelected;
    const bSelected = new Promise<void>((resolve) => b!.on('select', resolve));
    b!.start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = performance.now();
    a!.stop();
    await bSelected;
    samples.push(performance.now() - started);
    b!.stop();
  }
  return samples;
}

/** start() to select on a key nobody else wants. */
async function firstLeaderVip(store: LockStore, prefix: string, ttl: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const candidate = new Candidate(store, { path: `${prefix}first-${i}`, ttl });
    const started = performance.now();
    await candidate.start();
    await candidate.whenSelected();
    samples.push(performance.now() - started);
    await candidate.stop();
  }
  return samples;
}

async function firstLeaderEtcd3(hosts: string[], prefix: string, ttl: number): Promise<number[]> {
  const client = new Etcd3({ hosts });
  const samples: number[] = [];
  try {
    for (let i = 0; i < TRIALS; i++) {
      const started = performance.now();
      const campaign = client.election(`${prefix}etcd3-first-${i}`, ttl).campaign('x');
      await new Promise<void>((resolve, reject) => campaign.once('elected', resolve).once('error', reject));
      samples.push(performance.now() - started);
      await campaign.resign();
    }
  } finally {
    client.close();
  }
  return samples;
}

/**
 * Every gRPC message etcd has received so far (its own Prometheus counter):
 * unary requests and each message on a stream alike (a keepalive stream's
 * messages would not show in grpc_server_handled_total until it ends).
 */
async function etcdRequests(etcd: EtcdCluster): Promise<number> {
  const text = await (await fetch(`${etcd.endpoints[0]}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith('grpc_server_msg_received_total{')) total += Number(line.split(' ').pop());
  return total;
}

/** Requests per idle election per TTL: `count` leaders on one store, idle for two TTLs. */
async function loadVip(etcd: EtcdCluster, prefix: string, count: number): Promise<number> {
  const store = new EtcdStore(etcd.endpoints);
  const candidates = Array.from({ length: count }, (_, i) => new Candidate(store, { path: `${prefix}load-${count}-${i}`, ttl: ETCD_TTL }));
  await Promise.all(candidates.map((candidate) => candidate.start()));
  await Promise.all(candidates.map((candidate) => candidate.whenSelected()));
  const before = await etcdRequests(etcd);
  await new Promise((resolve) => setTimeout(resolve, 2 * ETCD_TTL * 1000));
  const after = await etcdRequests(etcd);
  await Promise.all(candidates.map((candidate) => candidate.stop()));
  await store.close();
  return (after - before) / count / 2;
}

async function loadEtcd3(etcd: EtcdCluster, prefix: string, count: number): Promise<number> {
  const client = new Etcd3({ hosts: etcd.endpoints });
  const campaigns = Array.from({ length: count }, (_, i) => client.election(`${prefix}etcd3-load-${count}-${i}`, ETCD_TTL).campaign('x'));
  await Promise.all(campaigns.map((campaign) => new Promise<void>((resolve) => campaign.once('elected', resolve))));
  const before = await etcdRequests(etcd);
  await new Promise((resolve) => setTimeout(resolve, 2 * ETCD_TTL * 1000));
  const after = await etcdRequests(etcd);
  await Promise.all(campaigns.map((campaign) => campaign.resign()));
  client.close();
  return (after - before) / count / 2;
}

interface Scale {
  count: number;
  settleMs: number;
  rssMb: number;
  idleCpuPercent: number;
  /** Set when the implementation could not run this many elections. */
  failed?: string;
}

const worker = fileURLToPath(new URL('./worker.js', import.meta.url));

/** `count` elections in a process of their own (vip or etcd3 Election): time until all lead, memory, idle CPU. */
function scaleIn(kind: 'vip' | 'etcd3', endpoints: string[], prefix: string, count: number): Scale {
  const result = spawnSync(process.execPath, [worker, 'scale', kind, endpoints.join(','), String(count), String(IDLE_SECONDS), prefix], {
    encoding: 'utf8',
    timeout: (IDLE_SECONDS + 300) * 1000,
  });
  if (result.status !== 0) {
    const reason = /Error[^\n]*/.exec(result.stderr)?.[0] ?? `exit code ${result.status}`;
    log(`scale: ${kind} with ${count} elections failed: ${reason}`);
    return { count, settleMs: Number.NaN, rssMb: Number.NaN, idleCpuPercent: Number.NaN, failed: reason.slice(0, 120) };
  }
  return JSON.parse(result.stdout.trim().split('\n').pop()!) as Scale;
}

/** etcd3's Election in two processes; the leader gets SIGKILL; time until the other is elected. */
async function crashEtcd3(endpoints: string[], prefix: string, ttl: number, trials: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < trials; i++) {
    const name = `${prefix}etcd3-crash-${i}`;
    const events: { at: number; id: string; event: string }[] = [];
    const children = ['a', 'b'].map((id) => {
      const child = spawn(process.execPath, [worker, 'etcd3-candidate', endpoints.join(','), name, id, String(ttl)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let buffer = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buffer.slice(0, newline)) as { at: number; id: string; event: string });
          buffer = buffer.slice(newline + 1);
        }
      });
      return { id, child };
    });
    try {
      const until = async (condition: () => boolean, ms: number): Promise<void> => {
        const start = Date.now();
        while (!condition()) {
          if (Date.now() - start > ms) throw new Error('etcd3 crash trial timed out');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      await until(() => events.filter((e) => e.event === 'started').length === 2 && events.some((e) => e.event === 'select'), 30_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const leader = events.find((e) => e.event === 'select')!.id;
      const killedAt = Date.now();
      children.find((c) => c.id === leader)!.child.kill('SIGKILL');
      await until(() => events.some((e) => e.event === 'select' && e.id !== leader), (3 * ttl + 10) * 1000);
      samples.push(events.find((e) => e.event === 'select' && e.id !== leader)!.at - killedAt);
    } finally {
      for (const { child } of children) child.kill('SIGKILL');
    }
  }
  return samples;
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

function row(name: string, s: Stats, base?: Stats): string {
  const ratio = base ? `${(s.p50 / base.p50).toFixed(1)}×` : '1×';
  return `| ${name} | ${s.n} | ${ms(s.p50)} | ${ms(s.p99)} | ${ms(s.max)} | ${ratio} |`;
}

async function main(): Promise<void> {
  const began = new Date();
  log(`mode: ${full ? 'full' : 'quick'}; ${TRIALS} trials per figure`);
  const etcd = await startEtcd({ enableV2: true }); // v2 for the seed module `locked`
  const consul = await startConsul();
  const etcdPrefix = uniquePrefix('bench');
  const consulPrefix = uniqueConsulPrefix('bench');
  const etcdStores: [EtcdStore, EtcdStore] = [new EtcdStore(etcd.endpoints), new EtcdStore(etcd.endpoints)];
  const consulStores: [ConsulStore, ConsulStore] = [new ConsulStore(consul.connectionString), new ConsulStore(consul.connectionString)];
  try {
    log('graceful failover: vip on etcd');
    const gEtcdSamples = await gracefulVip(etcdStores, etcdPrefix, ETCD_TTL);
    const gEtcd = stats(gEtcdSamples);
    log('graceful failover: etcd3 Election');
    const gEtcd3Samples = await gracefulEtcd3(etcd.endpoints, etcdPrefix, ETCD_TTL);
    const gEtcd3 = stats(gEtcd3Samples);
    log('graceful failover: the seed module locked (etcd v2)');
    const gLockedSamples = await gracefulLocked(`127.0.0.1:${etcd.members[0]!.clientPort}`, full ? 10 : 3, ETCD_TTL);
    const gLocked = stats(gLockedSamples);
    log('graceful failover: vip on Consul');
    const gConsulSamples = await gracefulVip(consulStores, consulPrefix, CONSUL_TTL);
    const gConsul = stats(gConsulSamples);
    log('crash failover: vip on etcd and Consul (separate processes, SIGKILL)');
    const cEtcdSamples = await crashVip('etcd', etcd.connectionString, etcdPrefix, ETCD_TTL, CRASH_TRIALS.etcd);
    const cEtcd = stats(cEtcdSamples);
    const cEtcd3Samples = await crashEtcd3(etcd.endpoints, etcdPrefix, ETCD_TTL, CRASH_TRIALS.etcd);
    const cEtcd3 = stats(cEtcd3Samples);
    const cConsulSamples = await crashVip('consul', consul.connectionString, consulPrefix, CONSUL_TTL, CRASH_TRIALS.consul);
    const cConsul = stats(cConsulSamples);
    log('time to first leader');
    const fEtcd = stats(await firstLeaderVip(etcdStores[0], etcdPrefix, ETCD_TTL));
    const fEtcd3 = stats(await firstLeaderEtcd3(etcd.endpoints, etcdPrefix, ETCD_TTL));
    const fConsul = stats(await firstLeaderVip(consulStores[0], consulPrefix, CONSUL_TTL));
    log('store load (etcd requests per idle election per TTL)');
    const load = {
      vip1: await loadVip(etcd, etcdPrefix, 1),
      vip1000: await loadVip(etcd, etcdPrefix, 1000),
      etcd31: await loadEtcd3(etcd, etcdPrefix, 1),
      etcd31000: await loadEtcd3(etcd, etcdPrefix, 1000),
    };
    const scale: { vip: Scale; etcd3: Scale }[] = [];
    for (const count of SCALE) {
      log(`scale: ${count} elections in one process (vip, then etcd3 Election, each in a process of its own)`);
      scale.push({ vip: scaleIn('vip', etcd.endpoints, etcdPrefix, count), etcd3: scaleIn('etcd3', etcd.endpoints, etcdPrefix, count) });
    }

    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    const report = `# Benchmarks

Produced by \`npm run bench${full ? ' -- --full' : ''}\` on ${began.toISOString().slice(0, 10)}, in one run, against
real servers the benchmark started itself (etcd ${etcd.members.length} member, Consul dev agent) on
${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node.js ${process.version}.
These machines are shared and noisy: read the ratios, measured side by side in the same run,
more than the absolute numbers. Times are in milliseconds.

![Failover latency of every trial, log scale](bench/failover.svg)

## 1. Graceful failover: the leader stops; time until another candidate is selected

| implementation | trials | p50 | p99 | max | p50 vs vip on etcd |
| --- | ---: | ---: | ---: | ---: | ---: |
${row('vip on etcd (EtcdStore)', gEtcd)}
${row('etcd3 Election (resign)', gEtcd3, gEtcd)}
${row('vip on Consul (ConsulStore)', gConsul, gEtcd)}
${row('locked 2.4.1, the seed module (etcd v2 API)', gLocked, gEtcd)}

A graceful stop releases the key, so the next leader is chosen in one watch round trip
(etcd) or one blocking-query return (Consul), whatever the TTL. \`locked\`'s stop() only stops
refreshing, so its successor waits for the key's TTL. (Its refresh writes with prevExist=false and
always fails, so while it runs its leadership also flips every TTL; seen here on etcd 3.5 --enable-v2.)

## 2. Crash failover: the leader process gets SIGKILL; time until another process is selected

| implementation | ttl | trials | p50 | p99 | max | p50 / ttl |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| vip on etcd | ${ETCD_TTL} s | ${cEtcd.n} | ${ms(cEtcd.p50)} | ${ms(cEtcd.p99)} | ${ms(cEtcd.max)} | ${(cEtcd.p50 / 1000 / ETCD_TTL).toFixed(2)} |
| etcd3 Election | ${ETCD_TTL} s | ${cEtcd3.n} | ${ms(cEtcd3.p50)} | ${ms(cEtcd3.p99)} | ${ms(cEtcd3.max)} | ${(cEtcd3.p50 / 1000 / ETCD_TTL).toFixed(2)} |
| vip on Consul | ${CONSUL_TTL} s | ${cConsul.n} | ${ms(cConsul.p50)} | ${ms(cConsul.p99)} | ${ms(cConsul.max)} | ${(cConsul.p50 / 1000 / CONSUL_TTL).toFixed(2)} |

The floor is the server's: etcd deletes a dead holder's key when its lease expires, between
ttl and ttl + 0.5 s after the last keepalive (its lessor checks every 500 ms), and the last
keepalive was up to ttl/3 before the kill, so takeover lands between 2/3 ttl and ttl + 0.5 s.
Consul invalidates a session between ttl and 2 × ttl after its last renew (SessionTTLMultiplier = 2).

## 3. Time to first leader on an uncontended key (start() to select)

| implementation | trials | p50 | p99 | max | p50 vs vip on etcd |
| --- | ---: | ---: | ---: | ---: | ---: |
${row('vip on etcd', fEtcd)}
${row('etcd3 Election (campaign)', fEtcd3, fEtcd)}
${row('vip on Consul', fConsul, fEtcd)}

## 4. Store load: etcd requests per idle election per TTL (${ETCD_TTL} s), counted by etcd itself

| implementation | 1 election | 1,000 elections in one process |
| --- | ---: | ---: |
| vip (EtcdStore: one shared lease; refreshes aligned and coalesced into one keepalive) | ${load.vip1.toFixed(2)} | ${load.vip1000.toFixed(3)} |
| etcd3 Election (one lease per election) | ${load.etcd31.toFixed(2)} | ${load.etcd31000.toFixed(3)} |

## 5. Scale: elections campaigning in one process on one etcd client (each implementation in a process of its own)

| elections | implementation | time until all lead | resident memory | CPU while idle (${IDLE_SECONDS} s) |
| ---: | --- | ---: | ---: | ---: |
${scale
  .flatMap(({ vip, etcd3 }) => [
    `| ${vip.count.toLocaleString('en')} | vip (EtcdStore) | ${ms(vip.settleMs)} ms | ${vip.rssMb.toFixed(0)} MiB | ${vip.idleCpuPercent.toFixed(1)} % |`,
    etcd3.failed
      ? `| ${etcd3.count.toLocaleString('en')} | etcd3 Election | failed: ${etcd3.failed.replace(/\|/g, '/')} | | |`
      : `| ${etcd3.count.toLocaleString('en')} | etcd3 Election | ${ms(etcd3.settleMs)} ms (${(etcd3.settleMs / vip.settleMs).toFixed(1)}×) | ${etcd3.rssMb.toFixed(0)} MiB (${(etcd3.rssMb / vip.rssMb).toFixed(1)}×) | ${etcd3.idleCpuPercent.toFixed(1)} % |`,
  ])
  .join('\n')}

## Not measured yet

Crash failover of the seed module \`locked\`, \`consul lock\` and Consul's store load are still to come.

What this means for choosing a TTL: a graceful handover costs milliseconds whatever the TTL; the TTL
only sets how long a *crashed* leader blocks the job (about ttl on etcd, up to 2 × ttl on Consul) and
how often each process sends one keepalive for all its elections (every ttl/3).
`;
    writeFileSync(
      join(repositoryRoot, 'bench', 'failover.svg'),
      failoverChart([
        ['graceful: vip on etcd', gEtcdSamples],
        ['graceful: vip on Consul', gConsulSamples],
        ['graceful: etcd3 Election', gEtcd3Samples],
        ['graceful: locked (seed)', gLockedSamples],
        [`crash: vip on etcd (ttl ${ETCD_TTL} s)`, cEtcdSamples],
        [`crash: etcd3 Election (ttl ${ETCD_TTL} s)`, cEtcd3Samples],
        [`crash: vip on Consul (ttl ${CONSUL_TTL} s)`, cConsulSamples],
      ]),
    );
    writeFileSync(join(repositoryRoot, 'BENCHMARKS.md'), report);
    console.log(report);
  } finally {
    await Promise.all([...etcdStores, ...consulStores].map((store) => store.close()));
    await Promise.all([etcd.close(), consul.close()]);
  }
}

await main();
