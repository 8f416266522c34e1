// Control API benchmark: writes through the whole path of a real cluster (gRPC with mutual TLS,
// authorization, validation, the store's transaction, Raft with fsync, apply) on three managers on
// three lab hosts, against the raw Raft KV and etcd measured exactly as bench/raft.ts does, in the
// same invocation. Prints the three figures and the ratios.
//   node dist/bench/controlapi.js [--seconds 10] [--kind secret|config] [--payload-bytes 1024]
//                                 [--via-follower] [--skip-raft] [--skip-etcd] [--cpu-prof-dir D] [--logs-dir D]
// The lab's addresses are reachable only from inside the lab, so the load generator
// (bench/lib/controlapi-client.ts) runs as a child process on a lab host other than the leader's,
// and reaches the leader over the underlay with the first manager's certificate. --via-follower
// adds a 64-client run sent to a follower, which forwards every call to the leader.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { Lab, type LabHost } from '../test/lab/lab.js';
import { dist } from '../test/util/dist.js';
import type { Node } from '../proto/gen/tswarm/objects.js';
import { NodeRole, ReachabilityState } from '../proto/gen/tswarm/types.js';
import { fmt, sleep, type LoadResult } from './lib/load.js';
import { measureEtcd, measureOurRaft, Procs, type Pair } from './lib/raft.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('seconds', { type: 'number', default: 10, describe: 'duration of each throughput run' })
  .option('kind', { choices: ['secret', 'config'] as const, default: 'secret' as const, describe: 'what the control API creates' })
  .option('payload-bytes', { type: 'number', default: 1024, describe: 'size of each secret or config (the raw Raft and etcd values are 1 KiB)' })
  .option('via-follower', { type: 'boolean', default: false, describe: 'also run 64 clients against a follower (forwarded to the leader)' })
  .option('cpu-prof-dir', { type: 'string', describe: "write V8 CPU profiles of the three swarmd processes here (node --cpu-prof; they are stopped with SIGTERM at the end)" })
  .option('logs-dir', { type: 'string', describe: 'copy the swarmd logs of the three hosts here before the lab is torn down' })
  .option('skip-raft', { type: 'boolean', default: false })
  .option('skip-etcd', { type: 'boolean', default: false })
  .parseSync();

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

const swarmd = dist('cli/swarmd.js');
const swarmctl = dist('cli/swarmctl.js');
const loadClient = dist('bench/lib/controlapi-client.js');
const PORT = 4242;
const nodeFlags = argv['cpu-prof-dir'] ? ['--cpu-prof', `--cpu-prof-dir=${argv['cpu-prof-dir']}`] : [];

async function ctl(h: LabHost, args: string[]): Promise<string> {
  const r = await h.exec(process.execPath, [swarmctl, ...args], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')} on ${h.name} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
  return r.stdout;
}

const isManager = (n: Node): boolean => n.role === NodeRole.NODE_ROLE_MANAGER || (n.role as unknown) === 'NODE_ROLE_MANAGER';
const isReachable = (n: Node): boolean => {
  const r = n.managerStatus?.reachability as unknown;
  return r === ReachabilityState.REACHABILITY_REACHABLE || r === 'REACHABILITY_REACHABLE';
};

/** A node by its hostname, or by its address when it has sent no description. */
const nameOf = (n: Node | undefined): string => (n ? n.description?.hostname || n.managerStatus?.addr || n.id : 'none');

/** The highest Raft term any manager has logged ("raft: leader changed" lines carry it). */
function maxTerm(lab: Lab): number {
  let term = 0;
  for (const h of lab.hosts) {
    for (const line of (h.processes.get('swarmd')?.log() ?? '').split('\n')) {
      if (!line.includes('raft: leader changed')) continue;
      try {
        term = Math.max(term, Number((JSON.parse(line) as { term?: number }).term ?? 0));
      } catch {
        // not a JSON line
      }
    }
  }
  return term;
}

interface Managers {
  nodes: Node[];
  leader: Node | undefined;
  reachable: number;
}

async function managers(h: LabHost): Promise<Managers> {
  const nodes = (JSON.parse(await ctl(h, ['node', 'ls', '--format', 'json'])) as Node[]).filter(isManager);
  return { nodes, leader: nodes.find((n) => n.managerStatus?.leader), reachable: nodes.filter((n) => !n.managerStatus?.leader && isReachable(n)).length };
}

/** Waits until `node ls` on h shows `count` managers: one leader, the others reachable. */
async function waitForManagers(h: LabHost, count: number, timeoutMs = 90_000): Promise<Managers> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const m = await managers(h);
      if (m.nodes.length === count && m.leader && m.reachable === count - 1) return m;
      last = `${m.nodes.length} managers, leader ${nameOf(m.leader)}, ${m.reachable} reachable`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`node ls on ${h.name} never showed ${count} managers with one leader and ${count - 1} reachable; last: ${last}`);
    await sleep(500);
  }
}

async function load(from: LabHost, addr: string, certDir: string, clients: number, prefix: string): Promise<LoadResult> {
  const r = await from.exec(
    process.execPath,
    [loadClient, '--addr', addr, '--cert-dir', certDir, '--clients', String(clients), '--seconds', String(argv.seconds), '--kind', argv.kind, '--payload-bytes', String(argv['payload-bytes']), '--prefix', prefix],
    { timeoutMs: argv.seconds * 1000 + 120_000 },
  );
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !line.startsWith('{')) throw new Error(`the load generator on ${from.name} failed (${r.code ?? r.signal}): ${r.stderr.trim() || r.stdout.trim()}`);
  const res = JSON.parse(line) as LoadResult;
  if (res.firstError) console.log(`  (${res.errors} errors; the first: ${res.firstError})`);
  return res;
}

interface ControlFigures extends Pair {
  viaFollower?: LoadResult;
}

async function measureControlApi(): Promise<ControlFigures> {
  const lab = await Lab.create({ hosts: ['m1', 'm2', 'm3'] });
  try {
    const [m1, m2, m3] = lab.hosts as [LabHost, LabHost, LabHost];
    const t0 = performance.now();
    const first = m1.start('swarmd', process.execPath, [...nodeFlags, swarmd, 'init', '--advertise-addr', `${m1.address}:${PORT}`]);
    await first.waitForLog(/swarmd started/, 30_000);
    const token = (await ctl(m1, ['cluster', 'join-token', 'manager', '-q'])).trim();
    // One at a time: Raft changes its membership one member at a time.
    for (const [i, h] of [m2, m3].entries()) {
      const p = h.start('swarmd', process.execPath, [...nodeFlags, swarmd, 'join', '--token', token, '--advertise-addr', `${h.address}:${PORT}`, `${m1.address}:${PORT}`]);
      await p.waitForLog(/swarmd started/, 30_000);
      await waitForManagers(m1, i + 2);
    }
    const before = await waitForManagers(m1, 3);
    const leader = before.leader!;
    const leaderAddr = leader.managerStatus!.addr;
    const termBefore = maxTerm(lab);
    const others = lab.hosts.filter((h) => `${h.address}:${PORT}` !== leaderAddr);
    const clientHost = others[0]!;
    const follower = others[1]!;
    const certDir = join(m1.stateDir, 'certs');
    console.log(`control API: 3 managers up in ${((performance.now() - t0) / 1000).toFixed(1)} s (leader ${nameOf(leader)} at ${leaderAddr}); load from ${clientHost.name} with ${m1.name}'s certificate`);

    // Creating an object costs more as its table grows (see docs/benchmarks.md): each run says how
    // many objects of the kind the store held before and after it (acknowledged writes).
    let stored = 0;
    const sized = (r: LoadResult): string => {
      const from = stored;
      stored += 50 + r.ops;
      return `${fmt(r)} [${from}→${stored} ${argv.kind}s]`;
    };
    const one = await load(clientHost, leaderAddr, certDir, 1, 'b1');
    console.log(`control API, 1 client:    ${sized(one)}`);
    const many = await load(clientHost, leaderAddr, certDir, 64, 'b64');
    console.log(`control API, 64 clients:  ${sized(many)}`);
    let viaFollower: LoadResult | undefined;
    if (argv['via-follower']) {
      viaFollower = await load(clientHost, `${follower.address}:${PORT}`, certDir, 64, 'bf64');
      console.log(`control API, 64 clients via follower ${follower.name}: ${sized(viaFollower)}`);
    }

    // node ls may show no leader for a moment after an election: wait for one.
    let after = await managers(m1);
    for (let i = 0; i < 30 && !after.leader; i++) {
      await sleep(500);
      after = await managers(m1);
    }
    const leaderChanged = after.leader?.id !== leader.id;
    const termAfter = maxTerm(lab);
    console.log(
      `control API: leader ${leaderChanged ? `CHANGED to ${after.leader ? nameOf(after.leader) : 'none (after 15 s)'}` : 'unchanged'} after the runs; Raft term ${termBefore} → ${termAfter} (${termAfter - termBefore} elections); ${after.reachable} followers reachable`,
    );
    const acked = stored;
    try {
      const stored = (await ctl(m1, [argv.kind, 'ls', '-q'])).split('\n').filter(Boolean).length;
      console.log(`control API: ${stored} ${argv.kind}s in the store, ${acked} writes acknowledged (with 50 warm-up writes per run)${stored < acked ? ' — FEWER THAN ACKNOWLEDGED' : ''}`);
    } catch (err) {
      console.log(`control API: could not count the ${argv.kind}s: ${(err as Error).message}`);
    }
    // A profile is written when the process exits on its own.
    if (argv['cpu-prof-dir']) await Promise.all(lab.hosts.map((h) => h.processes.get('swarmd')?.stop(10_000) ?? Promise.resolve()));
    return { one, many, ...(viaFollower ? { viaFollower } : {}) };
  } catch (err) {
    for (const h of lab.hosts) {
      const log = h.processes.get('swarmd')?.log() ?? '';
      console.error(`--- swarmd on ${h.name} (last 30 lines)\n${log.trim().split('\n').slice(-30).join('\n')}`);
    }
    throw err;
  } finally {
    if (argv['logs-dir']) {
      mkdirSync(argv['logs-dir'], { recursive: true });
      for (const h of lab.hosts) {
        const p = h.processes.get('swarmd');
        if (p) copyFileSync(p.logPath, join(argv['logs-dir'], `${h.name}.log`));
      }
    }
    await lab.destroy();
  }
}

console.log(`Control API benchmark: create${argv.kind === 'secret' ? 'Secret' : 'Config'} (${argv['payload-bytes']} B, unique names) on 3 managers on 3 lab hosts, mutual TLS, fsync on; raw Raft and etcd as bench/raft.ts; ${argv.seconds} s per run`);
const control = await measureControlApi();

const procs = new Procs('tswarm-bench-controlapi-');
let raft: Pair | undefined;
let etcd: Pair | undefined;
if (!argv['skip-raft']) {
  raft = await measureOurRaft(procs, argv.seconds);
  console.log(`raw Raft,    1 client:    ${fmt(raft.one)}`);
  console.log(`raw Raft,    64 clients:  ${fmt(raft.many)}`);
}
if (!argv['skip-etcd']) {
  etcd = await measureEtcd(procs, argv.seconds);
  console.log(`etcd 3.4,    1 client:    ${fmt(etcd.one)}`);
  console.log(`etcd 3.4,    64 clients:  ${fmt(etcd.many)}`);
}

console.log('');
for (const [name, anchor] of [['raw Raft', raft], ['etcd', etcd]] as const) {
  if (!anchor) continue;
  console.log(`ratio (control API / ${name}) throughput: 1 client ${(control.one.opsPerSec / anchor.one.opsPerSec).toFixed(2)}×, 64 clients ${(control.many.opsPerSec / anchor.many.opsPerSec).toFixed(2)}×`);
  console.log(`ratio (control API / ${name}) p99 latency: 1 client ${(control.one.p99 / anchor.one.p99).toFixed(2)}×, 64 clients ${(control.many.p99 / anchor.many.p99).toFixed(2)}× (below 1 is better)`);
}
if (raft && etcd) {
  console.log(`ratio (raw Raft / etcd) throughput: 1 client ${(raft.one.opsPerSec / etcd.one.opsPerSec).toFixed(2)}×, 64 clients ${(raft.many.opsPerSec / etcd.many.opsPerSec).toFixed(2)}×`);
}
process.exit(0);
