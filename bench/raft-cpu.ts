// CPU per write of each process, our Raft KV with the commit index told to followers lazily
// (`kv-server --lazy-commit`, RaftConfig.lazyCommit) against eagerly (the default, etcd's way).
// Fresh clusters in alternating order, one at a time, an untimed warm-up each; medians printed.
//   node dist/bench/raft-cpu.js [--trials 6] [--seconds 5] [--clients 1]
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { cpuCounters, cpuSince, runLoad, sleep } from './lib/load.js';
import { cpuMillisOf, OurRaft, Procs } from './lib/raft.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('trials', { type: 'number', default: 6, describe: 'clusters per way' })
  .option('seconds', { type: 'number', default: 5 })
  .option('clients', { type: 'number', default: 1 })
  .parseSync();
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

interface Sample {
  leader: number;
  followers: number[];
  client: number;
  opsPerSec: number;
  p99: number;
}

async function trial(eager: boolean): Promise<Sample> {
  const procs = new Procs('tswarm-bench-raft-cpu-');
  const ours = new OurRaft(procs, eager ? [] : ['--lazy-commit']);
  try {
    const leader = (await ours.leaderOf()).id;
    await runLoad(ours.put, argv.clients, 3);
    const of = (id: number): number => cpuMillisOf([ours.replicas.get(id)!]);
    const before = new Map(ours.ids.map((id) => [id, of(id)]));
    const self = process.cpuUsage();
    const machine = cpuCounters();
    const r = await runLoad(ours.put, argv.clients, argv.seconds);
    const used = process.cpuUsage(self);
    const perWrite = (ms: number): number => (ms * 1000) / r.ops;
    const s: Sample = {
      leader: perWrite(of(leader) - before.get(leader)!),
      followers: ours.ids.filter((id) => id !== leader).map((id) => perWrite(of(id) - before.get(id)!)),
      client: perWrite((used.user + used.system) / 1000),
      opsPerSec: r.opsPerSec,
      p99: r.p99,
    };
    const steal = cpuSince(machine).steal;
    console.log(
      `  ${eager ? 'eager' : 'lazy '}  ${r.opsPerSec.toFixed(0)} ops/s, p99 ${r.p99.toFixed(2)} ms; CPU per write: leader ${s.leader.toFixed(0)} µs, followers ${s.followers.map((f) => f.toFixed(0)).join(' / ')} µs, client ${s.client.toFixed(0)} µs (steal ${(steal * 100).toFixed(1)}%)`,
    );
    return s;
  } finally {
    ours.close();
    procs.close();
  }
}

console.log(`CPU per write, ${argv.clients} client(s), lazy against eager commit propagation; ${argv.trials} clusters each, ${argv.seconds} s measured`);
const samples = { lazy: [] as Sample[], eager: [] as Sample[] };
for (let t = 0; t < argv.trials; t++) {
  for (const eager of t % 2 === 0 ? [false, true] : [true, false]) {
    samples[eager ? 'eager' : 'lazy'].push(await trial(eager));
    await sleep(1000); // the killed replicas' sockets and files go first
  }
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
for (const [way, s] of Object.entries(samples)) {
  console.log(
    `${way.padEnd(5)} medians: leader ${median(s.map((x) => x.leader)).toFixed(0)} µs, follower ${median(s.flatMap((x) => x.followers)).toFixed(0)} µs, client ${median(s.map((x) => x.client)).toFixed(0)} µs per write; ${median(s.map((x) => x.opsPerSec)).toFixed(0)} ops/s, p99 ${median(s.map((x) => x.p99)).toFixed(2)} ms`,
  );
}
process.exit(0);
