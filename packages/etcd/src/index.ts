export { EtcdStore, createEtcdStore, type EtcdStoreOptions, type EtcdConnectionInput } from './etcd-store.js';
export { parseEtcdConnectionString, parseEtcdHosts, type EtcdConnection } from './connection.js';
export { FOREIGN_HOLDER_ID } from './codec.js';
