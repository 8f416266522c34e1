// swarmd on lab hosts: each host keeps its own identity in its own state directory and serves its
// own control socket in its own /run; swarmctl reaches a daemon on another host over the underlay;
// the daemon's log lines carry the node id and component; a second swarmd on the same state
// directory is refused; a kill -9 and restart keeps the identity.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_STATE_MOUNT, Lab, type LabHost, type LabProcess } from './lab/lab.js';
import { dist } from './util/dist.js';

const swarmd = dist('cli/swarmd.js');
const swarmctl = dist('cli/swarmctl.js');

interface VersionJson {
  client: { version: string };
  server?: { nodeId: string; hostname: string; listenAddrs: string[] };
}

async function version(from: LabHost, args: string[] = []): Promise<VersionJson> {
  const r = await from.exec(process.execPath, [swarmctl, ...args, 'version', '--format', 'json']);
  if (r.code !== 0) throw new Error(`swarmctl on ${from.name} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as VersionJson;
}

describe('swarmd on the lab', () => {
  let lab: Lab;
  const daemons = new Map<string, LabProcess>();

  beforeAll(async () => {
    lab = await Lab.create({ hosts: ['m1', 'w1'] });
    for (const h of lab.hosts) {
      const p = h.start('swarmd', process.execPath, [swarmd, '--listen-addr', `${h.address}:4242`]);
      daemons.set(h.name, p);
    }
    await Promise.all([...daemons.values()].map((p) => p.waitForLog(/swarmd started/)));
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it('keeps each node id in the host state directory and serves it on the host socket', async () => {
    for (const h of lab.hosts) {
      const id = readFileSync(join(h.stateDir, 'node-id'), 'utf8').trim();
      const v = await version(h);
      expect(v.server).toMatchObject({ nodeId: id, hostname: h.name });
      expect(v.server?.listenAddrs).toEqual(['unix:/run/tswarm/swarmd.sock', `${h.address}:4242`]);
    }
    const [a, b] = lab.hosts.map((h) => readFileSync(join(h.stateDir, 'node-id'), 'utf8'));
    expect(a).not.toBe(b);
    expect(HOST_STATE_MOUNT).toBe('/var/lib/tswarm');
  });

  it('answers swarmctl from another host over the underlay', async () => {
    const [m1, w1] = [lab.host('m1'), lab.host('w1')];
    const v = await version(w1, ['--host', `${m1.address}:4242`]);
    expect(v.server?.hostname).toBe('m1');
  });

  it('logs JSON lines that carry the node id and the component', () => {
    const p = daemons.get('m1')!;
    const id = readFileSync(join(lab.host('m1').stateDir, 'node-id'), 'utf8').trim();
    const lines = p
      .log()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatchObject({ node: id, component: 'swarmd' });
  });

  it('refuses a second swarmd on the same data directory, naming the one that holds it', async () => {
    const h = lab.host('m1');
    const r = await h.exec(process.execPath, [swarmd, '--socket', '/run/tswarm/second.sock'], { timeoutMs: 20_000 });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`${HOST_STATE_MOUNT} is in use by another swarmd \\(pid \\d+\\); stop it first`));
    // The first one serves on, untouched.
    expect((await version(h)).server?.hostname).toBe('m1');
  });

  it('keeps its identity across kill -9 and restart (no stale lock is left)', async () => {
    const h = lab.host('w1');
    const before = (await version(h)).server?.nodeId;
    const p = daemons.get('w1')!;
    await p.kill9();
    const r = await h.exec(process.execPath, [swarmctl, 'version']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot reach swarmd at unix:/run/tswarm/swarmd.sock: connection refused');
    await p.restart();
    await p.waitForLog(/swarmd started[\s\S]*swarmd started/);
    expect((await version(h)).server?.nodeId).toBe(before);
  });
});
