import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Candidate } from '@vip/core';
import { EtcdStore } from '@vip/etcd';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { etcdctlBinary, makeCertificates, startEtcd, type EtcdCluster } from '../harness/index.js';

// etcd with TLS (a CA and certificates made at test time, client certificates
// required) and authentication on: user `vip` may only read and write keys
// under /elections/. Whoever lacks the password, the certificate or the
// permission gets an error that names the cause, and a candidate refused that
// way never reports itself selected and keeps the process alive.

const PREFIX = '/elections/';
const PASSWORD = 'correct horse battery staple';
let etcd: EtcdCluster;
let dir: string;
let pem: { ca: Buffer; cert: Buffer; key: Buffer };
const run = promisify(execFile);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vip-etcd-tls-'));
  const certs = await makeCertificates(dir, { clientName: 'vip' });
  pem = { ca: await readFile(certs.ca), cert: await readFile(certs.clientCert), key: await readFile(certs.clientKey) };
  etcd = await startEtcd({ tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, clientCertAuth: true } });
  // Users, a role limited to the prefix, then auth on: over the loopback http URL the harness keeps for itself.
  const etcdctl = (...args: string[]) => run(etcdctlBinary(), ['--endpoints', etcd.members[0]!.clientUrl, ...args]);
  await etcdctl('user', 'add', 'root:root-password');
  await etcdctl('role', 'add', 'vip-elections');
  await etcdctl('role', 'grant-permission', 'vip-elections', '--prefix=true', 'readwrite', PREFIX);
  await etcdctl('user', 'add', `vip:${PASSWORD}`);
  await etcdctl('user', 'grant-role', 'vip', 'vip-elections');
  await etcdctl('auth', 'enable');
}, 60_000);

afterAll(async () => {
  await etcd?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => {});
});

type Credentials = { rootCertificate: Buffer; certChain?: Buffer; privateKey?: Buffer };
function open(options: { credentials?: Credentials; username?: string; password?: string } = {}): EtcdStore {
  const credentials = options.credentials ?? { rootCertificate: pem.ca, certChain: pem.cert, privateKey: pem.key };
  const store = new EtcdStore(
    {
      hosts: [etcd.members[0]!.tlsClientUrl!],
      credentials,
      auth: { username: options.username ?? 'vip', password: options.password ?? PASSWORD },
    },
    { requestTimeout: 5 },
  );
  closers.push(() => store.close());
  return store;
}

const claim = (id: string) => ({ id, value: `value of ${id}` });

/** A candidate that must never lead: it reports errors, stays alive, and stops cleanly. */
async function refusedCandidate(store: EtcdStore, path: string, cause: RegExp): Promise<void> {
  const candidate = new Candidate(store, { path, id: 'intruder', ttl: 3, backoff: { initial: 0.05, max: 0.2 } });
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
  expect(errors[0]!.message).toMatch(cause);
}

describe('etcd with TLS and authentication', () => {
  it('the right certificate and password elect exactly one of two', async () => {
    const path = `${PREFIX}right-credentials`;
    const [a, b] = [new Candidate(open(), { path, id: 'a', ttl: 3 }), new Candidate(open(), { path, id: 'b', ttl: 3 })];
    const errors: Error[] = [];
    for (const candidate of [a, b]) {
      candidate.on('error', (error) => errors.push(error));
      closers.push(() => candidate.stop());
      await candidate.start();
    }
    await Promise.race([a.whenSelected(AbortSignal.timeout(15_000)), b.whenSelected(AbortSignal.timeout(15_000))]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect([a.isSelected(), b.isSelected()].filter(Boolean)).toHaveLength(1);
    const leader = a.isSelected() ? a : b;
    expect(leader.token()).toBeTypeOf('bigint');
    expect(errors).toEqual([]);
  });

  it('the password in a connection string works the same (etcd://user:password@host)', async () => {
    // Over the loopback http URL: a connection string has no room for a CA or a client certificate.
    const url = new URL(etcd.members[0]!.clientUrl);
    const store = new EtcdStore(`etcd://vip:${encodeURIComponent(PASSWORD)}@${url.host}`);
    closers.push(() => store.close());
    const result = await store.compareAndSwap(`${PREFIX}from-a-string`, null, claim('a'), 3);
    expect(result.ok).toBe(true);
    const wrong = new EtcdStore(`etcd://vip:nope@${url.host}`, { requestTimeout: 5 });
    closers.push(() => wrong.close());
    await expect(wrong.compareAndSwap(`${PREFIX}from-a-string`, null, claim('b'), 3)).rejects.toThrow(/authentication failed, invalid user ID or password/);
  });

  it('a wrong password is refused, naming the cause; such a candidate never leads and does not crash', async () => {
    const store = open({ password: 'wrong' });
    await expect(store.compareAndSwap(`${PREFIX}wrong-password`, null, claim('x'), 3)).rejects.toThrow(/authentication failed, invalid user ID or password/);
    await refusedCandidate(open({ password: 'wrong' }), `${PREFIX}wrong-password`, /authentication failed, invalid user ID or password/);
  });

  it('a client without a certificate is refused, naming the cause; such a candidate never leads', async () => {
    const store = open({ credentials: { rootCertificate: pem.ca } });
    await expect(store.compareAndSwap(`${PREFIX}no-certificate`, null, claim('x'), 3)).rejects.toThrow(/No connection established.*the server requires a client certificate \(pass credentials.certChain and credentials.privateKey\)/);
    await refusedCandidate(open({ credentials: { rootCertificate: pem.ca } }), `${PREFIX}no-certificate`, /the server requires a client certificate/);
  });

  it("a server whose certificate is not signed by the CA we trust is refused, naming the cause", async () => {
    const other = await mkdtemp(join(tmpdir(), 'vip-etcd-other-ca-'));
    closers.push(() => rm(other, { recursive: true, force: true }));
    const stranger = await makeCertificates(other);
    const store = open({ credentials: { rootCertificate: await readFile(stranger.ca), certChain: pem.cert, privateKey: pem.key } });
    await expect(store.compareAndSwap(`${PREFIX}untrusted-server`, null, claim('x'), 3)).rejects.toThrow(
      /the server's certificate is not signed by a CA we trust \(pass your CA as credentials.rootCertificate\)/,
    );
  });

  it('a key outside the permitted prefix is refused, naming the cause and the key; such a candidate never leads', async () => {
    const store = open();
    await expect(store.compareAndSwap('/other/job', null, claim('x'), 3)).rejects.toThrow(/permission denied/);
    await refusedCandidate(open(), '/other/job', /"\/other\/job".*permission denied/);
  });
});
