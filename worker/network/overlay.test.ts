// The overlay driver for real (root): two "hosts" are throwaway network namespaces joined by a veth
// pair (the underlay), each with its own OverlayDriver; containers are namespaces too. Every
// namespace a test makes — its hosts, containers and the drivers' sandboxes (found by their
// per-test prefixes) — is deleted in afterEach, also on failure, which takes every device inside
// with it. Nothing here touches the machine's own namespace or sends a packet outside these.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../common/errors.js';
import { NetworkError } from './bridge.js';
import { macOf } from './ipam.js';
import { OverlayDriver, type OverlayNetwork, type OverlayPeer } from './overlay.js';
import { hostVethName, vxlanName } from './overlay-plan.js';

const BUSYBOX = '/bin/busybox';
const PING = '/usr/bin/ping'; // iputils: -M do sets DF
const UNDERLAY_MTU = 1480; // not 1500, so that the auto MTU is seen to follow it
const namespaces: string[] = [];
const prefixes: string[] = [];
const children: ChildProcess[] = [];

function sh(argv: string[], input?: string): string {
  return execFileSync(argv[0]!, argv.slice(1), { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

function inNs(ns: string, argv: string[], input?: string): string {
  return sh(['nsenter', `--net=${ns.includes('/') ? ns : `/run/netns/${ns}`}`, '--', ...argv], input);
}

function addNs(name: string): string {
  namespaces.push(name);
  sh(['ip', 'netns', 'add', name]);
  return name;
}

/** A ping with DF set and `payload` bytes of data (the IP packet is payload + 28). */
function ping(ns: string, address: string, opts: { payload?: number; wait?: number } = {}): { ok: boolean; out: string } {
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, '--', PING, '-n', '-M', 'do', '-c', '1', '-W', String(opts.wait ?? 2), '-s', String(opts.payload ?? 56), address], { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

const reaches = (ns: string, address: string): boolean => ping(ns, address).ok;
const unreachable = (ns: string, address: string): boolean => !ping(ns, address, { wait: 1 }).ok;

function linkJson(ns: string, dev: string): { ifname: string; mtu: number; address: string; flags: string[]; master?: string } {
  return (JSON.parse(inNs(ns, ['ip', '-j', 'link', 'show', 'dev', dev])) as { ifname: string; mtu: number; address: string; flags: string[]; master?: string }[])[0]!;
}

function links(ns: string): string[] {
  return (JSON.parse(inNs(ns, ['ip', '-j', 'link', 'show'])) as { ifname: string }[]).map((l) => l.ifname).sort();
}

/** The vxlan device's own forwarding entries (`self`; the bridge's view of the port, `master br0`, is left out). */
function vxlanFdb(sbx: string, vx: string): string[] {
  return inNs(sbx, ['bridge', 'fdb', 'show', 'dev', vx])
    .split('\n')
    .filter((l) => / self( |$)/.test(l))
    .map((l) => l.replace(/ link-netnsid \d+/, '').trim());
}

function sandboxes(prefix: string): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${prefix}-`)) : [];
}

interface Hosts {
  id: string;
  a: string;
  b: string;
  /** A's primary underlay address; its data path is the secondary one, dpA. */
  primaryA: string;
  dpA: string;
  dpB: string;
  da: OverlayDriver;
  db: OverlayDriver;
}

// Two hosts tswo-<id>-a and -b joined by a veth pair ("ul") in 192.168.<rand>.0/24, MTU 1480: A holds
// .1 and .11 (its data path, so that the outer source is seen to be pinned), B .2. One driver each,
// with sandbox prefixes of their own (the hosts share this machine's /run/netns).
function twoHosts(): Hosts {
  const id = randomBytes(3).toString('hex');
  const net = `192.168.${randomInt(1, 255)}`;
  const a = addNs(`tswo-${id}-a`);
  const b = addNs(`tswo-${id}-b`);
  inNs(a, ['ip', 'link', 'add', 'ul', 'mtu', String(UNDERLAY_MTU), 'type', 'veth', 'peer', 'name', 'ul', 'mtu', String(UNDERLAY_MTU), 'netns', `/run/netns/${b}`]);
  inNs(a, ['ip', '-batch', '-'], `addr add ${net}.1/24 dev ul\naddr add ${net}.11/24 dev ul\nlink set dev ul up\nlink set dev lo up\n`);
  inNs(b, ['ip', '-batch', '-'], `addr add ${net}.2/24 dev ul\nlink set dev ul up\nlink set dev lo up\n`);
  prefixes.push(`tswoa${id}`, `tswob${id}`);
  return {
    id,
    a,
    b,
    primaryA: `${net}.1`,
    dpA: `${net}.11`,
    dpB: `${net}.2`,
    da: new OverlayDriver({ dataPathAddr: `${net}.11`, netns: a, sandboxPrefix: `tswoa${id}` }),
    db: new OverlayDriver({ dataPathAddr: `${net}.2`, netns: `/run/netns/${b}`, sandboxPrefix: `tswob${id}` }),
  };
}

/** An overlay network with a random /24 of 10.0.0.0/8 (unless given) and a random VNI. */
function network(h: Hosts, name: string, extra: Partial<OverlayNetwork> = {}): OverlayNetwork & { at: (host: number) => string } {
  const p = `10.${randomInt(1, 255)}.${randomInt(0, 256)}`;
  const subnet = extra.subnet ?? `${p}.0/24`;
  const base = subnet.split('.').slice(0, 3).join('.');
  return { id: `${name}-${h.id}`, vni: randomInt(4096, 0xffffff), subnet, gateway: `${base}.1`, mtu: 0, ...extra, at: (host: number) => `${base}.${host}` };
}

/** A "container": a namespace of its own. */
function container(h: Hosts, name: string): string {
  return addNs(`tswo-${h.id}-${name}`);
}

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('the overlay driver tests need root (network namespaces, vxlan and veth devices)');
  if (!existsSync(BUSYBOX)) throw new Error('busybox-static is not installed (apt-get install busybox-static)');
  if (!existsSync(PING)) throw new Error('iputils-ping is not installed (apt-get install iputils-ping)');
});

afterEach(async () => {
  for (const p of children.splice(0)) {
    if (p.exitCode !== null || p.signalCode !== null) continue;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }
  for (const prefix of prefixes.splice(0)) for (const ns of sandboxes(prefix)) spawnSync('ip', ['netns', 'delete', ns]);
  for (const ns of namespaces.splice(0).reverse()) spawnSync('ip', ['netns', 'delete', ns]);
});

/** What a TCP connection from `from` to address:port delivers, with busybox nc on both sides. */
async function tcpSend(server: string, from: string, address: string, port: number, text: string): Promise<string> {
  const p = spawn('nsenter', [`--net=/run/netns/${server}`, '--', BUSYBOX, 'nc', '-l', '-p', String(port)], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(p);
  let got = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => (got += d));
  const done = new Promise((r) => p.once('close', r)); // after its output is read, unlike 'exit'
  for (let i = 0; i < 100 && !inNs(server, ['ss', '-Hltn', `sport = :${port}`]).trim(); i++) await new Promise((r) => setTimeout(r, 20));
  const r = spawnSync('timeout', ['5', 'nsenter', `--net=/run/netns/${from}`, '--', BUSYBOX, 'nc', address, String(port)], { input: text });
  if (r.status !== 0) return `client failed: ${r.status}`;
  await Promise.race([done, new Promise((r) => setTimeout(r, 3000))]);
  return got;
}

/** A UDP datagram from `from` to address:port and the server's answer (busybox's nc has no UDP: node's dgram). */
async function udpRoundTrip(server: string, from: string, address: string, port: number): Promise<string> {
  const serve = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send('pong '+m,r.port,r.address,()=>process.exit(0)));s.bind(${port},()=>console.log('ready'));`;
  const p = spawn('nsenter', [`--net=/run/netns/${server}`, '--', process.execPath, '-e', serve], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(p);
  await new Promise((r) => p.stdout.once('data', r));
  const ask = `const s=require('dgram').createSocket('udp4');s.on('message',(m)=>{console.log(String(m));process.exit(0)});s.send('ping',${port},'${address}');setTimeout(()=>process.exit(1),3000);`;
  const r = spawnSync('nsenter', [`--net=/run/netns/${from}`, '--', process.execPath, '-e', ask], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : `client failed: ${r.status}`;
}

/** The peers of a network: every container's address and the node addresses, each with its host's data path. */
function peers(...entries: [string, string][]): OverlayPeer[] {
  return entries.map(([address, vtep]) => ({ address, vtep }));
}

describe('overlay driver', () => {
  it('joins containers on two hosts: ping, TCP and UDP; the outer packets leave from the data-path address to 4789', async () => {
    const h = twoHosts();
    const net = network(h, 'one');
    // Counters on A's underlay: VXLAN packets by outer source.
    inNs(h.a, ['nft', '-f', '-'], [
      'table ip tswotest {',
      '  counter dp {}',
      '  counter other {}',
      '  chain out {',
      '    type filter hook output priority 0; policy accept;',
      `    oifname "ul" ip saddr ${h.dpA} udp dport 4789 counter name dp`,
      `    oifname "ul" ip saddr != ${h.dpA} udp dport 4789 counter name other`,
      '  }',
      '}',
      '',
    ].join('\n'));
    expect(await h.da.ensure(net)).toEqual({ mtu: UNDERLAY_MTU - 50 });
    expect(await h.da.ensure(net)).toEqual({ mtu: UNDERLAY_MTU - 50 }); // idempotent
    // Bridged frames skip netfilter in the sandbox (where br_netfilter is loaded, as here).
    if (existsSync('/proc/sys/net/bridge')) expect(sh(['nsenter', `--net=${h.da.sandboxPath(net.id)}`, '--', 'sysctl', '-n', 'net.bridge.bridge-nf-call-iptables']).trim()).toBe('0');
    await h.db.ensure(net);
    const ca = container(h, 'ca');
    const cb = container(h, 'cb');
    const ea = await h.da.attach(net, 'ea', `/run/netns/${ca}`, { address: `${net.at(2)}/24`, ifname: 'eth0' });
    const eb = await h.db.attach(net, 'eb', cb, { address: `${net.at(3)}/24`, ifname: 'eth1' });
    expect(ea).toEqual({ networkId: net.id, ifname: 'eth0', hostVeth: hostVethName(net.id, 'ea'), address: `${net.at(2)}/24`, mac: macOf(net.at(2)), mtu: UNDERLAY_MTU - 50 });
    expect(eb.ifname).toBe('eth1');
    const all = peers([net.at(2), h.dpA], [net.at(3), h.dpB]);
    await h.da.setPeers(net.id, all);
    await h.db.setPeers(net.id, all);

    expect(reaches(ca, net.at(3))).toBe(true);
    expect(reaches(cb, net.at(2))).toBe(true);
    expect(await tcpSend(cb, ca, net.at(3), 5000, 'over tcp\n')).toBe('over tcp\n');
    expect(await tcpSend(ca, cb, net.at(2), 5001, 'and back\n')).toBe('and back\n');
    expect(await udpRoundTrip(cb, ca, net.at(3), 5002)).toBe('pong ping');

    // The container side: the address, the derived MAC, no default route (only the subnet's).
    expect(inNs(ca, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0'])).toContain(`inet ${net.at(2)}/24`);
    expect(linkJson(ca, 'eth0').address).toBe(macOf(net.at(2)));
    expect(inNs(ca, ['ip', 'route', 'show']).trim()).toBe(`${net.subnet} dev eth0 proto kernel scope link src ${net.at(2)}`);
    // The sandbox: br0 with the gateway, vx-<vni> with what was asked, on br0; the static entries.
    const sbx = h.da.sandboxPath(net.id);
    const vx = vxlanName(net.vni);
    const info = (JSON.parse(inNs(sbx, ['ip', '-d', '-j', 'link', 'show', 'dev', vx])) as { master: string; linkinfo: { info_data: Record<string, unknown> } }[])[0]!;
    expect(info.master).toBe('br0');
    expect(info.linkinfo.info_data).toMatchObject({ id: net.vni, local: h.dpA, port: 4789, learning: false, proxy: true });
    expect(inNs(sbx, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'br0'])).toContain(`inet ${net.gateway}/24`);
    expect(vxlanFdb(sbx, vx)).toEqual([`${macOf(net.at(3))} dst ${h.dpB} self permanent`]); // no 00:00:00:00:00:00: no flooding
    expect(inNs(sbx, ['ip', 'neigh', 'show', 'dev', vx]).trim()).toBe(`${net.at(3)} lladdr ${macOf(net.at(3))} PERMANENT`);
    // The vxlan device's UDP socket is in the host namespace, not the sandbox.
    expect(inNs(h.a, ['ss', '-Huan', 'sport = :4789'])).toMatch(/4789/);
    expect(inNs(sbx, ['ss', '-Huan', 'sport = :4789']).trim()).toBe('');

    const counter = (name: string): number => Number(/packets (\d+)/.exec(inNs(h.a, ['nft', 'list', 'counter', 'ip', 'tswotest', name]))?.[1]);
    expect(counter('dp')).toBeGreaterThan(0);
    expect(counter('other')).toBe(0);
  });

  it('sets the MTU: auto is the underlay less 50 on both ends and the bridge, DF pings of the MTU pass and one byte more is refused; an explicit one is checked', async () => {
    const h = twoHosts();
    const net = network(h, 'mtu');
    const mtu = UNDERLAY_MTU - 50;
    await h.da.ensure(net);
    await h.db.ensure(net);
    const ca = container(h, 'ca');
    const cb = container(h, 'cb');
    const ea = await h.da.attach(net, 'ea', ca, { address: `${net.at(2)}/24`, ifname: 'eth0' });
    await h.db.attach(net, 'eb', cb, { address: `${net.at(3)}/24`, ifname: 'eth0' });
    const all = peers([net.at(2), h.dpA], [net.at(3), h.dpB]);
    await Promise.all([h.da.setPeers(net.id, all), h.db.setPeers(net.id, all)]);
    const sbx = h.da.sandboxPath(net.id);
    expect([linkJson(ca, 'eth0').mtu, linkJson(sbx, ea.hostVeth).mtu, linkJson(sbx, 'br0').mtu, linkJson(sbx, vxlanName(net.vni)).mtu]).toEqual([mtu, mtu, mtu, mtu]);
    expect(ping(ca, net.at(3), { payload: mtu - 28 })).toMatchObject({ ok: true });
    const over = ping(ca, net.at(3), { payload: mtu - 27 });
    expect(over.ok).toBe(false);
    expect(over.out).toMatch(new RegExp(`message too long, mtu=${mtu}`));

    // Explicit: within the bounds it is used; above the underlay's less 50, or below 1280, refused naming mtu.
    const small = network(h, 'small', { mtu: 1300 });
    expect(await h.da.ensure(small)).toEqual({ mtu: 1300 });
    await h.db.ensure(small);
    const cs = container(h, 'cs');
    const ct = container(h, 'ct');
    expect((await h.da.attach(small, 'es', cs, { address: `${small.at(2)}/24`, ifname: 'eth0' })).mtu).toBe(1300);
    await h.db.attach(small, 'et', ct, { address: `${small.at(3)}/24`, ifname: 'eth0' });
    const sp = peers([small.at(2), h.dpA], [small.at(3), h.dpB]);
    await Promise.all([h.da.setPeers(small.id, sp), h.db.setPeers(small.id, sp)]);
    expect(linkJson(cs, 'eth0').mtu).toBe(1300);
    expect(ping(cs, small.at(3), { payload: 1300 - 28 }).ok).toBe(true);
    expect(ping(cs, small.at(3), { payload: 1300 - 27 }).out).toMatch(/message too long, mtu=1300/);

    for (const bad of [mtu + 1, 1279]) {
      const err = await h.da.ensure(network(h, `bad${bad}`, { mtu: bad })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidArgumentError);
      expect(err).toMatchObject({ field: 'mtu' });
      expect((err as Error).message).toBe(`mtu: must be 1280 to ${mtu} (the MTU of ul, ${UNDERLAY_MTU}, less 50 for the VXLAN encapsulation), got ${bad}`);
    }
    expect((await h.da.list()).map((s) => s.networkId).sort()).toEqual([net.id, small.id].sort()); // the refused ones made nothing
  });

  it('keeps two networks (two VNIs) on the same hosts apart, even with a forged entry pointing across', async () => {
    const h = twoHosts();
    // The same subnet on both, so that only the VNI separates them.
    const one = network(h, 'one');
    const two = network(h, 'two', { subnet: one.subnet });
    for (const n of [one, two]) await Promise.all([h.da.ensure(n), h.db.ensure(n)]);
    const [a1, b1, a2, b2] = ['a1', 'b1', 'a2', 'b2'].map((c) => container(h, c)) as [string, string, string, string];
    await h.da.attach(one, 'a1', a1, { address: `${one.at(2)}/24`, ifname: 'eth0' });
    await h.db.attach(one, 'b1', b1, { address: `${one.at(3)}/24`, ifname: 'eth0' });
    await h.da.attach(two, 'a2', a2, { address: `${two.at(4)}/24`, ifname: 'eth0' });
    await h.db.attach(two, 'b2', b2, { address: `${two.at(5)}/24`, ifname: 'eth0' });
    const p1 = peers([one.at(2), h.dpA], [one.at(3), h.dpB]);
    const p2 = peers([two.at(4), h.dpA], [two.at(5), h.dpB]);
    await Promise.all([h.da.setPeers(one.id, p1), h.db.setPeers(one.id, p1), h.da.setPeers(two.id, p2), h.db.setPeers(two.id, p2)]);
    expect(reaches(a1, one.at(3))).toBe(true);
    expect(reaches(a2, two.at(5))).toBe(true);
    expect(unreachable(a1, two.at(5))).toBe(true);
    // Network one's sandbox on A told that b2's address is behind B: the frame travels with one's
    // VNI and lands in one's bridge on B, where no such MAC is.
    await h.da.setPeers(one.id, [...p1, { address: two.at(5), vtep: h.dpB }]);
    expect(unreachable(a1, two.at(5))).toBe(true);
    expect(reaches(b2, two.at(4))).toBe(true);
  });

  it('makes the static entries exactly the peers: a removed peer is gone and unreachable, re-adding restores it', async () => {
    const h = twoHosts();
    const net = network(h, 'peers');
    await Promise.all([h.da.ensure(net), h.db.ensure(net)]);
    const ca = container(h, 'ca');
    const cbs = ['cb1', 'cb2', 'cb3'].map((c) => container(h, c));
    await h.da.attach(net, 'ea', ca, { address: `${net.at(2)}/24`, ifname: 'eth0' });
    // Attaches of several endpoints at once.
    await Promise.all(cbs.map((c, i) => h.db.attach(net, `eb${i}`, c, { address: `${net.at(10 + i)}/24`, ifname: 'eth0' })));
    const all = peers([net.at(2), h.dpA], [net.at(10), h.dpB], [net.at(11), h.dpB], [net.at(12), h.dpB]);
    await Promise.all([h.da.setPeers(net.id, all), h.db.setPeers(net.id, all)]);
    for (const i of [10, 11, 12]) expect(reaches(ca, net.at(i))).toBe(true);

    const sbx = h.da.sandboxPath(net.id);
    const vx = vxlanName(net.vni);
    const fdb = (): string => vxlanFdb(sbx, vx).join('\n');
    const neigh = (): string => inNs(sbx, ['ip', 'neigh', 'show', 'dev', vx]);
    await h.da.setPeers(net.id, all.filter((p) => p.address !== net.at(11)));
    expect(fdb()).not.toContain(macOf(net.at(11)));
    expect(neigh()).not.toContain(`${net.at(11)} `);
    expect(fdb()).toContain(macOf(net.at(12)));
    expect(unreachable(ca, net.at(11))).toBe(true);
    expect(reaches(ca, net.at(12))).toBe(true);

    await h.da.setPeers(net.id, all);
    expect(neigh()).toContain(`${net.at(11)} lladdr ${macOf(net.at(11))} PERMANENT`);
    expect(reaches(ca, net.at(11))).toBe(true);
    // A peer moved to another VTEP keeps one destination; the empty set empties the tables.
    await h.da.setPeers(net.id, [...all.filter((p) => p.address !== net.at(12)), { address: net.at(12), vtep: h.primaryA }]);
    expect(fdb()).toContain(`${macOf(net.at(12))} dst ${h.primaryA} self permanent`);
    expect(fdb()).not.toContain(`${macOf(net.at(12))} dst ${h.dpB}`);
    await h.da.setPeers(net.id, []);
    expect(fdb()).toBe('');
    expect(neigh().trim()).toBe('');
    // Two VTEPs for one address is refused before anything is done.
    await expect(h.da.setPeers(net.id, peers([net.at(2), h.dpA], [net.at(2), h.dpB]))).rejects.toThrow(/^peers\[1\]\.vtep: .* is given two VTEPs/);
  });

  it("holds this node's address on the bridge, reachable from the other host's containers", async () => {
    const h = twoHosts();
    const net = network(h, 'node');
    const nodeA = net.at(250);
    await h.da.ensure({ ...net, nodeAddress: `${nodeA}/24` });
    await h.db.ensure({ ...net, nodeAddress: `${net.at(251)}/24` });
    const cb = container(h, 'cb');
    await h.db.attach({ ...net, nodeAddress: `${net.at(251)}/24` }, 'eb', cb, { address: `${net.at(3)}/24`, ifname: 'eth0' });
    const all = peers([nodeA, h.dpA], [net.at(251), h.dpB], [net.at(3), h.dpB]);
    await Promise.all([h.da.setPeers(net.id, all), h.db.setPeers(net.id, all)]);
    const br = linkJson(h.da.sandboxPath(net.id), 'br0');
    expect(br.address).toBe(macOf(nodeA));
    expect(inNs(h.da.sandboxPath(net.id), ['ip', '-o', '-4', 'addr', 'show', 'dev', 'br0'])).toContain(`inet ${nodeA}/24`);
    expect(reaches(cb, nodeA)).toBe(true);
    // A's own address in the peers is not programmed on A (its VTEP is A's data path).
    expect(inNs(h.da.sandboxPath(net.id), ['ip', 'neigh', 'show', 'dev', vxlanName(net.vni)])).not.toContain(`${nodeA} `);
    // Dropping the node address from the description takes it off the bridge.
    await h.da.ensure(net);
    expect(inNs(h.da.sandboxPath(net.id), ['ip', '-o', '-4', 'addr', 'show', 'dev', 'br0'])).not.toContain(nodeA);
  });

  it('detaches and removes: nothing is left, in the sandboxes, the hosts or the machine', async () => {
    const h = twoHosts();
    const nets = [network(h, 'x'), network(h, 'y')];
    const cs = [container(h, 'c0'), container(h, 'c1')];
    for (const n of nets) await h.da.ensure(n);
    const e0 = await h.da.attach(nets[0]!, 'e0', cs[0]!, { address: `${nets[0]!.at(2)}/24`, ifname: 'eth0' });
    const e1 = await h.da.attach(nets[1]!, 'e1', cs[0]!, { address: `${nets[1]!.at(2)}/24`, ifname: 'eth1' });
    await h.da.attach(nets[1]!, 'e2', cs[1]!, { address: `${nets[1]!.at(3)}/24`, ifname: 'eth0' });
    expect(links(cs[0]!)).toEqual(['eth0', 'eth1', 'lo']);
    expect(await h.da.list()).toEqual(
      [
        { networkId: nets[0]!.id, hostVeths: [e0.hostVeth] },
        { networkId: nets[1]!.id, hostVeths: [e1.hostVeth, hostVethName(nets[1]!.id, 'e2')].sort() },
      ].sort((x, y) => (`tswoa${h.id}-${x.networkId}` < `tswoa${h.id}-${y.networkId}` ? -1 : 1)),
    );
    expect(await h.db.list()).toEqual([]);
    // The outer packets skip connection tracking in the host namespace while a sandbox is there.
    expect(inNs(h.a, ['nft', 'list', 'table', 'ip', 'tswarm-overlay'])).toMatch(/udp dport 4789 notrack/);

    expect(await h.da.detach(nets[0]!.id, 'e0')).toBe(true);
    expect(await h.da.detach(nets[0]!.id, 'e0')).toBe(false);
    expect(await h.da.detach('never', 'e0')).toBe(false);
    expect(links(cs[0]!)).toEqual(['eth1', 'lo']);
    expect(links(h.da.sandboxPath(nets[0]!.id))).toEqual(['br0', 'lo', vxlanName(nets[0]!.vni)].sort());

    await h.da.remove(nets[1]!.id); // with its two endpoints
    await h.da.remove(nets[1]!.id); // none: no error
    expect(links(cs[0]!)).toEqual(['lo']);
    expect(links(cs[1]!)).toEqual(['lo']);
    await h.da.remove(nets[0]!.id);
    expect(sandboxes(`tswoa${h.id}`)).toEqual([]);
    expect(await h.da.list()).toEqual([]);
    expect(links(h.a)).toEqual(['lo', 'ul']);
    expect(inNs(h.a, ['ip', '-d', 'link', 'show', 'type', 'vxlan']).trim()).toBe('');
    expect(inNs(h.a, ['ss', '-Huan', 'sport = :4789']).trim()).toBe('');
    expect(inNs(h.a, ['nft', 'list', 'tables']).trim()).toBe('');
    // the machine's own namespace never had any of it
    for (const n of nets) expect(spawnSync('ip', ['link', 'show', 'dev', vxlanName(n.vni)]).status).not.toBe(0);
  });

  it('adopts an endpoint that exists; a failed attach leaves nothing; a sandbox of another VNI or subnet is re-made', async () => {
    const h = twoHosts();
    const net = network(h, 'adopt');
    await Promise.all([h.da.ensure(net), h.db.ensure(net)]);
    const ca = container(h, 'ca');
    const cb = container(h, 'cb');
    const ea = await h.da.attach(net, 'ea', ca, { address: `${net.at(2)}/24`, ifname: 'eth0' });
    await h.db.attach(net, 'eb', cb, { address: `${net.at(3)}/24`, ifname: 'eth0' });
    const all = peers([net.at(2), h.dpA], [net.at(3), h.dpB]);
    await Promise.all([h.da.setPeers(net.id, all), h.db.setPeers(net.id, all)]);

    // A restarted worker: a new driver, attach again; the same devices, still connected.
    const again = new OverlayDriver({ dataPathAddr: h.dpA, netns: h.a, sandboxPrefix: `tswoa${h.id}` });
    const before = linkJson(ca, 'eth0');
    expect(await again.attach(net, 'ea', ca, { address: `${net.at(2)}/24`, ifname: 'eth0' })).toEqual(ea);
    expect(linkJson(ca, 'eth0')).toMatchObject({ mtu: before.mtu, address: before.address });
    await again.setPeers(net.id, all); // finds the vxlan device without having made it
    expect(reaches(cb, net.at(2))).toBe(true);

    // A container namespace that does not exist: an error naming the network; no veth left.
    const missing = `/run/netns/tswo-${h.id}-missing`;
    const err = await h.da.attach(net, 'ghost', missing, { address: `${net.at(9)}/24`, ifname: 'eth0' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkError);
    expect((err as Error).message).toMatch(new RegExp(`^network ${net.id}: attaching ghost to ${missing}: `));
    // The container's ifname taken (eth0 is ea's): refused, and ea's devices untouched.
    await expect(h.da.attach(net, 'dup', ca, { address: `${net.at(8)}/24`, ifname: 'eth0' })).rejects.toThrow(NetworkError);
    expect(await h.da.list()).toEqual([{ networkId: net.id, hostVeths: [ea.hostVeth] }]);
    expect(links(ca)).toEqual(['eth0', 'lo']);
    expect(reaches(cb, net.at(2))).toBe(true);
    // Bad input is refused before anything is done, naming the field.
    await expect(h.da.attach(net, 'x', ca, { address: '10.254.0.2/24', ifname: 'eth1' })).rejects.toThrow(/^address: 10.254.0.2 is not in the subnet /);
    await expect(h.da.attach(net, 'x', ca, { address: `${net.at(2)}/24`, ifname: 'eth 1' })).rejects.toThrow(/^ifname: /);
    await expect(h.da.ensure({ ...net, vni: 0 })).rejects.toThrow(/^vni: must be an integer from 1 to 16777215, got 0$/);

    // A data-path address no interface of the host holds: refused, naming it.
    const elsewhere = new OverlayDriver({ dataPathAddr: '192.0.2.1', netns: h.a, sandboxPrefix: `tswoa${h.id}` });
    await expect(elsewhere.ensure(net)).rejects.toThrow(/^dataPathAddr: no interface of the host's network namespace \/run\/netns\/tswo-.*-a holds 192.0.2.1$/);

    // The same network id with another VNI: the sandbox is re-made, without the old endpoints.
    const renumbered = { ...net, vni: net.vni === 4096 ? 4097 : net.vni - 1 };
    await h.da.ensure(renumbered);
    const sbx = h.da.sandboxPath(net.id);
    expect(links(sbx)).toEqual(['br0', 'lo', vxlanName(renumbered.vni)].sort());
    expect(links(ca)).toEqual(['lo']);
    expect(spawnSync('ip', ['link', 'show', 'dev', vxlanName(net.vni)]).status).not.toBe(0);
    // Another subnet with the same VNI: re-made too (the old vxlan device is deleted before the
    // namespace, so the VNI is free at once), and it works.
    const moved = network(h, 'adopt', { vni: renumbered.vni });
    const movedB = { ...moved, id: net.id };
    await h.da.ensure(movedB);
    await h.db.ensure(movedB);
    expect(inNs(sbx, ['ip', '-o', '-4', 'addr', 'show', 'dev', 'br0'])).toContain(`inet ${moved.gateway}/24`);
    const c2 = container(h, 'c2');
    await h.da.attach(movedB, 'ea', c2, { address: `${moved.at(2)}/24`, ifname: 'eth0' });
    expect(links(cb)).toEqual(['lo']); // B's sandbox was re-made as well
    await h.db.attach(movedB, 'eb', cb, { address: `${moved.at(3)}/24`, ifname: 'eth0' });
    const mp = peers([moved.at(2), h.dpA], [moved.at(3), h.dpB]);
    await Promise.all([h.da.setPeers(net.id, mp), h.db.setPeers(net.id, mp)]);
    expect(reaches(c2, moved.at(3))).toBe(true);
  });
});
