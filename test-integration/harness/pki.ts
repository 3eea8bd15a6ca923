/**
 * Certificates for TLS tests, made at test time with openssl (never checked in):
 * a CA, a server certificate for 127.0.0.1 / localhost, and a client certificate,
 * all EC P-256 and valid for one day.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface Certificates {
  /** Paths of PEM files in the given dir. */
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

const run = promisify(execFile);

/**
 * Writes a CA, a server and a client certificate into `dir`. The client
 * certificate's common name is `clientName` (etcd takes it as the user name
 * when a request carries no password token).
 */
export async function makeCertificates(dir: string, options: { clientName?: string; serverNames?: string[] } = {}): Promise<Certificates> {
  const path = (name: string): string => join(dir, name);
  const openssl = async (...args: string[]): Promise<void> => {
    try {
      await run('openssl', args, { cwd: dir });
    } catch (error) {
      throw new Error(`openssl ${args[0]} failed (is openssl installed?): ${(error as Error).message}`, { cause: error });
    }
  };
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl('req', '-x509', ...key, '-days', '1', '-subj', '/CN=vip test CA', '-keyout', path('ca.key'), '-out', path('ca.pem'));
  const serverNames = ['IP:127.0.0.1', 'DNS:localhost', ...(options.serverNames ?? []).map((name) => `DNS:${name}`)].join(',');
  for (const [name, subject, extension] of [
    ['server', 'server', `subjectAltName=${serverNames}\nextendedKeyUsage=serverAuth,clientAuth`],
    ['client', options.clientName ?? 'client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    await writeFile(path(`${name}.ext`), `${extension}\n`);
    await openssl('req', ...key, '-subj', `/CN=${subject}`, '-keyout', path(`${name}.key`), '-out', path(`${name}.csr`));
    await openssl('x509', '-req', '-in', path(`${name}.csr`), '-CA', path('ca.pem'), '-CAkey', path('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', path(`${name}.ext`), '-out', path(`${name}.pem`));
  }
  return { ca: path('ca.pem'), serverCert: path('server.pem'), serverKey: path('server.key'), clientCert: path('client.pem'), clientKey: path('client.key') };
}
