// Overlay networks end to end on a lab cluster (one manager, drained; two workers): real
// containers on two hosts reach each other by their overlay addresses over VXLAN, with the MTU of
// the underlay less 50; an internal network has no way out, a normal one leaves through the
// node's bridge; a container on two networks has both; a task moved to another host is reachable
// there and its old entries are gone everywhere; a network's last task leaving a host takes the
// host's sandbox with it. Packets never leave the lab: the only outside address used is a lab
// host's underlay address.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabCluster, RUNTIME, until, type TaskJson } from './lab/cluster.js';

interface NetworkJson {
  id: string;
  vni: number;
  ipam: { subnet: string; gateway: string }[];
}

/** A task as `service ps --format json` prints it, with its attachments. */
type Attached = TaskJson & { networks?: { networkId: string; addresses: string[] }[] };

describe('overlay networks across lab hosts', () => {
  let c: LabCluster;
  let front: NetworkJson;
  let back: NetworkJson;

  const hostOf = async (t: TaskJson): Promise<string> => (await c.hostOf(t.nodeId))!;
  /** Runs a shell command in a task's container, on its host. */
  const inside = async (t: TaskJson, sh: string): Promise<{ code: number | null; stdout: string; stderr: string }> => c.host(await hostOf(t)).exec(RUNTIME, ['exec', t.id, 'sh', '-c', sh]);
  /** Runs a host program (e.g. iputils' ping, which busybox's lacks -M for) in a task's network namespace. */
  const inNetns = async (t: TaskJson, argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const host = c.host(await hostOf(t));
    const { pid } = JSON.parse((await host.exec(RUNTIME, ['state', t.id])).stdout) as { pid: number };
    return host.exec('nsenter', ['-t', String(pid), '-n', '--', ...argv]);
  };
  const addressOn = (t: Attached, net: NetworkJson): string => t.networks!.find((a) => a.networkId === net.id)!.addresses[0]!.split('/')[0]!;
  const running = async (service: string, n: number): Promise<Attached[]> => (await c.converged(service, n, 90_000));
  const sandboxes = async (host: string): Promise<string[]> => (await c.host(host).exec('sh', ['-c', 'ls /run/netns 2>/dev/null || true'])).stdout.split('\n').filter((n) => n.startsWith('tswov-'));

  beforeAll(async () => {
    c = await LabCluster.create({ managers: 1, workers: 2 });
    await c.ok('m1', 'network', 'create', '--driver', 'overlay', 'front');
    await c.ok('m1', 'network', 'create', '--internal', '--subnet', '10.99.0.0/24', 'back');
    front = JSON.parse(await c.ok('m1', 'network', 'inspect', 'front')) as NetworkJson;
    back = JSON.parse(await c.ok('m1', 'network', 'inspect', 'back')) as NetworkJson;
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  });

  it('allocates the subnets and VNIs the inspect shows, and refuses what is bad, naming the field', async () => {
    expect([front.ipam[0]?.subnet, front.ipam[0]?.gateway, front.vni]).toEqual(['10.0.0.0/24', '10.0.0.1', 4096]);
    expect([back.ipam[0]?.subnet, back.vni]).toEqual(['10.99.0.0/24', 4097]);
    for (const [args, rule] of [
      [['--subnet', '10.99.0.128/25', 'x'], /spec\.ipam\[0\]\.subnet: 10\.99\.0\.128\/25 overlaps network back's 10\.99\.0\.0\/24/],
      [['--subnet', '10.98.0.0/24', '--gateway', '10.97.0.1', 'x'], /spec\.ipam\[0\]\.gateway: 10\.97\.0\.1 is outside the subnet/],
      [['--opt', 'com.docker.network.driver.mtu=1200', 'x'], /spec\.mtu: 1200 must be between 1280/],
      [['--opt', 'encrypted', 'x'], /spec\.driverOptions\["encrypted"\]: encrypted overlays need IPsec/],
      [['--subnet', '10.77.0.0/16', 'x'], /overlaps 10\.77\.0\.0\/24, an address or route of node/],
    ] as const) {
      const r = await c.ctl('m1', 'network', 'create', ...args);
      expect(r.code, `${args.join(' ')}: ${r.stdout}`).not.toBe(0);
      expect(r.stderr).toMatch(rule);
    }
    // An MTU the managers accept but the nodes' underlay (1500) cannot carry: the task is
    // rejected by its node, naming the MTU.
    await c.ok('m1', 'network', 'create', '--opt', 'com.docker.network.driver.mtu=9000', 'jumbo');
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'big', '--image', c.image, '--constraint', 'node.role==worker', '--network', 'jumbo', '--restart-condition', 'none', '--', 'sleep', '600');
    const rejected = await until('the jumbo task rejected', async () => (await c.tasks('big')).find((t) => t.status?.state === 'TASK_STATE_REJECTED'), 40_000, () => c.lastSeen);
    expect(rejected.status?.err).toMatch(/mtu/);
    await c.ok('m1', 'service', 'rm', 'big');
    await until('jumbo free', async () => ((await c.ctl('m1', 'network', 'rm', 'jumbo')).code === 0 ? true : undefined), 30_000);
    const listed = JSON.parse(await c.ok('m1', 'network', 'ls', '--format', 'json')) as { spec: { annotations: { name: string } } }[];
    expect(listed.map((n) => n.spec.annotations.name)).toEqual(['front', 'back']);
  }, 120_000);

  it('connects tasks on two hosts by address (ICMP and TCP), at the underlay MTU less 50, with a way out; keeps the network while in use', async () => {
    await c.ok('m1', 'service', 'create', '--name', 'web', '--image', c.image, '--mode', 'global', '--constraint', 'node.role==worker', '--network', 'front', '--', 'sh', '-c', 'while true; do echo "hello from $(hostname)" | nc -l -p 7000; done');
    const [a, b] = await running('web', 2);
    expect(await hostOf(a!)).not.toBe(await hostOf(b!));
    const [addrA, addrB] = [addressOn(a!, front), addressOn(b!, front)];
    expect(addrA).toMatch(/^10\.0\.0\.\d+$/);
    // Reachable (bench/network.ts measures how soon after RUNNING).
    await until('ICMP over the overlay', async () => ((await inside(a!, `ping -c 1 -W 1 ${addrB}`)).code === 0 ? true : undefined), 10_000);
    const tcp = await until('TCP over the overlay', async () => {
      const r = await inside(a!, `nc -w 2 ${addrB} 7000`);
      return r.code === 0 && r.stdout.includes('hello from') ? r.stdout : undefined;
    }, 10_000);
    expect(tcp.trim()).toBe(`hello from ${b!.id.slice(0, 12)}`);
    // UDP too (busybox's nc has none: node's dgram, run in the two containers' network namespaces).
    const server = `const s = require('node:dgram').createSocket('udp4'); s.on('message', (m, r) => s.send('echo ' + m, r.port, r.address)); s.bind(7001, () => console.log('ready')); setTimeout(() => process.exit(0), 15000);`;
    const client = `const s = require('node:dgram').createSocket('udp4'); const t = setInterval(() => s.send('ping', 7001, '${addrB}'), 200); s.on('message', (m) => { console.log(String(m)); clearInterval(t); process.exit(0); }); setTimeout(() => process.exit(1), 10000);`;
    const hostB = c.host(await hostOf(b!));
    const pidB = (JSON.parse((await hostB.exec(RUNTIME, ['state', b!.id])).stdout) as { pid: number }).pid;
    const echo = hostB.start('udp-echo', 'nsenter', ['-t', String(pidB), '-n', '--', process.execPath, '-e', server]);
    try {
      await echo.waitForLog(/ready/, 10_000);
      const udp = await inNetns(a!, [process.execPath, '-e', client]);
      expect(udp.stdout.trim()).toBe('echo ping');
    } finally {
      await echo.kill9();
    }
    // The interface: the first network is eth0, at 1500 − 50; the bridge (eth1) gives the default route.
    const links = await inside(a!, 'cat /sys/class/net/eth0/mtu; ip -4 addr show eth0; ip route');
    expect(links.stdout).toMatch(/^1450\n/);
    expect(links.stdout).toContain(`inet ${addrA}/24`);
    expect(links.stdout).toMatch(/default via 172\.30\.0\.1 dev eth1/);
    // A packet of exactly the MTU with DF set passes; one byte more is refused with the MTU.
    const fits = await inNetns(a!, ['ping', '-c', '1', '-W', '2', '-M', 'do', '-s', String(1450 - 28), addrB]);
    expect(fits.code, fits.stdout + fits.stderr).toBe(0);
    const big = await inNetns(a!, ['ping', '-c', '1', '-W', '2', '-M', 'do', '-s', String(1450 - 27), addrB]);
    expect(big.code).not.toBe(0);
    expect(big.stdout + big.stderr).toMatch(/mtu ?= ?1450/);
    // The way out: a lab host's underlay address (masqueraded at the node).
    expect((await inside(a!, `ping -c 1 -W 2 ${c.addr('m1').split(':')[0]}`)).code).toBe(0);
    const rm = await c.ctl('m1', 'network', 'rm', 'front');
    expect(rm.stderr).toMatch(/front is in use by service web/);
  }, 150_000);

  it('shows each node\'s overlay path to the other in node inspect: reachable, and unreachable within 10 s of a cut, with the error', async () => {
    const pathTo = async (from: string, to: string): Promise<{ state: string; sinceUnixMs: number; lastError: string } | undefined> => {
      const node = JSON.parse(await c.ok('m1', 'node', 'inspect', from)) as { peerPaths?: { nodeId: string; networkId: string; state: string; sinceUnixMs: number; lastError: string }[] };
      const toId = (await c.nodes()).find((n) => n.description?.hostname === to)!.id;
      return node.peerPaths?.find((p) => p.nodeId === toId && p.networkId === front.id);
    };
    await until('w1 → w2 reachable', async () => ((await pathTo('w1', 'w2'))?.state === 'STATE_REACHABLE' ? true : undefined), 20_000);
    await until('w2 → w1 reachable', async () => ((await pathTo('w2', 'w1'))?.state === 'STATE_REACHABLE' ? true : undefined), 20_000);
    c.lab.cut('w1', 'w2');
    const cutAt = Date.now();
    try {
      const seen = await until('w1 → w2 unreachable', async () => {
        const p = await pathTo('w1', 'w2');
        return p?.state === 'STATE_UNREACHABLE' ? p : undefined;
      }, 10_000);
      expect(Date.now() - cutAt).toBeLessThan(10_000);
      expect(seen.lastError).toMatch(/no answer from 10\.0\.0\.\d+ within 1 s/);
      expect(seen.sinceUnixMs).toBeGreaterThanOrEqual(cutAt - 1000);
    } finally {
      c.lab.heal('w1', 'w2');
    }
    await until('w1 → w2 reachable again', async () => ((await pathTo('w1', 'w2'))?.state === 'STATE_REACHABLE' ? true : undefined), 20_000);
  }, 90_000);

  it('keeps a killed worker\'s containers connected, and reprograms what changed while it was down', async () => {
    const web = await running('web', 2);
    const onW2 = await until('web on w2', async () => {
      for (const t of web) if ((await hostOf(t)) === 'w2') return t;
      return undefined;
    });
    const onW1 = web.find((t) => t.id !== onW2.id)!;
    await c.kill9('w2');
    // Its container still answers over the overlay (the kernel's entries do not need swarmd).
    expect((await inside(onW1, `ping -c 1 -W 2 ${addressOn(onW2, front)}`)).code).toBe(0);
    // Meanwhile a new task on front lands on w1.
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'late', '--image', c.image, '--constraint', 'node.hostname==w1', '--network', 'front', '--', 'sleep', '600');
    const [late] = await running('late', 1);
    await c.restart('w2');
    // w2 learns the new peer from its new session, and its old container reaches it.
    await until('w2 reaches the task placed while it was down', async () => ((await inside(onW2, `ping -c 1 -W 1 ${addressOn(late!, front)}`)).code === 0 ? true : undefined), 30_000);
    await c.ok('m1', 'service', 'rm', 'late');
  }, 150_000);

  it('gives an internal network no way out, a container on two networks both, and keeps networks apart', async () => {
    await c.ok('m1', 'service', 'create', '--name', 'both', '--image', c.image, '--constraint', 'node.role==worker', '--network', 'back', '--network', 'front', '--', 'sleep', '600');
    await c.ok('m1', 'service', 'create', '--name', 'inner', '--image', c.image, '--stop-grace-period', '1s', '--constraint', 'node.role==worker', '--network', 'back', '--', 'sleep', '600');
    const [both] = await running('both', 1);
    const [inner] = await running('inner', 1);
    const web = await running('web', 2);
    const routes = await inside(both!, 'ip -4 addr show; ip route');
    expect(routes.stdout).toContain(`inet ${addressOn(both!, back)}/24`);
    expect(routes.stdout).toContain(`inet ${addressOn(both!, front)}/24`);
    expect(routes.stdout).not.toMatch(/default/); // its first network, back, is internal
    expect((await inside(both!, `ping -c 1 -W 2 ${addressOn(inner!, back)}`)).code).toBe(0);
    for (const w of web) expect((await inside(both!, `ping -c 1 -W 2 ${addressOn(w, front)}`)).code).toBe(0);
    // Attached to front too by an update: its new task has both, in the new order.
    await c.ok('m1', 'service', 'update', '--network-add', 'front', 'inner');
    const [inner2] = (await running('inner', 1)).filter((t) => t.id !== inner!.id);
    expect(inner2!.networks!.map((a) => a.networkId)).toEqual([back.id, front.id]);
    expect((await inside(inner2!, `ping -c 1 -W 2 ${addressOn(web[0]!, front)}`)).code).toBe(0);
    await c.ok('m1', 'service', 'update', '--network-rm', 'front', 'inner');
    // inner is on back only again: no way to front's tasks, none out.
    const [inner3] = await running('inner', 1);
    expect(inner3!.networks!.map((a) => a.networkId)).toEqual([back.id]);
    expect((await inside(inner3!, `ping -c 1 -W 1 ${addressOn(web[0]!, front)}`)).code).not.toBe(0);
    expect((await inside(inner3!, `ping -c 1 -W 1 ${c.addr('m1').split(':')[0]}`)).code).not.toBe(0);
  }, 150_000);

  it('reaches a task moved to another host at its new place, with its old entries gone everywhere; a host\'s last task of a network takes its sandbox', async () => {
    await c.ok('m1', 'service', 'rm', 'both', 'inner');
    await c.ok('m1', 'service', 'create', '--name', 'mover', '--image', c.image, '--stop-grace-period', '1s', '--constraint', 'node.role==worker', '--network', 'back', '--', 'sleep', '600');
    await c.ok('m1', 'service', 'create', '--name', 'anchor', '--image', c.image, '--constraint', 'node.role==worker', '--replicas-max-per-node', '1', '--replicas', '2', '--network', 'back', '--', 'sleep', '600');
    const [m] = await running('mover', 1);
    const from = await hostOf(m!);
    const to = from === 'w1' ? 'w2' : 'w1';
    await running('anchor', 2);
    const fromId = (await c.nodes()).find((n) => n.description?.hostname === from)!.id;
    await c.ok('m1', 'node', 'update', fromId, '--availability', 'drain');
    const moved = await until('mover on the other host', async () => {
      const [t] = (await c.tasks('mover')).filter((t) => t.status?.state === 'TASK_STATE_RUNNING' && t.desiredState === 'TASK_STATE_RUNNING');
      return t && (await hostOf(t)) === to ? (t) : undefined;
    }, 60_000);
    // The anchor left on `to` reaches the mover at its new place.
    const stay = await until('the anchor on the other host', async () => {
      for (const t of (await c.tasks('anchor')) as Attached[]) if (t.status?.state === 'TASK_STATE_RUNNING' && (await hostOf(t)) === to) return t;
      return undefined;
    });
    expect((await inside(stay, `ping -c 1 -W 2 ${addressOn(moved, back)}`)).code).toBe(0);
    // The old endpoint's static entries are gone from every sandbox (unless its address was given again).
    const oldAddress = addressOn(m!, back);
    if (oldAddress !== addressOn(moved, back)) {
      await until('the old entries removed', async () => {
        for (const host of ['w1', 'w2']) {
          for (const ns of await sandboxes(host)) {
            const neigh = await c.host(host).exec('ip', ['-n', ns, 'neigh', 'show']);
            if (neigh.stdout.split('\n').some((l) => l.startsWith(`${oldAddress} `))) return undefined;
          }
        }
        return true;
      }, 10_000);
    }
    await c.ok('m1', 'node', 'update', fromId, '--availability', 'active');
    // Everything on `back` leaves: every host's sandbox of it goes (web keeps front's).
    await c.ok('m1', 'service', 'rm', 'mover', 'anchor');
    await until('the back sandboxes removed', async () => {
      const left = [...(await sandboxes('w1')), ...(await sandboxes('w2'))].filter((n) => n.endsWith(back.id));
      return left.length === 0 ? true : undefined;
    }, 30_000);
    expect((await sandboxes('w1')).filter((n) => n.endsWith(front.id))).toHaveLength(1);
  }, 200_000);
});
