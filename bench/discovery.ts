// Service discovery benchmark (issue 17), against Docker Swarm's embedded DNS and VIPs:
//
// 1. DNS: sequential A queries for a service's name from a container on an overlay network to
//    127.0.0.11 (after 200 unmeasured), p50/p99 round trip. Ours: through swarm-dnsproxy to
//    swarmd and back; Docker's: its resolver in dockerd.
// 2. VIP: new TCP connections per second (4 at a time, each a connect that the server ends at
//    once) from a container on w1 through the service's VIP, against straight to its task's
//    address on w2, in alternating rounds; the same through Docker's VIP (IPVS) for reference.
//    The server is a Node program in the task's network namespace (nsenter), not the task's own
//    process, so that both paths end at the same accept loop. Goal: VIP ≥ 0.9× direct.
// 3. The routing mesh: iperf3 (1 and 4 streams) and a 1-byte ping-pong from a lab host outside
//    the cluster (x) to a service published in ingress mode (5201 and 7007) whose one task runs on
//    w2, through m1 (no task there: the packet crosses the overlay) and through w2 itself; the
//    anchor is the underlay between two lab hosts outside the cluster (x to y: a host reached
//    without any of it). Goal: through a node without the task ≥ 0.9× the anchor's throughput.
// 4. Convergence: a prober in w1's container connects to a service's VIP every 2 ms; per trial
//    the service is scaled 0 → 1 (pinned to w2, busybox httpd), and the time from the RUNNING the
//    worker reported (its status timestamp) to the first connection the task accepted through
//    the VIP is taken. Goal: p99 < 100 ms.
//
// Both sides use the busybox + iperf3 image of bench/network.ts and the host's Node for the
// measuring programs. Docker's side is removed before the convergence trials.
//
//   node dist/bench/discovery.js [--queries 2000] [--seconds 3] [--rounds 3] [--mesh-rounds 2] [--mesh-seconds 4] [--trials 20] [--skip-docker]
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { Task } from '../proto/gen/tswarm/objects.js';
import { TaskState } from '../proto/gen/tswarm/types.js';
import { LabCluster } from '../test/lab/cluster.js';
import { dist } from '../test/util/dist.js';
import type { LabHost, LabProcess } from '../test/lab/lab.js';
import { twoNodeSwarm } from './lib/docker.js';
import { controlClient, nsenter, scale, taskPid, tasksOf, until, type Attached } from './lib/lab-api.js';
import { cpuCounters, cpuSince, median, percentile, sleep } from './lib/load.js';
import { describe, gbit, IPERF3, measurePath, PING_PORT, writeIperfLayout, type NetPath, type PathResult } from './lib/netperf.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('queries', { type: 'number', default: 2000 })
  .option('seconds', { type: 'number', default: 3, describe: 'each connection-rate test' })
  .option('rounds', { type: 'number', default: 3 })
  .option('trials', { type: 'number', default: 20, describe: 'convergence trials' })
  .option('mesh-rounds', { type: 'number', default: 2 })
  .option('mesh-seconds', { type: 'number', default: 4, describe: 'each iperf3 test through the mesh' })
  .option('skip-docker', { type: 'boolean', default: false })
  .parseSync();

const NETWORK = 'front';
const PORT = 8080;
const us = (x: number): string => `${x.toFixed(0)} µs`;
const ms = (x: number): string => `${x.toFixed(1)} ms`;

/** Sequential A queries for argv[1] to 127.0.0.11:53; prints {p50, p99} in µs, or an error. */
const DNS_CLIENT = `
const dgram = require('dgram');
const [name, n] = [process.argv[1], Number(process.argv[2])];
const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
const q = (id) => Buffer.concat([Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
const s = dgram.createSocket('udp4');
const times = [];
let i = 0, sent = 0;
const send = () => { sent = performance.now(); s.send(q(i & 0xffff), 53, '127.0.0.11'); };
const timer = setTimeout(() => { console.log(JSON.stringify({ error: 'no answer in 5 s to query ' + i })); process.exit(1); }, 5000);
s.on('message', (m) => {
  if (m.readUInt16BE(0) !== (i & 0xffff)) return;
  if ((m[3] & 15) !== 0 || m.readUInt16BE(6) === 0) { console.log(JSON.stringify({ error: 'answer without an address, rcode ' + (m[3] & 15) })); process.exit(1); }
  if (i >= 200) times.push((performance.now() - sent) * 1000);
  timer.refresh();
  if (++i < n + 200) return send();
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({ p50: times[Math.floor(times.length / 2)], p99: times[Math.floor(times.length * 0.99)] }));
  process.exit(0);
});
send();
`;

/** Accepts and ends every connection (the server of the rate test). */
const SERVER = `require('net').createServer((c) => c.end()).on('error', (e) => { console.error(e.message); process.exit(1); }).listen(${PORT}, () => console.log('ready'));`;

/** Connections to argv[1]:PORT, 4 at a time, for argv[2] s; prints {perSecond, failed}. */
const RATE_CLIENT = `
const net = require('net');
const [host, seconds] = [process.argv[1], Number(process.argv[2])];
const end = performance.now() + seconds * 1000;
let done = 0, failed = 0, running = 4;
const one = () => {
  if (performance.now() >= end) { if (--running === 0) { console.log(JSON.stringify({ perSecond: done / seconds, failed })); process.exit(0); } return; }
  const s = net.connect({ host, port: ${PORT} });
  s.on('error', () => { failed++; s.destroy(); one(); });
  s.on('close', (hadError) => { if (!hadError) { done++; one(); } });
  s.resume();
};
for (let k = 0; k < 4; k++) one();
`;

/** Per line on stdin (an address): connects every 2 ms until one is accepted; prints {addr, at}. */
const PROBER = `
const net = require('net');
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  const addr = line.trim();
  if (!addr) return;
  let done = false;
  const finish = (at) => { if (done) return; done = true; clearInterval(tick); clearTimeout(giveUp); console.log(JSON.stringify({ addr, at })); };
  const tick = setInterval(() => {
    const s = net.connect({ host: addr, port: ${PORT} });
    const kill = setTimeout(() => s.destroy(), 50);
    s.on('connect', () => { clearTimeout(kill); s.destroy(); finish(performance.timeOrigin + performance.now()); });
    s.on('error', () => clearTimeout(kill));
  }, 2);
  const giveUp = setTimeout(() => finish(null), 10000);
}).on('close', () => process.exit(0));
`;

interface Side {
  name: string;
  /** Runs a host program in the client container's namespace. */
  atClient(argv: string[], timeoutMs?: number): Promise<string>;
  /** Starts a host program in the server task's namespace. */
  atServer(name: string, argv: string[]): LabProcess;
  serviceName: string;
  vip: string;
  taskAddr: string;
  destroy(): Promise<void>;
}

async function run(side: Side, what: string, argvs: string[], timeoutMs = 60_000): Promise<Record<string, number>> {
  const out = await side.atClient([process.execPath, '-e', ...argvs], timeoutMs);
  const parsed = JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, number> & { error?: string };
  if (parsed.error) throw new Error(`${side.name} ${what}: ${parsed.error}`);
  return parsed;
}

async function ours(): Promise<{ side: Side; c: LabCluster }> {
  const c = await LabCluster.create({ managers: 1, workers: 2, spares: ['x', 'y'] });
  try {
    await c.ok('m1', 'network', 'create', '--driver', 'overlay', NETWORK);
    const networkId = (JSON.parse(await c.ok('m1', 'network', 'inspect', NETWORK)) as { id: string }).id;
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'srv', '--image', c.image, '--constraint', 'node.hostname==w2', '--network', NETWORK, '--', 'sleep', '1000000');
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'cli', '--image', c.image, '--constraint', 'node.hostname==w1', '--network', NETWORK, '--', 'sleep', '1000000');
    const [srv] = (await c.converged('srv', 1, 90_000)) as Attached[];
    const [cli] = (await c.converged('cli', 1, 90_000)) as Attached[];
    const [w1, w2] = [c.host('w1'), c.host('w2')];
    const [pidC, pidS] = [await taskPid(w1, cli!.id), await taskPid(w2, srv!.id)];
    const service = JSON.parse(await c.ok('m1', 'service', 'inspect', 'srv')) as { endpoint?: { virtualIps?: { networkId: string; addr: string }[] } };
    const vip = service.endpoint?.virtualIps?.find((v) => v.networkId === networkId)?.addr.split('/')[0] ?? '';
    if (!vip) throw new Error('service srv has no VIP');
    return {
      c,
      side: {
        name: 'tswarm',
        atClient: async (a, timeoutMs) => (await w1.exec(...nsenter(pidC, a), { timeoutMs })).stdout,
        atServer: (name, a) => w2.start(name, ...nsenter(pidS, a)),
        serviceName: 'srv',
        vip,
        taskAddr: srv!.networks!.find((n) => n.networkId === networkId)!.addresses[0]!.split('/')[0]!,
        destroy: () => c.destroy(),
      },
    };
  } catch (err) {
    await c.destroy();
    throw err;
  }
}

async function docker(): Promise<Side> {
  const { d, destroy } = await twoNodeSwarm();
  try {
    const image = 'tswarm-bench:latest';
    const layout = join(d.lab.root, 'image');
    writeIperfLayout(layout);
    await d.importLayout(layout, image);
    await d.ok('network', 'create', '-d', 'overlay', '--attachable', NETWORK);
    const [m, w] = [d.host, d.workers[0]!];
    await d.ok('service', 'create', '--detach', '--name', 'srv', '--network', NETWORK, '--constraint', 'node.role==worker', image, 'sleep', '1000000');
    await d.okOn(m, 'run', '-d', '--name', 'cli', '--network', NETWORK, image, 'sleep', '1000000');
    let srvId = '';
    await until('docker srv running', async () => {
      srvId = (await d.okOn(w, 'ps', '-q', '--filter', 'label=com.docker.swarm.service.name=srv')).trim();
      return srvId !== '';
    }, 120_000);
    const inspect = async (h: LabHost, name: string, format: string): Promise<string> => (await d.okOn(h, 'inspect', '-f', format, name)).trim();
    const [pidC, pidS] = [Number(await inspect(m, 'cli', '{{.State.Pid}}')), Number(await inspect(w, srvId, '{{.State.Pid}}'))];
    const taskAddr = await inspect(w, srvId, `{{(index .NetworkSettings.Networks "${NETWORK}").IPAddress}}`);
    // The service's VIP on the overlay (Docker may list one on its ingress too): the one in the task's /24.
    const vips = (await d.ok('service', 'inspect', '-f', '{{range .Endpoint.VirtualIPs}}{{.Addr}} {{end}}', 'srv')).trim().split(/\s+/).map((a) => a.split('/')[0]!);
    const prefix = taskAddr.split('.').slice(0, 3).join('.');
    const vip = vips.find((a) => a.startsWith(`${prefix}.`));
    if (!vip) throw new Error(`docker: no VIP of srv in ${prefix}.0/24 (${vips.join(', ')})`);
    return {
      name: 'docker',
      atClient: async (a, timeoutMs) => (await m.exec(...nsenter(pidC, a), { timeoutMs })).stdout,
      atServer: (name, a) => w.start(name, ...nsenter(pidS, a)),
      serviceName: 'srv',
      vip,
      taskAddr,
      destroy,
    };
  } catch (err) {
    await destroy();
    throw err;
  }
}

interface Figures {
  dns: { p50: number; p99: number }[];
  vip: number[];
  direct: number[];
}

async function measure(side: Side, figures: Figures, round: number): Promise<void> {
  const dns = await run(side, 'dns', [DNS_CLIENT, side.serviceName, String(argv.queries)]);
  figures.dns.push({ p50: dns.p50!, p99: dns.p99! });
  // Alternating short runs, so that the machine's other load lands on both alike.
  const each = Math.max(1, Math.round(argv.seconds / 3));
  const vips: number[] = [];
  const directs: number[] = [];
  let failed = 0;
  for (let k = 0; k < 3; k++) {
    const vip = await run(side, 'vip', [RATE_CLIENT, side.vip, String(each)]);
    const direct = await run(side, 'direct', [RATE_CLIENT, side.taskAddr, String(each)]);
    vips.push(vip.perSecond!);
    directs.push(direct.perSecond!);
    failed += vip.failed! + direct.failed!;
  }
  figures.vip.push(median(vips));
  figures.direct.push(median(directs));
  console.log(
    `${side.name} round ${round}: DNS p50 ${us(dns.p50!)}, p99 ${us(dns.p99!)}; connections/s through the VIP ${vips.map((v) => v.toFixed(0)).join('/')}, straight ${directs.map((v) => v.toFixed(0)).join('/')} (${failed} failed)`,
  );
}

/** The routing mesh's paths (see the top) and the anchor, `mesh-rounds` rounds; medians per path. */
async function mesh(c: LabCluster): Promise<Map<string, PathResult[]>> {
  const m1 = c.host('m1');
  const layout = join(c.lab.root, 'iperf3-image');
  writeIperfLayout(layout);
  const push = await m1.exec(process.execPath, [dist('scripts/push-image.js'), layout, `http://${m1.address}:5000`, 'library/iperf3:latest'], { timeoutMs: 60_000 });
  if (push.code !== 0) throw new Error(`pushing the iperf3 image: ${push.stderr}`);
  const image = `${m1.address}:5000/library/iperf3:latest`;
  await c.ok('m1', 'service', 'create', '--detach', '--name', 'meshed', '--image', image, '--publish', 'published=5201,target=5201', '--publish', `published=${PING_PORT},target=${PING_PORT}`, '--constraint', 'node.hostname==w2', '--', IPERF3, '-s');
  const [task] = await c.converged('meshed', 1, 90_000);
  const [x, y, w2] = [c.host('x'), c.host('y'), c.host('w2')];
  const pid = await taskPid(w2, task!.id);
  const viaHost = (name: string, entry: LabHost): NetPath => ({
    name,
    serverAddress: entry.address,
    iperf: (a, timeoutMs) => x.exec(IPERF3, a, { timeoutMs }),
    runAtClient: ([cmd, ...a], timeoutMs) => x.exec(cmd!, a, { timeoutMs }),
    startAtServer: (n, a) => w2.start(n, ...nsenter(pid, a)),
  });
  const anchorServer = y.start('iperf3-anchor', IPERF3, ['-s', '--forceflush']);
  await anchorServer.waitForLog(/Server listening/, 10_000);
  const paths: NetPath[] = [
    { name: 'underlay x → y', serverAddress: y.address, iperf: (a, timeoutMs) => x.exec(IPERF3, a, { timeoutMs }), runAtClient: ([cmd, ...a], timeoutMs) => x.exec(cmd!, a, { timeoutMs }), startAtServer: (n, [cmd, ...a]) => y.start(n, cmd!, a) },
    viaHost('mesh x → m1 (no task) → w2', m1),
    viaHost('mesh x → w2 (the task\'s node)', w2),
  ];
  const out = new Map<string, PathResult[]>();
  try {
    // The first request through a node may meet its table still being written: wait for an answer.
    await until('the mesh answers through m1', async () => (await x.exec(IPERF3, ['-c', m1.address, '-t', '1', '-J'], { timeoutMs: 20_000 })).code === 0, 60_000);
    for (let round = 1; round <= argv['mesh-rounds']; round++) {
      for (const p of paths) {
        const r = await measurePath(p, argv['mesh-seconds'], 1000);
        console.log(describe(`${p.name} round ${round}`, r));
        out.set(p.name, [...(out.get(p.name) ?? []), r]);
      }
    }
  } finally {
    await anchorServer.kill9();
  }
  return out;
}

/** RUNNING → the first connection accepted through the VIP, `trials` times. */
async function convergence(c: LabCluster): Promise<number[]> {
  const client = controlClient(c);
  try {
    const serviceId = (await c.ok('m1', 'service', 'create', '--detach', '--name', 'conv', '--image', c.image, '--replicas', '0', '--network', NETWORK, '--constraint', 'node.hostname==w2', '--', 'httpd', '-f', '-p', String(PORT))).trim();
    const service = JSON.parse(await c.ok('m1', 'service', 'inspect', 'conv')) as { endpoint?: { virtualIps?: { addr: string }[] } };
    const vip = service.endpoint?.virtualIps?.[0]?.addr.split('/')[0];
    if (!vip) throw new Error('service conv has no VIP');
    const [cli] = (await c.converged('cli', 1)) as Attached[];
    const w1 = c.host('w1');
    const [pcmd, pargs] = nsenter(await taskPid(w1, cli!.id), [process.execPath, '-e', PROBER]);
    const prober = w1.spawnInside(pcmd, pargs, {}, ['pipe', 'pipe', 'pipe']);
    let answered: ((at: number | null) => void) | undefined;
    createInterface({ input: prober.stdout! }).on('line', (line) => answered?.((JSON.parse(line) as { at: number | null }).at));
    const out: number[] = [];
    const seen = new Set<string>();
    try {
      for (let i = 1; i <= argv.trials; i++) {
        await sleep(200);
        const first = new Promise<number | null>((resolve) => (answered = resolve));
        prober.stdin!.write(`${vip}\n`);
        await scale(client, serviceId, 1);
        let task: Task | undefined;
        await until(`trial ${i}: RUNNING`, async () => {
          task = (await tasksOf(client, serviceId)).find((t) => !seen.has(t.id) && t.status?.state === TaskState.TASK_STATE_RUNNING);
          return task !== undefined;
        }, 30_000);
        seen.add(task!.id);
        const at = await first;
        if (at === null) throw new Error(`trial ${i}: no connection through the VIP in 10 s`);
        const took = at - Number(task!.status?.timestampUnixMs ?? 0);
        // Where it went: the report's way to its commit (the store's update time), then the rest.
        const committed = Number(task!.meta?.updatedAtUnixMs ?? 0) - Number(task!.status?.timestampUnixMs ?? 0);
        console.log(`convergence trial ${i}: RUNNING (worker's timestamp) → first connection through the VIP ${ms(took)} (RUNNING committed after ${ms(committed)})`);
        out.push(took);
        await scale(client, serviceId, 0);
        await until(`trial ${i}: stopped`, async () => !(await tasksOf(client, serviceId)).some((t) => t.status?.state === TaskState.TASK_STATE_RUNNING));
      }
    } finally {
      prober.stdin?.end();
      prober.kill('SIGKILL');
    }
    return out;
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const before = cpuCounters();
  console.log(`Service discovery benchmark: ${argv.queries} DNS queries, ${argv.seconds} s connection-rate tests, ${argv.rounds} rounds per side; ${argv.trials} convergence trials`);
  const figures: Record<string, Figures> = {};
  let o: { side: Side; c: LabCluster } | undefined;
  let d: Side | undefined;
  const servers: LabProcess[] = [];
  let conv: number[] = [];
  let meshed: Map<string, PathResult[]> | undefined;
  try {
    o = await ours();
    if (!argv['skip-docker']) d = await docker().catch((err: unknown) => void console.log(`docker: the anchor failed: ${(err as Error).message}`));
    for (const side of [o.side, d].filter((s): s is Side => s !== undefined)) {
      const srv = side.atServer(`rate-server-${side.name}`, [process.execPath, '-e', SERVER]);
      servers.push(srv);
      await srv.waitForLog(/ready/, 10_000);
      figures[side.name] = { dns: [], vip: [], direct: [] };
    }
    for (let round = 1; round <= argv.rounds; round++) {
      await measure(o.side, figures.tswarm!, round);
      if (d) await measure(d, figures.docker!, round);
    }
    for (const s of servers) await s.kill9();
    await d?.destroy();
    d = undefined;
    if (argv['mesh-rounds'] > 0) meshed = await mesh(o.c);
    if (argv.trials > 0) conv = await convergence(o.c);
  } finally {
    for (const s of servers) await s.kill9().catch(() => undefined);
    await d?.destroy();
    await o?.side.destroy();
  }
  console.log('');
  const f = (name: string): Figures | undefined => figures[name];
  for (const name of ['tswarm', 'docker']) {
    const x = f(name);
    if (!x) continue;
    const ratio = median(x.vip) / median(x.direct);
    console.log(
      `${name}: DNS p50 ${us(median(x.dns.map((r) => r.p50)))}, p99 ${us(median(x.dns.map((r) => r.p99)))}; connections/s through the VIP ${median(x.vip).toFixed(0)}, straight ${median(x.direct).toFixed(0)}: VIP/straight ${ratio.toFixed(2)}×` +
        (name === 'tswarm' ? ` (goal ≥ 0.9×: ${ratio >= 0.9 ? 'met' : 'not met'})` : ''),
    );
  }
  const [ot, dk] = [f('tswarm'), f('docker')];
  if (ot && dk) {
    const vipRatio = median(dk.vip) > 0 ? `${(median(ot.vip) / median(dk.vip)).toFixed(2)}×` : "not measured (Docker's VIP completed no connection from its client container)";
    console.log(`DNS p50 tswarm / docker: ${(median(ot.dns.map((r) => r.p50)) / median(dk.dns.map((r) => r.p50))).toFixed(2)}× (lower is faster); connections/s through the VIP tswarm / docker: ${vipRatio}`);
  }
  if (meshed) {
    const med = (name: string, f: (r: PathResult) => number): number => median((meshed.get(name) ?? []).map(f));
    const [anchor, far, near] = [...meshed.keys()] as [string, string, string];
    for (const [what, f] of [['1 stream', (r: PathResult) => r.one.bitsPerSecond], ['4 streams', (r: PathResult) => r.four.bitsPerSecond]] as const) {
      const ratio = med(far, f) / med(anchor, f);
      console.log(`routing mesh ${what}: through a node without the task ${gbit(med(far, f))}, through the task's node ${gbit(med(near, f))}, underlay ${gbit(med(anchor, f))}; without the task / underlay ${ratio.toFixed(2)}× (goal ≥ 0.9×: ${ratio >= 0.9 ? 'met' : 'not met'})`);
    }
    const rtt = (name: string): number => med(name, (r) => r.rtt.p50);
    console.log(`routing mesh ping-pong p50: through a node without the task ${us(rtt(far))}, through the task's node ${us(rtt(near))}, underlay ${us(rtt(anchor))}`);
  }
  if (conv.length > 0) {
    const p99 = percentile(conv, 0.99);
    console.log(`RUNNING → first connection through the VIP from another host, ${conv.length} trials: p50 ${ms(median(conv))}, p99 ${ms(p99)}, max ${ms(Math.max(...conv))} (goal p99 < 100 ms: ${p99 < 100 ? 'met' : 'not met'})`);
  }
  const cpu = cpuSince(before);
  console.log(`machine over the whole run: busy ${(cpu.busy * 100).toFixed(0)}%, steal ${(cpu.steal * 100).toFixed(1)}%; took ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
