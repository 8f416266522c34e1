// The cluster CA: a root made at `swarmd init` (ECDSA P-256), node certificates that carry the
// node id (CN) and role (OU swarm-manager | swarm-worker) and the cluster id (O), and join tokens
// that carry the digest of the root certificate so that a joining node can check it talks to the
// right cluster before it trusts anything the manager sends.
//
// Token format, as SwarmKit's: SWMTKN-1-<sha256 of the root certificate's DER, base 36, 50
// characters>-<secret, 25 base-36 characters>. Worker and manager tokens differ in the secret.
// @peculiar/x509 resolves its helpers through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { createHash, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { InvalidArgumentError, TswarmError } from '../../common/errors.js';

type CryptoKey = webcrypto.CryptoKey;

x509.cryptoProvider.set(webcrypto as never);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 3600 * 1000;
export const ROOT_VALIDITY_MS = 20 * 365 * DAY;
export const NODE_VALIDITY_MS = 90 * DAY;

export type NodeRoleName = 'manager' | 'worker';

export class CaError extends TswarmError {}

export interface RootCA {
  certPem: string;
  keyPem: string;
  /** sha256 of the certificate's DER, hex. */
  digest: string;
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64.trimEnd()}\n-----END ${label}-----\n`;
}

function fromPem(pem: string, label: string): ArrayBuffer {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(pem);
  if (!m) throw new CaError(`ca: not a PEM ${label}`);
  const buf = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  return b.toString('hex');
}

export function certDigest(certPem: string): string {
  return createHash('sha256').update(Buffer.from(fromPem(certPem, 'CERTIFICATE'))).digest('hex');
}

async function importKey(keyPem: string): Promise<CryptoKey> {
  return webcrypto.subtle.importKey('pkcs8', fromPem(keyPem, 'PRIVATE KEY'), ALG, false, ['sign']);
}

async function exportKey(key: CryptoKey): Promise<string> {
  return toPem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** A new self-signed root, valid for 20 years from `now`. */
export async function createRootCA(now = new Date()): Promise<RootCA> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']));
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=swarm-ca',
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + ROOT_VALIDITY_MS),
    keys,
    signingAlgorithm: ALG,
    extensions: [new x509.BasicConstraintsExtension(true, 1, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
  });
  const certPem = cert.toString('pem') + '\n';
  return { certPem, keyPem: await exportKey(keys.privateKey), digest: certDigest(certPem) };
}

/** A node's key and a certificate signing request for it. */
export async function createNodeKey(): Promise<{ keyPem: string; csrPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=swarm-node', keys, signingAlgorithm: ALG });
  return { keyPem: await exportKey(keys.privateKey), csrPem: csr.toString('pem') + '\n' };
}

/**
 * Signs a node certificate for the CSR's key: CN = node id, OU = swarm-<role>, O = cluster id,
 * usable as TLS server and client. The CSR's own subject is ignored: identity is the CA's call.
 */
export async function issueNodeCertificate(
  ca: RootCA,
  csrPem: string,
  identity: { nodeId: string; role: NodeRoleName; clusterId: string },
  opts: { now?: Date; validityMs?: number; ips?: string[] } = {},
): Promise<string> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw new InvalidArgumentError('csr', `is not a PEM certificate request (${(err as Error).message})`);
  }
  if (!(await csr.verify())) throw new InvalidArgumentError('csr', 'its signature does not verify');
  const caCert = new x509.X509Certificate(ca.certPem);
  const now = opts.now ?? new Date();
  const sans: x509.JsonGeneralName[] = [{ type: 'dns', value: identity.nodeId }, ...(opts.ips ?? []).map((ip) => ({ type: 'ip' as const, value: ip }))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${identity.nodeId}, OU=swarm-${identity.role}, O=${identity.clusterId}`,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + (opts.validityMs ?? NODE_VALIDITY_MS)),
    publicKey: csr.publicKey,
    signingKey: await importKey(ca.keyPem),
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(sans),
    ],
  });
  return cert.toString('pem') + '\n';
}

/** The identity a certificate carries; undefined if it is not a node certificate. */
export function identityOf(cert: PeerCertificate | X509Certificate | string): { nodeId: string; role: NodeRoleName; clusterId: string } | undefined {
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

function base36(hex: string, width: number): string {
  return BigInt(`0x${hex}`).toString(36).padStart(width, '0');
}

/** A new join token for this root: the root's digest plus a fresh secret. */
export function makeJoinToken(ca: RootCA): string {
  return `SWMTKN-1-${base36(ca.digest, 50)}-${base36(randomBytes(16).toString('hex'), 25).slice(-25)}`;
}

export function parseJoinToken(token: string): { caDigest: string; secret: string } {
  const m = TOKEN_RE.exec(token.trim());
  if (!m) throw new InvalidArgumentError('token', 'is not a join token (SWMTKN-1-<50 characters>-<25 characters>)');
  return { caDigest: fromBase36(m[1]!).padStart(64, '0'), secret: m[2]! };
}

function fromBase36(s: string): string {
  let n = 0n;
  for (const ch of s) n = n * 36n + BigInt(parseInt(ch, 36));
  return n.toString(16);
}

/**
 * For a joining node: checks that the root certificate a manager presented is the one the token
 * names. Throws with a message a user can act on.
 */
export function checkRootAgainstToken(token: string, rootCertPem: string): void {
  const { caDigest } = parseJoinToken(token);
  if (certDigest(rootCertPem) !== caDigest) {
    throw new CaError('the manager presented a root certificate that does not match the join token: wrong cluster, or the token is from before a CA rotation');
  }
}
