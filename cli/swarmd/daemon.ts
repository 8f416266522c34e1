// The swarmd process shell: node identity, the local control socket, the optional TCP listener and
// the services every node serves. The manager and worker components plug in here as their issues
// land; this file wires them and owns their lifecycle, nothing more.
import * as grpc from '@grpc/grpc-js';
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { arch, hostname as osHostname, platform } from 'node:os';
import { dirname } from 'node:path';
import { TswarmError } from '../../common/errors.js';
import { loadOrCreateNodeId } from '../../common/identity.js';
import type { Logger } from '../../common/logger.js';
import { VERSION } from '../../common/version.js';
import { NodeInfoService, type NodeInfoResponse } from '../../proto/gen/tswarm/node.js';
import { NodeRole } from '../../proto/gen/tswarm/types.js';

export interface DaemonOptions {
  dataDir: string;
  /** Path of the local control socket (unix, root only). */
  socket: string;
  /** host:port of the TCP listener, if any. */
  listenAddr?: string | undefined;
  /** Makes the daemon's logger once the node id is known. */
  logger: (nodeId: string) => Logger;
}

export class DaemonError extends TswarmError {}

/** True when something accepts connections on the unix socket at path. */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

export class Daemon {
  private readonly server = new grpc.Server();
  private log: Logger | undefined;
  private nodeId = '';
  private readonly listenAddrs: string[] = [];
  private readonly startedAt = Date.now();

  constructor(private readonly options: DaemonOptions) {}

  async start(): Promise<void> {
    const { dataDir, socket, listenAddr } = this.options;
    this.nodeId = loadOrCreateNodeId(dataDir);
    const log = (this.log = this.options.logger(this.nodeId));

    this.server.addService(NodeInfoService, {
      info: (_call: unknown, callback: grpc.sendUnaryData<NodeInfoResponse>) => callback(null, this.info()),
    });

    if (existsSync(socket)) {
      if (await socketInUse(socket)) throw new DaemonError(`${socket}: another swarmd is already serving this socket`);
      rmSync(socket, { force: true });
    }
    mkdirSync(dirname(socket), { recursive: true, mode: 0o700 });
    await this.bind(`unix:${socket}`);
    chmodSync(socket, 0o600);
    this.listenAddrs.push(`unix:${socket}`);
    if (listenAddr) {
      const port = await this.bind(listenAddr);
      const host = listenAddr.slice(0, listenAddr.lastIndexOf(':'));
      this.listenAddrs.push(`${host}:${port}`);
      log.warn({ addr: `${host}:${port}` }, 'TCP listener has no TLS yet (mutual TLS comes with the control plane)');
    }
    log.info({ version: VERSION, dataDir, listen: this.listenAddrs }, 'swarmd started');
  }

  private bind(address: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (err) reject(new DaemonError(`cannot listen on ${address}: ${err.message}`));
        else resolve(port);
      });
    });
  }

  info(): NodeInfoResponse {
    return {
      nodeId: this.nodeId,
      hostname: osHostname(),
      version: VERSION,
      role: NodeRole.NODE_ROLE_WORKER,
      listenAddrs: this.listenAddrs,
      startedAtUnixMs: this.startedAt,
      platform: { os: platform(), architecture: arch() === 'x64' ? 'amd64' : arch() },
    };
  }

  /** Stops serving (in-flight calls get up to graceMs) and removes the socket. */
  async stop(graceMs = 2_000): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    rmSync(this.options.socket, { force: true });
    this.log?.info('swarmd stopped');
  }
}
