// Raft benchmark: three replicas of our Raft KV as separate processes on loopback (fsync on, 1 KiB
// values) against a three-member etcd (Debian's etcd-server) driven by the same load generator
// through the etcd3 client, in the same invocation. Prints both figures and the ratios.
//   node dist/bench/raft.js [--seconds 10] [--trials 20] [--steady-seconds 0]
// --steady-seconds N adds a steady 64-client run of N seconds on our replicas that counts leader
// changes (the goal is none in 600 s).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { KvCluster, sleep } from '../test/raft/kv-client.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const kvServer = join(here, '../test/raft/kv-server.js');

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('seconds', { type: 'number', default: 10, describe: 'duration of each throughput run' })
  .option('trials', { type: 'number', default: 20, describe: 'failover trials' })
  .option('steady-seconds', { type: 'number', default: 0 })
  .option('skip-etcd', { type: 'boolean', default: false })
  .parseSync();

const children = new Set<ChildProcess>();
const root = mkdtempSync(join(tmpdir(), 'tswarm-bench-raft-'));
function cleanup(): void {
  for (const c of children) c.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

function start(cmd: string, args: string[]): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  c.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  c.once('exit', () => children.delete(c));
  (c as ChildProcess & { lastErr: () => string }).lastErr = () => err;
  children.add(c);
  return c;
}

interface LoadResult {
  ops: number;
  opsPerSec: number;
  p50: number;
  p99: number;
  errors: number;
}

/** `clients` concurrent writers, each sequential, 1 KiB values over 1,000 keys, for `seconds`. */
async function runLoad(put: (key: string, value: Buffer) => Promise<void>, clients: number, seconds: number): Promise<LoadResult> {
  const value = Buffer.alloc(1024, 0x61);
  const lat: number[] = [];
  let errors = 0;
  // Warm-up: connections, JIT.
  for (let i = 0; i < 50; i++) await put(`warm${i}`, value).catch(() => undefined);
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      let n = 0;
      while (performance.now() < end) {
        const s = performance.now();
        try {
          await put(`key${(c * 7919 + n++) % 1000}`, value);
          lat.push(performance.now() - s);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const pct = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  return { ops: lat.length, opsPerSec: lat.length / elapsed, p50: pct(0.5), p99: pct(0.99), errors };
}

// ------------------------------------------------------------------ ours

const RAFT_PORT = 27000;
const KV_PORT = 28000;
const ids = [1, 2, 3];
const peers = ids.map((i) => `${i}=127.0.0.1:${RAFT_PORT + i}`).join(',');
const ours = new Map<number, ChildProcess>();

function startReplica(id: number): void {
  ours.set(
    id,
    start(process.execPath, [kvServer, '--id', String(id), '--raft-addr', `127.0.0.1:${RAFT_PORT + id}`, '--kv-addr', `127.0.0.1:${KV_PORT + id}`, '--peers', peers, '--bootstrap', '--data-dir', join(root, `raft${id}`)]),
  );
}

async function leaderOf(cluster: KvCluster): Promise<{ id: number; applied: number }> {
  for (let i = 0; i < 200; i++) {
    const s = await Promise.all(cluster.ids().map((id) => cluster.status(id, 300).catch(() => null)));
    const leaders = s.filter((x) => x?.role === 'leader');
    if (leaders.length === 1) return { id: leaders[0]!.id, applied: leaders[0]!.applied };
    await sleep(25);
  }
  throw new Error('no leader among our replicas');
}

async function killAndTime(cluster: KvCluster): Promise<number> {
  const leader = (await leaderOf(cluster)).id;
  const value = Buffer.alloc(1024, 0x62);
  let killedAt = 0;
  let firstCommitAfter = 0;
  let stop = false;
  const writer = (async () => {
    let n = 0;
    while (!stop) {
      const r = await cluster.put(`f${n++ % 100}`, value, 3000);
      if (r.ok && killedAt > 0 && performance.now() > killedAt && firstCommitAfter === 0) {
        firstCommitAfter = performance.now();
        stop = true;
      }
    }
  })();
  await sleep(300);
  killedAt = performance.now();
  ours.get(leader)!.kill('SIGKILL');
  await writer;
  const took = firstCommitAfter - killedAt;
  // Bring the replica back and let it catch up before the next trial.
  startReplica(leader);
  const target = (await leaderOf(cluster)).applied;
  for (let i = 0; i < 200; i++) {
    const s = await cluster.status(leader, 300).catch(() => null);
    if (s && s.applied >= target) break;
    await sleep(25);
  }
  return took;
}

// ------------------------------------------------------------------ etcd

const ETCD = [1, 2, 3].map((i) => ({ name: `e${i}`, client: `http://127.0.0.1:${12379 + (i - 1) * 10000}`, peer: `http://127.0.0.1:${12380 + (i - 1) * 10000}` }));

function startEtcd(): void {
  const initial = ETCD.map((e) => `${e.name}=${e.peer}`).join(',');
  for (const e of ETCD) {
    start('etcd', [
      '--name', e.name, '--data-dir', join(root, e.name),
      '--listen-client-urls', e.client, '--advertise-client-urls', e.client,
      '--listen-peer-urls', e.peer, '--initial-advertise-peer-urls', e.peer,
      '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', 'tswarm-bench',
      '--log-level', 'error',
    ]);
  }
}

// ------------------------------------------------------------------ main

function fmt(r: LoadResult): string {
  return `${r.opsPerSec.toFixed(0).padStart(7)} ops/s  p50 ${r.p50.toFixed(2).padStart(6)} ms  p99 ${r.p99.toFixed(2).padStart(6)} ms  (${r.ops} ops, ${r.errors} errors)`;
}

const percentile = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

console.log(`Raft benchmark: 3 replicas on loopback, fsync on, 1 KiB values; ${argv.seconds} s per run`);
for (const id of ids) startReplica(id);
const cluster = new KvCluster(new Map(ids.map((i) => [i, `127.0.0.1:${KV_PORT + i}`])));
await leaderOf(cluster);
const ourPut = async (k: string, v: Buffer): Promise<void> => {
  const r = await cluster.put(k, v);
  if (!r.ok) throw new Error(r.error);
};
const ours1 = await runLoad(ourPut, 1, argv.seconds);
console.log(`tswarm raft, 1 client:    ${fmt(ours1)}`);
const ours64 = await runLoad(ourPut, 64, argv.seconds);
console.log(`tswarm raft, 64 clients:  ${fmt(ours64)}`);

const failovers: number[] = [];
for (let t = 0; t < argv.trials; t++) failovers.push(await killAndTime(cluster));
console.log(`tswarm failover (kill -9 of the leader → next write committed), ${failovers.length} trials: p50 ${percentile(failovers, 0.5).toFixed(0)} ms, p99 ${percentile(failovers, 0.99).toFixed(0)} ms, max ${Math.max(...failovers).toFixed(0)} ms`);

if (argv['steady-seconds'] > 0) {
  const before = await Promise.all(ids.map((id) => cluster.status(id)));
  const steady = await runLoad(ourPut, 64, argv['steady-seconds']);
  const after = await Promise.all(ids.map((id) => cluster.status(id)));
  const termsBefore = new Set(before.map((s) => s.term));
  const termsAfter = new Set(after.map((s) => s.term));
  console.log(`tswarm steady ${argv['steady-seconds']} s, 64 clients: ${fmt(steady)}; terms before ${[...termsBefore].join('/')} after ${[...termsAfter].join('/')} → ${Math.max(...after.map((s) => s.term)) - Math.max(...before.map((s) => s.term))} leader changes`);
}
cluster.close();
for (const c of ours.values()) c.kill('SIGKILL');

if (!argv['skip-etcd']) {
  startEtcd();
  const etcd = new Etcd3({ hosts: ETCD.map((e) => e.client) });
  for (let i = 0; i < 100; i++) {
    try {
      await etcd.put('ping').value('1');
      break;
    } catch {
      await sleep(100);
    }
  }
  const etcdPut = async (k: string, v: Buffer): Promise<void> => {
    await etcd.put(k).value(v);
  };
  const etcd1 = await runLoad(etcdPut, 1, argv.seconds);
  console.log(`etcd 3.4,    1 client:    ${fmt(etcd1)}`);
  const etcd64 = await runLoad(etcdPut, 64, argv.seconds);
  console.log(`etcd 3.4,    64 clients:  ${fmt(etcd64)}`);
  etcd.close();
  console.log('');
  console.log(`ratio (tswarm / etcd) throughput: 1 client ${(ours1.opsPerSec / etcd1.opsPerSec).toFixed(2)}×, 64 clients ${(ours64.opsPerSec / etcd64.opsPerSec).toFixed(2)}×`);
  console.log(`ratio (tswarm / etcd) p99 latency: 1 client ${(ours1.p99 / etcd1.p99).toFixed(2)}×, 64 clients ${(ours64.p99 / etcd64.p99).toFixed(2)}× (below 1 is better)`);
}
process.exit(0);
