// The CA service of a manager: the root certificate for anyone (a joining node checks it against
// its token), node certificates for a valid join token, renewals for nodes that hold a
// certificate, and the role the cluster has for a node. Issuing creates the node object, so it
// runs on the leader (see manager/forward.ts); the CA key is in the store, sealed with the
// cluster's data key, which every manager holds.
import { timingSafeEqual } from 'node:crypto';
import type { Cluster, Node } from '../../proto/gen/tswarm/objects.js';
import type { IssueNodeCertificateRequest, IssueNodeCertificateResponse, NodeCertificateStatusResponse, RenewNodeCertificateRequest } from '../../proto/gen/tswarm/ca.js';
import { NodeAvailability, NodeRole, NodeState } from '../../proto/gen/tswarm/types.js';
import type { NodeIdentity, NodeRoleName } from '../../common/certs.js';
import { InvalidArgumentError, TswarmError } from '../../common/errors.js';
import type { MemoryStore } from '../store/memory.js';
import { ExistsError } from '../store/memory.js';
import type { Sealer } from '../store/sealing.js';
import { issueNodeCertificate, type RootCA } from './ca.js';

/** The token presented matches neither join token of the cluster. */
export class TokenError extends TswarmError {}
/** The caller has no certificate, or its node is gone. */
export class UnknownNodeError extends TswarmError {}

const NODE_ID_RE = /^[a-z0-9]{10,64}$/;

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function roleName(r: NodeRole): NodeRoleName {
  return r === NodeRole.NODE_ROLE_MANAGER ? 'manager' : 'worker';
}

export class CaServer {
  constructor(
    private readonly store: MemoryStore,
    private readonly sealer: Sealer,
    private readonly validityMs?: () => number,
  ) {}

  private cluster(): Cluster {
    const c = this.store.list('cluster')[0];
    if (!c?.rootCa) throw new TswarmError('ca: the cluster object is not there yet');
    return c;
  }

  private root(c: Cluster): RootCA {
    const rc = c.rootCa!;
    return { certPem: rc.caCert.toString(), keyPem: this.sealer.open(rc.caKey, `cluster:${c.id}:ca-key`).toString(), digest: rc.caCertHash };
  }

  rootCertificate(): { certificate: Buffer } {
    return { certificate: Buffer.from(this.cluster().rootCa!.caCert) };
  }

  private sign(c: Cluster, csr: Buffer, nodeId: string, role: NodeRole): Promise<string> {
    const validityMs = this.validityMs?.() ?? (c.spec?.nodeCertExpiryMs || undefined);
    return issueNodeCertificate(this.root(c), csr.toString(), { nodeId, role: roleName(role), clusterId: c.id }, validityMs ? { validityMs } : {});
  }

  /** A joining node: the token decides the role; the node object is created with it. */
  async issue(req: IssueNodeCertificateRequest): Promise<IssueNodeCertificateResponse> {
    const c = this.cluster();
    const tokens = c.rootCa!.joinTokens;
    let role: NodeRole;
    if (tokens && sameToken(req.token, tokens.manager)) role = NodeRole.NODE_ROLE_MANAGER;
    else if (tokens && sameToken(req.token, tokens.worker)) role = NodeRole.NODE_ROLE_WORKER;
    else throw new TokenError('the join token is not valid for this cluster: it is wrong, or it was rotated (ask a manager: swarmctl cluster join-token worker|manager)');
    if (!NODE_ID_RE.test(req.nodeId)) throw new InvalidArgumentError('node_id', 'must be 10 to 64 lowercase letters and digits');
    if (this.store.get('node', req.nodeId)) throw new ExistsError('node', req.nodeId);
    const certPem = await this.sign(c, req.csr, req.nodeId, role);
    const node: Node = {
      attachments: [],
      peerPaths: [],
      id: req.nodeId,
      role,
      spec: { annotations: { name: '', labels: {} }, desiredRole: role, availability: NodeAvailability.NODE_AVAILABILITY_ACTIVE },
      description: req.description,
      status: { state: NodeState.NODE_STATE_READY, message: 'joined', addr: req.addr.slice(0, Math.max(0, req.addr.lastIndexOf(':'))) || req.addr },
    };
    await this.store.update((tx) => tx.create('node', node));
    return { nodeId: req.nodeId, certificate: Buffer.from(certPem), role };
  }

  private nodeOf(caller: NodeIdentity | undefined): Node {
    if (!caller) throw new UnknownNodeError('this call needs a node certificate');
    const n = this.store.get('node', caller.nodeId);
    if (!n) throw new UnknownNodeError(`node ${caller.nodeId} is not a member of the cluster (it was removed)`);
    return n;
  }

  /** A node renews its certificate; the new one carries the role the cluster has for it now. */
  async renew(req: RenewNodeCertificateRequest, caller: NodeIdentity | undefined): Promise<IssueNodeCertificateResponse> {
    const n = this.nodeOf(caller);
    const c = this.cluster();
    const certPem = await this.sign(c, req.csr, n.id, n.role);
    return { nodeId: n.id, certificate: Buffer.from(certPem), role: n.role };
  }

  status(caller: NodeIdentity | undefined): NodeCertificateStatusResponse {
    if (!caller) throw new UnknownNodeError('this call needs a node certificate');
    const n = this.store.get('node', caller.nodeId);
    const managers = this.store
      .list('node')
      .filter((m) => m.role === NodeRole.NODE_ROLE_MANAGER && m.managerStatus?.addr)
      .map((m) => m.managerStatus!.addr);
    return { role: n?.role ?? NodeRole.NODE_ROLE_WORKER, removed: !n, managers };
  }
}
