// The cluster CA: a root, node certificates carrying id and role, join tokens carrying the root's
// digest, and mutual TLS between nodes in which a worker's certificate cannot reach the control API.
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeInfoClient, NodeInfoService, type NodeInfoResponse } from '../../proto/gen/tswarm/node.js';
import { NodeRole } from '../../proto/gen/tswarm/types.js';
import { checkRootAgainstToken, createNodeKey, createRootCA, identityOf, issueNodeCertificate, makeJoinToken, parseJoinToken, type RootCA } from './ca.js';

describe('cluster CA', () => {
  let ca: RootCA;
  beforeAll(async () => {
    ca = await createRootCA();
  });

  it('makes an ECDSA P-256 root valid for 20 years', () => {
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const years = (Date.parse(cert.validTo) - Date.now()) / (365 * 24 * 3600 * 1000);
    expect(years).toBeGreaterThan(19.9);
  });

  it('issues node certificates that carry the node id and role, signed by the root', async () => {
    const { csrPem } = await createNodeKey();
    const pem = await issueNodeCertificate(ca, csrPem, { nodeId: 'abc123', role: 'worker', clusterId: 'cluster1' });
    const cert = new X509Certificate(pem);
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(identityOf(pem)).toEqual({ nodeId: 'abc123', role: 'worker', clusterId: 'cluster1' });
    expect(await issueNodeCertificate(ca, 'garbage', { nodeId: 'x', role: 'worker', clusterId: 'c' }).catch((e: Error) => e.message)).toMatch(/^csr: is not a PEM certificate request/);
  });

  it('makes join tokens that carry the root digest, and checks a presented root against them', async () => {
    const worker = makeJoinToken(ca);
    const manager = makeJoinToken(ca);
    expect(worker).toMatch(/^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
    expect(worker).not.toBe(manager);
    expect(parseJoinToken(worker).caDigest).toBe(ca.digest);
    expect(() => checkRootAgainstToken(worker, ca.certPem)).not.toThrow();
    const other = await createRootCA();
    expect(() => checkRootAgainstToken(worker, other.certPem)).toThrow(/does not match the join token/);
    expect(() => parseJoinToken('SWMTKN-1-short-x')).toThrow(/^token: is not a join token/);
  });

  describe('mutual TLS with node certificates', () => {
    let server: grpc.Server;
    let port = 0;
    const creds: Record<string, { key: string; cert: string }> = {};

    beforeAll(async () => {
      for (const [name, role] of [['manager', 'manager'], ['worker', 'worker']] as const) {
        const { keyPem, csrPem } = await createNodeKey();
        creds[name] = { key: keyPem, cert: await issueNodeCertificate(ca, csrPem, { nodeId: `${name}-node`, role, clusterId: 'c1' }, { ips: ['127.0.0.1'] }) };
      }
      server = new grpc.Server();
      // A stand-in for a manager-only service: answers only callers whose certificate says manager.
      server.addService(NodeInfoService, {
        info: (call: grpc.ServerUnaryCall<unknown, NodeInfoResponse>, cb: grpc.sendUnaryData<NodeInfoResponse>) => {
          const peer = call.getAuthContext().sslPeerCertificate;
          const who = peer ? identityOf(peer) : undefined;
          if (who?.role !== 'manager') return cb({ code: grpc.status.PERMISSION_DENIED, details: `node ${who?.nodeId ?? '?'} (${who?.role ?? 'no certificate'}) may not call the control API` });
          cb(null, { nodeId: who.nodeId, hostname: '', version: '', role: NodeRole.NODE_ROLE_MANAGER, listenAddrs: [], startedAtUnixMs: 0 });
        },
      });
      const sc = grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ private_key: Buffer.from(creds.manager!.key), cert_chain: Buffer.from(creds.manager!.cert) }], true);
      port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', sc, (e, p) => (e ? rej(e) : res(p))));
    });
    afterAll(() => server?.forceShutdown());

    const info = (key: string, cert: string, root = ca.certPem): Promise<NodeInfoResponse> => {
      const client = new NodeInfoClient(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(root), Buffer.from(key), Buffer.from(cert)));
      return new Promise<NodeInfoResponse>((resolve, reject) => client.info({}, new grpc.Metadata(), { deadline: Date.now() + 3000 }, (e, r) => (e ? reject(e) : resolve(r)))).finally(() => client.close());
    };

    it('lets a manager certificate call, and refuses a worker certificate', async () => {
      expect((await info(creds.manager!.key, creds.manager!.cert)).nodeId).toBe('manager-node');
      const err = (await info(creds.worker!.key, creds.worker!.cert).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(err.details).toMatch(/worker-node \(worker\) may not call the control API/);
    });

    it('refuses a certificate from another cluster at the handshake', async () => {
      const other = await createRootCA();
      const { keyPem, csrPem } = await createNodeKey();
      const cert = await issueNodeCertificate(other, csrPem, { nodeId: 'intruder', role: 'manager', clusterId: 'c2' });
      const err = (await info(keyPem, cert).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
    });
  });
});
