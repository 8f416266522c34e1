// What the network benchmark measures on a path between two ends (two lab hosts, or two containers
// on two lab hosts): iperf3's TCP throughput (Debian's iperf3, its JSON parsed) and a 1-byte TCP
// ping-pong between two small Node programs run with this process's node in the ends' network
// namespaces; and the image that carries iperf3 into containers (the binary and the shared
// libraries `ldd` lists, at their paths, on top of the set-up's busybox layer).
//
// Contract: a `NetPath` says how to run a program at each end; `measurePath` needs `iperf3 -s`
// already listening at the server end (port 5201), starts and stops the ping-pong server itself,
// and throws with iperf3's or the client's own message when a measurement fails.
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ExecResult, LabProcess } from '../../test/lab/lab.js';
import { buildImage, makeLayer, readLayout, writeLayout, BUSYBOX_LAYOUT, type Layer } from '../../test/registry/image.js';
import type { TarInput } from '../../worker/image/tar.js';
import { cpuCounters, cpuSince, sleep } from './load.js';

export const IPERF3 = '/usr/bin/iperf3';
/** The ping-pong server's port at the server end. */
export const PING_PORT = 7007;

/** The paths (no leading '/') of iperf3 and of what `ldd` says it loads, with the content of each (symlinks followed). */
export function iperfFiles(): { path: string; content: Buffer; mode: number }[] {
  const r = spawnSync('ldd', [IPERF3], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ldd ${IPERF3} failed (is iperf3 installed? the set-up installs it): ${r.stderr}`);
  // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"; linux-vdso has no file.
  const libs = r.stdout
    .split('\n')
    .map((l) => l.match(/(?:=>\s*)?(\/\S+)\s+\(0x/)?.[1])
    .filter((p): p is string => p !== undefined);
  return [IPERF3, ...libs].map((p) => ({ path: p.slice(1), content: readFileSync(p), mode: statSync(p).mode & 0o7777 }));
}

/** A layer holding iperf3 and its libraries, with every parent directory. */
export function iperfLayer(): Layer {
  const files = iperfFiles();
  const dirs = new Set<string>();
  for (const f of files) for (let d = dirname(f.path); d !== '.'; d = dirname(d)) dirs.add(d);
  const entries: TarInput[] = [
    ...[...dirs].sort().map((d): TarInput => ({ type: 'directory', path: `${d}/`, mode: 0o755 })),
    ...files.map((f): TarInput => ({ type: 'file', path: f.path, mode: f.mode, content: f.content })),
  ];
  return makeLayer(entries);
}

/** Writes the iperf3 image (the busybox layout's layers, then iperf3's) as an OCI image layout in `dir`. */
export function writeIperfLayout(dir: string): void {
  const base = readLayout(BUSYBOX_LAYOUT);
  writeLayout(dir, buildImage([...base.layers, iperfLayer()], [`/${IPERF3.slice(1)}`, '-s']), 'latest');
}

/** How to run programs at the two ends of a path. */
export interface NetPath {
  name: string;
  /** The server end's address, as the client end reaches it. */
  serverAddress: string;
  /** Runs iperf3 (args after the binary) at the client end, to completion. */
  iperf(args: string[], timeoutMs: number): Promise<ExecResult>;
  /** Runs a host program in the client end's network namespace, to completion. */
  runAtClient(argv: string[], timeoutMs: number): Promise<ExecResult>;
  /** Starts a host program in the server end's network namespace. */
  startAtServer(name: string, argv: string[]): LabProcess;
}

export interface Throughput {
  /** Received by the server, bits/s. */
  bitsPerSecond: number;
  retransmits: number;
  busy: number;
  steal: number;
}

export interface RoundTrip {
  /** µs */
  p50: number;
  p99: number;
  exchanges: number;
  busy: number;
  steal: number;
}

export interface PathResult {
  one: Throughput;
  four: Throughput;
  rtt: RoundTrip;
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } };
}

/** The figures of `iperf3 -J` output; throws with iperf3's error. */
export function parseIperf(stdout: string): { bitsPerSecond: number; retransmits: number } {
  let j: IperfJson;
  try {
    j = JSON.parse(stdout) as IperfJson;
  } catch {
    throw new Error(`iperf3 printed no JSON: ${stdout.slice(0, 500)}`);
  }
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const received = j.end?.sum_received?.bits_per_second;
  if (received === undefined) throw new Error(`iperf3's JSON has no end.sum_received: ${stdout.slice(0, 500)}`);
  return { bitsPerSecond: received, retransmits: j.end?.sum_sent?.retransmits ?? 0 };
}

/** A TCP echo of whatever arrives, with Nagle off; prints "listening" once bound. Argument: the port. */
export const PING_SERVER = `
const net = require('net');
net.createServer((s) => { s.setNoDelay(true); s.on('data', (d) => s.write(d)); s.on('error', () => {}); })
  .listen(Number(process.argv[1]), () => console.log('listening'));
`;

/**
 * One byte at a time, one in flight: each exchange's round trip in µs (after `warm` unmeasured
 * ones); prints {p50, p99, n} as JSON. Arguments: address, port, exchanges, warm-up exchanges.
 */
export const PING_CLIENT = `
const net = require('net');
const [host, port, n, warm] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4])];
const lat = [];
const b = Buffer.from('x');
let i = 0;
let t = 0n;
const s = net.connect({ host, port }, () => { s.setNoDelay(true); t = process.hrtime.bigint(); s.write(b); });
s.setTimeout(5000, () => { console.error('no answer in 5 s after ' + i + ' exchanges'); process.exit(1); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });
s.on('data', (d) => {
  for (let k = 0; k < d.length; k++) {
    const dt = Number(process.hrtime.bigint() - t) / 1000;
    if (i >= warm) lat.push(dt);
    i++;
  }
  if (i < warm + n) { t = process.hrtime.bigint(); s.write(b); return; }
  lat.sort((a, b) => a - b);
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  console.log(JSON.stringify({ p50: pct(0.5), p99: pct(0.99), n: lat.length }));
  s.destroy();
});
`;

/** iperf3's client against the path's server; a busy server (the previous test still ending) is tried again. */
async function iperfRun(p: NetPath, seconds: number, streams: number): Promise<Throughput> {
  const args = ['-c', p.serverAddress, '-J', '-t', String(seconds), '-P', String(streams), '--connect-timeout', '3000'];
  for (let attempt = 1; ; attempt++) {
    const before = cpuCounters();
    const r = await p.iperf(args, (seconds + 30) * 1000);
    const cpu = cpuSince(before);
    try {
      return { ...parseIperf(r.stdout), ...cpu };
    } catch (err) {
      if (attempt >= 5 || !/busy|unable to connect/.test((err as Error).message)) throw new Error(`${p.name}: iperf3 -P ${streams}: ${(err as Error).message} ${r.stderr}`);
      await sleep(1000);
    }
  }
}

let servers = 0;

/** The ping-pong: the server started at the server end, the client run at the client end. */
async function roundTrip(p: NetPath, exchanges: number): Promise<RoundTrip> {
  // A name of its own each time: a log appended to would show the previous server's "listening".
  const server = p.startAtServer(`pingpong-${p.name.replace(/\W+/g, '-')}-${++servers}`, [process.execPath, '-e', PING_SERVER, String(PING_PORT)]);
  try {
    await server.waitForLog(/listening/, 10_000);
    const before = cpuCounters();
    const r = await p.runAtClient([process.execPath, '-e', PING_CLIENT, p.serverAddress, String(PING_PORT), String(exchanges), String(Math.min(200, exchanges))], 120_000);
    const cpu = cpuSince(before);
    if (r.code !== 0) throw new Error(`${p.name}: the ping-pong client failed (${r.code ?? r.signal}): ${r.stderr}${r.stdout}`);
    const j = JSON.parse(r.stdout) as { p50: number; p99: number; n: number };
    return { p50: j.p50, p99: j.p99, exchanges: j.n, ...cpu };
  } finally {
    await server.kill9();
  }
}

/** Throughput with one stream and with four, then the ping-pong. */
export async function measurePath(p: NetPath, seconds: number, exchanges: number): Promise<PathResult> {
  const one = await iperfRun(p, seconds, 1);
  const four = await iperfRun(p, seconds, 4);
  const rtt = await roundTrip(p, exchanges);
  return { one, four, rtt };
}

export const gbit = (bps: number): string => `${(bps / 1e9).toFixed(2)} Gbit/s`;
const cpu = (x: { busy: number; steal: number }): string => `busy ${(x.busy * 100).toFixed(0)}%, steal ${(x.steal * 100).toFixed(1)}%`;

/** One line per figure of a path's result. */
export function describe(p: string, r: PathResult): string {
  return [
    `${p}: 1 stream ${gbit(r.one.bitsPerSecond)} (${r.one.retransmits} retransmits; machine ${cpu(r.one)})`,
    `${p}: 4 streams ${gbit(r.four.bitsPerSecond)} (${r.four.retransmits} retransmits; machine ${cpu(r.four)})`,
    `${p}: 1-byte ping-pong p50 ${r.rtt.p50.toFixed(0)} µs, p99 ${r.rtt.p99.toFixed(0)} µs over ${r.rtt.exchanges} exchanges (machine ${cpu(r.rtt)})`,
  ].join('\n');
}
