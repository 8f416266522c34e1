// Runtime benchmark: create+start+wait+delete of /bin/true in a prepared busybox bundle, N times
// each for swarm-runtime, runc and crun in one invocation (`<runtime> run`, which does all four),
// printing microseconds per container and the ratios.
//   node dist/bench/runtime.js [--count 200]
// Each runtime runs its N containers from one shell loop, so process start-up of the benchmark
// itself is paid once. Debian's crun 1.8 refuses this host's hybrid cgroup layout; it runs in a
// private mount namespace where /sys/fs/cgroup/unified is unmounted (a v1-only view), as the
// anchor in shared/reference/measured-here.md was measured. Ours and runc run on the real layout.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { defaultSeccomp, Workspace } from '../test/native/bundle.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('count', { type: 'number', default: 200 })
  .option('seccomp', { type: 'boolean', default: true, describe: 'every runtime applies our default seccomp profile (as a real container would)' })
  .parseSync();
const n = argv.count;
const ws = new Workspace();
process.on('exit', () => {
  ws.cleanup();
  spawnSync('rm', ['-rf', ws.dir]);
  // The runtime keeps its parent cgroup (/swarm-runtime) after delete, as runc does; remove it.
  spawnSync('sh', ['-c', 'for d in /sys/fs/cgroup/swarm-runtime /sys/fs/cgroup/*/swarm-runtime; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done; true']);
});

const bundle = ws.bundle(['/bin/true'], (c) => {
  if (argv.seccomp) (c as unknown as { linux: Record<string, unknown> }).linux.seccomp = defaultSeccomp();
});

function loop(bin: string, root: string, prefix: string): string {
  return `i=0; while [ $i -lt ${n} ]; do i=$((i+1)); ${bin} --root ${root} run --bundle ${bundle} ${prefix}-$i >/dev/null 2>&1 || { echo "run $i failed" >&2; exit 1; }; done`;
}

function time(label: string, cmd: string[]): number | undefined {
  // Warm-up: caches, page cache for the binaries.
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 600_000 });
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  if (r.status !== 0) {
    console.log(`${label.padEnd(14)} failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
    return undefined;
  }
  console.log(`${label.padEnd(14)} ${us.toFixed(0).padStart(7)} µs per container (${n} × create+start+wait+delete of /bin/true)`);
  return us;
}

console.log(`Runtime benchmark: ${n} containers each, busybox bundle, cgroups on, ${argv.seccomp ? 'our default seccomp profile in every runtime' : 'no seccomp'}`);
const results: Record<string, number | undefined> = {};
results.ours = time('swarm-runtime', ['sh', '-c', loop(ws.ours.bin, ws.ours.root, 'b-ours')]);
results.runc = time('runc', ['sh', '-c', loop('runc', ws.runc.root, 'b-runc')]);
if (existsSync('/usr/bin/crun')) {
  const crunRoot = `${ws.dir}/state-crun`;
  const unified = existsSync('/sys/fs/cgroup/unified/cgroup.controllers');
  const prep = unified ? 'umount /sys/fs/cgroup/unified && ' : '';
  results.crun = time('crun', ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `${prep}${loop('crun', crunRoot, 'b-crun')}`]);
} else {
  console.log('crun           not installed (apt-get install crun)');
}
console.log('');
if (results.ours && results.runc) console.log(`ratio swarm-runtime / runc: ${(results.ours / results.runc).toFixed(2)}× (below 1 is faster)`);
if (results.ours && results.crun) console.log(`ratio swarm-runtime / crun: ${(results.ours / results.crun).toFixed(2)}× (goal: at or below 1)`);
