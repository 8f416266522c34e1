// The swarmd process shell: node identity, the local control socket, the optional TCP listener and
// the services every node serves. The manager and worker components plug in here as their issues
// land; this file wires them and owns their lifecycle, nothing more.
import * as grpc from '@grpc/grpc-js';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { arch, hostname as osHostname, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { CorruptFileError, TswarmError } from '../../common/errors.js';
import { loadOrCreateNodeId } from '../../common/identity.js';
import type { Logger } from '../../common/logger.js';
import { VERSION } from '../../common/version.js';
import { NodeInfoService, type NodeInfoResponse } from '../../proto/gen/tswarm/node.js';
import { NodeRole } from '../../proto/gen/tswarm/types.js';
import { hasManagerState, Manager } from '../../manager/manager.js';

export interface ManagerSettings {
  /** Create a new cluster (swarmd init); otherwise resume the one in the data directory. */
  init: boolean;
  /** host:port other managers reach this one at. */
  advertiseAddr: string;
  /** host:port the manager's Raft service listens on. */
  listenAddr: string;
}

export interface DaemonOptions {
  dataDir: string;
  /** Run the manager role; undefined: only if the data directory holds a manager's state. */
  manager?: ManagerSettings | undefined;
  /** Path of the local control socket (unix, root only). */
  socket: string;
  /** host:port of the TCP listener, if any. */
  listenAddr?: string | undefined;
  /** Makes the daemon's logger once the node id is known. */
  logger: (nodeId: string) => Logger;
}

export class DaemonError extends TswarmError {}

/** Fails with a clear message if nothing can listen on host:port (in use, or not an address here). */
function assertCanListen(addr: string): Promise<void> {
  const colon = addr.lastIndexOf(':');
  const host = addr.slice(0, colon);
  const port = Number(addr.slice(colon + 1));
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) => reject(new DaemonError(`--listen-addr ${addr}: cannot listen there (${err.code ?? err.message})`)));
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

function readJsonFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (err) {
    throw new CorruptFileError(path, `cannot be read as JSON (${(err as Error).message})`);
  }
}

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
  /**
   * Two servers: the local socket (root only) carries the control API; the TCP listener carries
   * what other nodes call (Raft now; the dispatcher and the mutual-TLS control API later). The
   * control API is never served on plaintext TCP.
   */
  private readonly localServer = new grpc.Server();
  private readonly remoteServer = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20 });
  private log: Logger | undefined;
  private nodeId = '';
  private readonly listenAddrs: string[] = [];
  private readonly startedAt = Date.now();
  private manager: Manager | undefined;

  constructor(private readonly options: DaemonOptions) {}

  async start(): Promise<void> {
    const { dataDir, socket, listenAddr } = this.options;
    this.nodeId = loadOrCreateNodeId(dataDir);
    const log = (this.log = this.options.logger(this.nodeId));

    // The manager role: asked for (init), or resumed from the data directory's settings.
    const settingsPath = join(dataDir, 'manager.json');
    let managerSettings = this.options.manager;
    if (!managerSettings && hasManagerState(dataDir)) {
      const saved = readJsonFile(settingsPath) as { advertiseAddr?: unknown; listenAddr?: unknown };
      if (typeof saved.advertiseAddr !== 'string' || typeof saved.listenAddr !== 'string') {
        throw new CorruptFileError(settingsPath, 'needs string fields advertiseAddr and listenAddr');
      }
      managerSettings = { init: false, advertiseAddr: saved.advertiseAddr, listenAddr: saved.listenAddr };
    }
    if (managerSettings) {
      // Check what can fail before anything is created.
      if (managerSettings.init) await assertCanListen(managerSettings.listenAddr);
      const manager = new Manager({
        dataDir,
        nodeId: this.nodeId,
        advertiseAddr: managerSettings.advertiseAddr,
        listenAddr: managerSettings.listenAddr,
        server: this.remoteServer,
        log: log.child({ component: 'manager' }),
      });
      if (managerSettings.init) {
        // A failed `swarmd init` leaves the data directory as it found it.
        try {
          await manager.init();
          writeFileSync(`${settingsPath}.tmp`, JSON.stringify({ advertiseAddr: managerSettings.advertiseAddr, listenAddr: managerSettings.listenAddr }));
          renameSync(`${settingsPath}.tmp`, settingsPath);
        } catch (err) {
          await manager.stop().catch(() => undefined);
          manager.removeState();
          rmSync(`${settingsPath}.tmp`, { force: true });
          throw err;
        }
      } else {
        await manager.start();
      }
      manager.serveControl(this.localServer);
      this.manager = manager;
    }
    const tcpAddr = listenAddr ?? managerSettings?.listenAddr;
    for (const server of [this.localServer, this.remoteServer]) {
      server.addService(NodeInfoService, {
        info: (_call: unknown, callback: grpc.sendUnaryData<NodeInfoResponse>) => callback(null, this.info()),
      });
    }

    if (existsSync(socket)) {
      if (await socketInUse(socket)) throw new DaemonError(`${socket}: another swarmd is already serving this socket`);
      rmSync(socket, { force: true });
    }
    mkdirSync(dirname(socket), { recursive: true, mode: 0o700 });
    await this.bind(this.localServer, `unix:${socket}`);
    chmodSync(socket, 0o600);
    this.listenAddrs.push(`unix:${socket}`);
    if (tcpAddr) {
      const port = await this.bind(this.remoteServer, tcpAddr);
      const host = tcpAddr.slice(0, tcpAddr.lastIndexOf(':'));
      this.listenAddrs.push(`${host}:${port}`);
      log.warn({ addr: `${host}:${port}` }, 'TCP listener has no TLS yet (node certificates from the CA come next); the control API is only on the local socket');
    }
    log.info({ version: VERSION, dataDir, listen: this.listenAddrs }, 'swarmd started');
  }

  private bind(server: grpc.Server, address: string): Promise<number> {
    return new Promise((resolve, reject) => {
      server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
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
      role: this.manager ? NodeRole.NODE_ROLE_MANAGER : NodeRole.NODE_ROLE_WORKER,
      listenAddrs: this.listenAddrs,
      startedAtUnixMs: this.startedAt,
      platform: { os: platform(), architecture: arch() === 'x64' ? 'amd64' : arch() },
    };
  }

  /** Stops serving (in-flight calls get up to graceMs) and removes the socket. */
  async stop(graceMs = 2_000): Promise<void> {
    await Promise.all(
      [this.localServer, this.remoteServer].map(
        (server) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              server.forceShutdown();
              resolve();
            }, graceMs);
            server.tryShutdown(() => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
    rmSync(this.options.socket, { force: true });
    await this.manager?.stop();
    this.log?.info('swarmd stopped');
  }
}
