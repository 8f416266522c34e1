// The log subscription's rules, on a fake cluster view: who gets the subscription and with which
// tail, when it is complete, and how a node that is down, disconnected or silent is reported
// instead of waited for.
import { describe, expect, it } from 'vitest';
import { Subscription, type Action, type ClusterView, type TaskInfo } from './subscription.js';

const T = 5_000;

function task(id: string, nodeId: string): TaskInfo {
  return { id, nodeId, context: { taskId: id, serviceId: 's1', serviceName: 'web', slot: 1, nodeId, nodeName: `host-${nodeId}` } };
}

function view(opts: { down?: string[]; listening?: string[] } = {}): ClusterView & { listening: (id: string) => boolean; up: Set<string> } {
  const up = new Set(opts.listening ?? []);
  return { up, nodeDown: (id) => (opts.down ?? []).includes(id), listening: (id) => up.has(id), nodeName: (id) => `host-${id}` };
}

const sends = (as: Action[]): { node: string; tasks: string[]; tail: number | undefined; close: boolean }[] =>
  as.flatMap((a) => (a.type === 'send' ? [{ node: a.nodeId, tasks: a.message.taskIds, tail: a.message.options?.tail, close: a.message.close }] : []));
const unavailable = (as: Action[]): { node: string; tasks: string[]; reason: string }[] =>
  as.flatMap((a) => (a.type === 'unavailable' ? [{ node: a.unavailable.nodeId, tasks: a.unavailable.taskIds, reason: a.unavailable.reason }] : []));
const ends = (as: Action[]): boolean => as.some((a) => a.type === 'end');

describe('Subscription (not following)', () => {
  it('sends each listening node its own tasks with the tail, and completes when every node closed', () => {
    const s = new Subscription('sub', false, 2, T);
    const a = s.begin([task('t1', 'n1'), task('t2', 'n2'), task('t3', 'n1')], view({ listening: ['n1', 'n2'] }), 0);
    expect(sends(a)).toEqual([
      { node: 'n1', tasks: ['t1', 't3'], tail: 2, close: false },
      { node: 'n2', tasks: ['t2'], tail: 2, close: false },
    ]);
    expect(ends(a)).toBe(false);
    expect(s.published('n1', [], 10)).toEqual({});
    expect(s.published('n1', ['t1', 't3'], 20)).toEqual({});
    expect(ends(s.closed('n1'))).toBe(false);
    expect(s.relays('n1')).toBe(false);
    expect(ends(s.closed('n2'))).toBe(true);
    expect(s.complete).toBe(true);
  });

  it('completes at once when no task has a log yet', () => {
    const s = new Subscription('sub', false, undefined, T);
    expect(ends(s.begin([], view(), 0))).toBe(true);
  });

  it('refuses entries of a task that is not the node\'s in this subscription', () => {
    const s = new Subscription('sub', false, undefined, T);
    s.begin([task('t1', 'n1'), task('t2', 'n2')], view({ listening: ['n1', 'n2'] }), 0);
    expect(s.published('n1', ['t2'], 1)).toEqual({ refused: 't2' });
    expect(s.published('n3', [], 1)).toEqual({});
    expect(s.published('n3', ['t1'], 1)).toEqual({ refused: 't1' });
    expect(s.published('n1', ['t1'], 1)).toEqual({});
  });

  it('reports a node the store marks down at once, and completes with the others', () => {
    const s = new Subscription('sub', false, undefined, T);
    const a = s.begin([task('t1', 'n1'), task('t2', 'n2'), task('t3', 'n2')], view({ listening: ['n1'], down: ['n2'] }), 0);
    expect(unavailable(a)).toEqual([{ node: 'n2', tasks: ['t2', 't3'], reason: 'is down' }]);
    expect(sends(a).map((x) => x.node)).toEqual(['n1']);
    expect(ends(a)).toBe(false);
    expect(ends(s.closed('n1'))).toBe(true);
  });

  it('ends when every node is down', () => {
    const s = new Subscription('sub', false, undefined, T);
    const a = s.begin([task('t1', 'n1'), task('t2', 'n2')], view({ down: ['n1', 'n2'] }), 0);
    expect(unavailable(a).map((u) => u.node)).toEqual(['n1', 'n2']);
    expect(ends(a)).toBe(true);
  });

  it('waits for a node without a listener until the deadline, sending when it connects', () => {
    const v = view({ listening: ['n1'] });
    const s = new Subscription('sub', false, 3, T);
    expect(sends(s.begin([task('t1', 'n1'), task('t2', 'n2')], v, 0))).toEqual([{ node: 'n1', tasks: ['t1'], tail: 3, close: false }]);
    expect(s.tick(T - 1)).toEqual([]);
    v.up.add('n2');
    expect(sends(s.listenerUp('n2', 1_000))).toEqual([{ node: 'n2', tasks: ['t2'], tail: 3, close: false }]);
    s.published('n1', [], 10);
    s.closed('n1');
    // Its own deadline starts when the subscription was sent.
    expect(s.tick(T + 500)).toEqual([]);
    const late = s.tick(1_000 + T);
    expect(unavailable(late)).toEqual([{ node: 'n2', tasks: ['t2'], reason: 'did not answer within 5 s' }]);
    expect(ends(late)).toBe(true);
  });

  it('reports a node that never connects as down after the deadline', () => {
    const s = new Subscription('sub', false, undefined, T);
    s.begin([task('t1', 'n1')], view(), 0);
    const a = s.tick(T);
    expect(unavailable(a)).toEqual([{ node: 'n1', tasks: ['t1'], reason: 'is down (no session with the leader for 5 s)' }]);
    expect(ends(a)).toBe(true);
  });

  it('reports a node whose connection ends before it closed, and one that goes silent', () => {
    const s = new Subscription('sub', false, undefined, T);
    s.begin([task('t1', 'n1'), task('t2', 'n2'), task('t3', 'n3')], view({ listening: ['n1', 'n2', 'n3'] }), 0);
    s.published('n1', ['t1'], 100);
    s.published('n2', ['t2'], 100);
    expect(unavailable(s.listenerDown('n1'))).toEqual([{ node: 'n1', tasks: ['t1'], reason: 'is down (its connection to the leader ended)' }]);
    expect(s.listenerDown('n1')).toEqual([]); // once
    s.closed('n3');
    expect(s.tick(100 + T - 1)).toEqual([]);
    const a = s.tick(100 + T);
    expect(unavailable(a)).toEqual([{ node: 'n2', tasks: ['t2'], reason: 'stopped answering for 5 s' }]);
    expect(ends(a)).toBe(true);
    // A closed node is not reported when its connection goes later.
    expect(s.listenerDown('n3')).toEqual([]);
  });

  it('reports a node whose publishing stream ends before it closed, but not one that closed', () => {
    const s = new Subscription('sub', false, undefined, T);
    s.begin([task('t1', 'n1'), task('t2', 'n2')], view({ listening: ['n1', 'n2'] }), 0);
    s.published('n1', ['t1'], 1);
    s.closed('n1');
    expect(s.publisherGone('n1', 'stopped sending its logs')).toEqual([]);
    s.published('n2', [], 1);
    const a = s.publisherGone('n2', 'stopped sending its logs');
    expect(unavailable(a)).toEqual([{ node: 'n2', tasks: ['t2'], reason: 'stopped sending its logs' }]);
    expect(ends(a)).toBe(true);
  });

  it('takes in no tasks that start later', () => {
    const s = new Subscription('sub', false, undefined, T);
    s.begin([task('t1', 'n1')], view({ listening: ['n1'] }), 0);
    expect(s.addTask(task('t2', 'n1'), view({ listening: ['n1'] }), 1)).toEqual([]);
  });
});

describe('Subscription (following)', () => {
  it('never completes by itself; takes in tasks that start later with their whole log', () => {
    const v = view({ listening: ['n1', 'n2'] });
    const s = new Subscription('sub', true, 0, T);
    expect(sends(s.begin([task('t1', 'n1')], v, 0))).toEqual([{ node: 'n1', tasks: ['t1'], tail: 0, close: false }]);
    s.published('n1', [], 1);
    expect(sends(s.addTask(task('t2', 'n1'), v, 2))).toEqual([{ node: 'n1', tasks: ['t2'], tail: undefined, close: false }]);
    expect(s.addTask(task('t2', 'n1'), v, 3)).toEqual([]); // known already
    expect(sends(s.addTask(task('t3', 'n2'), v, 4))).toEqual([{ node: 'n2', tasks: ['t3'], tail: undefined, close: false }]);
    s.published('n2', ['t3'], 5);
    expect(s.closed('n1')).toEqual([]);
    // Quiet streams are normal while following.
    expect(s.tick(1_000_000)).toEqual([]);
    expect(s.complete).toBe(false);
  });

  it('still reports a node that does not acknowledge', () => {
    const s = new Subscription('sub', true, undefined, T);
    s.begin([task('t1', 'n1')], view({ listening: ['n1'] }), 0);
    expect(unavailable(s.tick(T))).toEqual([{ node: 'n1', tasks: ['t1'], reason: 'did not answer within 5 s' }]);
  });

  it('reports a node the store marks down later, and resumes it with new entries only when it listens again', () => {
    const v = view({ listening: ['n1'] });
    const s = new Subscription('sub', true, undefined, T);
    s.begin([task('t1', 'n1')], v, 0);
    s.published('n1', ['t1'], 1);
    const a = s.nodeDown('n1');
    expect(unavailable(a)).toEqual([{ node: 'n1', tasks: ['t1'], reason: 'is down' }]);
    expect(ends(a)).toBe(false);
    expect(s.nodeDown('n1')).toEqual([]);
    expect(sends(s.listenerUp('n1', 10))).toEqual([{ node: 'n1', tasks: ['t1'], tail: 0, close: false }]);
  });

  it('queues tasks for a node that is not listening yet, each group with its tail', () => {
    const v = view();
    const s = new Subscription('sub', true, 5, T);
    s.begin([task('t1', 'n1')], v, 0);
    expect(s.addTask(task('t2', 'n1'), v, 1)).toEqual([]);
    expect(sends(s.listenerUp('n1', 2))).toEqual([
      { node: 'n1', tasks: ['t1'], tail: 5, close: false },
      { node: 'n1', tasks: ['t2'], tail: undefined, close: false },
    ]);
  });

  it('on cancel, tells the nodes that still stream to stop', () => {
    const s = new Subscription('sub', true, undefined, T);
    s.begin([task('t1', 'n1'), task('t2', 'n2')], view({ listening: ['n1'] }), 0);
    expect(sends(s.cancel())).toEqual([{ node: 'n1', tasks: [], tail: undefined, close: true }]);
    expect(s.relays('n1')).toBe(false);
    expect(s.listenerUp('n2', 1)).toEqual([]);
  });
});
