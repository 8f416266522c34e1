// Leader-only services on every manager. Writes go through the Raft leader, so a follower that
// receives a call of such a service passes it to the leader and relays the answer: the client
// never needs to know who leads. Who called travels with a forwarded call in metadata, which the
// leader trusts only from another manager of the cluster (a manager certificate); everyone else's
// metadata is ignored.
import * as grpc from '@grpc/grpc-js';
import { peerIdentity, TLS_CHANNEL_OPTIONS, type NodeIdentity } from '../common/certs.js';

const FORWARDED_FOR = 'x-tswarm-forwarded-for';
const HOPS = 'x-tswarm-hops';
const MAX_HOPS = 3;
/** How long a leader-only call waits for a new leader to catch up (see LeaderLocator.caughtUp). */
const CATCH_UP_WAIT_MS = 5_000;

/** The caller of a call that arrived on the local control socket: root on a manager's host. */
export const LOCAL_ADMIN: NodeIdentity = { nodeId: 'local', role: 'manager', clusterId: '' };

export interface LeaderLocator {
  isLeader(): boolean;
  /**
   * Whether this manager, while it leads, has applied everything of earlier terms to its store.
   * A leader just elected (or just restarted) is not yet: its store may lack committed writes, so
   * leader-only calls wait for it (up to CATCH_UP_WAIT_MS). Absent: always caught up.
   */
  caughtUp?(): boolean;
  /** host:port of the leader's gRPC listener; undefined while there is none. */
  leaderAddr(): string | undefined;
  /** Credentials for calls to other managers (this manager's certificate). */
  credentials(): grpc.ChannelCredentials;
}

type Call = grpc.ServerUnaryCall<unknown, unknown>;

/**
 * Who made the call: from the forwarding metadata if a manager forwarded it, from the client
 * certificate otherwise, LOCAL_ADMIN on the local socket (`local` set), undefined when unknown.
 */
export function callerOf(call: Call, local: boolean): NodeIdentity | undefined {
  const peer = local ? LOCAL_ADMIN : peerIdentity(call);
  const fwd = call.metadata.get(FORWARDED_FOR)[0];
  if (peer?.role === 'manager' && !local && typeof fwd === 'string') {
    if (fwd === '') return undefined;
    const [nodeId, role, clusterId] = fwd.split('/');
    if (!nodeId || (role !== 'manager' && role !== 'worker')) return undefined;
    return { nodeId, role, clusterId: clusterId ?? '' };
  }
  return peer;
}

/** A unary handler that receives the caller's identity. */
export type AuthedHandler = (request: unknown, caller: NodeIdentity | undefined, call: Call) => Promise<unknown>;

export interface ServiceOptions {
  /** The methods (by their camelCase name in the generated service) that must run on the leader. */
  leaderOnly: (method: string) => boolean;
  /** Decides whether the caller may call the method; returns the reason to refuse, or undefined. */
  authorize: (method: string, caller: NodeIdentity | undefined) => string | undefined;
  /** How long a leader-only call waits for a new leader to catch up (default CATCH_UP_WAIT_MS). */
  catchUpWaitMs?: number;
  /** Calls on the local socket come from root on this host (LOCAL_ADMIN). */
  local: boolean;
  /** Maps an error thrown by a handler to a gRPC status. */
  toStatus: (err: unknown) => Partial<grpc.StatusObject>;
}

/**
 * Builds a grpc-js implementation of a service whose methods are all unary: each call is
 * authorized, then either handled here or, for leader-only methods on a follower, forwarded to
 * the leader with the caller's identity.
 */
export function leaderService(def: grpc.ServiceDefinition, handlers: Record<string, AuthedHandler>, locator: LeaderLocator, opts: ServiceOptions): grpc.UntypedServiceImplementation {
  const clients = new Map<string, grpc.Client>();
  const clientFor = (addr: string): grpc.Client => {
    let c = clients.get(addr);
    if (!c) {
      c = new grpc.Client(addr, locator.credentials(), { ...TLS_CHANNEL_OPTIONS, 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 });
      clients.set(addr, c);
    }
    return c;
  };
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(def)) {
    const handler = handlers[name];
    if (!handler) throw new Error(`leaderService: no handler for ${name}`);
    const serve = (call: Call, cb: grpc.sendUnaryData<unknown>, caller: NodeIdentity | undefined): void => {
      if (opts.leaderOnly(name) && !locator.isLeader()) {
        const addr = locator.leaderAddr();
        const hops = Number(call.metadata.get(HOPS)[0] ?? 0);
        if (!addr || hops >= MAX_HOPS) {
          cb({ code: grpc.status.UNAVAILABLE, details: 'no manager leads the cluster right now (an election is under way, or the cluster lost its quorum of managers)' });
          return;
        }
        const md = new grpc.Metadata();
        md.set(FORWARDED_FOR, caller ? `${caller.nodeId}/${caller.role}/${caller.clusterId}` : '');
        md.set(HOPS, String(hops + 1));
        const deadline = call.getDeadline();
        clientFor(addr).makeUnaryRequest(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          call.request,
          md,
          { deadline: deadline === Infinity ? Date.now() + 30_000 : deadline },
          (err, res) => (err ? cb({ code: err.code, details: err.details }) : cb(null, res)),
        );
        return;
      }
      handler(call.request, caller, call).then(
        (res) => cb(null, res),
        (err: unknown) => cb(opts.toStatus(err)),
      );
    };
    impl[name] = (call: Call, cb: grpc.sendUnaryData<unknown>) => {
      const caller = callerOf(call, opts.local);
      const refused = opts.authorize(name, caller);
      if (refused) {
        cb({ code: grpc.status.PERMISSION_DENIED, details: refused });
        return;
      }
      if (opts.leaderOnly(name) && locator.isLeader() && locator.caughtUp?.() === false) {
        const waitMs = opts.catchUpWaitMs ?? CATCH_UP_WAIT_MS;
        void untilCaughtUp(locator, waitMs).then((ok) => {
          if (ok || !locator.isLeader()) serve(call, cb, caller);
          else cb({ code: grpc.status.UNAVAILABLE, details: `this manager was elected leader and is still applying the log after ${waitMs} ms` });
        });
        return;
      }
      serve(call, cb, caller);
    };
  }
  return impl;
}

/** Resolves true once the locator is caught up, false if it stops leading or `waitMs` pass. */
async function untilCaughtUp(locator: LeaderLocator, waitMs: number): Promise<boolean> {
  const end = Date.now() + waitMs;
  while (locator.isLeader() && locator.caughtUp?.() === false) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return locator.isLeader();
}

/** Only managers (certificate or local socket). */
export function managersOnly(_method: string, caller: NodeIdentity | undefined): string | undefined {
  if (caller?.role === 'manager') return undefined;
  return caller ? `node ${caller.nodeId} is a ${caller.role}; only managers may call the control API` : 'the control API needs a manager certificate (or the local socket)';
}

/**
 * Ends a server stream with a status. Not `destroy(err)`: grpc-js then sends no status at all and
 * the client's call hangs (an agent would wait forever on a follower instead of moving on).
 */
export function endStream(stream: grpc.ServerWritableStream<unknown, unknown>, st: Partial<grpc.StatusObject>): void {
  stream.emit('error', Object.assign(new Error(st.details), st));
}
