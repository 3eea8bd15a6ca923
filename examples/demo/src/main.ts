/**
 * The demo: a real etcd (or Consul, with --consul), three candidate processes
 * on one path, and a timeline a person can follow: who leads with which token,
 * a SIGKILL of the leader and the takeover, a graceful stop and the near-instant
 * handover, then a clean shutdown.
 */
import type { LogLine } from '@vip/test-integration/checker';
import { assertNoSplitBrain, terms } from '@vip/test-integration/checker';
import { Election, startConsul, startEtcd, uniquePrefix, type CandidateProcess } from '@vip/test-integration/harness';

const useConsul = process.argv.includes('--consul');
// etcd's shortest lease is 2 s. Consul's shortest session TTL is 10 s unless its
// servers lower session_ttl_min, as this demo's agent does so that the takeover
// fits in seconds: a dead holder's session is invalidated up to 2 × ttl after its
// last renew, and its key then stays unlockable for the lock delay (the ttl).
const ttl = useConsul ? 4 : 2;
const consulMinTtl = 1;
const backend = useConsul ? 'consul' : 'etcd';
const started = Date.now();

const color = (code: number, text: string): string => (process.stdout.isTTY ? `\x1b[${code}m${text}\x1b[0m` : text);
const clock = (at = Date.now()): string => color(90, `${((at - started) / 1000).toFixed(2).padStart(6)}s`);
const say = (text: string): void => console.log(`${clock()}  ${text}`);
const section = (text: string): void => console.log(`\n${color(1, `== ${text}`)}`);

section(`starting a local ${useConsul ? `Consul agent (session_ttl_min ${consulMinTtl}s; a default Consul needs ttl >= 10 s)` : 'etcd'} (ttl ${ttl} s)`);
const server = useConsul ? await startConsul({ configJson: { session_ttl_min: `${consulMinTtl}s` } }) : await startEtcd();
const address = server.connectionString;
say(`${backend} is up at ${address}`);

const election = new Election();
const path = `${useConsul ? 'demo/' : '/demo/'}${uniquePrefix('leader').replace(/^\//, '')}job`;
const shown = new Set<LogLine>();
const names = ['ada', 'brian', 'chris'];
let lastChange = '';
const firstRead = new Set<string>();

// Print every process's events as they arrive, in one timeline.
const printer = setInterval(() => {
  for (const line of election.log) {
    if (shown.has(line)) continue;
    shown.add(line);
    if (line.event === 'select') console.log(`${clock(line.at)}  ${color(32, `${line.id} leads`)} with fencing token ${line.token}`);
    else if (line.event === 'deselect') console.log(`${clock(line.at)}  ${color(33, `${line.id} stops leading`)} (${line.reason})`);
    else if (line.event === 'change' && !firstRead.has(line.id)) firstRead.add(line.id); // a node's first look, not a change
    else if (line.event === 'change' && `${line.leader}:${line.token}` !== lastChange) {
      // Every node reports each change; show it once, from whoever saw it first.
      lastChange = `${line.leader}:${line.token}`;
      console.log(`${clock(line.at)}  ${color(90, `  every node sees: leader ${line.leader ?? 'none (the key is free)'}`)}`);
    }
  }
}, 20);

const waitFor = (condition: () => boolean, what: string, timeoutMs = 60_000) => election.until(condition, what, timeoutMs);
const leader = (): CandidateProcess | undefined => election.leaders()[0];

try {
  section('three candidates campaign for one key');
  const env = useConsul ? { VIP_MIN_TTL: String(consulMinTtl) } : undefined;
  const nodes = names.map((id) => election.spawn({ backend, address, path, id, ttl, ...(env ? { env } : {}) }));
  await waitFor(() => leader() !== undefined && nodes.every((n) => n.events('started').length > 0), 'a leader');
  await new Promise((resolve) => setTimeout(resolve, 1000));

  const victim = leader()!;
  section(
    `kill -9 the leader (${victim.id}): ${useConsul ? 'Consul invalidates its session after ttl to 2 × ttl, then holds the key for the lock delay (ttl)' : 'etcd frees the key when its lease expires (ttl)'}`,
  );
  await victim.kill();
  const killedAt = victim.deaths[0]!;
  say(`${victim.id} killed`);
  await waitFor(() => leader() !== undefined, 'a new leader', (ttl * 3 + 10) * 1000);
  const takeover = election.log.find((line) => line.event === 'select' && line.at > killedAt)!;
  await new Promise((resolve) => setTimeout(resolve, 100));
  say(color(1, `takeover by ${takeover.id} after ${((takeover.at - killedAt) / 1000).toFixed(2)} s (ttl ${ttl} s)`));

  await new Promise((resolve) => setTimeout(resolve, 1000));
  const graceful = leader()!;
  section(`stop the new leader (${graceful.id}) gracefully: it resigns, the next one is chosen at once`);
  const stoppedAt = Date.now();
  await graceful.stop();
  await waitFor(() => leader() !== undefined, 'the next leader');
  const handover = election.log.find((line) => line.event === 'select' && line.at > stoppedAt)!;
  await new Promise((resolve) => setTimeout(resolve, 100));
  say(color(1, `handover to ${handover.id} after ${((handover.at - stoppedAt) / 1000).toFixed(3)} s`));

  section('shut down');
  await leader()!.stop();
  for (const node of nodes) if (node.child.exitCode === null && node.deaths.length === 0) await node.stop();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assertNoSplitBrain(terms(election.log, election.deaths()));
  say('checked every process log: never two leaders, fencing tokens always increasing');
} finally {
  clearInterval(printer);
  await election.close();
  await server.close();
  say(`${backend} stopped. Done.`);
}
