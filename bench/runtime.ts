// Runtime benchmark: create+start+wait+delete of /bin/true in a prepared busybox bundle, N times
// each for swarm-runtime, runc and crun in one invocation (`<runtime> run`, which does all four),
// printing microseconds per container and the ratios.
//   node dist/bench/runtime.js [--count 200] [--rounds 3] [--no-options]
// The bundle carries the options a hardened service sets (what `swarmctl service create
// --read-only --cap-drop ALL --cap-add NET_BIND_SERVICE --ulimit nofile=1024:2048 --init` makes):
// a read-only root, a dropped capability set, rlimits, and swarm-init (native/build/swarm-init)
// bind-mounted as PID 1 running /bin/true; --no-options runs the plain bundle of before. Rounds
// alternate the runtimes, and the median of each is compared, on this noisy machine.
// Each runtime runs its N containers from one shell loop, so process start-up of the benchmark
// itself is paid once. Debian's crun 1.8 refuses this host's hybrid cgroup layout; it runs in a
// private mount namespace where /sys/fs/cgroup/unified is unmounted (a v1-only view), as the
// anchor in shared/reference/measured-here.md was measured. Ours and runc run on the real layout.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { join } from 'node:path';
import { defaultSeccomp, Workspace } from '../test/native/bundle.js';
import { REPO } from '../test/util/dist.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('count', { type: 'number', default: 200 })
  .option('seccomp', { type: 'boolean', default: true, describe: 'every runtime applies our default seccomp profile (as a real container would)' })
  .option('options', { type: 'boolean', default: true, describe: 'read-only root, dropped capabilities, rlimits and an init in the bundle' })
  .option('rounds', { type: 'number', default: 3, describe: 'rounds of N per runtime, alternating; the median counts' })
  .parseSync();
const n = argv.count;
const ws = new Workspace();
process.on('exit', () => {
  ws.cleanup();
  spawnSync('rm', ['-rf', ws.dir]);
  // The runtime keeps its parent cgroup (/swarm-runtime) after delete, as runc does; remove it.
  spawnSync('sh', ['-c', 'for d in /sys/fs/cgroup/swarm-runtime /sys/fs/cgroup/*/swarm-runtime; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done; true']);
});

const INIT = join(REPO, 'native/build/swarm-init');
const bundle = ws.bundle(argv.options ? ['/sbin/docker-init', '--', '/bin/true'] : ['/bin/true'], (c) => {
  if (argv.seccomp) (c as unknown as { linux: Record<string, unknown> }).linux.seccomp = defaultSeccomp();
  if (!argv.options) return;
  c.root.readonly = true;
  const caps = ['CAP_NET_BIND_SERVICE'];
  c.process.capabilities = { bounding: caps, effective: caps, permitted: caps };
  c.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 }, { type: 'RLIMIT_NPROC', soft: 512, hard: 512 }];
  c.mounts.push({ destination: '/sbin/docker-init', type: 'bind', source: INIT, options: ['rbind', 'rprivate', 'ro'] });
});

function loop(bin: string, root: string, prefix: string): string {
  return `i=0; while [ $i -lt ${n} ]; do i=$((i+1)); ${bin} --root ${root} run --bundle ${bundle} ${prefix}-$i >/dev/null 2>&1 || { echo "run $i failed" >&2; exit 1; }; done`;
}

function time(label: string, cmd: string[], round: number): number | undefined {
  // Warm-up: caches, page cache for the binaries.
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd[0]!, cmd.slice(1), { encoding: 'utf8', timeout: 600_000 });
  const us = Number(process.hrtime.bigint() - t0) / 1000 / n;
  if (r.status !== 0) {
    console.log(`${label.padEnd(14)} failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
    return undefined;
  }
  console.log(`round ${round + 1}  ${label.padEnd(14)} ${us.toFixed(0).padStart(7)} µs per container (${n} × create+start+wait+delete)`);
  return us;
}

console.log(`Runtime benchmark: ${n} containers each, ${argv.rounds} rounds, busybox bundle, cgroups on, ${argv.seccomp ? 'our default seccomp profile in every runtime' : 'no seccomp'}, ${argv.options ? 'read-only root, CAP_NET_BIND_SERVICE only, rlimits nofile and nproc, swarm-init as PID 1' : 'no options'}`);
const crunRoot = `${ws.dir}/state-crun`;
const unified = existsSync('/sys/fs/cgroup/unified/cgroup.controllers');
const commands: Record<string, (round: number) => string[]> = {
  'swarm-runtime': (r) => ['sh', '-c', loop(ws.ours.bin, ws.ours.root, `b${r}-ours`)],
  runc: (r) => ['sh', '-c', loop('runc', ws.runc.root, `b${r}-runc`)],
};
if (existsSync('/usr/bin/crun')) commands.crun = (r) => ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `${unified ? 'umount /sys/fs/cgroup/unified && ' : ''}${loop('crun', crunRoot, `b${r}-crun`)}`];
else console.log('crun           not installed (apt-get install crun)');
const runs: Record<string, number[]> = {};
for (let round = 0; round < argv.rounds; round++) {
  // Alternate the order, so that no runtime always runs after the same one.
  const names = Object.keys(commands);
  const order = round % 2 === 0 ? names : [...names].reverse();
  for (const name of order) {
    const us = time(name, commands[name]!(round), round);
    if (us !== undefined) (runs[name] ??= []).push(us);
  }
}
const median = (xs: number[] | undefined): number | undefined => {
  if (!xs || xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const results = { ours: median(runs['swarm-runtime']), runc: median(runs.runc), crun: median(runs.crun) };
console.log('');
for (const [name, us] of Object.entries(results)) if (us !== undefined) console.log(`median ${name.padEnd(6)} ${us.toFixed(0).padStart(7)} µs per container`);
if (results.ours && results.runc) console.log(`ratio swarm-runtime / runc: ${(results.ours / results.runc).toFixed(2)}× (below 1 is faster)`);
if (results.ours && results.crun) console.log(`ratio swarm-runtime / crun: ${(results.ours / results.crun).toFixed(2)}× (goal: at or below 0.8)`);
