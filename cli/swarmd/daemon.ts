// The swarmd process shell: node identity, the local control socket, the optional TCP listener and
// the services every node serves. The manager and worker components plug in here as their issues
// land; this file wires them and owns their lifecycle, nothing more.
import * as grpc from '@grpc/grpc-js';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { dirname, join } from 'node:path';
import { CorruptFileError, TswarmError } from '../../common/errors.js';
import { loadOrCreateNodeId } from '../../common/identity.js';
import { hostPlatformOf, nodeDescription } from '../../common/node.js';
import type { Logger } from '../../common/logger.js';
import { VERSION } from '../../common/version.js';
import { NodeInfoService, type NodeInfoResponse } from '../../proto/gen/tswarm/node.js';
import { NodeRole } from '../../proto/gen/tswarm/types.js';
import { ControlService } from '../../proto/gen/tswarm/control.js';
import { TLS_CHANNEL_OPTIONS, certExpiresIn, shouldRenew, certsDir, hasNodeCerts, loadNodeCerts, NodeCertProvider, saveNodeCerts } from '../../common/certs.js';
import { createClusterPki, hasManagerState, Manager } from '../../manager/manager.js';
import { forceNewCluster } from '../../manager/recovery.js';
import { parseEtcdUrl } from '../../manager/store/etcd-backend.js';
import { joinCluster, ManagerClient } from './join.js';
import { Agent } from '../../worker/agent/agent.js';
import { DirLock } from '../../common/dir-lock.js';
import { LoopLagMonitor } from '../../common/loop-lag.js';
import { defaultSpawner, RuntimeExecutor } from '../../worker/exec/runtime.js';
import { ImageStore } from '../../worker/image/store.js';
import { RegistryImageResolver } from './image-resolver.js';
import { BridgeDriver, execRunner } from '../../worker/network/bridge.js';
import { readHostNetwork } from '../../worker/network/host-prefixes.js';
import { OverlayDriver } from '../../worker/network/overlay.js';
import { DnsProxy } from '../../worker/network/dns-proxy.js';
import { LoadBalancer } from '../../worker/network/service-lb.js';
import { MeshTable } from '../../worker/network/mesh.js';
import { ServiceDiscovery } from '../../worker/agent/discovery.js';
import { parseResolvConf } from '../../worker/exec/container-files.js';
import type { AddressPoolSpec } from '../../manager/allocator/networks.js';
import type { JoinResponse } from '../../proto/gen/tswarm/raft.js';

/** `swarmd init`: create a new cluster with this node as its first manager. */
export interface InitSettings {
  /** host:port other nodes reach this manager at. */
  advertiseAddr: string;
  /** host:port the TCP listener binds (default: the advertise address). */
  listenAddr: string;
  /**
   * Rebuild a one-manager cluster from this manager's data after the quorum was lost
   * (addresses: the saved ones unless given).
   */
  forceNewCluster?: boolean;
  /** Keep the store in etcd (`etcd://HOST:PORT[,…][/PREFIX]`) instead of the embedded Raft. */
  store?: string | undefined;
  /** Overlay networks' subnets come from these pools, in subnets of this length (default 10.0.0.0/8 in /24s). */
  addressPool?: AddressPoolSpec | undefined;
  /** The cluster's VXLAN UDP port (default 4789). */
  dataPathPort?: number | undefined;
}

/** `swarmd join`: enter an existing cluster, as worker or manager as the token says. */
export interface JoinSettings {
  token: string;
  /** host:port of a manager of the cluster. */
  remoteAddr: string;
  advertiseAddr: string;
  listenAddr: string;
}

export interface DaemonOptions {
  dataDir: string;
  init?: InitSettings | undefined;
  join?: JoinSettings | undefined;
  /** Path of the local control socket (unix, root only). */
  socket: string;
  /** host:port of the TCP listener, if any (default: the one saved at init or join). */
  listenAddr?: string | undefined;
  /** How often the node asks the managers about its role and certificate (ms). */
  statusPollMs?: number;
  /** The worker's task runner; none: this node runs no tasks. */
  agent?: AgentSettings | undefined;
  /**
   * Registry for images named without one (swarmd --default-registry), for the agent's pulls and
   * the manager's pinning of images; empty: Docker Hub.
   */
  defaultRegistry?: string | undefined;
  /** Makes the daemon's logger once the node id is known. */
  logger: (nodeId: string) => Logger;
}

/** How this node runs tasks (every node of a cluster does, managers too, as in Docker). */
export interface AgentSettings {
  /** 'swarm-runtime' (ours), 'runc' or 'crun'. */
  runtime: string;
  /** Registry for images named without one, e.g. http://10.0.0.5:5000. */
  defaultRegistry: string;
  /** A bridge network for containers, `NAME:SUBNET`; none: containers get only lo. */
  bridge?: string | undefined;
  /** The address this node's overlay (VXLAN) traffic leaves from and arrives at; default: its advertise address. */
  dataPathAddr?: string | undefined;
  /** The embedded DNS's upstream resolvers (IP or IP:PORT); default: the host's /etc/resolv.conf nameservers. */
  dns?: string[] | undefined;
}

/** The nameservers of the host's /etc/resolv.conf (none when it has none). */
function hostResolvers(): string[] {
  try {
    return parseResolvConf(readFileSync('/etc/resolv.conf', 'utf8')).nameservers;
  } catch {
    return [];
  }
}

/**
 * Without --bridge, the bridge that gives overlay containers their way out (Docker's
 * docker_gwbridge); it carries no container of its own.
 */
const EGRESS_BRIDGE = { name: 'tsw_gwbridge', subnet: '172.30.0.0/16' };

/** What the node keeps in `<data-dir>/node.json` about its place in the cluster. */
interface NodeSettings {
  advertiseAddr: string;
  listenAddr: string;
  /** The node's Raft id while it is a manager of a Raft-backed cluster. */
  raftId?: number | undefined;
  /** `etcd://…` while it is a manager of a cluster whose store is in etcd. */
  store?: string | undefined;
  /** Managers' addresses, last known. */
  managers: string[];
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

function loadSettings(path: string): NodeSettings | undefined {
  if (!existsSync(path)) return undefined;
  const saved = readJsonFile(path) as Partial<NodeSettings>;
  if (typeof saved.advertiseAddr !== 'string' || typeof saved.listenAddr !== 'string' || !Array.isArray(saved.managers)) {
    throw new CorruptFileError(path, 'needs string fields advertiseAddr and listenAddr and an array managers');
  }
  if (saved.raftId !== undefined && (!Number.isInteger(saved.raftId) || saved.raftId < 1)) throw new CorruptFileError(path, 'raftId must be a positive integer');
  return saved as NodeSettings;
}

/**
 * Without channelz: grpc-js keeps its statistics (per call, per message, per connection) for a
 * channelz service that swarmd does not serve; nothing reads them, and every call of the control
 * API paid for them.
 */
const SERVER_OPTIONS = { 'grpc.enable_channelz': 0 } as const;

export class Daemon {
  /**
   * Two servers: the local socket (root only) carries the control API; the TCP listener (mutual
   * TLS once the node has a certificate) carries what other nodes call: Raft, the CA, membership
   * and the control API for manager certificates.
   */
  private readonly localServer = new grpc.Server(SERVER_OPTIONS);
  private readonly remoteServer = new grpc.Server({ ...SERVER_OPTIONS, 'grpc.max_receive_message_length': 64 << 20 });
  private log: Logger | undefined;
  private nodeId = '';
  private readonly listenAddrs: string[] = [];
  private readonly startedAt = Date.now();
  private manager: Manager | undefined;
  private certs: NodeCertProvider | undefined;
  private client: ManagerClient | undefined;
  private settings: NodeSettings | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private roleChange: Promise<void> = Promise.resolve();
  private stopped = false;
  private agent: Agent | undefined;
  private dnsProxy: DnsProxy | undefined;
  private lock: DirLock | undefined;
  private lag: LoopLagMonitor | undefined;

  constructor(private readonly options: DaemonOptions) {}

  /** Starts the task runner: the executor over the OCI runtime, the image store, the session. */
  private async startAgent(settings: AgentSettings): Promise<void> {
    const dataDir = this.options.dataDir;
    // One fork server for the commands the worker runs (runtime, monitor, mount, ip): see spawner.ts.
    const spawner = defaultSpawner();
    const images = new ImageStore(join(dataDir, 'images'), spawner ? { mounter: spawner.mounter } : {});
    await images.init();
    // What lives as long as the containers do (their records and bundles, the bridge's endpoints)
    // is kept next to the local socket: /run/tswarm by default, a tmpfs, which a reboot empties
    // as it ends the containers; their logs, root filesystems and volumes are on the disk.
    const runDir = dirname(this.options.socket);
    // The containers' bridge (--bridge), made now (a restarted worker's table holds the ports its
    // containers publish); or else the overlays' way out, made by the executor when the first
    // container of an overlay network that is not internal needs it.
    const [name, subnet] = settings.bridge ? settings.bridge.split(':') : [EGRESS_BRIDGE.name, EGRESS_BRIDGE.subnet];
    const runner = spawner ? spawner.runner : execRunner;
    const network = new BridgeDriver({ stateDir: join(runDir, 'network'), name, subnet, runner, ...(spawner ? { links: spawner.links } : {}) });
    if (settings.bridge) await network.create();
    const host = await readHostNetwork(runner);
    const dataPathAddr = this.dataPathAddr(settings, host.addresses);
    const overlay = new OverlayDriver({ dataPathAddr, runner });
    // Service discovery: the embedded DNS answers from swarmd, through swarm-dnsproxy's sockets in
    // the containers' namespaces; other names go to --dns or the host's resolvers (from here, the
    // host's namespace, so a loopback resolver such as systemd-resolved's is reachable).
    const upstream = settings.dns?.length ? settings.dns : hostResolvers();
    const discovery = new ServiceDiscovery({ lb: new LoadBalancer(runner), mesh: new MeshTable(runner), upstream, log: this.log!.child({ component: 'discovery' }) });
    this.dnsProxy = await DnsProxy.start({ onQuery: (q) => discovery.onQuery(q), log: this.log!.child({ component: 'dns-proxy' }) });
    discovery.useProxy(this.dnsProxy);
    const executor = new RuntimeExecutor({ stateDir: join(dataDir, 'exec'), runDir: join(runDir, 'exec'), images, runtime: settings.runtime, spawner, network, overlay, discovery });
    const pruned = await executor.prune();
    if (pruned.length > 0) this.log!.info({ containers: pruned }, 'removed the logs and root filesystems of containers without a record (after a reboot)');
    const description = nodeDescription({ dataPathAddr, hostPrefixes: host.prefixes });
    this.agent = new Agent({
      stateDir: join(dataDir, 'agent'),
      managers: () => this.settings?.managers ?? [],
      credentials: () => this.certs!.channelCredentials(),
      channelOptions: TLS_CHANNEL_OPTIONS,
      executor,
      images,
      defaultRegistry: settings.defaultRegistry,
      network: settings.bridge ? 'bridge' : 'none',
      overlay,
      discovery,
      egress: true,
      description,
      // A tmpfs too, so that secrets never reach a disk.
      secretsDir: join(runDir, 'secrets'),
      log: this.log!.child({ component: 'agent' }),
    });
    this.agent.start();
  }

  /**
   * --data-path-addr, or the advertise address. VXLAN's outer source is pinned to it, so it must
   * be one of this host's: given, it is checked now; taken from the advertise address (which may
   * be one behind NAT, or a loopback alias), a warning now, and the overlay driver refuses it when
   * a network is first used here, naming `dataPathAddr`.
   */
  private dataPathAddr(settings: AgentSettings, hostAddresses: readonly string[]): string {
    const flag = settings.dataPathAddr;
    const advertised = this.settings?.advertiseAddr ?? '';
    const addr = flag ?? (advertised.includes(':') ? advertised.slice(0, advertised.lastIndexOf(':')) : advertised);
    if (!addr) throw new DaemonError('--data-path-addr: required (this node has no advertise address to take it from)');
    if (!hostAddresses.includes(addr)) {
      if (flag !== undefined) throw new DaemonError(`--data-path-addr: ${addr} is not an IPv4 address of this host; overlay traffic must leave from an address the other nodes reach`);
      this.log!.warn({ dataPathAddr: addr }, 'the advertise address is not an address of this host: overlay networks will not work here until swarmd is started with --data-path-addr');
    }
    return addr;
  }

  private get settingsPath(): string {
    return join(this.options.dataDir, 'node.json');
  }

  private saveSettings(): void {
    writeFileSync(`${this.settingsPath}.tmp`, JSON.stringify(this.settings, null, 2));
    renameSync(`${this.settingsPath}.tmp`, this.settingsPath);
  }

  async start(): Promise<void> {
    const { dataDir, socket } = this.options;
    // Before anything in the data directory is read or written: one swarmd per directory (its
    // Raft log, its executor's containers).
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.lock = await DirLock.acquire(dataDir, 'swarmd');
    this.nodeId = loadOrCreateNodeId(dataDir);
    const log = (this.log = this.options.logger(this.nodeId));
    this.lag = new LoopLagMonitor(log);
    this.lag.start();
    this.settings = loadSettings(this.settingsPath);

    if (this.options.init?.forceNewCluster) await this.forceNewCluster(this.options.init);
    else if (this.options.init) await this.initCluster(this.options.init);
    else if (this.options.join) await this.joinCluster(this.options.join);
    else if (hasNodeCerts(dataDir)) {
      this.certs = new NodeCertProvider(loadNodeCerts(dataDir));
      if (!this.settings) throw new CorruptFileError(this.settingsPath, 'is missing, but the node has certificates (restore it, or start over with a fresh data directory)');
      this.client = new ManagerClient(this.certs, this.settings.managers);
      if (this.certs.identity.role === 'manager') await this.startManager(hasManagerState(dataDir) || this.settings.store ? 'resume' : 'join');
    }

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
    await this.bind(this.localServer, `unix:${socket}`, grpc.ServerCredentials.createInsecure());
    chmodSync(socket, 0o600);
    this.listenAddrs.push(`unix:${socket}`);
    const tcpAddr = this.options.listenAddr ?? this.settings?.listenAddr;
    if (tcpAddr) {
      const creds = this.certs?.serverCredentials();
      const port = await this.bind(this.remoteServer, tcpAddr, creds ?? grpc.ServerCredentials.createInsecure());
      const host = tcpAddr.slice(0, tcpAddr.lastIndexOf(':'));
      this.listenAddrs.push(`${host}:${port}`);
      if (!creds) log.warn({ addr: `${host}:${port}` }, 'this node is in no cluster: its TCP listener serves only NodeInfo, without TLS');
    }
    if (this.certs) this.pollStatus();
    if (this.certs && this.options.agent) await this.startAgent(this.options.agent);
    log.info({ version: VERSION, dataDir, listen: this.listenAddrs, role: this.certs?.identity.role ?? 'none' }, 'swarmd started');
  }

  /** `swarmd init`. A failure leaves the data directory as it was. */
  private async initCluster(init: InitSettings): Promise<void> {
    const dataDir = this.options.dataDir;
    if (hasNodeCerts(dataDir) || hasManagerState(dataDir)) throw new DaemonError(`${dataDir} already belongs to a cluster; start swarmd without init to resume it (or use a fresh --data-dir)`);
    await assertCanListen(init.listenAddr);
    const pki = await createClusterPki(this.nodeId);
    if (init.store) parseEtcdUrl(init.store); // a malformed URL fails before anything is made
    this.settings = init.store
      ? { advertiseAddr: init.advertiseAddr, listenAddr: init.listenAddr, store: init.store, managers: [init.advertiseAddr] }
      : { advertiseAddr: init.advertiseAddr, listenAddr: init.listenAddr, raftId: 1, managers: [init.advertiseAddr] };
    this.certs = new NodeCertProvider(pki.certs);
    this.client = new ManagerClient(this.certs, this.settings.managers);
    const manager = this.newManager(1);
    try {
      await manager.init(pki, { ...(init.addressPool ? { addressPool: init.addressPool } : {}), ...(init.dataPathPort ? { dataPathPort: init.dataPathPort } : {}) });
      saveNodeCerts(dataDir, pki.certs);
      this.saveSettings();
    } catch (err) {
      await manager.stop().catch(() => undefined);
      manager.removeState();
      rmSync(certsDir(dataDir), { recursive: true, force: true });
      rmSync(this.settingsPath, { force: true });
      throw err;
    }
    manager.serveControl(this.localServer);
    this.manager = manager;
  }

  /** `swarmd init --force-new-cluster`: this manager alone, with everything that was committed. */
  private async forceNewCluster(init: InitSettings): Promise<void> {
    const dataDir = this.options.dataDir;
    if (this.settings?.store) throw new DaemonError(`--force-new-cluster: this cluster keeps its store in etcd (${this.settings.store}); restore etcd's quorum instead`);
    if (!hasManagerState(dataDir) || !hasNodeCerts(dataDir) || !this.settings?.raftId) {
      throw new DaemonError(`--force-new-cluster: ${dataDir} holds no manager's state; it rebuilds a cluster from a manager's data directory`);
    }
    this.certs = new NodeCertProvider(loadNodeCerts(dataDir));
    if (this.certs.identity.role !== 'manager') throw new DaemonError(`--force-new-cluster: this node is a ${this.certs.identity.role}, not a manager`);
    if (init.advertiseAddr) this.settings.advertiseAddr = init.advertiseAddr;
    if (init.listenAddr) this.settings.listenAddr = init.listenAddr;
    await assertCanListen(this.settings.listenAddr);
    await forceNewCluster(dataDir, this.settings.raftId, this.settings.advertiseAddr, this.log!.child({ component: 'manager' }));
    this.settings.managers = [this.settings.advertiseAddr];
    this.saveSettings();
    this.client = new ManagerClient(this.certs, this.settings.managers);
    await this.startManager('resume');
  }

  /** `swarmd join`: a certificate from the CA, then (with a manager token) a seat in the Raft group. */
  private async joinCluster(j: JoinSettings): Promise<void> {
    const dataDir = this.options.dataDir;
    if (hasNodeCerts(dataDir)) throw new DaemonError(`${dataDir} already belongs to a cluster (${certsDir(dataDir)}); start swarmd without join to resume it, or use a fresh --data-dir`);
    await assertCanListen(j.listenAddr);
    const { certs, role } = await joinCluster(j.token, j.remoteAddr, this.nodeId, { description: nodeDescription(), addr: j.advertiseAddr });
    saveNodeCerts(dataDir, certs);
    this.settings = { advertiseAddr: j.advertiseAddr, listenAddr: j.listenAddr, managers: [j.remoteAddr] };
    this.saveSettings();
    this.certs = new NodeCertProvider(certs);
    this.client = new ManagerClient(this.certs, this.settings.managers);
    this.log!.info({ role: role === NodeRole.NODE_ROLE_MANAGER ? 'manager' : 'worker', cluster: this.certs.identity.clusterId }, 'joined the cluster');
    if (role === NodeRole.NODE_ROLE_MANAGER) await this.startManager('join');
  }

  private newManager(raftId: number, dataKey?: Uint8Array): Manager {
    return new Manager({
      dataDir: this.options.dataDir,
      nodeId: this.nodeId,
      raftId,
      store: this.settings!.store,
      advertiseAddr: this.settings!.advertiseAddr,
      server: this.remoteServer,
      certs: this.certs!,
      ...(dataKey ? { dataKey } : {}),
      imageResolver: new RegistryImageResolver({ defaultRegistry: this.options.defaultRegistry ?? this.options.agent?.defaultRegistry ?? '' }),
      log: this.log!.child({ component: 'manager' }),
    });
  }

  /** Runs the manager role: resumes it from the data directory, or joins the Raft group first. */
  private async startManager(how: 'resume' | 'join'): Promise<void> {
    const settings = this.settings!;
    let peers = new Map<number, string>();
    let raftId = settings.raftId;
    let dataKey: Uint8Array | undefined;
    if (how === 'join' || (!raftId && !settings.store)) {
      const res = await this.joinRaftRetrying(settings.advertiseAddr);
      dataKey = res.dataKey;
      if (res.store) {
        settings.store = res.store;
        settings.raftId = undefined;
        this.log!.info({ store: res.store }, 'this cluster keeps its store in etcd; managing from there');
      } else {
        raftId = res.raftId;
        peers = new Map(res.members.filter((m) => m.addr).map((m) => [m.raftId, m.addr]));
        settings.raftId = raftId;
        this.log!.info({ raftId, members: peers.size }, 'entered the Raft group as a learner; the leader promotes it once caught up');
      }
      this.saveSettings();
    }
    const manager = this.newManager(raftId ?? 0, dataKey);
    await manager.start(peers);
    manager.serveControl(this.localServer);
    this.manager = manager;
  }

  /** The leader makes one membership change at a time: a join that finds one in progress waits its turn. */
  private async joinRaftRetrying(addr: string): Promise<JoinResponse> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.client!.joinRaft(addr);
      } catch (err) {
        if (attempt >= 60 || this.stopped) throw err;
        this.log!.warn({ err: (err as Error).message, attempt }, 'joining the Raft group failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Leaves the manager role after a demotion: stops Raft and drops the manager's state. */
  private async stopManager(): Promise<void> {
    const manager = this.manager;
    if (!manager) return;
    this.manager = undefined;
    await manager.stop();
    this.localServer.removeService(ControlService);
    manager.removeState();
    this.settings!.raftId = undefined;
    this.settings!.store = undefined;
    this.saveSettings();
    this.log!.info('demoted: this node is a worker now');
  }

  /** Asks the managers, now and then, what role the cluster has for this node; renews the certificate. */
  private pollStatus(): void {
    const period = this.options.statusPollMs ?? 2_000;
    const step = async (): Promise<void> => {
      const client = this.client!;
      const certs = this.certs!;
      const st = await client.status();
      if (st.removed) {
        this.log!.error('this node was removed from the cluster; it stops asking the managers (start over with a fresh data directory to join again)');
        return;
      }
      if (st.managers.length > 0 && st.managers.join() !== this.settings!.managers.join()) {
        client.setManagers(st.managers);
        this.settings!.managers = [...client.addresses];
        this.saveSettings();
      }
      const want = st.role === NodeRole.NODE_ROLE_MANAGER ? 'manager' : 'worker';
      const { remainingMs, lifetimeMs } = certExpiresIn(certs.certs.certPem);
      if (want !== certs.identity.role || shouldRenew(remainingMs, lifetimeMs)) {
        const renewed = await client.renew();
        saveNodeCerts(this.options.dataDir, renewed.certs);
        certs.update(renewed.certs);
        this.log!.info({ role: certs.identity.role }, 'node certificate renewed');
      }
      if (certs.identity.role === 'manager' && !this.manager) await this.startManager('join');
      if (certs.identity.role === 'worker' && this.manager) await this.stopManager();
    };
    const loop = (): void => {
      if (this.stopped) return;
      this.roleChange = step()
        .catch((err: unknown) => this.log!.warn({ err: (err as Error).message }, 'asking the managers about this node failed; retrying'))
        .finally(() => {
          if (!this.stopped) this.statusTimer = setTimeout(loop, period);
        });
    };
    this.statusTimer = setTimeout(loop, period);
  }

  private bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
    return new Promise((resolve, reject) => {
      server.bindAsync(address, creds, (err, port) => {
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
      platform: hostPlatformOf(),
    };
  }

  /** Stops serving (in-flight calls get up to graceMs) and removes the socket. */
  async stop(graceMs = 2_000): Promise<void> {
    this.stopped = true;
    if (this.statusTimer) clearTimeout(this.statusTimer);
    await this.roleChange;
    await this.agent?.stop();
    await this.dnsProxy?.close();
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
    this.lock?.release();
    this.lag?.stop();
    await this.manager?.stop();
    this.log?.info('swarmd stopped');
  }
}
