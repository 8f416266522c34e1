// The executor interface of a worker: what the agent needs to run one task's container, and
// nothing about how. `RuntimeExecutor` (runtime.ts) implements it over an OCI runtime's command
// line (swarm-runtime, runc or crun) and one swarm-monitor process per container; a fake one can
// stand in for it in tests of the agent.
//
// The lifecycle only moves forward: prepare (created) → start (running) → the process exits
// (exited) → remove. stop() may be called in any state before remove.
import { TswarmError } from '../../common/errors.js';
import type { LogConfig } from '../../common/log-driver.js';
import type { ImageRecord } from '../image/store.js';
import type { Attachment } from '../network/bridge.js';
import type { OverlayAttachment, OverlayNetwork } from '../network/overlay.js';
import type { PublishedPort } from '../network/ports.js';

/** A failure of the OCI runtime or the monitor: carries the runtime's one-line message. */
export class RuntimeError extends TswarmError {
  constructor(
    readonly runtime: string,
    readonly operation: string,
    readonly containerId: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${runtime} ${operation} ${containerId}: ${problem}`, options);
  }
}

/** No container of that id is known to the executor. */
export class NoSuchContainerError extends TswarmError {
  constructor(readonly containerId: string) {
    super(`no such container: ${containerId}`);
  }
}

/** A host directory (must exist; absolute) bind-mounted into the container. */
export interface BindMount {
  type: 'bind';
  source: string;
  target: string;
  readOnly?: boolean;
}

/** A named local volume: `<stateDir>/volumes/<name>/_data`, made on first use, outlives containers. */
export interface VolumeMount {
  type: 'volume';
  source: string;
  target: string;
  readOnly?: boolean;
}

/** A tmpfs at target (nosuid, nodev, noexec unless `exec`). */
export interface TmpfsMount {
  type: 'tmpfs';
  target: string;
  sizeBytes?: number;
  mode?: number;
  exec?: boolean;
}

export type Mount = BindMount | VolumeMount | TmpfsMount;

export interface Limits {
  /** memory.limit in bytes. */
  memoryBytes?: number;
  /** CPU in billionths of a CPU (Docker's NanoCPUs): a CFS quota over a 100 ms period. */
  nanoCpus?: number;
  /** pids.limit. */
  pids?: number;
}

/** What a task asks for (swarmkit's ContainerSpec, the parts this slice handles). */
export interface ContainerSpec {
  /** 1-128 letters, digits, '_', '.', '-'; not starting with punctuation. */
  id: string;
  /** The image, as the ImageStore recorded it (pulled before prepare). */
  image: ImageRecord;
  /** Replaces the image's Entrypoint (and then its Cmd is dropped, as with Docker). */
  command?: string[];
  /** Replaces the image's Cmd. */
  args?: string[];
  /** KEY=VALUE, after the image's Env (a later one wins). */
  env?: string[];
  hostname?: string;
  /** Working directory (absolute); default the image's WorkingDir, else /. */
  dir?: string;
  /** user, uid, user:group or uid:gid; names are looked up in the image's /etc/passwd and /etc/group. */
  user?: string;
  limits?: Limits;
  /**
   * 'bridge': a new network namespace on the executor's bridge, which gives the default route (and
   * NAT to the outside); 'none' (default): no bridge. Either way the overlay endpoints below come
   * first (eth0, eth1, ...), the bridge's interface after them.
   */
  network?: 'bridge' | 'none';
  /** Overlay network endpoints (worker/network/overlay.ts), in order: the first is eth0. */
  overlays?: OverlayEndpointSpec[];
  /** Host-mode published ports (bridge network only): the host's port P on any of its addresses reaches the container's port. */
  ports?: PublishedPort[];
  mounts?: Mount[];
  /** The root filesystem read-only (the container files and the mounts stay as they are). */
  readOnly?: boolean;
  /** Docker's default capabilities, plus these, minus those (CAP_ names, or ALL), as `docker run --cap-add/--cap-drop`. */
  capAdd?: string[];
  capDrop?: string[];
  /** Resource limits of the container's processes (Docker's --ulimit names: nofile, nproc, ...). */
  ulimits?: Ulimit[];
  /** Supplementary groups of the user, besides those /etc/group gives it: names in the image's /etc/group, or gids. */
  groups?: string[];
  /** Run swarm-init as PID 1 (it forwards signals to the command and reaps zombies). */
  init?: boolean;
  /** The signal stop() sends first; default the image's StopSignal, else SIGTERM. */
  stopSignal?: string;
  /** Namespaced kernel parameters (linux.sysctl). */
  sysctls?: Record<string, string>;
  /** A terminal as the process's stdio (its output logged as stdout). */
  tty?: boolean;
  /** no_new_privs: setuid binaries and file capabilities grant nothing. */
  noNewPrivileges?: boolean;
  /** /proc/self/oom_score_adj of the container's processes, -1000 to 1000. */
  oomScoreAdj?: number;
  /** The size of /dev/shm; default 64 MiB. */
  shmSizeBytes?: number;
  /** /etc/resolv.conf: what is given replaces the host's nameservers, search domains or options. */
  dns?: DnsConfig;
  /** Extra /etc/hosts lines, "IP NAME [ALIAS...]". */
  hosts?: string[];
  /** Container labels (OCI annotations; `state` shows them). */
  labels?: Record<string, string>;
  /**
   * The log: json-file with its bound (swarm-monitor rotates it: at most maxFiles files of
   * maxSizeBytes, a single longer line excepted), or none (the output is dropped). Default the
   * json-file bound of common/log-driver.ts (3 files of 10 MiB).
   */
  log?: LogConfig;
}

export interface Ulimit {
  name: string;
  soft: number;
  hard: number;
}

/** A container as service discovery takes it in (see ContainerDiscovery). */
export interface DiscoveryMember {
  id: string;
  /** Its network namespace (a path). */
  netns: string;
  /** The overlay networks it is on, in its order (the first that knows a name answers). */
  networks: readonly string[];
  /** Its resolvers for other names (--dns); empty: the node's. */
  upstream?: readonly string[];
  /** Its interface on each of those networks (network id → name in the container). */
  interfaces?: Readonly<Record<string, string>>;
}

/**
 * Service discovery inside containers' namespaces (worker/agent/discovery.ts): the embedded DNS at
 * 127.0.0.11 and the VIPs' load balancer, put in place by prepare before the container's process
 * runs, taken away with the container.
 */
export interface ContainerDiscovery {
  attach(c: DiscoveryMember): Promise<void>;
  detach(id: string): Promise<void>;
}

export interface DnsConfig {
  nameservers?: string[];
  search?: string[];
  options?: string[];
}

export type ContainerStatus = 'created' | 'running' | 'exited';

export interface ExitStatus {
  /** The exit code, or 128+N after signal N; -1 when it is not known (the monitor failed). */
  exitCode: number;
  /** e.g. SIGKILL, when a signal ended the process. */
  signal?: string;
  oomKilled: boolean;
  finishedAt: string;
  /** Why the status is incomplete or the container never ran (the runtime's line). */
  error?: string;
}

/** A container's place on an overlay network: the network as the node programs it, and its address there. */
export interface OverlayEndpointSpec {
  network: OverlayNetwork;
  /** CIDR, inside the network's subnet. */
  address: string;
}

export interface ContainerInfo {
  id: string;
  status: ContainerStatus;
  image: string;
  runtime: string;
  /** The container's init (host pid); 0 once exited. */
  pid: number;
  monitorPid: number;
  createdAt: string;
  startedAt?: string;
  exit?: ExitStatus;
  network?: Attachment;
  overlays?: OverlayAttachment[];
  bundle: string;
  logPath: string;
}

export interface LogEntry {
  /** RFC 3339 with nanoseconds. */
  time: string;
  stream: 'stdout' | 'stderr';
  log: string;
}

export interface LogOptions {
  /** Only the last N entries (before following). */
  tail?: number;
  /** Keep reading as the container writes, until it has exited and everything is read, or `signal` aborts. */
  follow?: boolean;
  signal?: AbortSignal;
}

export interface ExecOptions {
  env?: string[];
  user?: string;
  cwd?: string;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface Executor {
  /** Builds the bundle and root filesystem, creates the container (its process waits for start) and connects its network. */
  prepare(spec: ContainerSpec): Promise<ContainerInfo>;
  start(id: string): Promise<void>;
  /** Resolves when the container's process has exited. */
  wait(id: string, signal?: AbortSignal): Promise<ExitStatus>;
  /** The image's stop signal (default SIGTERM), then SIGKILL after graceMs; resolves once exited. */
  stop(id: string, graceMs: number): Promise<ExitStatus>;
  /** Withdraws the container's published ports (its task ended; another may take them); the container stays. */
  unpublish(id: string): Promise<void>;
  /** Deletes the container, its network endpoint and root filesystem; a running one only with force (killed). */
  remove(id: string, opts?: { force?: boolean }): Promise<void>;
  inspect(id: string): Promise<ContainerInfo>;
  list(): Promise<ContainerInfo[]>;
  logs(id: string, opts?: LogOptions): AsyncIterable<LogEntry>;
  exec(id: string, command: string[], opts?: ExecOptions): Promise<ExecResult>;
}
