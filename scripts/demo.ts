// The main job: a local cluster on four lab hosts running a two-service application. A registry
// on manager1 holds the busybox image the set-up built; `swarmd init` on manager1, manager2 joins
// with the manager token, two workers with the worker token (mutual TLS, the token checked against
// the cluster's root); an overlay network `app`; a web service (busybox httpd, 4 replicas, port
// 8080 published through the routing mesh) created through the follower converges on real
// containers on the two workers; a client service on the same network reaches it by its name
// (the embedded DNS and the service's VIP); a request from manager2 to manager1:8080 (the managers
// are drained: no task of the service runs on either) is answered by a task, which sees the
// client's own address; a worker's certificate is refused by the control API.
//   node dist/scripts/demo.js [--exit]    (--exit: tear down at once instead of waiting for Ctrl-C)
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TaskState } from '../proto/gen/tswarm/types.js';
import { stateName } from '../common/task-state.js';
import { HOST_STATE_MOUNT, Lab, removeRuntimeCgroupParents, type LabHost } from '../test/lab/lab.js';
import { REGISTRY_BINARY, registryConfig } from '../test/registry/registry.js';

const root = join(fileURLToPath(import.meta.url), '../../..');
const swarmd = join(root, 'dist/cli/swarmd.js');
const swarmctl = join(root, 'dist/cli/swarmctl.js');
const runtime = join(root, 'native/build/swarm-runtime');

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
  // The image registry on manager1, filled from the image layout the set-up built.
  writeFileSync(join(manager.stateDir, 'registry.yml'), registryConfig(`${HOST_STATE_MOUNT}/registry`, `${manager.address}:5000`));
  manager.start('registry', REGISTRY_BINARY, ['serve', `${HOST_STATE_MOUNT}/registry.yml`]);
  for (let i = 0; ; i++) {
    const r = await manager.exec(process.execPath, [join(root, 'dist/scripts/push-image.js'), join(root, 'build/images/busybox'), `http://${manager.address}:5000`, 'library/busybox:latest']);
    if (r.code === 0) {
      console.log(`registry on manager1: ${r.stdout.trim()}`);
      break;
    }
    if (i > 50) throw new Error(`cannot push the busybox image: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  const image = `${manager.address}:5000/library/busybox:latest`;
  // The managers only manage (drained, as in Docker); the workers run the tasks.
  await manager.start('swarmd', process.execPath, [swarmd, 'init', '--advertise-addr', addr(manager)]).waitForLog(/swarmd started/, 20_000);
  await show(manager, ['cluster', 'join-token', 'worker']);
  const token = async (role: string): Promise<string> => (await manager.exec(process.execPath, [swarmctl, 'cluster', 'join-token', role, '-q'])).stdout.trim();
  const [mt, wt] = [await token('manager'), await token('worker')];
  await Promise.all(
    lab.hosts
      .filter((h) => h !== manager)
      .map((h) => {
        const isManager = h.name.startsWith('manager');
        return h.start('swarmd', process.execPath, [swarmd, 'join', '--token', isManager ? mt : wt, '--advertise-addr', addr(h), addr(manager)]).waitForLog(/swarmd started/, 60_000);
      }),
  );
  // The second manager becomes a voter once it has caught up.
  for (let i = 0; i < 50; i++) {
    const r = await manager.exec(process.execPath, [swarmctl, 'node', 'ls']);
    if ((r.stdout.match(/reachable/g) ?? []).length === 1) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  for (const m of ['manager1', 'manager2']) await manager.exec(process.execPath, [swarmctl, 'node', 'update', m, '--availability', 'drain']);
  await show(manager, ['node', 'ls']);
  await show(manager, ['network', 'create', '--driver', 'overlay', 'app']);
  // The web server answers GET /cgi-bin/who with the task that served and the address it saw.
  const web = "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho served by $(hostname) to $REMOTE_ADDR\\n' > /www/cgi-bin/who && chmod +x /www/cgi-bin/who && exec httpd -f -p 80 -h /www";
  await show(
    lab.host('manager2'),
    ['service', 'create', '--detach', '--name', 'web', '--image', image, '--replicas', '4', '--network', 'app', '--publish', 'published=8080,target=80', '--', 'sh', '-c', web],
    'on manager2 (a follower: forwarded to the leader)',
  );
  // Convergence, as the tasks move through their states.
  const started = Date.now();
  let last = '';
  for (;;) {
    const r = await manager.exec(process.execPath, [swarmctl, 'service', 'ps', 'web', '--format', 'json']);
    const tasks = JSON.parse(r.stdout || '[]') as { slot: number; status?: { state: string } }[];
    const line = tasks
      .sort((a, b) => a.slot - b.slot)
      .map((t) => `${t.slot}:${stateName(t.status?.state as TaskState | undefined)}`)
      .join(' ');
    if (line !== last) console.log(`  ${((Date.now() - started) / 1000).toFixed(1)} s  ${line}`);
    last = line;
    if (tasks.length === 4 && tasks.every((t) => t.status?.state === 'TASK_STATE_RUNNING')) break;
    if (Date.now() - started > 60_000) throw new Error('the service did not converge within 60 s');
    await new Promise((res) => setTimeout(res, 100));
  }
  await show(manager, ['service', 'ps', 'web']);
  const inspected = JSON.parse(await manager.exec(process.execPath, [swarmctl, 'service', 'inspect', 'web']).then((r) => r.stdout)) as { endpoint?: { virtualIps?: { addr: string }[]; ports?: { publishedPort: number; targetPort: number }[] } };
  console.log(`web: VIP ${inspected.endpoint?.virtualIps?.map((v) => v.addr).join(', ')} on app; published ${inspected.endpoint?.ports?.map((p) => `${p.publishedPort}->${p.targetPort}`).join(', ')} on every node`);
  // The client: another service on the network, asking for `web` by name every second.
  await show(manager, ['service', 'create', '--detach', '--name', 'client', '--image', image, '--network', 'app', '--', 'sh', '-c', "while true; do printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | nc -w 2 web 80 | tail -n 1; sleep 1; done"]);
  for (let i = 0; ; i++) {
    const r = await manager.exec(process.execPath, [swarmctl, 'service', 'logs', 'client', '--tail', '3']);
    if (/served by/.test(r.stdout)) {
      console.log(`$ swarmctl service logs client --tail 3   # the client reaches web by its name\n${r.stdout}`);
      break;
    }
    if (i > 150) throw new Error(`the client did not reach web: ${r.stdout}${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  // From manager2 to manager1's published port: neither runs a task of web.
  const get = `const s = require('net').connect(8080, process.argv[1], () => s.write('GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n')); let b = ''; s.on('data', (d) => (b += d)); s.on('end', () => console.log(b.trim().split('\\n').pop().trim())); s.on('error', (e) => console.log(e.message));`;
  for (let i = 0; ; i++) {
    const r = await lab.host('manager2').exec(process.execPath, ['-e', get, manager.address]);
    if (/served by/.test(r.stdout)) {
      console.log(`manager2 (${lab.host('manager2').address}) → manager1 ${manager.address}:8080 (no task of web on either): ${r.stdout.trim()}`);
      break;
    }
    if (i > 50) throw new Error(`manager1:8080 did not answer: ${r.stdout}${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  for (const w of ['worker1', 'worker2']) {
    const r = await lab.host(w).exec('sh', ['-c', `for c in $(ls /run/swarm-runtime); do ${runtime} state $c | grep -q running && echo "  container $c running"; done`]);
    console.log(`on ${w}:\n${r.stdout}`);
  }
  await show(lab.host('worker1'), ['--host', addr(manager), '--cert-dir', '/var/lib/tswarm/certs', 'service', 'ls'], 'on worker1 with its own certificate: refused');
  console.log('Logs:', lab.hosts.map((h) => join(h.stateDir, 'logs/swarmd.log')).join(' '));
  if (!process.argv.includes('--exit')) {
    console.log('\nThe lab stays up until Ctrl-C (everything is removed then).');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  }
} finally {
  // The containers go with the lab, once every swarmd is stopped (a running one would replace the
  // containers removed under it, and the new ones would outlive the lab).
  for (const h of lab.hosts) await h.processes.get('swarmd')?.kill9();
  for (const h of lab.hosts) await h.deleteContainers(runtime);
  await lab.destroy();
  removeRuntimeCgroupParents();
  console.log(`lab ${lab.id} removed`);
}
