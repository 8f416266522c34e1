// The cluster bench/controlapi.ts writes to: three managers on three lab hosts (`swarmd init` on
// m1, `swarmd join` with the manager token on m2 and m3, one at a time as Raft changes its
// membership), fsync on, and the load generator (controlapi-client.ts) run as a child process on a
// lab host other than the leader's, presenting m1's certificate: the lab's addresses are reachable
// only from inside the lab. Also what the benchmark reads about the cluster: who leads, the swarmd
// logs (lag, leader changes), the snapshots, the objects stored. Everything goes with destroy().
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, type LabHost } from '../../test/lab/lab.js';
import { dist } from '../../test/util/dist.js';
import type { Cluster, Node } from '../../proto/gen/tswarm/objects.js';
import { NodeRole, ReachabilityState } from '../../proto/gen/tswarm/types.js';
import { sleep, type LoadResult } from './load.js';
import { cpuMillisOf } from './raft.js';
import { runLabClient } from './lab-client.js';
import { SnapshotWatch } from './snapshot-watch.js';
import { lagLoggedThrough, parseSwarmdLog, termAt, type SwarmdLog } from './swarmd-logs.js';

const swarmd = dist('cli/swarmd.js');
const swarmctl = dist('cli/swarmctl.js');
const loadClient = dist('bench/lib/controlapi-client.js');
const PORT = 4242;

export type Kind = 'secret' | 'config';

/** What the load generator prints last: the run, and its warm-up writes acknowledged. */
export interface ClientResult extends LoadResult {
  warmUpAcked: number;
}

export interface LoadOptions {
  clients: number;
  seconds: number;
  /** Object names start with it: unique per run. */
  prefix: string;
  /** Send to a follower, which forwards to the leader. */
  viaFollower?: boolean;
  /** Told each interval's figures as the load generator prints them. */
  report?: { everySeconds: number; onReport: (interval: LoadResult) => void };
}

const isManager = (n: Node): boolean => n.role === NodeRole.NODE_ROLE_MANAGER || (n.role as unknown) === 'NODE_ROLE_MANAGER';
const isReachable = (n: Node): boolean => {
  const r = n.managerStatus?.reachability as unknown;
  return r === ReachabilityState.REACHABILITY_REACHABLE || r === 'REACHABILITY_REACHABLE';
};

/** A node by its hostname, or by its address when it has sent no description. */
export const nameOf = (n: Node | undefined): string => (n ? n.description?.hostname || n.managerStatus?.addr || n.id : 'none');

interface Managers {
  nodes: Node[];
  leader: Node | undefined;
  reachable: number;
}

export class ControlApiCluster {
  readonly snapshots: SnapshotWatch;
  /** The leader's host, and the term in which `node ls` showed it. */
  private leading: { host: LabHost; term: number } | undefined;

  private constructor(
    readonly lab: Lab,
    private readonly kind: Kind,
    private readonly payloadBytes: number,
  ) {
    // swarmd's data directory is the host's state directory (HOST_STATE_MOUNT inside).
    this.snapshots = new SnapshotWatch(new Map(lab.hosts.map((h) => [h.name, join(h.stateDir, 'raft', 'snap')])));
  }

  /** `nodeFlags`: flags for node before swarmd's script (e.g. --cpu-prof). */
  static async create(opts: { kind: Kind; payloadBytes: number; nodeFlags: string[] }): Promise<ControlApiCluster> {
    const lab = await Lab.create({ hosts: ['m1', 'm2', 'm3'] });
    const c = new ControlApiCluster(lab, opts.kind, opts.payloadBytes);
    try {
      const [m1, m2, m3] = lab.hosts as [LabHost, LabHost, LabHost];
      const first = m1.start('swarmd', process.execPath, [...opts.nodeFlags, swarmd, 'init', '--advertise-addr', `${m1.address}:${PORT}`]);
      await first.waitForLog(/swarmd started/, 30_000);
      const token = (await c.ctl(['cluster', 'join-token', 'manager', '-q'])).trim();
      for (const [i, h] of [m2, m3].entries()) {
        const p = h.start('swarmd', process.execPath, [...opts.nodeFlags, swarmd, 'join', '--token', token, '--advertise-addr', `${h.address}:${PORT}`, `${m1.address}:${PORT}`]);
        await p.waitForLog(/swarmd started/, 30_000);
        await c.waitForManagers(i + 2);
      }
      await c.leader();
      return c;
    } catch (err) {
      c.printLogTails();
      await c.destroy();
      throw err;
    }
  }

  /** swarmctl on m1. */
  async ctl(args: string[]): Promise<string> {
    const h = this.lab.hosts[0]!;
    const r = await h.exec(process.execPath, [swarmctl, ...args], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')} on ${h.name} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  private async managers(): Promise<Managers> {
    const nodes = (JSON.parse(await this.ctl(['node', 'ls', '--format', 'json'])) as Node[]).filter(isManager);
    return { nodes, leader: nodes.find((n) => n.managerStatus?.leader), reachable: nodes.filter((n) => !n.managerStatus?.leader && isReachable(n)).length };
  }

  /** Waits until `node ls` shows `count` managers: one leader, the others reachable. */
  private async waitForManagers(count: number, timeoutMs = 90_000): Promise<Managers> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      try {
        const m = await this.managers();
        if (m.nodes.length === count && m.leader && m.reachable === count - 1) return m;
        last = `${m.nodes.length} managers, leader ${nameOf(m.leader)}, ${m.reachable} reachable`;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`node ls never showed ${count} managers with one leader and ${count - 1} reachable; last: ${last}`);
      await sleep(500);
    }
  }

  /** The leader's host; asked of `node ls` again only after a term the last answer did not see. */
  async leader(): Promise<LabHost> {
    const term = termAt(this.logs(), Date.now());
    if (this.leading && this.leading.term === term) return this.leading.host;
    const m = await this.waitForManagers(3);
    const host = this.lab.hosts.find((h) => `${h.address}:${PORT}` === m.leader!.managerStatus!.addr);
    if (!host) throw new Error(`the leader ${nameOf(m.leader)} at ${m.leader!.managerStatus!.addr} is none of the lab's hosts`);
    this.leading = { host, term };
    return host;
  }

  /** Every manager's swarmd log as read now. */
  logs(): SwarmdLog[] {
    return this.lab.hosts.map((h) => parseSwarmdLog(h.name, h.processes.get('swarmd')?.log() ?? ''));
  }

  /**
   * Waits (at most a window and 5 s) until the lag window that covers `to` has been logged by
   * every manager that led in [from, to]; returns the logs then.
   */
  async logsThrough(from: number, to: number, windowMs = 10_000): Promise<SwarmdLog[]> {
    const deadline = Date.now() + windowMs + 5_000;
    for (;;) {
      const logs = this.logs();
      if (lagLoggedThrough(logs, from, to) || Date.now() > deadline) return logs;
      await sleep(250);
    }
  }

  /** CPU time the three swarmd processes have used so far, ms. */
  cpuMillis(): number {
    return cpuMillisOf(this.lab.hosts.map((h) => ({ pid: h.processes.get('swarmd')?.pid })));
  }

  /** The cluster object's spec (`cluster inspect`). */
  async spec(): Promise<NonNullable<Cluster['spec']>> {
    return (JSON.parse(await this.ctl(['cluster', 'inspect'])) as Cluster).spec!;
  }

  async setSnapshotInterval(entries: number): Promise<void> {
    await this.ctl(['cluster', 'update', '--snapshot-interval', String(entries)]);
  }

  /**
   * One run of the load generator against the leader (or a follower), from a host that is not the
   * leader's. With `report`, its interval lines are handed over as they come.
   */
  async load(o: LoadOptions): Promise<ClientResult> {
    const leader = await this.leader();
    const others = this.lab.hosts.filter((h) => h !== leader);
    const from = others[0]!;
    const to = o.viaFollower ? others[1]! : leader;
    const args = [
      loadClient, '--addr', `${to.address}:${PORT}`, '--cert-dir', join(this.lab.hosts[0]!.stateDir, 'certs'), '--clients', String(o.clients), '--seconds', String(o.seconds),
      '--kind', this.kind, '--payload-bytes', String(this.payloadBytes), '--prefix', o.prefix, ...(o.report ? ['--report-every', String(o.report.everySeconds)] : []),
    ];
    const lines = await runLabClient(from, args, o.seconds * 1000 + 120_000, (j) => {
      if (j.type === 'interval') o.report?.onReport(j as unknown as LoadResult);
    });
    const res = lines.find((j) => j.type === 'result') as ClientResult | undefined;
    if (!res) throw new Error(`the load generator on ${from.name} printed no result`);
    return res;
  }

  /** The objects of the kind in the store, counted through the control API on the leader. */
  async count(): Promise<number> {
    const leader = await this.leader();
    const args = [loadClient, '--addr', `${leader.address}:${PORT}`, '--cert-dir', join(this.lab.hosts[0]!.stateDir, 'certs'), '--kind', this.kind, '--count'];
    const lines = await runLabClient(leader, args, 180_000);
    return Number(lines.find((j) => j.type === 'count')?.count);
  }

  /** SIGTERM to every swarmd: a CPU profile is written when the process exits on its own. */
  async stop(): Promise<void> {
    await Promise.all(this.lab.hosts.map((h) => h.processes.get('swarmd')?.stop(10_000) ?? Promise.resolve()));
  }

  printLogTails(lines = 30): void {
    for (const h of this.lab.hosts) {
      const log = h.processes.get('swarmd')?.log() ?? '';
      console.error(`--- swarmd on ${h.name} (last ${lines} lines)\n${log.trim().split('\n').slice(-lines).join('\n')}`);
    }
  }

  copyLogs(dir: string): void {
    mkdirSync(dir, { recursive: true });
    for (const h of this.lab.hosts) {
      const p = h.processes.get('swarmd');
      if (p) copyFileSync(p.logPath, join(dir, `${h.name}.log`));
    }
  }

  async destroy(): Promise<void> {
    this.snapshots.stop();
    await this.lab.destroy();
  }
}
