export { ConsulStore, type ConsulStoreOptions, type ConsulConnectionInput } from './consul-store.js';
export { parseConsulConnectionString, type ConsulAddress, type ConsulConnectionOptions } from './connection.js';
export { FOREIGN_HOLDER_ID, MAX_VALUE_BYTES } from './codec.js';
