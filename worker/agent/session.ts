// The agent's session with the dispatcher on the leader: Session (which names the managers),
// heartbeats at the period the dispatcher asks for, the Assignments stream, and status updates
// sent on the session. When the session ends it moves to another manager: first to the leader a
// manager named (in the error's metadata), then through the known managers in turn.
import type { PeerPath } from '../../proto/gen/tswarm/types.js';
import * as grpc from '@grpc/grpc-js';
import { DispatcherClient, type AssignmentsMessage, type SessionMessage, type TaskStatusUpdate } from '../../proto/gen/tswarm/dispatcher.js';
import type { NodeDescription } from '../../proto/gen/tswarm/types.js';
import { TswarmError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';

export class SessionError extends TswarmError {}

export interface SessionOptions {
  /** Managers' host:port, in the order to try them. */
  managers: () => string[];
  /** Told when a session names the managers (to keep them for the next start). */
  onManagers?: (addrs: string[]) => void;
  credentials: () => grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  description: NodeDescription;
  /** Each message of the Assignments stream, in order. */
  onAssignments: (msg: AssignmentsMessage) => void;
  /** A session was established with the manager at `addr`. */
  onEstablished: (addr: string) => void;
  /** The session ended (before the next one is tried). */
  onEnded: () => void;
  /** What each heartbeat reports of the node's overlay paths (paths.ts); none: nothing. */
  peerPaths?: () => PeerPath[];
  /** The sequence of the last assignments message whose service endpoints are in force (discovery.ts). */
  appliedSequence?: () => number;
  log: Logger;
}

export class Session {
  private stopped = false;
  private sessionId = '';
  private client: DispatcherClient | undefined;
  private preferred: string | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private beatNow: (() => void) | undefined;

  constructor(private readonly opts: SessionOptions) {}

  start(): void {
    this.loop = this.sessionLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.client?.close();
    await this.loop;
  }

  /** Sends a heartbeat now (what it reports changed: a task's stop may wait for it), not at the period. */
  nudge(): void {
    this.beatNow?.();
  }

  /** Sends status updates on the present session. */
  async updateTaskStatus(updates: TaskStatusUpdate[]): Promise<'sent' | 'failed' | 'no-session'> {
    const client = this.client;
    if (!client || !this.sessionId) return 'no-session';
    return new Promise((resolve) =>
      client.updateTaskStatus({ sessionId: this.sessionId, updates }, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err) => resolve(err ? 'failed' : 'sent')),
    );
  }

  private async sessionLoop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      // The leader a manager named is tried next; otherwise the known managers in turn.
      const addrs = this.opts.managers();
      const addr = this.preferred ?? addrs[attempt % Math.max(1, addrs.length)];
      this.preferred = undefined;
      if (!addr) {
        await this.sleep(1_000);
        continue;
      }
      try {
        await this.runSession(addr);
        attempt = 0;
      } catch (err) {
        const e = err as grpc.ServiceError;
        const leader = e.metadata?.get('leader')[0];
        if (typeof leader === 'string' && leader) this.preferred = leader;
        else attempt++;
        if (!this.stopped) this.opts.log.debug({ manager: addr, err: e.details || e.message }, 'agent: session ended; trying again');
      }
      this.sessionId = '';
      this.client?.close();
      this.client = undefined;
      if (!this.stopped) await this.sleep(this.preferred ? 50 : 300);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** One session with one manager; resolves or rejects when it ends. */
  private runSession(addr: string): Promise<void> {
    const client = new DispatcherClient(addr, this.opts.credentials(), this.opts.channelOptions ?? {});
    this.client = client;
    return new Promise<void>((resolve, reject) => {
      let heartbeat: NodeJS.Timeout | undefined;
      let assignments: grpc.ClientReadableStream<AssignmentsMessage> | undefined;
      let ended = false;
      const end = (err?: unknown): void => {
        if (ended) return;
        ended = true;
        this.beatNow = undefined;
        clearInterval(onStop);
        this.opts.onEnded();
        if (heartbeat) clearTimeout(heartbeat);
        session.cancel();
        assignments?.cancel();
        if (err) reject(err instanceof Error ? err : new SessionError('session failed'));
        else resolve();
      };
      const onStop = setInterval(() => this.stopped && end(), 200);
      const session = client.session({ description: this.opts.description, sessionId: '' });
      session.on('error', (err) => end(err));
      session.on('end', () => end());
      session.on('data', (m: SessionMessage) => {
        if (this.sessionId) return;
        this.sessionId = m.sessionId;
        const managers = m.managers.map((p) => p.addr).filter(Boolean);
        if (managers.length > 0) this.opts.onManagers?.(managers);
        this.opts.log.info({ manager: addr, session: m.sessionId }, 'agent: session established');
        // One heartbeat in flight at a time; a nudge meanwhile sends another as soon as it is answered.
        let inFlight = false;
        let again = false;
        const beat = (): void => {
          if (heartbeat) clearTimeout(heartbeat);
          heartbeat = undefined;
          inFlight = true;
          const req = { sessionId: this.sessionId, peerPaths: this.opts.peerPaths?.() ?? [], appliedSequence: this.opts.appliedSequence?.() ?? 0 };
          client.heartbeat(req, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err, res) => {
            inFlight = false;
            if (err) return end(err);
            if (ended) return;
            if (again) {
              again = false;
              return beat();
            }
            heartbeat = setTimeout(beat, Math.max(100, Number(res.periodMs) || 1000));
          });
        };
        this.beatNow = () => {
          if (inFlight) again = true;
          else if (!ended) beat();
        };
        beat();
        assignments = client.assignments({ sessionId: this.sessionId });
        assignments.on('data', (msg: AssignmentsMessage) => this.opts.onAssignments(msg));
        assignments.on('error', (err) => end(err));
        this.opts.onEstablished(addr);
      });
    });
  }
}
