// The worker's agent: a session with the dispatcher on the leader, the node's assignments, and one
// controller per task that drives the executor through the task state machine:
//
//   ASSIGNED → ACCEPTED → PREPARING (pull, root filesystem, network, bundle) → READY → STARTING
//   → RUNNING → COMPLETE (exit 0) | FAILED (any other exit) ; SHUTDOWN when asked to stop;
//   REJECTED when it could not be started.
//
// States only move forward, and never past the desired state. The container id is the task id,
// so a restarted agent finds its containers again (the executor keeps them, under their
// monitors); the assignments are also kept in `<state>/tasks.json`, so that the agent knows
// its tasks while no manager answers. The agent moves to another manager when its session ends:
// first to the leader a manager named, then through the known managers in turn.
import * as grpc from '@grpc/grpc-js';
import { chmodSync, chownSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DispatcherClient, type AssignmentsMessage, type SessionMessage, type TaskStatusUpdate } from '../../proto/gen/tswarm/dispatcher.js';
import { AssignmentChange_Action, AssignmentsMessage_Type } from '../../proto/gen/tswarm/dispatcher.js';
import { Task } from '../../proto/gen/tswarm/objects.js';
import { Mount_Type, PortConfig_Protocol, PortConfig_PublishMode, TaskState, taskStateToNumber, type NodeDescription, type PortConfig, type TaskStatus } from '../../proto/gen/tswarm/types.js';
import { CorruptFileError, TswarmError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { NoSuchContainerError, type ContainerInfo, type Executor, type ExitStatus, type Mount } from '../exec/executor.js';
import { RegistryClient } from '../image/distribution.js';
import type { ImageRecord, ImageStore } from '../image/store.js';
import type { PublishedPort } from '../network/ports.js';
import { writeConfigFiles } from './files.js';
import { parseImageRef } from './reference.js';
import { LogAgent } from './logs.js';

/** The position of a state in the task state machine (its number in the proto; states only move forward). */
export function stateRank(s: TaskState): number {
  return taskStateToNumber(s);
}
const rank = stateRank;
/** The agent's task list is written at most this often (see scheduleSave). */
const SAVE_DELAY_MS = 100;
const TERMINAL = [TaskState.TASK_STATE_COMPLETE, TaskState.TASK_STATE_SHUTDOWN, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_REJECTED, TaskState.TASK_STATE_ORPHANED];
export const isTerminal = (s: TaskState): boolean => TERMINAL.includes(s);

export class AgentError extends TswarmError {}

/**
 * At most `n` steps at once, the others waiting in call order (an urgent one at the front). The
 * agent starts containers through it: with dozens of tasks assigned at once, unbounded prepares
 * only queue in the kernel and delay every container (bench/containers.ts found 8 at a time best
 * on two cores); a prepared container's start goes first, so containers run as soon as they can.
 */
export class Slots {
  private busy = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly n: number) {}

  async run<T>(fn: () => Promise<T>, urgent = false): Promise<T> {
    if (this.busy < this.n) this.busy++;
    else await new Promise<void>((resolve) => (urgent ? this.waiting.unshift(resolve) : this.waiting.push(resolve)));
    try {
      return await fn();
    } finally {
      // Hand the slot over to the next waiter, or free it.
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    }
  }
}

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
  description: NodeDescription;
  /** Where task secrets are written as files before being bind-mounted at /run/secrets (use a tmpfs, e.g. under /run). */
  secretsDir: string;
  /** Where task configs are written as files before being bind-mounted at their targets; default `configs` next to secretsDir (a tmpfs too). */
  configsDir?: string;
  log: Logger;
}

const PROTOCOLS: Record<PortConfig_Protocol, PublishedPort['protocol'] | undefined> = {
  [PortConfig_Protocol.PROTOCOL_TCP]: 'tcp',
  [PortConfig_Protocol.PROTOCOL_UDP]: 'udp',
  [PortConfig_Protocol.PROTOCOL_SCTP]: 'sctp',
  [PortConfig_Protocol.UNRECOGNIZED]: undefined,
};

/**
 * The task's host-mode published ports: from its allocated endpoint if that lists ports, else from
 * its endpoint spec (the scheduler reads both the same way). Ingress ports are not the node's
 * business; a host port of 0 (any free port) is refused by the control API and skipped here.
 */
export function hostPorts(task: Task): { config: PortConfig; port: PublishedPort }[] {
  const allocated = task.endpoint?.ports ?? [];
  const ports = allocated.length > 0 ? allocated : (task.endpoint?.spec?.ports ?? []);
  const out: { config: PortConfig; port: PublishedPort }[] = [];
  for (const c of ports) {
    const protocol = PROTOCOLS[c.protocol];
    if (c.publishMode !== PortConfig_PublishMode.PUBLISH_MODE_HOST || c.publishedPort === 0 || protocol === undefined) continue;
    out.push({ config: c, port: { protocol, published: c.publishedPort, target: c.targetPort } });
  }
  return out;
}

/** One task's controller: runs it once, from whatever state it is in, to a terminal state. */
class TaskController {
  private stopRequested: (() => void) | undefined;
  private readonly stopped: Promise<void>;
  done = false;

  constructor(
    public task: Task,
    private readonly agent: Agent,
  ) {
    this.stopped = new Promise((resolve) => (this.stopRequested = resolve));
  }

  get state(): TaskState {
    return this.task.status?.state ?? TaskState.TASK_STATE_ASSIGNED;
  }

  /** The desired state changed (or the task was withdrawn): stop if it must not run. */
  update(task: Task): void {
    this.task = { ...task, status: rank(task.status?.state ?? TaskState.TASK_STATE_NEW) > rank(this.state) ? task.status : this.task.status };
    if (rank(task.desiredState) > rank(TaskState.TASK_STATE_RUNNING)) this.stopRequested?.();
    if (task.desiredState === TaskState.TASK_STATE_RUNNING) this.runRequested?.();
  }

  private runRequested: (() => void) | undefined;

  /**
   * A task desired READY is prepared and held there (a stop-first update: the new task waits until
   * the old one has stopped); it starts once desired RUNNING, or ends when told to stop.
   */
  private holdWhileReady(): Promise<'run' | 'stop'> {
    if (this.task.desiredState !== TaskState.TASK_STATE_READY) return Promise.resolve(this.wantsToRun ? 'run' : 'stop');
    return Promise.race([new Promise<'run'>((resolve) => (this.runRequested = () => resolve('run'))), this.stopped.then((): 'stop' => 'stop')]);
  }

  withdraw(): void {
    this.stopRequested?.();
  }

  private report(state: TaskState, message: string, extra: Partial<TaskStatus> = {}): void {
    if (rank(state) < rank(this.state)) return;
    const status: TaskStatus = { timestampUnixMs: Date.now(), state, message, err: '', pendingReason: '', ...extra };
    this.task = { ...this.task, status };
    this.agent.reportStatus(this.task.id, status);
  }

  private get wantsToRun(): boolean {
    return rank(this.task.desiredState) <= rank(TaskState.TASK_STATE_RUNNING);
  }

  async run(): Promise<void> {
    const ex = this.agent.executor;
    const id = this.task.id;
    try {
      let info: ContainerInfo | undefined = await ex.inspect(id).catch(() => undefined);
      if (!info) {
        if (rank(this.state) >= rank(TaskState.TASK_STATE_STARTING)) {
          // It had started on this node, and its container is gone (e.g. the host restarted).
          return this.report(TaskState.TASK_STATE_FAILED, 'the container is gone', { err: 'the container of this task no longer exists on the node' });
        }
        if (!this.wantsToRun) return this.report(TaskState.TASK_STATE_SHUTDOWN, 'shut down before it started');
        this.report(TaskState.TASK_STATE_ACCEPTED, 'accepted');
        this.report(TaskState.TASK_STATE_PREPARING, 'preparing');
        try {
          const image = await this.agent.pull(this.task.spec?.container?.image ?? '');
          const spec = this.agent.containerSpec(this.task, image);
          info = await this.agent.startSlots.run(() => ex.prepare(spec));
        } catch (err) {
          return this.report(TaskState.TASK_STATE_REJECTED, 'preparing failed', { err: (err as Error).message });
        }
        this.report(TaskState.TASK_STATE_READY, 'prepared');
      }
      if (info.status === 'created') {
        if ((await this.holdWhileReady()) === 'stop') {
          await this.agent.retry(`remove ${id}`, () => ex.remove(id, { force: true })).catch((err: unknown) => {
            if (!(err instanceof NoSuchContainerError)) throw err;
          });
          return this.report(TaskState.TASK_STATE_SHUTDOWN, 'shut down before it started');
        }
        this.report(TaskState.TASK_STATE_STARTING, 'starting');
        try {
          await this.agent.startSlots.run(() => ex.start(id), true);
        } catch (err) {
          return this.report(TaskState.TASK_STATE_REJECTED, 'starting failed', { err: (err as Error).message });
        }
        info = await ex.inspect(id);
      }
      if (info.status === 'running') {
        const published = hostPorts(this.task);
        const portStatus = published.length > 0 ? { portStatus: { ports: published.map((p) => p.config) } } : {};
        this.report(TaskState.TASK_STATE_RUNNING, 'running', { container: { containerId: id, pid: info.pid, exitCode: 0 }, ...portStatus });
        const abort = new AbortController();
        const exited = ex.wait(id, abort.signal).then((x): ExitStatus | 'stop' => x);
        const health = this.watchHealth(abort.signal);
        const which = await Promise.race([exited, this.stopped.then((): 'stop' => 'stop'), health]);
        if (typeof which === 'object' && 'unhealthy' in which) {
          abort.abort();
          // Reported at once (an update's monitor counts it now, not after the stop grace period),
          // the ports first withdrawn (the report frees them for the scheduler); then stopped.
          await this.unpublish();
          this.report(TaskState.TASK_STATE_FAILED, 'unhealthy', { container: { containerId: id, pid: info.pid, exitCode: 0 }, err: `healthcheck failed ${which.failures} times in a row: ${which.last}` });
          const grace = Number(this.task.spec?.container?.stopGracePeriodMs ?? 0) || 10_000;
          await this.agent.retry(`stop ${id}`, () => ex.stop(id, grace));
          return;
        }
        abort.abort();
        if (which === 'stop') {
          abort.abort();
          const grace = Number(this.task.spec?.container?.stopGracePeriodMs ?? 0) || 10_000;
          const x = await this.agent.retry(`stop ${id}`, () => ex.stop(id, grace));
          await this.unpublish();
          return this.report(TaskState.TASK_STATE_SHUTDOWN, 'shut down', { container: { containerId: id, pid: 0, exitCode: x.exitCode } });
        }
        await this.unpublish();
        return this.finish(which);
      }
      // Exited while nobody watched (e.g. the agent was restarted).
      await this.unpublish();
      return this.finish(info.exit ?? { exitCode: -1, oomKilled: false, finishedAt: '', error: 'exit status unknown' });
    } finally {
      this.done = true;
    }
  }

  /**
   * Runs the spec's healthcheck in the container every interval (Docker's semantics: failures in
   * the start period do not count; `retries` failures in a row make it unhealthy). Never resolves
   * while healthy, or when there is no healthcheck.
   */
  private watchHealth(signal: AbortSignal): Promise<{ unhealthy: true; failures: number; last: string }> {
    const hc = this.task.spec?.container?.healthcheck;
    const test = hc?.test ?? [];
    if (!hc || test.length === 0 || test[0] === 'NONE') return new Promise(() => undefined);
    const command = test[0] === 'CMD-SHELL' ? ['/bin/sh', '-c', test.slice(1).join(' ')] : test[0] === 'CMD' ? test.slice(1) : test;
    const interval = Number(hc.intervalMs) || 30_000;
    const timeout = Number(hc.timeoutMs) || 30_000;
    const retries = hc.retries || 3;
    const startedAt = Date.now();
    const startPeriod = Number(hc.startPeriodMs) || 0;
    return new Promise((resolve) => {
      let failures = 0;
      const probe = async (): Promise<void> => {
        if (signal.aborted) return;
        let ok = false;
        let last = '';
        let timer: NodeJS.Timeout | undefined;
        try {
          const r = await Promise.race([
            this.agent.executor.exec(this.task.id, command),
            new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms`)), timeout))),
          ]);
          ok = r.exitCode === 0;
          last = ok ? '' : `exit code ${r.exitCode}${r.stderr.trim() || r.stdout.trim() ? `: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 200)}` : ''}`;
        } catch (err) {
          last = (err as Error).message;
        } finally {
          clearTimeout(timer);
        }
        if (signal.aborted) return;
        if (ok) failures = 0;
        else if (Date.now() - startedAt >= startPeriod) failures++;
        if (failures >= retries) return resolve({ unhealthy: true, failures, last });
        setTimeout(() => void probe(), interval);
      };
      setTimeout(() => void probe(), interval);
    });
  }

  /**
   * The task's container ended: its published ports are withdrawn before the terminal state is
   * reported, since the scheduler frees them on that report and may place the next task of the
   * port here. A failure is logged; the ports go with the container at the latest.
   */
  private async unpublish(): Promise<void> {
    if (hostPorts(this.task).length === 0) return;
    await this.agent.executor.unpublish(this.task.id).catch((err: unknown) => this.agent.warn(this.task.id, `could not withdraw the published ports: ${(err as Error).message}`));
  }

  private finish(x: ExitStatus): void {
    const container = { containerId: this.task.id, pid: 0, exitCode: x.exitCode };
    if (x.exitCode === 0) return this.report(TaskState.TASK_STATE_COMPLETE, 'finished', { container });
    const why = x.oomKilled ? 'killed: out of memory' : x.signal ? `killed by ${x.signal}` : `exit code ${x.exitCode}`;
    this.report(TaskState.TASK_STATE_FAILED, why, { container, err: x.error ?? `task: non-zero exit (${x.exitCode})` });
  }
}

export class Agent {
  readonly executor: Executor;
  /** Container prepares and starts in flight at once (see Slots). */
  readonly startSlots = new Slots(8);
  private readonly tasks = new Map<string, TaskController>();
  private readonly pulls = new Map<string, Promise<ImageRecord>>();
  /** Secrets delivered with the assignments (data in the clear: kept in memory and on the secrets tmpfs only). */
  private readonly secrets = new Map<string, Buffer>();
  /** Configs delivered with the assignments (kept in memory and, for the tasks using them, on the configs tmpfs). */
  private readonly configs = new Map<string, Buffer>();
  private pendingStatus = new Map<string, TaskStatus>();
  private statusTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private sessionId = '';
  private client: DispatcherClient | undefined;
  private preferred: string | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly log: Logger;
  private readonly logAgent: LogAgent;

  constructor(private readonly opts: AgentOptions) {
    this.executor = opts.executor;
    this.log = opts.log;
    // `service logs`: listens for log subscriptions with each session (worker/agent/logs.ts).
    this.logAgent = new LogAgent({ executor: opts.executor, credentials: opts.credentials, ...(opts.channelOptions ? { channelOptions: opts.channelOptions } : {}), log: opts.log });
    mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
  }

  private get configsDir(): string {
    return this.opts.configsDir ?? join(dirname(this.opts.secretsDir), 'configs');
  }

  warn(taskId: string, message: string): void {
    this.log.warn({ task: taskId }, `agent: ${message}`);
  }

  private get tasksPath(): string {
    return join(this.opts.stateDir, 'tasks.json');
  }

  /** Loads the kept assignments and resumes their controllers, then connects. */
  start(): void {
    for (const t of this.loadTasks()) this.track(t);
    this.loop = this.sessionLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.client?.close();
    if (this.statusTimer) clearTimeout(this.statusTimer);
    await this.loop;
    if (this.saveTimer !== undefined) {
      clearTimeout(this.saveTimer);
      this.saveTimer = undefined;
      this.saveTasks();
    }
    // Containers keep running under their monitors: a restarted agent re-adopts them.
  }

  // ---------------------------------------------------------------- persistence

  private loadTasks(): Task[] {
    let text: string;
    try {
      text = readFileSync(this.tasksPath, 'utf8');
    } catch {
      return [];
    }
    try {
      const raw = JSON.parse(text) as unknown[];
      return raw.map((t) => Task.fromJSON(t));
    } catch (err) {
      throw new CorruptFileError(this.tasksPath, `is not the agent's task list (${(err as Error).message}); move it away to start over (containers are then not re-adopted)`);
    }
  }

  private saveTimer: NodeJS.Timeout | undefined;

  /**
   * At most one write of tasks.json per SAVE_DELAY_MS, however many states changed meanwhile: the
   * whole list is written each time, and a scale of a hundred tasks changes states hundreds of
   * times a second. What a crash loses in that window is recovered on restart: a task's
   * controller asks the executor for its container by the task's id, and the manager resends the
   * assignments with the session.
   */
  private scheduleSave(): void {
    if (this.saveTimer !== undefined) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.saveTasks();
    }, SAVE_DELAY_MS);
  }

  private saveTasks(): void {
    const tmp = `${this.tasksPath}.tmp`;
    writeFileSync(tmp, JSON.stringify([...this.tasks.values()].map((c) => Task.toJSON(c.task))));
    renameSync(tmp, this.tasksPath);
  }

  // ---------------------------------------------------------------- tasks

  private track(task: Task): void {
    const existing = this.tasks.get(task.id);
    if (existing) {
      // The manager is behind what this node observed (a report lost with a leader that died):
      // report the present state again.
      const known = task.status?.state ?? TaskState.TASK_STATE_NEW;
      if (rank(existing.state) > rank(known) && existing.task.status && !this.pendingStatus.has(task.id)) this.queueStatus(task.id, existing.task.status);
      existing.update(task);
      return;
    }
    if (isTerminal(task.status?.state ?? TaskState.TASK_STATE_NEW)) {
      // Finished already: nothing to run; keep it known until the manager withdraws it.
      const c = new TaskController(task, this);
      c.done = true;
      this.tasks.set(task.id, c);
      return;
    }
    const c = new TaskController(task, this);
    this.tasks.set(task.id, c);
    void c.run().catch((err: Error) => this.log.error({ task: task.id, err: err.message }, 'agent: task controller failed'));
  }

  private async withdraw(id: string): Promise<void> {
    const c = this.tasks.get(id);
    this.tasks.delete(id);
    c?.withdraw();
    await this.retry(`remove ${id}`, () => this.executor.remove(id, { force: true })).catch(() => undefined);
    rmSync(join(this.opts.secretsDir, id), { recursive: true, force: true });
    rmSync(join(this.configsDir, id), { recursive: true, force: true });
  }

  /**
   * Writes the task's secrets as files (mode, uid and gid as the reference says) into a directory
   * of its own, to be bind-mounted read-only at /run/secrets; a missing secret rejects the task.
   */
  private secretMounts(task: Task): Mount[] {
    const refs = task.spec?.container?.secrets ?? [];
    if (refs.length === 0) return [];
    const dir = join(this.opts.secretsDir, task.id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const r of refs) {
      const data = this.secrets.get(r.secretId);
      if (!data) throw new AgentError(`secret ${r.secretName || r.secretId} was not delivered to this node`);
      const name = r.file?.name || r.secretName;
      if (!name || name.includes('/') || name === '..' || name === '.') throw new AgentError(`secret ${r.secretName}: the file name "${name}" must be a plain name`);
      const path = join(dir, name);
      writeFileSync(path, data, { mode: r.file?.mode || 0o444 });
      chmodSync(path, r.file?.mode || 0o444);
      chownSync(path, r.file?.uid ?? 0, r.file?.gid ?? 0);
    }
    chmodSync(dir, 0o755);
    return [{ type: 'bind', source: dir, target: '/run/secrets', readOnly: true }];
  }

  /** The task's configs as files on the configs tmpfs, each bind-mounted read-only at its target (see files.ts). */
  private configMounts(task: Task): Mount[] {
    const refs = task.spec?.container?.configs ?? [];
    if (refs.length === 0) return [];
    return writeConfigFiles(join(this.configsDir, task.id), refs, this.configs);
  }

  private async applyAssignments(msg: AssignmentsMessage): Promise<void> {
    const seen = new Set<string>();
    // Secrets and configs first: a task of the same message may be prepared at once.
    for (const ch of msg.changes) {
      const item = ch.assignment?.item;
      const remove = ch.action === AssignmentChange_Action.ACTION_REMOVE;
      if (item?.$case === 'secret') {
        if (remove) this.secrets.delete(item.secret.id);
        else this.secrets.set(item.secret.id, Buffer.from(item.secret.spec?.data ?? []));
      } else if (item?.$case === 'config') {
        if (remove) this.configs.delete(item.config.id);
        else this.configs.set(item.config.id, Buffer.from(item.config.spec?.data ?? []));
      }
    }
    for (const ch of msg.changes) {
      const item = ch.assignment?.item;
      if (item?.$case !== 'task') continue;
      if (ch.action === AssignmentChange_Action.ACTION_REMOVE) await this.withdraw(item.task.id);
      else {
        seen.add(item.task.id);
        this.track(item.task);
      }
    }
    if (msg.type === AssignmentsMessage_Type.TYPE_COMPLETE) {
      for (const id of [...this.tasks.keys()]) if (!seen.has(id)) await this.withdraw(id);
    }
    this.scheduleSave();
  }

  /**
   * Stopping and removing must not be given up on after one failure (a busy machine can fail a
   * spawn): a container left running would run on unseen. Five attempts, a second apart; the
   * last error is logged and thrown.
   */
  async retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof NoSuchContainerError) throw err;
        this.log.warn({ err: (err as Error).message, attempt }, `agent: ${what} failed`);
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
  }

  /** Pulls an image once per reference, however many tasks need it at the same time. */
  pull(image: string): Promise<ImageRecord> {
    let p = this.pulls.get(image);
    if (!p) {
      p = (async () => {
        const ref = parseImageRef(image, this.opts.defaultRegistry);
        const client = new RegistryClient({ url: ref.registry });
        return (await this.opts.images.pull(client, ref.repository, ref.reference)).image;
      })();
      this.pulls.set(image, p);
      p.catch(() => this.pulls.delete(image));
    }
    return p;
  }

  containerSpec(task: Task, image: ImageRecord): Parameters<Executor['prepare']>[0] {
    const c = task.spec?.container;
    const limits = task.spec?.resources?.limits;
    const mounts: Mount[] = (c?.mounts ?? []).map((m): Mount => {
      if (m.type === Mount_Type.TYPE_TMPFS) return { type: 'tmpfs', target: m.target, ...(m.tmpfsSizeBytes ? { sizeBytes: Number(m.tmpfsSizeBytes) } : {}), ...(m.tmpfsMode ? { mode: m.tmpfsMode } : {}) };
      return { type: m.type === Mount_Type.TYPE_VOLUME ? 'volume' : 'bind', source: m.source, target: m.target, readOnly: m.readOnly };
    });
    const ports = hostPorts(task).map((p) => p.port);
    if (ports.length > 0 && this.opts.network !== 'bridge') {
      throw new AgentError(`published port ${ports[0]!.published}/${ports[0]!.protocol} (host mode) needs the bridge network, and this node runs containers without one (start swarmd with --bridge NAME:SUBNET)`);
    }
    return {
      id: task.id,
      image,
      ...(c?.command.length ? { command: c.command } : {}),
      ...(c?.args.length ? { args: c.args } : {}),
      env: c?.env ?? [],
      hostname: c?.hostname || task.id.slice(0, 12),
      ...(c?.dir ? { dir: c.dir } : {}),
      ...(c?.user ? { user: c.user } : {}),
      limits: {
        ...(limits?.memoryBytes ? { memoryBytes: Number(limits.memoryBytes) } : {}),
        ...(limits?.nanoCpus ? { nanoCpus: Number(limits.nanoCpus) } : {}),
        ...(limits?.pids ? { pids: Number(limits.pids) } : {}),
      },
      network: this.opts.network,
      ...(ports.length > 0 ? { ports } : {}),
      mounts: [...mounts, ...this.secretMounts(task), ...this.configMounts(task)],
    };
  }

  // ---------------------------------------------------------------- status reports

  /** Queues a status for the dispatcher; sent in batches, kept until a session takes them. */
  reportStatus(taskId: string, status: TaskStatus): void {
    if (this.tasks.has(taskId)) this.scheduleSave();
    // RUNNING and the end at info; the steps between (accepted … starting) at debug: five lines per
    // container at info cost a busy worker several per cent of its CPU when a hundred started at once.
    const level = status.state === TaskState.TASK_STATE_RUNNING || rank(status.state) > rank(TaskState.TASK_STATE_RUNNING) ? 'info' : 'debug';
    this.log[level]({ task: taskId, state: status.state.replace('TASK_STATE_', '').toLowerCase(), message: status.message, err: status.err || undefined }, 'agent: task state');
    this.queueStatus(taskId, status);
  }

  private queueStatus(taskId: string, status: TaskStatus): void {
    const prev = this.pendingStatus.get(taskId);
    if (!prev || rank(status.state) >= rank(prev.state)) this.pendingStatus.set(taskId, status);
    if (!this.statusTimer) this.statusTimer = setTimeout(() => void this.sendStatus(), 25);
  }

  private async sendStatus(): Promise<void> {
    this.statusTimer = undefined;
    if (!this.client || !this.sessionId || this.pendingStatus.size === 0) return;
    const batch = this.pendingStatus;
    this.pendingStatus = new Map();
    const updates: TaskStatusUpdate[] = [...batch].map(([taskId, status]) => ({ taskId, status }));
    const client = this.client;
    const ok = await new Promise<boolean>((resolve) =>
      client.updateTaskStatus({ sessionId: this.sessionId, updates }, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err) => resolve(!err)),
    );
    if (!ok) {
      for (const [id, st] of batch) if (!this.pendingStatus.has(id)) this.pendingStatus.set(id, st);
      if (!this.stopped && !this.statusTimer) this.statusTimer = setTimeout(() => void this.sendStatus(), 500);
    }
  }

  // ---------------------------------------------------------------- the session

  private async sessionLoop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      // The leader a manager named is tried next; otherwise the known managers in turn.
      const addrs = this.opts.managers();
      const addr = this.preferred ?? addrs[attempt % Math.max(1, addrs.length)];
      this.preferred = undefined;
      if (!addr) {
        await this.sleep(1_000);
        continue;
      }
      try {
        await this.runSession(addr);
        attempt = 0;
      } catch (err) {
        const e = err as grpc.ServiceError;
        const leader = e.metadata?.get('leader')[0];
        if (typeof leader === 'string' && leader) this.preferred = leader;
        else attempt++;
        if (!this.stopped) this.log.debug({ manager: addr, err: e.details || e.message }, 'agent: session ended; trying again');
      }
      this.sessionId = '';
      this.client?.close();
      this.client = undefined;
      if (!this.stopped) await this.sleep(this.preferred ? 50 : 300);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** One session with one manager; resolves or rejects when it ends. */
  private runSession(addr: string): Promise<void> {
    const client = new DispatcherClient(addr, this.opts.credentials(), this.opts.channelOptions ?? {});
    this.client = client;
    return new Promise<void>((resolve, reject) => {
      let heartbeat: NodeJS.Timeout | undefined;
      let assignments: grpc.ClientReadableStream<AssignmentsMessage> | undefined;
      const end = (err?: unknown): void => {
        this.logAgent.detach();
        if (heartbeat) clearTimeout(heartbeat);
        session.cancel();
        assignments?.cancel();
        if (err) reject(err instanceof Error ? err : new AgentError('session failed'));
        else resolve();
      };
      const onStop = setInterval(() => this.stopped && end(), 200);
      const session = client.session({ description: this.opts.description, sessionId: '' });
      session.on('error', (err) => {
        clearInterval(onStop);
        end(err);
      });
      session.on('end', () => {
        clearInterval(onStop);
        end();
      });
      session.on('data', (m: SessionMessage) => {
        if (this.sessionId) return;
        this.sessionId = m.sessionId;
        const managers = m.managers.map((p) => p.addr).filter(Boolean);
        if (managers.length > 0) this.opts.onManagers?.(managers);
        this.log.info({ manager: addr, session: m.sessionId }, 'agent: session established');
        this.logAgent.attach(addr);
        const beat = (): void => {
          client.heartbeat({ sessionId: this.sessionId }, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err, res) => {
            if (err) return end(err);
            heartbeat = setTimeout(beat, Math.max(100, Number(res.periodMs) || 1000));
          });
        };
        beat();
        assignments = client.assignments({ sessionId: this.sessionId });
        assignments.on('data', (msg: AssignmentsMessage) => {
          void this.applyAssignments(msg).catch((err: Error) => this.log.error({ err: err.message }, 'agent: could not apply assignments'));
        });
        assignments.on('error', (err) => end(err));
        // Statuses observed while no session was up.
        void this.sendStatus();
      });
    });
  }
}
