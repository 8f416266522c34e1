// Who made a call: the forwarding metadata is trusted only from a manager's certificate; the
// local socket is root on this host; without a certificate there is no identity.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { callerOf, leaderService, LOCAL_ADMIN, managersOnly, type LeaderLocator } from './forward.js';

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
