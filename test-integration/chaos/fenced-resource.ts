/**
 * The fenced resource of the chaos run: a small HTTP server standing for the
 * thing only a leader may change (a database row, a file, a queue). A write
 * carries the writer's fencing token and is accepted only if that token is at
 * least as high as the highest the resource has seen; every write, accepted or
 * refused, is recorded with the time it arrived.
 *
 *   POST /write  {"id":"c1","token":"42","checkedAt":1700000000000,"seq":7}
 *     200 {"accepted":true}    token >= highest seen (highest becomes token)
 *     409 {"accepted":false,"highest":"43"}   a stale token: refused
 *
 * This is what fencing tokens are for: a leader that was paused or cut off
 * after it checked its own lease may still send a write late, and the
 * resource, not the leader, has the last word.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Write {
  id: string;
  token: bigint;
  /** When the writer checked that it leads (its `Date.now()` as `isSelected()` said true), before it did the work and sent this. */
  checkedAt: number;
  /** When the resource received it (this process's `Date.now()`). */
  receivedAt: number;
  seq: number;
  accepted: boolean;
}

export class FencedResource {
  readonly writes: Write[] = [];
  #highest = -1n;
  readonly #server: Server;
  readonly port: number;

  private constructor(server: Server, port: number) {
    this.#server = server;
    this.port = port;
  }

  static async start(): Promise<FencedResource> {
    let resource: FencedResource | undefined;
    const server = createServer((request, response) => resource!.#handle(request, response));
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    resource = new FencedResource(server, (server.address() as AddressInfo).port);
    return resource;
  }

  /** `http://127.0.0.1:PORT/write` */
  get url(): string {
    return `http://127.0.0.1:${this.port}/write`;
  }

  /** The highest token the resource has accepted (-1 before any write). */
  get highest(): bigint {
    return this.#highest;
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    const reply = (status: number, body: object): void => {
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (request.method !== 'POST' || request.url !== '/write') return reply(404, { error: 'POST /write only' });
    let text = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (text += chunk));
    request.on('end', () => {
      const receivedAt = Date.now();
      let write: Omit<Write, 'accepted' | 'receivedAt'>;
      try {
        const body = JSON.parse(text) as { id?: unknown; token?: unknown; checkedAt?: unknown; seq?: unknown };
        if (typeof body.id !== 'string' || typeof body.token !== 'string' || typeof body.checkedAt !== 'number' || typeof body.seq !== 'number') {
          throw new Error('expected {"id": string, "token": decimal string, "checkedAt": number, "seq": number}');
        }
        write = { id: body.id, token: BigInt(body.token), checkedAt: body.checkedAt, seq: body.seq };
      } catch (error) {
        return reply(400, { error: (error as Error).message });
      }
      // The whole rule: never accept a token lower than one already seen.
      const accepted = write.token >= this.#highest;
      if (accepted) this.#highest = write.token;
      this.writes.push({ ...write, receivedAt, accepted });
      reply(accepted ? 200 : 409, accepted ? { accepted } : { accepted, highest: this.#highest.toString() });
    });
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
