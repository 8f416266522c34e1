// Overlay networks' cluster-wide allocation, pure: a network's subnet (the user's, or the next free
// one of the cluster's address pool), its gateway and its VXLAN id (VNI), decided in the
// transaction that creates it; and the addresses of one network (AddressPool), which the
// allocator hands to tasks and nodes. Everything allocated lives in the store (the network's
// ipam and vni, the tasks' and nodes' attachments), so a new leader rebuilds the same state.
import { InvalidArgumentError } from '../../common/errors.js';
import { MAX_VNI } from '../../common/network.js';
import { contains, formatIPv4, formatPrefix, ipv4, overlaps, parsePrefix, sizeOf, within, type Prefix } from '../../common/ipv4.js';
import type { Network, Node } from '../../proto/gen/tswarm/objects.js';
import type { NetworkSpec } from '../../proto/gen/tswarm/specs.js';

import type { IPAMConfig, SkippedSubnet } from '../../proto/gen/tswarm/types.js';

/** Docker's: VNIs below 4096 are left to other uses (e.g. hand-made VXLANs). */
export const FIRST_VNI = 4096;
export const DEFAULT_ADDRESS_POOL = ['10.0.0.0/8'];
export const DEFAULT_SUBNET_SIZE = 24;
/** How many skipped subnets a network records (the reason of each is the same kind of line). */
const MAX_SKIPPED = 16;

/** What the allocator decided for a new network. */
export interface NetworkAllocation {
  ipam: IPAMConfig;
  vni: number;
  skippedSubnets: SkippedSubnet[];
}

/** The cluster's pool, as `swarmd init --default-addr-pool … --default-addr-pool-mask-length N` set it. */
export interface AddressPoolSpec {
  pools: readonly string[];
  subnetSize: number;
}

/** Checks the pool flags (field names are swarmd's flags, which is where they come from). */
export function checkAddressPoolSpec(p: AddressPoolSpec): void {
  if (p.pools.length === 0) throw new InvalidArgumentError('--default-addr-pool', 'names no pool');
  if (!(Number.isInteger(p.subnetSize) && p.subnetSize >= 8 && p.subnetSize <= 29)) {
    throw new InvalidArgumentError('--default-addr-pool-mask-length', `must be 8 to 29, got ${p.subnetSize}`);
  }
  const prefixes = p.pools.map((cidr) => parsePrefix('--default-addr-pool', cidr, { min: 1, max: 29 }));
  prefixes.forEach((a, i) => {
    if (a.length > p.subnetSize) throw new InvalidArgumentError('--default-addr-pool', `${p.pools[i]} is smaller than one subnet of /${p.subnetSize}`);
    prefixes.slice(0, i).forEach((b, j) => {
      if (overlaps(a, b)) throw new InvalidArgumentError('--default-addr-pool', `${p.pools[i]} overlaps ${p.pools[j]}`);
    });
  });
}

/** The network's subnet, gateway and range as prefixes (the network must have been allocated). */
export interface Addressing {
  subnet: Prefix;
  gateway: number;
  /** Where task and node addresses come from: the ip-range, or the subnet. */
  range: Prefix;
}

export function addressingOf(n: Network): Addressing {
  const ipam = n.ipam[0];
  if (!ipam) throw new InvalidArgumentError(`network ${n.spec?.annotations?.name ?? n.id}`, 'has no subnet allocated');
  const subnet = parsePrefix('ipam.subnet', ipam.subnet);
  return { subnet, gateway: ipv4('ipam.gateway', ipam.gateway), range: ipam.range ? parsePrefix('ipam.range', ipam.range) : subnet };
}

function nodeName(n: Node): string {
  return n.description?.hostname || n.id;
}

/**
 * A new network's subnet and VNI. A subnet the user gave must not overlap another network's (nor
 * an address or route of a node: containers could no longer reach it); without one, the pool's
 * subnets are tried in order, passing over those another network holds and those overlapping a
 * node's prefixes (recorded, with the node, as skipped). The spec has been validated.
 */
export function allocateNetwork(spec: NetworkSpec, networks: readonly Network[], nodes: readonly Node[], pool: AddressPoolSpec): NetworkAllocation {
  const taken = networks.flatMap((n) => n.ipam.map((c) => ({ prefix: parsePrefix('subnet', c.subnet), name: n.spec?.annotations?.name ?? n.id })));
  const hostPrefixes = nodes.flatMap((node) =>
    (node.description?.hostPrefixes ?? []).flatMap((cidr) => {
      try {
        return [{ prefix: parsePrefix('hostPrefixes', cidr), node: nodeName(node), cidr }];
      } catch {
        return []; // a node's report is checked where it is read; one bad line must not block networks
      }
    }),
  );
  const vni = nextVni(networks);
  const given = spec.ipam[0];
  if (given?.subnet) {
    const subnet = parsePrefix('spec.ipam[0].subnet', given.subnet);
    const other = taken.find((t) => overlaps(t.prefix, subnet));
    if (other) throw new InvalidArgumentError('spec.ipam[0].subnet', `${given.subnet} overlaps network ${other.name}'s ${formatPrefix(other.prefix)}`);
    const host = hostPrefixes.find((h) => overlaps(h.prefix, subnet));
    if (host) throw new InvalidArgumentError('spec.ipam[0].subnet', `${given.subnet} overlaps ${host.cidr}, an address or route of node ${host.node}`);
    return { ipam: { subnet: formatPrefix(subnet), gateway: given.gateway || formatIPv4(subnet.base + 1), range: given.range }, vni, skippedSubnets: [] };
  }
  const skipped: SkippedSubnet[] = [];
  for (const cidr of pool.pools) {
    const p = parsePrefix('defaultAddressPool', cidr);
    const step = 2 ** (32 - pool.subnetSize);
    for (let base = p.base; base < p.base + sizeOf(p); base += step) {
      const subnet: Prefix = { base, length: pool.subnetSize };
      const holder = taken.find((t) => overlaps(t.prefix, subnet));
      if (holder) {
        // Skip to the end of the holder when it is larger than one subnet.
        if (holder.prefix.length < subnet.length) base = holder.prefix.base + sizeOf(holder.prefix) - step;
        continue;
      }
      const host = hostPrefixes.find((h) => overlaps(h.prefix, subnet));
      if (host) {
        if (skipped.length < MAX_SKIPPED) skipped.push({ subnet: formatPrefix(subnet), reason: `overlaps ${host.cidr}, an address or route of node ${host.node}` });
        if (host.prefix.length < subnet.length) base = Math.max(base, host.prefix.base + sizeOf(host.prefix) - step);
        continue;
      }
      return { ipam: { subnet: formatPrefix(subnet), gateway: formatIPv4(subnet.base + 1), range: '' }, vni, skippedSubnets: skipped };
    }
  }
  throw new InvalidArgumentError('spec.ipam', `the cluster's address pool (${pool.pools.join(', ')} in /${pool.subnetSize}s) has no free subnet left; give one with --subnet, or remove a network`);
}

/** The lowest VNI from FIRST_VNI up that no network holds. */
export function nextVni(networks: readonly Network[]): number {
  const held = new Set(networks.map((n) => n.vni));
  for (let v = FIRST_VNI; v <= MAX_VNI; v++) if (!held.has(v)) return v;
  throw new InvalidArgumentError('network', 'every VXLAN id is taken');
}

/** Checks an address range (`--ip-range`) and gateway against their subnet. */
export function checkIpam(ipam: IPAMConfig, field: string): void {
  const subnet = parsePrefix(`${field}.subnet`, ipam.subnet, { min: 8, max: 29 });
  const first = subnet.base;
  const last = subnet.base + sizeOf(subnet) - 1;
  if (ipam.gateway) {
    const gw = ipv4(`${field}.gateway`, ipam.gateway);
    if (!contains(subnet, gw)) throw new InvalidArgumentError(`${field}.gateway`, `${ipam.gateway} is outside the subnet ${ipam.subnet}`);
    if (gw === first || gw === last) throw new InvalidArgumentError(`${field}.gateway`, `${ipam.gateway} is the subnet's ${gw === first ? 'network' : 'broadcast'} address`);
  }
  if (ipam.range) {
    const range = parsePrefix(`${field}.range`, ipam.range, { min: 8, max: 30 });
    if (!within(range, subnet)) throw new InvalidArgumentError(`${field}.range`, `${ipam.range} is not inside the subnet ${ipam.subnet}`);
  }
}

/**
 * The addresses of one network: which are held, and the next free one. Allocation moves on from
 * the last address given (wrapping), as Docker's does, so an address just released is the last to
 * be given again and no peer keeps an entry for it that points at another endpoint.
 */
export class AddressPool {
  private readonly held = new Set<number>();
  private readonly first: number;
  private readonly last: number;
  private cursor: number;

  constructor(readonly addressing: Addressing) {
    const { subnet, range } = addressing;
    // Neither the subnet's network nor its broadcast address, even when the range touches them.
    this.first = Math.max(range.base, subnet.base + 1);
    this.last = Math.min(range.base + sizeOf(range) - 1, subnet.base + sizeOf(subnet) - 2);
    this.cursor = this.first;
  }

  /** An address in CIDR form with the subnet's length (as attachments carry it). */
  format(address: number): string {
    return `${formatIPv4(address)}/${this.addressing.subnet.length}`;
  }

  /** Marks an address (CIDR or bare) held; false when it is not one of this network's. */
  hold(address: string): boolean {
    const n = ipv4('address', address.split('/')[0]!);
    if (!contains(this.addressing.subnet, n)) return false;
    this.held.add(n);
    return true;
  }

  release(address: string): void {
    this.held.delete(ipv4('address', address.split('/')[0]!));
  }

  isHeld(address: string): boolean {
    return this.held.has(ipv4('address', address.split('/')[0]!));
  }

  /** The next free address (CIDR form), held; undefined when the range is full. */
  take(): string | undefined {
    const count = this.last - this.first + 1;
    for (let i = 0; i < count; i++) {
      const a = this.first + ((this.cursor - this.first + i) % count);
      if (a === this.addressing.gateway || this.held.has(a)) continue;
      this.held.add(a);
      this.cursor = a + 1 > this.last ? this.first : a + 1;
      return this.format(a);
    }
    return undefined;
  }

  /** How many addresses the range holds for endpoints. */
  get capacity(): number {
    return this.last - this.first + 1 - (this.addressing.gateway >= this.first && this.addressing.gateway <= this.last ? 1 : 0);
  }
}
