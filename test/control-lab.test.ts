// The control plane on five lab hosts, with real swarmd processes: three managers (one init, two
// joined with the manager token) and two workers. Kill -9 of the leader (a write sent during the
// election waits for it and is applied once), restart and rejoin; bad
// and rotated tokens; a worker's certificate at the control API; the quorum guard of demote; and
// quorum loss repaired with --force-new-cluster, keeping the services.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, type ExecResult, type LabHost, type LabProcess } from './lab/lab.js';
import { dist } from './util/dist.js';
import { NO_REGISTRY } from './registry/registry.js';

const swarmd = dist('cli/swarmd.js');
const swarmctl = dist('cli/swarmctl.js');

interface NodeJson {
  id: string;
  role: string;
  description?: { hostname: string };
  status?: { state: string };
  managerStatus?: { leader: boolean; reachability: string; addr: string };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('control plane on five lab hosts', () => {
  let lab: Lab;
  const procs = new Map<string, LabProcess>();
  let runs = 0;
  let workerToken = '';
  let managerToken = '';

  const host = (name: string): LabHost => lab.host(name);
  const addr = (name: string): string => `${host(name).address}:4242`;

  /** Starts swarmd on a host (a new process each time, so that args can differ). */
  function swarmdOn(name: string, args: string[]): LabProcess {
    const p = host(name).start(`swarmd-${++runs}`, process.execPath, [swarmd, '--log-format', 'json', '--default-registry', NO_REGISTRY, ...args]);
    procs.set(name, p);
    return p;
  }

  function ctl(name: string, ...args: string[]): Promise<ExecResult> {
    return host(name).exec(process.execPath, [swarmctl, ...args], { timeoutMs: 30_000 });
  }

  async function ok(name: string, ...args: string[]): Promise<string> {
    const r = await ctl(name, ...args);
    if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')} on ${name} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  async function nodes(name: string): Promise<NodeJson[]> {
    return JSON.parse(await ok(name, 'node', 'ls', '--format', 'json')) as NodeJson[];
  }

  const hostnameOf = (n: NodeJson): string => n.description?.hostname ?? '';

  /** Waits until `name` sees `managers` managers: one leader and the rest reachable. */
  async function healthyManagers(name: string, managers: number): Promise<NodeJson[]> {
    return until(`${managers} healthy managers seen from ${name}`, async () => {
      const ns = await nodes(name);
      const ms = ns.filter((n) => n.role === 'NODE_ROLE_MANAGER');
      const leaders = ms.filter((n) => n.managerStatus?.leader);
      const reachable = ms.filter((n) => n.managerStatus?.reachability === 'REACHABILITY_REACHABLE');
      return ms.length === managers && leaders.length === 1 && reachable.length === managers ? ns : undefined;
    }, 30_000);
  }

  async function leaderHost(from: string): Promise<string> {
    const ns = await nodes(from);
    const l = ns.find((n) => n.managerStatus?.leader);
    if (!l) throw new Error('no leader');
    return lab.hosts.find((h) => l.managerStatus!.addr.startsWith(`${h.address}:`))!.name;
  }

  beforeAll(async () => {
    lab = await Lab.create({ hosts: ['m1', 'm2', 'm3', 'w1', 'w2', 'x1'] });
    await swarmdOn('m1', ['init', '--advertise-addr', addr('m1')]).waitForLog(/swarmd started/, 20_000);
    managerToken = (await ok('m1', 'cluster', 'join-token', 'manager', '-q')).trim();
    workerToken = (await ok('m1', 'cluster', 'join-token', 'worker', '-q')).trim();
    const joins = [
      ['m2', managerToken],
      ['m3', managerToken],
      ['w1', workerToken],
      ['w2', workerToken],
    ] as const;
    await Promise.all(joins.map(([h, token]) => swarmdOn(h, ['join', '--token', token, '--advertise-addr', addr(h), addr('m1')]).waitForLog(/swarmd started/, 60_000)));
  }, 120_000);

  afterAll(async () => {
    await lab?.destroy();
  });

  it('forms one cluster: three managers in one Raft group, two workers', async () => {
    const ns = await healthyManagers('m1', 3);
    expect(ns.map(hostnameOf).sort()).toEqual(['m1', 'm2', 'm3', 'w1', 'w2']);
    expect(ns.filter((n) => n.role === 'NODE_ROLE_WORKER').map(hostnameOf).sort()).toEqual(['w1', 'w2']);
    // Every manager answers the control API, followers by forwarding to the leader.
    for (const m of ['m2', 'm3']) expect((await nodes(m)).length).toBe(5);
    await ok('m2', 'service', 'create', '--detach', '--name', 'web', '--image', 'busybox', '--replicas', '3');
    await ok('m3', 'secret', 'create', 'db-password', '/etc/hostname');
    expect(await ok('m1', 'service', 'ls', '-q')).not.toBe('');
  }, 60_000);

  it('survives kill -9 of the leader with every committed object; the old leader rejoins', async () => {
    const old = await leaderHost('m1');
    const others = ['m1', 'm2', 'm3'].filter((m) => m !== old);
    await procs.get(old)!.kill9();
    // A write sent at once, while the others elect a new leader: the follower waits for the
    // election (nothing was proposed), then forwards it; it is applied once.
    const during = ok(others[1]!, 'secret', 'create', 'during-election', '/etc/hostname');
    const next = await until('a new leader', async () => {
      const l = await leaderHost(others[0]!);
      return l !== old ? l : undefined;
    });
    expect(others).toContain(next);
    expect(await ok(others[0]!, 'service', 'ls', '--format', 'json')).toContain('"web"');
    expect(await ok(others[1]!, 'secret', 'ls', '--format', 'json')).toContain('db-password');
    expect((await during).trim()).toMatch(/^[0-9a-z]{25}$/);
    expect((await ok(others[0]!, 'secret', 'ls')).match(/during-election/g)).toHaveLength(1);
    await ok(others[1]!, 'service', 'create', '--detach', '--name', 'after-failover', '--image', 'busybox');
    // Restarted from its data directory, it rejoins by itself and catches up.
    await swarmdOn(old, []).waitForLog(/swarmd started/, 20_000);
    await healthyManagers(next, 3);
    await until('the restarted manager to catch up', async () => ((await ok(old, 'service', 'ls')).includes('after-failover') ? true : undefined));
  }, 90_000);

  it('refuses a wrong token, a token of another cluster and a rotated token, each with a clear message', async () => {
    const join = (token: string): Promise<ExecResult> =>
      host('x1').exec(process.execPath, [swarmd, '--log-format', 'json', '--data-dir', '/var/lib/tswarm/probe', '--socket', '/run/tswarm/probe.sock', 'join', '--token', token, '--advertise-addr', addr('x1'), addr('m1')], { timeoutMs: 30_000 });
    const wrongSecret = workerToken.replace(/-[0-9a-z]{25}$/, '-0000000000000000000000000');
    const r1 = await join(wrongSecret);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain('the join token is not valid for this cluster');
    const otherCluster = workerToken.replace(/^SWMTKN-1-[0-9a-z]{50}/, `SWMTKN-1-${'1'.repeat(50)}`);
    const r2 = await join(otherCluster);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('does not match the join token');
    const r3 = await join('SWMTKN-1-nonsense');
    expect(r3.code).toBe(2);
    expect(r3.stderr).toContain('--token: is not a join token');
    // Rotation: the old worker token stops working; nothing was left behind by the refusals.
    await ok('m2', 'cluster', 'join-token', 'worker', '--rotate', '-q');
    const r4 = await join(workerToken);
    expect(r4.code).toBe(1);
    expect(r4.stderr).toContain('not valid for this cluster');
    expect((await nodes('m1')).length).toBe(5);
  }, 90_000);

  it("refuses a worker's certificate at the control API, and takes a manager's", async () => {
    const w = await ctl('w1', '--host', addr('m1'), '--cert-dir', '/var/lib/tswarm/certs', 'service', 'ls');
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(/node \S+ is a worker; only managers may call the control API/);
    const plain = await ctl('w1', '--host', addr('m1'), 'service', 'ls');
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain('mutual TLS');
    // A manager's certificate (m2's own) is taken.
    const m = await ctl('m2', '--host', addr('m1'), '--cert-dir', '/var/lib/tswarm/certs', 'service', 'ls', '-q');
    expect(m.code).toBe(0);
    expect(m.stdout.trim().split('\n')).toHaveLength(2);
  }, 30_000);

  it('promotes a worker to a voting manager and demotes it back', async () => {
    await ok('m1', 'node', 'promote', 'w2');
    await healthyManagers('m1', 4);
    // w2 now serves the control API on its own socket, and it votes: the leader counts it.
    await until('w2 to serve the control API', async () => ((await ctl('w2', 'service', 'ls')).code === 0 ? true : undefined));
    await ok('w2', 'node', 'demote', 'w2');
    await healthyManagers('m1', 3);
    await until('w2 to stop serving the control API', async () => ((await ctl('w2', 'service', 'ls')).code !== 0 ? true : undefined));
    expect((await nodes('m1')).find((n) => hostnameOf(n) === 'w2')?.role).toBe('NODE_ROLE_WORKER');
  }, 90_000);

  it('refuses a demotion that would lose the quorum, and says why', async () => {
    const leader = await leaderHost('m1');
    const [a, b] = ['m1', 'm2', 'm3'].filter((m) => m !== leader) as [string, string];
    await procs.get(b)!.kill9();
    // Wait until the leader notices b is gone.
    await until(`${b} unreachable`, async () => ((await nodes(leader)).find((n) => hostnameOf(n) === b)?.managerStatus?.reachability === 'REACHABILITY_UNREACHABLE' ? true : undefined));
    const r = await ctl(leader, 'node', 'demote', a);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/would lose the quorum: 1 of the other 2 managers are reachable and 2 are needed/);
    const rm = await ctl(leader, 'node', 'rm', a);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toContain('is a manager; demote it first');
    await swarmdOn(b, []).waitForLog(/swarmd started/, 20_000);
    await healthyManagers(leader, 3);
  }, 90_000);

  it('comes back from quorum loss with --force-new-cluster, keeping its services', async () => {
    await ok('m1', 'service', 'create', '--detach', '--name', 'before-loss', '--image', 'busybox');
    await procs.get('m2')!.kill9();
    await procs.get('m3')!.kill9();
    // Without a quorum nothing can be written.
    const stuck = await ctl('m1', 'service', 'create', '--detach', '--name', 'no-quorum', '--image', 'busybox');
    expect(stuck.code).toBe(1);
    await procs.get('m1')!.stop();
    await swarmdOn('m1', ['init', '--force-new-cluster']).waitForLog(/swarmd started/, 20_000);
    const services = await until('the rebuilt cluster to answer', async () => ok('m1', 'service', 'ls'));
    for (const name of ['web', 'after-failover', 'before-loss']) expect(services).toContain(name);
    expect(services).not.toContain('no-quorum');
    expect(await ok('m1', 'secret', 'ls')).toContain('db-password');
    const ns = await healthyManagers('m1', 1);
    for (const gone of ['m2', 'm3']) {
      const n = ns.find((x) => hostnameOf(x) === gone)!;
      expect(n.role).toBe('NODE_ROLE_WORKER');
      expect(n.status?.state).toBe('NODE_STATE_DOWN');
    }
    await ok('m1', 'service', 'create', '--detach', '--name', 'after-rebuild', '--image', 'busybox');
    // The lost managers' machines can be removed, and the workers still belong to the cluster.
    await ok('m1', 'node', 'rm', ns.find((x) => hostnameOf(x) === 'm2')!.id);
    expect((await nodes('m1')).map(hostnameOf).sort()).toEqual(['m1', 'm3', 'w1', 'w2']);
  }, 90_000);
});
