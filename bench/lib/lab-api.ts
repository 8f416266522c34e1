// What the lab benchmarks share about a tswarm lab cluster: control-API calls (tasks, scale), a
// task's container pid, and host programs run in a container's network namespace.
import * as grpc from '@grpc/grpc-js';
import { ControlClient, ResolveImage, UpdateServiceRequest_Rollback, type GetRequest, type GetServiceResponse, type ListTasksResponse } from '../../proto/gen/tswarm/control.js';
import type { Task } from '../../proto/gen/tswarm/objects.js';
import { RUNTIME, type LabCluster, type TaskJson } from '../../test/lab/cluster.js';
import type { LabHost } from '../../test/lab/lab.js';
import { sleep } from './load.js';

/** A task as `service ps --format json` prints it, with its network attachments. */
export type Attached = TaskJson & { networks?: { networkId: string; addresses: string[] }[] };

/** Wall-clock ms with a fraction, comparable across the processes of this machine. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

/** Host programs in a container's network namespace (its init's pid, as this machine sees it). */
export const nsenter = (pid: number, argv: string[]): [string, string[]] => ['nsenter', ['-t', String(pid), '-n', '--', ...argv]];

/** A control-API client on the manager's local socket (no TLS). */
export function controlClient(c: LabCluster, manager = 'm1'): ControlClient {
  return new ControlClient(`unix:/proc/${c.host(manager).anchorPid}/root/run/tswarm/swarmd.sock`, grpc.credentials.createInsecure());
}

export function call<Req, Res>(fn: (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => (err ? reject(err) : resolve(res))));
}

export async function tasksOf(client: ControlClient, serviceId: string): Promise<Task[]> {
  const r = await call<object, ListTasksResponse>(client.listTasks.bind(client), { filters: { names: [], namePrefixes: [], idPrefixes: [], labels: {}, serviceIds: [serviceId], nodeIds: [], desiredStates: [] } });
  return r.tasks;
}

export async function scale(client: ControlClient, serviceId: string, replicas: number): Promise<void> {
  const { service } = await call<GetRequest, GetServiceResponse>(client.getService.bind(client), { id: serviceId });
  if (!service?.spec) throw new Error(`service ${serviceId} not found`);
  const spec = { ...service.spec, mode: { $case: 'replicated' as const, replicated: { replicas } } };
  await call(client.updateService.bind(client), { serviceId, version: service.meta?.version ?? 0, spec, rollback: UpdateServiceRequest_Rollback.ROLLBACK_NONE, resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER });
}

/** The pid of a task's container on its host. */
export async function taskPid(host: LabHost, taskId: string): Promise<number> {
  const r = await host.exec(RUNTIME, ['state', taskId]);
  if (r.code !== 0) throw new Error(`${RUNTIME} state ${taskId} on ${host.name}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { pid: number }).pid;
}

export async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
