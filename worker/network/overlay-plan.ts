// The pure part of the VXLAN overlay driver (overlay.ts): checks of its inputs, the names of its
// namespaces and devices, the MTU rule, the parsing of what ip(8) and bridge(8) print as JSON, and
// what must be done to bring a sandbox, an endpoint or the static peer entries from what is
// present to what is wanted, as ip/bridge batch lines. No I/O here; overlay.ts runs the lines.
import { MAX_VNI, MIN_MTU, VXLAN_OVERHEAD } from '../../common/network.js';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { InvalidArgumentError } from '../../common/errors.js';
import { contains, macOf, parseIPv4, parseSubnet, type Subnet } from './ipam.js';

/** One overlay network as the managers' store describes it. */
export interface OverlayNetwork {
  id: string;
  /** The VXLAN network identifier, 1 to 16777215. */
  vni: number;
  /** CIDR, host bits zero. */
  subnet: string;
  /** IPv4, inside the subnet; held by the sandbox's bridge on every node. */
  gateway: string;
  /** 0: auto (the underlay's MTU less VXLAN_OVERHEAD). */
  mtu: number;
  /** CIDR: this node's own address on the network, held by the sandbox's bridge. */
  nodeAddress?: string;
  /** The VXLAN UDP port (the cluster's, on every node alike); default: the driver's. */
  dataPathPort?: number;
  /** The routing mesh's network: its sandbox is also linked to the host (see ingressLinkPlan). */
  ingress?: boolean;
}

/** An address on the network (a container's or a node's) and the data-path address of its node. */
export interface OverlayPeer {
  address: string;
  vtep: string;
}

export const DEFAULT_SANDBOX_PREFIX = 'tswov';
/** The smallest MTU the auto rule may give (IPv4's minimum datagram every host must accept). */
export const MIN_AUTO_MTU = 576;
/** The sandbox's bridge: one per namespace, so a fixed name. */
export const SANDBOX_BRIDGE = 'br0';

/** A network after checkNetwork: the strings parsed, the node's address split. */
export interface CheckedNetwork {
  id: string;
  vni: number;
  subnet: Subnet;
  gateway: string;
  /** As given: 0 is auto. */
  mtu: number;
  /** This node's address on the network (without prefix length) and the bridge's MAC derived from it. */
  node?: { address: string; mac: string };
  dataPathPort?: number;
  ingress?: boolean;
}

/** A network id we accept: it is part of a namespace's file name and of hashed device names. */
export function checkNetworkId(id: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id))
    throw new InvalidArgumentError('network id', `must be 1-128 characters of letters, digits, '_', '.' and '-', a letter or digit first, got ${JSON.stringify(id)}`);
  return id;
}

/**
 * The prefix of the sandbox namespaces' names: letters and digits only, so that the first '-' of
 * `<prefix>-<network id>` ends it and list() reads the network id back unambiguously.
 */
export function checkSandboxPrefix(prefix: string): string {
  if (!/^[A-Za-z][A-Za-z0-9]{0,31}$/.test(prefix))
    throw new InvalidArgumentError('sandboxPrefix', `must be 1-32 letters and digits, a letter first, got ${JSON.stringify(prefix)}`);
  return prefix;
}

export function checkIPv4(field: string, s: string): string {
  if (parseIPv4(s) === undefined) throw new InvalidArgumentError(field, `must be an IPv4 address a.b.c.d, got ${JSON.stringify(s)}`);
  return s;
}

/**
 * An interface address on the network for `field`: `a.b.c.d/len` with the subnet's prefix length,
 * inside the subnet, and not its network, broadcast or gateway address.
 */
export function checkHostAddress(field: string, cidr: string, subnet: Subnet, gateway: string): { address: string; prefixLength: number } {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
  if (m === null || parseIPv4(m[1]!) === undefined) throw new InvalidArgumentError(field, `must be an IPv4 address with prefix length, a.b.c.d/len, got ${JSON.stringify(cidr)}`);
  const address = m[1]!;
  const prefixLength = Number(m[2]);
  if (prefixLength !== subnet.prefixLength) throw new InvalidArgumentError(field, `prefix length must be the subnet's, /${subnet.prefixLength} (${subnet.cidr}), got ${cidr}`);
  if (!contains(subnet, address)) throw new InvalidArgumentError(field, `${address} is not in the subnet ${subnet.cidr}`);
  const n = parseIPv4(address)!;
  if (n === subnet.network || n === subnet.network + 2 ** (32 - prefixLength) - 1) throw new InvalidArgumentError(field, `${address} is the network or broadcast address of ${subnet.cidr}`);
  if (address === gateway) throw new InvalidArgumentError(field, `${address} is the network's gateway`);
  return { address, prefixLength };
}

/** Checks a network description, naming the field at fault. */
export function checkNetwork(net: OverlayNetwork): CheckedNetwork {
  const id = checkNetworkId(net.id);
  if (!(Number.isInteger(net.vni) && net.vni >= 1 && net.vni <= MAX_VNI)) throw new InvalidArgumentError('vni', `must be an integer from 1 to ${MAX_VNI}, got ${net.vni}`);
  const subnet = parseSubnet('subnet', net.subnet);
  checkIPv4('gateway', net.gateway);
  if (!contains(subnet, net.gateway) || parseIPv4(net.gateway) === subnet.network || parseIPv4(net.gateway) === subnet.network + 2 ** (32 - subnet.prefixLength) - 1)
    throw new InvalidArgumentError('gateway', `${net.gateway} is not a host address of the subnet ${subnet.cidr}`);
  if (!(Number.isInteger(net.mtu) && net.mtu >= 0)) throw new InvalidArgumentError('mtu', `must be 0 (auto) or an integer from ${MIN_MTU}, got ${net.mtu}`);
  if (net.dataPathPort !== undefined && !(Number.isInteger(net.dataPathPort) && net.dataPathPort >= 1 && net.dataPathPort <= 65535))
    throw new InvalidArgumentError('dataPathPort', `must be an integer from 1 to 65535, got ${net.dataPathPort}`);
  const checked: CheckedNetwork = { id, vni: net.vni, subnet, gateway: net.gateway, mtu: net.mtu, ...(net.dataPathPort !== undefined ? { dataPathPort: net.dataPathPort } : {}), ...(net.ingress ? { ingress: true } : {}) };
  if (net.nodeAddress !== undefined) {
    const { address } = checkHostAddress('nodeAddress', net.nodeAddress, subnet, net.gateway);
    checked.node = { address, mac: macOf(address) };
  }
  return checked;
}

/** The peers with their fields checked, duplicates dropped; one address with two VTEPs is refused. */
export function checkPeers(peers: readonly OverlayPeer[]): OverlayPeer[] {
  const byAddress = new Map<string, OverlayPeer>();
  peers.forEach((p, i) => {
    checkIPv4(`peers[${i}].address`, p.address);
    checkIPv4(`peers[${i}].vtep`, p.vtep);
    const other = byAddress.get(p.address);
    if (other !== undefined && other.vtep !== p.vtep)
      throw new InvalidArgumentError(`peers[${i}].vtep`, `${p.address} is given two VTEPs, ${other.vtep} and ${p.vtep}`);
    byAddress.set(p.address, { address: p.address, vtep: p.vtep });
  });
  return [...byAddress.values()];
}

/** A namespace given by name (under /run/netns) or by path, as a path. */
export function netnsPath(ns: string): string {
  return ns.includes('/') ? ns : path.join('/run/netns', ns);
}

/** The sandbox namespace of a network: `<prefix>-<network id>` under /run/netns. */
export function sandboxName(prefix: string, networkId: string): string {
  return `${prefix}-${networkId}`;
}

/** The network id of a sandbox namespace's name, or undefined when the name is not one of `prefix`'s. */
export function networkIdOf(prefix: string, nsName: string): string | undefined {
  if (!nsName.startsWith(`${prefix}-`)) return undefined;
  const id = nsName.slice(prefix.length + 1);
  return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id) ? id : undefined;
}

/** The sandbox's VXLAN device: `vx-<vni>` (at most 11 characters), so `ip link` shows the VNI. */
export function vxlanName(vni: number): string {
  return `vx-${vni}`;
}

/**
 * The host end of an endpoint's veth pair, in the sandbox: `tso` and 12 hex digits of
 * sha256(network id, endpoint id) — 15 characters (IFNAMSIZ), stable, so that a restarted worker
 * finds the device of an endpoint it attached before.
 */
export function hostVethName(networkId: string, endpointId: string): string {
  return `tso${createHash('sha256').update(`${networkId}\0${endpointId}`).digest('hex').slice(0, 12)}`;
}

/** The underlay: the host-namespace interface that holds the data-path address. */
export interface Underlay {
  ifname: string;
  mtu: number;
}

/**
 * The MTU of the overlay: `requested` when not 0, which must leave room for the encapsulation on
 * the underlay (≤ underlay − VXLAN_OVERHEAD) and be at least MIN_MTU; 0 is auto, the underlay's
 * less the overhead (what Docker does), so that an encapsulated full-size frame is one underlay
 * packet and never fragmented.
 */
export function overlayMtu(requested: number, underlay: Underlay): number {
  const max = underlay.mtu - VXLAN_OVERHEAD;
  const why = `the MTU of ${underlay.ifname}, ${underlay.mtu}, less ${VXLAN_OVERHEAD} for the VXLAN encapsulation`;
  if (requested === 0) {
    if (max < MIN_AUTO_MTU) throw new InvalidArgumentError('mtu', `auto would be ${max} (${why}), below ${MIN_AUTO_MTU}`);
    return max;
  }
  if (requested < MIN_MTU || requested > max) throw new InvalidArgumentError('mtu', `must be ${MIN_MTU} to ${max} (${why}), got ${requested}`);
  return requested;
}

// What `ip -j [-d] addr show` prints of a link (the fields read here).
interface IpAddrLink {
  ifname?: unknown;
  mtu?: unknown;
  flags?: unknown;
  master?: unknown;
  address?: unknown;
  linkinfo?: { info_kind?: unknown; info_data?: Record<string, unknown> };
  addr_info?: { family?: unknown; local?: unknown; prefixlen?: unknown }[];
}

function jsonArray(text: string): unknown[] {
  const v: unknown = JSON.parse(text.trim() === '' ? '[]' : text);
  if (!Array.isArray(v)) throw new SyntaxError(`expected a JSON array, got ${text.slice(0, 80)}`);
  return v;
}

/** The interface of `ip -j addr show` (host namespace) that holds `address`, or undefined. */
export function parseUnderlay(ipAddrJson: string, address: string): Underlay | undefined {
  for (const l of jsonArray(ipAddrJson) as IpAddrLink[]) {
    if (typeof l.ifname !== 'string' || typeof l.mtu !== 'number') continue;
    if ((l.addr_info ?? []).some((a) => a.family === 'inet' && a.local === address)) return { ifname: l.ifname, mtu: l.mtu };
  }
  return undefined;
}

/** A link of the sandbox, as `ip -j -d addr show` describes it. */
export interface SandboxLink {
  ifname: string;
  /** `bridge`, `vxlan`, `veth`; undefined for lo and plain devices. */
  kind: string | undefined;
  mtu: number;
  up: boolean;
  master: string | undefined;
  mac: string;
  /** The IPv4 addresses, `a.b.c.d/len`. */
  addresses: string[];
  /** For a vxlan device. */
  vxlan?: { id: number; local: string | undefined; port: number; learning: boolean; proxy: boolean };
}

export function parseLinks(ipAddrJson: string): SandboxLink[] {
  return (jsonArray(ipAddrJson) as IpAddrLink[]).flatMap((l): SandboxLink[] => {
    if (typeof l.ifname !== 'string') return [];
    const kind = typeof l.linkinfo?.info_kind === 'string' ? l.linkinfo.info_kind : undefined;
    const link: SandboxLink = {
      ifname: l.ifname,
      kind,
      mtu: typeof l.mtu === 'number' ? l.mtu : 0,
      up: Array.isArray(l.flags) && l.flags.includes('UP'),
      master: typeof l.master === 'string' ? l.master : undefined,
      mac: typeof l.address === 'string' ? l.address : '',
      addresses: (l.addr_info ?? []).filter((a) => a.family === 'inet' && typeof a.local === 'string').map((a) => `${a.local as string}/${Number(a.prefixlen)}`),
    };
    const d = l.linkinfo?.info_data;
    if (kind === 'vxlan' && d !== undefined)
      link.vxlan = {
        id: Number(d.id),
        local: typeof d.local === 'string' ? d.local : undefined,
        port: Number(d.port),
        learning: d.learning === true,
        proxy: d.proxy === true,
      };
    return [link];
  });
}

/** What the sandbox must hold: the checked network, the MTU in force and the data path. */
export interface SandboxWant {
  net: CheckedNetwork;
  mtu: number;
  /** The namespace's path, for the vxlan device's creation. */
  sandboxPath: string;
  dataPathAddr: string;
  dataPathPort: number;
}

/**
 * How to bring a sandbox to what is wanted:
 *
 * - `remake`: the sandbox was made for another VNI or subnet (its endpoints' addresses mean nothing
 *   on this network): delete it and make it anew; the reason says which;
 * - otherwise `before` (ip batch lines in the sandbox: a vxlan device of the wrong data path is
 *   deleted), `vxlan` (the ip line, run in the HOST namespace, that makes the vxlan device: its UDP
 *   socket lives where it is made, while the `netns` argument puts the device itself in the
 *   sandbox; undefined when the right one is there), then `after` (ip batch lines in the sandbox:
 *   the bridge, its addresses, MAC, MTU, the vxlan device enslaved and up).
 *
 * `present` undefined is a new, empty namespace.
 */
export function sandboxPlan(want: SandboxWant, present: readonly SandboxLink[] = []): { remake?: string; before: string[]; vxlan: string | undefined; after: string[] } {
  const { net, mtu } = want;
  const vx = vxlanName(net.vni);
  const wantAddrs = [`${net.gateway}/${net.subnet.prefixLength}`, ...(net.node ? [`${net.node.address}/${net.subnet.prefixLength}`] : [])];
  const br = present.find((l) => l.ifname === SANDBOX_BRIDGE);
  for (const l of present) {
    if (l.vxlan !== undefined && l.vxlan.id !== net.vni) return { remake: `it holds ${l.ifname}, VNI ${l.vxlan.id}, not ${net.vni}`, before: [], vxlan: undefined, after: [] };
  }
  for (const a of br?.addresses ?? []) {
    const [addr, len] = a.split('/') as [string, string];
    if (Number(len) !== net.subnet.prefixLength || !contains(net.subnet, addr)) return { remake: `its bridge holds ${a}, outside ${net.subnet.cidr}`, before: [], vxlan: undefined, after: [] };
  }
  const before: string[] = [];
  const after: string[] = [];
  if (br !== undefined && br.kind !== 'bridge') before.push(`link del dev ${SANDBOX_BRIDGE}`);
  if (br === undefined || br.kind !== 'bridge') after.push(`link add name ${SANDBOX_BRIDGE} mtu ${mtu} type bridge`);
  for (const a of br?.kind === 'bridge' ? br.addresses : []) if (!wantAddrs.includes(a)) after.push(`addr del ${a} dev ${SANDBOX_BRIDGE}`);
  for (const a of wantAddrs) if (br?.kind !== 'bridge' || !br.addresses.includes(a)) after.push(`addr add ${a} dev ${SANDBOX_BRIDGE}`);
  const mac = net.node ? ` address ${net.node.mac}` : '';
  if (br?.kind !== 'bridge' || br.mtu !== mtu || !br.up || (net.node !== undefined && br.mac !== net.node.mac)) after.push(`link set dev ${SANDBOX_BRIDGE} mtu ${mtu}${mac} up`);

  const dev = present.find((l) => l.ifname === vx);
  const right =
    dev?.vxlan !== undefined && dev.vxlan.local === want.dataPathAddr && dev.vxlan.port === want.dataPathPort && !dev.vxlan.learning && dev.vxlan.proxy;
  // Other vxlan devices (of the same VNI: another is a remake above) are strays of an older version.
  for (const l of present) if (l.kind === 'vxlan' && l.ifname !== vx) before.push(`link del dev ${l.ifname}`);
  if (dev !== undefined && !right) before.push(`link del dev ${vx}`);
  const vxlan = right
    ? undefined
    : `link add name ${vx} mtu ${mtu} netns ${want.sandboxPath} type vxlan id ${net.vni} local ${want.dataPathAddr} dstport ${want.dataPathPort} nolearning proxy`;
  if (!right || dev.mtu !== mtu || dev.master !== SANDBOX_BRIDGE || !dev.up) after.push(`link set dev ${vx} mtu ${mtu} master ${SANDBOX_BRIDGE} up`);
  return { before, vxlan, after };
}

/** An endpoint's veth pair, as attach makes it. */
export interface EndpointWant {
  hostVeth: string;
  /** The container's namespace, a path. */
  containerNetns: string;
  ifname: string;
  address: string;
  prefixLength: number;
  mac: string;
  mtu: number;
}

/**
 * The ip batch lines of an endpoint: `sandbox` (run in the sandbox) makes the pair with its
 * container end directly in the container's namespace (a namespace move costs the kernel an RCU
 * grace period) and puts the host end on the bridge; `container` (run in the container's
 * namespace) gives the container end its address and brings it and lo up. No default route: the
 * overlay is reached by the subnet's connected route, the way out is another network's.
 *
 * `adopt`: the host end exists already (a restarted worker attaching what it attached before):
 * nothing is made, what may be missing is set again (`addr replace`, so that an address in use is
 * not withdrawn, even for a moment).
 */
export function endpointLines(e: EndpointWant, adopt = false): { sandbox: string[]; container: string[] } {
  const addr = `${e.address}/${e.prefixLength}`;
  if (adopt)
    return {
      sandbox: [`link set dev ${e.hostVeth} mtu ${e.mtu} master ${SANDBOX_BRIDGE} up`],
      container: [`link set dev ${e.ifname} mtu ${e.mtu} address ${e.mac}`, `addr replace ${addr} dev ${e.ifname}`, `link set dev ${e.ifname} up`, 'link set dev lo up'],
    };
  return {
    sandbox: [
      `link add name ${e.hostVeth} mtu ${e.mtu} type veth peer name ${e.ifname} mtu ${e.mtu} address ${e.mac} netns ${e.containerNetns}`,
      `link set dev ${e.hostVeth} master ${SANDBOX_BRIDGE} up`,
    ],
    container: [`addr add ${addr} dev ${e.ifname}`, `link set dev ${e.ifname} up`, 'link set dev lo up'],
  };
}

/** A forwarding entry of the vxlan device itself (`self`): frames to `mac` go to the VTEP `dst`. */
export interface FdbEntry {
  mac: string;
  /** undefined: an entry without a remote (not one of ours). */
  dst: string | undefined;
  permanent: boolean;
}

/**
 * The vxlan device's own entries from `bridge -j fdb show dev <vxlan>`. The entries with a `master`
 * are the bridge's (what br0 learned or holds for that port) and are the bridge's business.
 */
export function parseFdb(json: string): FdbEntry[] {
  return (jsonArray(json) as { mac?: unknown; dst?: unknown; master?: unknown; flags?: unknown; state?: unknown }[]).flatMap((e) =>
    typeof e.mac === 'string' && e.master === undefined && Array.isArray(e.flags) && e.flags.includes('self')
      ? [{ mac: e.mac, dst: typeof e.dst === 'string' ? e.dst : undefined, permanent: e.state === 'permanent' }]
      : [],
  );
}

/** A neighbour entry of the vxlan device: what its ARP proxy answers for `address`. */
export interface NeighEntry {
  address: string;
  mac: string | undefined;
  permanent: boolean;
}

/** From `ip -4 -j neigh show dev <vxlan>`. */
export function parseNeigh(json: string): NeighEntry[] {
  return (jsonArray(json) as { dst?: unknown; lladdr?: unknown; state?: unknown }[]).flatMap((e) =>
    typeof e.dst === 'string'
      ? [{ address: e.dst, mac: typeof e.lladdr === 'string' ? e.lladdr : undefined, permanent: Array.isArray(e.state) && e.state.includes('PERMANENT') }]
      : [],
  );
}

/**
 * The batch lines (`fdb`: bridge(8), `neigh`: ip(8)) that make the vxlan device's static entries
 * exactly `peers`: for each peer on another node (its VTEP is not `localVtep`), the FDB entry
 * `MAC → VTEP` and the neighbour entry `address → MAC`, both permanent, the MAC derived from the
 * address (macOf); every other entry of the device is deleted — including an all-zero MAC, the
 * default destination that would flood broadcasts and unknown unicasts to a VTEP: the managers'
 * store says where every address is, so nothing is flooded and nothing learned. Deletions come
 * first in each list, so that a MAC that moved to another VTEP ends with one destination.
 */
export function peerPlan(vxlanDev: string, localVtep: string, peers: readonly OverlayPeer[], fdb: readonly FdbEntry[], neigh: readonly NeighEntry[]): { fdb: string[]; neigh: string[] } {
  const remote = peers.filter((p) => p.vtep !== localVtep);
  const wantFdb = new Map(remote.map((p) => [macOf(p.address), p.vtep]));
  const wantNeigh = new Map(remote.map((p) => [p.address, macOf(p.address)]));
  const fdbDel: string[] = [];
  const fdbSet: string[] = [];
  const kept = new Set<string>();
  for (const e of fdb) {
    if (e.dst !== undefined && wantFdb.get(e.mac) === e.dst && e.permanent && !kept.has(e.mac)) kept.add(e.mac);
    else fdbDel.push(`fdb del ${e.mac} dev ${vxlanDev}${e.dst === undefined ? '' : ` dst ${e.dst}`} self`);
  }
  for (const [mac, vtep] of wantFdb) if (!kept.has(mac)) fdbSet.push(`fdb replace ${mac} dev ${vxlanDev} dst ${vtep} self permanent`);
  const neighDel: string[] = [];
  const neighSet: string[] = [];
  const present = new Set<string>();
  for (const e of neigh) {
    const mac = wantNeigh.get(e.address);
    if (mac === undefined) neighDel.push(`neigh del ${e.address} dev ${vxlanDev}`);
    else if (e.mac === mac && e.permanent) present.add(e.address);
  }
  for (const [address, mac] of wantNeigh) if (!present.has(address)) neighSet.push(`neigh replace ${address} lladdr ${mac} dev ${vxlanDev} nud permanent`);
  return { fdb: [...fdbDel, ...fdbSet], neigh: [...neighDel, ...neighSet] };
}

/** The host namespace's nft table that keeps the VXLAN packets out of connection tracking. */
export const NOTRACK_TABLE = 'tswarm-overlay';

/**
 * The `nft -f` script that (re)makes NOTRACK_TABLE for these data-path ports, in one transaction:
 * the outer UDP packets of the overlays are neither conntracked on the way out nor on the way in.
 * Where a NAT table (the node's bridge) has turned connection tracking on, every encapsulated
 * packet would otherwise cost a lookup and an entry, for a flow no rule ever looks at.
 */
export function notrackRuleset(ports: readonly number[]): string {
  const set = `{ ${[...ports].sort((a, b) => a - b).join(', ')} }`;
  return [
    `table ip ${NOTRACK_TABLE} {}`,
    `delete table ip ${NOTRACK_TABLE}`,
    `table ip ${NOTRACK_TABLE} {`,
    '  chain prerouting {',
    '    type filter hook prerouting priority raw; policy accept;',
    `    udp dport ${set} notrack`,
    '  }',
    '  chain output {',
    '    type filter hook output priority raw; policy accept;',
    `    udp dport ${set} notrack`,
    '  }',
    '}',
    '',
  ].join('\n');
}


/**
 * The ingress sandbox's link to the host: a veth pair (the host's end `tswig0`, the sandbox's
 * `hl0`) on a link-local /30, a route on the host to the ingress subnet through the sandbox, the
 * sandbox's default route back to the host, and forwarding on in both. A published port's packet
 * is DNAT'd on the host to a task's ingress address (worker/network/mesh.ts) and routed through
 * here onto the overlay; the task's reply comes back the same way, so the host's conntrack undoes
 * the DNAT: no SNAT anywhere, the task sees the client's address.
 */
export const INGRESS_LINK = { host: 'tswig0', sandbox: 'hl0', hostAddress: '169.254.253.1', sandboxAddress: '169.254.253.2', prefixLength: 30 } as const;

export function ingressLinkPlan(n: CheckedNetwork, sandboxName: string): { host: string[]; sandbox: string[] } {
  const L = INGRESS_LINK;
  return {
    host: [
      `link add ${L.host} type veth peer name ${L.sandbox} netns ${sandboxName}`,
      `addr add ${L.hostAddress}/${L.prefixLength} dev ${L.host}`,
      `link set ${L.host} up`,
      `route replace ${n.subnet.cidr} via ${L.sandboxAddress} dev ${L.host}`,
    ],
    sandbox: [`addr add ${L.sandboxAddress}/${L.prefixLength} dev ${L.sandbox}`, `link set ${L.sandbox} up`, `route replace default via ${L.hostAddress} dev ${L.sandbox}`],
  };
}
