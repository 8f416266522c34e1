// Control API benchmark: writes through the whole path of a real cluster (gRPC with mutual TLS,
// authorization, validation, the store's transaction, Raft with fsync, apply) on three managers on
// three lab hosts (bench/lib/controlapi-cluster.ts), against, in the same invocation: the raw Raft
// KV and etcd on loopback without TLS, measured as bench/raft.ts does, and etcd on the same lab hosts
// with mutual TLS (bench/lib/etcd-lab.ts), the like-for-like anchor.
//   node dist/bench/controlapi.js [--rounds 4] [--seconds 8] [--warm-up-seconds 3] [--kind secret|config]
//        [--payload-bytes 1024] [--via-follower] [--steady-seconds 0] [--report-every 60] [--snapshot-interval N]
//        [--skip-raft] [--skip-etcd] [--skip-etcd-lab] [--cpu-prof-dir D] [--logs-dir D]
// The three clusters run side by side and each load (1 client, 64 clients) alternates between
// them round after round (bench/lib/paired.ts); each run prints the machine's busy and steal. Each
// side's figures are the medians of its rounds. Beside the control API's runs: the leader's event
// loop lag over the run (swarmd's 10 s windows overlapping it), the leader changes, the failed and
// unknown-outcome writes (bench/lib/write-outcome.ts), the leader's snapshots.
// --via-follower adds a 64-client side sent to a follower, which forwards every call to the leader.
// --steady-seconds N then runs 64 clients on the control API alone for N seconds, printing every
// --report-every seconds, and checks the store against the acknowledged writes at the end.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ControlApiCluster, type ClientResult } from './lib/controlapi-cluster.js';
import { cpuCounters, cpuSince, fmt, median, medians, runLoad, sleep, type LoadResult } from './lib/load.js';
import { alternate, type Side } from './lib/paired.js';
import { EtcdLab } from './lib/etcd-lab.js';
import { EtcdCluster, OurRaft, Procs } from './lib/raft.js';
import { leaderDuring, leadersDuring, termAt, type SwarmdLog } from './lib/swarmd-logs.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('rounds', { type: 'number', default: 4, describe: 'alternating rounds of each load (even: every side goes first equally often; 0: none)' })
  .option('seconds', { type: 'number', default: 8, describe: 'duration of each run (per side and round)' })
  .option('warm-up-seconds', { type: 'number', default: 3, describe: 'untimed run of each load on each side first' })
  .option('kind', { choices: ['secret', 'config'] as const, default: 'secret' as const, describe: 'what the control API creates' })
  .option('payload-bytes', { type: 'number', default: 1024, describe: 'size of each secret or config (the raw Raft and etcd values are 1 KiB)' })
  .option('via-follower', { type: 'boolean', default: false, describe: 'also run 64 clients against a follower (forwarded to the leader)' })
  .option('steady-seconds', { type: 'number', default: 0, describe: 'then 64 clients on the control API alone for this long (0: no steady run)' })
  .option('report-every', { type: 'number', default: 60, describe: 'seconds between the steady run\'s reports' })
  .option('snapshot-interval', { type: 'number', describe: 'set the cluster spec\'s snapshot_interval_entries first (swarmctl cluster update --snapshot-interval)' })
  .option('cpu-prof-dir', { type: 'string', describe: 'write V8 CPU profiles of the three swarmd processes here (node --cpu-prof; they are stopped with SIGTERM at the end)' })
  .option('node-flags', { type: 'string', describe: 'more flags for node before swarmd\'s script, space-separated (e.g. --node-flags=--trace-gc, with the =; their output goes to the swarmd logs)' })
  .option('logs-dir', { type: 'string', describe: 'copy the swarmd logs of the three hosts here before the lab is torn down' })
  .option('skip-raft', { type: 'boolean', default: false })
  .option('skip-etcd', { type: 'boolean', default: false, describe: 'leave out etcd on loopback' })
  .option('skip-etcd-lab', { type: 'boolean', default: false, describe: 'leave out etcd on the lab hosts with mutual TLS' })
  .parseSync();

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

const kinds = `${argv.kind}s`;
const nodeFlags = [...(argv['cpu-prof-dir'] ? ['--cpu-prof', `--cpu-prof-dir=${argv['cpu-prof-dir']}`] : []), ...(argv['node-flags']?.split(' ').filter(Boolean) ?? [])];
const ms = (x: number): string => `${x.toFixed(x < 10 ? 1 : 0)} ms`;

/**
 * The writes the store must hold: every acknowledged one, and perhaps those whose outcome is
 * unknown (a call broken off after it was sent, a warm-up write that failed).
 */
class Ledger {
  acked = 0;
  unknown = 0;
  failed = 0;
  private warmUpUnanswered = 0;

  add(r: ClientResult): void {
    this.acked += r.ops + r.warmUpAcked;
    this.unknown += r.errorsBy?.unknown ?? 0;
    this.failed += r.errorsBy?.failed ?? 0;
    this.warmUpUnanswered += 50 - r.warmUpAcked;
  }

  /** The store's count against the acknowledged writes. */
  check(stored: number): string {
    const most = this.acked + this.unknown + this.warmUpUnanswered;
    const verdict = stored < this.acked ? ' — FEWER THAN ACKNOWLEDGED' : stored > most ? ' — MORE THAN WERE WRITTEN' : '';
    return `${stored} ${kinds} in the store; ${this.acked} writes acknowledged, ${this.unknown} of unknown outcome${this.warmUpUnanswered ? `, ${this.warmUpUnanswered} warm-up writes unanswered` : ''} (so between ${this.acked} and ${most})${verdict}`;
  }
}

/** The leader's figures beside a run of the control API: lag, leader changes, snapshots. */
interface LeaderNote {
  p99Ms: number;
  maxMs: number;
  changes: number;
  text: string;
}

function leaderNote(cluster: ControlApiCluster, logs: SwarmdLog[], from: number, to: number): LeaderNote {
  const f = leaderDuring(logs, from, to);
  const snaps = leadersDuring(logs, from, to).flatMap((s) => cluster.snapshots.during(s.host, s.from, s.to));
  const term = f.termFrom === f.termTo ? `term ${f.termTo}` : `term ${f.termFrom}→${f.termTo}`;
  const lag = f.windows > 0 ? `loop lag p99 ${ms(f.p99Ms)}, max ${ms(f.maxMs)} (${f.windows} window${f.windows === 1 ? '' : 's'})` : 'no lag windows logged';
  const snapText = `${snaps.length} snapshot${snaps.length === 1 ? '' : 's'}${snaps.length ? ` (index ${snaps.map((s) => s.index).join(', ')})` : ''}`;
  return { p99Ms: f.p99Ms, maxMs: f.maxMs, changes: f.changes, text: `leader ${f.leaders.join('→') || 'none'}: ${lag}; ${f.changes} leader changes (${term}); ${snapText}` };
}

const errorsOf = (r: LoadResult): string => `${r.errorsBy?.failed ?? 0} failed, ${r.errorsBy?.unknown ?? 0} unknown-outcome writes`;

/** How far apart one manager's snapshots were taken (median of the index steps), or undefined. */
function snapshotSpacing(cluster: ControlApiCluster, hosts: string[]): number | undefined {
  const steps = hosts.flatMap((h) => {
    const idx = cluster.snapshots.during(h, 0, Infinity).map((s) => s.index);
    return idx.slice(1).map((x, i) => x - idx[i]!);
  });
  return steps.length ? median(steps) : undefined;
}

/** The leader's figures beside every control API run of a load, printed; by side. */
async function printLeaderNotes(cluster: ControlApiCluster, sides: { side: string; runs: LoadResult[] }[]): Promise<Map<string, LeaderNote[]>> {
  const span = (r: LoadResult): [number, number] => [r.startedAt!, r.startedAt! + r.seconds * 1000];
  const all = sides.flatMap((s) => s.runs);
  // The lag window that covers the last run's end comes up to 10 s after it.
  const logs = await cluster.logsThrough(Math.min(...all.map((r) => span(r)[0])), Math.max(...all.map((r) => span(r)[1])));
  const notes = new Map<string, LeaderNote[]>();
  for (const { side, runs } of sides) {
    notes.set(side, []);
    for (const [round, r] of runs.entries()) {
      const note = leaderNote(cluster, logs, ...span(r));
      notes.get(side)!.push(note);
      console.log(`    ${`${side}, round ${round + 1}:`.padEnd(38)} ${note.text}${r.firstError ? `; first error: ${r.firstError}` : ''}`);
    }
  }
  return notes;
}

/** The paired rounds: the control API, the raw Raft KV and etcd, 1 client then 64. */
async function pairedRuns(cluster: ControlApiCluster, ledger: Ledger, procs: Procs): Promise<void> {
  const ours = argv['skip-raft'] ? undefined : new OurRaft(procs);
  const etcd = argv['skip-etcd'] ? undefined : new EtcdCluster(procs);
  let etcdLab: EtcdLab | undefined;
  try {
    await ours?.leaderOf();
    await etcd?.ready();
    etcdLab = argv['skip-etcd-lab'] ? undefined : await EtcdLab.create(cluster.lab, procs.root);

    // What each cluster costs the machine while another is measured (all stay up).
    const idleSeconds = 3;
    const idleBefore = cpuCounters();
    const cpu0 = [cluster.cpuMillis(), ours?.cpuMillis() ?? 0, etcd?.cpuMillis() ?? 0, etcdLab?.cpuMillis() ?? 0];
    await sleep(idleSeconds * 1000);
    const share = (now: number, before: number): string => `${((now - before) / idleSeconds / 10).toFixed(1)}%`;
    console.log(
      `idle: the swarmd managers use ${share(cluster.cpuMillis(), cpu0[0]!)} of one CPU` +
        (ours ? `, the raw Raft replicas ${share(ours.cpuMillis(), cpu0[1]!)}` : '') +
        (etcd ? `, etcd's members ${share(etcd.cpuMillis(), cpu0[2]!)}` : '') +
        (etcdLab ? `, the lab etcd's ${share(etcdLab.cpuMillis(), cpu0[3]!)}` : '') +
        ` (machine busy ${(cpuSince(idleBefore).busy * 100).toFixed(0)}%)`,
    );

    let runNo = 0;
    const control = (name: string, viaFollower: boolean): Side => ({
      name,
      run: async (clients, seconds) => {
        const r = await cluster.load({ clients, seconds, prefix: `r${++runNo}`, viaFollower });
        ledger.add(r);
        return r;
      },
    });
    const anchors: Side[] = [
      ...(ours ? [{ name: 'raw Raft', run: (c: number, s: number) => runLoad(ours.put, c, s) }] : []),
      ...(etcd ? [{ name: 'etcd 3.4', run: (c: number, s: number) => runLoad(etcd.put, c, s) }] : []),
      ...(etcdLab ? [{ name: 'etcd 3.4, lab, TLS', run: (c: number, s: number) => etcdLab!.run(c, s, `r${++runNo}`) }] : []),
    ];
    const rounds = { rounds: argv.rounds, seconds: argv.seconds, warmUpSeconds: argv['warm-up-seconds'] };
    const summary: string[] = [];
    const ratios: string[] = [];
    for (const clients of [1, 64]) {
      const sides = [control('control API', false), ...(clients === 64 && argv['via-follower'] ? [control('control API via a follower', true)] : []), ...anchors];
      console.log(clients === 1 ? '1 client, sequential:' : '64 concurrent clients:');
      const runs = await alternate(clients, sides, rounds);

      const notes = await printLeaderNotes(cluster, sides.flatMap((s, i) => (s.name.startsWith('control API') ? [{ side: s.name, runs: runs[i]! }] : [])));
      const label = (name: string): string => `${name}, ${clients === 1 ? '1 client' : '64 clients'}:`.padEnd(44);
      const m = runs.map(medians);
      for (const [i, s] of sides.entries()) {
        const n = notes.get(s.name);
        const beside = n
          ? `  leader lag p99 ${ms(median(n.map((x) => x.p99Ms)))} (median), max ${ms(Math.max(...n.map((x) => x.maxMs)))}; ${n.reduce((a, x) => a + x.changes, 0)} leader changes; ${errorsOf(m[i]!)}`
          : '';
        summary.push(`${label(s.name)} ${fmt(m[i]!)}${beside}`);
      }
      const ctl = m[0]!;
      for (const [j, a] of anchors.entries()) {
        const am = m[sides.length - anchors.length + j]!;
        ratios.push(`ratio (control API / ${a.name}), ${clients === 1 ? '1 client' : '64 clients'}: throughput ${(ctl.opsPerSec / am.opsPerSec).toFixed(2)}×, p99 ${(ctl.p99 / am.p99).toFixed(2)}× (below 1 is better)`);
      }
      if (ours && etcd) {
        const [r, e] = m.slice(sides.length - anchors.length, sides.length - anchors.length + 2) as [LoadResult, LoadResult];
        ratios.push(`ratio (raw Raft / etcd), ${clients === 1 ? '1 client' : '64 clients'}: throughput ${(r.opsPerSec / e.opsPerSec).toFixed(2)}×, p99 ${(r.p99 / e.p99).toFixed(2)}×`);
      }
    }
    console.log('');
    console.log(`medians of ${argv.rounds} rounds of ${argv.seconds} s (throughput, p50 and p99 each the median of the rounds'; ops and errors added up):`);
    for (const line of [...summary, ...ratios]) console.log(line);
  } finally {
    ours?.close();
    etcd?.close();
    await etcdLab?.close();
  }
}

/** 64 clients on the control API for --steady-seconds, a line every --report-every seconds. */
async function steadyRun(cluster: ControlApiCluster, ledger: Ledger): Promise<void> {
  const seconds = argv['steady-seconds'];
  const every = argv['report-every'];
  console.log('');
  console.log(`steady: 64 clients on the control API for ${seconds} s (the raw Raft and etcd clusters stopped), a line every ${every} s:`);
  const t0 = Date.now();
  const termBefore = termAt(cluster.logs(), t0);
  let acked = ledger.acked;
  let cpuBefore = cpuCounters();
  let elapsed = 0;
  // Each line waits for the lag windows that cover its interval (up to 10 s after it).
  let printing = Promise.resolve();
  const onReport = (r: LoadResult): void => {
    const cpu = cpuSince(cpuBefore);
    cpuBefore = cpuCounters();
    acked += r.ops;
    const at = acked;
    elapsed += r.seconds;
    const until = elapsed;
    printing = printing.then(async () => {
      const from = r.startedAt!;
      const to = from + r.seconds * 1000;
      const note = leaderNote(cluster, await cluster.logsThrough(from, to), from, to);
      console.log(`  ${`${until.toFixed(0)} s`.padStart(7)} ${fmt(r)}; ${note.text}; ~${at} ${kinds} stored; machine busy ${(cpu.busy * 100).toFixed(0)}%, steal ${(cpu.steal * 100).toFixed(1)}%`);
    });
  };
  const r = await cluster.load({ clients: 64, seconds, prefix: 'steady', report: { everySeconds: every, onReport } });
  ledger.add(r);
  await printing;
  const logs = await cluster.logsThrough(r.startedAt!, r.startedAt! + r.seconds * 1000);
  const f = leaderDuring(logs, t0, Date.now());
  const termAfter = termAt(logs, Date.now());
  console.log(`steady ${seconds} s, 64 clients: ${fmt(r)}${r.firstError ? `; the first error: ${r.firstError}` : ''}`);
  console.log(`steady totals: ${f.changes} leader changes (term ${termBefore}→${termAfter}); ${r.errorsBy?.failed ?? 0} failed writes; ${r.errorsBy?.unknown ?? 0} unknown-outcome writes; leader loop lag max ${ms(f.maxMs)}, highest window p99 ${ms(f.p99Ms)}`);
}

console.log(
  `Control API benchmark: create${argv.kind === 'secret' ? 'Secret' : 'Config'} (${argv['payload-bytes']} B, unique names) on 3 managers on 3 lab hosts, mutual TLS, fsync on; ` +
    `raw Raft and etcd as bench/raft.ts (loopback, no TLS); etcd on the lab hosts with mutual TLS; ${argv.rounds} rounds of ${argv.seconds} s per load and side after a ${argv['warm-up-seconds']} s warm-up` +
    (argv['steady-seconds'] ? `; then a steady run of ${argv['steady-seconds']} s` : ''),
);
const procs = new Procs('tswarm-bench-controlapi-');
const t0 = performance.now();
const cluster = await ControlApiCluster.create({ kind: argv.kind, payloadBytes: argv['payload-bytes'], nodeFlags });
try {
  const leader = await cluster.leader();
  console.log(`control API: 3 managers up in ${((performance.now() - t0) / 1000).toFixed(1)} s (leader ${leader.name}); load from a lab host that is not the leader's, with m1's certificate`);
  if (argv['snapshot-interval'] !== undefined) await cluster.setSnapshotInterval(argv['snapshot-interval']);
  const interval = (await cluster.spec()).snapshotIntervalEntries;
  console.log(
    `snapshot interval: the cluster spec's snapshot_interval_entries is ${interval}` +
      (argv['snapshot-interval'] !== undefined ? ' (set by --snapshot-interval)' : " (swarmd init's default)") +
      '; each manager snapshots its store every that many applied entries',
  );

  const ledger = new Ledger();
  if (argv.rounds > 0) await pairedRuns(cluster, ledger, procs);
  if (argv['steady-seconds'] > 0) await steadyRun(cluster, ledger);

  console.log('');
  const spacing = snapshotSpacing(cluster, cluster.lab.hosts.map((h) => h.name));
  console.log(
    spacing === undefined
      ? `snapshots: too few to measure their spacing (the spec says every ${interval} entries)`
      : `snapshots: taken every ${spacing} entries (median step of the managers' snapshot indexes; the spec says ${interval})` +
          (Math.abs(spacing - interval) > interval * 0.2 ? ' — NOT THE SPEC\'S INTERVAL: the managers do not apply it' : ''),
  );
  const logs = cluster.logs();
  console.log(`control API: Raft term ${termAt(logs, Date.now())} at the end; ${leaderDuring(logs, 0, Date.now()).changes} leaderships since the cluster was made (the first included)`);
  console.log(`control API: ${ledger.check(await cluster.count())}; ${ledger.failed} writes failed`);
  console.log(`(the benchmark took ${((performance.now() - t0) / 60_000).toFixed(1)} minutes)`);
  if (argv['cpu-prof-dir']) await cluster.stop();
} catch (err) {
  cluster.printLogTails();
  throw err;
} finally {
  if (argv['logs-dir']) cluster.copyLogs(argv['logs-dir']);
  await cluster.destroy();
  procs.close();
}
process.exit(0);
