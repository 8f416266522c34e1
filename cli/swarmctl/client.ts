// How swarmctl reaches a swarmd: the local control socket by default, or a TCP address.
import * as grpc from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { basename, dirname } from 'node:path';
import { TLS_CHANNEL_OPTIONS, checkManagerIdentity, loadNodeCerts, type NodeCerts } from '../../common/certs.js';
import { TswarmError } from '../../common/errors.js';

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

/**
 * Makes a client of the given generated service class and calls `fn` with it; waits at most
 * timeoutMs for the connection, and closes the client afterwards.
 */
export async function withClient<C extends grpc.Client, R>(
  ClientClass: new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => C,
  target: Target,
  fn: (client: C) => Promise<R>,
  timeoutMs = 3_000,
): Promise<R> {
  await probe(target.address, timeoutMs);
  const client = new ClientClass(target.address, target.credentials ?? grpc.credentials.createInsecure(), target.credentials ? TLS_CHANNEL_OPTIONS : {});
  try {
    await new Promise<void>((resolve, reject) => {
      client.waitForReady(Date.now() + timeoutMs, (err) => {
        if (!err) resolve();
        else if (!target.credentials && !target.address.startsWith('unix:')) reject(new ConnectError(target.address, `${err.message} (a node of a cluster speaks mutual TLS only: give --cert-dir with a manager's ca.crt, node.crt and node.key)`));
        else reject(new ConnectError(target.address, err));
      });
    });
    return await fn(client);
  } finally {
    client.close();
  }
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
