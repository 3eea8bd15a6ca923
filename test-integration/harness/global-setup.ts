/**
 * Starts one shared etcd and one shared Consul for the integration tests that
 * only need a working server (the conformance kit, adapter behaviour). Tests
 * that restart, kill or partition a server start their own.
 */
import type { TestProject } from 'vitest/node';
import { servers } from './binaries.js';
import { startConsul, type ConsulAgent } from './consul.js';
import { startEtcd, type EtcdCluster } from './etcd.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Client URLs of the shared etcd, e.g. ['http://127.0.0.1:40123']. */
    etcdEndpoints: string[];
    /** HTTP address of the shared Consul agent, e.g. 'http://127.0.0.1:40200'. */
    consulAddress: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const configured = servers();
  let etcd: EtcdCluster | undefined;
  let consul: ConsulAgent | undefined;
  try {
    if (configured.etcd.endpoints?.length) {
      project.provide('etcdEndpoints', configured.etcd.endpoints);
    } else {
      etcd = await startEtcd();
      project.provide('etcdEndpoints', etcd.endpoints);
    }
    if (configured.consul.addr) {
      project.provide('consulAddress', configured.consul.addr);
    } else {
      consul = await startConsul();
      project.provide('consulAddress', consul.address);
    }
  } catch (error) {
    await Promise.all([etcd?.close(), consul?.close()]);
    throw error;
  }
  return async () => {
    await Promise.all([etcd?.close(), consul?.close()]);
  };
}
