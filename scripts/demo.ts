// The main job, as far as it goes today: a local three-host lab, a one-manager cluster made with
// `swarmd init` on manager1, plain daemons on the two workers, swarmctl reaching every daemon
// locally and across the underlay, and a service created on the manager. Services converge on
// containers here once joining and orchestration land.
//   node dist/scripts/demo.js [--exit]    (--exit: tear down at once instead of waiting for Ctrl-C)
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab } from '../test/lab/lab.js';

const root = join(fileURLToPath(import.meta.url), '../../..');
const swarmd = join(root, 'dist/cli/swarmd.js');
const swarmctl = join(root, 'dist/cli/swarmctl.js');

const lab = await Lab.create({ hosts: ['manager1', 'worker1', 'worker2'] });
console.log(`lab ${lab.id}: ${lab.hosts.map((h) => `${h.name} ${h.address}`).join(', ')}`);
try {
  // manager1 creates the cluster; the workers run plain daemons until joining lands.
  const daemons = lab.hosts.map((h) =>
    h.name === 'manager1'
      ? h.start('swarmd', process.execPath, [swarmd, 'init', '--advertise-addr', `${h.address}:4242`])
      : h.start('swarmd', process.execPath, [swarmd, '--listen-addr', `${h.address}:4242`]),
  );
  await Promise.all(daemons.map((d) => d.waitForLog(/swarmd started/)));
  const manager = lab.host('manager1');
  for (const h of lab.hosts) {
    const local = await h.exec(process.execPath, [swarmctl, 'version']);
    console.log(`\n$ swarmctl version            # on ${h.name}, over its local socket\n${local.stdout}${local.stderr}`);
  }
  const remote = await lab.host('worker1').exec(process.execPath, [swarmctl, '--host', `${manager.address}:4242`, 'version']);
  console.log(`$ swarmctl --host ${manager.address}:4242 version   # on worker1, across the underlay\n${remote.stdout}${remote.stderr}`);
  for (const args of [
    ['service', 'create', '--name', 'web', '--image', 'busybox', '--replicas', '3'],
    ['service', 'ls'],
    ['node', 'ls'],
    ['cluster', 'join-token', 'worker'],
  ]) {
    const r = await manager.exec(process.execPath, [swarmctl, ...args]);
    console.log(`$ swarmctl ${args.join(' ')}   # on manager1\n${r.stdout}${r.stderr}`);
  }
  console.log('(Tasks are not scheduled onto workers yet: joining and orchestration come next.)');
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
