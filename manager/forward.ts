// Leader-only services on every manager. Writes go through the Raft leader, so a follower that
// receives a call of such a service passes it to the leader and relays the answer: the client
// never needs to know who leads. Who called travels with a forwarded call in metadata, which the
// leader trusts only from another manager of the cluster (a manager certificate); everyone else's
// metadata is ignored.
import * as grpc from '@grpc/grpc-js';
import { peerIdentity, TLS_CHANNEL_OPTIONS, type NodeIdentity } from '../common/certs.js';
import { backoffMs, isNotProposed, LEADER_WAIT_MS, notProposed, unavailableNotProposed } from '../common/leader-retry.js';

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
  /**
   * How long a leader-only call waits for a leader while none is known or reachable, or while the
   * leader answers that it proposed nothing (default LEADER_WAIT_MS; never past the call's deadline).
   */
  leaderWaitMs?: number;
  /** Calls on the local socket come from root on this host (LOCAL_ADMIN). */
  local: boolean;
  /**
   * Maps an error thrown by a handler to a gRPC status. A status marked not-proposed
   * (common/leader-retry.ts) says that nothing of the call reached the log: the call is then made
   * again, here or on the leader, once there is one. Mark only what the handler guarantees: e.g. a
   * NotLeaderError from a handler that proposes once, as its last step.
   */
  toStatus: (err: unknown) => Partial<grpc.StatusObject>;
}

const NO_LEADER = 'no manager leads the cluster right now (an election is under way, or the cluster lost its quorum of managers)';
/** Time kept back from the caller's deadline, so that the answer of a wait reaches it before the deadline does. */
const DEADLINE_MARGIN_MS = 200;

type Outcome = { res: unknown } | { status: Partial<grpc.StatusObject> };

/**
 * Builds a grpc-js implementation of a service whose methods are all unary: each call is
 * authorized, then either handled here or, for leader-only methods on a follower, forwarded to
 * the leader with the caller's identity.
 *
 * A leader-only call that finds no leader waits for one (`leaderWaitMs`, with backoff) and is then
 * handled or forwarded, but only as long as nothing of it was proposed: "no leader known", "the
 * leader cannot be reached yet" (the channel to it is not connected: the request never left) and an
 * answer marked not-proposed (see ServiceOptions.toStatus) are waited out; any other failure,
 * UNAVAILABLE included, is answered as it came, its code and mark relayed, because the write may
 * have been applied.
 */
export function leaderService(def: grpc.ServiceDefinition, handlers: Record<string, AuthedHandler>, locator: LeaderLocator, opts: ServiceOptions): grpc.UntypedServiceImplementation {
  const clients = new Map<string, grpc.Client>();
  const clientFor = (addr: string): grpc.Client => {
    let c = clients.get(addr);
    if (!c) {
      c = new grpc.Client(addr, locator.credentials(), { ...TLS_CHANNEL_OPTIONS, 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20, 'grpc.enable_channelz': 0 });
      clients.set(addr, c);
    }
    return c;
  };
  const catchUpWaitMs = opts.catchUpWaitMs ?? CATCH_UP_WAIT_MS;
  const impl: grpc.UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(def)) {
    const handler = handlers[name];
    if (!handler) throw new Error(`leaderService: no handler for ${name}`);
    const leaderOnly = opts.leaderOnly(name);

    /** Runs the handler here. */
    const handle = async (call: Call, caller: NodeIdentity | undefined): Promise<Outcome> => {
      try {
        return { res: await handler(call.request, caller, call) };
      } catch (err) {
        return { status: opts.toStatus(err) };
      }
    };

    /** Passes the call to the leader at `addr` once the channel to it is connected. */
    const forward = async (call: Call, caller: NodeIdentity | undefined, addr: string, hops: number, until: number): Promise<Outcome> => {
      const client = clientFor(addr);
      // Not connected: the request would not leave; wait a little (the leader may be dead and the
      // election under way), then look again at who leads.
      if (!(await connected(client, Math.min(until, Date.now() + 250)))) return { status: unavailableNotProposed(`the leader at ${addr} cannot be reached (yet)`) };
      const md = new grpc.Metadata();
      md.set(FORWARDED_FOR, caller ? `${caller.nodeId}/${caller.role}/${caller.clusterId}` : '');
      md.set(HOPS, String(hops + 1));
      const deadline = call.getDeadline();
      return new Promise<Outcome>((resolve) => {
        client.makeUnaryRequest(
          method.path,
          method.requestSerialize,
          method.responseDeserialize,
          call.request,
          md,
          { deadline: deadline === Infinity ? Date.now() + 30_000 : deadline },
          (err, res) => resolve(err ? { status: relayed(err) } : { res }),
        );
      });
    };

    const route = async (call: Call, caller: NodeIdentity | undefined): Promise<Outcome> => {
      if (!leaderOnly) return handle(call, caller);
      const hops = Number(call.metadata.get(HOPS)[0] ?? 0);
      const deadline = call.getDeadline();
      const callDeadline = deadline instanceof Date ? deadline.getTime() : deadline;
      const until = Math.min(Date.now() + (opts.leaderWaitMs ?? LEADER_WAIT_MS), callDeadline - DEADLINE_MARGIN_MS);
      for (let attempt = 0; ; attempt++) {
        let outcome: Outcome;
        if (locator.isLeader() && locator.caughtUp?.() === false && !(await untilCaughtUp(locator, catchUpWaitMs)) && locator.isLeader()) {
          // Its store may lack acknowledged writes; it has been waited for long enough.
          return { status: unavailableNotProposed(`this manager was elected leader and is still applying the log after ${catchUpWaitMs} ms`) };
        }
        if (locator.isLeader()) {
          outcome = await handle(call, caller);
        } else {
          const addr = locator.leaderAddr();
          // Past the hop limit the managers disagree on who leads: answer, and let the client retry.
          if (hops >= MAX_HOPS) return { status: unavailableNotProposed(NO_LEADER) };
          outcome = addr ? await forward(call, caller, addr, hops, until) : { status: unavailableNotProposed(NO_LEADER) };
        }
        if ('res' in outcome || !isNotProposed(outcome.status)) return outcome;
        const left = until - Date.now();
        if (left <= 0) return outcome;
        await new Promise((r) => setTimeout(r, Math.min(backoffMs(attempt), left)));
      }
    };

    impl[name] = (call: Call, cb: grpc.sendUnaryData<unknown>) => {
      const caller = callerOf(call, opts.local);
      const refused = opts.authorize(name, caller);
      if (refused) {
        cb({ code: grpc.status.PERMISSION_DENIED, details: refused });
        return;
      }
      route(call, caller).then(
        (o) => ('res' in o ? cb(null, o.res) : cb(o.status)),
        (err: unknown) => cb({ code: grpc.status.INTERNAL, details: `${name}: ${err instanceof Error ? err.message : String(err)}` }),
      );
    };
  }
  return impl;
}

/** The status of a failed forwarded call, to answer with: its code, details and not-proposed mark. */
function relayed(err: grpc.ServiceError): Partial<grpc.StatusObject> {
  const status = { code: err.code, details: err.details };
  return isNotProposed(err) ? notProposed(status) : status;
}

/** Resolves whether the client's channel is connected (connecting it if idle), waiting until `until` at most. */
function connected(client: grpc.Client, until: number): Promise<boolean> {
  if (client.getChannel().getConnectivityState(true) === grpc.connectivityState.READY) return Promise.resolve(true);
  return new Promise((resolve) => client.waitForReady(until, (err) => resolve(!err)));
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
