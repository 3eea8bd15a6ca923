import type { LockStore } from '@vip/core';
import { parseConnectionString } from './connection.js';
import { Service, serviceOnShare, StoreShare, type LeaderFunction, type ServiceOptions } from './service.js';

export { openStore, parseConnectionString, VipConnectionError, type Backend, type ParsedConnection } from './connection.js';
export { leaderReport, parseListenAddress, serveHttp, VipHttpError, type Election, type HttpOptions, type HttpServer, type LeaderReport, type MetricsSource } from './http.js';
export { Service, type LeaderContext, type LeaderFunction, type ServiceOptions } from './service.js';

/** Makes services that share one store: `controller(options, fn)`. */
export type Controller = (options: ServiceOptions, fn: LeaderFunction) => Service;

/**
 * `vip(store)` returns a controller; `controller(options, fn)` returns a
 * service that runs `fn` each time this node becomes leader of `options.path`.
 *
 * `store` is a `LockStore` (an `EtcdStore`, a `ConsulStore`, a `MemoryStore`)
 * or a connection string: `etcd://h1:2379,h2:2379`, `etcds://…`,
 * `consul://h:8500`, `consuls://…`, `memory://`, or a bare `h1:4001,h2:4002`
 * (etcd), as the seed module took it.
 *
 * With a string, the controller's services share one store (one etcd or
 * Consul client, however many services): it is opened when the first of them
 * starts (loading `@vip/etcd` or `@vip/consul` then, as `openStore()` does),
 * and closed once the last of them has stopped; a start after that opens it
 * again. Services that start while it is opening wait for that same open; if
 * it fails, their `start()` rejects and the next `start()` tries again. Each
 * `vip(string)` call is a controller of its own, with its own store. A store
 * you pass is never closed by vip: close it yourself after stopping its services.
 */
export function vip(store: LockStore | string): Controller {
  if (typeof store === 'string') parseConnectionString(store);
  else if (store === null || typeof store !== 'object' || typeof store.compareAndSwap !== 'function') {
    throw new TypeError(`vip: expected a LockStore or a connection string such as "etcd://127.0.0.1:2379" (got ${store === null ? 'null' : typeof store})`);
  }
  if (typeof store === 'string') {
    const share = new StoreShare(store);
    return (options, fn) => serviceOnShare(share, options, fn);
  }
  return (options, fn) => new Service(store, options, fn);
}

export default vip;
