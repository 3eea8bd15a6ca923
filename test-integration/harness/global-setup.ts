/**
 * vitest globalSetup of the integration project: one shared single-member etcd
 * and one shared Consul dev agent for the tests that only need a working server
 * (the conformance kit, adapter behaviour), each test on its own key prefix.
 * Tests that kill, restart, pause or partition a server start their own with
 * startEtcd / startConsul.
 *
 * A running server given by the user (VIP_ETCD_ENDPOINTS, VIP_CONSUL_ADDR, now
 * or when scripts/install-servers.mjs ran) is used instead, and nothing is started.
 *
 * In a test: `import { inject } from 'vitest'; const endpoints = inject('etcdEndpoints');`
 */
import type { TestProject } from 'vitest/node';
import { servers, type Servers } from './binaries.js';
import { startConsul, type ConsulAgent } from './consul.js';
import { startEtcd, type EtcdCluster } from './etcd.js';
import { killAllChildren } from './processes.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Client URLs of the shared etcd, e.g. ['http://127.0.0.1:23456']. */
    etcdEndpoints: string[];
    /** HTTP address of the shared Consul agent, e.g. 'http://127.0.0.1:23457'. */
    consulAddress: string;
  }
}

function configured(): { etcdEndpoints?: string[]; consulAddress?: string } {
  let installed: Servers | undefined;
  const fromFile = (): Servers => (installed ??= servers());
  const etcdEnv = process.env.VIP_ETCD_ENDPOINTS?.split(',').map((url) => url.trim()).filter(Boolean);
  const consulEnv = process.env.VIP_CONSUL_ADDR?.trim().replace(/\/+$/, '');
  return {
    etcdEndpoints: etcdEnv?.length ? etcdEnv : fromFile().etcd.endpoints,
    consulAddress: consulEnv || fromFile().consul.addr,
  };
}

/** Fail early and clearly when a server the user named does not answer. */
async function check(url: string, what: string, variable: string): Promise<void> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    const body = await response.text();
    if (!response.ok) throw new Error(`HTTP ${response.status} ${body.slice(0, 200)}`);
  } catch (error) {
    // fetch() says only "fetch failed"; the reason (ECONNREFUSED, a timeout) is in `cause`.
    const reason = (error as Error & { cause?: Error }).cause?.message ?? (error as Error).message;
    throw new Error(`${what} at ${url} (${variable}) does not answer: ${reason}`);
  }
}

export default async function setup({ provide }: TestProject): Promise<() => Promise<void>> {
  const { etcdEndpoints, consulAddress } = configured();
  let etcd: EtcdCluster | undefined;
  let consul: ConsulAgent | undefined;
  const closeAll = async (): Promise<void> => {
    await Promise.all([etcd?.close(), consul?.close()]);
    await killAllChildren();
  };
  // Both at once; if one fails, wait for the other to finish starting, then stop it too.
  const results = await Promise.allSettled([
    (async () => {
      if (etcdEndpoints?.length) {
        await check(`${etcdEndpoints[0]}/health`, 'etcd', 'VIP_ETCD_ENDPOINTS');
        provide('etcdEndpoints', etcdEndpoints);
      } else {
        etcd = await startEtcd();
        provide('etcdEndpoints', etcd.endpoints);
      }
    })(),
    (async () => {
      if (consulAddress) {
        await check(`${consulAddress}/v1/status/leader`, 'Consul', 'VIP_CONSUL_ADDR');
        provide('consulAddress', consulAddress);
      } else {
        consul = await startConsul();
        provide('consulAddress', consul.address);
      }
    })(),
  ]);
  const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failure) {
    await closeAll();
    throw failure.reason;
  }
  return closeAll;
}
