export { servers, etcdBinary, consulBinary, repositoryRoot, type Servers } from './binaries.js';
export { freePorts } from './ports.js';
export { ServerProcess } from './server-process.js';
export { EtcdCluster, startEtcd, type EtcdMember, type EtcdOptions } from './etcd.js';
export { ConsulAgent, startConsul, type ConsulOptions } from './consul.js';
export { TcpProxy, startProxy } from './proxy.js';
export { uniquePrefix } from './keys.js';
export { CandidateProcess, Election, type CandidateSpec } from './processes.js';
