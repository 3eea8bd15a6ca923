import { EventEmitter } from 'node:events';
import { AggregatorRegistry, Gauge, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { Candidate } from '../candidate.js';
import { VipOptionError } from '../errors.js';
import { MemoryBackend, MemoryStore } from '../memory-store.js';
import { FakeClock, FaultyStore } from '../testing/index.js';
import { VipMetrics, type Owner } from './index.js';

const TTL = 3; // deadline 2.4 s after a send, refresh every 1 s

const running: { candidate: Candidate; clock: FakeClock; store: FaultyStore }[] = [];
const open: VipMetrics[] = [];
afterEach(async () => {
  for (const metrics of open.splice(0)) metrics.close();
  for (const { candidate, clock, store } of running.splice(0)) {
    store.heal();
    const stopped = candidate.stop();
    let done = false;
    void stopped.then(() => (done = true));
    for (let i = 0; i < 500 && !done; i++) await clock.advance(10);
    await stopped;
  }
});

function setup(count: number, clock = new FakeClock()) {
  const backend = new MemoryBackend({ clock });
  return Array.from({ length: count }, (_, i) => {
    const store = new FaultyStore(new MemoryStore({ backend }), { clock });
    const candidate = new Candidate(store, { path: '/job', id: `n${i}`, ttl: TTL, clock, random: () => 0.5 });
    candidate.on('error', () => {});
    running.push({ candidate, clock, store });
    return { candidate, store, clock };
  });
}

function metricsIn(registry = new Registry()): VipMetrics {
  const metrics = new VipMetrics({ registry });
  open.push(metrics);
  return metrics;
}

/** The series of one metric: labels → value, for metrics read from a scrape. */
async function series(metrics: VipMetrics, name: string): Promise<Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>> {
  const all = await metrics.registry.getMetricsAsJSON();
  const metric = all.find((m) => m.name === name);
  if (!metric) throw new Error(`no metric ${name} in ${all.map((m) => m.name).join(', ')}`);
  return metric.values as never;
}

async function valueOf(metrics: VipMetrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const found = (await series(metrics, name)).filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v) && !s.metricName?.endsWith('_bucket'));
  if (found.length > 1) throw new Error(`${name}: ${found.length} series match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

describe('VipMetrics', () => {
  it('reports which of two candidates leads, with the token, time left and term start seen by both', async () => {
    const [a, b] = setup(2);
    const metrics = metricsIn();
    metrics.track(a!.candidate);
    metrics.track(b!.candidate);
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    await b!.candidate.start();
    await b!.clock.until(() => b!.candidate.holder()?.id === 'n0');

    expect(await valueOf(metrics, 'vip_leader', { path: '/job', id: 'n0' })).toBe(1);
    expect(await valueOf(metrics, 'vip_leader', { path: '/job', id: 'n1' })).toBe(0);
    const token = Number(a!.candidate.token());
    expect(await valueOf(metrics, 'vip_fencing_token', { id: 'n0' })).toBe(token);
    expect(await valueOf(metrics, 'vip_fencing_token', { id: 'n1' })).toBe(token);
    const timeLeft = await valueOf(metrics, 'vip_time_left_seconds', { id: 'n0' });
    expect(timeLeft).toBeGreaterThan(2);
    expect(timeLeft).toBeLessThanOrEqual(2.4);
    expect(await valueOf(metrics, 'vip_time_left_seconds', { id: 'n1' })).toBeUndefined();
    expect(await valueOf(metrics, 'vip_term_start_time_seconds', { id: 'n0' })).toBe(a!.candidate.termStart()!.getTime() / 1000);
    expect(await valueOf(metrics, 'vip_healthy', { id: 'n0' })).toBe(1);
    expect(await valueOf(metrics, 'vip_healthy', { id: 'n1' })).toBe(1);
    expect(await valueOf(metrics, 'vip_store_unreachable_seconds', { id: 'n1' })).toBe(0);
    expect(await valueOf(metrics, 'vip_transitions_total', { id: 'n0', kind: 'select' })).toBe(1);
    expect(await valueOf(metrics, 'vip_transitions_total', { id: 'n1', kind: 'select' })).toBeUndefined();

    // The Prometheus text a scrape gets.
    const text = await metrics.registry.metrics();
    expect(text).toContain('# TYPE vip_leader gauge');
    expect(text).toContain('vip_leader{path="/job",id="n0"} 1');
    expect(text).toContain('vip_leader{path="/job",id="n1"} 0');
  });

  it('counts a deselect with its reason and follows the handover', async () => {
    const [a, b] = setup(2);
    const metrics = metricsIn();
    metrics.track(a!.candidate);
    metrics.track(b!.candidate);
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    await b!.candidate.start();
    await b!.clock.until(() => b!.candidate.holder()?.id === 'n0');
    await a!.candidate.resign({ holdOff: 10 });
    await b!.clock.until(() => b!.candidate.isSelected());

    expect(await valueOf(metrics, 'vip_transitions_total', { id: 'n0', kind: 'deselect', reason: 'resigned' })).toBe(1);
    expect(await valueOf(metrics, 'vip_transitions_total', { id: 'n1', kind: 'select' })).toBe(1);
    expect(await valueOf(metrics, 'vip_leader', { id: 'n0' })).toBe(0);
    expect(await valueOf(metrics, 'vip_leader', { id: 'n1' })).toBe(1);
    expect(await valueOf(metrics, 'vip_fencing_token', { id: 'n0' })).toBe(Number(b!.candidate.token()));
  });

  it('times store calls by purpose and counts failures per election, for tracked candidates only', async () => {
    const [a, other] = setup(2);
    const metrics = metricsIn();
    metrics.track(a!.candidate);
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    a!.store.latency(30, ['refresh']);
    let refreshed = 0;
    a!.candidate.on('refresh', () => refreshed++);
    await a!.clock.until(() => refreshed >= 1);
    const acquires = (await series(metrics, 'vip_store_call_duration_seconds')).find(
      (s) => s.metricName === 'vip_store_call_duration_seconds_count' && s.labels.purpose === 'acquire' && s.labels.outcome === 'ok',
    );
    expect(acquires?.value).toBe(1);
    const slowRefresh = (await series(metrics, 'vip_store_call_duration_seconds')).find(
      (s) => s.metricName === 'vip_store_call_duration_seconds_sum' && s.labels.purpose === 'refresh' && s.labels.outcome === 'ok',
    );
    expect(slowRefresh?.value).toBeGreaterThanOrEqual(0.03);

    a!.store.failNext(1, ['refresh'], 'injected refresh fault');
    const before = (await valueOf(metrics, 'vip_store_errors_total', { path: '/job', purpose: 'refresh' })) ?? 0;
    await a!.clock.advance(1500);
    expect(await valueOf(metrics, 'vip_store_errors_total', { path: '/job', purpose: 'refresh' })).toBe(before + 1);

    // An untracked candidate's failures are not ours.
    other!.store.failNext(3, ['compareAndSwap', 'watch']);
    await other!.candidate.start();
    await other!.clock.advance(2000);
    expect(await valueOf(metrics, 'vip_store_errors_total', { purpose: 'acquire' })).toBeUndefined();
    expect(await valueOf(metrics, 'vip_store_errors_total', { purpose: 'watch' })).toBe(0); // the tracked one's, at 0 from track()
  });

  it('reports an unreachable store as unhealthy after unreachableAfter, and how long', async () => {
    const [a] = setup(1);
    const metrics = new VipMetrics({ registry: new Registry(), unreachableAfter: 1 });
    open.push(metrics);
    metrics.track(a!.candidate);
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    await a!.candidate.resign({ holdOff: 0 });
    a!.store.failAll();
    await a!.clock.advance(2500);
    expect(await valueOf(metrics, 'vip_healthy', { id: 'n0' })).toBe(0);
    expect(await valueOf(metrics, 'vip_store_unreachable_seconds', { id: 'n0' })).toBeGreaterThan(1);
  });

  it('follows an owner (a Service) whose candidate is created on start and replaced later', async () => {
    const [a, b] = setup(2);
    const owner = new (class extends EventEmitter implements Owner {
      candidate: Candidate | undefined = undefined;
      readonly options = { path: '/job', id: 'svc' };
      adopt(candidate: Candidate): void {
        this.candidate = candidate;
        for (const kind of ['select', 'deselect', 'suspend', 'resume'] as const) candidate.on(kind, (...args: unknown[]) => this.emit(kind, ...args));
      }
    })();
    const metrics = metricsIn();
    metrics.track(owner);
    expect(await valueOf(metrics, 'vip_leader', { path: '/job', id: 'svc' })).toBe(0);
    expect(await valueOf(metrics, 'vip_healthy', { path: '/job', id: 'svc' })).toBe(0);

    owner.adopt(a!.candidate);
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    expect(await valueOf(metrics, 'vip_leader', { id: 'n0' })).toBe(1);
    expect(await valueOf(metrics, 'vip_transitions_total', { id: 'n0', kind: 'select' })).toBe(1);

    owner.adopt(b!.candidate);
    b!.store.failNext(1, ['watch']);
    await b!.candidate.start();
    await b!.clock.advance(500);
    expect(await valueOf(metrics, 'vip_store_errors_total', { purpose: 'watch' })).toBe(1);
  });

  it('drops an untracked election at the next scrape, and close() removes the metrics', async () => {
    const [a] = setup(1);
    const registry = new Registry();
    const metrics = new VipMetrics({ registry });
    const untrack = metrics.track(a!.candidate);
    expect(metrics.track(a!.candidate)).toBeTypeOf('function'); // twice is once
    expect(metrics.size).toBe(1);
    expect(await valueOf(metrics, 'vip_leader', { id: 'n0' })).toBe(0);
    untrack();
    expect(metrics.size).toBe(0);
    expect(await valueOf(metrics, 'vip_leader', { id: 'n0' })).toBeUndefined();
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    expect(await valueOf(metrics, 'vip_transitions_total', { kind: 'select' })).toBeUndefined();
    metrics.close();
    expect(await registry.getMetricsAsJSON()).toEqual([]);
    expect(() => metrics.track(a!.candidate)).toThrow(/closed/);
    // A second VipMetrics can register the same names in the same registry once the first is closed.
    open.push(new VipMetrics({ registry }));
  });


  it('has the alert-worthy series at 0 before their first event, so that increase() sees it', async () => {
    const [a] = setup(1);
    const metrics = metricsIn();
    metrics.track(a!.candidate);
    // Store-call failures (the histogram's error outcome): from the first scrape.
    for (const purpose of ['acquire', 'refresh', 'release']) {
      const count = (await series(metrics, 'vip_store_call_duration_seconds')).find(
        (s) => s.metricName === 'vip_store_call_duration_seconds_count' && s.labels.purpose === purpose && s.labels.outcome === 'error',
      );
      expect(count?.value, purpose).toBe(0);
    }
    // A term's rare ends: from its select.
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    for (const reason of ['lost', 'expired']) {
      expect(await valueOf(metrics, 'vip_transitions_total', { id: 'n0', kind: 'deselect', reason }), reason).toBe(0);
    }
  });

  it('with perElection: false: an untracked election no longer counts, the nearest deadline is the minimum across cluster workers, and the zeros survive resetMetrics()', async () => {
    const [a, b] = setup(2);
    const metrics = new VipMetrics({ registry: new Registry(), perElection: false });
    open.push(metrics);
    metrics.track(a!.candidate);
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    metrics.untrack(a!.candidate);
    a!.store.failNext(1, ['refresh']);
    await a!.clock.advance(1500);
    expect(await metrics.registry.metrics()).toContain('vip_store_errors_total{purpose="refresh"} 0');
    // Two cluster workers, each leading: the aggregate keeps the nearer deadline, not the sum.
    const other = new VipMetrics({ registry: new Registry(), perElection: false });
    open.push(other);
    metrics.track(a!.candidate);
    other.track(a!.candidate); // as if a second worker led with the same time left
    void b;
    const workers = [await metrics.registry.getMetricsAsJSON(), await other.registry.getMetricsAsJSON()];
    const aggregated = await AggregatorRegistry.aggregate(workers as never).getSingleMetricAsString('vip_time_left_min_seconds');
    expect(Number(/^vip_time_left_min_seconds (\S+)$/m.exec(aggregated)?.[1])).toBeCloseTo(a!.candidate.timeLeft()!, 6);
    metrics.registry.resetMetrics();
    const text = await metrics.registry.metrics();
    expect(text).toContain('vip_transitions_total{kind="deselect",reason="lost"} 0');
    expect(text).toContain('vip_store_errors_total{purpose="watch"} 0');
  });

  it('per election, a broken watch (a follower\'s main trouble) is at 0 from the start too', async () => {
    const [a] = setup(1);
    const metrics = metricsIn();
    metrics.track(a!.candidate);
    expect(await valueOf(metrics, 'vip_store_errors_total', { path: '/job', purpose: 'watch' })).toBe(0);
  });

  it('with perElection: false, reports the process as a whole in a handful of series whatever the number of elections', async () => {
    const elections = setup(3);
    const metrics = new VipMetrics({ registry: new Registry(), perElection: false });
    open.push(metrics);
    for (const { candidate } of elections) metrics.track(candidate);
    const [a, b] = elections;
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    await b!.candidate.start();
    await b!.clock.until(() => b!.candidate.holder()?.id === 'n0');
    const text = await metrics.registry.metrics();
    expect(text).toContain('vip_elections{state="leading"} 1');
    expect(text).toContain('vip_elections{state="following"} 1');
    expect(text).toContain('vip_elections{state="stopped"} 1');
    expect(text).toContain('vip_elections_unhealthy 1'); // the stopped one
    expect(text).toMatch(/vip_time_left_min_seconds 2\.\d+/);
    expect(text).toContain('vip_transitions_total{kind="select",reason=""} 1');
    expect(text).toContain('vip_transitions_total{kind="deselect",reason="lost"} 0');
    expect(text).toContain('vip_store_errors_total{purpose="refresh"} 0');
    expect(text).not.toMatch(/path=|id=/);
    // Each scrape counts afresh.
    const stopping = a!.candidate.stop();
    for (let i = 0; i < 200; i++) await a!.clock.advance(10);
    await stopping;
    await b!.clock.until(() => b!.candidate.isSelected());
    const after = await metrics.registry.metrics();
    expect(after).toContain('vip_elections{state="leading"} 1');
    expect(after).toContain('vip_elections{state="stopped"} 2');
    expect(after).toContain('vip_elections_unhealthy 2');
    expect(after).toContain('vip_transitions_total{kind="select",reason=""} 2');
    expect(after).toContain('vip_transitions_total{kind="deselect",reason="stopped"} 1');
    expect(() => new VipMetrics({ registry: new Registry(), perElection: 'no' as never })).toThrow(/option "perElection" must be true \(series per election\) or false/);
  });

  it('removes an untracked election\'s counter series too, so that elections coming and going do not pile series up', async () => {
    const [a, b] = setup(2);
    const metrics = metricsIn();
    metrics.track(a!.candidate);
    const untrackB = metrics.track(b!.candidate);
    await a!.candidate.start();
    await a!.clock.until(() => a!.candidate.isSelected());
    await b!.candidate.start();
    expect(await valueOf(metrics, 'vip_transitions_total', { id: 'n0', kind: 'select' })).toBe(1);
    untrackB();
    const left = async (id: string) =>
      (await metrics.registry.getMetricsAsJSON()).flatMap((m) => (m.values as Array<{ labels: Record<string, unknown> }>).filter((s) => s.labels.id === id));
    expect(await left('n1')).toEqual([]);
    expect(await valueOf(metrics, 'vip_transitions_total', { id: 'n0', kind: 'select' })).toBe(1); // the other's stay
    metrics.untrack(a!.candidate);
    expect(await left('n0')).toEqual([]);
    expect(await series(metrics, 'vip_store_errors_total')).toEqual([]);
  });
  it('rejects bad options and targets at the call, naming them', () => {
    expect(() => new VipMetrics({ registry: {} as never })).toThrow(VipOptionError);
    expect(() => new VipMetrics({ registry: {} as never })).toThrow(/registry.*prom-client Registry/);
    expect(() => new VipMetrics({ registry: new Registry(), prefix: '9x' })).toThrow(/prefix/);
    expect(() => new VipMetrics({ registry: new Registry(), buckets: [1, 0.5] })).toThrow(/buckets.*increasing/);
    expect(() => new VipMetrics({ registry: new Registry(), buckets: [] })).toThrow(/buckets/);
    expect(() => new VipMetrics({ registry: new Registry(), unreachableAfter: -1 })).toThrow(/unreachableAfter/);
    expect(() => new VipMetrics({ registry: new Registry(), prefx: 'a_' } as never)).toThrow(/prefx/);
    expect(() => new VipMetrics(null as never)).toThrow(/options/);
    const metrics = metricsIn();
    expect(() => metrics.track({} as never)).toThrow(/VipMetrics.track: expected a Candidate or a Service \(got/);
    expect(() => metrics.track(null as never)).toThrow(/expected a Candidate/);
    // The same names twice in one registry: prom-client's own error, at construction.
    const registry = new Registry();
    open.push(new VipMetrics({ registry }));
    expect(() => new VipMetrics({ registry })).toThrow(/registry.*a metric named vip_leader.*another prefix/);
    registry.registerMetric(new Gauge({ name: "third_healthy", help: "taken", registers: [] }));
    expect(() => new VipMetrics({ registry, prefix: "third_" })).toThrow(/named third_healthy/);
    expect(registry.getSingleMetric("third_leader")).toBeUndefined();
    open.push(new VipMetrics({ registry, prefix: 'other_' }));
  });
});
