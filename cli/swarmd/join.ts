// The joining node's side of `swarmd join`, and the calls every node makes to the managers about
// itself (certificate status and renewal). Order of trust when joining:
//   1. fetch the root certificate over TLS without verifying the server (we know nothing yet);
//   2. check its digest against the one in the token: a mismatch ends the join (wrong cluster);
//   3. from then on, talk only to servers with a manager certificate under that root, and ask for
//      a node certificate with the token.
import * as grpc from '@grpc/grpc-js';
import { CAClient, type IssueNodeCertificateResponse, type NodeCertificateStatusResponse } from '../../proto/gen/tswarm/ca.js';
import { RaftMembershipClient, type JoinResponse } from '../../proto/gen/tswarm/raft.js';
import { NodeRole, type NodeDescription } from '../../proto/gen/tswarm/types.js';
import { TLS_CHANNEL_OPTIONS, checkManagerIdentity, checkRootAgainstToken, createCsr, createNodeKey, parseJoinToken, type NodeCertProvider, type NodeCerts } from '../../common/certs.js';
import { TswarmError } from '../../common/errors.js';

export class JoinError extends TswarmError {}

const CALL_TIMEOUT_MS = 10_000;

type Callback<Res> = (err: grpc.ServiceError | null, res: Res) => void;

/** One unary call with the standard deadline, as a promise. */
function unary<Res>(invoke: (md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback<Res>) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    invoke(new grpc.Metadata(), { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Explains a failed call to a manager in words a user can act on. */
function explain(addr: string, what: string, err: unknown): JoinError {
  const e = err as grpc.ServiceError;
  if (e.code === grpc.status.UNAUTHENTICATED || e.code === grpc.status.PERMISSION_DENIED || e.code === grpc.status.ALREADY_EXISTS || e.code === grpc.status.INVALID_ARGUMENT) {
    return new JoinError(`${what}: the manager at ${addr} refused: ${e.details}`);
  }
  if (e.code === grpc.status.UNAVAILABLE || e.code === grpc.status.DEADLINE_EXCEEDED) {
    return new JoinError(`${what}: cannot reach a manager at ${addr} (${e.details || 'unavailable'})`);
  }
  return new JoinError(`${what}: ${e.details || (err as Error).message}`);
}

/**
 * `swarmd join`: checks the manager against the token, then gets a node certificate. The role
 * (worker or manager) is the token's.
 */
export async function joinCluster(token: string, managerAddr: string, nodeId: string, self: { description: NodeDescription; addr: string }): Promise<{ certs: NodeCerts; role: NodeRole }> {
  parseJoinToken(token); // a malformed token fails here, before any network traffic
  // 1. The root, unverified.
  const blind = new CAClient(managerAddr, grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined }), TLS_CHANNEL_OPTIONS);
  let rootPem: string;
  try {
    rootPem = (await unary<{ certificate: Buffer }>((md, o, cb) => blind.getRootCaCertificate({}, md, o, cb))).certificate.toString();
  } catch (err) {
    throw explain(managerAddr, 'join', err);
  } finally {
    blind.close();
  }
  // 2. The token decides whether we trust it.
  checkRootAgainstToken(token, rootPem);
  // 3. A certificate, from a verified manager.
  const key = await createNodeKey();
  const ca = new CAClient(managerAddr, grpc.credentials.createSsl(Buffer.from(rootPem), null, null, { checkServerIdentity: checkManagerIdentity() }), TLS_CHANNEL_OPTIONS);
  let res: IssueNodeCertificateResponse;
  try {
    res = await unary<IssueNodeCertificateResponse>((md, o, cb) => ca.issueNodeCertificate({ csr: Buffer.from(key.csrPem), token, nodeId, role: NodeRole.NODE_ROLE_WORKER, description: self.description, addr: self.addr }, md, o, cb));
  } catch (err) {
    throw explain(managerAddr, 'join', err);
  } finally {
    ca.close();
  }
  return { certs: { caPem: rootPem, keyPem: key.keyPem, certPem: res.certificate.toString() }, role: res.role };
}

/** Calls to the managers with this node's certificate, trying each known manager in turn. */
export class ManagerClient {
  constructor(
    private readonly certs: NodeCertProvider,
    private managers: string[],
  ) {}

  get addresses(): readonly string[] {
    return this.managers;
  }

  setManagers(addrs: string[]): void {
    if (addrs.length > 0) this.managers = [...new Set(addrs)];
  }

  private async each<T>(what: string, call: (addr: string) => Promise<T>): Promise<T> {
    let last: unknown;
    for (const addr of this.managers) {
      try {
        return await call(addr);
      } catch (err) {
        last = err;
        const code = (err as grpc.ServiceError).code;
        // Refusals are answers; only an unreachable manager sends us to the next one.
        if (code !== grpc.status.UNAVAILABLE && code !== grpc.status.DEADLINE_EXCEEDED) break;
      }
    }
    throw explain(this.managers.join(', '), what, last ?? new Error('no manager address known'));
  }

  status(): Promise<NodeCertificateStatusResponse> {
    return this.each('certificate status', async (addr) => {
      const c = new CAClient(addr, this.certs.channelCredentials(), TLS_CHANNEL_OPTIONS);
      try {
        return await unary<NodeCertificateStatusResponse>((md, o, cb) => c.nodeCertificateStatus({}, md, o, cb));
      } finally {
        c.close();
      }
    });
  }

  /** A new certificate for the same key, with the role the cluster has for this node now. */
  async renew(): Promise<{ certs: NodeCerts; role: NodeRole }> {
    const csr = await createCsr(this.certs.certs.keyPem);
    const res = await this.each('certificate renewal', async (addr) => {
      const c = new CAClient(addr, this.certs.channelCredentials(), TLS_CHANNEL_OPTIONS);
      try {
        return await unary<IssueNodeCertificateResponse>((md, o, cb) => c.renewNodeCertificate({ csr: Buffer.from(csr) }, md, o, cb));
      } finally {
        c.close();
      }
    });
    return { certs: { ...this.certs.certs, certPem: res.certificate.toString() }, role: res.role };
  }

  /** A manager enters the Raft group (as a learner); returns its raft id and the members. */
  joinRaft(advertiseAddr: string): Promise<JoinResponse> {
    return this.each('joining the managers', async (addr) => {
      const c = new RaftMembershipClient(addr, this.certs.channelCredentials(), TLS_CHANNEL_OPTIONS);
      try {
        return await unary<JoinResponse>((md, o, cb) => c.join({ addr: advertiseAddr }, md, o, cb));
      } finally {
        c.close();
      }
    });
  }
}
