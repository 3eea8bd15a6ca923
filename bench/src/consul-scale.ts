/**
 * Figure 7, Consul at scale, against Consul agents with their DEFAULT limits
 * (`limits.http_max_conns_per_client` 200; no setting raised): many elections
 * on one ConsulStore, graceful failover between candidate processes at ttl 10
 * and ttl 3, a herd of followers on one key, and followers of a key under
 * lock delay while the KV store is written elsewhere. The only setting
 * changed anywhere is `session_ttl_min: 1s` on the agent of the ttl 3 rows
 * (Consul refuses a session TTL under 10 s otherwise; a user who wants ttl 3
 * has to set it too).
 *
 * Every candidate here is an OS process of its own (the candidate fixture of
 * the integration tests), except the elections of the scale rows, which are
 * one process by design (one ConsulStore holding them all).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  repositoryRoot,
  spawnJsonLines,
  startConsul,
  tcpConnectionsTo,
  uniqueConsulPrefix,
  type ConsulAgent,
  type JsonLinesProcess,
} from '@vip/test-integration/harness';
import { bound, log, ms, sleep, stats, until, type Stats } from './common.js';

export const CONSUL_SCALE_HEADING = '## 7. Consul at scale';

const fixture = join(repositoryRoot, 'test-integration', 'fixtures', 'candidate.mjs');
const worker = fileURLToPath(new URL('./worker.js', import.meta.url));

/** What issue 13 measured before the store shared one blocking query per directory (ConsulStore of 2026-12-02). */
const BEFORE = {
  scale: '1,000 elections: 1 of 1,000 led after 120 s; 23,988 errors in the next 60 s (read ECONNRESET, socket hang up)',
  failoverTtl10: { p50: 29, p90: 44 },
  inProcessTtl3: 8.4,
};

export interface ConsulScaleSizes {
  /** Elections in one process. */
  counts: number[];
  /** Seconds the elections hold after all lead (errors, deselects, idle CPU). */
  holdSeconds: number;
  /** Graceful failover trials per row. */
  trials: number;
  /** Handovers per herd size. */
  handovers: number;
}

interface ScaleRow {
  count: number;
  led: number;
  settleMs: number | null;
  startErrors: number;
  holdLed?: number;
  holdErrors?: number;
  deselects?: number;
  rssMb?: number;
  idleCpuPercent?: number;
  maxConnections: number;
  errorText: string;
  /** What up to 5 elections that did not lead were doing, from their health(). */
  stuck?: { state: string; reason: string; leader: string | null; lastError: string | null }[];
  failed?: string;
}

interface Line {
  at: number;
  id: string;
  event: string;
  leader?: string | null;
  phase?: string;
  [key: string]: unknown;
}

/** COUNT elections on one ConsulStore in a worker process; its connections to the agent counted from /proc every 100 ms. */
async function scaleRow(agent: ConsulAgent, prefix: string, count: number, holdSeconds: number): Promise<ScaleRow> {
  const child = spawnJsonLines<Line>(process.execPath, [worker, 'consul-scale', agent.connectionString, String(count), String(holdSeconds), `${prefix}scale-${count}/`]);
  let maxConnections = 0;
  const sampler = setInterval(() => {
    try {
      if (child.pid !== undefined) maxConnections = Math.max(maxConnections, tcpConnectionsTo(agent.port, child.pid));
    } catch {
      // the process ended between two samples
    }
  }, 100);
  try {
    const settled = await child.waitFor((line) => line.phase === 'settled', 200_000);
    const held = await child.waitFor((line) => line.phase === 'held', (holdSeconds + 120) * 1000);
    await Promise.race([child.exited, bound(60_000)]);
    return {
      count,
      led: settled.led as number,
      settleMs: settled.settleMs as number | null,
      startErrors: settled.errors as number,
      stuck: settled.stuck as ScaleRow['stuck'],
      holdLed: held.led as number,
      holdErrors: held.errors as number,
      deselects: held.deselects as number,
      rssMb: held.rssMb as number,
      idleCpuPercent: held.idleCpuPercent as number,
      maxConnections,
      errorText: held.errorText as string,
    };
  } catch (error) {
    return { count, led: 0, settleMs: null, startErrors: 0, maxConnections, errorText: '', failed: (error as Error).message.split('\n')[0]! };
  } finally {
    clearInterval(sampler);
    await child.kill('SIGKILL');
  }
}

/** An HTTP proxy in front of the Consul agent, in a process of its own, that counts requests by method and path (worker.ts). */
export async function countingProxy(agent: ConsulAgent): Promise<{ url: string; counts: () => Promise<Map<string, number>>; close: () => Promise<void> }> {
  const proxy = spawnJsonLines<{ port?: number; counts?: Record<string, number> }>(process.execPath, [worker, 'consul-proxy', agent.host, String(agent.port)]);
  const { port } = await proxy.waitFor((line) => line.port !== undefined, 10_000);
  return {
    url: `consul://127.0.0.1:${port}`,
    counts: async () => {
      const from = proxy.lines.length;
      proxy.send('counts');
      const { counts } = await proxy.waitFor((line) => line.counts !== undefined, 10_000, from);
      return new Map(Object.entries(counts!));
    },
    close: async () => {
      await proxy.kill('SIGKILL');
    },
  };
}

/** The floor: a candidate without any library (worker consul-raw-candidate), at ttl 10. */
function rawCandidate(agent: ConsulAgent, path: string, id: string): JsonLinesProcess<Line> {
  return spawnJsonLines<Line>(process.execPath, [worker, 'consul-raw-candidate', agent.address, path, id]);
}

/** A candidate process (the integration tests' fixture) on the agent at `url`. */
function candidate(url: string | ConsulAgent, path: string, id: string, ttl: number, env: Record<string, string> = {}): JsonLinesProcess<Line> {
  return spawnJsonLines<Line>(process.execPath, [fixture], {
    ...env,
    VIP_BACKEND: 'consul',
    VIP_ADDRESS: typeof url === 'string' ? url : url.connectionString,
    VIP_PATH: path,
    VIP_ID: id,
    VIP_TTL: String(ttl),
    ...(ttl < 10 ? { VIP_MIN_TTL: '1' } : {}),
  });
}

const sees = (p: JsonLinesProcess<Line>, leader: string): boolean => p.lines.some((line) => line.event === 'change' && line.leader === leader);
const selectedAfter = (p: JsonLinesProcess<Line>, at: number): Line | undefined => p.lines.find((line) => line.event === 'select' && line.at >= at);

/** One graceful handover between two processes: `stop` on the leader's stdin, until the follower logs its select. */
async function handover(leader: JsonLinesProcess<Line>, followers: JsonLinesProcess<Line>[], timeoutMs = 30_000): Promise<{ ms: number; next: JsonLinesProcess<Line> }> {
  const stoppedAt = Date.now();
  leader.send('stop');
  let next: JsonLinesProcess<Line> | undefined;
  await until(() => (next = followers.find((p) => selectedAfter(p, stoppedAt))) !== undefined, 'a follower to be selected', timeoutMs);
  return { ms: selectedAfter(next!, stoppedAt)!.at - stoppedAt, next: next! };
}

interface Failover {
  fresh: number[];
  idle: number[];
  failures: string[];
}

/**
 * Graceful failover at `ttl`, every candidate a process: a fresh follower (the
 * leader is stopped as soon as the just-started follower sees it) and a
 * follower idle for longer than the ttl (pairs started together, then the
 * leaders stopped one at a time, each after ttl + 2 s of following).
 */
async function failover(
  agent: ConsulAgent,
  prefix: string,
  ttl: number,
  trials: number,
  spawnOne: (path: string, id: string) => JsonLinesProcess<Line> = (path, id) => candidate(agent, path, id, ttl),
  kind = 'vip',
): Promise<Failover> {
  const result: Failover = { fresh: [], idle: [], failures: [] };
  for (let i = 0; i < trials; i++) {
    const path = `${prefix}failover-${kind}-${ttl}/fresh-${i}`;
    const a = spawnOne(path, 'a');
    let b: JsonLinesProcess<Line> | undefined;
    try {
      await a.waitFor((line) => line.event === 'select', 30_000);
      b = spawnOne(path, 'b');
      const follower = b;
      await until(() => sees(follower, 'a'), 'the fresh follower to see the leader', 30_000);
      result.fresh.push((await handover(a, [follower])).ms);
    } catch (error) {
      result.failures.push(`fresh: ${(error as Error).message.split('\n')[0]}`);
    } finally {
      await Promise.all([a.kill('SIGKILL'), b?.kill('SIGKILL')]);
    }
  }
  const pairs = Array.from({ length: trials }, (_, i) => {
    const path = `${prefix}failover-${kind}-${ttl}/idle-${i}`;
    return { path, a: spawnOne(path, 'a'), b: undefined as JsonLinesProcess<Line> | undefined };
  });
  try {
    await Promise.all(pairs.map((pair) => pair.a.waitFor((line) => line.event === 'select', 60_000)));
    for (const pair of pairs) pair.b = spawnOne(pair.path, 'b');
    await until(() => pairs.every((pair) => sees(pair.b!, 'a')), 'every idle follower to see its leader', 60_000);
    await sleep((ttl + 2) * 1000);
    for (const pair of pairs) {
      try {
        result.idle.push((await handover(pair.a, [pair.b!])).ms);
      } catch (error) {
        result.failures.push(`idle: ${(error as Error).message.split('\n')[0]}`);
      }
      await sleep(200);
    }
  } catch (error) {
    result.failures.push(`idle: ${(error as Error).message.split('\n')[0]}`);
  } finally {
    await Promise.all(pairs.flatMap((pair) => [pair.a.kill('SIGKILL'), pair.b?.kill('SIGKILL')]));
  }
  return result;
}

/** The agent's raft log index (GET /v1/agent/self): every KV write, transaction and session change is one entry. */
async function raftIndex(agent: ConsulAgent): Promise<number> {
  const answer = await fetch(`${agent.address}/v1/agent/self`).catch((error: Error) => {
    // The benchmark shares this host's connection allowance at the agent with the candidates.
    throw new Error(`the benchmark's own GET /v1/agent/self failed (${error.message}: this host's connections to the agent are past its limit)`);
  });
  const self = (await answer.json()) as { Stats: { raft: { last_log_index: string } } };
  return Number(self.Stats.raft.last_log_index);
}

interface Herd {
  followers: number;
  /** Which agent: at its default limits, or with the per-client connection limit raised (one host per candidate, as deployed). */
  agent: 'default' | 'raised';
  latency: number[];
  entries: number[];
  /** Errors the candidates reported, and deselects other than the stopped leaders'. */
  errors: number;
  deselects: number;
  failures: string[];
}

/**
 * `followers` + 1 candidate processes on one key (ttl 10); the leader is
 * stopped `handovers` times (each time the new leader); per handover, the
 * failover time and the raft log entries written from the stop until a
 * second after the select (the release, the stopped process's session
 * destroy, the winning acquisition and every losing one).
 */
async function herd(agent: ConsulAgent, kind: Herd['agent'], prefix: string, followers: number, handovers: number): Promise<Herd> {
  const result: Herd = { followers, agent: kind, latency: [], entries: [], errors: 0, deselects: 0, failures: [] };
  const path = `${prefix}herd-${kind}-${followers}/job`;
  const all: JsonLinesProcess<Line>[] = [candidate(agent, path, 'p0', 10)];
  const everyone = all.slice();
  try {
    await all[0]!.waitFor((line) => line.event === 'select', 30_000);
    for (let i = 1; i <= followers; i += 10) {
      const batch = Array.from({ length: Math.min(10, followers + 1 - i) }, (_, j) => candidate(agent, path, `p${i + j}`, 10));
      all.push(...batch);
      everyone.push(...batch);
      await until(() => batch.every((p) => sees(p, 'p0')), 'the followers of a batch to see the leader', 60_000);
    }
    let leader = all[0]!;
    for (let h = 0; h < Math.min(handovers, followers); h++) {
      await sleep(1000);
      const before = await raftIndex(agent);
      const { ms: latency, next } = await handover(
        leader,
        all.filter((p) => p !== leader),
      );
      await sleep(1000);
      result.latency.push(latency);
      result.entries.push((await raftIndex(agent)) - before);
      all.splice(all.indexOf(leader), 1);
      await leader.kill('SIGKILL');
      leader = next;
    }
  } catch (error) {
    result.failures.push((error as Error).message.split('\n')[0]!);
  } finally {
    for (const p of everyone) {
      result.errors += p.lines.filter((line) => line.event === 'error').length;
      result.deselects += p.lines.filter((line) => line.event === 'deselect' && line.reason !== 'stopped').length;
    }
    await Promise.all(all.map((p) => p.kill('SIGKILL')));
  }
  return result;
}

interface Storm {
  followers: number;
  seconds: number;
  writes: number;
  perFollowerPerSecond: number;
  byRequest: string;
  leadersAfter: number;
  failures: string[];
}

/**
 * Followers of a free key under lock delay (a session that held it was
 * destroyed, and the key deleted) while another directory of the KV store is
 * written every 10 ms: their requests per second, counted by a proxy (a
 * process of its own) between them and the agent; then, once the lock delay
 * is over, how many lead (one).
 */
async function storm(agent: ConsulAgent, prefix: string, followers: number, seconds: number): Promise<Storm> {
  const result: Storm = { followers, seconds, writes: 0, perFollowerPerSecond: Number.NaN, byRequest: '', leadersAfter: 0, failures: [] };
  const api = `${agent.address}/v1`;
  const key = `${prefix}storm/job`;
  const lockDelaySeconds = seconds + 15;
  const session = ((await (await fetch(`${api}/session/create`, { method: 'PUT', body: JSON.stringify({ TTL: '30s', LockDelay: `${lockDelaySeconds}s` }) })).json()) as { ID: string }).ID;
  await fetch(`${api}/kv/${key}?acquire=${session}`, { method: 'PUT', body: 'old holder' });
  await fetch(`${api}/session/destroy/${session}`, { method: 'PUT' });
  await fetch(`${api}/kv/${key}`, { method: 'DELETE' });
  const delayEnds = Date.now() + lockDelaySeconds * 1000;
  let proxy: Awaited<ReturnType<typeof countingProxy>> | undefined;
  const herd: JsonLinesProcess<Line>[] = [];
  try {
    proxy = await countingProxy(agent);
    for (let i = 0; i < followers; i++) herd.push(candidate(proxy.url, key, `f${i}`, 10));
    await until(() => herd.every((p) => p.lines.some((line) => line.event === 'started')), 'the followers to start', 60_000);
    await sleep(2000);
    const before = await proxy.counts();
    const windowStart = performance.now();
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await fetch(`${api}/kv/${prefix}elsewhere/noise`, { method: 'PUT', body: String(result.writes) });
        result.writes++;
        await sleep(10);
      }
    })();
    await sleep(seconds * 1000);
    const after = await proxy.counts();
    const windowSeconds = (performance.now() - windowStart) / 1000;
    writing = false;
    await writer;
    if (Date.now() >= delayEnds) result.failures.push('the lock delay ended before the window did: the window is not of a key under lock delay');
    const during = [...after]
      .map(([kind, n]) => [kind, n - (before.get(kind) ?? 0)] as const)
      .filter(([, n]) => n > 0)
      .sort((x, y) => y[1] - x[1]);
    const total = during.reduce((sum, [, n]) => sum + n, 0);
    result.perFollowerPerSecond = total / followers / windowSeconds;
    result.byRequest = during.map(([kind, n]) => `${kind} ${(n / followers / windowSeconds).toFixed(2)}`).join(', ') || 'none';
    await until(() => Date.now() > delayEnds, 'the lock delay to end', lockDelaySeconds * 1000 + 1000);
    const leading = (p: JsonLinesProcess<Line>): boolean => p.lines.filter((line) => line.event === 'select' || line.event === 'deselect').at(-1)?.event === 'select';
    await until(() => herd.some(leading), 'a follower to lead once the lock delay is over', 30_000).catch((error: Error) => result.failures.push(error.message));
    await sleep(1000);
    result.leadersAfter = herd.filter(leading).length;
  } catch (error) {
    result.failures.push((error as Error).message.split('\n')[0]!);
  } finally {
    await Promise.all([...herd.map((p) => p.kill('SIGKILL')), proxy?.close()]);
  }
  return result;
}

const n = (value: number): string => value.toLocaleString('en');
const pct = (value: number | undefined): string => (value === undefined ? '–' : `${value.toFixed(1)} %`);

/** Runs figure 7 on agents of its own and returns it as a section of BENCHMARKS.md. */
export async function consulScaleSection(sizes: ConsulScaleSizes, provenance = ''): Promise<string> {
  const defaults = await startConsul(); // every limit at its default, session_ttl_min 10 s
  const shortTtl = await startConsul({ configJson: { session_ttl_min: '1s' } });
  const prefix = uniqueConsulPrefix('bench-scale');
  try {
    const version = ((await (await fetch(`${defaults.address}/v1/agent/self`)).json()) as { Config: { Version: string } }).Config.Version;
    const scale: ScaleRow[] = [];
    for (const count of sizes.counts) {
      log(`consul at scale: ${n(count)} elections on one ConsulStore, agent at its default limits, ${sizes.holdSeconds} s hold`);
      scale.push(await scaleRow(defaults, prefix, count, sizes.holdSeconds));
    }
    log(`consul at scale: graceful failover between processes, ttl 10 (default agent), ${sizes.trials} fresh and ${sizes.trials} idle followers`);
    const ttl10 = await failover(defaults, prefix, 10, sizes.trials);
    log(`consul at scale: graceful failover between processes, ttl 3 (agent with session_ttl_min 1s)`);
    const ttl3 = await failover(shortTtl, prefix, 3, sizes.trials);
    log('consul at scale: graceful failover at ttl 10 with a store that keeps no session ready (LockStore.prepare left out)');
    const unprepared = await failover(defaults, prefix, 10, sizes.trials, (path, id) => candidate(defaults, path, id, 10, { VIP_NO_PREPARE: '1' }), 'unprepared');
    log('consul at scale: the floor, the same handover between processes without any library (node:http)');
    const floor = await failover(defaults, prefix, 10, sizes.trials, (path, id) => rawCandidate(defaults, path, id), 'raw');
    const herds: Herd[] = [];
    for (const followers of [1, 10, 50, 100]) {
      log(`consul at scale: herd, ${followers} follower process${followers === 1 ? '' : 'es'} on one key, ${Math.min(sizes.handovers, followers)} handovers`);
      herds.push(await herd(defaults, 'default', prefix, followers, sizes.handovers));
    }
    // On one host, 100 candidate processes share the agent's per-client connection limit (200 by
    // default): one watch and one or two requests each at a handover exceed it. Deployed, each is
    // on a host of its own; an agent with the limit raised stands in for that.
    const raised = await startConsul({ configJson: { limits: { http_max_conns_per_client: 4096 } } });
    try {
      log(`consul at scale: herd, 100 follower processes, agent with limits.http_max_conns_per_client 4096 (as if on 100 hosts)`);
      herds.push(await herd(raised, 'raised', prefix, 100, sizes.handovers));
    } finally {
      await raised.close();
    }
    log('consul at scale: 10 followers of a key under lock delay, a write every 10 ms elsewhere');
    const stormed = await storm(defaults, prefix, 10, 10);

    // Trials that did not finish are counted (finished / run) and listed below the table, never silently left out.
    const failoverRow = (name: string, s: Stats, base?: Stats): string =>
      `| ${name} | ${s.n} / ${sizes.trials} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.max)} | ${base ? `${(s.p50 / base.p50).toFixed(1)}×` : '–'} |`;
    const [f10, i10, f3, i3, ff, fi, u10, ui10] = [ttl10.fresh, ttl10.idle, ttl3.fresh, ttl3.idle, floor.fresh, floor.idle, unprepared.fresh, unprepared.idle].map(stats) as Stats[] as [
      Stats,
      Stats,
      Stats,
      Stats,
      Stats,
      Stats,
      Stats,
      Stats,
    ];
    const failoverFailures = [
      ...ttl10.failures.map((f) => `ttl 10 ${f}`),
      ...ttl3.failures.map((f) => `ttl 3 ${f}`),
      ...unprepared.failures.map((f) => `no session kept ready ${f}`),
      ...floor.failures.map((f) => `floor ${f}`),
    ];
    const scaleLines = scale.map((row) =>
      row.failed
        ? `| ${n(row.count)} | failed: ${row.failed.replace(/\|/g, '/')} | | | | | | |`
        : `| ${n(row.count)} | ${row.settleMs === null ? `only ${n(row.led)} led after 120 s` : `${ms(row.settleMs)} ms`} | ${n(row.startErrors)} | ${n(row.holdErrors ?? 0)} / ${n(row.deselects ?? 0)} | ${n(row.holdLed ?? 0)} | ${row.maxConnections} | ${row.rssMb?.toFixed(0)} MiB | ${pct(row.idleCpuPercent)} |`,
    );
    const scaleErrors = [
      ...scale.filter((row) => row.errorText).map((row) => `${n(row.count)} elections: ${row.errorText}`),
      ...scale
        .filter((row) => row.stuck?.length)
        .map((row) => `${n(row.count)} elections, what ${row.stuck!.length} of those that did not lead reported (health()): ${row.stuck!.map((s) => JSON.stringify(s)).join(', ')}`),
    ];
    const herdLines = herds.map((h) => {
      const l = stats(h.latency);
      const e = stats(h.entries);
      const agentText = h.agent === 'default' ? 'default limits' : '`http_max_conns_per_client` 4096';
      return `| ${h.followers} | ${agentText} | ${h.latency.length} | ${ms(l.p50)} | ${ms(l.max)} | ${e.p50} | ${e.max} | ${n(h.errors)} / ${n(h.deselects)} |`;
    });
    const herdFailures = herds.filter((h) => h.failures.length > 0).map((h) => `${h.followers} followers (${h.agent} agent): ${h.failures.join('; ')}`);
    return `${CONSUL_SCALE_HEADING}: a Consul ${version} agent with its default limits

${provenance}Agents started by the benchmark with every limit at its default (\`limits.http_max_conns_per_client\` 200, no setting
raised); the ttl 3 rows run on a second agent whose only change is \`session_ttl_min: 1s\`, which any user of a ttl under 10 s
has to set as well. "Before" is what issue 13 measured on the ConsulStore of 2026-12-02 (one blocking query, hence one
connection, per watched key): ${BEFORE.scale}.

**Many elections in one process**, one ConsulStore, ttl 10, each election on its own key of one directory; connections to the
agent counted from /proc every 100 ms over the whole run; errors and deselects over ${sizes.holdSeconds} s of holding after all led.

| elections | time until all lead | errors while starting | errors / deselects while holding | leading after the hold | most connections to the agent | resident memory | CPU while holding |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${scaleLines.join('\n')}
${scaleErrors.length ? `\nReported: ${scaleErrors.join('; ')}.\n` : ''}
**Graceful failover between processes**: two candidate processes, \`stop\` on the leader's stdin, until the follower logs its
select (both clocks are the machine's). A fresh follower is stopped for as soon as it sees the leader; an idle one has followed
for ttl + 2 s. Before: p50 ${BEFORE.failoverTtl10.p50} / p90 ${BEFORE.failoverTtl10.p90} ms at ttl 10 between processes; BENCHMARKS.md showed ${BEFORE.inProcessTtl3} ms at p50
with both candidates in the benchmark's own process, warm, at ttl 3 (figure 1 still measures it that way). The floor is the
same handover between two processes that use no library at all (node:http with keep-alive, the release and the acquisition as
vip sends them, a blocking GET on the key): what this machine, Node and the agent cost, run the same way in the same run.
"No session kept ready" is the same candidate with its store's \`prepare\` left out (\`VIP_NO_PREPARE\` in the fixture): the
follower creates its session when it finds the key free, as every follower did before.

| follower | trials finished | p50 | p90 | p99 | max | p50 vs the floor |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
${failoverRow('vip, ttl 10, fresh', f10, ff)}
${failoverRow('vip, ttl 10, idle > ttl', i10, fi)}
${failoverRow('vip, ttl 10, fresh, no session kept ready', u10, ff)}
${failoverRow('vip, ttl 10, idle > ttl, no session kept ready', ui10, fi)}
${failoverRow('vip, ttl 3, fresh', f3, ff)}
${failoverRow('vip, ttl 3, idle > ttl', i3, fi)}
${failoverRow('the floor: no library, ttl 10, fresh', ff)}
${failoverRow('the floor: no library, ttl 10, idle > ttl', fi)}
${failoverFailures.length ? `\nTrials that did not finish: ${[...new Set(failoverFailures)].join('; ')}.\n` : ''}
**A herd on one key**: the leader and N follower processes on one key, ttl 10; the leader is stopped, then the next one, and so
on. Raft log entries are the agent's \`last_log_index\` (\`/v1/agent/self\`) from the stop until a second after the select:
the release, the stopped process's session destroy, the winning acquisition, and one transaction per follower that tried and lost
(followers create their sessions when they start, kept ready, so no session create falls in the window; a session renew is no
raft entry). What keeping a session ready costs instead, all the time: one session per follower store for as long as it
campaigns, and a renew every ttl/2 (0.2 a second per follower process at ttl 10; forwarded to the leader, no raft entry).

| followers | agent | handovers | failover p50 | failover max | raft entries per handover, p50 | max | errors / deselects |
| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |
${herdLines.join('\n')}
${herdFailures.length ? `\nHandovers that did not finish: ${herdFailures.join('; ')}.\n` : ''}
Candidate processes on one host share that host's allowance at the agent (\`limits.http_max_conns_per_client\`, 200 by
default): each holds one connection for its watch and one or two for its requests at a handover, so about 60 of them on one
host and one agent is the most the default allows; the last row stands in for followers on hosts of their own. Not O(1) yet: every follower that sees the key free sends its transaction, and each losing transaction is a raft entry
(Consul applies a transaction through raft before its check-index fails). Making a handover O(1) takes an order among
the followers (a contender queue: who waited longest tries first, the others only if it does not take the key), which
is issue 12's FIFO for etcd as well and is left for that work.

**Followers of a key under lock delay**: ${stormed.followers} follower processes (ttl 10) of a key whose holder's session was
destroyed with a lock delay of ${stormed.seconds + 15} s and the key deleted, while another directory is written every 10 ms
(${n(stormed.writes)} writes in ${stormed.seconds} s), counted by an HTTP proxy in a process of its own:
**${stormed.perFollowerPerSecond.toFixed(2)} requests per follower per second** (${stormed.byRequest}). After the lock delay, ${stormed.leadersAfter} of them led.${stormed.failures.length ? ` Problems: ${stormed.failures.join('; ')}.` : ''}
The bound, and why: a store's blocking query on the directory is not woken by writes elsewhere while anything under the
directory, a tombstone included, gives it an index of its own; and woken by every write (a directory under which nothing is
or was) it still sends at most 10 queries a second per store (its 100 ms quiet gap after an answer without news). An
acquisition the lock delay refuses is retried after the candidate's backoff, doubling from 0.1 s to \`backoff.max\`
(min(5 s, ttl/3): 3.3 s at ttl 10, with jitter between half and all of it), each retry a transaction and a renew sent
beside it, and the store renews its ready session every ttl/2: once the backoff has grown, at most 2 / (3.3 s / 2) + 1 / 5 s
≈ 1.4 requests per second per follower at ttl 10.
`;
  } finally {
    await Promise.all([defaults.close(), shortTtl.close()]);
  }
}
