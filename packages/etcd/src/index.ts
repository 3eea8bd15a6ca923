export { EtcdStore, type EtcdStoreOptions } from './etcd-store.js';
export { parseEtcdConnectionString } from './connection.js';
