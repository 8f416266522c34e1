// How swarmctl reaches a swarmd: the local control socket by default, or a TCP address.
import * as grpc from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { basename, dirname } from 'node:path';
import { TLS_CHANNEL_OPTIONS, checkManagerIdentity, loadNodeCerts, type NodeCerts } from '../../common/certs.js';

/** The largest answer swarmctl takes: the forwarding between managers allows 64 MiB. */
const MAX_ANSWER_BYTES = 64 << 20;
import { TswarmError } from '../../common/errors.js';
import { retryWhileNotProposed } from '../../common/leader-retry.js';

export class ConnectError extends TswarmError {
  constructor(
    readonly target: string,
    cause: unknown,
  ) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`cannot reach swarmd at ${target}: ${why}`, { cause });
  }
}

export interface Target {
  /** A grpc target: unix:/path or host:port. */
  address: string;
  /** Mutual TLS for a TCP target (a node certificate of the cluster); none on the local socket. */
  credentials?: grpc.ChannelCredentials;
}

/**
 * The local socket by default. Over TCP (--host) swarmd speaks mutual TLS only: swarmctl presents
 * the certificate in --cert-dir (ca.crt, node.crt, node.key, e.g. a manager's <data-dir>/certs)
 * and accepts only a manager of that cluster.
 */
export function targetFrom(argv: { socket: string; host?: string | undefined; 'cert-dir'?: string | undefined }): Target {
  if (!argv.host) return { address: `unix:${argv.socket}` };
  const dir = argv['cert-dir'];
  // Without certificates only a node that belongs to no cluster answers (NodeInfo, plaintext).
  if (!dir) return { address: argv.host };
  let certs: NodeCerts;
  try {
    certs = loadNodeCerts(dirname(dir.replace(/\/+$/, '')), basename(dir.replace(/\/+$/, '')));
  } catch (err) {
    throw new ConnectError(argv.host, err);
  }
  return { address: argv.host, credentials: grpc.credentials.createSsl(Buffer.from(certs.caPem), Buffer.from(certs.keyPem), Buffer.from(certs.certPem), { checkServerIdentity: checkManagerIdentity() }) };
}

/**
 * Fails fast with a plain reason (no such socket, connection refused) where gRPC would only say
 * that it could not connect before the deadline.
 */
async function probe(address: string, timeoutMs: number): Promise<void> {
  let opts: { path: string } | { host: string; port: number };
  if (address.startsWith('unix:')) {
    const path = address.slice('unix:'.length);
    if (!existsSync(path)) throw new ConnectError(address, 'no such socket (is swarmd running on this host?)');
    opts = { path };
  } else {
    const colon = address.lastIndexOf(':');
    opts = { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) };
  }
  await new Promise<void>((resolve, reject) => {
    const sock = connect(opts);
    sock.setTimeout(timeoutMs, () => {
      sock.destroy();
      reject(new ConnectError(address, 'timed out'));
    });
    sock.once('connect', () => {
      sock.destroy();
      resolve();
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ECONNREFUSED' ? 'connection refused (is swarmd running there?)' : (err.code ?? err.message);
      reject(new ConnectError(address, why));
    });
  });
}

type ClientClass<C> = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => C;

/**
 * One connection to swarmd for a whole command: the target is probed and the channel opened at the
 * first call, and every later call of the command reuses it (a `service create` that waits for
 * convergence makes hundreds of calls; a channel each cost a TCP and TLS handshake each). close()
 * at the end of the command.
 */
export class Connection<C extends grpc.Client> {
  private client: C | undefined;
  private ready: Promise<C> | undefined;

  constructor(
    private readonly ClientClass: ClientClass<C>,
    private readonly target: Target,
    private readonly timeoutMs = 3_000,
  ) {}

  /** The connected client; waits at most timeoutMs for the connection, the first time. */
  get(): Promise<C> {
    this.ready ??= this.connect();
    return this.ready;
  }

  private async connect(): Promise<C> {
    const { target, timeoutMs } = this;
    await probe(target.address, timeoutMs);
    // Lists of a large store exceed gRPC's default 4 MiB (100,000 secrets are about 5 MB).
    const sizes = { 'grpc.max_receive_message_length': MAX_ANSWER_BYTES };
    const client = new this.ClientClass(target.address, target.credentials ?? grpc.credentials.createInsecure(), target.credentials ? { ...TLS_CHANNEL_OPTIONS, ...sizes } : sizes);
    this.client = client;
    await new Promise<void>((resolve, reject) => {
      client.waitForReady(Date.now() + timeoutMs, (err) => {
        if (!err) resolve();
        else if (!target.credentials && !target.address.startsWith('unix:')) reject(new ConnectError(target.address, `${err.message} (a node of a cluster speaks mutual TLS only: give --cert-dir with a manager's ca.crt, node.crt and node.key)`));
        else reject(new ConnectError(target.address, err));
      });
    });
    return client;
  }

  close(): void {
    this.client?.close();
  }
}

/**
 * Makes a client of the given generated service class and calls `fn` with it; waits at most
 * timeoutMs for the connection, and closes the client afterwards.
 */
export async function withClient<C extends grpc.Client, R>(ClientClass: ClientClass<C>, target: Target, fn: (client: C) => Promise<R>, timeoutMs = 3_000): Promise<R> {
  const conn = new Connection(ClientClass, target, timeoutMs);
  try {
    return await fn(await conn.get());
  } finally {
    conn.close();
  }
}

/**
 * A call that swarmd answered with an error. The gRPC status is kept (`code`, `details`) for
 * whoever needs to branch on it; the message is the details, which name the field or object.
 */
export class RpcError extends TswarmError {
  readonly code: grpc.status;
  readonly details: string;

  constructor(
    readonly method: string,
    err: grpc.ServiceError,
  ) {
    super(err.details || err.message, { cause: err });
    this.code = err.code;
    this.details = err.details;
  }
}

/**
 * Calls one unary method on the connection: a call answered "not proposed" (no leader; see
 * common/leader-retry.ts) is made again while a leader is elected, for up to 5 s; any other
 * failure is an RpcError at once, its code intact.
 */
export async function callUnary<C extends grpc.Client, Res>(conn: Connection<C>, method: string, req: unknown, timeoutMs = 10_000): Promise<Res> {
  const client = await conn.get();
  const fn = (client as unknown as Record<string, UnaryMethod<Res>>)[method];
  if (typeof fn !== 'function') throw new TswarmError(`${method}: no such method`);
  try {
    return await retryWhileNotProposed(
      () => new Promise<Res>((resolve, reject) => fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (e, r) => (e ? reject(e) : resolve(r)))),
    );
  } catch (err) {
    throw isServiceError(err) ? new RpcError(method, err) : err;
  }
}

type UnaryMethod<Res> = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void;

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number' && (err as Partial<grpc.ServiceError>).metadata instanceof grpc.Metadata;
}

/** Promisifies one unary call. */
export function unary<Req, Res>(
  call: (req: Req, metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown,
  req: Req,
  timeoutMs = 5_000,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    call(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}
