// swarmd init makes a one-manager cluster; swarmctl drives it over the local socket: create, list,
// inspect, remove; bad input gets one line naming the flag or field and a non-zero exit; a
// restarted manager keeps its objects.
import { freePort } from './util/net.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceSpec } from '../proto/gen/tswarm/specs.js';
import { dist } from './util/dist.js';
import { NO_REGISTRY } from './registry/registry.js';

const swarmd = dist('cli/swarmd.js');
const swarmctl = dist('cli/swarmctl.js');


describe('swarmd init and swarmctl', () => {
  let dir = '';
  let daemon: ChildProcess | undefined;
  let port = 0;
  const sock = (): string => join(dir, 'swarmd.sock');

  const ctl = (...args: string[]) => {
    const r = spawnSync(process.execPath, [swarmctl, '--socket', sock(), ...args], { encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  async function startDaemon(args: string[]): Promise<void> {
    daemon = spawn(process.execPath, [swarmd, ...args, '--default-registry', NO_REGISTRY, '--data-dir', join(dir, 'data'), '--socket', sock()], { stdio: 'ignore' });
    // Up once a leader-only call is answered (`version` is answered by any swarmd, leading or not).
    for (let i = 0; i < 200; i++) {
      if (ctl('node', 'ls').code === 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('swarmd did not come up');
  }

  async function stopDaemon(): Promise<void> {
    if (!daemon || daemon.exitCode !== null) return;
    const exited = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    await exited;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'swarmctl-'));
    port = await freePort();
    await startDaemon(['init', '--advertise-addr', `127.0.0.1:${port}`]);
  });

  afterAll(async () => {
    await stopDaemon();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates, lists, inspects and removes services by name or id', () => {
    const created = ctl('service', 'create', '--detach', '--name', 'web', '--image', 'busybox', '--replicas', '3');
    expect(created.code).toBe(0);
    const id = created.out.trim();
    expect(id).toMatch(/^[0-9a-z]{25}$/);
    expect(ctl('service', 'ls', '-q').out).toBe(`${id}\n`);
    expect(ctl('service', 'ls').out).toMatch(new RegExp(`^ID\\s+NAME\\s+MODE\\s+REPLICAS\\s+IMAGE\\n${id}\\s+web\\s+replicated\\s+3\\s+busybox\\n$`));
    const inspected = JSON.parse(ctl('service', 'inspect', id.slice(0, 8)).out) as { spec: { annotations: { name: string } } };
    expect(inspected.spec.annotations.name).toBe('web');
    expect(JSON.parse(ctl('service', 'ls', '--format', 'json').out)).toHaveLength(1);
    expect(ctl('service', 'rm', 'web')).toMatchObject({ code: 0, out: 'web\n' });
    expect(ctl('service', 'ls', '-q').out).toBe('');
  });

  it('refuses bad input with one line naming the flag or field, and exit code 1 or 2', () => {
    expect(ctl('service', 'create', '--detach', '--name', 'x', '--image', 'busybox', '--replicas', '-2')).toMatchObject({ code: 2, err: 'swarmctl: --replicas: "-2" must be a whole number, 0 or more\n' });
    expect(ctl('service', 'create', '--detach', '--name', 'x', '--image', 'busybox', '--constraint', 'node.role=manager').err).toMatch(/^swarmctl: spec\.task\.placement\.constraints\[0\]: "node\.role=manager" is not a constraint/);
    expect(ctl('service', 'create', '--detach', '--image', 'busybox')).toMatchObject({ code: 2 });
    ctl('service', 'create', '--detach', '--name', 'dup', '--image', 'busybox');
    expect(ctl('service', 'create', '--detach', '--name', 'dup', '--image', 'busybox')).toMatchObject({ code: 1, err: 'swarmctl: service name "dup" is already in use\n' });
    expect(ctl('service', 'inspect', 'nope')).toMatchObject({ code: 1, err: 'swarmctl: service nope not found\n' });
    expect(ctl('network', 'create', 'n1', '--subnet', '10.0.0.1/24').err).toMatch(/^swarmctl: spec\.ipam\[0\]\.subnet: host bits must be zero: 10\.0\.0\.1\/24 \(did you mean 10\.0\.0\.0\/24\?\)/);
  });

  it('shows and rotates join tokens; never shows the root key', () => {
    const t1 = ctl('cluster', 'join-token', 'worker', '-q').out.trim();
    expect(t1).toMatch(/^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
    expect(ctl('cluster', 'join-token', 'worker').out).toMatch(new RegExp(`swarmd join --token ${t1} --advertise-addr <ITS-ADDRESS> [0-9.]+:[0-9]+\\n`));
    const t2 = ctl('cluster', 'join-token', 'worker', '--rotate', '-q').out.trim();
    expect(t2).not.toBe(t1);
    expect(t2.slice(0, 60)).toBe(t1.slice(0, 60)); // same root digest, new secret
    expect(ctl('cluster', 'join-token', 'manager', '-q').out.trim()).not.toBe(t2);
    const cluster = JSON.parse(ctl('cluster', 'inspect').out) as { rootCa: { caKey: string; caCert: string } };
    expect(cluster.rootCa.caKey).toBe('<0 bytes>');
    expect(ctl('cluster', 'join-token', 'boss').code).toBe(2);
  });

  it('changes cluster settings, naming the flag or field that is wrong', () => {
    expect(ctl('cluster', 'update', '--task-history-limit', '7', '--heartbeat-period', '2s', '--cert-expiry', '720h').code).toBe(0);
    const spec = (JSON.parse(ctl('cluster', 'inspect').out) as { spec: { taskHistoryRetentionLimit: number; heartbeatPeriodMs: number; nodeCertExpiryMs: number } }).spec;
    expect(spec).toMatchObject({ taskHistoryRetentionLimit: 7, heartbeatPeriodMs: 2000, nodeCertExpiryMs: 720 * 3_600_000 });
    expect(ctl('cluster', 'update', '--heartbeat-period', 'soon').err).toBe('swarmctl: --heartbeat-period: "soon" is not a duration (e.g. 500ms, 5s, 2m, 2160h)\n');
    expect(ctl('cluster', 'update', '--cert-expiry', '10m').err).toBe('swarmctl: spec.nodeCertExpiryMs: is at least one hour\n');
  });

  it('scales, updates and rolls back a service; lists its tasks', () => {
    ctl('service', 'create', '--detach', '--name', 'app', '--image', 'busybox:1', '--replicas', '2');
    expect(ctl('service', 'scale', '--detach', 'app=5')).toMatchObject({ code: 0, out: 'app scaled to 5\n' });
    expect(ctl('service', 'update', '--detach', 'app', '--image', 'busybox:2', '--env-add', 'A=1').code).toBe(0);
    let svc = JSON.parse(ctl('service', 'inspect', 'app').out) as { specVersion: number; spec: { task: { container: { image: string; env: string[] } }; mode: { replicated: { replicas: number } } } };
    expect(svc.specVersion).toBe(3);
    expect(svc.spec.task.container).toMatchObject({ image: 'busybox:2', env: ['A=1'] });
    expect(ctl('service', 'update', '--detach', 'app', '--rollback').code).toBe(0);
    svc = JSON.parse(ctl('service', 'inspect', 'app').out) as typeof svc;
    expect(svc.spec.task.container.image).toBe('busybox:1');
    expect(svc.spec.mode.replicated.replicas).toBe(5);
    expect(ctl('service', 'scale', '--detach', 'app=x')).toMatchObject({ code: 2, err: 'swarmctl: scale: "app=x" must be SERVICE=REPLICAS, with REPLICAS a whole number\n' });
    ctl('service', 'create', '--detach', '--name', 'everywhere', '--image', 'busybox', '--mode', 'global');
    expect(ctl('service', 'scale', '--detach', 'everywhere=3').err).toMatch(/service everywhere is global; only replicated services and jobs take a replica count/);
    // Without --detach it waits for convergence, showing why tasks fail, and gives up after --timeout.
    const waited = ctl('service', 'create', '--name', 'never', '--image', 'busybox', '--timeout', '3');
    expect(waited.code).toBe(1);
    expect(waited.out).toMatch(/slot 1: (rejected \(.*127\.0\.0\.1:9.*\)|new|pending|assigned|accepted|preparing)/);
    // The manager could not pin the image (its registry does not answer): a warning, and the service made.
    expect(waited.err).toMatch(/^swarmctl: warning: image busybox could not be accessed on a registry to record its digest\. Each node will access busybox independently, .*\(registry 127\.0\.0\.1:9, .*\)\n/);
    expect(waited.err).toMatch(/\nswarmctl: service never did not converge within 3 s: 0 of 1 running \(swarmctl service ps never\)\n$/);
    // The orchestrator made the tasks; this node's default registry does not answer, so they are refused.
    const ps = ctl('service', 'ps', 'app').out;
    expect(ps).toMatch(/^ID\s+SERVICE\s+SLOT\s+NODE\s+DESIRED\s+CURRENT\s+MESSAGE\n/);
    expect(ps).toMatch(/\bapp\s+1\s/);
  });

  it("round-trips Docker's service flags into service inspect, and changes only what update names", () => {
    const input = (args: string[], data: string) => spawnSync(process.execPath, [swarmctl, '--socket', sock(), ...args], { input: data, encoding: 'utf8' }).status;
    expect(input(['secret', 'create', 'tls-key', '-'], 'k3y')).toBe(0);
    expect(input(['config', 'create', 'site.conf', '-'], 'listen 80')).toBe(0);
    const created = ctl(
      'service', 'create', '--detach', '--name', 'full', '--image', 'busybox:1', '--resolve-image', 'never', '--replicas', '2', '-e', 'A=1', '--label', 'tier=web', '--container-label', 'c=1',
      '--constraint', 'node.role==manager', '--placement-pref', 'spread=node.labels.zone', '--replicas-max-per-node', '3',
      '--reserve-cpu', '0.5', '--reserve-memory', '64M', '--limit-cpu', '1', '--limit-memory', '128M', '--limit-pids', '50',
      '--restart-condition', 'on-failure', '--restart-delay', '2s', '--restart-max-attempts', '4', '--restart-window', '1m',
      '--update-parallelism', '2', '--update-delay', '3s', '--update-failure-action', 'rollback', '--update-monitor', '10s', '--update-max-failure-ratio', '0.5', '--update-order', 'start-first',
      '--rollback-parallelism', '0', '--rollback-failure-action', 'continue',
      '--mount', 'type=tmpfs,target=/cache,tmpfs-size=16m', '--mount', 'type=volume,source=data,target=/data,readonly',
      '--secret', 'source=tls-key,target=key.pem,mode=0400', '--config', 'site.conf', '-p', 'published=8080,target=80,mode=host',
      '--hostname', 'web', '-u', 'nobody', '-w', '/srv', '--entrypoint', '/bin/sh -c', '--stop-grace-period', '30s', '--stop-signal', 'SIGQUIT',
      '--init', '--read-only', '--cap-add', 'NET_ADMIN', '--cap-drop', 'MKNOD', '--ulimit', 'nofile=1024:2048', '--health-cmd', 'true', '--health-interval', '5s',
      '--', 'sleep 600',
    );
    expect(created).toMatchObject({ code: 0, err: '' });
    type Svc = { specVersion: number; spec: ServiceSpec }; // inspect prints the spec as ts-proto's JSON (enums by name)
    let svc = JSON.parse(ctl('service', 'inspect', 'full').out) as Svc;
    const task = svc.spec.task!;
    expect(svc.spec.annotations!.labels).toEqual({ tier: 'web' });
    expect(svc.spec.mode).toEqual({ $case: 'replicated', replicated: { replicas: 2 } });
    expect(task.container).toMatchObject({
      image: 'busybox:1', env: ['A=1'], labels: { c: '1' }, command: ['/bin/sh', '-c'], args: ['sleep 600'], hostname: 'web', user: 'nobody', dir: '/srv',
      stopGracePeriodMs: 30_000, stopSignal: 'SIGQUIT', init: true, readOnly: true, capabilityAdd: ['CAP_NET_ADMIN'], capabilityDrop: ['CAP_MKNOD'],
      ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }],
      healthcheck: { test: ['CMD-SHELL', 'true'], intervalMs: 5000 },
      mounts: [
        { type: 'TYPE_TMPFS', source: '', target: '/cache', readOnly: false, tmpfsSizeBytes: 16 << 20 },
        { type: 'TYPE_VOLUME', source: 'data', target: '/data', readOnly: true },
      ],
    });
    expect(task.container!.secrets).toEqual([{ secretId: expect.stringMatching(/^[0-9a-z]{25}$/) as string, secretName: 'tls-key', file: { name: 'key.pem', uid: 0, gid: 0, mode: 0o400 } }]);
    expect(task.container!.configs).toEqual([{ configId: expect.stringMatching(/^[0-9a-z]{25}$/) as string, configName: 'site.conf', file: { name: '/site.conf', uid: 0, gid: 0, mode: 0o444 } }]);
    expect(task.resources).toEqual({ limits: { nanoCpus: 1e9, memoryBytes: 128 << 20, pids: 50 }, reservations: { nanoCpus: 5e8, memoryBytes: 64 << 20, pids: 0 } });
    expect(task.restart).toEqual({ condition: 'CONDITION_ON_FAILURE', delayMs: 2000, maxAttempts: 4, windowMs: 60_000 });
    expect(task.placement).toEqual({ constraints: ['node.role==manager'], preferences: [{ spreadDescriptor: 'node.labels.zone' }], platforms: [], maxReplicasPerNode: 3 });
    expect(svc.spec.update).toEqual({ parallelism: 2, delayMs: 3000, failureAction: 'FAILURE_ACTION_ROLLBACK', monitorMs: 10_000, maxFailureRatio: 0.5, order: 'ORDER_START_FIRST' });
    expect(svc.spec.rollback).toEqual({ parallelism: 0, delayMs: 0, failureAction: 'FAILURE_ACTION_CONTINUE', monitorMs: 5000, maxFailureRatio: 0, order: 'ORDER_STOP_FIRST' });
    expect(svc.spec.endpoint!.ports).toEqual([{ name: '', protocol: 'PROTOCOL_TCP', targetPort: 80, publishedPort: 8080, publishMode: 'PUBLISH_MODE_HOST' }]);

    const before = svc.spec;
    const updated = ctl(
      'service', 'update', '--detach', 'full', '--env-add', 'B=2', '--env-rm', 'A', '--constraint-rm', 'node.role==manager', '--constraint-add', 'node.labels.ssd==true',
      '--mount-rm', '/cache', '--secret-rm', 'tls-key', '--publish-add', 'published=9090,target=90,protocol=udp,mode=host', '--publish-rm', '80',
      '--limit-memory', '256M', '--update-parallelism', '1', '--restart-condition', 'any', '--force',
    );
    expect(updated).toMatchObject({ code: 0, out: 'full\n' });
    svc = JSON.parse(ctl('service', 'inspect', 'full').out) as Svc;
    expect(svc.specVersion).toBe(2);
    const after = svc.spec;
    const [c0, c1] = [before.task!.container!, after.task!.container!];
    expect(c1.env).toEqual(['B=2']);
    expect(after.task!.placement!.constraints).toEqual(['node.labels.ssd==true']);
    expect(c1.mounts.map((m) => m.target)).toEqual(['/data']);
    expect(c1.secrets).toEqual([]);
    expect(after.endpoint!.ports).toEqual([{ name: '', protocol: 'PROTOCOL_UDP', targetPort: 90, publishedPort: 9090, publishMode: 'PUBLISH_MODE_HOST' }]);
    expect(after.task!.resources!.limits!.memoryBytes).toBe(256 << 20);
    expect(after.update!.parallelism).toBe(1);
    expect(after.task!.restart!.condition).toBe('CONDITION_ANY');
    expect(after.task!.forceUpdate).toBe(1);
    // Everything no flag named is as it was.
    for (const k of ['annotations', 'mode', 'rollback'] as const) expect(after[k]).toEqual(before[k]);
    for (const k of ['image', 'args', 'command', 'configs', 'ulimits', 'capabilityAdd', 'healthcheck', 'user', 'stopSignal', 'labels'] as const) expect(c1[k]).toEqual(c0[k]);
    expect({ ...after.update, parallelism: 2 }).toEqual(before.update);

    // Bad values: one line naming the flag (usage, exit 2) or the spec field (the server's rule, exit 1).
    expect(ctl('service', 'create', '--detach', '--name', 'y', '--image', 'busybox', '--limit-memory', 'lots')).toMatchObject({ code: 2, err: 'swarmctl: --limit-memory: "lots" must be a size in bytes, e.g. 512k, 64M, 1G\n' });
    expect(ctl('service', 'create', '--detach', '--name', 'y', '--image', 'busybox', '-p', '8080:80/sctp')).toMatchObject({ code: 1, err: 'swarmctl: spec.endpoint.ports[0].protocol: sctp is not forwarded by the routing mesh; publish it in host mode\n' });
    expect(ctl('service', 'create', '--detach', '--name', 'y', '--image', 'busybox', '-p', 'x:80')).toMatchObject({ code: 2 });
    expect(ctl('service', 'create', '--detach', '--name', 'y', '--image', 'busybox', '--mode', 'daemon')).toMatchObject({ code: 2, err: 'swarmctl: --mode: "daemon" must be one of replicated, global, replicated-job, global-job\n' });
    expect(ctl('service', 'create', '--detach', '--name', 'y', '--image', 'busybox', '--reserve-memory', '128M', '--limit-memory', '64M'))
      .toMatchObject({ code: 1, err: 'swarmctl: spec.task.resources.reservations.memoryBytes: must not exceed the memory limit\n' });
    expect(ctl('service', 'create', '--detach', '--name', 'y', '--image', 'busybox', '--limit-memory', '1k')).toMatchObject({ code: 1, err: 'swarmctl: spec.task.resources.limits.memoryBytes: 1024 is below the minimum of 4 MiB\n' });
    expect(ctl('service', 'update', '--detach', 'full', '--rollback', '--image', 'busybox:2')).toMatchObject({ code: 2, err: 'swarmctl: --rollback: goes back to the previous spec and cannot be combined with --image\n' });
    expect(ctl('service', 'update', '--detach', 'full', '--mount-rm', '/nope')).toMatchObject({ code: 2, err: 'swarmctl: --mount-rm: service full has no mount at "/nope"\n' });
    expect(ctl('service', 'update', '--detach', 'full', '--secret-add', 'nope')).toMatchObject({ code: 1, err: 'swarmctl: secret nope not found\n' });
    expect((JSON.parse(ctl('service', 'inspect', 'full').out) as Svc).specVersion).toBe(2);

    // A replicated job: --replicas counts completions.
    expect(ctl('service', 'create', '--detach', '--name', 'batch', '--image', 'busybox', '--mode', 'replicated-job', '--replicas', '6', '--max-concurrent', '2', '--no-healthcheck').code).toBe(0);
    const batch = (JSON.parse(ctl('service', 'inspect', 'batch').out) as Svc).spec;
    expect(batch.mode).toEqual({ $case: 'replicatedJob', replicatedJob: { maxConcurrent: 2, totalCompletions: 6 } });
    expect(batch.task!.container!.healthcheck!.test).toEqual(['NONE']);
    expect(ctl('service', 'rm', 'full', 'batch').code).toBe(0);
    expect(ctl('secret', 'rm', 'tls-key').code).toBe(0);
    expect(ctl('config', 'rm', 'site.conf').code).toBe(0);
  });

  it('updates a node and manages configs', () => {
    const nodeId = ctl('node', 'ls', '-q').out.trim();
    expect(ctl('node', 'update', nodeId.slice(0, 6), '--label-add', 'zone=a', '--availability', 'drain').code).toBe(0);
    const node = JSON.parse(ctl('node', 'inspect', nodeId).out) as { spec: { availability: string; annotations: { labels: Record<string, string> } } };
    expect(node.spec).toMatchObject({ availability: 'NODE_AVAILABILITY_DRAIN', annotations: { labels: { zone: 'a' } } });
    expect(ctl('node', 'update', nodeId, '--label-rm', 'nope').err).toMatch(/--label-rm: node .* has no label "nope"/);
    expect(ctl('node', 'update', nodeId, '--availability', 'active').code).toBe(0);
    const cfg = spawnSync(process.execPath, [swarmctl, '--socket', sock(), 'config', 'create', 'app.conf', '-'], { input: 'port=80', encoding: 'utf8' });
    expect(cfg.status).toBe(0);
    expect(ctl('config', 'ls').out).toMatch(/app\.conf\n$/);
    expect(ctl('config', 'rm', 'app.conf').code).toBe(0);
  });

  it('refuses an init whose address is taken, leaving the data directory as it was', () => {
    const other = join(dir, 'other');
    const r = spawnSync(process.execPath, [swarmd, 'init', '--advertise-addr', `127.0.0.1:${port}`, '--data-dir', other, '--socket', join(dir, 'other.sock')], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`--listen-addr 127.0.0.1:${port}: cannot listen there (EADDRINUSE)`);
    expect(readdirSync(other).sort()).toEqual(['node-id']);
  });

  it('lists the manager itself as a ready node, and keeps objects across a restart', async () => {
    expect(ctl('node', 'ls').out).toMatch(/ready\s+active\s+manager\s+leader\n$/);
    const secret = spawnSync(process.execPath, [swarmctl, '--socket', sock(), 'secret', 'create', 'db', '-'], { input: 's3cr3t', encoding: 'utf8' });
    expect(secret.status).toBe(0);
    await stopDaemon();
    await startDaemon([]);
    const ls = ctl('secret', 'ls');
    expect(ls.err).toBe('');
    expect(ls.out).toMatch(/\s+db\n$/);
    expect(ctl('service', 'ls', '-q').out.trim().split('\n')).toHaveLength(4); // dup, app, everywhere, never
    expect(ctl('version').out).toMatch(/Role\s+manager/);
  });
});
