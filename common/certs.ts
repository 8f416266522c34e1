// The node's side of the cluster PKI, shared by both roles: keys and signing requests, the
// identity a node certificate carries, join tokens as a joining node reads them, the certificate
// files in the data directory, and gRPC credentials built from them. Signing lives with the CA
// (manager/ca); nothing here needs the CA's key.
//
// Identity: CN = node id, OU = swarm-manager | swarm-worker, O = cluster id.
// Token: SWMTKN-1-<sha256 of the root certificate's DER, base 36, 50 characters>-<secret, 25
// base-36 characters>; worker and manager tokens differ in the secret.
import * as grpc from '@grpc/grpc-js';
import { experimental } from '@grpc/grpc-js';
import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { CorruptFileError, InvalidArgumentError, TswarmError } from './errors.js';

type CryptoKey = webcrypto.CryptoKey;

/**
 * @peculiar/x509 (with tsyringe and the Reflect metadata API it needs) is loaded only to make a
 * signing request: it is most of the start-up time of a short command such as swarmctl, which
 * only reads certificates (node:crypto does that).
 */
let x509Module: Promise<typeof import('@peculiar/x509')> | undefined;
function x509(): Promise<typeof import('@peculiar/x509')> {
  x509Module ??= (async () => {
    await import('reflect-metadata');
    const m = await import('@peculiar/x509');
    m.cryptoProvider.set(webcrypto as never);
    return m;
  })();
  return x509Module;
}

export const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export type NodeRoleName = 'manager' | 'worker';

export interface NodeIdentity {
  nodeId: string;
  role: NodeRoleName;
  clusterId: string;
}

export class CertError extends TswarmError {}

export function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64.trimEnd()}\n-----END ${label}-----\n`;
}

export function fromPem(pem: string, label: string): ArrayBuffer {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(pem);
  if (!m) throw new CertError(`not a PEM ${label}`);
  const buf = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

/** sha256 of the certificate's DER, hex. */
export function certDigest(certPem: string): string {
  return createHash('sha256').update(Buffer.from(fromPem(certPem, 'CERTIFICATE'))).digest('hex');
}

export async function exportKey(key: CryptoKey): Promise<string> {
  return toPem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** A node's key and a certificate signing request for it. */
export async function createNodeKey(): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const csr = await (await x509()).Pkcs10CertificateRequestGenerator.create({ name: 'CN=swarm-node', keys, signingAlgorithm: ALG });
  return { keyPem: await exportKey(keys.privateKey), csrPem: csr.toString('pem') + '\n' };
}

/** A new signing request for an existing key (renewal keeps the key). */
export async function createCsr(keyPem: string): Promise<string> {
  const priv = await webcrypto.subtle.importKey('pkcs8', fromPem(keyPem, 'PRIVATE KEY'), ALG, true, ['sign']);
  // The public half: WebCrypto derives it from the private JWK (d removed).
  const jwk = await webcrypto.subtle.exportKey('jwk', priv);
  delete jwk.d;
  const pub = await webcrypto.subtle.importKey('jwk', { ...jwk, key_ops: ['verify'] }, ALG, true, ['verify']);
  const csr = await (await x509()).Pkcs10CertificateRequestGenerator.create({ name: 'CN=swarm-node', keys: { privateKey: priv, publicKey: pub }, signingAlgorithm: ALG });
  return csr.toString('pem') + '\n';
}

/** The identity a certificate carries; undefined if it is not a node certificate. */
export function identityOf(cert: PeerCertificate | X509Certificate | string): NodeIdentity | undefined {
  let cn: string | undefined;
  let ou: string | undefined;
  let o: string | undefined;
  if (typeof cert === 'string' || cert instanceof X509Certificate) {
    const c = typeof cert === 'string' ? new X509Certificate(cert) : cert;
    const fields = Object.fromEntries(c.subject.split('\n').map((l) => l.split('=') as [string, string]));
    [cn, ou, o] = [fields.CN, fields.OU, fields.O];
  } else {
    const s = cert.subject as unknown as Record<string, string | undefined> | undefined;
    [cn, ou, o] = [s?.CN, s?.OU, s?.O];
  }
  if (!cn || !o || (ou !== 'swarm-manager' && ou !== 'swarm-worker')) return undefined;
  return { nodeId: cn, role: ou === 'swarm-manager' ? 'manager' : 'worker', clusterId: o };
}

// ---------------------------------------------------------------- join tokens

const TOKEN_RE = /^SWMTKN-1-([0-9a-z]{50})-([0-9a-z]{25})$/;

export function parseJoinToken(token: string): { caDigest: string; secret: string } {
  const m = TOKEN_RE.exec(token.trim());
  if (!m) throw new InvalidArgumentError('token', 'is not a join token (SWMTKN-1-<50 characters>-<25 characters>)');
  let n = 0n;
  for (const ch of m[1]!) n = n * 36n + BigInt(parseInt(ch, 36));
  return { caDigest: n.toString(16).padStart(64, '0'), secret: m[2]! };
}

/**
 * For a joining node: checks that the root certificate a manager presented is the one the token
 * names. Throws with a message a user can act on.
 */
export function checkRootAgainstToken(token: string, rootCertPem: string): void {
  const { caDigest } = parseJoinToken(token);
  if (certDigest(rootCertPem) !== caDigest) {
    throw new CertError('the manager presented a root certificate that does not match the join token: wrong cluster, or the token is from before a CA rotation');
  }
}

// ---------------------------------------------------------------- certificate files

/** The node's certificate material as kept in `<data-dir>/certs`: ca.crt, node.key (0600), node.crt. */
export interface NodeCerts {
  caPem: string;
  keyPem: string;
  certPem: string;
}

export function certsDir(dataDir: string, name = 'certs'): string {
  return join(dataDir, name);
}

export function hasNodeCerts(dataDir: string): boolean {
  return existsSync(join(certsDir(dataDir), 'node.crt'));
}

/** Reads the node's certificates; a damaged file is refused naming its path. */
export function loadNodeCerts(dataDir: string, name = 'certs'): NodeCerts {
  const dir = certsDir(dataDir, name);
  const read = (name: string, label: string): string => {
    const path = join(dir, name);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new CorruptFileError(path, `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    try {
      fromPem(text, label);
    } catch {
      throw new CorruptFileError(path, `is not a PEM ${label}`);
    }
    return text;
  };
  const certs = { caPem: read('ca.crt', 'CERTIFICATE'), keyPem: read('node.key', 'PRIVATE KEY'), certPem: read('node.crt', 'CERTIFICATE') };
  if (!identityOf(certs.certPem)) throw new CorruptFileError(join(dir, 'node.crt'), 'is not a node certificate of a tswarm cluster');
  return certs;
}

/** Writes the certificates, each file atomically (write + rename); the key last readable by root only. */
export function saveNodeCerts(dataDir: string, certs: NodeCerts): void {
  const dir = certsDir(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const [name, text, mode] of [
    ['ca.crt', certs.caPem, 0o644],
    ['node.key', certs.keyPem, 0o600],
    ['node.crt', certs.certPem, 0o644],
  ] as const) {
    writeFileSync(join(dir, `${name}.tmp`), text, { mode });
    renameSync(join(dir, `${name}.tmp`), join(dir, name));
  }
}

/** Milliseconds from `now` until the certificate expires (negative once expired). */
export function certExpiresIn(certPem: string, now = Date.now()): { remainingMs: number; lifetimeMs: number } {
  const c = new X509Certificate(certPem);
  const to = Date.parse(c.validTo);
  return { remainingMs: to - now, lifetimeMs: to - Date.parse(c.validFrom) };
}

/** Renew when less than a third of the certificate's lifetime remains (or it has expired). */
export function shouldRenew(remainingMs: number, lifetimeMs: number): boolean {
  return remainingMs < lifetimeMs / 3;
}

// ---------------------------------------------------------------- gRPC credentials

/**
 * Serves the node's current certificates to grpc-js and pushes renewals to every server and
 * channel that uses them, so that a renewed certificate takes effect without a restart.
 */
export class NodeCertProvider implements experimental.CertificateProvider {
  private readonly caListeners = new Set<experimental.CaCertificateUpdateListener>();
  private readonly idListeners = new Set<experimental.IdentityCertificateUpdateListener>();

  constructor(private current: NodeCerts) {}

  get certs(): NodeCerts {
    return this.current;
  }

  get identity(): NodeIdentity {
    return identityOf(this.current.certPem)!;
  }

  update(certs: NodeCerts): void {
    this.current = certs;
    for (const l of this.caListeners) l({ caCertificate: Buffer.from(certs.caPem) });
    for (const l of this.idListeners) l({ certificate: Buffer.from(certs.certPem), privateKey: Buffer.from(certs.keyPem) });
  }

  addCaCertificateListener(l: experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(l);
    // Asynchronously: grpc-js registers its own watcher only after adding the listener.
    process.nextTick(() => this.caListeners.has(l) && l({ caCertificate: Buffer.from(this.current.caPem) }));
  }

  removeCaCertificateListener(l: experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(l);
  }

  addIdentityCertificateListener(l: experimental.IdentityCertificateUpdateListener): void {
    this.idListeners.add(l);
    process.nextTick(() => this.idListeners.has(l) && l({ certificate: Buffer.from(this.current.certPem), privateKey: Buffer.from(this.current.keyPem) }));
  }

  removeIdentityCertificateListener(l: experimental.IdentityCertificateUpdateListener): void {
    this.idListeners.delete(l);
  }

  /**
   * Server side: TLS with the node certificate; a client certificate is asked for and, when one is
   * given, verified against the cluster root. A client without one may connect (a joining node has
   * none yet): each service decides what an unauthenticated caller may do (see `peerIdentity`).
   */
  serverCredentials(): grpc.ServerCredentials {
    return experimental.createCertificateProviderServerCredentials(this, this, false);
  }

  /** Client side: presents the node certificate and accepts only a manager of this cluster. */
  channelCredentials(): grpc.ChannelCredentials {
    // Channels must also be created with TLS_CHANNEL_OPTIONS (we check identities, not host names).
    return experimental.createCertificateProviderChannelCredentials(this, this, { checkServerIdentity: checkManagerIdentity(() => this.identity.clusterId) });
  }
}

/**
 * Channel options for every TLS connection between nodes: identity is the certificate's subject,
 * checked by checkManagerIdentity, not a host name; this keeps Node from putting an IP address
 * into the TLS server name (which RFC 6066 forbids).
 */
export const TLS_CHANNEL_OPTIONS = { 'grpc.ssl_target_name_override': 'tswarm' } as const;

/** A checkServerIdentity that accepts only a manager certificate (of the given cluster, if known). */
export function checkManagerIdentity(clusterId?: () => string | undefined): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const who = identityOf(cert);
    if (!who || who.role !== 'manager') return new CertError('the server is not a manager of a tswarm cluster');
    const want = clusterId?.();
    if (want && who.clusterId !== want) return new CertError(`the server is a manager of cluster ${who.clusterId}, not of ${want}`);
    return undefined;
  };
}

/** A server-side gRPC call, as far as peerIdentity needs it. */
export interface AuthenticatedCall {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate };
}

/**
 * Each connection's caller, parsed at its first call. The peer certificate of a TLS connection is
 * fixed for its life (HTTP/2 forbids renegotiation, and Node's http2 turns it off), and a renewed
 * certificate comes with a new connection, so the identity is a property of the connection:
 * `getPeerCertificate()` builds a new object of the whole certificate at every call, which cost the
 * leader about a twentieth of its time under load. Keyed weakly: an entry goes with its session.
 */
const identities = new WeakMap<object, NodeIdentity | undefined>();

/**
 * The HTTP/2 session a grpc-js server call arrived on. grpc-js (1.10 and later) does not expose it:
 * the handler's call object holds the intercepting call in `call`, which reaches (through
 * `nextCall` when interceptors wrap it) the one that holds the HTTP/2 `stream`. Undefined when that
 * shape is not there (another grpc-js, or a test double): the caller is then parsed per call.
 * manager/forward.test.ts pins the shape against the grpc-js in use.
 */
export function sessionOf(call: object): object | undefined {
  let c: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 8 && typeof c === 'object' && c !== null; depth++) {
    const stream = (c as { stream?: unknown }).stream;
    if (typeof stream === 'object' && stream !== null) {
      const session = (stream as { session?: unknown }).session;
      return typeof session === 'object' && session !== null ? session : undefined;
    }
    c = (c as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

/**
 * The verified certificate identity of the caller of a gRPC call; undefined without one. Parsed
 * once per connection (see `identities`).
 */
export function peerIdentity(call: AuthenticatedCall): NodeIdentity | undefined {
  const session = sessionOf(call);
  if (session && identities.has(session)) return identities.get(session);
  const cert = call.getAuthContext().sslPeerCertificate;
  const who = cert ? identityOf(cert) : undefined;
  if (session) identities.set(session, who);
  return who;
}
