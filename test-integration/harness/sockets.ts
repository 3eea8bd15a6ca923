/**
 * Counting a process's TCP connections to a port, from /proc (Linux): the
 * sockets among the process's file descriptors whose row in /proc/net/tcp{,6}
 * has that remote port, in any state but LISTEN. What the Consul agent counts
 * against `limits.http_max_conns_per_client`.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

const LISTEN = '0A';

export function tcpConnectionsTo(port: number, pid: number | 'self' = 'self'): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  const remote = port.toString(16).toUpperCase().padStart(4, '0');
  let count = 0;
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 10) continue;
      const [, , rem, state, , , , , , inode] = fields as [string, string, string, string, string, string, string, string, string, string];
      if (state !== LISTEN && rem.endsWith(`:${remote}`) && inodes.has(inode)) count++;
    }
  }
  return count;
}
