// Raft benchmark: three replicas of our Raft KV as separate processes on loopback (fsync on, 1 KiB
// values) against a three-member etcd (Debian's etcd-server) driven by the same load generator
// through the etcd3 client, in the same invocation. Prints both figures and the ratios.
//   node dist/bench/raft.js [--seconds 4] [--rounds 4] [--warm-up-seconds 3] [--trials 20] [--steady-seconds 0]
// Both clusters run side by side and each load alternates between the sides, round after round,
// the order reversed every other round: this machine's speed drifts from minute to minute (the
// hypervisor's steal comes and goes), and alternating puts every side under the same drift. The
// sides: our client's stream, etcd through etcd3, and our replicas with one unary call per write
// (how etcd3 writes; it shows what the stream is worth). Each side's figures pool the writes of
// all its rounds. Every run prints the machine's busy and steal shares.
// --steady-seconds N adds a steady 64-client run of N seconds on our replicas that counts leader
// changes (the goal is none in 600 s).
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { cpuCounters, cpuSince, fmt, percentile, pooled, runLoad, sleep, type LoadResult } from './lib/load.js';
import { alternate } from './lib/paired.js';
import { EtcdCluster, OurRaft, Procs } from './lib/raft.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('seconds', { type: 'number', default: 4, describe: 'duration of each throughput run (per side and round)' })
  .option('rounds', { type: 'number', default: 4, describe: 'alternating rounds of each load (even: every side goes first equally often)' })
  .option('warm-up-seconds', { type: 'number', default: 3, describe: 'untimed run of each load on each side first' })
  .option('trials', { type: 'number', default: 20, describe: 'failover trials' })
  .option('steady-seconds', { type: 'number', default: 0 })
  .option('skip-etcd', { type: 'boolean', default: false })
  .parseSync();

const procs = new Procs('tswarm-bench-raft-');
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

// ------------------------------------------------------------------ ours

async function killAndTime(ours: OurRaft): Promise<number> {
  const cluster = ours.cluster;
  const leader = (await ours.leaderOf()).id;
  const value = Buffer.alloc(1024, 0x62);
  let killedAt = 0;
  let firstCommitAfter = 0;
  let stop = false;
  const writer = (async () => {
    let n = 0;
    while (!stop) {
      // Only a write sent after the kill counts (one in flight at the kill may be answered after it).
      const sentAt = performance.now();
      const r = await cluster.put(`f${n++ % 100}`, value, 3000);
      if (r.ok && killedAt > 0 && sentAt > killedAt && firstCommitAfter === 0) {
        firstCommitAfter = performance.now();
        stop = true;
      }
    }
  })();
  await sleep(300);
  killedAt = performance.now();
  ours.replicas.get(leader)!.kill('SIGKILL');
  await writer;
  const took = firstCommitAfter - killedAt;
  // Bring the replica back and let it catch up before the next trial.
  ours.startReplica(leader);
  const target = (await ours.leaderOf()).applied;
  for (let i = 0; i < 200; i++) {
    const s = await cluster.status(leader, 300).catch(() => null);
    if (s && s.applied >= target) break;
    await sleep(25);
  }
  return took;
}

// ------------------------------------------------------------------ main

type Put = (k: string, v: Buffer) => Promise<void>;

/** `rounds` alternating runs of the same load on every side (bench/lib/paired.ts); each side pooled. */
async function paired(clients: number, sides: { name: string; put: Put }[]): Promise<LoadResult[]> {
  const runs = await alternate(
    clients,
    sides.map((s) => ({ name: s.name, run: (c: number, seconds: number) => runLoad(s.put, c, seconds) })),
    { rounds: argv.rounds, seconds: argv.seconds, warmUpSeconds: argv['warm-up-seconds'] },
  );
  return runs.map(pooled);
}

console.log(`Raft benchmark: 3 replicas on loopback, fsync on, 1 KiB values; ${argv.rounds} rounds of ${argv.seconds} s per load and side`);
const ours = new OurRaft(procs);
const cluster = ours.cluster;
await ours.leaderOf();
const etcd = argv['skip-etcd'] ? undefined : new EtcdCluster(procs);
await etcd?.ready();
const sides = [
  { name: 'tswarm raft', put: ours.put },
  { name: 'tswarm, unary calls', put: ours.putUnary },
  ...(etcd ? [{ name: 'etcd 3.4', put: etcd.put }] : []),
];

// What each cluster costs the machine while the other one is measured (both stay up).
const idleSeconds = 3;
const idleBefore = cpuCounters();
const oursIdle = ours.cpuMillis();
const etcdIdle = etcd?.cpuMillis() ?? 0;
await sleep(idleSeconds * 1000);
console.log(
  `idle: tswarm's replicas use ${((ours.cpuMillis() - oursIdle) / idleSeconds / 10).toFixed(1)}% of one CPU` +
    (etcd ? `, etcd's members ${((etcd.cpuMillis() - etcdIdle) / idleSeconds / 10).toFixed(1)}%` : '') +
    ` (machine busy ${(cpuSince(idleBefore).busy * 100).toFixed(0)}%)`,
);

// --rounds 0: no throughput runs (e.g. failover trials alone), and so no figures to print.
if (argv.rounds > 0) {
  console.log('1 client, sequential:');
  const [ours1, unary1, etcd1] = await paired(1, sides);
  console.log('64 concurrent clients:');
  const [ours64, unary64, etcd64] = await paired(64, sides);
  etcd?.close();

  console.log('');
  console.log(`tswarm raft, 1 client:    ${fmt(ours1!)}`);
  console.log(`tswarm raft, 64 clients:  ${fmt(ours64!)}`);
  console.log(`tswarm raft, unary calls, 1 client:    ${fmt(unary1!)}`);
  console.log(`tswarm raft, unary calls, 64 clients:  ${fmt(unary64!)}`);
  if (etcd1 && etcd64) {
    console.log(`etcd 3.4,    1 client:    ${fmt(etcd1)}`);
    console.log(`etcd 3.4,    64 clients:  ${fmt(etcd64)}`);
    console.log(`ratio (tswarm / etcd) throughput: 1 client ${(ours1!.opsPerSec / etcd1.opsPerSec).toFixed(2)}×, 64 clients ${(ours64!.opsPerSec / etcd64.opsPerSec).toFixed(2)}×`);
    console.log(`ratio (tswarm / etcd) p99 latency: 1 client ${(ours1!.p99 / etcd1.p99).toFixed(2)}×, 64 clients ${(ours64!.p99 / etcd64.p99).toFixed(2)}× (below 1 is better)`);
    console.log(`with unary calls: throughput 1 client ${(unary1!.opsPerSec / etcd1.opsPerSec).toFixed(2)}×, 64 clients ${(unary64!.opsPerSec / etcd64.opsPerSec).toFixed(2)}×; p99 1 client ${(unary1!.p99 / etcd1.p99).toFixed(2)}×, 64 clients ${(unary64!.p99 / etcd64.p99).toFixed(2)}×`);
  }
} else {
  etcd?.close();
}

const failovers: number[] = [];
for (let t = 0; t < argv.trials; t++) failovers.push(await killAndTime(ours));
if (failovers.length > 0) {
  console.log(`tswarm failover (kill -9 of the leader → next write committed), ${failovers.length} trials: p50 ${percentile(failovers, 0.5).toFixed(0)} ms, p99 ${percentile(failovers, 0.99).toFixed(0)} ms, max ${Math.max(...failovers).toFixed(0)} ms`);
}

if (argv['steady-seconds'] > 0) {
  const before = await Promise.all(ours.ids.map((id) => cluster.status(id)));
  const steady = await runLoad(ours.put, 64, argv['steady-seconds']);
  const after = await Promise.all(ours.ids.map((id) => cluster.status(id)));
  const termsBefore = new Set(before.map((s) => s.term));
  const termsAfter = new Set(after.map((s) => s.term));
  console.log(`tswarm steady ${argv['steady-seconds']} s, 64 clients: ${fmt(steady)}; terms before ${[...termsBefore].join('/')} after ${[...termsAfter].join('/')} → ${Math.max(...after.map((s) => s.term)) - Math.max(...before.map((s) => s.term))} leader changes`);
}
ours.close();
process.exit(0);
