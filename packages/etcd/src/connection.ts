/**
 * Connection strings for etcd, as the seed modules took them and as URLs:
 *
 *   127.0.0.1:4001,127.0.0.1:4002    plain hosts: http
 *   etcd://h1:2379,h2:2379           http
 *   etcds://h1:2379,h2:2379          https (TLS with the system's roots; give
 *                                    an options object for your own CA or client certificates)
 */
const EXPECTED = 'etcd://host:port[,host:port...], etcds://host:port[,...] or host:port[,host:port...]';

export function parseEtcdConnectionString(input: string): string[] {
  const refuse = (why: string): never => {
    throw new TypeError(`EtcdStore: connection string ${JSON.stringify(input)} ${why}; expected ${EXPECTED}`);
  };
  if (typeof input !== 'string' || input.trim() === '') refuse('is empty');
  const text = input.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/i.exec(text);
  let protocol = 'http';
  let list = text;
  if (scheme) {
    const name = scheme[1]!.toLowerCase();
    if (name === 'etcds' || name === 'https') protocol = 'https';
    else if (name !== 'etcd' && name !== 'http') refuse(`has the scheme "${name}://", which is not etcd's`);
    list = scheme[2]!.replace(/\/+$/, '');
  }
  if (list === '') refuse('has no hosts');
  return list.split(',').map((host) => {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:/\s[\]@?#,]+)(?::(\d{1,5}))?$/.exec(host.trim());
    if (!match) refuse(`has a malformed host ${JSON.stringify(host)}`);
    const port = match![2] === undefined ? 2379 : Number(match![2]);
    if (port < 1 || port > 65535) refuse(`has port ${port} out of range 1-65535`);
    return `${protocol}://${match![1]}:${port}`;
  });
}
