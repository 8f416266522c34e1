// The worker's agent: it wires the session with the dispatcher (session.ts), the node's
// assignments and their storage (assignments.ts), the status reporter (reporter.ts) and one
// controller per task (controller.ts, around the pure step function of step.ts), which drives the
// executor through the task state machine:
//
//   ASSIGNED → ACCEPTED → PREPARING (pull, files, root filesystem, network, bundle) → READY →
//   STARTING → RUNNING → COMPLETE (exit 0) | FAILED (any other exit) ; SHUTDOWN when asked to stop;
//   REJECTED when it could not be started.
//
// States only move forward, and never past the desired state. The container id is the task id,
// so a restarted agent finds its containers again (the executor keeps them, under their
// monitors); the assignments are also kept in `<state>/tasks.json`, so that the agent knows its
// tasks while no manager answers.
import type * as grpc from '@grpc/grpc-js';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AssignmentsMessage_Type, type AssignmentsMessage } from '../../proto/gen/tswarm/dispatcher.js';
import type { Task } from '../../proto/gen/tswarm/objects.js';
import { RegistryAuth, TaskState, type NodeDescription, type TaskStatus } from '../../proto/gen/tswarm/types.js';
import { sameRegistry } from '../../common/image-reference.js';
import { isAfter, isTerminalState, stateName } from '../../common/task-state.js';
import type { Logger } from '../../common/logger.js';
import type { ContainerSpec, Executor } from '../exec/executor.js';
import { RegistryClient } from '../image/distribution.js';
import { imageReference, type ImageRecord, type ImageStore } from '../image/store.js';
import type { OverlayDriver } from '../network/overlay.js';
import { applyAssignments, noAssignedData, TaskList, type AssignedData } from './assignments.js';
import { containerSpec } from './container-spec.js';
import { retry, TaskController } from './controller.js';
import { writeConfigFiles, writeSecretFiles } from './files.js';
import { LogAgent } from './logs.js';
import type { ServiceDiscovery } from './discovery.js';
import { NetworkSandboxes } from './networks.js';
import { PathProber, pathTargets } from './paths.js';
import { parseImageRef, registryClientAuth } from './reference.js';
import { StatusReporter } from './reporter.js';
import { Session } from './session.js';
import { Slots } from './slots.js';

export interface AgentOptions {
  /** The agent's own directory (tasks.json). */
  stateDir: string;
  /** Managers' host:port, in the order to try them. */
  managers: () => string[];
  /** Told when a session names the managers (to keep them for the next start). */
  onManagers?: (addrs: string[]) => void;
  credentials: () => grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  executor: Executor;
  images: ImageStore;
  /** Registry for images named without one (e.g. `busybox`). */
  defaultRegistry: string;
  /** 'bridge' when the executor has a bridge network. */
  network: 'bridge' | 'none';
  /** The overlay driver (the executor's too): the agent keeps its sandboxes to the assignments. */
  overlay?: OverlayDriver;
  /** Service discovery (the executor's too): the agent gives it the services of its networks. */
  discovery?: ServiceDiscovery;
  /** Whether the executor has a bridge for overlay containers' way out (see NodeContext.egress). */
  egress?: boolean;
  description: NodeDescription;
  /** Where task secrets are written as files before being bind-mounted at /run/secrets (use a tmpfs, e.g. under /run). */
  secretsDir: string;
  /** Where task configs are written as files before being bind-mounted at their targets; default `configs` next to secretsDir (a tmpfs too). */
  configsDir?: string;
  log: Logger;
}

export class Agent {
  readonly executor: Executor;
  /** Container prepares and starts in flight at once (see Slots). */
  readonly startSlots = new Slots(8);
  private readonly tasks = new Map<string, TaskController>();
  /** Pulls in flight, shared by the tasks that start meanwhile; a finished pull is not kept (see pull). */
  private readonly pulls = new Map<string, Promise<ImageRecord>>();
  private readonly data: AssignedData = noAssignedData();
  private readonly taskList: TaskList;
  private readonly reporter: StatusReporter;
  private readonly session: Session;
  private readonly log: Logger;
  private readonly logAgent: LogAgent;
  private readonly sandboxes: NetworkSandboxes | undefined;
  private readonly prober: PathProber | undefined;

  constructor(private readonly opts: AgentOptions) {
    this.executor = opts.executor;
    this.log = opts.log;
    // `service logs`: listens for log subscriptions with each session (worker/agent/logs.ts).
    this.logAgent = new LogAgent({ executor: opts.executor, credentials: opts.credentials, ...(opts.channelOptions ? { channelOptions: opts.channelOptions } : {}), log: opts.log });
    this.taskList = new TaskList(opts.stateDir, () => [...this.tasks.values()].map((c) => c.task));
    this.session = new Session({
      managers: opts.managers,
      ...(opts.onManagers ? { onManagers: opts.onManagers } : {}),
      credentials: opts.credentials,
      ...(opts.channelOptions ? { channelOptions: opts.channelOptions } : {}),
      description: opts.description,
      log: opts.log,
      onAssignments: (msg) => void this.applyAssignments(msg).catch((err: Error) => this.log.error({ err: err.message }, 'agent: could not apply assignments')),
      onEstablished: (addr) => {
        this.opts.discovery?.resetSequence();
        this.logAgent.attach(addr);
        // Statuses observed while no session was up.
        void this.reporter.flush();
      },
      onEnded: () => this.logAgent.detach(),
      peerPaths: () => this.prober?.paths() ?? [],
      appliedSequence: () => this.opts.discovery?.applied ?? 0,
    });
    if (opts.discovery) opts.discovery.onApplied = () => this.session.nudge();
    this.reporter = new StatusReporter((updates) => this.session.updateTaskStatus(updates));
    this.sandboxes = opts.overlay ? new NetworkSandboxes({ driver: opts.overlay, log: opts.log }) : undefined;
    const overlay = opts.overlay;
    this.prober = overlay ? new PathProber({ probe: (net, from, to, ms) => overlay.probe(net, from, to, ms), log: opts.log }) : undefined;
    mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  }

  private get configsDir(): string {
    return this.opts.configsDir ?? join(dirname(this.opts.secretsDir), 'configs');
  }

  /** Loads the kept assignments and resumes their controllers, then connects. */
  start(): void {
    const loaded = this.taskList.load();
    for (const t of loaded) this.track(t);
    if (this.opts.discovery) void this.readopt(loaded, this.opts.discovery);
    this.prober?.start();
    this.session.start();
  }

  async stop(): Promise<void> {
    this.reporter.stop();
    await this.session.stop();
    await this.prober?.stop();
    await this.sandboxes?.idle();
    this.taskList.flush();
    // Containers keep running under their monitors: a restarted agent re-adopts them.
  }

  /**
   * After a restart of swarmd with its containers kept: those on overlay networks are attached to
   * service discovery again (the DNS proxy's sockets went with the old swarmd).
   */
  private async readopt(tasks: readonly Task[], discovery: ServiceDiscovery): Promise<void> {
    for (const t of tasks) {
      if (isTerminalState(t.status?.state)) continue;
      try {
        const info = await this.executor.inspect(t.id);
        if (info.status === 'exited' || info.pid <= 0 || !info.overlays?.length) continue;
        const interfaces = Object.fromEntries(info.overlays.map((o) => [o.networkId, o.ifname]));
        await discovery.attach({ id: t.id, netns: `/proc/${info.pid}/ns/net`, networks: info.overlays.map((o) => o.networkId), upstream: t.spec?.container?.dnsConfig?.nameservers ?? [], interfaces });
      } catch (err) {
        this.log.debug({ task: t.id, err: (err as Error).message }, 'agent: a kept container was not attached to service discovery again');
      }
    }
  }

  // ---------------------------------------------------------------- tasks

  private track(task: Task): void {
    const existing = this.tasks.get(task.id);
    if (existing) {
      // The manager is behind what this node observed (a report lost with a leader that died):
      // report the present state again.
      if (isAfter(existing.state, task.status?.state) && existing.task.status && !this.reporter.has(task.id)) this.reporter.queue(task.id, existing.task.status);
      existing.update(task);
      return;
    }
    const c = new TaskController(task, {
      executor: this.executor,
      slots: this.startSlots,
      prepareSpec: (t) => this.prepareSpec(t),
      report: (id, status) => this.reportStatus(id, status),
      log: this.log,
    });
    this.tasks.set(task.id, c);
    // Finished already: nothing to run; kept known until the manager withdraws it.
    if (isTerminalState(task.status?.state)) c.done = true;
    else void c.run().catch((err: Error) => this.log.error({ task: task.id, err: err.message }, 'agent: task controller failed'));
  }

  private async withdraw(id: string): Promise<void> {
    const c = this.tasks.get(id);
    this.tasks.delete(id);
    c?.withdraw();
    await retry(this.log, `remove ${id}`, () => this.executor.remove(id, { force: true })).catch(() => undefined);
    rmSync(join(this.opts.secretsDir, id), { recursive: true, force: true });
    rmSync(join(this.configsDir, id), { recursive: true, force: true });
  }

  private async applyAssignments(msg: AssignmentsMessage): Promise<void> {
    const before = new Set(this.data.registryCredentials.keys());
    const changes = applyAssignments(msg, this.tasks.keys(), this.data);
    // Which services' credentials this node holds (never the credentials themselves), for the record.
    const now = new Set(this.data.registryCredentials.keys());
    for (const id of now) if (!before.has(id)) this.log.info({ service: id }, 'agent: registry credential received');
    for (const id of before) if (!now.has(id)) this.log.info({ service: id }, 'agent: registry credential withdrawn');
    this.sandboxes?.want(this.data.networks, this.data.peers.values(), msg.type === AssignmentsMessage_Type.TYPE_COMPLETE);
    this.prober?.setTargets(pathTargets(this.data.networks, this.data.peers.values()));
    if (this.opts.discovery) {
      // The routing mesh's network and the nodes on it (each one's own address there).
      const ingress = [...this.data.networks.values()].find((a) => a.network?.spec?.ingress);
      const nodes = ingress ? [ingress.nodeAddress, ...[...this.data.peers.values()].filter((p) => p.networkId === ingress.network?.id && p.nodeAddress).map((p) => p.address)] : [];
      this.opts.discovery.setIngress(ingress ? { networkId: ingress.network!.id, nodes: nodes.filter(Boolean).map((a) => a.split('/')[0]!) } : undefined);
      this.opts.discovery.setServices(this.data.services.values(), msg.sequence);
    }
    for (const id of changes.withdraw) await this.withdraw(id);
    for (const t of changes.track) this.track(t);
    this.taskList.scheduleSave();
    // Containers withdrawn: a sandbox may have lost its last endpoint.
    if (changes.withdraw.length > 0) this.sandboxes?.reconcile();
  }

  /** The image pulled (with the task's service's registry credential), the task's files written, the executor's spec built. */
  private async prepareSpec(task: Task): Promise<ContainerSpec> {
    const image = await this.pull(task.spec?.container?.image ?? '', this.data.registryCredentials.get(task.serviceId));
    const c = task.spec?.container;
    const fileMounts = [
      ...writeSecretFiles(join(this.opts.secretsDir, task.id), c?.secrets ?? [], this.data.secrets),
      ...(c?.configs.length ? writeConfigFiles(join(this.configsDir, task.id), c.configs, this.data.configs) : []),
    ];
    return containerSpec(task, image, { network: this.opts.network, ...(this.opts.overlay ? { overlays: this.data.networks, egress: this.opts.egress === true } : {}), fileMounts });
  }

  /**
   * Pulls an image for a task that starts. A tag is resolved again every time (a tag moves; the
   * layers the store has are not downloaded again); a digest the store holds already is served
   * from it (it cannot change). Tasks that start meanwhile share a pull in flight of the same
   * image with the same credential; nothing is kept once it is done. `auth` is used only with the
   * registry it is for (a credential is never sent to another registry).
   */
  pull(image: string, auth?: RegistryAuth): Promise<ImageRecord> {
    const key = `${image}\n${auth ? JSON.stringify(RegistryAuth.toJSON(auth)) : ''}`;
    let p = this.pulls.get(key);
    if (!p) {
      p = (async () => {
        const ref = parseImageRef(image, this.opts.defaultRegistry);
        if (ref.reference.startsWith('sha256:')) {
          const held = await this.opts.images.getImage(imageReference(ref.registry, ref.repository, ref.reference));
          if (held && (await Promise.all(held.layers.map((l) => this.opts.images.hasLayer(l.diffId)))).every(Boolean)) return held;
        }
        const useAuth = auth !== undefined && sameRegistry(auth.serverAddress, ref.host);
        if (auth !== undefined && !useAuth) this.log.warn({ image, registry: ref.host, credentialFor: auth.serverAddress }, "agent: the service's registry credential is for another registry; pulling without it");
        const client = new RegistryClient({ url: ref.registry, ...(useAuth ? registryClientAuth(auth) : {}) });
        return (await this.opts.images.pull(client, ref.repository, ref.reference)).image;
      })().finally(() => this.pulls.delete(key));
      this.pulls.set(key, p);
    }
    return p;
  }

  // ---------------------------------------------------------------- status reports

  /** Queues a status for the dispatcher; sent in batches, kept until a session takes them. */
  private reportStatus(taskId: string, status: TaskStatus): void {
    if (this.tasks.has(taskId)) this.taskList.scheduleSave();
    // RUNNING and the end at info; the steps between (accepted … starting) at debug: five lines per
    // container at info cost a busy worker several per cent of its CPU when a hundred started at once.
    const level = status.state === TaskState.TASK_STATE_RUNNING || isAfter(status.state, TaskState.TASK_STATE_RUNNING) ? 'info' : 'debug';
    this.log[level]({ task: taskId, state: stateName(status.state), message: status.message, err: status.err || undefined }, 'agent: task state');
    this.reporter.queue(taskId, status);
  }
}
