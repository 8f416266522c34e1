// Container start benchmark: N containers of the busybox image from a local registry, each with
// its own overlay root filesystem, its own network namespace on one bridge, a swarm-monitor and
// the default seccomp profile, through worker/exec's RuntimeExecutor (prepare + start), timed
// until all N run. The same flow runs with swarm-runtime and with runc in one invocation.
//   node dist/bench/containers.js [--count 100] [--parallel 8] [--network bridge|none] [--skip-runc]
// The bridge lives in a throwaway network namespace (as in the network tests), so the host's own
// namespace and its forwarding switch are left alone; every host-side command (nft, ss) pays one
// nsenter, while the veth pairs are made by the fork server's netlink built-ins, as in swarmd.
// Everything (containers, mounts, cgroups, namespaces, registry, temporary files) is removed after.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { pushBusyboxImage } from '../test/registry/image.js';
import { startRegistry } from '../test/registry/registry.js';
import { nativeBinary, RuntimeExecutor } from '../worker/exec/runtime.js';
import { Spawner } from '../worker/exec/spawner.js';
import { RegistryClient } from '../worker/image/distribution.js';
import { ImageStore, type ImageRecord } from '../worker/image/store.js';
import { BridgeDriver } from '../worker/network/bridge.js';

const argv = yargs(hideBin(process.argv)).strict().option('count', { type: 'number', default: 100 }).option('parallel', { type: 'number', default: 8 })
  .option('network', { choices: ['bridge', 'none'] as const, default: 'bridge' as const })
  .option('skip-runc', { type: 'boolean', default: false, describe: 'ours only (no ratio)' }).parseSync();
const n = argv.count;
const cgroupParent = `/tswarm-bench-${process.pid}`;

/** Runs fn(0..count-1) with at most `parallel` at a time. */
async function pool(count: number, parallel: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
}

interface Result {
  startMs: number;
  removeMs: number;
}

async function flow(runtime: string, work: string, images: ImageStore, image: ImageRecord, spawner: Spawner): Promise<Result> {
  const tag = randomBytes(3).toString('hex');
  const ns = `tswb-${tag}-host`;
  const sh = (args: string[]): void => {
    const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
  };
  sh(['ip', 'netns', 'add', ns]);
  const net = new BridgeDriver({ stateDir: path.join(work, `net-${tag}`), name: `tsb${tag}`, subnet: '10.77.0.0/16', netns: ns, runner: spawner.runner, links: spawner.links });
  const ex = new RuntimeExecutor({ stateDir: path.join(work, `state-${runtime}`), images, runtime, runtimeRoot: path.join(work, `rt-${runtime}`), network: net, cgroupParent, spawner });
  try {
    await net.create();
    const ids = Array.from({ length: n }, (_, i) => `b-${runtime}-${i}`);
    const t0 = process.hrtime.bigint();
    await pool(n, argv.parallel, async (i) => {
      await ex.prepare({ id: ids[i]!, image, network: argv.network, command: ['sleep', '1000'] });
      await ex.start(ids[i]!);
    });
    const startMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const running = (await ex.list()).filter((c) => c.status === 'running' && (argv.network === 'none' || c.network !== undefined)).length;
    if (running !== n) throw new Error(`${runtime}: ${running} of ${n} containers running`);
    const t1 = process.hrtime.bigint();
    await pool(n, argv.parallel, async (i) => ex.remove(ids[i]!, { force: true }));
    return { startMs, removeMs: Number(process.hrtime.bigint() - t1) / 1e6 };
  } finally {
    for (const c of await ex.list().catch(() => [])) await ex.remove(c.id, { force: true }).catch(() => undefined);
    await net.destroy().catch(() => undefined);
    spawnSync('ip', ['netns', 'del', ns]);
  }
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), 'tswarm-bench-containers-'));
  const registry = await startRegistry();
  // One fork server runs the image store's mounts, the network driver's devices and commands and
  // the executor's commands, as in swarmd (see worker/exec/spawner.ts).
  const spawner = new Spawner(nativeBinary('swarm-spawn'));
  try {
    const client = new RegistryClient({ url: registry.url });
    await pushBusyboxImage(client);
    const images = new ImageStore(path.join(work, 'images'), { mounter: spawner.mounter });
    const { image } = await images.pull(client, 'library/busybox', 'latest');
    console.log(`Container start benchmark: ${n} containers per runtime (${argv.parallel} at a time), busybox image, overlay rootfs, bridge networking, monitor, seccomp`);
    const results: Record<string, Result> = {};
    for (const runtime of argv['skip-runc'] ? ['swarm-runtime'] : ['swarm-runtime', 'runc']) {
      const r = await flow(runtime, work, images, image, spawner);
      results[runtime] = r;
      console.log(
        `${runtime.padEnd(14)} all ${n} running after ${(r.startMs / 1000).toFixed(2)} s (${(r.startMs / n).toFixed(1)} ms per container); removed in ${(r.removeMs / 1000).toFixed(2)} s`,
      );
    }
    const ours = results['swarm-runtime']!;
    const runc = results.runc;
    if (runc === undefined) return;
    console.log('');
    console.log(`ratio swarm-runtime / runc (start): ${(ours.startMs / runc.startMs).toFixed(2)}× (below 1 is faster); goal: ${n} running in < 2 s: ${ours.startMs < 2000 ? 'met' : 'not met'}`);
  } finally {
    spawner.close();
    await registry.stop();
    for (const h of ['', ...readdirSync('/sys/fs/cgroup')]) {
      const d = path.join('/sys/fs/cgroup', h, cgroupParent);
      if (existsSync(d)) rmdirSync(d);
    }
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
