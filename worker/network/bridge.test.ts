// The bridge driver for real (root): the "host" is a throwaway network namespace, so nothing here
// touches the machine's own; containers are namespaces too. Every namespace a test adds is deleted
// in afterEach (which takes any bridge, veth and nft table left inside with it), also on failure.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CorruptFileError, IllegalStateError, InvalidArgumentError } from '../../common/errors.js';
import { nativeBinary } from '../exec/runtime.js';
import { Spawner } from '../exec/spawner.js';
import { BridgeDriver, NetworkError, natTable, type BridgeOptions } from './bridge.js';

const BUSYBOX = '/bin/busybox';
const namespaces: string[] = [];
const dirs: string[] = [];
const servers: ChildProcess[] = [];

function sh(argv: string[], input?: string): string {
  return execFileSync(argv[0]!, argv.slice(1), { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

function inNs(ns: string, argv: string[]): string {
  return sh(['nsenter', `--net=/run/netns/${ns}`, '--', ...argv]);
}

function pings(ns: string, address: string): boolean {
  return spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', BUSYBOX, 'ping', '-c', '1', '-W', '3', address]).status === 0;
}

function links(ns: string): string[] {
  return (JSON.parse(inNs(ns, ['ip', '-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname).sort();
}

function addNs(name: string): string {
  namespaces.push(name);
  sh(['ip', 'netns', 'add', name]);
  return name;
}

interface Setup {
  id: string;
  host: string;
  bridge: string;
  subnet: string;
  prefix: string;
  stateDir: string;
}

// Names and a subnet of its own per test: tswn-<id>-*, bridge tsb<id>, 10.<rand>.<rand>.0/24.
async function setup(): Promise<Setup> {
  const id = randomBytes(3).toString('hex');
  const stateDir = await mkdtemp(path.join(tmpdir(), 'tswarm-net-'));
  dirs.push(stateDir);
  const prefix = `10.${randomInt(100, 250)}.${randomInt(1, 250)}`;
  return { id, host: addNs(`tswn-${id}-host`), bridge: `tsb${id}`, subnet: `${prefix}.0/24`, prefix, stateDir };
}

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('the bridge driver tests need root (network namespaces, veth pairs, nftables)');
  if (!existsSync(BUSYBOX)) throw new Error('busybox-static is not installed (apt-get install busybox-static)');
});

afterEach(async () => {
  for (const p of servers.splice(0)) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }
  for (const ns of namespaces.splice(0).reverse()) spawnSync('ip', ['netns', 'delete', ns]);
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** busybox httpd in a namespace, serving `text` as /index.html on `port`. */
async function httpd(ns: string, port: number, text: string): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tswarm-www-'));
  dirs.push(dir);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'index.html'), text);
  const p = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', BUSYBOX, 'httpd', '-f', '-p', String(port), '-h', dir], { stdio: 'ignore' });
  servers.push(p);
  for (let i = 0; i < 100 && !inNs(ns, ['ss', '-Hltn', `sport = :${port}`]).trim(); i++) await new Promise((r) => setTimeout(r, 20));
}

/** What `wget http://url` from the namespace prints, or undefined when it fails. */
function fetchFrom(ns: string, url: string): string | undefined {
  // (busybox's own -T crashes in some builds: timeout(1) bounds it instead.)
  const r = spawnSync('timeout', ['5', 'nsenter', `--net=/run/netns/${ns}`, '--', BUSYBOX, 'wget', '-q', '-O', '-', url], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : undefined;
}

// Both ways of making the devices: ip(8) processes, and swarm-spawn's netlink built-ins.
const spawner = new Spawner(nativeBinary('swarm-spawn'));
afterAll(() => spawner.close());
const WAYS: [string, Partial<BridgeOptions>][] = [
  ['ip(8)', {}],
  ['netlink (swarm-spawn)', { runner: spawner.runner, links: spawner.links }],
];

describe.each(WAYS)('bridge driver, devices by %s', (_way, how) => {
  it('attaches two containers that reach each other, the gateway and (masqueraded) the outside; destroy leaves nothing', async () => {
    const s = await setup();
    const c1 = addNs(`tswn-${s.id}-c1`);
    const c2 = addNs(`tswn-${s.id}-c2`);
    // "The outside": a namespace joined to the host by a veth pair, with no route back to the subnet.
    const out = addNs(`tswn-${s.id}-out`);
    inNs(s.host, ['ip', 'link', 'add', 'uplink', 'type', 'veth', 'peer', 'name', 'wan', 'netns', `/run/netns/${out}`]);
    inNs(s.host, ['ip', 'addr', 'add', '198.18.0.1/30', 'dev', 'uplink']);
    inNs(s.host, ['ip', 'link', 'set', 'uplink', 'up']);
    inNs(s.host, ['ip', 'route', 'add', 'default', 'via', '198.18.0.2']);
    inNs(out, ['ip', 'addr', 'add', '198.18.0.2/30', 'dev', 'wan']);
    inNs(out, ['ip', 'link', 'set', 'wan', 'up']);

    const d = new BridgeDriver({ name: s.bridge, subnet: s.subnet, stateDir: s.stateDir, netns: s.host, ...how });
    await d.create();
    await d.create(); // idempotent
    const a1 = await d.attach('c1', `/run/netns/${c1}`);
    const a2 = await d.attach('c2', c2);
    expect([a1.address, a2.address]).toEqual([`${s.prefix}.2`, `${s.prefix}.3`]);
    expect(a1).toMatchObject({ prefixLength: 24, gateway: `${s.prefix}.1`, ifname: 'eth0' });
    expect(a1.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    await expect(d.attach('c1', c1)).rejects.toThrow(IllegalStateError);

    // the host side: bridge with the gateway address, two veths on it, forwarding, the NAT table
    const addr = JSON.parse(inNs(s.host, ['ip', '-j', 'addr', 'show', 'dev', s.bridge])) as { addr_info: { local: string; prefixlen: number }[] }[];
    expect(addr[0]!.addr_info).toContainEqual(expect.objectContaining({ local: `${s.prefix}.1`, prefixlen: 24 }));
    expect(inNs(s.host, ['ip', '-o', 'link', 'show', 'master', s.bridge])).toContain(a1.hostVeth);
    expect(inNs(s.host, ['cat', '/proc/sys/net/ipv4/ip_forward']).trim()).toBe('1');
    const table = inNs(s.host, ['nft', 'list', 'table', 'ip', natTable(s.bridge)]);
    expect(table).toContain(`ip saddr ${s.subnet} oifname != "${s.bridge}" masquerade`);
    // the container side: eth0 and lo up, default route via the gateway
    expect(inNs(c1, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'])).toContain(`inet ${a1.address}/24`);
    expect(inNs(c1, ['ip', 'route', 'show', 'default']).trim()).toBe(`default via ${s.prefix}.1 dev eth0 `.trim());
    const eth0 = JSON.parse(inNs(c1, ['ip', '-j', 'link', 'show', 'dev', 'eth0'])) as { address: string; mtu: number; flags: string[] }[];
    expect(eth0[0]).toMatchObject({ address: a1.mac, mtu: 1500 });
    expect(eth0[0]!.flags).toContain('UP');
    expect(pings(c1, '127.0.0.1')).toBe(true);

    expect(pings(c1, a2.address)).toBe(true);
    expect(pings(c2, a1.address)).toBe(true);
    expect(pings(c1, a1.gateway)).toBe(true);
    expect(pings(c2, '198.18.0.2')).toBe(true); // only possible masqueraded: "out" has no route to the subnet
    expect(inNs(s.host, ['nft', 'list', 'table', 'ip', natTable(s.bridge)])).toMatch(/masquerade/);

    // detach: the veth goes from both sides, the address is free again
    expect(await d.detach('c1')).toBe(true);
    expect(await d.detach('c1')).toBe(false);
    expect(links(c1)).toEqual(['lo']);
    expect(inNs(s.host, ['ip', '-o', 'link', 'show'])).not.toContain(a1.hostVeth);
    expect(Object.keys(await d.endpoints())).toEqual(['c2']);
    expect(pings(c2, a1.address)).toBe(false);

    await d.destroy();
    expect(links(s.host)).toEqual(['lo', 'uplink']);
    expect(links(c2)).toEqual(['lo']);
    expect(inNs(s.host, ['nft', 'list', 'tables']).trim()).toBe('');
    expect(existsSync(d.statePath)).toBe(false);
    // and the machine's own namespace never saw any of it
    expect(spawnSync('ip', ['link', 'show', 'dev', s.bridge]).status).not.toBe(0);
    expect(sh(['nft', 'list', 'tables'])).not.toContain(natTable(s.bridge));
  });

  it('persists allocations: a restarted driver does not hand out an address twice', async () => {
    const s = await setup();
    const c1 = addNs(`tswn-${s.id}-c1`);
    const c2 = addNs(`tswn-${s.id}-c2`);
    const first = new BridgeDriver({ name: s.bridge, subnet: s.subnet, stateDir: s.stateDir, netns: s.host, ...how });
    await first.create();
    expect((await first.attach('c1', c1)).address).toBe(`${s.prefix}.2`);
    const again = new BridgeDriver({ name: s.bridge, subnet: s.subnet, stateDir: s.stateDir, netns: s.host, ...how });
    await again.create();
    expect((await again.attach('c2', c2)).address).toBe(`${s.prefix}.3`);
    expect(JSON.parse(await readFile(again.statePath, 'utf8'))).toMatchObject({
      version: 1,
      bridge: s.bridge,
      subnet: s.subnet,
      endpoints: { c1: { address: `${s.prefix}.2` }, c2: { address: `${s.prefix}.3` } },
    });

    // the same bridge with another subnet is refused while the state exists
    const other = new BridgeDriver({ name: s.bridge, subnet: '10.99.0.0/16', stateDir: s.stateDir, netns: s.host, ...how });
    await expect(other.create()).rejects.toThrow(InvalidArgumentError);
    await expect(other.create()).rejects.toThrow(/^subnet: 10.99.0.0\/16 differs from .* recorded in .*bridge-tsb/);

    // a corrupt state file is an error naming it, and nothing is attached
    const saved = await readFile(again.statePath, 'utf8');
    await writeFile(again.statePath, saved.slice(0, 40));
    const c3 = addNs(`tswn-${s.id}-c3`);
    const err = await again.attach('c3', c3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptFileError);
    expect((err as CorruptFileError).path).toBe(again.statePath);
    expect(links(c3)).toEqual(['lo']);

    await writeFile(again.statePath, saved);
    await again.destroy();
    expect(links(s.host)).toEqual(['lo']);
    expect(inNs(s.host, ['nft', 'list', 'tables']).trim()).toBe('');
  });

  it('publishes host ports: from another host, the host itself (its address and localhost) and containers (hairpin); refuses a taken port; unpublish and detach remove them', async () => {
    const s = await setup();
    const c1 = addNs(`tswn-${s.id}-c1`);
    const c2 = addNs(`tswn-${s.id}-c2`);
    const out = addNs(`tswn-${s.id}-out`);
    inNs(s.host, ['ip', 'link', 'add', 'uplink', 'type', 'veth', 'peer', 'name', 'wan', 'netns', `/run/netns/${out}`]);
    inNs(s.host, ['ip', 'addr', 'add', '198.18.0.1/30', 'dev', 'uplink']);
    inNs(s.host, ['ip', 'link', 'set', 'uplink', 'up']);
    inNs(s.host, ['ip', 'link', 'set', 'lo', 'up']);
    inNs(out, ['ip', 'addr', 'add', '198.18.0.2/30', 'dev', 'wan']);
    inNs(out, ['ip', 'link', 'set', 'wan', 'up']);

    const d = new BridgeDriver({ name: s.bridge, subnet: s.subnet, stateDir: s.stateDir, netns: s.host, ...how });
    await d.create();
    const a1 = await d.attach('c1', c1, { ports: [{ protocol: 'tcp', published: 8080, target: 80 }] });
    expect(a1.ports).toEqual([{ protocol: 'tcp', published: 8080, target: 80 }]);
    await httpd(c1, 80, 'from c1\n');
    const a2 = await d.attach('c2', c2);
    expect(a2.ports).toBeUndefined();
    const hairpin = (veth: string): boolean | undefined =>
      (JSON.parse(inNs(s.host, ['ip', '-d', '-j', 'link', 'show', 'dev', veth])) as { linkinfo?: { info_slave_data?: { hairpin?: boolean } } }[])[0]?.linkinfo?.info_slave_data?.hairpin;
    expect([hairpin(a1.hostVeth), hairpin(a2.hostVeth)]).toEqual([true, false]);

    expect(fetchFrom(out, 'http://198.18.0.1:8080/')).toBe('from c1\n'); // another host: prerouting
    expect(fetchFrom(s.host, 'http://198.18.0.1:8080/')).toBe('from c1\n'); // the host itself: output
    expect(fetchFrom(s.host, 'http://127.0.0.1:8080/')).toBe('from c1\n'); // localhost: route_localnet and masquerade
    expect(fetchFrom(c2, 'http://198.18.0.1:8080/')).toBe('from c1\n'); // another container: hairpin
    expect(fetchFrom(c1, `http://${a1.gateway}:8080/`)).toBe('from c1\n'); // the container itself, through the gateway
    expect(fetchFrom(out, 'http://198.18.0.1:8081/')).toBeUndefined(); // nothing else is published
    expect(inNs(s.host, ['cat', `/proc/sys/net/ipv4/conf/${s.bridge}/route_localnet`]).trim()).toBe('1');

    // A port another endpoint publishes, or a host process listens on, is refused before anything is made.
    const c3 = addNs(`tswn-${s.id}-c3`);
    const taken = await d.attach('c3', c3, { ports: [{ protocol: 'tcp', published: 8080, target: 81 }] }).catch((e: unknown) => e);
    expect(taken).toBeInstanceOf(NetworkError);
    expect((taken as Error).message).toBe(`network ${s.bridge}: cannot publish port 8080/tcp for c3: endpoint c1 publishes it`);
    await httpd(s.host, 9090, 'the host\n');
    await expect(d.attach('c3', c3, { ports: [{ protocol: 'tcp', published: 9090, target: 80 }] })).rejects.toThrow(
      `network ${s.bridge}: cannot publish port 9090/tcp for c3: a process of the host listens on it`,
    );
    expect(links(c3)).toEqual(['lo']);
    expect(Object.keys(await d.endpoints()).sort()).toEqual(['c1', 'c2']);
    // The same number in udp is another port.
    const a3 = await d.attach('c3', c3, { ports: [{ protocol: 'udp', published: 8080, target: 53 }] });
    expect(inNs(s.host, ['nft', 'list', 'map', 'ip', natTable(s.bridge), 'published'])).toContain(`udp . 8080 : ${a3.address} . 53`);

    // unpublish: the container stays attached, the port is free for the next one.
    expect(await d.unpublish('c1')).toBe(true);
    expect(await d.unpublish('c1')).toBe(false);
    expect(fetchFrom(out, 'http://198.18.0.1:8080/')).toBeUndefined();
    expect(pings(c2, a1.address)).toBe(true);
    expect((await d.endpoints()).c1?.ports).toBeUndefined();
    await d.detach('c2');
    await d.attach('c2', c2, { ports: [{ protocol: 'tcp', published: 8080, target: 80 }] });
    await httpd(c2, 80, 'from c2\n');
    expect(fetchFrom(out, 'http://198.18.0.1:8080/')).toBe('from c2\n');

    // A restarted worker rebuilds the table with what its endpoints publish.
    const again = new BridgeDriver({ name: s.bridge, subnet: s.subnet, stateDir: s.stateDir, netns: s.host, ...how });
    await again.create();
    expect(fetchFrom(out, 'http://198.18.0.1:8080/')).toBe('from c2\n');

    // detach withdraws the ports with the endpoint.
    await again.detach('c2');
    await again.detach('c3');
    expect(fetchFrom(out, 'http://198.18.0.1:8080/')).toBeUndefined();
    expect(inNs(s.host, ['nft', 'list', 'map', 'ip', natTable(s.bridge), 'published'])).not.toMatch(/elements/);
    await again.destroy();
    expect(inNs(s.host, ['nft', 'list', 'tables']).trim()).toBe('');
  });

  it('gives both ends of the pair the network\'s MTU', async () => {
    const s = await setup();
    const c1 = addNs(`tswn-${s.id}-c1`);
    const d = new BridgeDriver({ name: s.bridge, subnet: s.subnet, stateDir: s.stateDir, netns: s.host, mtu: 1400, ...how });
    await d.create();
    const a = await d.attach('c1', c1);
    const mtu = (ns: string, dev: string): number => (JSON.parse(inNs(ns, ['ip', '-j', 'link', 'show', 'dev', dev])) as { mtu: number }[])[0]!.mtu;
    expect([mtu(s.host, s.bridge), mtu(s.host, a.hostVeth), mtu(c1, 'eth0')]).toEqual([1400, 1400, 1400]);
    expect(pings(c1, a.gateway)).toBe(true);
    await d.destroy();
  });

  it('undoes a failed attach: no veth left, the address released', async () => {
    const s = await setup();
    const d = new BridgeDriver({ name: s.bridge, subnet: s.subnet, stateDir: s.stateDir, netns: s.host, ...how });
    await d.create();
    await expect(d.attach('ghost', `/run/netns/tswn-${s.id}-missing`)).rejects.toThrow(/^network tsb[0-9a-f]+: attaching ghost to \/run\/netns\/tswn-.*-missing: /);
    expect(links(s.host)).toEqual(['lo', s.bridge]);
    expect(await d.endpoints()).toEqual({});
    await d.destroy();
    expect(links(s.host)).toEqual(['lo']);
  });
});
