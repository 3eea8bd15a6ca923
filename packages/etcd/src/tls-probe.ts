/**
 * Why a TLS connection to etcd fails, in words. grpc-js reports a refused TLS
 * handshake as "14 UNAVAILABLE: No connection established. Last error: null",
 * which names no cause; a missing client certificate, an untrusted server
 * certificate and a wrong host name all look the same. When a request fails
 * that way, the store makes one TLS handshake of its own with the same CA and
 * client certificate, and adds what the handshake says to the error.
 */
import { explainTlsError } from '@vip/core/adapter';
import { isIP } from 'node:net';
import { connect } from 'node:tls';

export interface TlsTarget {
  /** https://host:port */
  readonly url: string;
  readonly ca?: Buffer | undefined;
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
}

/** The errors grpc-js gives when it could not establish a connection at all. */
export function isConnectionFailure(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  return /No connection established|failed to connect|UNAVAILABLE/i.test(message);
}

/**
 * Make a TLS handshake as the etcd client would (ALPN h2, same CA and client
 * certificate) and say why it failed; '' if it succeeded. TLS 1.3 servers
 * refuse a missing or unknown client certificate with an alert sent just
 * after the client's side of the handshake is done, so a success is only
 * believed once no alert came for `settleMs`.
 */
export function probeTls(target: TlsTarget, timeoutMs = 2000, settleMs = 250): Promise<string> {
  const url = new URL(target.url);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || 2379);
  return new Promise((resolve) => {
    let settled = false;
    const socket = connect({
      host,
      port,
      ...(target.ca ? { ca: target.ca } : {}),
      ...(target.cert ? { cert: target.cert } : {}),
      ...(target.key ? { key: target.key } : {}),
      ALPNProtocols: ['h2'],
      ...(isIP(host) ? {} : { servername: host }),
    });
    const done = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(''), timeoutMs);
    socket.on('secureConnect', () => setTimeout(() => done(''), settleMs));
    socket.on('error', (error: NodeJS.ErrnoException) =>
      done(
        explainTlsError(error, {
          clientCertificate: target.cert !== undefined,
          clientCertificateOptions: 'credentials.certChain and credentials.privateKey',
          caOption: 'credentials.rootCertificate',
        }),
      ),
    );
  });
}
