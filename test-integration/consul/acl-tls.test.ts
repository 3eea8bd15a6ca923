import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Candidate } from '@vip/core';
import { ConsulStore } from '@vip/consul';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeCertificates, startConsul, type ConsulAgent } from '../harness/index.js';

// Consul with ACLs on (default deny) and HTTPS only for clients that present a
// certificate signed by our CA. The election's token may write keys under
// elections/ and sessions, nothing else. Whoever lacks the token, the
// certificate or the permission gets an error that names the cause, and a
// candidate refused that way never reports itself selected and keeps the
// process alive. (The agent's plain HTTP port stays on loopback for the
// harness's own readiness check, with the management token.)

const ROOT = 'vip-test-management-token';
const PREFIX = 'elections/';
const POLICY = `key_prefix "${PREFIX}" { policy = "write" }\nsession_prefix "" { policy = "write" }`;
const TTL = 10;
let consul: ConsulAgent;
let https: number;
let dir: string;
let pem: { ca: Buffer; cert: Buffer; key: Buffer };
let token: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vip-consul-acl-tls-'));
  const certs = await makeCertificates(dir);
  pem = { ca: await readFile(certs.ca), cert: await readFile(certs.clientCert), key: await readFile(certs.clientKey) };
  https = await freePort();
  consul = await startConsul({
    configJson: {
      acl: { enabled: true, default_policy: 'deny', down_policy: 'deny', tokens: { master: ROOT, agent: ROOT } },
      ports: { https },
      // Consul 1.8's names; newer agents still read them (tls { defaults { … } } since 1.12).
      ca_file: certs.ca,
      cert_file: certs.serverCert,
      key_file: certs.serverKey,
      verify_incoming_https: true,
    },
  });
  const admin = (method: string, path: string, body: object) =>
    fetch(`${consul.address}${path}`, { method, body: JSON.stringify(body), headers: { 'X-Consul-Token': ROOT } });
  const policy = await admin('PUT', '/v1/acl/policy', { Name: 'vip-elections', Rules: POLICY });
  expect(policy.ok, await policy.clone().text()).toBe(true);
  const created = await admin('PUT', '/v1/acl/token', { Description: 'vip elections', Policies: [{ Name: 'vip-elections' }] });
  token = ((await created.json()) as { SecretID: string }).SecretID;
}, 60_000);

afterAll(async () => {
  await consul?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => {});
});

/** A store over HTTPS; `null` leaves that option out. */
function open(options: { token?: string | null; ca?: Buffer; cert?: Buffer | null; key?: Buffer | null } = {}): ConsulStore {
  const cert = options.cert === null ? undefined : (options.cert ?? pem.cert);
  const key = options.key === null ? undefined : (options.key ?? pem.key);
  const store = new ConsulStore(
    { host: '127.0.0.1', port: https, secure: true, ca: options.ca ?? pem.ca, ...(options.token === null ? {} : { token: options.token ?? token }), ...(cert && key ? { cert, key } : {}) },
    { requestTimeout: 5 },
  );
  closers.push(() => store.close());
  return store;
}

const claim = (id: string) => ({ id, value: `value of ${id}` });

/** A candidate that must never lead: it reports errors, stays alive, and stops cleanly. */
async function refusedCandidate(store: ConsulStore, path: string, cause: RegExp): Promise<void> {
  const candidate = new Candidate(store, { path, id: 'intruder', ttl: TTL, backoff: { initial: 0.05, max: 0.2 } });
  const errors: Error[] = [];
  let selected = false;
  candidate.on('error', (error) => errors.push(error));
  candidate.on('select', () => (selected = true));
  await candidate.start();
  const deadline = Date.now() + 20_000;
  while (errors.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  await candidate.stop();
  expect(selected).toBe(false);
  expect(candidate.isSelected()).toBe(false);
  expect(errors.length, 'errors reported while it kept retrying').toBeGreaterThanOrEqual(3);
  expect(errors.map((error) => error.message).join('\n')).toMatch(cause);
}

describe('Consul with ACLs (default deny) and HTTPS with client certificates', () => {
  it('the right token and certificate elect exactly one of two', async () => {
    const path = `${PREFIX}right-credentials`;
    const [a, b] = [new Candidate(open(), { path, id: 'a', ttl: TTL }), new Candidate(open(), { path, id: 'b', ttl: TTL })];
    const errors: Error[] = [];
    for (const candidate of [a, b]) {
      candidate.on('error', (error) => errors.push(error));
      closers.push(() => candidate.stop());
      await candidate.start();
    }
    await Promise.race([a.whenSelected(AbortSignal.timeout(15_000)), b.whenSelected(AbortSignal.timeout(15_000))]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect([a.isSelected(), b.isSelected()].filter(Boolean)).toHaveLength(1);
    expect(errors).toEqual([]);
  });

  it('an unknown token is refused, naming the cause; such a candidate never leads and does not crash', async () => {
    const wrong = '00000000-0000-4000-8000-000000000000';
    await expect(open({ token: wrong }).compareAndSwap(`${PREFIX}wrong-token`, null, claim('x'), TTL)).rejects.toThrow(/ACL not found/);
    await refusedCandidate(open({ token: wrong }), `${PREFIX}wrong-token`, /ACL not found/);
  });

  it('no token at all is refused too (the anonymous token may do nothing)', async () => {
    await expect(open({ token: null }).compareAndSwap(`${PREFIX}no-token`, null, claim('x'), TTL)).rejects.toThrow(/Permission denied/i);
  });

  it('a client without a certificate is refused, naming the cause; such a candidate never leads', async () => {
    const store = open({ cert: null, key: null });
    await expect(store.compareAndSwap(`${PREFIX}no-certificate`, null, claim('x'), TTL)).rejects.toThrow(/HTTPS to Consul failed: the server requires a client certificate \(pass the "cert" and "key" options\)/);
    await refusedCandidate(open({ cert: null, key: null }), `${PREFIX}no-certificate`, /the server requires a client certificate/);
  });

  it('a server whose certificate is not signed by the CA we trust is refused, naming the cause', async () => {
    const other = await mkdtemp(join(tmpdir(), 'vip-consul-other-ca-'));
    closers.push(() => rm(other, { recursive: true, force: true }));
    const stranger = await makeCertificates(other);
    await expect(open({ ca: await readFile(stranger.ca) }).compareAndSwap(`${PREFIX}untrusted-server`, null, claim('x'), TTL)).rejects.toThrow(
      /the server's certificate is not signed by a CA we trust \(pass your CA as the "ca" option\)/,
    );
  });

  it('a key outside the permitted prefix is refused, naming the cause; such a candidate never leads', async () => {
    await expect(open().compareAndSwap('other/job', null, claim('x'), TTL)).rejects.toThrow(/Permission denied/i);
    await refusedCandidate(open(), 'other/job', /"other\/job".*Permission denied/i);
  });
});
