// The Raft transport over gRPC: one long-lived client stream from this node to each peer
// (Raft.Stream), carrying batches of messages. Batching: the messages handed to one send() call go
// out as one RaftBatch per peer. Backpressure: when a stream's buffer is full
// (write() returns false) messages queue until 'drain', up to maxQueueBytes per peer; beyond that
// they are dropped — Raft tolerates loss, and the peer is reported unreachable so the leader stops
// pipelining to it. A broken stream is re-opened after a short back-off.
import * as grpc from '@grpc/grpc-js';
import { RaftBatch, RaftClient, RaftService, type RaftAck, type RaftMessage } from '../../proto/gen/tswarm/raft.js';
import type { Logger } from '../../common/logger.js';

export interface TransportOptions {
  /** Credentials for connections to peers (TLS in production; insecure in tests and benchmarks). */
  credentials: grpc.ChannelCredentials;
  /** Called when messages to a peer could not be delivered. */
  onUnreachable: (peer: number) => void;
  /**
   * Called when the connection to a peer broke (a stream failed with UNAVAILABLE): unlike a full
   * queue, a sign that the peer's process may have died (RaftCore.reportDisconnected).
   */
  onDisconnected?: (peer: number) => void;
  maxQueueBytes?: number;
  /** Extra channel options (swarmd checks peers by certificate identity, not host name). */
  channelOptions?: grpc.ChannelOptions;
  log?: Logger | undefined;
}

function approxSize(m: RaftMessage): number {
  let n = 64 + m.context.length + m.snapshotChunk.length;
  for (const e of m.entries) n += 24 + e.data.length;
  return n;
}

class Peer {
  private client: RaftClient;
  private stream: grpc.ClientWritableStream<RaftBatch> | undefined;
  private pending: RaftMessage[] = [];
  private pendingBytes = 0;
  private blocked = false;
  private reopenTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    readonly id: number,
    readonly addr: string,
    private readonly opts: TransportOptions,
  ) {
    this.client = new RaftClient(addr, opts.credentials, {
      ...opts.channelOptions,
      'grpc.keepalive_time_ms': 10_000,
      // Raft retransmits by itself; grpc-js's retry layer would only add work per message.
      'grpc.enable_retries': 0,
      'grpc.max_send_message_length': 64 << 20,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    });
  }

  enqueue(m: RaftMessage): void {
    const size = approxSize(m);
    if (this.pendingBytes + size > (this.opts.maxQueueBytes ?? 64 << 20)) {
      this.opts.onUnreachable(this.id);
      return;
    }
    this.pending.push(m);
    this.pendingBytes += size;
  }

  flush(): void {
    if (this.closed || this.blocked || this.pending.length === 0) return;
    const stream = this.openStream();
    const batch: RaftBatch = { messages: this.pending };
    this.pending = [];
    this.pendingBytes = 0;
    if (!stream.write(batch)) {
      this.blocked = true;
      stream.once('drain', () => {
        this.blocked = false;
        this.flush();
      });
    }
  }

  private openStream(): grpc.ClientWritableStream<RaftBatch> {
    if (this.stream) return this.stream;
    const stream = this.client.stream((err: grpc.ServiceError | null, _ack?: RaftAck) => {
      if (this.stream === stream) this.stream = undefined;
      this.blocked = false;
      if (this.closed) return;
      if (err) this.opts.log?.debug({ peer: this.id, err: err.message }, 'raft stream to peer ended');
      this.opts.onUnreachable(this.id);
      if (err?.code === grpc.status.UNAVAILABLE) this.opts.onDisconnected?.(this.id);
      if (this.pending.length > 0 && !this.reopenTimer) {
        this.reopenTimer = setTimeout(() => {
          this.reopenTimer = undefined;
          this.flush();
        }, 100);
      }
    });
    this.stream = stream;
    return stream;
  }

  close(): void {
    this.closed = true;
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    this.stream?.end();
    this.client.close();
  }
}

export class GrpcTransport {
  private readonly peers = new Map<number, Peer>();

  constructor(private readonly opts: TransportOptions) {}

  /** Adds or updates a peer's address. */
  setPeer(id: number, addr: string): void {
    const existing = this.peers.get(id);
    if (existing?.addr === addr) return;
    existing?.close();
    this.peers.set(id, new Peer(id, addr, this.opts));
  }

  removePeer(id: number): void {
    this.peers.get(id)?.close();
    this.peers.delete(id);
  }

  hasPeer(id: number): boolean {
    return this.peers.has(id);
  }

  /**
   * Sends at once, one batch per peer. The caller already batches: RaftNode hands over all the
   * messages of one Ready together, and a Ready covers every input of one turn of the event loop.
   * Sending at once matters for latency: a leader's appends leave before its own fsync.
   */
  send(messages: readonly RaftMessage[]): void {
    const touched = new Set<Peer>();
    for (const m of messages) {
      const peer = this.peers.get(m.to);
      if (peer) {
        peer.enqueue(m);
        touched.add(peer);
      } else {
        this.opts.onUnreachable(m.to);
      }
    }
    for (const p of touched) p.flush();
  }

  close(): void {
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
  }
}

/**
 * Adds the Raft service to a gRPC server; each received batch is handed to onMessages. With
 * `authorize`, a stream whose caller it refuses (e.g. no manager certificate) is ended at once.
 */
export function addRaftService(server: grpc.Server, onMessages: (messages: RaftMessage[]) => void, authorize?: (call: grpc.ServerReadableStream<RaftBatch, RaftAck>) => boolean): void {
  server.addService(RaftService, {
    stream: (call: grpc.ServerReadableStream<RaftBatch, RaftAck>, callback: grpc.sendUnaryData<RaftAck>) => {
      if (authorize && !authorize(call)) {
        callback({ code: grpc.status.PERMISSION_DENIED, details: 'raft: only managers of this cluster may replicate' });
        return;
      }
      call.on('data', (batch: RaftBatch) => onMessages(batch.messages));
      call.on('end', () => callback(null, {}));
      call.on('error', () => {
        /* the peer went away; it reconnects */
      });
    },
  });
}
