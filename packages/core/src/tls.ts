/**
 * TLS failures in words, for adapters. Node reports a refused handshake as
 * OpenSSL's text ("…:SSL routines::sslv3 alert bad certificate") or a bare
 * code; users need to know which side refused what, and which option to change.
 */

export interface TlsHints {
  /** Whether the client presented a certificate of its own (undefined: not known). */
  clientCertificate: boolean | undefined;
  /** The adapter's options that set a client certificate, e.g. "credentials.certChain and credentials.privateKey". */
  clientCertificateOptions: string;
  /** The adapter's option that sets the trusted CA, e.g. "credentials.rootCertificate". */
  caOption: string;
}

/** Whether `error` is a TLS handshake failure (either side refused), rather than a network error. */
export function isTlsError(error: unknown): boolean {
  const code = String((error as NodeJS.ErrnoException | undefined)?.code ?? '');
  const message = error instanceof Error ? error.message : '';
  return /^ERR_(SSL|TLS)_|CERT|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|SELF_SIGNED|EPROTO/.test(code) || /SSL routines|alert .*certificate|certificate required/i.test(message);
}

/** A TLS or socket error as a sentence that says what went wrong and what to change. */
export function explainTlsError(error: NodeJS.ErrnoException, hints: TlsHints): string {
  const code = error.code ?? '';
  const said = `${error.message}${code && !error.message.includes(code) ? ` (${code})` : ''}`;
  const text = `${code} ${error.message}`;
  const refusedOurCertificate = /UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|HANDSHAKE_FAILURE|unknown ca|bad certificate|certificate unknown|handshake failure/i.test(text);
  if (/CERTIFICATE_REQUIRED|certificate required/i.test(text) || (refusedOurCertificate && hints.clientCertificate === false)) {
    return `the server requires a client certificate (pass ${hints.clientCertificateOptions}): ${said}`;
  }
  if (refusedOurCertificate && hints.clientCertificate === undefined) {
    return `the server refused the handshake: it requires a client certificate (${hints.clientCertificateOptions}) or does not trust ours: ${said}`;
  }
  if (refusedOurCertificate) return `the server refused our client certificate (is it signed by a CA the server trusts?): ${said}`;
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_UNTRUSTED|self.signed/i.test(text)) {
    return `the server's certificate is not signed by a CA we trust (pass your CA as ${hints.caOption}): ${said}`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the server's certificate does not name this host: ${said}`;
  if (/EXPIRED|NOT_YET_VALID/.test(code)) return `a certificate is outside its validity period: ${said}`;
  if (code === 'ECONNREFUSED') return `nothing listens there: ${said}`;
  if (/WRONG_VERSION_NUMBER|wrong version number|EPROTO/i.test(text)) return `the server does not speak TLS on that port (an http:// address?): ${said}`;
  return said;
}
