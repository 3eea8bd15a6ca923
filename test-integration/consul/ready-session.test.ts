// A follower's store keeps a session ready (LockStore.prepare), against a real
// agent: the session exists before the follower ever acquires, outlives
// 2 × ttl while it only follows, is the session the follower then locks the
// key with, and is gone once the store closes.
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Candidate } from '@vip/core';
import { FaultyStore } from '@vip/core/testing';
import { ConsulStore } from '@vip/consul';
import { afterEach, describe, expect, it } from 'vitest';
import { startConsul, uniqueConsulPrefix, type ConsulAgent } from '../harness/index.js';
import { until } from '../harness/vip-cli.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
});

interface SessionEntry {
  ID: string;
  Name: string;
}

async function sessions(agent: ConsulAgent, name: string): Promise<string[]> {
  const list = (await (await fetch(`${agent.address}/v1/session/list`)).json()) as SessionEntry[];
  return list.filter((session) => session.Name === name).map((session) => session.ID);
}

async function lockedBy(agent: ConsulAgent, key: string): Promise<string | undefined> {
  const response = await fetch(`${agent.address}/v1/kv/${key}`);
  if (response.status === 404) return undefined;
  return ((await response.json()) as { Session?: string }[])[0]?.Session;
}

/** A dev agent that accepts session TTLs from 1 s, stopped after the test. */
async function shortTtlAgent(): Promise<ConsulAgent> {
  const agent = await startConsul({ configJson: { session_ttl_min: '1s' } });
  cleanup.push(() => agent.close());
  return agent;
}

/** A store (ttl 1 allowed) on `agent`, closed after the test. */
function storeOn(agent: ConsulAgent, options: { sessionName?: string } = {}): ConsulStore {
  const store = new ConsulStore(agent.connectionString, { minTtl: 1, ...options });
  cleanup.push(() => store.close());
  return store;
}

/** A candidate (ttl 1) of another store that leads `path`, stopped after the test. */
async function leaderOf(agent: ConsulAgent, path: string): Promise<Candidate> {
  const leader = new Candidate(storeOn(agent), { path, id: 'other', ttl: 1 });
  cleanup.push(() => leader.stop());
  await leader.start();
  await leader.whenSelected();
  return leader;
}

describe('consul: a follower keeps a session ready', () => {
  it('the follower has its session before it acquires, keeps it past 2 × ttl, locks the key with it, and close() destroys it', async () => {
    const agent = await shortTtlAgent();
    const key = `${uniqueConsulPrefix('ready')}job`;
    const leaderStore = storeOn(agent, { sessionName: 'leader' });
    const followerStore = storeOn(agent, { sessionName: 'follower' });
    const a = new Candidate(leaderStore, { path: key, id: 'a', ttl: 1 });
    const b = new Candidate(followerStore, { path: key, id: 'b', ttl: 1 });
    cleanup.push(() => a.stop(), () => b.stop());
    await a.start();
    await a.whenSelected();
    await b.start();
    await until(() => b.id() === 'a', 'the follower to see the leader', 10_000);
    const ready = await until(async () => (await sessions(agent, 'follower')).at(0), 'the follower’s session', 10_000);
    // Consul invalidates a session between ttl and 2 × ttl after its last renew: 3 s is past that.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await sessions(agent, 'follower')).toEqual([ready]);
    await a.stop();
    await b.whenSelected();
    expect(await lockedBy(agent, key)).toBe(ready);
    await b.stop();
    await followerStore.close();
    expect(await sessions(agent, 'follower')).toEqual([]);
  }, 60_000);

  it('a stopped follower stops renewing: its session expires', async () => {
    const agent = await shortTtlAgent();
    const prefix = uniqueConsulPrefix('ready');
    const store = storeOn(agent, { sessionName: 'mixed' });
    await leaderOf(agent, `${prefix}held`);
    const follower = new Candidate(store, { path: `${prefix}held`, id: 'f', ttl: 1 });
    await follower.start();
    const ready = await until(async () => (await sessions(agent, 'mixed')).at(0), 'the follower’s session', 10_000);
    await follower.stop();
    // Nobody wants it now: Consul drops it within 2 × ttl of its last renew (plus its reaper's latency).
    await until(async () => !(await sessions(agent, 'mixed')).includes(ready), 'the unwanted session to expire', 15_000);
  }, 60_000);

  it('a session that locks a key is not kept alive by it: a leader that cannot refresh loses its key at the server although a follower of the store keeps campaigning', async () => {
    const agent = await shortTtlAgent();
    const prefix = uniqueConsulPrefix('ready');
    const faulty = new FaultyStore(storeOn(agent, { sessionName: 'shared' }));
    await leaderOf(agent, `${prefix}theirs`);
    const leader = new Candidate(faulty, { path: `${prefix}ours`, id: 'leader', ttl: 1 });
    const follower = new Candidate(faulty, { path: `${prefix}theirs`, id: 'follower', ttl: 1 });
    cleanup.push(
      () => leader.stop(),
      () => follower.stop(),
    );
    await leader.start();
    await leader.whenSelected();
    await follower.start();
    const session = await lockedBy(agent, `${prefix}ours`);
    expect(session).toBeDefined();
    // The leader can neither refresh nor release from now on; the follower (same store, same ttl, same session) campaigns on.
    faulty.failAll(['refresh', 'compareAndSwap']);
    await until(async () => (await lockedBy(agent, `${prefix}ours`)) !== session, 'Consul to free the leader’s key', 15_000);
    expect(follower.id()).toBe('other');
    expect(await sessions(agent, 'shared')).not.toContain(session);
  }, 60_000);

  it('a session whose lock transaction went unanswered is not kept alive for followers: Consul frees that key by expiry', async () => {
    const agent = await shortTtlAgent();
    // An HTTP proxy that forwards everything, but drops the answer to a lock transaction while \`lose\` is set:
    // the write is applied, the store never hears of it (outcome unknown).
    let lose = false;
    const upstream = new Agent({ keepAlive: true });
    const proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const dropAnswer = lose && req.url?.startsWith('/v1/txn') && body.includes('"lock"');
        const forward = request(
          { host: agent.host, port: agent.port, path: req.url, method: req.method, headers: req.headers, agent: upstream },
          (answer) => {
            if (dropAnswer) {
              answer.resume();
              res.socket?.destroy();
              return;
            }
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        forward.on('error', () => res.destroy());
        forward.end(body);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    cleanup.push(async () => {
      proxy.closeAllConnections();
      proxy.close();
      upstream.destroy();
    });
    const prefix = uniqueConsulPrefix('ready');
    const store = new ConsulStore(`consul://127.0.0.1:${(proxy.address() as AddressInfo).port}`, { minTtl: 1, sessionName: 'unsure' });
    cleanup.push(() => store.close());
    // Followers of ttl 1 campaign on this store for the whole test: it keeps a session of ttl 1 ready.
    const following = new AbortController();
    cleanup.push(async () => following.abort());
    store.prepare(1, following.signal);
    const ready = await until(async () => (await sessions(agent, 'unsure')).at(0), 'the ready session', 10_000);
    lose = true;
    await expect(store.compareAndSwap(`${prefix}ours`, null, { id: 'a', value: 'v' }, 1)).rejects.toThrow();
    lose = false;
    expect(await lockedBy(agent, `${prefix}ours`)).toBe(ready); // applied, although unanswered
    // Nobody refreshes that key: Consul must free it within 2 × ttl (and its reaper's latency), as after a crash.
    await until(async () => (await lockedBy(agent, `${prefix}ours`)) === undefined, 'Consul to free the key of the unanswered lock', 15_000);
  }, 60_000);
});
