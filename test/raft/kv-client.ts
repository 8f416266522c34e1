// A client of the Raft KV replicas (kv-server.ts) for lab tests and benchmarks: finds the leader,
// follows "not leader" hints, and reports whether an operation's outcome is known.
import * as grpc from '@grpc/grpc-js';
import { RaftKVClient, type KvGetResponse, type KvPutResponse, type KvPutStreamRequest, type KvPutStreamResponse, type KvStatusResponse } from '../../proto/gen/tswarm/raftkv.js';

export type Outcome<T> = { ok: true; value: T } | { ok: false; unknown: boolean; error: string };

export class KvCluster {
  private readonly clients = new Map<number, RaftKVClient>();
  leader: number;

  /** addrs: Raft id → KV address. */
  constructor(private readonly addrs: Map<number, string>) {
    // Retries are ours to decide (an unknown outcome must stay unknown); grpc-js's own retry layer
    // only adds work per call.
    for (const [id, addr] of addrs) this.clients.set(id, new RaftKVClient(addr, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0 }));
    this.leader = [...addrs.keys()][0]!;
  }

  ids(): number[] {
    return [...this.addrs.keys()];
  }

  private call<T>(id: number, fn: (c: RaftKVClient, deadline: grpc.Deadline, cb: (err: grpc.ServiceError | null, res: T) => void) => void, timeoutMs: number): Promise<T> {
    const c = this.clients.get(id)!;
    return new Promise((resolve, reject) => fn(c, Date.now() + timeoutMs, (err, res) => (err ? reject(err) : resolve(res))));
  }

  status(id: number, timeoutMs = 1000): Promise<KvStatusResponse> {
    return this.call<KvStatusResponse>(id, (c, deadline, cb) => c.status({}, new grpc.Metadata(), { deadline }, cb), timeoutMs);
  }

  /**
   * One write, retried on other replicas while it is certainly not taken (not leader, cannot
   * connect) until `deadlineMs`; an error after the request may have reached the leader makes the
   * outcome unknown.
   */
  async put(key: string, value: Buffer, deadlineMs = 5000): Promise<Outcome<KvPutResponse>> {
    return this.withLeader((id, t) => this.call<KvPutResponse>(id, (c, deadline, cb) => c.put({ key, value }, new grpc.Metadata(), { deadline }, cb), t), deadlineMs);
  }

  /**
   * The same write as `put`, over one long-lived stream per replica (PutStream) shared by every
   * caller: a stream's message costs far less than a unary call in grpc-js. Same outcomes and
   * retries as `put`.
   */
  async putStreamed(key: string, value: Buffer, deadlineMs = 5000): Promise<Outcome<KvPutResponse>> {
    return this.withLeader((id, t) => this.streamPut(id, key, value, t), deadlineMs);
  }

  private readonly streams = new Map<number, PutStream>();
  private nextRequest = 1;

  private streamOf(id: number): PutStream {
    const open = this.streams.get(id);
    if (open) return open;
    const s: PutStream = { call: this.clients.get(id)!.putStream(), pending: new Map() };
    const fail = (err: grpc.ServiceError): void => {
      if (this.streams.get(id) === s) this.streams.delete(id);
      for (const p of s.pending.values()) p.reject(err);
      s.pending.clear();
    };
    s.call.on('data', (r: KvPutStreamResponse) => {
      const p = s.pending.get(r.id);
      if (!p) return;
      s.pending.delete(r.id);
      if (!r.error) return p.resolve({ index: r.index });
      // The shapes `withLeader` reads from a unary call's error.
      const metadata = new grpc.Metadata();
      if (r.notLeader) metadata.set('leader', String(r.leader));
      p.reject(serviceError(r.notLeader ? grpc.status.FAILED_PRECONDITION : grpc.status.UNAVAILABLE, r.error, metadata));
    });
    s.call.on('error', (err: grpc.ServiceError) => fail(err));
    s.call.on('end', () => fail(serviceError(grpc.status.UNAVAILABLE, 'stream ended')));
    this.streams.set(id, s);
    return s;
  }

  private streamPut(id: number, key: string, value: Buffer, timeoutMs: number): Promise<KvPutResponse> {
    const s = this.streamOf(id);
    const reqId = this.nextRequest++;
    return new Promise<KvPutResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        s.pending.delete(reqId);
        reject(serviceError(grpc.status.DEADLINE_EXCEEDED, 'deadline exceeded'));
      }, timeoutMs);
      s.pending.set(reqId, {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      s.call.write({ id: reqId, put: { key, value } });
    });
  }

  async get(key: string, deadlineMs = 5000): Promise<Outcome<KvGetResponse>> {
    return this.withLeader((id, t) => this.call<KvGetResponse>(id, (c, deadline, cb) => c.get({ key }, new grpc.Metadata(), { deadline }, cb), t), deadlineMs);
  }

  private async withLeader<T>(op: (id: number, timeoutMs: number) => Promise<T>, deadlineMs: number): Promise<Outcome<T>> {
    const end = Date.now() + deadlineMs;
    let lastError = 'no attempt';
    let tried = 0;
    while (Date.now() < end) {
      const id = this.leader;
      try {
        const value = await op(id, Math.max(50, Math.min(2000, end - Date.now())));
        return { ok: true, value };
      } catch (e) {
        const err = e as grpc.ServiceError;
        lastError = `node ${id}: ${err.details || err.message}`;
        if (err.code === grpc.status.FAILED_PRECONDITION) {
          const hint = Number(err.metadata?.get('leader')[0] ?? 0);
          this.leader = hint !== 0 && this.addrs.has(hint) ? hint : this.next(id);
          if (hint === 0) await sleep(20);
          continue;
        }
        if (err.code === grpc.status.UNAVAILABLE && /connect|No connection|ECONNREFUSED/i.test(err.details ?? '')) {
          // Never reached the server: certainly not taken.
          this.leader = this.next(id);
          if (++tried % this.addrs.size === 0) await sleep(20);
          continue;
        }
        return { ok: false, unknown: true, error: lastError };
      }
    }
    return { ok: false, unknown: true, error: `deadline passed; last error: ${lastError}` };
  }

  private next(id: number): number {
    const ids = this.ids();
    return ids[(ids.indexOf(id) + 1) % ids.length]!;
  }

  close(): void {
    for (const s of this.streams.values()) s.call.cancel();
    this.streams.clear();
    for (const c of this.clients.values()) c.close();
  }
}

/** An error shaped like a failed unary call's (what `withLeader` reads). */
function serviceError(code: grpc.status, details: string, metadata = new grpc.Metadata()): grpc.ServiceError {
  const err: grpc.ServiceError = Object.assign(new Error(details), { code, details, metadata });
  return err;
}

interface PutStream {
  call: grpc.ClientDuplexStream<KvPutStreamRequest, KvPutStreamResponse>;
  pending: Map<number, { resolve: (r: KvPutResponse) => void; reject: (e: grpc.ServiceError) => void }>;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
