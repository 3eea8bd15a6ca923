/**
 * Three candidates in one process elect a leader over an in-memory store,
 * then live through a crash and a graceful stop. Everything here works the
 * same with EtcdStore or ConsulStore in place of MemoryStore, with the
 * candidates in separate processes on separate machines.
 */
import { Candidate, MemoryBackend, MemoryStore } from '@vip/core';
import { FaultyStore } from '@vip/core/testing';

const ttl = 2; // seconds; the leader refreshes every ttl/3 and gives up at 0.8 × ttl without an answer
const backend = new MemoryBackend(); // plays the server; each store plays one process's client
const started = performance.now();
const at = (): string => `${((performance.now() - started) / 1000).toFixed(2).padStart(6)}s`;

const nodes = ['alpha', 'bravo', 'charlie'].map((id) => {
  const store = new FaultyStore(new MemoryStore({ backend }));
  const candidate = new Candidate(store, { path: '/jobs/report', id, value: `http://${id}:8080`, ttl });
  candidate.on('select', (value, leaderId, holder) => console.log(`${at()}  ${id}: I lead now (token ${holder.token}, value ${value})`));
  candidate.on('deselect', (reason) => console.log(`${at()}  ${id}: I no longer lead (${reason})`));
  candidate.on('error', (error) => console.log(`${at()}  ${id}: store error: ${error.message}`));
  return { id, store, candidate };
});
// One node narrates what every node sees.
nodes[2]!.candidate.on('change', (value, leaderId) => {
  console.log(`${at()}  (every node sees) leader: ${leaderId ?? 'none, the key is free'}${value ? ` at ${value}` : ''}`);
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const leader = () => nodes.find((node) => node.candidate.isSelected());

console.log(`Three candidates campaign for /jobs/report with a ${ttl} s ttl.`);
await Promise.all(nodes.map((node) => node.candidate.start()));
await sleep(500);

const crashed = leader()!;
console.log(`\n${at()}  -- ${crashed.id} loses its connection to the store (as if it crashed or was cut off) --`);
crashed.store.partition();
await sleep(ttl * 1000 + 1000);

const next = leader()!;
console.log(`\n${at()}  -- ${crashed.id} reconnects; ${next.id} stops gracefully and hands over at once --`);
crashed.store.heal();
await next.candidate.stop();
await sleep(500);

console.log(`\n${at()}  -- everyone stops --`);
await Promise.all(nodes.map((node) => node.candidate.stop()));
console.log(`${at()}  done.`);
