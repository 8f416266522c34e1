// Who made a call: the forwarding metadata is trusted only from a manager's certificate; the
// local socket is root on this host; without a certificate there is no identity; the certificate
// is parsed once per connection. Leader-only calls: a new leader catches up first; a call that
// finds no leader waits for one and is forwarded (or made again) only while nothing of it was
// proposed; a call whose outcome is unknown is answered at once, unmarked.
import * as grpc from '@grpc/grpc-js';
import { TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createNodeKey, NodeCertProvider, TLS_CHANNEL_OPTIONS, type NodeIdentity } from '../common/certs.js';
import { InvalidArgumentError } from '../common/errors.js';
import { isNotProposed, retryWhileNotProposed } from '../common/leader-retry.js';
import { createRootCA, issueNodeCertificate } from './ca/ca.js';
import { controlStatus } from './controlapi/control.js';
import { LeadershipLostError, NotLeaderError } from './raft/errors.js';
import { callerOf, leaderService, LOCAL_ADMIN, managersOnly, type AuthedHandler, type LeaderLocator, type ServiceOptions } from './forward.js';

function call(subject: Record<string, string> | undefined, forwardedFor?: string): grpc.ServerUnaryCall<unknown, unknown> {
  const metadata = new grpc.Metadata();
  if (forwardedFor !== undefined) metadata.set('x-tswarm-forwarded-for', forwardedFor);
  return { metadata, getDeadline: () => Infinity, getAuthContext: () => (subject ? { sslPeerCertificate: { subject } } : {}) } as unknown as grpc.ServerUnaryCall<unknown, unknown>;
}

const manager = { CN: 'mgr1', OU: 'swarm-manager', O: 'c1' };
const worker = { CN: 'wrk1', OU: 'swarm-worker', O: 'c1' };

describe('callerOf', () => {
  it('takes the identity from the client certificate', () => {
    expect(callerOf(call(worker), false)).toEqual({ nodeId: 'wrk1', role: 'worker', clusterId: 'c1' });
    expect(callerOf(call(undefined), false)).toBeUndefined();
  });

  it('trusts forwarding metadata from managers only', () => {
    expect(callerOf(call(manager, 'wrk9/worker/c1'), false)).toEqual({ nodeId: 'wrk9', role: 'worker', clusterId: 'c1' });
    // A worker claiming to forward for a manager is still the worker.
    expect(callerOf(call(worker, 'mgr9/manager/c1'), false)).toEqual({ nodeId: 'wrk1', role: 'worker', clusterId: 'c1' });
    // A manager forwarding a call that had no certificate passes on no identity.
    expect(callerOf(call(manager, ''), false)).toBeUndefined();
    expect(callerOf(call(manager, 'x/admin/c1'), false)).toBeUndefined();
  });

  it('treats the local socket as root on the host, whatever the metadata says', () => {
    expect(callerOf(call(undefined, 'wrk9/worker/c1'), true)).toEqual(LOCAL_ADMIN);
  });

  it('lets only managers through the control API, saying why not', () => {
    expect(managersOnly('listNodes', { nodeId: 'm', role: 'manager', clusterId: 'c' })).toBeUndefined();
    expect(managersOnly('listNodes', { nodeId: 'w', role: 'worker', clusterId: 'c' })).toBe('node w is a worker; only managers may call the control API');
    expect(managersOnly('listNodes', undefined)).toMatch(/needs a manager certificate/);
  });
});

describe('leaderService on a leader that has not caught up', () => {
  const def = {
    Get: { path: '/t.S/Get', requestStream: false, responseStream: false, requestSerialize: () => Buffer.alloc(0), requestDeserialize: () => ({}), responseSerialize: () => Buffer.alloc(0), responseDeserialize: () => ({}) },
  } as unknown as grpc.ServiceDefinition;
  const serveWith = (locator: LeaderLocator, served: string[]) =>
    leaderService(def, { Get: () => (served.push('handled'), Promise.resolve('ok')) }, locator, {
      leaderOnly: () => true,
      authorize: () => undefined,
      local: true,
      catchUpWaitMs: 300,
      toStatus: (err) => ({ code: grpc.status.INTERNAL, details: String(err) }),
    });
  const callGet = (impl: grpc.UntypedServiceImplementation): Promise<{ err: Partial<grpc.StatusObject> | null; res: unknown }> =>
    new Promise((resolve) => (impl.Get as (c: unknown, cb: (err: Partial<grpc.StatusObject> | null, res?: unknown) => void) => void)(call(undefined), (err, res) => resolve({ err, res })));
  const locator = (caughtUp: () => boolean): LeaderLocator => ({ isLeader: () => true, caughtUp, leaderAddr: () => undefined, credentials: () => grpc.credentials.createInsecure() });

  it('holds a leader-only call until the store has caught up, then serves it', async () => {
    let caught = false;
    const served: string[] = [];
    const answer = callGet(serveWith(locator(() => caught), served));
    await new Promise((r) => setTimeout(r, 100));
    expect(served).toEqual([]); // not answered from a store that may lack committed writes
    caught = true;
    expect(await answer).toEqual({ err: null, res: 'ok' });
    expect(served).toEqual(['handled']);
  });

  it('answers UNAVAILABLE, saying why, if it does not catch up in time', async () => {
    const served: string[] = [];
    const { err } = await callGet(serveWith(locator(() => false), served));
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(err?.details).toMatch(/elected leader and is still applying the log after 300 ms/);
    expect(served).toEqual([]);
  });
});

// ---------------------------------------------------------------- over real gRPC

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v ?? null));
const parse = (b: Buffer): unknown => JSON.parse(b.toString()) as unknown;
const echoDef = {
  Put: { path: '/test.Echo/Put', requestStream: false, responseStream: false, requestSerialize: json, requestDeserialize: parse, responseSerialize: json, responseDeserialize: parse },
} as unknown as grpc.ServiceDefinition;

/** A gRPC server on loopback with one leaderService; stopped by `close`. */
async function serve(impl: grpc.UntypedServiceImplementation, creds = grpc.ServerCredentials.createInsecure()): Promise<{ addr: string; close: () => void }> {
  const server = new grpc.Server();
  server.addService(echoDef, impl);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
  return { addr: `127.0.0.1:${port}`, close: () => server.forceShutdown() };
}

function put(client: grpc.Client, req: unknown, timeoutMs = 10_000): Promise<{ err: grpc.ServiceError | null; res: unknown; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) =>
    client.makeUnaryRequest(echoDef.Put!.path, json, parse, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => resolve({ err, res, ms: Date.now() - t0 })),
  );
}

const insecure = (): grpc.ChannelCredentials => grpc.credentials.createInsecure();
const options = (toStatus: ServiceOptions['toStatus'] = controlStatus): ServiceOptions => ({ leaderOnly: () => true, authorize: () => undefined, local: true, toStatus, leaderWaitMs: 3_000 });

describe('leaderService while no manager leads', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanup.splice(0)) c();
  });

  /** A leader that runs `handler`, and a follower whose idea of the leader the test sets. */
  async function cluster(handler: AuthedHandler, follower: Partial<ServiceOptions> = {}): Promise<{ client: grpc.Client; setLeader: (addr: string | undefined) => void; leaderAddr: string }> {
    const leader = await serve(leaderService(echoDef, { Put: handler }, { isLeader: () => true, leaderAddr: () => undefined, credentials: insecure }, options()));
    let current: string | undefined;
    const f = await serve(leaderService(echoDef, { Put: () => Promise.reject(new Error('a follower handles nothing')) }, { isLeader: () => false, leaderAddr: () => current, credentials: insecure }, { ...options(), ...follower }));
    const client = new grpc.Client(f.addr, insecure());
    cleanup.push(leader.close, f.close, () => client.close());
    return { client, setLeader: (a) => (current = a), leaderAddr: leader.addr };
  }

  it('waits for the election, then forwards the call to the new leader', async () => {
    const calls: unknown[] = [];
    const c = await cluster((req) => (calls.push(req), Promise.resolve({ done: req })));
    setTimeout(() => c.setLeader(c.leaderAddr), 300);
    const r = await put(c.client, 'create x');
    expect(r.err).toBeNull();
    expect(r.res).toEqual({ done: 'create x' });
    expect(r.ms).toBeGreaterThanOrEqual(280);
    expect(calls).toEqual(['create x']);
  });

  it('waits while the known leader cannot be reached (it died; the request never left), then forwards to the next', async () => {
    const calls: unknown[] = [];
    const c = await cluster((req) => (calls.push(req), Promise.resolve('ok')));
    const dead = await serve(leaderService(echoDef, { Put: () => Promise.resolve('dead') }, { isLeader: () => true, leaderAddr: () => undefined, credentials: insecure }, options()));
    dead.close();
    c.setLeader(dead.addr);
    setTimeout(() => c.setLeader(c.leaderAddr), 400);
    const r = await put(c.client, 'x');
    expect(r.err).toBeNull();
    expect(r.res).toBe('ok');
    expect(calls).toHaveLength(1);
  });

  it('makes the call again when the leader refused its proposal on the spot (nothing was proposed)', async () => {
    let n = 0;
    const c = await cluster(() => (++n === 1 ? Promise.reject(new NotLeaderError(1, 2)) : Promise.resolve(`applied on attempt ${n}`)));
    c.setLeader(c.leaderAddr);
    const r = await put(c.client, 'x');
    expect(r.err).toBeNull();
    expect(r.res).toBe('applied on attempt 2');
  });

  it('does not make again a call whose proposal may have happened: UNAVAILABLE, unmarked, at once', async () => {
    let n = 0;
    const c = await cluster(() => (n++, Promise.reject(new LeadershipLostError(1))));
    c.setLeader(c.leaderAddr);
    const r = await put(c.client, 'x');
    expect(r.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.err?.details).toMatch(/outcome is unknown/);
    expect(isNotProposed(r.err)).toBe(false);
    expect(n).toBe(1);
    expect(r.ms).toBeLessThan(1_000);
  });

  it('relays the leader’s status with its code (a validation error is not retried)', async () => {
    const c = await cluster(() => Promise.reject(new InvalidArgumentError('spec.name', 'is required')));
    c.setLeader(c.leaderAddr);
    const r = await put(c.client, 'x');
    expect(r.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(r.err?.details).toBe('spec.name: is required');
  });

  it('gives up after leaderWaitMs with UNAVAILABLE marked not-proposed, and so does a client that retries', async () => {
    const c = await cluster(() => Promise.resolve('never'), { leaderWaitMs: 300 });
    const r = await put(c.client, 'x');
    expect(r.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.err?.details).toMatch(/no manager leads the cluster right now/);
    expect(isNotProposed(r.err)).toBe(true);
    expect(r.ms).toBeGreaterThanOrEqual(250);
    expect(r.ms).toBeLessThan(2_000);
    // The client's own retry (as swarmctl's): the leader arrives during it.
    setTimeout(() => c.setLeader(c.leaderAddr), 200);
    const res = await retryWhileNotProposed(async () => {
      const a = await put(c.client, 'y');
      if (a.err) throw a.err;
      return a.res;
    });
    expect(res).toBe('never');
  });
});

describe('the caller of a call over TLS', () => {
  it('is parsed from the certificate once per connection, not per call', async () => {
    const root = await createRootCA();
    const nodeCerts = async (nodeId: string, role: 'manager' | 'worker'): Promise<NodeCertProvider> => {
      const key = await createNodeKey();
      return new NodeCertProvider({ caPem: root.certPem, keyPem: key.keyPem, certPem: await issueNodeCertificate(root, key.csrPem, { nodeId, role, clusterId: 'c1' }) });
    };
    const server = await nodeCerts('server0001', 'manager');
    const callers: (NodeIdentity | undefined)[] = [];
    const s = await serve(
      leaderService(echoDef, { Put: (_req, caller) => (callers.push(caller), Promise.resolve('ok')) }, { isLeader: () => true, leaderAddr: () => undefined, credentials: insecure }, { ...options(), local: false }),
      server.serverCredentials(),
    );
    const parsed = vi.spyOn(TLSSocket.prototype, 'getPeerCertificate');
    const serverSide = (): number => parsed.mock.contexts.filter((sock) => (sock as { _tlsOptions?: { isServer?: boolean } })._tlsOptions?.isServer).length;
    const clients: grpc.Client[] = [];
    try {
      const mgr = new grpc.Client(s.addr, (await nodeCerts('mgr0000001', 'manager')).channelCredentials(), TLS_CHANNEL_OPTIONS);
      clients.push(mgr);
      for (let i = 0; i < 10; i++) expect((await put(mgr, { i })).err).toBeNull();
      expect(serverSide()).toBe(1);
      // Another connection (another certificate) is parsed on its own.
      const wrk = new grpc.Client(s.addr, (await nodeCerts('wrk0000001', 'worker')).channelCredentials(), TLS_CHANNEL_OPTIONS);
      clients.push(wrk);
      for (let i = 0; i < 5; i++) expect((await put(wrk, { i })).err).toBeNull();
      expect(serverSide()).toBe(2);
      expect(callers.map((c) => c?.nodeId)).toEqual([...Array<string>(10).fill('mgr0000001'), ...Array<string>(5).fill('wrk0000001')]);
      expect(callers[14]?.role).toBe('worker');
    } finally {
      parsed.mockRestore();
      for (const c of clients) c.close();
      s.close();
    }
  });
});
