// The CA service's logic over an in-memory store: tokens decide roles, node objects are created
// on join, duplicates and wrong tokens are refused, renewals keep the key and carry the role the
// cluster has for the node now, removed nodes get nothing.
import { X509Certificate } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { NodeRole } from '../../proto/gen/tswarm/types.js';
import { createCsr, createNodeKey, identityOf, shouldRenew } from '../../common/certs.js';
import { LocalProposer } from '../store/local.js';
import { MemoryStore } from '../store/memory.js';
import { Sealer } from '../store/sealing.js';
import { createRootCA, makeJoinToken } from './ca.js';
import { CaServer, TokenError, UnknownNodeError } from './server.js';

describe('CA service', () => {
  let store: MemoryStore;
  let ca: CaServer;
  const tokens = { worker: '', manager: '' };

  beforeEach(async () => {
    store = new MemoryStore();
    store.setProposer(new LocalProposer(store));
    const sealer = Sealer.random();
    const root = await createRootCA();
    tokens.worker = makeJoinToken(root);
    tokens.manager = makeJoinToken(root);
    await store.update((tx) =>
      tx.create('cluster', {
        id: 'cluster1',
        rootCa: { caCert: Buffer.from(root.certPem), caKey: sealer.seal(Buffer.from(root.keyPem), 'cluster:cluster1:ca-key'), caCertHash: root.digest, joinTokens: { ...tokens } },
        nextRaftId: 2,
      }),
    );
    ca = new CaServer(store, sealer, () => 3_600_000);
  });

  const join = async (token: string, nodeId: string) => {
    const key = await createNodeKey();
    return { key, res: await ca.issue({ csr: Buffer.from(key.csrPem), token, nodeId, role: NodeRole.NODE_ROLE_WORKER, description: { hostname: 'h1', engineVersion: 'v', dataPathAddr: '', hostPrefixes: [] }, addr: '10.0.0.5:4242' }) };
  };

  it('issues a certificate with the role the token stands for, and creates the node', async () => {
    const w = await join(tokens.worker, 'worker0000001');
    expect(identityOf(w.res.certificate.toString())).toEqual({ nodeId: 'worker0000001', role: 'worker', clusterId: 'cluster1' });
    const m = await join(tokens.manager, 'manager000001');
    expect(m.res.role).toBe(NodeRole.NODE_ROLE_MANAGER);
    expect(identityOf(m.res.certificate.toString())?.role).toBe('manager');
    const node = store.get('node', 'worker0000001')!;
    expect(node.description?.hostname).toBe('h1');
    expect(node.status?.addr).toBe('10.0.0.5');
    expect(node.spec?.desiredRole).toBe(NodeRole.NODE_ROLE_WORKER);
  });

  it('refuses a wrong token, a taken node id and a bad node id, creating nothing', async () => {
    await expect(join(tokens.worker.replace(/.{5}$/, '00000'), 'worker0000001')).rejects.toBeInstanceOf(TokenError);
    await join(tokens.worker, 'worker0000001');
    await expect(join(tokens.worker, 'worker0000001')).rejects.toThrow(/node worker0000001 already exists/);
    await expect(join(tokens.worker, 'Bad Id')).rejects.toThrow(/^node_id: must be 10 to 64 lowercase letters and digits/);
    expect(store.list('node').map((n) => n.id)).toEqual(['worker0000001']);
  });

  it('renews with the same key and the role the cluster has for the node now; refuses removed nodes', async () => {
    const { key, res } = await join(tokens.worker, 'worker0000001');
    const caller = identityOf(res.certificate.toString())!;
    const n = store.get('node', 'worker0000001')!;
    await store.update((tx) => tx.update('node', { ...n, role: NodeRole.NODE_ROLE_MANAGER }));
    const renewed = await ca.renew({ csr: Buffer.from(await createCsr(key.keyPem)) }, caller);
    const before = new X509Certificate(res.certificate);
    const after = new X509Certificate(renewed.certificate);
    expect(identityOf(after)?.role).toBe('manager');
    expect(after.publicKey.export({ format: 'der', type: 'spki' }).equals(before.publicKey.export({ format: 'der', type: 'spki' }))).toBe(true);
    expect(ca.status(caller)).toMatchObject({ role: NodeRole.NODE_ROLE_MANAGER, removed: false });
    await store.update((tx) => tx.remove('node', 'worker0000001'));
    await expect(ca.renew({ csr: Buffer.from(await createCsr(key.keyPem)) }, caller)).rejects.toBeInstanceOf(UnknownNodeError);
    expect(ca.status(caller).removed).toBe(true);
    expect(() => ca.status(undefined)).toThrow(/needs a node certificate/);
  });

  it('renews a certificate once less than a third of its life is left', () => {
    expect(shouldRenew(50, 90)).toBe(false);
    expect(shouldRenew(29, 90)).toBe(true);
    expect(shouldRenew(-1, 90)).toBe(true);
  });
});
