// The main job, as far as it goes today: a local lab of four hosts; `swarmd init` on manager1,
// manager2 joins with the manager token, two workers join with the worker token (mutual TLS, the
// token checked against the cluster's root); swarmctl on each manager's socket and across the
// underlay with a manager certificate; a service created. Services converge on containers here
// once orchestration lands.
//   node dist/scripts/demo.js [--exit]    (--exit: tear down at once instead of waiting for Ctrl-C)
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, type LabHost } from '../test/lab/lab.js';

const root = join(fileURLToPath(import.meta.url), '../../..');
const swarmd = join(root, 'dist/cli/swarmd.js');
const swarmctl = join(root, 'dist/cli/swarmctl.js');

async function show(h: LabHost, args: string[], note = `on ${h.name}`): Promise<string> {
  const r = await h.exec(process.execPath, [swarmctl, ...args]);
  console.log(`$ swarmctl ${args.join(' ')}   # ${note}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

const lab = await Lab.create({ hosts: ['manager1', 'manager2', 'worker1', 'worker2'] });
console.log(`lab ${lab.id}: ${lab.hosts.map((h) => `${h.name} ${h.address}`).join(', ')}`);
try {
  const manager = lab.host('manager1');
  const addr = (h: LabHost): string => `${h.address}:4242`;
  await manager.start('swarmd', process.execPath, [swarmd, 'init', '--advertise-addr', addr(manager)]).waitForLog(/swarmd started/, 20_000);
  await show(manager, ['cluster', 'join-token', 'worker']);
  const token = async (role: string): Promise<string> => (await manager.exec(process.execPath, [swarmctl, 'cluster', 'join-token', role, '-q'])).stdout.trim();
  const [mt, wt] = [await token('manager'), await token('worker')];
  await Promise.all(
    lab.hosts
      .filter((h) => h !== manager)
      .map((h) => h.start('swarmd', process.execPath, [swarmd, 'join', '--token', h.name.startsWith('manager') ? mt : wt, '--advertise-addr', addr(h), addr(manager)]).waitForLog(/swarmd started/, 60_000)),
  );
  // The second manager becomes a voter once it has caught up.
  for (let i = 0; i < 50; i++) {
    const r = await manager.exec(process.execPath, [swarmctl, 'node', 'ls']);
    if ((r.stdout.match(/reachable/g) ?? []).length === 1) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  await show(manager, ['node', 'ls']);
  await show(lab.host('manager2'), ['service', 'create', '--name', 'web', '--image', 'busybox', '--replicas', '3'], 'on manager2 (a follower: forwarded to the leader)');
  await show(lab.host('worker1'), ['--host', addr(manager), '--cert-dir', '/var/lib/tswarm/certs', 'service', 'ls'], "on worker1 with its own certificate: refused");
  await show(manager, ['service', 'ls']);
  console.log('(Tasks are not scheduled onto workers yet: orchestration comes next.)');
  console.log('Logs:', lab.hosts.map((h) => join(h.stateDir, 'logs/swarmd.log')).join(' '));
  if (!process.argv.includes('--exit')) {
    console.log('\nThe lab stays up until Ctrl-C (everything is removed then).');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  }
} finally {
  await lab.destroy();
  console.log(`lab ${lab.id} removed`);
}
