// The cluster CA: a root made at `swarmd init` (ECDSA P-256), node certificates that carry the
// node id (CN) and role (OU swarm-manager | swarm-worker) and the cluster id (O), and join tokens
// that carry the digest of the root certificate so that a joining node can check it talks to the
// right cluster before it trusts anything the manager sends.
//
// Token format, as SwarmKit's: SWMTKN-1-<sha256 of the root certificate's DER, base 36, 50
// characters>-<secret, 25 base-36 characters>. Worker and manager tokens differ in the secret.
// @peculiar/x509 resolves its helpers through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { ALG, certDigest, exportKey, fromPem, type NodeRoleName } from '../../common/certs.js';
import { InvalidArgumentError, TswarmError } from '../../common/errors.js';

// The node side (identities, tokens as a joiner reads them, certificate files) is common/certs.ts.
export { certDigest, checkRootAgainstToken, createNodeKey, identityOf, parseJoinToken, type NodeRoleName } from '../../common/certs.js';

const DAY = 24 * 3600 * 1000;
export const ROOT_VALIDITY_MS = 20 * 365 * DAY;
export const NODE_VALIDITY_MS = 90 * DAY;

export class CaError extends TswarmError {}

export interface RootCA {
  certPem: string;
  keyPem: string;
  /** sha256 of the certificate's DER, hex. */
  digest: string;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  return b.toString('hex');
}

async function importKey(keyPem: string): Promise<webcrypto.CryptoKey> {
  return webcrypto.subtle.importKey('pkcs8', fromPem(keyPem, 'PRIVATE KEY'), ALG, false, ['sign']);
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

// ---------------------------------------------------------------- join tokens

function base36(hex: string, width: number): string {
  return BigInt(`0x${hex}`).toString(36).padStart(width, '0');
}

/** A new join token for this root: the root's digest plus a fresh secret. */
export function makeJoinToken(ca: RootCA): string {
  return `SWMTKN-1-${base36(ca.digest, 50)}-${base36(randomBytes(16).toString('hex'), 25).slice(-25)}`;
}

