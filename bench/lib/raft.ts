// The raw Raft figures and their anchor, shared by the benchmarks that print them: three replicas of
// our Raft KV (test/raft/kv-server.ts) as separate processes on loopback (fsync on), and a
// three-member etcd (Debian's etcd-server, default settings) on loopback, each driven by runLoad.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { KvCluster } from '../../test/raft/kv-client.js';
import { runLoad, sleep, type LoadResult } from './load.js';

const kvServer = fileURLToPath(new URL('../../test/raft/kv-server.js', import.meta.url));

/** Child processes of a benchmark and its scratch directory: all killed and removed on exit. */
export class Procs {
  readonly children = new Set<ChildProcess>();
  readonly root: string;

  private readonly onExit = (): void => this.cleanup();

  constructor(prefix: string) {
    this.root = mkdtempSync(join(tmpdir(), prefix));
    process.on('exit', this.onExit);
  }

  start(cmd: string, args: string[]): ChildProcess {
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    c.once('exit', () => this.children.delete(c));
    (c as ChildProcess & { lastErr: () => string }).lastErr = () => err;
    this.children.add(c);
    return c;
  }

  cleanup(): void {
    for (const c of this.children) c.kill('SIGKILL');
    rmSync(this.root, { recursive: true, force: true });
  }

  /** cleanup() now, for a benchmark that goes through many of these (nothing left for exit). */
  close(): void {
    this.cleanup();
    process.off('exit', this.onExit);
  }
}

/** CPU time (user + system) the processes have used so far, ms; a process gone counts 0. */
export function cpuMillisOf(children: Iterable<{ pid?: number | undefined }>): number {
  let ms = 0;
  for (const c of children) {
    if (c.pid === undefined) continue;
    try {
      // Fields after the command name (which may hold ") "): state is the 1st, utime the 12th,
      // stime the 13th, in clock ticks of 10 ms.
      const stat = readFileSync(`/proc/${c.pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ms += (Number(f[11]) + Number(f[12])) * 10;
    } catch {
      // exited
    }
  }
  return ms;
}

const RAFT_PORT = 27000;
const KV_PORT = 28000;

/** Three replicas of our Raft KV on loopback, fsync on. */
export class OurRaft {
  readonly ids = [1, 2, 3];
  readonly replicas = new Map<number, ChildProcess>();
  readonly cluster: KvCluster;
  private readonly peers = this.ids.map((i) => `${i}=127.0.0.1:${RAFT_PORT + i}`).join(',');

  /** `replicaArgs`: more kv-server options for every replica (e.g. `--lazy-commit`). */
  constructor(
    private readonly procs: Procs,
    private readonly replicaArgs: readonly string[] = [],
  ) {
    for (const id of this.ids) this.startReplica(id);
    this.cluster = new KvCluster(new Map(this.ids.map((i) => [i, `127.0.0.1:${KV_PORT + i}`])));
  }

  startReplica(id: number): void {
    this.replicas.set(
      id,
      this.procs.start(process.execPath, [
        kvServer, '--id', String(id), '--raft-addr', `127.0.0.1:${RAFT_PORT + id}`, '--kv-addr', `127.0.0.1:${KV_PORT + id}`,
        '--peers', this.peers, '--bootstrap', '--data-dir', join(this.procs.root, `raft${id}`), ...this.replicaArgs,
      ]),
    );
  }

  cpuMillis(): number {
    return cpuMillisOf(this.replicas.values());
  }

  async leaderOf(): Promise<{ id: number; applied: number }> {
    for (let i = 0; i < 200; i++) {
      const s = await Promise.all(this.cluster.ids().map((id) => this.cluster.status(id, 300).catch(() => null)));
      const leaders = s.filter((x) => x?.role === 'leader');
      if (leaders.length === 1) return { id: leaders[0]!.id, applied: leaders[0]!.applied };
      await sleep(25);
    }
    throw new Error('no leader among our replicas');
  }

  /** A write over the client's PutStream (one stream per replica, shared by all callers). */
  readonly put = async (k: string, v: Buffer): Promise<void> => {
    const r = await this.cluster.putStreamed(k, v);
    if (!r.ok) throw new Error(r.error);
  };

  /** The same write as one unary call (as the etcd3 client makes its puts). */
  readonly putUnary = async (k: string, v: Buffer): Promise<void> => {
    const r = await this.cluster.put(k, v);
    if (!r.ok) throw new Error(r.error);
  };

  close(): void {
    this.cluster.close();
    for (const c of this.replicas.values()) c.kill('SIGKILL');
  }
}

const ETCD = [1, 2, 3].map((i) => ({ name: `e${i}`, client: `http://127.0.0.1:${12379 + (i - 1) * 10000}`, peer: `http://127.0.0.1:${12380 + (i - 1) * 10000}` }));

/** A three-member etcd on loopback, default settings, through the etcd3 client. */
export class EtcdCluster {
  readonly client: Etcd3;
  private readonly members: ChildProcess[] = [];

  constructor(procs: Procs) {
    const initial = ETCD.map((e) => `${e.name}=${e.peer}`).join(',');
    for (const e of ETCD) {
      this.members.push(procs.start('etcd', [
        '--name', e.name, '--data-dir', join(procs.root, e.name),
        '--listen-client-urls', e.client, '--advertise-client-urls', e.client,
        '--listen-peer-urls', e.peer, '--initial-advertise-peer-urls', e.peer,
        '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', 'tswarm-bench',
        '--log-level', 'error',
      ]));
    }
    this.client = new Etcd3({ hosts: ETCD.map((e) => e.client) });
  }

  cpuMillis(): number {
    return cpuMillisOf(this.members);
  }

  async ready(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      try {
        await this.client.put('ping').value('1');
        return;
      } catch {
        await sleep(100);
      }
    }
  }

  readonly put = async (k: string, v: Buffer): Promise<void> => {
    await this.client.put(k).value(v);
  };

  close(): void {
    this.client.close();
    for (const m of this.members) m.kill('SIGKILL');
  }
}

export interface Pair {
  one: LoadResult;
  many: LoadResult;
}

/** Our replicas: 1 client, then 64, for `seconds` each; the replicas are stopped afterwards. */
export async function measureOurRaft(procs: Procs, seconds: number): Promise<Pair> {
  const ours = new OurRaft(procs);
  try {
    await ours.leaderOf();
    const one = await runLoad(ours.put, 1, seconds);
    const many = await runLoad(ours.put, 64, seconds);
    return { one, many };
  } finally {
    ours.close();
  }
}

/** etcd: 1 client, then 64, for `seconds` each; etcd is stopped afterwards. */
export async function measureEtcd(procs: Procs, seconds: number): Promise<Pair> {
  const etcd = new EtcdCluster(procs);
  try {
    await etcd.ready();
    const one = await runLoad(etcd.put, 1, seconds);
    const many = await runLoad(etcd.put, 64, seconds);
    return { one, many };
  } finally {
    etcd.close();
  }
}
