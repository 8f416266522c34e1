// The task reaper's core: a service keeps at most `limit` ended tasks per unit (slot, or node for
// global modes), the newest; older ones are deleted. Only tasks the orchestrator gave up on
// (desired SHUTDOWN or REMOVE) count: a live task, even one that ended (a completed job's task, a
// task not restarted by policy), is the unit's current state and is kept. A task shut down before
// it reached a node counts as ended. While a restart policy limits attempts, a unit keeps at least
// max_attempts ended tasks, so the supervisor can still count them.
import type { Service, Task } from '../../proto/gen/tswarm/objects.js';
import { isLive, isTerminal, modeOf, neverPlaced, newestFirst } from './tasks.js';

/** The tasks of `service` to delete; `tasks` are all of its tasks. */
export function reap(service: Service, tasks: readonly Task[], limit: number): Task[] {
  const mode = modeOf(service);
  const perNode = mode === 'global' || mode === 'globalJob';
  const keep = Math.max(limit, service.spec?.task?.restart?.maxAttempts ?? 0);
  const units = new Map<string, Task[]>();
  for (const t of tasks) {
    if (isLive(t) || !(isTerminal(t) || neverPlaced(t))) continue;
    const key = perNode ? `n/${t.nodeId}` : `s/${t.slot}`;
    const list = units.get(key);
    if (list) list.push(t);
    else units.set(key, [t]);
  }
  const out: Task[] = [];
  for (const list of units.values()) {
    if (list.length <= keep) continue;
    out.push(...list.sort(newestFirst).slice(keep));
  }
  return out;
}
