/**
 * Connection strings for Consul: `consul://host:port` (http) and
 * `consuls://host:port` (https). A Consul client talks to one agent.
 */
const EXPECTED = 'consul://host:port or consuls://host:port';

export interface ConsulAddress {
  host: string;
  port: number;
  secure: boolean;
}

export function parseConsulConnectionString(input: string): ConsulAddress {
  const refuse = (why: string): never => {
    throw new TypeError(`ConsulStore: connection string ${JSON.stringify(input)} ${why}; expected ${EXPECTED}`);
  };
  if (typeof input !== 'string' || input.trim() === '') refuse('is empty');
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(input.trim());
  if (!match) refuse('has no scheme (a bare host:port means etcd to vip)');
  const scheme = match![1]!.toLowerCase();
  if (!['consul', 'consuls', 'http', 'https'].includes(scheme)) refuse(`has the scheme "${scheme}://", which is not Consul's`);
  const rest = match![2]!.replace(/\/+$/, '');
  if (rest.includes(',')) refuse('names several hosts (a Consul client talks to one agent)');
  const host = /^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]@?#]+)(?::(\d{1,5}))?$/.exec(rest);
  if (!host) refuse(rest === '' ? 'has no host' : `has a malformed host ${JSON.stringify(rest)}`);
  const secure = scheme === 'consuls' || scheme === 'https';
  const port = host![2] === undefined ? (secure ? 8501 : 8500) : Number(host![2]);
  if (port < 1 || port > 65535) refuse(`has port ${port} out of range 1-65535`);
  return { host: host![1]!.replace(/^\[|\]$/g, ''), port, secure };
}
