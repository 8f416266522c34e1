// The node's assignments: what the dispatcher's Assignments stream says this node must hold
// (tasks, and the secrets, configs and registry credentials they use, the overlay networks they
// are on and those networks' peers), and the task list kept on disk so that a restarted agent
// knows its tasks while no manager answers.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AssignmentChange_Action, AssignmentsMessage_Type, type AssignmentsMessage, type NetworkAssignment, type NetworkPeer, type ServiceEndpoints } from '../../proto/gen/tswarm/dispatcher.js';
import { Task } from '../../proto/gen/tswarm/objects.js';
import type { RegistryAuth } from '../../proto/gen/tswarm/types.js';
import { CorruptFileError } from '../../common/errors.js';

/** The agent's task list is written at most this often (see TaskList.scheduleSave). */
const SAVE_DELAY_MS = 100;

/** Secret and config data and registry credentials delivered with the assignments (in the clear: kept in memory only). */
export interface AssignedData {
  secrets: Map<string, Buffer>;
  configs: Map<string, Buffer>;
  /** By service id: what the service's images are pulled with (`--with-registry-auth`). */
  registryCredentials: Map<string, RegistryAuth>;
  /** By network id: the overlay networks this node's tasks are on, with the node's address there. */
  networks: Map<string, NetworkAssignment>;
  /** By peer id (network and endpoint): the endpoints of those networks on other nodes. */
  peers: Map<string, NetworkPeer>;
  /** By item id (network and service): the services of those networks, with their serving tasks. */
  services: Map<string, ServiceEndpoints>;
}

/** An empty AssignedData. */
export function noAssignedData(): AssignedData {
  return { secrets: new Map(), configs: new Map(), registryCredentials: new Map(), networks: new Map(), peers: new Map(), services: new Map() };
}

/** What a message asks of the agent's tasks, in the message's order. */
export interface TaskChanges {
  /** New tasks, or new versions of known ones. */
  track: Task[];
  /** Tasks no longer assigned here. */
  withdraw: string[];
}

/**
 * Applies one AssignmentsMessage: the secrets, configs, registry credentials, networks and peers to `data` (first:
 * a task of the same message may be prepared at once), the tasks as changes for the agent. A
 * complete message withdraws every known task it does not list, and replaces the data whole.
 */
export function applyAssignments(msg: AssignmentsMessage, known: Iterable<string>, data: AssignedData): TaskChanges {
  if (msg.type === AssignmentsMessage_Type.TYPE_COMPLETE) {
    // What the complete set does not carry any more was withdrawn while no session was up.
    data.secrets.clear();
    data.configs.clear();
    data.registryCredentials.clear();
    data.networks.clear();
    data.peers.clear();
    data.services.clear();
  }
  for (const ch of msg.changes) {
    const item = ch.assignment?.item;
    const remove = ch.action === AssignmentChange_Action.ACTION_REMOVE;
    if (item?.$case === 'secret') {
      if (remove) data.secrets.delete(item.secret.id);
      else data.secrets.set(item.secret.id, Buffer.from(item.secret.spec?.data ?? []));
    } else if (item?.$case === 'config') {
      if (remove) data.configs.delete(item.config.id);
      else data.configs.set(item.config.id, Buffer.from(item.config.spec?.data ?? []));
    } else if (item?.$case === 'registryCredential') {
      const { serviceId, auth } = item.registryCredential;
      if (remove || !auth) data.registryCredentials.delete(serviceId);
      else data.registryCredentials.set(serviceId, auth);
    } else if (item?.$case === 'network') {
      const id = item.network.network?.id ?? '';
      if (remove) data.networks.delete(id);
      else data.networks.set(id, item.network);
    } else if (item?.$case === 'peer') {
      if (remove) data.peers.delete(item.peer.id);
      else data.peers.set(item.peer.id, item.peer);
    } else if (item?.$case === 'serviceEndpoints') {
      if (remove) data.services.delete(item.serviceEndpoints.id);
      else data.services.set(item.serviceEndpoints.id, item.serviceEndpoints);
    }
  }
  const out: TaskChanges = { track: [], withdraw: [] };
  const seen = new Set<string>();
  for (const ch of msg.changes) {
    const item = ch.assignment?.item;
    if (item?.$case !== 'task') continue;
    if (ch.action === AssignmentChange_Action.ACTION_REMOVE) out.withdraw.push(item.task.id);
    else {
      seen.add(item.task.id);
      out.track.push(item.task);
    }
  }
  if (msg.type === AssignmentsMessage_Type.TYPE_COMPLETE) {
    for (const id of known) if (!seen.has(id) && !out.withdraw.includes(id)) out.withdraw.push(id);
  }
  return out;
}

/** `<stateDir>/tasks.json`: the node's tasks with the statuses it last saw. */
export class TaskList {
  private saveTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stateDir: string,
    /** The tasks to write, read when a save happens. */
    private readonly current: () => Task[],
  ) {}

  private get path(): string {
    return join(this.stateDir, 'tasks.json');
  }

  load(): Task[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return [];
    }
    try {
      const raw = JSON.parse(text) as unknown[];
      return raw.map((t) => Task.fromJSON(t));
    } catch (err) {
      throw new CorruptFileError(this.path, `is not the agent's task list (${(err as Error).message}); move it away to start over (containers are then not re-adopted)`);
    }
  }

  /**
   * At most one write per SAVE_DELAY_MS, however many states changed meanwhile: the whole list is
   * written each time, and a scale of a hundred tasks changes states hundreds of times a second.
   * What a crash loses in that window is recovered on restart: a task's controller asks the
   * executor for its container by the task's id, and the manager resends the assignments with
   * the session.
   */
  scheduleSave(): void {
    if (this.saveTimer !== undefined) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.save();
    }, SAVE_DELAY_MS);
  }

  /** Writes now what a scheduled save would have written. */
  flush(): void {
    if (this.saveTimer === undefined) return;
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    this.save();
  }

  private save(): void {
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.current().map((t) => Task.toJSON(t))));
    renameSync(tmp, this.path);
  }
}
