// The node's side of `service logs`: while the agent holds a session with the leader, it also
// listens for log subscriptions there (LogBroker.ListenSubscriptions) and answers each one on a
// PublishLogs stream of its own: first an empty message (the acknowledgement the broker waits
// for, so that a node that does not answer is reported instead of waited for), then the entries
// of the subscription's tasks as the executor reads them, batched; not following, a `close`
// message once every task's log was read to its end. A task without a container here (it never
// started, or was removed) has an empty log. See docs/logs.md.
import * as grpc from '@grpc/grpc-js';
import { LogBrokerClient, LogStream, type LogMessage, type PublishLogsMessage, type SubscriptionMessage } from '../../proto/gen/tswarm/logs.js';
import type { Logger } from '../../common/logger.js';
import { NoSuchContainerError, type Executor } from '../exec/executor.js';

export interface LogAgentOptions {
  executor: Pick<Executor, 'logs'>;
  credentials: () => grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  log: Logger;
  /** Wait before listening again after the stream failed while the session is up. */
  retryMs?: number;
  /** Entries per PublishLogs message at most. */
  batch?: number;
}

/** One subscription on this node: its publishing stream and the tasks it reads. */
class Publication {
  private readonly abort = new AbortController();
  private readonly started = new Set<string>();
  private readonly stream: grpc.ClientWritableStream<PublishLogsMessage>;
  private running = 0;
  private queue: LogMessage[] = [];
  private flushQueued = false;
  private ended = false;

  constructor(
    readonly id: string,
    private readonly follow: boolean,
    client: LogBrokerClient,
    private readonly opts: LogAgentOptions,
    private readonly onEnd: () => void,
  ) {
    this.stream = client.publishLogs((err) => {
      if (err && err.code !== grpc.status.CANCELLED) opts.log.warn({ subscription: id, err: err.details || err.message }, 'agent: publishing logs failed');
      this.end();
    });
    this.stream.write({ subscriptionId: id, messages: [], close: false });
  }

  /** Reads these tasks' logs (those not read yet) with the given tail. */
  add(taskIds: string[], tail: number | undefined): void {
    for (const id of taskIds) {
      if (this.started.has(id) || this.ended) continue;
      this.started.add(id);
      this.running++;
      void this.read(id, tail).finally(() => {
        this.running--;
        if (this.running === 0 && !this.follow) this.finish();
      });
    }
    if (taskIds.length === 0 && this.running === 0 && !this.follow) this.finish();
  }

  private async read(taskId: string, tail: number | undefined): Promise<void> {
    try {
      for await (const e of this.opts.executor.logs(taskId, { follow: this.follow, signal: this.abort.signal, ...(tail !== undefined ? { tail } : {}) })) {
        if (this.ended) return;
        this.queue.push({ context: { taskId, serviceId: '', serviceName: '', slot: 0, nodeId: '', nodeName: '' }, time: e.time, stream: e.stream === 'stderr' ? LogStream.LOG_STREAM_STDERR : LogStream.LOG_STREAM_STDOUT, data: e.log });
        if (this.queue.length >= (this.opts.batch ?? 256)) await this.flush();
        else this.scheduleFlush();
      }
    } catch (err) {
      if (!(err instanceof NoSuchContainerError)) this.opts.log.warn({ task: taskId, err: (err as Error).message }, 'agent: reading a container log failed');
    }
  }

  private scheduleFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      void this.flush();
    });
  }

  /** Sends what is queued; waits while the stream's buffer is full (the broker's flow control). */
  private async flush(): Promise<void> {
    if (this.queue.length === 0 || this.ended) return;
    const messages = this.queue;
    this.queue = [];
    if (!this.stream.write({ subscriptionId: this.id, messages, close: false })) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          this.stream.off('drain', done);
          this.abort.signal.removeEventListener('abort', done);
          resolve();
        };
        this.stream.once('drain', done);
        this.abort.signal.addEventListener('abort', done);
      });
    }
  }

  /** Not following: everything was read; send it and say so. */
  private finish(): void {
    if (this.ended) return;
    void this.flush().then(() => {
      if (this.ended) return;
      this.stream.write({ subscriptionId: this.id, messages: [], close: true });
      this.stream.end();
      this.ended = true;
      this.abort.abort();
      this.onEnd();
    });
  }

  /** The broker closed the subscription, or the session ended. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.abort.abort();
    this.stream.end();
    this.onEnd();
  }
}

export class LogAgent {
  private generation = 0;
  private client: LogBrokerClient | undefined;
  private listen: grpc.ClientReadableStream<SubscriptionMessage> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly pubs = new Map<string, Publication>();

  constructor(private readonly opts: LogAgentOptions) {}

  /** The session with the leader at `addr` is up: listen there. */
  attach(addr: string): void {
    this.detach();
    const gen = ++this.generation;
    this.client = new LogBrokerClient(addr, this.opts.credentials(), this.opts.channelOptions ?? {});
    this.open(gen, addr);
  }

  /** The session ended: stop listening and publishing. */
  detach(): void {
    this.generation++;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    this.listen?.cancel();
    this.listen = undefined;
    for (const p of [...this.pubs.values()]) p.end();
    this.pubs.clear();
    this.client?.close();
    this.client = undefined;
  }

  private open(gen: number, addr: string): void {
    const client = this.client;
    if (!client || gen !== this.generation) return;
    const stream = client.listenSubscriptions({});
    this.listen = stream;
    stream.on('data', (m: SubscriptionMessage) => this.handle(client, m));
    const again = (why: string): void => {
      if (gen !== this.generation || this.listen !== stream || this.retry) return;
      this.opts.log.debug({ manager: addr, err: why }, 'agent: log subscriptions stream ended; listening again');
      // The subscriptions it carried are gone with it (the broker reported this node).
      for (const p of [...this.pubs.values()]) p.end();
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.open(gen, addr);
      }, this.opts.retryMs ?? 1_000);
    };
    stream.on('error', (err: grpc.ServiceError) => again(err.details || err.message));
    stream.on('end', () => again('ended'));
  }

  private handle(client: LogBrokerClient, m: SubscriptionMessage): void {
    let p = this.pubs.get(m.id);
    if (m.close) {
      p?.end();
      return;
    }
    if (!p) {
      const pub = new Publication(m.id, m.options?.follow === true, client, this.opts, () => {
        if (this.pubs.get(m.id) === pub) this.pubs.delete(m.id);
      });
      p = pub;
      this.pubs.set(m.id, p);
    }
    p.add(m.taskIds, m.options?.tail);
  }
}
