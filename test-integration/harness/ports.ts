/**
 * Free loopback ports for servers and proxies.
 *
 * Ports come from below the kernel's ephemeral range (net.ipv4.ip_local_port_range,
 * 32768-60999 by default on Linux). Outgoing connections take their local port
 * from that range, so a port chosen inside it can be taken by some client's
 * socket while a test has its server stopped, and the restart on the same port
 * then fails with EADDRINUSE. Below the range, only listeners compete, and each
 * candidate port is checked by binding it.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

const handedOut = new Set<number>();

function range(): { low: number; high: number } | undefined {
  let ephemeralLow = 32768;
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low && Number.isFinite(low)) ephemeralLow = low;
  } catch {
    // Not Linux: assume the IANA dynamic range (49152-65535) or Linux's default; both start above 32767.
  }
  const low = 10_000;
  const high = ephemeralLow - 1;
  return high - low >= 1000 ? { low, high } : undefined;
}
const candidates = range();

function listen(port: number): Promise<Server | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(server));
  });
}

const close = (server: Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

/**
 * `count` distinct ports that were free on 127.0.0.1 a moment ago and that this
 * process has not handed out before. All are held open together until the last
 * one is found, so one call never returns a port twice.
 */
export async function freePorts(count: number): Promise<number[]> {
  const held: Server[] = [];
  try {
    for (let attempts = 0; held.length < count; attempts++) {
      if (attempts > count * 200) throw new Error(`could not find ${count} free loopback ports`);
      const wanted = candidates ? candidates.low + Math.floor(Math.random() * (candidates.high - candidates.low + 1)) : 0;
      if (handedOut.has(wanted)) continue;
      const server = await listen(wanted);
      if (!server) continue;
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      if (!port || handedOut.has(port)) {
        await close(server);
        continue;
      }
      held.push(server);
      handedOut.add(port);
    }
    return held.map((server) => (server.address() as { port: number }).port);
  } finally {
    await Promise.all(held.map(close));
  }
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}
