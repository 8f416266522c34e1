// The driver of swarm-dnsproxy (native/src/dnsproxy.c): the process that holds the embedded DNS
// server's sockets (127.0.0.11, as Docker's) inside the containers' network namespaces. Node
// cannot open a socket in another namespace; the proxy can, and relays each client's message to
// us as a query and our answer back to the client. The resolving is the caller's (onQuery).
//
// One proxy per node. Frames both ways (the protocol is described at the top of dnsproxy.c):
//   u32 length (of what follows) · u8 type · u32 id · payload, big-endian.
// The proxy handles our frames in order and answers each request (attach, detach, stats) before
// reading the next, so the calls waiting for an answer are a queue: the next answer is the
// oldest call's.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { InvalidArgumentError, TswarmError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { nativeBinary } from '../exec/runtime.js';

/** The frame types (dnsproxy.c). */
export const FrameType = {
  attach: 1,
  attached: 2,
  error: 3,
  detach: 4,
  detached: 5,
  query: 6,
  answer: 7,
  stats: 8,
  statsAnswer: 9,
} as const;

/** The largest length field of a frame (the 4 bytes of the field itself not counted). */
export const MAX_FRAME = 70_000;
/** The largest DNS message: TCP's 2-byte length. */
export const MAX_MESSAGE = 65_535;
const HEAD = 9; // u32 length · u8 type · u32 id
const CLOSE_GRACE_MS = 2_000;

export interface Frame {
  type: number;
  id: number;
  /** A view into the bytes read: copy it to keep it past the frame's handling if it is large. */
  payload: Buffer;
}

/** A client's DNS message, from the proxy; answer it with DnsProxy.answer(id, ...) within 5 s. */
export interface ProxyQuery {
  /** The query id, unique among the outstanding ones (the proxy's). */
  id: number;
  /** The endpoint's key, as given to attach. */
  key: number;
  transport: 'udp' | 'tcp';
  message: Buffer;
}

export interface ProxyStats {
  /** Messages received from clients since the start. */
  queries: number;
  /** Of those, the ones the proxy could not pass on (4096 outstanding, or its output full). */
  dropped: number;
  endpoints: number;
  outstanding: number;
}

/** The proxy process failed: it could not start, died, broke the protocol, or was closed. */
export class DnsProxyError extends TswarmError {}

/** An attach failed inside the proxy: the errno of the failing call and its message, which names
 * the step and the namespace's path ("setns /proc/1/ns/net: Operation not permitted"). */
export class DnsAttachError extends TswarmError {
  /** The errno's name (ENOENT), or its number as text when unknown. */
  readonly code: string;

  constructor(
    readonly key: number,
    readonly netnsPath: string,
    readonly errno: number,
    readonly problem: string,
  ) {
    super(`dns proxy: attaching endpoint ${key} (${netnsPath}): ${problem}`);
    this.code = Object.entries(constants.errno).find(([, n]) => n === errno)?.[0] ?? String(errno);
  }
}

export function encodeFrame(type: number, id: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const f = Buffer.allocUnsafe(HEAD + payload.length);
  f.writeUInt32BE(5 + payload.length, 0);
  f.writeUInt8(type, 4);
  f.writeUInt32BE(id, 5);
  payload.copy(f, HEAD);
  return f;
}

/** Cuts a byte stream into frames: a frame may arrive in pieces, or several in one chunk. */
export class FrameParser {
  private buf: Buffer = Buffer.alloc(0);

  /** The frames completed by `chunk`, in order; throws a DnsProxyError on a malformed length. */
  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const frames: Frame[] = [];
    let off = 0;
    while (this.buf.length - off >= 4) {
      const len = this.buf.readUInt32BE(off);
      if (len < 5 || len > MAX_FRAME) throw new DnsProxyError(`dns proxy: a frame of length ${len} (must be 5 to ${MAX_FRAME})`);
      if (this.buf.length - off < 4 + len) break;
      frames.push({ type: this.buf.readUInt8(off + 4), id: this.buf.readUInt32BE(off + 5), payload: this.buf.subarray(off + HEAD, off + 4 + len) });
      off += 4 + len;
    }
    this.buf = this.buf.subarray(off);
    return frames;
  }

  /** Bytes held of a frame not yet complete. */
  get pending(): number {
    return this.buf.length;
  }
}

export interface DnsProxyOptions {
  /** The binary; default the checkout's native/build/swarm-dnsproxy. */
  bin?: string;
  /** Every client message; called synchronously as frames arrive, so it must not throw (it is logged if it does). */
  onQuery: (q: ProxyQuery) => void;
  log?: Logger;
  /** Called once if the process dies without close() (its pending calls are rejected with the same error). */
  onExit?: (err: DnsProxyError) => void;
}

interface Call {
  /** The answer types that end this call. */
  answers: readonly number[];
  id: number;
  resolve: (f: Frame) => void;
  reject: (err: Error) => void;
}

type Child = ChildProcessByStdio<Writable, Readable, Readable>;

function checkU32(field: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new InvalidArgumentError(field, `must be an integer from 0 to 4294967295, got ${v}`);
}

export class DnsProxy {
  private readonly calls: Call[] = [];
  private readonly parser = new FrameParser();
  private readonly exited: Promise<void>;
  /** Set once the process is unusable: every call after that rejects with it. */
  private failure: DnsProxyError | undefined;
  private closing: Promise<void> | undefined;
  private lastStderr = '';
  private statsSeq = 0;

  private constructor(
    readonly bin: string,
    private readonly child: Child,
    private readonly opts: DnsProxyOptions,
  ) {
    child.stdout.on('data', (d: Buffer) => this.onData(d));
    child.stdin.on('error', () => undefined); // a dead proxy: the close handler reports it
    let partial = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines.filter((l) => l.trim() !== '')) {
        this.lastStderr = line;
        opts.log?.warn({ bin }, line);
      }
    });
    child.on('error', (err) => opts.log?.error({ err: err.message }, 'dns proxy: process error'));
    this.exited = new Promise((resolve) =>
      child.once('close', (code, signal) => {
        if (partial.trim() !== '') this.lastStderr = partial;
        const how = `${code !== null ? `exit code ${code}` : `signal ${signal}`}${this.lastStderr ? `: ${this.lastStderr}` : ''}`;
        if (this.closing !== undefined) this.fail(new DnsProxyError(`dns proxy: closed (${how})`));
        else if (this.failure === undefined) {
          const err = new DnsProxyError(`dns proxy: ${bin} exited unexpectedly with ${how}`);
          opts.log?.error({ bin, code, signal }, err.message);
          this.fail(err);
          opts.onExit?.(err);
        }
        resolve();
      }),
    );
  }

  /** Starts the proxy; resolves once the process runs (rejects with a DnsProxyError if it cannot). */
  static async start(opts: DnsProxyOptions): Promise<DnsProxy> {
    const bin = opts.bin ?? nativeBinary('swarm-dnsproxy');
    const child = spawn(bin, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new DnsProxyError(`dns proxy: cannot start ${bin}: ${err.message}`, { cause: err })));
    });
    return new DnsProxy(bin, child, opts);
  }

  /**
   * Opens the DNS sockets of endpoint `key` on 127.0.0.11 inside the network namespace at
   * netnsPath (bringing its lo up if it is down), replacing the key's earlier ones. The ports are
   * the kernel's choice; TCP's is UDP's when that was free. Rejects with a DnsAttachError.
   */
  async attach(key: number, netnsPath: string): Promise<{ udpPort: number; tcpPort: number }> {
    checkU32('key', key);
    const path = Buffer.from(netnsPath);
    if (path.length === 0 || path.includes(0) || path.length > MAX_FRAME - 5) throw new InvalidArgumentError('netnsPath', `must be a path without NUL bytes, got ${JSON.stringify(netnsPath)}`);
    const f = await this.call(FrameType.attach, key, path, [FrameType.attached, FrameType.error]);
    if (f.type === FrameType.error) throw new DnsAttachError(key, netnsPath, f.payload.readUInt32BE(0), f.payload.subarray(4).toString('utf8'));
    return { udpPort: f.payload.readUInt16BE(0), tcpPort: f.payload.readUInt16BE(2) };
  }

  /** Closes endpoint `key`'s sockets and connections; its outstanding queries are forgotten. A key not attached is fine. */
  async detach(key: number): Promise<void> {
    checkU32('key', key);
    await this.call(FrameType.detach, key, undefined, [FrameType.detached]);
  }

  /**
   * Sends `msg` to the client of query `queryId`; undefined or empty drops the query (the client
   * hears nothing). A query unknown or expired (5 s), or a proxy gone, is ignored: nobody waits.
   * Throws an InvalidArgumentError for a message over 65535 bytes (no transport can carry it).
   */
  answer(queryId: number, msg: Buffer | undefined): void {
    checkU32('queryId', queryId);
    if (msg !== undefined && msg.length > MAX_MESSAGE) throw new InvalidArgumentError('msg', `a DNS message is at most ${MAX_MESSAGE} bytes, got ${msg.length}`);
    if (this.failure !== undefined || this.closing !== undefined) return;
    this.child.stdin.write(encodeFrame(FrameType.answer, queryId, msg));
  }

  async stats(): Promise<ProxyStats> {
    const id = (this.statsSeq = (this.statsSeq + 1) >>> 0);
    const p = (await this.call(FrameType.stats, id, undefined, [FrameType.statsAnswer])).payload;
    return { queries: Number(p.readBigUInt64BE(0)), dropped: Number(p.readBigUInt64BE(8)), endpoints: p.readUInt32BE(16), outstanding: p.readUInt32BE(20) };
  }

  /** Ends the proxy's stdin (it closes every socket and exits) and waits; kills it after 2 s. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.child.stdin.end();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), CLOSE_GRACE_MS)));
      if ((await Promise.race([this.exited, late])) === 'late') this.child.kill('SIGKILL');
      clearTimeout(timer);
      await this.exited;
    })();
    return this.closing;
  }

  private call(type: number, id: number, payload: Buffer | undefined, answers: readonly number[]): Promise<Frame> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.closing !== undefined) return Promise.reject(new DnsProxyError('dns proxy: closed'));
    return new Promise((resolve, reject) => {
      this.calls.push({ answers, id, resolve, reject });
      this.child.stdin.write(encodeFrame(type, id, payload));
    });
  }

  private fail(err: DnsProxyError): void {
    this.failure ??= err;
    for (const c of this.calls.splice(0)) c.reject(this.failure);
  }

  private onData(d: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.parser.push(d);
    } catch (err) {
      this.protocolError((err as Error).message);
      return;
    }
    for (const f of frames) {
      if (this.failure !== undefined) return;
      if (f.type === FrameType.query) this.onQuery(f);
      else {
        const c = this.calls[0];
        if (c === undefined || !c.answers.includes(f.type) || c.id !== f.id) {
          this.protocolError(`dns proxy: an unexpected answer (type ${f.type}, id ${f.id})`);
          return;
        }
        this.calls.shift();
        c.resolve(f);
      }
    }
  }

  private onQuery(f: Frame): void {
    if (f.payload.length < 5) {
      this.protocolError(`dns proxy: a query of ${f.payload.length} bytes`);
      return;
    }
    const q: ProxyQuery = { id: f.id, key: f.payload.readUInt32BE(0), transport: f.payload[4] === 1 ? 'tcp' : 'udp', message: f.payload.subarray(5) };
    try {
      this.opts.onQuery(q);
    } catch (err) {
      this.opts.log?.error({ err: (err as Error).message, key: q.key }, 'dns proxy: onQuery threw; the query is dropped');
    }
  }

  // The stream can no longer be trusted: the process is killed and everything waiting fails.
  private protocolError(why: string): void {
    const err = new DnsProxyError(why);
    this.opts.log?.error({ bin: this.bin }, why);
    this.fail(err);
    this.opts.onExit?.(err);
    this.child.kill('SIGKILL');
  }
}
