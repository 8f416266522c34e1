// Private registries and image pinning in a lab cluster (a drained manager m1, workers w1 and w2;
// test/lab/cluster.ts), all real: Debian's docker-registry on m1 with htpasswd auth (bcrypt, as
// it wants), swarmctl reading a config.json the test writes into a DOCKER_CONFIG directory, real
// containers.
// - Without credentials a service's task is REJECTED with the registry's reason (and the manager
//   warns that it could not pin the image); with --with-registry-auth the task runs, the
//   credential is in no `service inspect` output, in clear in no Raft file, log or worker state, and
//   only the node that runs the service's tasks is given it (and gives it back when they stop).
// - Pinning: a service created while repo:t is image A shows repo:t@sha256:A and keeps running A
//   after B is pushed as repo:t (new tasks of a scale run A); a service created with
//   --resolve-image never runs B in a task started after the push, on a node that had pulled A
//   before (a tag is resolved again at every start).
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRunning, LabCluster, RUNTIME, until, type TaskJson } from './lab/cluster.js';
import { HOST_STATE_MOUNT, type ExecResult } from './lab/lab.js';
import { BUSYBOX_LAYOUT, buildImage, makeLayer, readLayout, writeLayout } from './registry/image.js';
import { htpasswdFile, REGISTRY_BINARY, registryConfig } from './registry/registry.js';
import { dist } from './util/dist.js';

const USER = 'alice';
const PASSWORD = 'wonderland-registry-password';
const BASIC = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');

describe('private registry credentials and image pinning (lab)', () => {
  let c: LabCluster;
  let registry = ''; // host:port of the registry with auth, on m1
  let image = ''; // REGISTRY/private/app:t
  const digests: Record<'A' | 'B', string> = { A: '', B: '' };

  /** swarmctl on m1 with the test's DOCKER_CONFIG directory (`creds` or `empty`). */
  const ctl = (config: 'creds' | 'empty', ...args: string[]): Promise<ExecResult> =>
    c.host('m1').exec(process.execPath, [dist('cli/swarmctl.js'), ...args], { env: { DOCKER_CONFIG: `${HOST_STATE_MOUNT}/docker-${config}` }, timeoutMs: 120_000 });
  const ok = async (config: 'creds' | 'empty', ...args: string[]): Promise<ExecResult> => {
    const r = await ctl(config, ...args);
    if (r.code !== 0) throw new Error(`swarmctl ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
    return r;
  };

  /** Pushes image A or B (busybox plus /etc/which holding its letter) as private/app:t. */
  async function push(which: 'A' | 'B'): Promise<void> {
    const args = [dist('scripts/push-image.js'), '--user', `${USER}:${PASSWORD}`, `${HOST_STATE_MOUNT}/layout-${which}`, `http://${registry}`, 'private/app:t'];
    const out = await until(`image ${which} pushed`, async () => {
      const r = await c.host('m1').exec(process.execPath, args);
      return r.code === 0 ? r.stdout : undefined;
    }, 30_000);
    digests[which] = out.trim().split(' ')[1]!;
  }

  /** What /etc/which says in a task's container (A or B). */
  async function letterIn(t: TaskJson): Promise<string> {
    const on = (await c.hostOf(t.nodeId))!;
    const r = await c.host(on).exec(RUNTIME, ['exec', t.id, 'cat', '/etc/which']);
    if (r.code !== 0) throw new Error(`exec in ${t.id} on ${on} failed: ${r.stderr}`);
    return r.stdout.trim();
  }

  beforeAll(async () => {
    c = await LabCluster.create({ managers: 1, workers: 2, heartbeatPeriod: '1s' });
    const m1 = c.host('m1');
    registry = `${m1.address}:5001`;
    image = `${registry}/private/app:t`;
    writeFileSync(join(m1.stateDir, 'htpasswd'), htpasswdFile({ [USER]: PASSWORD }));
    writeFileSync(join(m1.stateDir, 'registry-auth.yml'), registryConfig(`${HOST_STATE_MOUNT}/registry-auth`, registry, { htpasswd: { path: `${HOST_STATE_MOUNT}/htpasswd` } }));
    m1.start('registry-auth', REGISTRY_BINARY, ['serve', `${HOST_STATE_MOUNT}/registry-auth.yml`]);
    const base = readLayout(BUSYBOX_LAYOUT).layers[0]!;
    for (const which of ['A', 'B'] as const) {
      const mark = makeLayer([{ type: 'directory', path: 'etc/' }, { type: 'file', path: 'etc/which', content: Buffer.from(`${which}\n`) }]);
      writeLayout(join(m1.stateDir, `layout-${which}`), buildImage([base, mark]), 't');
    }
    // The client's Docker configuration as `docker login` writes it; and one without the registry.
    for (const [name, auths] of [['creds', { [registry]: { auth: BASIC } }], ['empty', {}]] as const) {
      mkdirSync(join(m1.stateDir, `docker-${name}`));
      writeFileSync(join(m1.stateDir, `docker-${name}`, 'config.json'), JSON.stringify({ auths }));
    }
    await push('A');
  }, 240_000);

  afterAll(async () => {
    await c?.destroy();
  }, 120_000);

  it("rejects a task pulled without credentials with the registry's reason, and warns that the image could not be pinned", async () => {
    const r = await ok('empty', 'service', 'create', '--detach', '--name', 'nocred', '--image', image, '--', 'sleep', '600');
    expect(r.stderr).toContain(`swarmctl: warning: image ${image} could not be accessed on a registry to record its digest.`);
    expect(r.stderr).toContain('unauthorized: authentication required (HTTP 401)');
    const rejected = await until('a rejected task', async () => (await c.tasks('nocred')).find((t) => t.status?.state === 'TASK_STATE_REJECTED'), 60_000, () => c.lastSeen);
    expect(rejected.status?.err).toBe(`registry ${registry}, repository private/app, t: GET failed: unauthorized: authentication required (HTTP 401)`);
    // Asking for credentials with none in the configuration: one clear error, bad usage.
    const none = await ctl('empty', 'service', 'update', '--detach', 'nocred', '--with-registry-auth');
    expect(none.code).toBe(2);
    expect(none.stderr).toBe(`swarmctl: --with-registry-auth: ${HOST_STATE_MOUNT}/docker-empty/config.json: has no credential for ${registry} (auths["${registry}"]); log in first: docker login ${registry}\n`);
    await ok('empty', 'service', 'rm', 'nocred');
  }, 120_000);

  it('runs with --with-registry-auth; the credential is shown nowhere, sealed in the Raft files, and only on the node that runs the tasks', async () => {
    const created = await ok('creds', 'service', 'create', '--name', 'pinned', '--image', image, '--with-registry-auth', '--constraint', 'node.hostname==w1', '--timeout', '90', '--', 'sleep', '600');
    expect(created.stderr).toBe(''); // pinned: no warning
    const [t] = await c.converged('pinned', 1);
    expect(await c.hostOf(t!.nodeId)).toBe('w1');
    expect(await letterIn(t!)).toBe('A');

    // Pinned at create, as Docker does: the tag and the digest the registry had.
    const inspect = (await ok('creds', 'service', 'inspect', 'pinned')).stdout;
    const svc = JSON.parse(inspect) as { id: string; registryAuth: string; spec: { task: { container: { image: string } } } };
    expect(svc.spec.task.container.image).toBe(`${image}@${digests.A}`);
    // Never returned; never in clear in the Raft log or snapshots, nor in any worker's state.
    expect(svc.registryAuth).toBe('<0 bytes>');
    for (const secret of [PASSWORD, BASIC]) {
      expect(inspect).not.toContain(secret);
      expect((await ok('creds', 'service', 'ls', '--format', 'json')).stdout).not.toContain(secret);
      // On the manager, only the client's own config.json has it (base64, as docker login writes it).
      const onManager = await c.host('m1').exec('sh', ['-c', `grep -rl -- '${secret}' ${HOST_STATE_MOUNT} /run 2>/dev/null || true`]);
      expect(onManager.stdout.trim().split('\n').filter((f) => f && f !== `${HOST_STATE_MOUNT}/docker-creds/config.json`), `${secret} on m1 (Raft log and snapshots, logs)`).toEqual([]);
      if (secret === BASIC) expect(onManager.stdout).toContain('docker-creds/config.json'); // the search does find what is there
      for (const w of ['w1', 'w2']) {
        const found = await c.host(w).exec('sh', ['-c', `grep -rl -- '${secret}' ${HOST_STATE_MOUNT} /run 2>/dev/null || true`]);
        expect(found.stdout.trim(), `${secret} on ${w}`).toBe('');
      }
    }
    const raftFiles = await c.host('m1').exec('sh', ['-c', `find ${HOST_STATE_MOUNT}/raft -type f | wc -l`]);
    expect(Number(raftFiles.stdout.trim())).toBeGreaterThan(0);
    // Given to the node with the service's task, not to the other one.
    const received = (host: string): boolean => c.swarmds.get(host)!.log().split('\n').some((l) => l.includes('agent: registry credential received') && l.includes(svc.id));
    expect(received('w1')).toBe(true);
    expect(received('w2')).toBe(false);
  }, 180_000);

  it('pins: after B is pushed as repo:t, new tasks of a pinned service run A, and a task of a --resolve-image never service started after the push runs B', async () => {
    // Unpinned, on the node that pulled A already; it runs A now.
    const floating = await ok('creds', 'service', 'create', '--name', 'floating', '--image', image, '--with-registry-auth', '--resolve-image', 'never', '--constraint', 'node.hostname==w1', '--timeout', '90', '--', 'sleep', '600');
    expect(floating.stderr).toBe('');
    const [f1] = await c.converged('floating', 1);
    expect(f1!.spec?.container?.image).toBe(image);
    expect(await letterIn(f1!)).toBe('A');

    await push('B');
    expect(digests.B).not.toBe(digests.A);

    await ok('creds', 'service', 'scale', 'pinned=3', '--timeout', '90');
    const pinned = await c.converged('pinned', 3);
    for (const t of pinned) {
      expect(t.spec?.container?.image).toBe(`${image}@${digests.A}`);
      expect(await letterIn(t), `task ${t.id}`).toBe('A');
    }

    await ok('creds', 'service', 'scale', 'floating=2', '--timeout', '90');
    const tasks = await c.converged('floating', 2);
    const started = tasks.find((t) => t.id !== f1!.id)!;
    expect(await c.hostOf(started.nodeId)).toBe('w1');
    expect(await letterIn(started)).toBe('B');
    expect(await letterIn(tasks.find((t) => t.id === f1!.id)!)).toBe('A'); // the first keeps running what it started with
    expect(tasks.every(isRunning)).toBe(true);

    // No task of the services left running: the credential is given back.
    await ok('creds', 'service', 'rm', 'pinned');
    await ok('creds', 'service', 'rm', 'floating');
    await until('w1 to give the credentials back', () => Promise.resolve(c.swarmds.get('w1')!.log().split('\n').filter((l) => l.includes('agent: registry credential withdrawn')).length >= 2 ? true : undefined), 60_000);
  }, 300_000);
});
