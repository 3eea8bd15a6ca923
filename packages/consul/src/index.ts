export { ConsulStore, type ConsulConnectionOptions, type ConsulStoreOptions } from './consul-store.js';
export { parseConsulConnectionString, type ConsulAddress } from './connection.js';
