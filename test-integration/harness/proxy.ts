/**
 * A TCP proxy between a client and a server, to break the network for real:
 *
 * - cut(): every open connection is reset, and each new one is reset right
 *   after it is accepted, until heal(). The client learns at once that the
 *   server is unreachable (what a firewall REJECT or a dead host's RST does).
 * - stall(): connections stay open but no byte moves in either direction, and
 *   new connections are accepted but not connected onwards, until heal(). The
 *   client learns nothing and must rely on its own timeouts and keepalives (a
 *   black hole: a firewall DROP, a partition, a paused VM).
 * - heal(): forward again. Bytes held back by a stall are delivered then, as
 *   TCP retransmission would deliver them after a partition heals; a client that
 *   gave up on a connection in the meantime has closed it and will use a new one.
 *
 * A stall is modelled by pausing both sockets: the proxy stops reading, so the
 * kernel buffers fill and the sender's TCP window closes. Nothing is lost, so
 * the byte stream (HTTP/2, gRPC framing) stays intact across a heal.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type ProxyMode = 'open' | 'cut' | 'stalled';

export interface ProxyStats {
  /** Connections accepted and forwarded (or held by a stall), in total. */
  connections: number;
  /** Connections reset because the proxy was cut. */
  refused: number;
  /** Bytes forwarded client → server. */
  bytesUp: number;
  /** Bytes forwarded server → client. */
  bytesDown: number;
}

interface Pair {
  client: Socket;
  upstream: Socket | undefined;
}

export class TcpProxy {
  readonly host = '127.0.0.1';
  readonly port: number;
  readonly targetHost: string;
  readonly targetPort: number;
  readonly stats: ProxyStats = { connections: 0, refused: 0, bytesUp: 0, bytesDown: 0 };
  readonly #server: Server;
  readonly #pairs = new Set<Pair>();
  #mode: ProxyMode = 'open';

  private constructor(server: Server, port: number, targetHost: string, targetPort: number) {
    this.#server = server;
    this.port = port;
    this.targetHost = targetHost;
    this.targetPort = targetPort;
  }

  static async start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => proxy!.#accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    proxy = new TcpProxy(server, typeof address === 'object' && address ? address.port : 0, targetHost, targetPort);
    return proxy;
  }

  /** '127.0.0.1:PORT', the address clients should use instead of the server's. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  /** Connections open through the proxy right now. */
  get activeConnections(): number {
    return this.#pairs.size;
  }

  resetStats(): void {
    Object.assign(this.stats, { connections: 0, refused: 0, bytesUp: 0, bytesDown: 0 });
  }

  cut(): void {
    this.#mode = 'cut';
    for (const pair of [...this.#pairs]) this.#reset(pair);
  }

  stall(): void {
    this.#mode = 'stalled';
    for (const { client, upstream } of this.#pairs) {
      client.pause();
      upstream?.pause();
    }
  }

  heal(): void {
    const wasStalled = this.#mode === 'stalled';
    this.#mode = 'open';
    if (!wasStalled) return;
    for (const pair of this.#pairs) {
      if (!pair.upstream) {
        this.#connectUpstream(pair);
      } else {
        pair.client.resume();
        pair.upstream.resume();
      }
    }
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    const pair: Pair = { client, upstream: undefined };
    client.on('error', () => this.#reset(pair));
    if (this.#mode === 'cut') {
      this.stats.refused++;
      client.resetAndDestroy();
      return;
    }
    this.stats.connections++;
    this.#pairs.add(pair);
    client.on('close', (hadError) => this.#closed(pair, hadError));
    // A stalled proxy holds a new connection without connecting onwards;
    // pauseOnConnect leaves the client's bytes unread until then.
    if (this.#mode === 'open') this.#connectUpstream(pair);
  }

  #connectUpstream(pair: Pair): void {
    const { client } = pair;
    const upstream = connect({ host: this.targetHost, port: this.targetPort, allowHalfOpen: true });
    pair.upstream = upstream;
    upstream.on('error', () => this.#reset(pair));
    upstream.on('close', (hadError) => this.#closed(pair, hadError));
    this.#forward(client, upstream, (n) => (this.stats.bytesUp += n));
    this.#forward(upstream, client, (n) => (this.stats.bytesDown += n));
  }

  /** Copy `from` → `to` with backpressure, counting bytes; a FIN is passed on as a FIN. */
  #forward(from: Socket, to: Socket, count: (bytes: number) => void): void {
    from.on('data', (chunk: Buffer) => {
      count(chunk.length);
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => {
          if (this.#mode === 'open') from.resume();
        });
      }
    });
    from.on('end', () => to.end());
    from.resume();
  }

  /** One side closed. Cleanly: its FIN has been passed on, and the pair is done once both sides are. */
  #closed(pair: Pair, hadError: boolean): void {
    if (hadError) return this.#reset(pair);
    if (pair.client.destroyed && (pair.upstream?.destroyed ?? true)) this.#pairs.delete(pair);
  }

  /** Reset both sides: RST rather than FIN, so that each end sees a broken connection, not a goodbye. */
  #reset(pair: Pair): void {
    this.#pairs.delete(pair);
    for (const socket of [pair.client, pair.upstream]) {
      if (socket && !socket.destroyed) socket.resetAndDestroy();
    }
  }
}

/** A proxy on a free loopback port to `targetHost:targetPort`. */
export function startProxy(targetHost: string, targetPort: number): Promise<TcpProxy>;
/** A proxy to `targetHost` (default 127.0.0.1) `:targetPort`. */
export function startProxy(targetPort: number, targetHost?: string): Promise<TcpProxy>;
export function startProxy(a: string | number, b?: string | number): Promise<TcpProxy> {
  return typeof a === 'number' ? TcpProxy.start(typeof b === 'string' ? b : '127.0.0.1', a) : TcpProxy.start(a, b as number);
}
