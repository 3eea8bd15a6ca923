/**
 * One measurement in a process of its own, so that memory and CPU figures of
 * one implementation are not mixed with another's. Prints one JSON line.
 *
 *   node dist/worker.js scale vip|etcd3 ENDPOINTS COUNT IDLE_SECONDS PREFIX
 *   node dist/worker.js etcd3-candidate ENDPOINTS NAME ID TTL
 */
import { Candidate } from '@vip/core';
import { EtcdStore } from '@vip/etcd';
import { Etcd3 } from 'etcd3';

const [mode, ...args] = process.argv.slice(2);

async function scale(kind: string, endpoints: string[], count: number, idleSeconds: number, prefix: string): Promise<void> {
  const started = performance.now();
  let stop: () => Promise<void>;
  if (kind === 'vip') {
    const store = new EtcdStore(endpoints);
    const candidates = Array.from({ length: count }, (_, i) => new Candidate(store, { path: `${prefix}scale-vip-${count}-${i}`, ttl: 10 }));
    await Promise.all(candidates.map((candidate) => candidate.start()));
    await Promise.all(candidates.map((candidate) => candidate.whenSelected()));
    stop = async () => {
      await Promise.all(candidates.map((candidate) => candidate.stop()));
      await store.close();
    };
  } else {
    const client = new Etcd3({ hosts: endpoints });
    const campaigns = Array.from({ length: count }, (_, i) => client.election(`${prefix}scale-etcd3-${count}-${i}`, 10).campaign('x'));
    await Promise.all(campaigns.map((campaign) => new Promise<void>((resolve, reject) => campaign.once('elected', resolve).once('error', reject))));
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
  await stop();
  console.log(JSON.stringify({ count, settleMs, rssMb, idleCpuPercent }));
}

/** etcd3's Election in a process of its own, logging like test-integration/fixtures/candidate.mjs. */
async function etcd3Candidate(endpoints: string[], name: string, id: string, ttl: number): Promise<void> {
  const client = new Etcd3({ hosts: endpoints });
  const log = (event: string): void => void process.stdout.write(`${JSON.stringify({ at: Date.now(), id, event })}\n`);
  const campaign = client.election(name, ttl).campaign(id);
  campaign.on('elected', () => log('select'));
  campaign.on('error', () => log('deselect'));
  log('started');
}

if (mode === 'scale') await scale(args[0]!, args[1]!.split(','), Number(args[2]), Number(args[3]), args[4]!);
else if (mode === 'etcd3-candidate') await etcd3Candidate(args[0]!.split(','), args[1]!, args[2]!, Number(args[3]));
else throw new Error(`worker: unknown mode ${JSON.stringify(mode)}`);
