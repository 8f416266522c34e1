// Services converge on real containers across lab hosts: a manager and two workers, the busybox
// image in a registry on the manager's host (pushed from the set-up's image layout), a replicated
// service that runs on both workers, scales down, and is replaced elsewhere when a worker dies.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunning, LabCluster, RUNTIME as runtime, until as untilSeen, type TaskJson } from './lab/cluster.js';
import { HOST_STATE_MOUNT, type ExecResult, type LabHost } from './lab/lab.js';

describe('orchestration on lab hosts', () => {
  let c: LabCluster;
  let image = '';
  const nodeIds = new Map<string, string>();

  const until = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> => untilSeen(what, fn, timeoutMs, () => c.lastSeen);
  const host = (name: string): LabHost => c.host(name);
  const ctl = (name: string, ...args: string[]): Promise<ExecResult> => c.ctl(name, ...args);
  const ok = (name: string, ...args: string[]): Promise<string> => c.ok(name, ...args);
  const tasks = (service: string): Promise<TaskJson[]> => c.tasks(service);
  const running = (ts: TaskJson[]): TaskJson[] => ts.filter(isRunning);
  const containersOn = (name: string): Promise<string[]> => c.containersOn(name);
  const stateOf = (name: string, id: string): Promise<string> => c.stateOf(name, id);
  const swarmdOn = (name: string, args: string[]): ReturnType<LabCluster['swarmd']> => c.swarmd(name, args);

  beforeAll(async () => {
    // The manager only manages (drained, as in Docker); the workers run the tasks, each on a
    // bridge of its host (for the published ports).
    c = await LabCluster.create({ managers: 1, workers: 2, swarmdArgs: ['--bridge', 'tsw0:172.31.0.0/16'] });
    image = c.image;
    for (const [h, id] of c.nodeIds) nodeIds.set(h, id);
  }, 90_000);

  afterAll(async () => {
    if (c) await c.destroy();
  }, 60_000);

  it('converges a replicated service on real containers on both workers', async () => {
    // swarmctl waits for convergence by default, showing each slot's progress.
    const out = await ok('m1', 'service', 'create', '--name', 'sleepers', '--image', image, '--replicas', '6', '--args', 'sleep', '600');
    expect(out).toMatch(/slot 6: running\n[\s\S]*sleepers: converged \(6 running\)\n$/);
    const ts = await until('6 running tasks', async () => {
      const t = running(await tasks('sleepers'));
      return t.length === 6 ? t : undefined;
    }, 60_000);
    expect(new Set(ts.map((t) => t.slot))).toEqual(new Set([1, 2, 3, 4, 5, 6]));
    const byNode = new Map<string, number>();
    for (const t of ts) byNode.set(t.nodeId, (byNode.get(t.nodeId) ?? 0) + 1);
    expect(byNode.get(nodeIds.get('w1')!)).toBe(3);
    expect(byNode.get(nodeIds.get('w2')!)).toBe(3);
    // Real containers, running, on the node each task was given to.
    for (const t of ts) {
      const on = t.nodeId === nodeIds.get('w1') ? 'w1' : 'w2';
      expect(await stateOf(on, t.id)).toBe('running');
    }
  }, 90_000);

  it('scales down, stopping the surplus containers', async () => {
    // The waiting form returns once the surplus tasks have stopped, not when they were told to.
    await ok('m1', 'service', 'scale', 'sleepers=2');
    const after = await tasks('sleepers');
    expect(after.filter((t) => t.desiredState !== 'TASK_STATE_RUNNING' && t.status?.state === 'TASK_STATE_RUNNING').map((t) => t.id)).toEqual([]);
    const ts = await until('2 running tasks and the others shut down', async () => {
      const all = await tasks('sleepers');
      const up = running(all);
      const stopping = all.filter((t) => t.desiredState !== 'TASK_STATE_RUNNING' && t.status?.state !== 'TASK_STATE_SHUTDOWN');
      return up.length === 2 && stopping.length === 0 ? all : undefined;
    }, 60_000);
    for (const t of ts.filter((x) => x.desiredState !== 'TASK_STATE_RUNNING')) {
      const on = t.nodeId === nodeIds.get('w1') ? 'w1' : 'w2';
      expect(await stateOf(on, t.id)).not.toBe('running');
    }
  }, 90_000);

  it("re-adopts a worker's running containers when its swarmd restarts within the heartbeat window", async () => {
    await ok('m1', 'cluster', 'update', '--heartbeat-period', '3s'); // 9 s before a node counts as down
    const w1 = nodeIds.get('w1')!;
    const before = running(await tasks('sleepers')).filter((t) => t.nodeId === w1);
    expect(before.length).toBeGreaterThan(0);
    const pidOf = async (id: string): Promise<number> => (JSON.parse((await host('w1').exec(runtime, ['state', id])).stdout) as { pid: number }).pid;
    const pids = await Promise.all(before.map((t) => pidOf(t.id)));
    await c.kill9('w1');
    await swarmdOn('w1', []).waitForLog(/agent: session established/, 30_000);
    // The same tasks, still running in the same containers: nothing was restarted or replaced.
    const after = running(await tasks('sleepers')).filter((t) => t.nodeId === w1);
    expect(after.map((t) => t.id).sort()).toEqual(before.map((t) => t.id).sort());
    expect(await Promise.all(before.map((t) => pidOf(t.id)))).toEqual(pids);
    expect((await tasks('sleepers')).filter((t) => t.status?.state === 'TASK_STATE_FAILED')).toEqual([]);
    await ok('m1', 'cluster', 'update', '--heartbeat-period', '1s');
  }, 90_000);

  it('replaces the tasks of a worker that dies, on the other worker', async () => {
    await ok('m1', 'service', 'scale', 'sleepers=4');
    await until('4 running tasks', async () => (running(await tasks('sleepers')).length === 4 ? true : undefined), 60_000);
    await c.kill9('w2');
    const w1 = nodeIds.get('w1')!;
    await until('all 4 running on w1', async () => {
      const up = running(await tasks('sleepers'));
      return up.length === 4 && up.every((t) => t.nodeId === w1) ? true : undefined;
    }, 60_000);
    const nodes = JSON.parse(await ok('m1', 'node', 'ls', '--format', 'json')) as { id: string; status?: { state: string } }[];
    expect(nodes.find((n) => n.id === nodeIds.get('w2'))?.status?.state).toBe('NODE_STATE_DOWN');
    // w2 comes back: it re-adopts its containers and stops those the cluster moved away.
    await swarmdOn('w2', []).waitForLog(/agent: session established/, 30_000);
    await until('w2 to stop its old containers', async () => {
      const states = await Promise.all((await containersOn('w2')).map((id) => stateOf('w2', id)));
      return states.every((s) => s !== 'running') ? true : undefined;
    }, 60_000);
  }, 150_000);

  it('runs a global service on every active node and follows a drain', async () => {
    await ok('m1', 'service', 'create', '--name', 'everywhere', '--image', image, '--mode', 'global', '--', 'sleep', '600');
    const on = (ts: TaskJson[]): string[] => running(ts).map((t) => t.nodeId).sort();
    const both = [nodeIds.get('w1')!, nodeIds.get('w2')!].sort();
    // m1 is drained: one task on each worker.
    await until('one task per worker', async () => (JSON.stringify(on(await tasks('everywhere'))) === JSON.stringify(both) ? true : undefined), 60_000);
    await ok('m1', 'node', 'update', 'w2', '--availability', 'drain');
    await until('the task on w2 to stop', async () => {
      const ts = await tasks('everywhere');
      const w2 = ts.filter((t) => t.nodeId === nodeIds.get('w2'));
      return JSON.stringify(on(ts)) === JSON.stringify([nodeIds.get('w1')]) && w2.every((t) => t.status?.state === 'TASK_STATE_SHUTDOWN') ? true : undefined;
    }, 60_000);
    await ok('m1', 'node', 'update', 'w2', '--availability', 'active');
    await until('a task on w2 again', async () => (JSON.stringify(on(await tasks('everywhere'))) === JSON.stringify(both) ? true : undefined), 60_000);
    await ok('m1', 'service', 'rm', 'everywhere');
  }, 150_000);

  it('delivers a secret as a file in /run/secrets, and never to disk on the worker', async () => {
    writeFileSync(join(host('m1').stateDir, 'pw.txt'), 'hunter2');
    await ok('m1', 'secret', 'create', 'pw', `${HOST_STATE_MOUNT}/pw.txt`);
    await ok('m1', 'service', 'create', '--name', 'withsecret', '--image', image, '--secret', 'source=pw,target=db-password,mode=0400', '--', 'sleep', '600');
    const [t] = await until('the task to run', async () => {
      const up = running(await tasks('withsecret'));
      return up.length === 1 ? up : undefined;
    }, 60_000);
    const on = t!.nodeId === nodeIds.get('w1') ? 'w1' : 'w2';
    const r = await host(on).exec(runtime, ['exec', t!.id, 'cat', '/run/secrets/db-password']);
    expect(r.stdout).toBe('hunter2');
    // The clear text sits on the worker's tmpfs (/run), not in its state directory.
    const found = await host(on).exec('sh', ['-c', `grep -rl hunter2 ${HOST_STATE_MOUNT} 2>/dev/null || true`]);
    expect(found.stdout.trim()).toBe('');
    const missing = await ctl('m1', 'service', 'create', '--name', 'nosecret', '--image', image, '--secret', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/secret .*nope/);
    await ok('m1', 'service', 'rm', 'withsecret');
  }, 120_000);

  it('delivers a config as a read-only file at its target with its mode, gone with the task', async () => {
    writeFileSync(join(host('m1').stateDir, 'app.conf'), 'greeting = hello\n');
    await ok('m1', 'config', 'create', 'appconf', `${HOST_STATE_MOUNT}/app.conf`);
    await ok('m1', 'service', 'create', '--name', 'withconfig', '--image', image, '--config', 'source=appconf,target=/etc/app/app.conf,mode=0440', '--config', 'appconf', '--', 'sleep', '600');
    const [t] = await until('the task to run', async () => {
      const up = running(await tasks('withconfig'));
      return up.length === 1 ? up : undefined;
    }, 60_000);
    const on = t!.nodeId === nodeIds.get('w1') ? 'w1' : 'w2';
    const inside = (cmd: string): Promise<ExecResult> => host(on).exec(runtime, ['exec', t!.id, 'sh', '-c', cmd]);
    expect((await inside('cat /etc/app/app.conf')).stdout).toBe('greeting = hello\n');
    expect((await inside('stat -c %a /etc/app/app.conf')).stdout.trim()).toBe('440');
    expect((await inside('cat /appconf')).stdout).toBe('greeting = hello\n'); // the default target: /NAME
    expect((await inside('stat -c %a /appconf')).stdout.trim()).toBe('444');
    expect((await inside('echo x >> /etc/app/app.conf')).code).not.toBe(0); // mounted read-only
    // The files sit on the worker's tmpfs, one directory per task.
    const dir = `/run/tswarm/configs/${t!.id}`;
    expect((await host(on).exec('ls', [dir])).stdout.split('\n').filter(Boolean).sort()).toEqual(['0', '1']);
    const bad = await ctl('m1', 'service', 'create', '--name', 'badconfig', '--image', image, '--config', 'source=appconf,target=/proc/sys/x', '--', 'sleep', '1');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/configs\[0\]\.file\.name: "\/proc\/sys\/x" must not be in \/proc/);
    await ok('m1', 'service', 'rm', 'withconfig');
    await until('the container and its config files to be gone', async () =>
      (await stateOf(on, t!.id)) === 'gone' && (await host(on).exec('test', ['-e', dir])).code !== 0 ? true : undefined, 60_000);
  }, 120_000);

  it('publishes a host-mode port on each worker, reachable from another host; a third replica stays pending; nothing left after removal', async () => {
    const serve = 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www';
    await ok('m1', 'service', 'create', '--name', 'web', '--image', image, '--replicas', '2', '--publish', 'mode=host,published=8080,target=80', '--', 'sh', '-c', serve);
    const ts = await until('2 running tasks', async () => {
      const up = running(await tasks('web'));
      return up.length === 2 ? up : undefined;
    }, 60_000);
    // One per worker (the host port), each serving on its worker's address from the manager's host.
    expect(new Set(ts.map((t) => t.nodeId))).toEqual(new Set([nodeIds.get('w1'), nodeIds.get('w2')]));
    for (const w of ['w1', 'w2']) {
      const t = ts.find((x) => x.nodeId === nodeIds.get(w))!;
      const r = await until(`${w}:8080 to answer`, async () => {
        const got = await host('m1').exec('curl', ['-sS', '-m', '5', `http://${host(w).address}:8080/`]);
        return got.code === 0 ? got.stdout : undefined;
      }, 20_000);
      expect(r.trim()).toBe(t.id.slice(0, 12)); // the container's hostname: the task's container answered
      // The actual published port is in the task's status.
      const st = (await tasks('web')).find((x) => x.id === t.id)!.status as { portStatus?: { ports: { publishedPort: number; targetPort: number; publishMode: string }[] } };
      expect(st.portStatus?.ports).toEqual([expect.objectContaining({ publishedPort: 8080, targetPort: 80, publishMode: 'PUBLISH_MODE_HOST' })]);
    }
    // A third replica finds no node with 8080 free.
    await ok('m1', 'service', 'scale', '--detach', 'web=3');
    const pending = await until('the third replica to be pending', async () => (await tasks('web')).find((t) => t.status?.state === 'TASK_STATE_PENDING' && t.status.pendingReason), 30_000);
    expect(pending.status?.pendingReason).toMatch(/host port/);
    expect(running(await tasks('web'))).toHaveLength(2);

    await ok('m1', 'service', 'rm', 'web');
    const published = async (w: string): Promise<string> => (await host(w).exec('nft', ['list', 'map', 'ip', 'tswarm-tsw0', 'published'])).stdout;
    await until('the containers and their published ports to be gone', async () => {
      for (const t of ts) if ((await stateOf(t.nodeId === nodeIds.get('w1') ? 'w1' : 'w2', t.id)) !== 'gone') return undefined;
      for (const w of ['w1', 'w2']) if ((await published(w)).includes('elements')) return undefined;
      return true;
    }, 60_000);
    for (const w of ['w1', 'w2']) expect((await host('m1').exec('curl', ['-sS', '-m', '5', `http://${host(w).address}:8080/`])).code).not.toBe(0);
  }, 150_000);

  it('fails a task whose healthcheck fails, and keeps a healthy one', async () => {
    await ok('m1', 'service', 'create', '--detach', '--name', 'sick', '--image', image, '--health-cmd', 'test -f /tmp/ok', '--health-interval', '300ms', '--health-retries', '2', '--', 'sleep', '600');
    await ok('m1', 'service', 'create', '--name', 'fine', '--image', image, '--health-cmd', 'true', '--health-interval', '300ms', '--health-retries', '2', '--', 'sleep', '600');
    const failed = await until('the unhealthy task to fail', async () => (await tasks('sick')).find((t) => t.status?.state === 'TASK_STATE_FAILED'), 60_000);
    expect(failed.status?.err).toMatch(/^healthcheck failed 2 times in a row: exit code 1/);
    const fine = running(await tasks('fine'));
    expect(fine).toHaveLength(1);
    expect((await tasks('fine')).filter((t) => t.status?.state === 'TASK_STATE_FAILED')).toEqual([]);
    await ok('m1', 'service', 'rm', 'sick', 'fine');
  }, 120_000);

  it('removes a service and its containers', async () => {
    await ok('m1', 'service', 'rm', 'sleepers');
    await until('no containers running', async () => {
      const up: string[] = [];
      for (const h of ['w1', 'w2']) {
        for (const id of await containersOn(h)) if ((await stateOf(h, id)) === 'running') up.push(`${h}:${id}`);
      }
      if (up.length === 0) return true;
      const all = JSON.parse(await ok('m1', 'task', 'ls', '--format', 'json')) as TaskJson[];
      c.lastSeen = `running: ${up.join(' ')}\ntasks: ${all.map((t) => `${t.id} ${t.desiredState} ${t.status?.state}`).join('; ')}`;
      return undefined;
    }, 60_000);
  }, 90_000);
});
