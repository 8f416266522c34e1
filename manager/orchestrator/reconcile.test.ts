import { describe, expect, it } from 'vitest';
import type { Node, Service, Task } from '../../proto/gen/tswarm/objects.js';
import { ContainerSpec } from '../../proto/gen/tswarm/specs.js';
import {
  NodeAvailability,
  NodeState,
  RestartPolicy_Condition,
  TaskState,
  UpdateConfig_FailureAction,
  UpdateConfig_Order,
  UpdateStatus_UpdateState,
  type UpdateConfig,
} from '../../proto/gen/tswarm/types.js';
import { DEFAULT_UPDATE } from './update.js';
import { DRAIN_HANDOFF_MS, reconcileService } from './reconcile.js';
import { reap } from './reaper.js';
import { GAVE_UP, isGivenUp } from './restart.js';
import { JOB_DESIRED_STATE, type Plan } from './tasks.js';
import { node, service, task } from './testutil.js';

const { TASK_STATE_RUNNING: RUNNING, TASK_STATE_SHUTDOWN: SHUTDOWN, TASK_STATE_FAILED: FAILED, TASK_STATE_COMPLETE: COMPLETE, TASK_STATE_REMOVE: REMOVE } = TaskState;
const NODES = [node('n1'), node('n2')];

function run(s: Service | undefined, tasks: Task[], o: { nodes?: Node[]; now?: number; limit?: number; serviceId?: string } = {}): Plan {
  return reconcileService({ serviceId: s?.id ?? o.serviceId ?? 'gone', service: s, tasks, nodes: o.nodes ?? NODES, now: o.now ?? 100_000, historyLimit: o.limit ?? 5 });
}

const slots = (ts: Task[]): number[] => ts.map((t) => t.slot).sort((a, b) => a - b);
const desired = (p: Plan, t: Task): TaskState | undefined => p.update.find((u) => u.id === t.id)?.desiredState;

describe('replicated services', () => {
  it('creates one task per slot, as the contract with the allocator and scheduler says', () => {
    const s = service({ replicas: 3, name: 'web', specVersion: 4 });
    const p = run(s, [], { now: 1234 });
    expect(slots(p.create)).toEqual([1, 2, 3]);
    expect(p.update).toEqual([]);
    const t = p.create.find((x) => x.slot === 2)!;
    expect(t).toMatchObject({
      serviceId: s.id,
      nodeId: '',
      specVersion: 4,
      spec: s.spec!.task,
      desiredState: RUNNING,
      status: { state: TaskState.TASK_STATE_NEW, message: 'created', timestampUnixMs: 1234 },
      annotations: { name: 'web.2', labels: {} },
      serviceAnnotations: { name: 'web', labels: { tier: 'front' } },
    });
    expect(t.id).toMatch(/^[0-9a-z]{25}$/);
    expect(t.meta).toBeUndefined();
  });

  it('fills only the free slots, lowest first, and does nothing when the count is right', () => {
    const s = service({ replicas: 4 });
    const tasks = [task(s, { slot: 1 }), task(s, { slot: 3 })];
    expect(slots(run(s, tasks).create)).toEqual([2, 4]);
    const full = [1, 2, 3, 4].map((slot) => task(s, { slot }));
    expect(run(s, full)).toEqual({ create: [], update: [], remove: [] });
  });

  it('a slot whose task was shut down is free again (slot reuse)', () => {
    const s = service({ replicas: 2 });
    const tasks = [task(s, { slot: 1 }), task(s, { slot: 2, state: SHUTDOWN, desired: SHUTDOWN }), task(s, { slot: 3 })];
    // Slots 1 and 3 are live: that is 2 replicas already.
    expect(run(s, tasks).create).toEqual([]);
    const p = run(service({ replicas: 3 }), []);
    expect(slots(p.create)).toEqual([1, 2, 3]);
  });

  it('scales down the tasks not yet running first, then the highest slots', () => {
    const s = service({ replicas: 2 });
    const t1 = task(s, { slot: 1 });
    const t2 = task(s, { slot: 2, state: TaskState.TASK_STATE_PENDING });
    const t3 = task(s, { slot: 3 });
    const t4 = task(s, { slot: 4 });
    const p = run(s, [t1, t2, t3, t4]);
    expect(p.create).toEqual([]);
    expect(p.update.map((u) => [u.slot, u.desiredState])).toEqual(
      expect.arrayContaining([
        [2, SHUTDOWN],
        [4, SHUTDOWN],
      ]),
    );
    expect(p.update).toHaveLength(2);
    // Writes name the version read, so the store refuses them if the task moved meanwhile.
    expect(p.update.every((u) => u.meta!.version === 7)).toBe(true);
  });

  it('keeps one live task per slot (the running one)', () => {
    const s = service({ replicas: 1 });
    const a = task(s, { slot: 1, state: TaskState.TASK_STATE_ASSIGNED, created: 5 });
    const b = task(s, { slot: 1, created: 1 });
    const p = run(s, [a, b]);
    expect(desired(p, a)).toBe(SHUTDOWN);
    expect(desired(p, b)).toBeUndefined();
    expect(p.create).toEqual([]);
  });

  it('scale to 0 shuts everything down', () => {
    const s = service({ replicas: 0 });
    const p = run(s, [task(s, { slot: 1 }), task(s, { slot: 2 })]);
    expect(p.update.map((u) => u.desiredState)).toEqual([SHUTDOWN, SHUTDOWN]);
  });
});

describe('restart supervisor', () => {
  it('replaces a failed task in the same slot', () => {
    const s = service({ replicas: 2 });
    const failed = task(s, { slot: 2, nodeId: 'n1', state: FAILED, at: 50 });
    const p = run(s, [task(s, { slot: 1 }), failed]);
    expect(desired(p, failed)).toBe(SHUTDOWN);
    expect(p.update[0]!.status).toEqual(failed.status); // the orchestrator does not rewrite what was observed
    expect(slots(p.create)).toEqual([2]);
    expect(p.create[0]!.nodeId).toBe('');
  });

  it('waits out the delay: "retry at" the end of it, then replaces', () => {
    const s = service({ replicas: 1, restart: { delayMs: 5000 } });
    const failed = task(s, { slot: 1, state: FAILED, at: 1000 });
    const early = run(s, [failed], { now: 2000 });
    expect(early).toEqual({ create: [], update: [], remove: [], retryAt: 6000 });
    const later = run(s, [failed], { now: 6000 });
    expect(desired(later, failed)).toBe(SHUTDOWN);
    expect(slots(later.create)).toEqual([1]);
  });

  it('condition on-failure restarts FAILED but not COMPLETE; condition none restarts nothing', () => {
    const onFailure = service({ replicas: 1, restart: { condition: RestartPolicy_Condition.CONDITION_ON_FAILURE } });
    expect(run(onFailure, [task(onFailure, { slot: 1, state: FAILED })]).create).toHaveLength(1);
    const done = task(onFailure, { slot: 1, state: COMPLETE, message: 'exited 0' });
    const p = run(onFailure, [done]);
    expect(p.create).toEqual([]);
    expect(p.update).toHaveLength(1);
    expect(p.update[0]!.desiredState).toBe(RUNNING); // the slot stays held: not refilled
    expect(p.update[0]!.status!.state).toBe(COMPLETE);
    expect(p.update[0]!.status!.message).toBe(`${GAVE_UP}it completed and the restart condition is on-failure (was: exited 0)`);
    // Marked once: the next pass writes nothing.
    expect(run(onFailure, [p.update[0]!])).toEqual({ create: [], update: [], remove: [] });

    const none = service({ replicas: 1, restart: { condition: RestartPolicy_Condition.CONDITION_NONE } });
    const q = run(none, [task(none, { slot: 1, state: FAILED })]);
    expect(q.create).toEqual([]);
    expect(isGivenUp(q.update[0]!)).toBe(true);
  });

  it('gives up after max_attempts restarts in the slot, and starts afresh after a spec change', () => {
    const s = service({ replicas: 1, restart: { maxAttempts: 2 } });
    const history = [
      task(s, { slot: 1, state: FAILED, desired: SHUTDOWN, created: 10, at: 20 }),
      task(s, { slot: 1, state: FAILED, desired: SHUTDOWN, created: 30, at: 40 }),
    ];
    const third = task(s, { slot: 1, state: FAILED, created: 50, at: 60 });
    const p = run(s, [...history, third]);
    expect(p.create).toEqual([]);
    expect(p.update[0]!.status!.message).toContain('2 restarts reached max attempts 2');
    // One restart so far: a second is allowed.
    expect(run(s, [history[0]!, third]).create).toHaveLength(1);
    // Other slots' history does not count.
    const elsewhere = history.map((t) => ({ ...t, slot: 2 }));
    expect(run(service({ replicas: 1, restart: { maxAttempts: 2 } }), []).create).toHaveLength(1);
    expect(run(s, [...elsewhere, third]).update.find((u) => u.id === third.id)!.desiredState).toBe(SHUTDOWN);
    // A new spec version: the given-up task is replaced.
    const v2 = { ...s, specVersion: 2 };
    const r = run(v2, [...history, p.update[0]!]);
    expect(desired(r, third)).toBe(SHUTDOWN);
    expect(r.create.map((t) => [t.slot, t.specVersion])).toEqual([[1, 2]]);
  });

  it('counts only the restarts within window_ms', () => {
    const s = service({ replicas: 1, restart: { maxAttempts: 1, windowMs: 1000 } });
    const old = task(s, { slot: 1, state: FAILED, desired: SHUTDOWN, created: 0, at: 10 });
    const replaced = task(s, { slot: 1, state: FAILED, desired: SHUTDOWN, created: 20, at: 30 });
    const current = task(s, { slot: 1, state: FAILED, created: 5000, at: 5500 });
    // `replaced` (made at 20) and `current` (5000) are restarts; only `current` falls in [4500, 5500].
    expect(run(s, [old, replaced, current], { now: 6000 }).create).toHaveLength(0);
    const late = task(s, { slot: 1, state: FAILED, created: 5000, at: 9000 });
    expect(run(s, [old, replaced, late], { now: 9000 }).create).toHaveLength(1);
  });

  it('replaces tasks whose node is down, drained or gone, at once and whatever the condition; a drained one stops once its replacement runs', () => {
    const s = service({ replicas: 3, restart: { condition: RestartPolicy_Condition.CONDITION_NONE, delayMs: 60_000 } });
    const nodes = [node('down', { state: NodeState.NODE_STATE_DOWN }), node('drained', { availability: NodeAvailability.NODE_AVAILABILITY_DRAIN }), node('n1')];
    const onDown = task(s, { slot: 1, nodeId: 'down' });
    const onDrained = task(s, { slot: 2, nodeId: 'drained' });
    const onGone = task(s, { slot: 3, nodeId: 'gone' });
    const p = run(s, [onDown, onDrained, onGone], { nodes });
    expect(slots(p.create)).toEqual([1, 2, 3]);
    expect(p.create.every((t) => t.nodeId === '')).toBe(true);
    expect([desired(p, onDown), desired(p, onDrained), desired(p, onGone)]).toEqual([SHUTDOWN, undefined, SHUTDOWN]);
    // Only the task whose node left is marked: no agent will ever report it again.
    expect(p.update.find((u) => u.id === onDown.id)!.status!.state).toBe(RUNNING);
    expect(p.update.find((u) => u.id === onGone.id)!.status).toMatchObject({ state: TaskState.TASK_STATE_ORPHANED, message: 'node gone left the cluster' });
  });

  it('keeps a drained node\'s task serving until its replacement runs, or DRAIN_HANDOFF_MS passed', () => {
    const s = service({ replicas: 1 });
    const nodes = [node('drained', { availability: NodeAvailability.NODE_AVAILABILITY_DRAIN }), node('n1')];
    const old = task(s, { slot: 1, nodeId: 'drained' });
    const starting = task(s, { slot: 1, nodeId: 'n1', state: TaskState.TASK_STATE_STARTING, created: 100_000 });
    // Its replacement not running yet: nothing changes; woken when the handoff's time is up.
    const waiting = run(s, [old, starting], { nodes, now: 100_500 });
    expect([waiting.create, waiting.update]).toEqual([[], []]);
    expect(waiting.retryAt).toBe(100_000 + DRAIN_HANDOFF_MS);
    // It runs: the drained one goes.
    const ran = run(s, [old, { ...starting, status: { ...starting.status!, state: RUNNING } }], { nodes, now: 101_000 });
    expect(desired(ran, old)).toBe(SHUTDOWN);
    expect(ran.create).toEqual([]);
    // It never runs: the drained one goes all the same after the handoff's time.
    expect(desired(run(s, [old, starting], { nodes, now: 100_000 + DRAIN_HANDOFF_MS }), old)).toBe(SHUTDOWN);
  });
});

describe('removal', () => {
  it('a removed service: running tasks desired REMOVE, ended or unplaced ones deleted', () => {
    const s = service({ replicas: 3 });
    const runningT = task(s, { slot: 1, nodeId: 'n1' });
    const failed = task(s, { slot: 2, nodeId: 'n1', state: FAILED });
    const pending = task(s, { slot: 3, state: TaskState.TASK_STATE_PENDING });
    const onGone = task(s, { slot: 4, nodeId: 'gone' });
    const p = run(undefined, [runningT, failed, pending, onGone], { serviceId: s.id });
    expect(p.update.map((u) => [u.id, u.desiredState])).toEqual([[runningT.id, REMOVE]]);
    expect(p.remove.map((t) => t.id).sort()).toEqual([failed.id, pending.id, onGone.id].sort());
    expect(p.create).toEqual([]);
    // pending_delete is the same; once the task shut down it is deleted.
    const q = run({ ...s, pendingDelete: true }, [{ ...runningT, desiredState: REMOVE, status: { ...runningT.status!, state: SHUTDOWN } }]);
    expect(q.remove.map((t) => t.id)).toEqual([runningT.id]);
    expect(q.update).toEqual([]);
  });

  it('a task shut down on a node that left is marked ORPHANED, then reaped', () => {
    const s = service({ replicas: 1 });
    const lost = task(s, { slot: 2, nodeId: 'gone', desired: SHUTDOWN });
    const p = run(s, [task(s, { slot: 1, nodeId: 'n1' }), lost], { now: 77 });
    expect(p.update).toHaveLength(1);
    expect(p.update[0]!.status).toMatchObject({ state: TaskState.TASK_STATE_ORPHANED, message: 'node gone left the cluster', timestampUnixMs: 77 });
    expect(run(s, [task(s, { slot: 1, nodeId: 'n1' }), p.update[0]!], { limit: 0 }).remove.map((t) => t.id)).toEqual([lost.id]);
  });

  it('a live service deletes its tasks desired REMOVE once they ended', () => {
    const s = service({ replicas: 1 });
    const gone = task(s, { slot: 2, state: SHUTDOWN, desired: REMOVE });
    const stopping = task(s, { slot: 3, nodeId: 'n1', desired: REMOVE });
    const p = run(s, [task(s, { slot: 1 }), gone, stopping]);
    expect(p.remove.map((t) => t.id)).toEqual([gone.id]);
    expect(p.update).toEqual([]);
  });
});

describe('global services', () => {
  const nodes = [
    node('a', { labels: { zone: 'x' } }),
    node('b', { labels: { zone: 'y' } }),
    node('c', { availability: NodeAvailability.NODE_AVAILABILITY_DRAIN, labels: { zone: 'x' } }),
    node('d', { state: NodeState.NODE_STATE_DOWN, labels: { zone: 'x' } }),
    node('e', { availability: NodeAvailability.NODE_AVAILABILITY_PAUSE, labels: { zone: 'x' } }),
  ];
  const globalSvc = (constraints: string[] = []): Service => service({ mode: { $case: 'global', global: {} }, constraints, name: 'agent' });

  it('one task per ready, active node that matches the constraints', () => {
    const s = globalSvc(['node.labels.zone==x']);
    const p = run(s, [], { nodes });
    expect(p.create.map((t) => [t.nodeId, t.slot, t.annotations!.name])).toEqual([['a', 0, 'agent.a']]);
    expect(run(globalSvc(), [], { nodes }).create.map((t) => t.nodeId)).toEqual(['a', 'b']);
  });

  it('follows nodes: a joining node gets a task, drained, down and gone nodes lose theirs', () => {
    const s = globalSvc();
    const onA = task(s, { nodeId: 'a' });
    const onC = task(s, { nodeId: 'c' });
    const onD = task(s, { nodeId: 'd' });
    const onE = task(s, { nodeId: 'e' });
    const onGone = task(s, { nodeId: 'z' });
    const p = run(s, [onA, onC, onD, onE, onGone], { nodes });
    expect(p.create.map((t) => t.nodeId)).toEqual(['b']);
    expect(p.update.map((u) => [u.nodeId, u.desiredState]).sort()).toEqual([
      ['c', SHUTDOWN],
      ['d', SHUTDOWN],
      ['z', SHUTDOWN],
    ]);
    expect(p.update.find((u) => u.nodeId === 'z')!.status!.state).toBe(TaskState.TASK_STATE_ORPHANED);
  });

  it('a node that no longer matches the constraints loses its task', () => {
    const s = globalSvc(['node.labels.zone==y']);
    const onA = task(s, { nodeId: 'a' });
    const p = run(s, [onA, task(s, { nodeId: 'b' })], { nodes });
    expect(p.update.map((u) => [u.id, u.desiredState])).toEqual([[onA.id, SHUTDOWN]]);
    expect(p.create).toEqual([]);
  });

  it('restarts a failed task on the same node, per the policy', () => {
    const s = service({ mode: { $case: 'global', global: {} }, restart: { delayMs: 100 } });
    const failed = task(s, { nodeId: 'a', state: FAILED, at: 1000 });
    expect(run(s, [failed, task(s, { nodeId: 'b' })], { nodes, now: 1050 }).retryAt).toBe(1100);
    const p = run(s, [failed, task(s, { nodeId: 'b' })], { nodes, now: 1100 });
    expect(desired(p, failed)).toBe(SHUTDOWN);
    expect(p.create.map((t) => t.nodeId)).toEqual(['a']);
  });
});

describe('jobs', () => {
  it('replicated job: total completions in slots, at most max_concurrent at once, desired RUNNING (told apart by the service mode)', () => {
    const s = service({ mode: { $case: 'replicatedJob', replicatedJob: { maxConcurrent: 2, totalCompletions: 5 } }, restart: { condition: RestartPolicy_Condition.CONDITION_ON_FAILURE } });
    const first = run(s, []);
    expect(slots(first.create)).toEqual([1, 2]);
    expect(first.create.every((t) => t.desiredState === JOB_DESIRED_STATE)).toBe(true);
    const [t1, t2] = first.create.map((t) => ({ ...t, meta: { version: 3, createdAtUnixMs: 0, updatedAtUnixMs: 0 } }));
    // Slot 1 completes: slot 3 begins. Slot 2 fails: restarted in slot 2.
    const done1 = { ...t1!, status: { ...t1!.status!, state: COMPLETE } };
    const failed2 = { ...t2!, status: { ...t2!.status!, state: FAILED } };
    const p = run(s, [done1, failed2]);
    expect(desired(p, failed2)).toBe(SHUTDOWN);
    expect(slots(p.create)).toEqual([2, 3]);
    // All five complete: nothing more.
    const all = [1, 2, 3, 4, 5].map((slot) => task(s, { slot, state: COMPLETE, desired: COMPLETE }));
    expect(run(s, all)).toEqual({ create: [], update: [], remove: [] });
  });

  it('a new spec version runs the job again, shutting down the old run', () => {
    const s = service({ mode: { $case: 'replicatedJob', replicatedJob: { maxConcurrent: 1, totalCompletions: 1 } } });
    const old = task(s, { slot: 1, state: RUNNING, desired: COMPLETE });
    const p = run({ ...s, specVersion: 2 }, [old]);
    expect(desired(p, old)).toBe(SHUTDOWN);
    expect(p.create.map((t) => [t.slot, t.specVersion])).toEqual([[1, 2]]);
  });

  it('global job: once per eligible node, joining nodes included; completed nodes do not run again', () => {
    const s = service({ mode: { $case: 'globalJob', globalJob: {} } });
    const nodes = [node('a'), node('b'), node('c')];
    const p = run(s, [task(s, { nodeId: 'a', state: COMPLETE, desired: COMPLETE }), task(s, { nodeId: 'b', desired: COMPLETE })], { nodes });
    expect(p.create.map((t) => [t.nodeId, t.desiredState])).toEqual([['c', JOB_DESIRED_STATE]]);
    expect(p.update).toEqual([]);
  });
});

describe('reaper', () => {
  it('keeps the newest ended tasks per slot, never a live one', () => {
    const s = service({ replicas: 2 });
    const ended = (slot: number, created: number): Task => task(s, { slot, state: FAILED, desired: SHUTDOWN, created });
    const slot1 = [1, 2, 3, 4, 5, 6, 7].map((c) => ended(1, c));
    const slot2 = [1, 2].map((c) => ended(2, c));
    const live = [task(s, { slot: 1, created: 100 }), task(s, { slot: 2, state: FAILED, created: 100, message: `${GAVE_UP}x` })];
    const del = reap(s, [...slot1, ...slot2, ...live], 5);
    expect(del.map((t) => t.id).sort()).toEqual([slot1[0]!.id, slot1[1]!.id].sort());
    expect(reap(s, [...slot1, ...slot2, ...live], 0)).toHaveLength(9);
    // A never-placed task that was shut down counts as ended.
    const unplaced = task(s, { slot: 2, state: TaskState.TASK_STATE_PENDING, desired: SHUTDOWN });
    expect(reap(s, [unplaced], 0)).toEqual([unplaced]);
  });

  it('per node for global services; keeps max_attempts while restarts are limited', () => {
    const g = service({ mode: { $case: 'global', global: {} } });
    const tasks = ['a', 'a', 'a', 'b'].map((n, i) => task(g, { nodeId: n, state: SHUTDOWN, desired: SHUTDOWN, created: i }));
    expect(reap(g, tasks, 2).map((t) => t.id)).toEqual([tasks[0]!.id]);
    const limited = service({ replicas: 1, restart: { maxAttempts: 3 } });
    const hist = [1, 2, 3, 4].map((c) => task(limited, { slot: 1, state: FAILED, desired: SHUTDOWN, created: c }));
    expect(reap(limited, hist, 1).map((t) => t.id)).toEqual([hist[0]!.id]);
  });

  it('runs as part of reconciliation with the cluster limit', () => {
    const s = service({ replicas: 1 });
    const hist = [1, 2, 3].map((c) => task(s, { slot: 1, state: FAILED, desired: SHUTDOWN, created: c }));
    const p = run(s, [...hist, task(s, { slot: 1, created: 10 })], { limit: 1 });
    expect(p.remove.map((t) => t.id).sort()).toEqual([hist[0]!.id, hist[1]!.id].sort());
  });
});

describe('rolling updates', () => {
  const { TASK_STATE_READY: READY } = TaskState;
  const S = UpdateStatus_UpdateState;
  function updated(s: Service, cfg: Partial<UpdateConfig> = {}, image = 'nginx', rollback?: Partial<UpdateConfig>): Service {
    const update = { ...DEFAULT_UPDATE, monitorMs: 0, ...cfg };
    const spec = { ...s.spec!, task: { ...s.spec!.task!, container: ContainerSpec.fromPartial({ image }) }, update, rollback: { ...DEFAULT_UPDATE, monitorMs: 0, ...rollback } };
    return { ...s, previousSpec: s.spec, spec, specVersion: s.specVersion + 1 };
  }
  const withStatus = (s: Service, p: Plan): Service => ({ ...s, updateStatus: p.service!.updateStatus });
  const stored = (t: Task, created: number, state: TaskState = TaskState.TASK_STATE_NEW): Task => ({ ...t, meta: { version: 9, createdAtUnixMs: created, updatedAtUnixMs: created }, status: { ...t.status!, state, timestampUnixMs: created } });

  it('stop-first, one at a time: the old task stops, then the new one (desired READY) starts', () => {
    const s1 = service({ replicas: 3 });
    const old = [1, 2, 3].map((slot) => task(s1, { slot, nodeId: 'n1' }));
    const s2 = updated(s1, { parallelism: 1 });
    const p = run(s2, old, { now: 1000 });
    expect(p.service!.updateStatus).toMatchObject({ state: S.UPDATE_STATE_UPDATING, startedAtUnixMs: 1000, message: 'update in progress (spec version 2)' });
    expect(p.update.map((u) => u.desiredState)).toEqual([SHUTDOWN]);
    expect(p.create).toHaveLength(1);
    expect(p.create[0]).toMatchObject({ slot: p.update[0]!.slot, desiredState: READY, specVersion: 2 });
    expect(p.create[0]!.spec!.container!.image).toBe('nginx');

    const s2u = withStatus(s2, p);
    const stopping = { ...p.update[0]! };
    const fresh = stored(p.create[0]!, 1000);
    const others = old.filter((t) => t.id !== stopping.id);
    // The old task has not stopped yet: the new one waits, nothing else moves.
    expect(run(s2u, [...others, stopping, fresh], { now: 1100 })).toEqual({ create: [], update: [], remove: [] });
    // It stopped: the new one is let run.
    const stopped = { ...stopping, status: { ...stopping.status!, state: SHUTDOWN } };
    const q = run(s2u, [...others, stopped, fresh], { now: 1200 });
    expect(q.update.map((u) => [u.id, u.desiredState])).toEqual([[fresh.id, RUNNING]]);
    expect(q.create).toEqual([]);
    // Once it runs, the next slot.
    const runningNew = stored({ ...fresh, desiredState: RUNNING }, 1000, RUNNING);
    const r = run(s2u, [...others, stopped, runningNew], { now: 1300 });
    expect(r.create).toHaveLength(1);
    expect(r.update.map((u) => u.desiredState)).toEqual([SHUTDOWN]);
  });

  it('waits for the monitor period and the delay between batches', () => {
    const s1 = service({ replicas: 2 });
    const s2 = updated(s1, { parallelism: 1, monitorMs: 1000, delayMs: 500 });
    const s2u = { ...s2, updateStatus: { state: S.UPDATE_STATE_UPDATING, startedAtUnixMs: 100, completedAtUnixMs: 0, message: 'update in progress (spec version 2)' } };
    const oldT = task(s1, { slot: 1, nodeId: 'n1' });
    const newT = { ...task(s2, { slot: 2, nodeId: 'n1', created: 200, at: 300 }) };
    const ended = task(s1, { slot: 2, nodeId: 'n1', state: SHUTDOWN, desired: SHUTDOWN });
    // Running since 300: monitored until 1300, then 500 ms delay: the next batch at 1800.
    expect(run(s2u, [oldT, newT, ended], { now: 1000 })).toEqual({ create: [], update: [], remove: [], retryAt: 1300 });
    expect(run(s2u, [oldT, newT, ended], { now: 1300 })).toEqual({ create: [], update: [], remove: [], retryAt: 1800 });
    const p = run(s2u, [oldT, newT, ended], { now: 1800 });
    expect(p.create.map((t) => t.slot)).toEqual([1]);
  });

  it('start-first: the new task runs before the old one is shut down; parallelism 0 does all at once', () => {
    const s1 = service({ replicas: 2 });
    const old = [1, 2].map((slot) => task(s1, { slot, nodeId: 'n1' }));
    const s2 = updated(s1, { parallelism: 0, order: UpdateConfig_Order.ORDER_START_FIRST });
    const p = run(s2, old, { now: 10 });
    expect(p.update).toEqual([]);
    expect(p.create.map((t) => [t.slot, t.desiredState]).sort()).toEqual([
      [1, RUNNING],
      [2, RUNNING],
    ]);
    const s2u = withStatus(s2, p);
    const fresh = p.create.map((t) => stored(t, 10));
    expect(run(s2u, [...old, ...fresh], { now: 20 }).update).toEqual([]);
    const [first, second] = [...p.create].sort((a, b) => a.slot - b.slot);
    const running1 = stored(first!, 10, RUNNING);
    const q = run(s2u, [...old, running1, stored(second!, 10)], { now: 30 });
    expect(q.update.map((u) => [u.id, u.desiredState])).toEqual([[old[0]!.id, SHUTDOWN]]);
  });

  it('completes: update_status COMPLETED once every unit runs the new spec', () => {
    const s1 = service({ replicas: 1 });
    const s2 = updated(s1);
    const s2u = { ...s2, updateStatus: { state: S.UPDATE_STATE_UPDATING, startedAtUnixMs: 5, completedAtUnixMs: 0, message: 'update in progress (spec version 2)' } };
    const p = run(s2u, [task(s2, { slot: 1, created: 6 })], { now: 50 });
    expect(p.service!.updateStatus).toEqual({ state: S.UPDATE_STATE_COMPLETED, startedAtUnixMs: 5, completedAtUnixMs: 50, message: 'update completed (spec version 2)' });
    // A scale-only change afterwards starts nothing.
    expect(run({ ...s2, specVersion: 3, updateStatus: p.service!.updateStatus }, [task(s2, { slot: 1 })], { now: 60 }).service).toBeUndefined();
  });

  it('pauses on failures beyond the ratio, and resumes on a new spec version', () => {
    const s1 = service({ replicas: 4 });
    const s2 = updated(s1, { parallelism: 1, maxFailureRatio: 0.3 });
    const s2u = { ...s2, updateStatus: { state: S.UPDATE_STATE_UPDATING, startedAtUnixMs: 5, completedAtUnixMs: 0, message: 'update in progress (spec version 2)' } };
    const old = [2, 3, 4].map((slot) => task(s1, { slot }));
    const failedNew = [1, 1].map((slot, i) => task(s2, { slot, state: FAILED, desired: SHUTDOWN, created: 10 + i }));
    const retry = task(s2, { slot: 1, state: TaskState.TASK_STATE_PENDING, created: 20 });
    // 1 of 4 failed: 0.25 ≤ 0.3, the update goes on (the slot is in flight).
    expect(run(s2u, [...old, failedNew[0]!, retry], { now: 30 }).service).toBeUndefined();
    const p = run(s2u, [...old, ...failedNew, retry], { now: 30 });
    expect(p.service!.updateStatus).toMatchObject({ state: S.UPDATE_STATE_PAUSED, message: 'update paused (spec version 2): 2 of 4 new tasks failed (max failure ratio 0.3)' });
    expect(p.create).toEqual([]);
    const paused = withStatus(s2, p);
    const frozen = run(paused, [...old, ...failedNew, task(s2, { slot: 1, created: 20 })], { now: 40 });
    expect(frozen).toEqual({ create: [], update: [], remove: [] });
    // The user changes the spec again: a new update.
    const s3 = { ...updated(paused, { parallelism: 1 }, 'nginx:2'), updateStatus: paused.updateStatus };
    const q = run(s3, [...old, ...failedNew, task(s2, { slot: 1, created: 20 })], { now: 50 });
    expect(q.service!.updateStatus).toMatchObject({ state: S.UPDATE_STATE_UPDATING, message: 'update in progress (spec version 3)' });
    expect(q.create).toHaveLength(1);
  });

  it('failure action rollback: swaps to the previous spec and rolls back with the rollback config', () => {
    const s1 = service({ replicas: 2 });
    const s2 = updated(s1, { failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_ROLLBACK }, 'broken', { parallelism: 0 });
    const s2u = { ...s2, updateStatus: { state: S.UPDATE_STATE_UPDATING, startedAtUnixMs: 5, completedAtUnixMs: 0, message: 'update in progress (spec version 2)' } };
    const tasks = [task(s1, { slot: 2 }), task(s2, { slot: 1, state: FAILED, desired: SHUTDOWN, created: 10 }), task(s2, { slot: 1, created: 20 })];
    const p = run(s2u, tasks, { now: 30 });
    expect(p.service).toMatchObject({ specVersion: 3, spec: s1.spec, previousSpec: s2.spec });
    expect(p.service!.updateStatus).toMatchObject({ state: S.UPDATE_STATE_ROLLBACK_STARTED, startedAtUnixMs: 30 });
    expect(p.service!.updateStatus!.message).toMatch(/^rollback started \(spec version 3\): update failed: 1 of 2 new tasks failed/);
    // The rollback: slot 1 (on the broken spec) goes back to the old image.
    const rolling = { ...p.service!, spec: { ...p.service!.spec!, rollback: { ...DEFAULT_UPDATE, monitorMs: 0 } } };
    const q = run(rolling, tasks, { now: 40 });
    expect(q.create.map((t) => [t.slot, t.spec!.container!.image, t.specVersion])).toEqual([[1, 'busybox', 3]]);
    // Done: ROLLBACK_COMPLETED.
    const r = run(rolling, [task(s1, { slot: 2 }), task(rolling, { slot: 1, created: 45 })], { now: 50 });
    expect(r.service!.updateStatus).toMatchObject({ state: S.UPDATE_STATE_ROLLBACK_COMPLETED });
    expect(r.service!.updateStatus!.message).toMatch(/^rollback completed \(spec version 3\): update failed: 1 of 2 new tasks failed \(max failure ratio 0\)/);
  });

  it('global services update node by node on the same node', () => {
    const g1 = service({ mode: { $case: 'global', global: {} } });
    const old = ['n1', 'n2'].map((nodeId) => task(g1, { nodeId }));
    const p = run(updated(g1, { parallelism: 1 }), old, { now: 5 });
    expect(p.create.map((t) => [t.nodeId, t.slot, t.desiredState])).toEqual([[p.update[0]!.nodeId, 0, READY]]);
  });
});
