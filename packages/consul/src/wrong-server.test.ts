import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { VipWrongServerError } from '@vip/core';
import Consul from 'consul';
import { afterEach, describe, expect, it } from 'vitest';
import { ConsulHttp, isTransient } from './consul-http.js';

// What the agent's address answers, over real HTTP: a Consul agent sends
// X-Consul-Index with every KV read (a missing key's 404 included); etcd's
// gateway or a web server does not. A proxy in front of a real agent may, for a
// moment, answer a bare 404 too (no healthy backend during a rolling restart).
const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function agent(answers: ((response: ServerResponse) => void)[]): Promise<ConsulHttp> {
  const server = createServer((_request, response) => (answers.shift() ?? ((r) => r.writeHead(500).end()))(response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => server.close());
  const { port } = server.address() as AddressInfo;
  return new ConsulHttp(new Consul({ host: '127.0.0.1', port }), 2000);
}
const consul404 = (response: ServerResponse): void => void response.writeHead(404, { 'X-Consul-Index': '7' }).end();
const bare404 = (response: ServerResponse): void => void response.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found\n');

describe('ConsulHttp.readKey and a server that is not a Consul agent', () => {
  it('refuses an address whose first answer lacks X-Consul-Index, as not a Consul agent, never to be retried', async () => {
    const http = await agent([bare404]);
    const error = await http.readKey('job', { consistent: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VipWrongServerError);
    expect((error as Error).message).toMatch(/^this does not look like a Consul agent: GET \/v1\/kv\/<key> answered 404 without the X-Consul-Index header/);
    expect(isTransient(error)).toBe(false);
  });

  it('takes a bare 404 after the agent has answered as Consul for a passing fault (a proxy without a backend), retried', async () => {
    const http = await agent([consul404, bare404, consul404]);
    expect(await http.readKey('job', { consistent: true })).toEqual({ entry: undefined, index: 7 });
    const error = await http.readKey('job', { consistent: true }).catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(VipWrongServerError);
    expect((error as Error).message).toMatch(/answered 404 without the X-Consul-Index header/);
    expect(isTransient(error)).toBe(true);
    expect(await http.readKey('job', { consistent: true })).toEqual({ entry: undefined, index: 7 });
  });
});

describe('ConsulHttp.destroySession: bounded from the call, its wait for a turn included', () => {
  it('with every request slot taken by a hung request, a destroy gives up after its own timeout, before the hung request does', async () => {
    const server = createServer(() => {}); // never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => {
      server.closeAllConnections();
      server.close();
    });
    const { port } = server.address() as AddressInfo;
    const http = new ConsulHttp(new Consul({ host: '127.0.0.1', port }), 5000, undefined, 1);
    const order: string[] = [];
    const hung = http.renewSession('s1').then(
      () => order.push('renew answered'),
      () => order.push('renew gave up'),
    );
    const destroyed = http.destroySession('s2', 200).then(
      () => order.push('destroy answered'),
      () => order.push('destroy gave up'),
    );
    await destroyed;
    expect(order).toEqual(['destroy gave up']);
    server.closeAllConnections();
    await hung;
  }, 15_000);
});
