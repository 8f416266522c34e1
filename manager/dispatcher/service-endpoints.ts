// The services of each overlay network with the tasks that serve them, for the dispatcher's
// ServiceEndpoints items: what every node on a network answers in its embedded DNS and balances
// over in its containers' load balancers. Kept from the store's events, so that a node's items are
// read from an index, not from a scan of every service and task at every sync. Pure: objects in,
// the networks whose items changed out.
//
// A task serves while it is RUNNING and not told to stop (its desired state is RUNNING): the
// moment an orchestrator decides to stop it (scale-down, update, drain, rm), it leaves the
// backends, before its node is told (see dispatcher.ts, the stop gate). A task with a
// healthcheck reports RUNNING only once a check passed, and fails when it turns unhealthy
// (worker/agent/step.ts), so RUNNING here is also "healthy".
import type { Service, Task } from '../../proto/gen/tswarm/objects.js';
import type { ServiceBackend, ServiceEndpoints } from '../../proto/gen/tswarm/dispatcher.js';
import { EndpointSpec_ResolutionMode, TaskState } from '../../proto/gen/tswarm/types.js';
import { stateRank } from '../../common/task-state.js';
import { ingressPorts, isIngress } from '../allocator/ports.js';

const RUNNING = stateRank(TaskState.TASK_STATE_RUNNING);

/** Whether a task is a backend of its service now. */
export function serves(t: Task | undefined): boolean {
  return !!t && !!t.serviceId && t.status?.state === TaskState.TASK_STATE_RUNNING && stateRank(t.desiredState) <= RUNNING && t.networks.length > 0;
}

/** Docker's task name: NAME.SLOT.TASKID, or NAME.NODEID.TASKID for a global service's task. */
export function taskName(serviceName: string, t: Task): string {
  return `${serviceName}.${t.slot > 0 ? t.slot : t.nodeId}.${t.id}`;
}

export class ServiceDirectory {
  /** The routing mesh's network: the services publishing in ingress mode are on it, with their ports. */
  private ingress: string | undefined;

  private readonly services = new Map<string, Service>();
  /** Service id → its serving tasks. */
  private readonly backends = new Map<string, Map<string, Task>>();
  /** Network id → the services on it. */
  private readonly byNetwork = new Map<string, Set<string>>();
  /** `<network id>:<service id>` → the item, made when first read after a change. */
  private readonly items = new Map<string, ServiceEndpoints>();

  /** The routing mesh's network, once it exists. */
  get ingressNetwork(): string | undefined {
    return this.ingress;
  }

  /** The ingress network, once it exists; the networks whose items changed. */
  setIngress(id: string | undefined): string[] {
    if (id === this.ingress) return [];
    const services = [...this.services.values()];
    for (const s of services) this.setService(s.id, undefined);
    this.ingress = id;
    return [...new Set(services.flatMap((s) => this.setService(s.id, s)))];
  }

  private networksOf(s: Service): string[] {
    const out = (s.spec?.task?.networks ?? []).map((n) => n.target);
    if (this.ingress && ingressPorts(s.spec?.endpoint).length > 0) out.push(this.ingress);
    return out;
  }

  /** A service as it is now (undefined: removed); the networks whose items changed. */
  setService(id: string, s: Service | undefined): string[] {
    const before = this.services.get(id);
    const was = before ? this.networksOf(before) : [];
    const now = s ? this.networksOf(s) : [];
    for (const n of was) {
      this.byNetwork.get(n)?.delete(id);
      if (this.byNetwork.get(n)?.size === 0) this.byNetwork.delete(n);
      this.items.delete(`${n}:${id}`);
    }
    if (s) {
      this.services.set(id, s);
      for (const n of now) {
        let set = this.byNetwork.get(n);
        if (!set) this.byNetwork.set(n, (set = new Set()));
        set.add(id);
        this.items.delete(`${n}:${id}`);
      }
    } else {
      this.services.delete(id);
      this.backends.delete(id);
    }
    return [...new Set([...was, ...now])];
  }

  /** A task as it is now (undefined: removed); the networks whose items changed. */
  setTask(id: string, t: Task | undefined, serviceId = t?.serviceId ?? ''): string[] {
    const tasks = this.backends.get(serviceId);
    const had = tasks?.get(id);
    if (serves(t)) {
      const prev = had ? JSON.stringify([had.networks, had.slot, had.spec?.container?.hostname]) : '';
      if (prev === JSON.stringify([t!.networks, t!.slot, t!.spec?.container?.hostname])) return [];
      if (tasks) tasks.set(id, t!);
      else this.backends.set(serviceId, new Map([[id, t!]]));
    } else {
      if (!had) return [];
      tasks!.delete(id);
      if (tasks!.size === 0) this.backends.delete(serviceId);
    }
    const s = this.services.get(serviceId);
    const changed = s ? this.networksOf(s) : [];
    for (const n of changed) this.items.delete(`${n}:${serviceId}`);
    return changed;
  }

  /** The items of a network: one per service on it. */
  of(networkId: string): ServiceEndpoints[] {
    const out: ServiceEndpoints[] = [];
    for (const id of this.byNetwork.get(networkId) ?? []) {
      const key = `${networkId}:${id}`;
      let item = this.items.get(key);
      if (!item) this.items.set(key, (item = this.make(networkId, this.services.get(id)!)));
      out.push(item);
    }
    return out;
  }

  clear(): void {
    this.services.clear();
    this.backends.clear();
    this.byNetwork.clear();
    this.items.clear();
    this.ingress = undefined;
  }

  private make(networkId: string, s: Service): ServiceEndpoints {
    const name = s.spec?.annotations?.name ?? s.id;
    const mode = s.spec?.endpoint?.mode ?? EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP;
    const vip = mode === EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP ? (s.endpoint?.virtualIps.find((v) => v.networkId === networkId)?.addr.split('/')[0] ?? '') : '';
    const aliases = s.spec?.task?.networks.find((n) => n.target === networkId)?.aliases ?? [];
    const backends: ServiceBackend[] = [];
    for (const t of this.backends.get(s.id)?.values() ?? []) {
      const address = t.networks.find((a) => a.networkId === networkId)?.addresses[0]?.split('/')[0];
      if (!address) continue;
      backends.push({ taskId: t.id, address, slot: t.slot, name: taskName(name, t), hostname: t.spec?.container?.hostname ?? '' });
    }
    backends.sort((a, b) => a.slot - b.slot || (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0));
    const ports = networkId === this.ingress ? (s.endpoint?.ports ?? []).filter((p) => isIngress(p) && p.publishedPort > 0) : [];
    return { id: `${networkId}:${s.id}`, networkId, serviceId: s.id, name, mode, vip, aliases: [...aliases], backends, ports };
  }
}
