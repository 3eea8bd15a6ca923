import { Candidate } from '@vip/core';
import { ConsulStore } from '@vip/consul';
import { afterEach, describe, expect, it } from 'vitest';
import { startConsul, uniqueConsulPrefix } from '../harness/index.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close().catch(() => {});
});

describe('ConsulStore: an agent whose node is not in the catalog', () => {
  it('says why a session cannot be created, and a candidate gets elected once the agent registers again', async () => {
    const consul = await startConsul();
    cleanup.push(() => consul.close());
    // Take the node out of the catalog, as when an agent has just started or rejoined.
    const deregister = await fetch(`${consul.address}/v1/catalog/deregister`, { method: 'PUT', body: JSON.stringify({ Node: consul.node }) });
    expect(deregister.ok).toBe(true);

    const store = new ConsulStore(consul.connectionString);
    cleanup.push(() => store.close());
    const name = `${uniqueConsulPrefix('node-registration')}job`;
    await expect(store.compareAndSwap(name, null, { id: 'a', value: '' }, 10)).rejects.toThrow(
      /the agent's node is not in the catalog yet \("Missing node registration"\)/,
    );

    // The candidate reports the error, retries, and leads once the agent has synced its node again.
    const candidate = new Candidate(store, { path: name, id: 'a', ttl: 10 });
    const errors: string[] = [];
    candidate.on('error', (error) => errors.push(error.message));
    await candidate.start();
    cleanup.push(() => candidate.stop());
    // Re-registering the node is what the agent's anti-entropy sync does; do it now rather than wait for it.
    const register = await fetch(`${consul.address}/v1/catalog/register`, {
      method: 'PUT',
      // Sessions check the node's serfHealth by default: it goes with the node, and comes back with it.
      body: JSON.stringify({
        Node: consul.node,
        Address: '127.0.0.1',
        Check: { Node: consul.node, CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' },
      }),
    });
    expect(register.ok).toBe(true);
    await candidate.whenSelected(AbortSignal.timeout(30_000)).catch((error: unknown) => {
      throw new Error(`not selected; its errors: ${errors.join(' | ')}`, { cause: error });
    });
    expect(candidate.isSelected()).toBe(true);
  });
});
