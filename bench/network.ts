// Overlay network benchmark (issue 16), against the underlay and Docker Swarm's overlay:
//
// 1. Ours: a lab cluster (one drained manager, workers w1 and w2), an image of busybox plus
//    Debian's iperf3 (the binary and the libraries `ldd` lists, bench/lib/netperf.ts) pushed to
//    the lab registry, an overlay network and a global service running `iperf3 -s` on both
//    workers. Per round, the underlay (host w1 to host w2: veths through the lab bridge, the
//    physical limit here) then the overlay (w1's container to w2's, `RUNTIME exec … iperf3 -c`):
//    TCP throughput with one stream and with four (`-P 4`), and a 1-byte TCP ping-pong between
//    two Node programs run in the ends' network namespaces (nsenter), p50/p99 in µs.
// 2. RUNNING → reachable (ours): a prober in w1's container (TCP connects every 2 ms, each given
//    50 ms; a refused connection counts, the address answered) started before the trials; per
//    trial a service pinned to w2 is scaled 0 → 1 through the control API, the new task's overlay
//    address handed to the prober as soon as the allocator gives it (before the task runs), and
//    the time from the RUNNING the worker reported (its status timestamp) to the first answer.
//    The prober's namespace retries ARP every 10 ms rather than every second, so that the kernel's
//    retransmit timer, not the overlay, would not decide the figure.
// 3. Docker (the anchor): Debian's dockerd on two hosts of a lab of their own (bench/lib/docker.ts:
//    `swarm init` and `join`), `network create -d overlay --attachable`, a container from the same
//    image (`docker import`) on each host, and the same figures over its overlay and its underlay.
//    Both sides stay up and take turns, round after round (this machine is shared: its other load
//    then lands on both alike); Docker's is removed before the reachability trials. If Docker's
//    overlay fails, the output says why and ours and the underlay are still printed.
//
//   node dist/bench/network.js [--seconds 5] [--exchanges 2000] [--trials 2] [--reach-trials 20] [--skip-docker] [--skip-ours]
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { ControlClient } from '../proto/gen/tswarm/control.js';
import type { Task } from '../proto/gen/tswarm/objects.js';
import { TaskState } from '../proto/gen/tswarm/types.js';
import { LabCluster, RUNTIME } from '../test/lab/cluster.js';
import type { LabHost } from '../test/lab/lab.js';
import { dist } from '../test/util/dist.js';
import { twoNodeSwarm } from './lib/docker.js';
import { controlClient, epochMs, nsenter, scale, taskPid, tasksOf, until, type Attached } from './lib/lab-api.js';
import { cpuCounters, cpuSince, median, percentile, sleep } from './lib/load.js';
import { describe, gbit, IPERF3, measurePath, writeIperfLayout, type NetPath, type PathResult } from './lib/netperf.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('seconds', { type: 'number', default: 5, describe: 'each iperf3 test' })
  .option('exchanges', { type: 'number', default: 2000, describe: 'ping-pong exchanges per path (after 200 unmeasured)' })
  .option('trials', { type: 'number', default: 2, describe: 'rounds of underlay then overlay, per side' })
  .option('reach-trials', { type: 'number', default: 20 })
  .option('skip-docker', { type: 'boolean', default: false })
  .option('skip-ours', { type: 'boolean', default: false, describe: 'Docker only (to check the anchor alone)' })
  .parseSync();

const NETWORK = 'benchnet';
/** Nothing listens there: a refused connection proves the address answered. */
const PROBE_PORT = 9;
const DOCKER_IMAGE = 'tswarm-iperf3:latest';
const ms = (x: number): string => `${x.toFixed(1)} ms`;

/** Per trial: TCP connects to each address it is given (a line on stdin), prints {addr, at} at the first answer. */
const PROBER = `
const net = require('net');
const port = Number(process.argv[1]);
const now = () => performance.timeOrigin + performance.now();
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const addr = line.trim();
  if (!addr) return;
  let done = false;
  const finish = (at) => { if (done) return; done = true; clearInterval(tick); clearTimeout(giveUp); console.log(JSON.stringify({ addr, at })); };
  const tick = setInterval(() => {
    const s = net.connect({ host: addr, port });
    const kill = setTimeout(() => s.destroy(), 50);
    s.on('connect', () => { clearTimeout(kill); s.destroy(); finish(now()); });
    s.on('error', (e) => { clearTimeout(kill); if (e.code === 'ECONNREFUSED') finish(now()); });
  }, 2);
  const giveUp = setTimeout(() => finish(null), 10000);
}).on('close', () => process.exit(0));
`;

interface SideResult {
  underlay: PathResult[];
  overlay: PathResult[];
}

interface Reach {
  /** From the RUNNING the worker reported to the first answer. */
  fromReported: number;
  /** From when the control API first showed RUNNING (polled every 5 ms) to the first answer. */
  fromObserved: number;
  /** The prober had the address this long before RUNNING was reported (negative: after, the trial does not count). */
  lead: number;
}

/** A side set up: its two paths, measured in every round, and its clean-up. */
interface Side {
  name: string;
  underlay: NetPath;
  overlay: NetPath;
  result: SideResult;
  destroy(): Promise<void>;
}

/** One round of a side: its underlay then its overlay, each printed. */
async function measureRound(side: Side, round: number): Promise<void> {
  const u = await measurePath(side.underlay, argv.seconds, argv.exchanges);
  console.log(describe(`${side.name} round ${round} underlay`, u));
  const o = await measurePath(side.overlay, argv.seconds, argv.exchanges);
  console.log(describe(`${side.name} round ${round} overlay`, o));
  side.result.underlay.push(u);
  side.result.overlay.push(o);
}

/** The path between two lab hosts' own addresses: iperf3 -s started on `server` here. */
async function underlayPath(client: LabHost, server: LabHost): Promise<NetPath> {
  const srv = server.start('iperf3-underlay', IPERF3, ['-s', '--forceflush']);
  await srv.waitForLog(/Server listening/, 10_000);
  return {
    name: `underlay ${client.name}-${server.name}`,
    serverAddress: server.address,
    iperf: (args, timeoutMs) => client.exec(IPERF3, args, { timeoutMs }),
    runAtClient: ([cmd, ...args], timeoutMs) => client.exec(cmd!, args, { timeoutMs }),
    startAtServer: (name, [cmd, ...args]) => server.start(name, cmd!, args),
  };
}

// ---- ours ----

/** RUNNING → reachable, `n` trials, from a prober in the client container on w1 to a task on w2. */
async function reachTrials(c: LabCluster, client: ControlClient, image: string, networkId: string, proberHost: LabHost, proberPid: number): Promise<Reach[]> {
  const serviceId = (await c.ok('m1', 'service', 'create', '--detach', '--name', 'reach', '--image', image, '--replicas', '0', '--network', NETWORK, '--constraint', 'node.hostname==w2', '--', IPERF3, '-s')).trim();
  const [cmd, args] = nsenter(proberPid, ['sh', '-c', 'echo 10 > /proc/sys/net/ipv4/neigh/eth0/retrans_time_ms']);
  const set = await proberHost.exec(cmd, args);
  if (set.code !== 0) throw new Error(`setting the prober's ARP retransmit time: ${set.stderr}`);
  const [pcmd, pargs] = nsenter(proberPid, [process.execPath, '-e', PROBER, String(PROBE_PORT)]);
  const prober = proberHost.spawnInside(pcmd, pargs, {}, ['pipe', 'pipe', 'pipe']);
  let proberErr = '';
  prober.stderr?.on('data', (d: Buffer) => (proberErr += d.toString()));
  const answers = new Map<string, (at: number | null) => void>();
  createInterface({ input: prober.stdout! }).on('line', (line) => {
    const { addr, at } = JSON.parse(line) as { addr: string; at: number | null };
    answers.get(addr)?.(at);
  });
  const seen = new Set<string>();
  const out: Reach[] = [];
  try {
    for (let i = 1; i <= argv['reach-trials']; i++) {
      await sleep(200);
      await scale(client, serviceId, 1);
      let answered: Promise<number | null> | undefined;
      let sentAt = 0;
      let task: Task | undefined;
      const deadline = Date.now() + 30_000;
      for (;;) {
        task = (await tasksOf(client, serviceId)).find((t) => !seen.has(t.id) && t.desiredState === TaskState.TASK_STATE_RUNNING);
        const addr = task?.networks.find((n) => n.networkId === networkId)?.addresses[0]?.split('/')[0];
        if (addr && !answered) {
          answered = new Promise((resolve) => answers.set(addr, resolve));
          prober.stdin!.write(`${addr}\n`);
          sentAt = epochMs();
        }
        if (task?.status?.state === TaskState.TASK_STATE_RUNNING && answered) break;
        if (Date.now() > deadline) throw new Error(`reach trial ${i}: no task RUNNING with an address after 30 s (${JSON.stringify(task?.status)})`);
        await sleep(5);
      }
      const observedAt = epochMs();
      seen.add(task.id);
      const reportedAt = Number(task.status?.timestampUnixMs ?? 0);
      const at = await answered;
      if (at === null) throw new Error(`reach trial ${i}: the task's address never answered in 10 s${proberErr ? ` (prober: ${proberErr})` : ''}`);
      const r = { fromReported: at - reportedAt, fromObserved: at - observedAt, lead: reportedAt - sentAt };
      console.log(`reach trial ${i}: RUNNING (worker's timestamp) → reachable ${ms(r.fromReported)}; from the API showing RUNNING ${ms(r.fromObserved)}; the prober had the address ${ms(r.lead)} before RUNNING`);
      if (r.lead >= 0) out.push(r);
      else console.log(`reach trial ${i}: not counted (the address reached the prober after RUNNING)`);
      await scale(client, serviceId, 0);
      await until(`reach trial ${i}: the task stopped`, async () => !(await tasksOf(client, serviceId)).some((t) => t.status?.state === TaskState.TASK_STATE_RUNNING));
    }
  } finally {
    prober.stdin?.end();
    prober.kill('SIGKILL');
  }
  return out;
}

type OurSide = Side & { reach(): Promise<Reach[]> };

async function ours(): Promise<OurSide> {
  const c = await LabCluster.create({ managers: 1, workers: 2 });
  const client = controlClient(c);
  const destroy = async (): Promise<void> => {
    client.close();
    await c.destroy();
  };
  try {
    const m1 = c.host('m1');
    const layout = join(c.lab.root, 'iperf3-image');
    writeIperfLayout(layout);
    const push = await m1.exec(process.execPath, [dist('scripts/push-image.js'), layout, `http://${m1.address}:5000`, 'library/iperf3:latest'], { timeoutMs: 60_000 });
    if (push.code !== 0) throw new Error(`pushing the iperf3 image: ${push.stderr}`);
    const image = `${m1.address}:5000/library/iperf3:latest`;
    await c.ok('m1', 'network', 'create', '--driver', 'overlay', NETWORK);
    const networkId = (JSON.parse(await c.ok('m1', 'network', 'inspect', NETWORK)) as { id: string }).id;
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'iperf', '--image', image, '--mode', 'global', '--constraint', 'node.role==worker', '--network', NETWORK, '--', IPERF3, '-s');
    const tasks = (await c.converged('iperf', 2, 90_000)) as Attached[];
    const on = async (h: string): Promise<Attached> => {
      for (const t of tasks) if ((await c.hostOf(t.nodeId)) === h) return t;
      throw new Error(`no iperf task on ${h}`);
    };
    const [a, b] = [await on('w1'), await on('w2')];
    const [w1, w2] = [c.host('w1'), c.host('w2')];
    const [pidA, pidB] = [await taskPid(w1, a.id), await taskPid(w2, b.id)];
    const addrB = b.networks!.find((n) => n.networkId === networkId)!.addresses[0]!.split('/')[0]!;
    const overlay: NetPath = {
      name: 'tswarm overlay',
      serverAddress: addrB,
      iperf: (args, timeoutMs) => w1.exec(RUNTIME, ['exec', a.id, IPERF3, ...args], { timeoutMs }),
      runAtClient: (cmd, timeoutMs) => w1.exec(...nsenter(pidA, cmd), { timeoutMs }),
      startAtServer: (name, cmd) => w2.start(name, ...nsenter(pidB, cmd)),
    };
    console.log(`tswarm: overlay ${NETWORK} ${networkId}, w1's container → ${addrB} on w2; underlay ${w1.address} → ${w2.address}`);
    return {
      name: 'tswarm',
      underlay: await underlayPath(w1, w2),
      overlay,
      result: { underlay: [], overlay: [] },
      destroy,
      reach: () => reachTrials(c, client, image, networkId, w1, pidA),
    };
  } catch (err) {
    await destroy();
    throw err;
  }
}

// ---- Docker ----

async function docker(): Promise<Side> {
  const { d, destroy } = await twoNodeSwarm();
  try {
    const layout = join(d.lab.root, 'iperf3-image');
    writeIperfLayout(layout);
    await d.importLayout(layout, DOCKER_IMAGE);
    await d.ok('network', 'create', '-d', 'overlay', '--attachable', NETWORK);
    const [m, w] = [d.host, d.workers[0]!];
    await d.okOn(m, 'run', '-d', '--name', 'iperf-client', '--network', NETWORK, DOCKER_IMAGE, IPERF3, '-s');
    await d.okOn(w, 'run', '-d', '--name', 'iperf-server', '--network', NETWORK, DOCKER_IMAGE, IPERF3, '-s');
    const inspect = async (h: LabHost, name: string, format: string): Promise<string> => (await d.okOn(h, 'inspect', '-f', format, name)).trim();
    const addr = await inspect(w, 'iperf-server', `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`);
    const [pidC, pidS] = [Number(await inspect(m, 'iperf-client', '{{.State.Pid}}')), Number(await inspect(w, 'iperf-server', '{{.State.Pid}}'))];
    const overlay: NetPath = {
      name: 'docker overlay',
      serverAddress: addr,
      iperf: (args) => d.dockerOn(m, 'exec', 'iperf-client', IPERF3, ...args),
      runAtClient: (cmd, timeoutMs) => m.exec(...nsenter(pidC, cmd), { timeoutMs }),
      startAtServer: (name, cmd) => w.start(name, ...nsenter(pidS, cmd)),
    };
    console.log(`docker: overlay ${NETWORK}, ${m.name}'s container → ${addr} on ${w.name}; underlay ${m.address} → ${w.address}`);
    return { name: 'docker', underlay: await underlayPath(m, w), overlay, result: { underlay: [], overlay: [] }, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}

// ---- report ----

const medianOf = (rs: PathResult[], f: (r: PathResult) => number): number => median(rs.map(f));
const one = (r: PathResult): number => r.one.bitsPerSecond;
const four = (r: PathResult): number => r.four.bitsPerSecond;
const rtt50 = (r: PathResult): number => r.rtt.p50;
const rtt99 = (r: PathResult): number => r.rtt.p99;
const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;

function summary(side: string, r: SideResult): void {
  const line = (what: string, f: (r: PathResult) => number): void => {
    const [u, o] = [medianOf(r.underlay, f), medianOf(r.overlay, f)];
    console.log(`${side} ${what}: overlay ${gbit(o)}, underlay ${gbit(u)}; overlay/underlay ${pct(o / u)} (goal ≥ 90%: ${o / u >= 0.9 ? 'met' : 'not met'})`);
  };
  line('1 stream', one);
  line('4 streams', four);
  const added = medianOf(r.overlay, rtt50) - medianOf(r.underlay, rtt50);
  const added99 = medianOf(r.overlay, rtt99) - medianOf(r.underlay, rtt99);
  console.log(
    `${side} ping-pong: overlay p50 ${medianOf(r.overlay, rtt50).toFixed(0)} µs, underlay p50 ${medianOf(r.underlay, rtt50).toFixed(0)} µs; ` +
      `added ${added.toFixed(0)} µs at p50 (goal ≤ 20 µs: ${added <= 20 ? 'met' : 'not met'}), ${added99.toFixed(0)} µs at p99`,
  );
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const before = cpuCounters();
  console.log(`Network benchmark: iperf3 ${argv.seconds} s per test, 1 and 4 streams; ping-pong ${argv.exchanges} exchanges; ${argv.trials} rounds per side (its underlay, then its overlay); ${argv['reach-trials']} RUNNING → reachable trials`);
  // Both sides stay up and are measured in alternating rounds, so that the machine's other load
  // (this machine is shared) lands on both alike; each side's idle daemons cost the other's rounds.
  let ourSide: OurSide | undefined;
  let dockerSide: Side | undefined;
  let dockerFailure: string | undefined;
  const dockerFailed = (err: unknown): void => {
    dockerFailure = (err as Error).message;
    console.log(`docker: the anchor failed, so there is no Docker figure: ${dockerFailure}`);
  };
  let reach: Reach[] = [];
  let dockerResult: SideResult | undefined;
  try {
    if (!argv['skip-ours']) ourSide = await ours();
    if (!argv['skip-docker']) dockerSide = await docker().catch((err: unknown) => void dockerFailed(err));
    dockerResult = dockerSide?.result;
    for (let round = 1; round <= argv.trials; round++) {
      if (ourSide) await measureRound(ourSide, round);
      if (dockerSide && !dockerFailure) await measureRound(dockerSide, round).catch(dockerFailed);
    }
    // Docker's daemons gone first: the reachability trials are ours alone.
    await dockerSide?.destroy();
    dockerSide = undefined;
    if (ourSide && argv['reach-trials'] > 0) reach = await ourSide.reach();
  } finally {
    await dockerSide?.destroy();
    await ourSide?.destroy();
  }
  const o = ourSide && { side: ourSide.result, reach };
  const dk = dockerFailure ? undefined : dockerResult;

  console.log('');
  if (o) summary('tswarm', o.side);
  if (dk) summary('docker', dk);
  if (o && dk) {
    for (const [what, f] of [['1 stream', one], ['4 streams', four]] as const) {
      const ratio = medianOf(o.side.overlay, f) / medianOf(dk.overlay, f);
      console.log(`overlay ${what}: tswarm / docker = ${ratio.toFixed(2)}× (goal ≥ 1.1×: ${ratio >= 1.1 ? 'met' : 'not met'})`);
    }
    const added = (r: SideResult): number => medianOf(r.overlay, rtt50) - medianOf(r.underlay, rtt50);
    console.log(`ping-pong added over the underlay at p50: tswarm ${added(o.side).toFixed(0)} µs, docker ${added(dk).toFixed(0)} µs`);
  } else if (o && dockerFailure) {
    console.log(`overlay tswarm / docker: not measured (Docker's overlay failed: ${dockerFailure.split('\n')[0]})`);
  }
  if (o && o.reach.length > 0) {
    const rep = o.reach.map((r) => r.fromReported);
    const obs = o.reach.map((r) => r.fromObserved);
    const p99 = percentile(rep, 0.99);
    console.log(
      `RUNNING → reachable from another host, ${rep.length} trials: p50 ${ms(median(rep))}, p99 ${ms(p99)}, max ${ms(Math.max(...rep))} from the worker's RUNNING timestamp ` +
        `(from the API showing RUNNING: p50 ${ms(median(obs))}, p99 ${ms(percentile(obs, 0.99))}; negative: reachable before RUNNING was reported); goal p99 < 50 ms: ${p99 < 50 ? 'met' : 'not met'}`,
    );
  }
  const cpu = cpuSince(before);
  console.log(`machine over the whole run: busy ${pct(cpu.busy)}, steal ${(cpu.steal * 100).toFixed(1)}%; took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
