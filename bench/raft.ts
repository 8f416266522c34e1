// Raft benchmark: three replicas of our Raft KV as separate processes on loopback (fsync on, 1 KiB
// values) against a three-member etcd (Debian's etcd-server) driven by the same load generator
// through the etcd3 client, in the same invocation. Prints both figures and the ratios.
//   node dist/bench/raft.js [--seconds 10] [--trials 20] [--steady-seconds 0]
// --steady-seconds N adds a steady 64-client run of N seconds on our replicas that counts leader
// changes (the goal is none in 600 s).
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { fmt, percentile, runLoad, sleep } from './lib/load.js';
import { EtcdCluster, OurRaft, Procs } from './lib/raft.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('seconds', { type: 'number', default: 10, describe: 'duration of each throughput run' })
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

console.log(`Raft benchmark: 3 replicas on loopback, fsync on, 1 KiB values; ${argv.seconds} s per run`);
const ours = new OurRaft(procs);
const cluster = ours.cluster;
await ours.leaderOf();
const ours1 = await runLoad(ours.put, 1, argv.seconds);
console.log(`tswarm raft, 1 client:    ${fmt(ours1)}`);
const ours64 = await runLoad(ours.put, 64, argv.seconds);
console.log(`tswarm raft, 64 clients:  ${fmt(ours64)}`);
// The same loads with one unary call per write (the client's PutStream above is our client's
// protocol; unary calls are how the etcd3 client writes): shows what the stream is worth.
const unary1 = await runLoad(ours.putUnary, 1, argv.seconds);
console.log(`tswarm raft, 1 client, unary calls:   ${fmt(unary1)}`);
const unary64 = await runLoad(ours.putUnary, 64, argv.seconds);
console.log(`tswarm raft, 64 clients, unary calls: ${fmt(unary64)}`);

const failovers: number[] = [];
for (let t = 0; t < argv.trials; t++) failovers.push(await killAndTime(ours));
console.log(`tswarm failover (kill -9 of the leader → next write committed), ${failovers.length} trials: p50 ${percentile(failovers, 0.5).toFixed(0)} ms, p99 ${percentile(failovers, 0.99).toFixed(0)} ms, max ${Math.max(...failovers).toFixed(0)} ms`);

if (argv['steady-seconds'] > 0) {
  const before = await Promise.all(ours.ids.map((id) => cluster.status(id)));
  const steady = await runLoad(ours.put, 64, argv['steady-seconds']);
  const after = await Promise.all(ours.ids.map((id) => cluster.status(id)));
  const termsBefore = new Set(before.map((s) => s.term));
  const termsAfter = new Set(after.map((s) => s.term));
  console.log(`tswarm steady ${argv['steady-seconds']} s, 64 clients: ${fmt(steady)}; terms before ${[...termsBefore].join('/')} after ${[...termsAfter].join('/')} → ${Math.max(...after.map((s) => s.term)) - Math.max(...before.map((s) => s.term))} leader changes`);
}
ours.close();

if (!argv['skip-etcd']) {
  const etcd = new EtcdCluster(procs);
  await etcd.ready();
  const etcd1 = await runLoad(etcd.put, 1, argv.seconds);
  console.log(`etcd 3.4,    1 client:    ${fmt(etcd1)}`);
  const etcd64 = await runLoad(etcd.put, 64, argv.seconds);
  console.log(`etcd 3.4,    64 clients:  ${fmt(etcd64)}`);
  etcd.close();
  console.log('');
  console.log(`ratio (tswarm / etcd) throughput: 1 client ${(ours1.opsPerSec / etcd1.opsPerSec).toFixed(2)}×, 64 clients ${(ours64.opsPerSec / etcd64.opsPerSec).toFixed(2)}×`);
  console.log(`ratio (tswarm / etcd) p99 latency: 1 client ${(ours1.p99 / etcd1.p99).toFixed(2)}×, 64 clients ${(ours64.p99 / etcd64.p99).toFixed(2)}× (below 1 is better)`);
  console.log(`with unary calls: throughput 1 client ${(unary1.opsPerSec / etcd1.opsPerSec).toFixed(2)}×, 64 clients ${(unary64.opsPerSec / etcd64.opsPerSec).toFixed(2)}×; p99 1 client ${(unary1.p99 / etcd1.p99).toFixed(2)}×, 64 clients ${(unary64.p99 / etcd64.p99).toFixed(2)}×`);
}
process.exit(0);
