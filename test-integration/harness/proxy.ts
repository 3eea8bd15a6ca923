/**
 * A TCP proxy between a client and a server, to cut or stall the connection
 * for real (no mocks): what a dead network looks like to both ends.
 *
 * - cut(): destroy every connection and refuse new ones (connection refused
 *   and reset: the client learns fast that the server is unreachable);
 * - stall(): keep connections open but forward nothing, and accept new ones
 *   that forward nothing either (a black hole: the client learns nothing and
 *   must rely on its own timeouts, kubernetes#125530);
 * - heal(): forward again (stalled bytes are dropped, as a dead link would).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpProxy {
  readonly port: number;
  /** Connections accepted and bytes forwarded, for load measurements. */
  readonly stats = { connections: 0, bytesUp: 0, bytesDown: 0 };
  readonly #server: Server;
  readonly #pairs = new Set<{ client: Socket; upstream: Socket }>();
  #mode: 'open' | 'cut' | 'stalled' = 'open';

  private constructor(server: Server, port: number) {
    this.#server = server;
    this.port = port;
  }

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => proxy!.accept(client, targetHost, targetPort));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    proxy = new TcpProxy(server, typeof address === 'object' && address ? address.port : 0);
    return proxy;
  }

  get mode(): 'open' | 'cut' | 'stalled' {
    return this.#mode;
  }

  private accept(client: Socket, host: string, port: number): void {
    if (this.#mode === 'cut') {
      client.resetAndDestroy();
      return;
    }
    this.stats.connections++;
    const upstream = connect(port, host);
    const pair = { client, upstream };
    this.#pairs.add(pair);
    client.on('data', (chunk: Buffer) => {
      if (this.#mode !== 'open') return;
      this.stats.bytesUp += chunk.length;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (this.#mode !== 'open') return;
      this.stats.bytesDown += chunk.length;
      client.write(chunk);
    });
    const close = (): void => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  }

  cut(): void {
    this.#mode = 'cut';
    for (const { client, upstream } of this.#pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  stall(): void {
    this.#mode = 'stalled';
  }

  heal(): void {
    if (this.#mode === 'stalled') {
      // Whatever was in flight on a stalled link is gone; start clean.
      for (const { client, upstream } of this.#pairs) {
        client.resetAndDestroy();
        upstream.destroy();
      }
      this.#pairs.clear();
    }
    this.#mode = 'open';
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

export function startProxy(targetPort: number, targetHost?: string): Promise<TcpProxy> {
  return TcpProxy.start(targetPort, targetHost);
}
