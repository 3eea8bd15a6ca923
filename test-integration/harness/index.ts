export {
  servers,
  serversFile,
  etcdBinary,
  etcdctlBinary,
  consulBinary,
  repositoryRoot,
  type Servers,
  type EtcdServers,
  type ConsulServers,
} from './binaries.js';
export { freePort, freePorts } from './ports.js';
export { makeCertificates, type Certificates } from './pki.js';
export { ServerProcess } from './server-process.js';
export { EtcdCluster, startEtcd, type EtcdMember, type EtcdOptions } from './etcd.js';
export { ConsulAgent, startConsul, type ConsulOptions, type ConsulPorts } from './consul.js';
export { TcpProxy, startProxy, type ProxyMode, type ProxyStats } from './proxy.js';
export { uniquePrefix, uniqueConsulPrefix } from './keys.js';
export {
  spawnJsonLines,
  track,
  trackDir,
  untrackDir,
  killAllChildren,
  runningChildren,
  CandidateProcess,
  Election,
  type CandidateSpec,
  type Exit,
  type JsonLinesProcess,
  type SpawnJsonLinesOptions,
} from './processes.js';
export { tcpConnectionsTo } from './sockets.js';
