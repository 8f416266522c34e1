// Address management of a bridge network, as pure functions over a small state record: parsing
// and checking subnets and names, allocating and releasing endpoint addresses, and reading the
// state file's text. No I/O here; bridge.ts persists the record and runs the commands.
import { formatIPv4, macOf, parseIPv4 } from '../../common/ipv4.js';
import { CorruptFileError, InvalidArgumentError } from '../../common/errors.js';
import { parsePorts, portName, type PublishedPort } from './ports.js';

// The IPv4 vocabulary lives in common/ (the managers allocate what the workers program); re-exported for this folder.
export { formatIPv4, macOf, parseIPv4 };

/** An IPv4 subnet in canonical form. */
export interface Subnet {
  /** The network address as an unsigned 32-bit number. */
  network: number;
  prefixLength: number;
  /** `a.b.c.d/len`, host bits zero. */
  cidr: string;
}

/** One container's attachment, as persisted. */
export interface EndpointRecord {
  address: string;
  /** The host end of the veth pair (on the bridge). */
  hostVeth: string;
  /** The container's network namespace (a path). */
  netns: string;
  /** Host-mode published ports (DNAT from the host's addresses to this address); absent: none. */
  ports?: PublishedPort[];
}

/** The persisted state of one bridge network (the JSON file under the driver's state directory). */
export interface BridgeState {
  version: 1;
  bridge: string;
  subnet: string;
  gateway: string;
  /** Endpoint id → attachment. */
  endpoints: Record<string, EndpointRecord>;
}

/**
 * Parses `a.b.c.d/len` for `field`. The prefix must leave room for the gateway and at least one
 * endpoint (8 to 30), and the host bits must be zero (the error names the canonical form).
 */
export function parseSubnet(field: string, cidr: string): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
  const addr = m === null ? undefined : parseIPv4(m[1]!);
  if (m === null || addr === undefined) throw new InvalidArgumentError(field, `must be an IPv4 subnet a.b.c.d/len, got ${JSON.stringify(cidr)}`);
  const prefixLength = Number(m[2]);
  if (prefixLength < 8 || prefixLength > 30) throw new InvalidArgumentError(field, `prefix length must be 8 to 30, got /${prefixLength}`);
  const mask = (0xffffffff << (32 - prefixLength)) >>> 0;
  const network = (addr & mask) >>> 0;
  const canonical = `${formatIPv4(network)}/${prefixLength}`;
  if (network !== addr) throw new InvalidArgumentError(field, `host bits must be zero: ${cidr} (did you mean ${canonical}?)`);
  return { network, prefixLength, cidr: canonical };
}

function size(s: Subnet): number {
  return 2 ** (32 - s.prefixLength);
}

/** The bridge's own address: the first host address of the subnet. */
export function gatewayOf(s: Subnet): string {
  return formatIPv4(s.network + 1);
}

export function contains(s: Subnet, address: string): boolean {
  const a = parseIPv4(address);
  return a !== undefined && a >= s.network && a < s.network + size(s);
}

/**
 * A Linux interface name we accept for `field`: 1 to 15 characters (IFNAMSIZ), a letter first,
 * then letters, digits, '-' and '_' (so it is also a valid nftables identifier).
 */
export function checkInterfaceName(field: string, name: string): string {
  if (!/^[A-Za-z][A-Za-z0-9_-]{0,14}$/.test(name))
    throw new InvalidArgumentError(field, `must be 1-15 characters, a letter then letters, digits, '-' or '_', got ${JSON.stringify(name)}`);
  return name;
}

export function checkEndpointId(id: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id))
    throw new InvalidArgumentError('endpoint id', `must be 1-128 characters of letters, digits, '_', '.' and '-', got ${JSON.stringify(id)}`);
  return id;
}

export function emptyState(bridge: string, subnet: Subnet): BridgeState {
  return { version: 1, bridge, subnet: subnet.cidr, gateway: gatewayOf(subnet), endpoints: {} };
}

/** The lowest address of `subnet` that is not the network, gateway or broadcast address and not in use. */
export function firstFree(subnet: Subnet, used: Iterable<string>): string | undefined {
  const taken = new Set<number>();
  for (const u of used) {
    const n = parseIPv4(u);
    if (n !== undefined) taken.add(n);
  }
  for (let a = subnet.network + 2; a < subnet.network + size(subnet) - 1; a++) if (!taken.has(a)) return formatIPv4(a);
  return undefined;
}

/** Thrown by allocate() when every address is in use. */
export class SubnetFullError extends InvalidArgumentError {
  constructor(readonly cidr: string, readonly inUse: number) {
    super('subnet', `${cidr} has no free address (${inUse} endpoints attached)`);
  }
}

/**
 * A new state with `id` attached at the lowest free address, with its published ports (the caller
 * checks first that no other endpoint holds them: portTaken). The id must not be attached already.
 */
export function allocate(state: BridgeState, id: string, hostVeth: string, netns: string, ports: readonly PublishedPort[] = []): { state: BridgeState; address: string } {
  const subnet = parseSubnet('subnet', state.subnet);
  const address = firstFree(subnet, Object.values(state.endpoints).map((e) => e.address));
  if (address === undefined) throw new SubnetFullError(subnet.cidr, Object.keys(state.endpoints).length);
  const record: EndpointRecord = ports.length > 0 ? { address, hostVeth, netns, ports: [...ports] } : { address, hostVeth, netns };
  return { state: { ...state, endpoints: { ...state.endpoints, [id]: record } }, address };
}

/** A new state where `id` publishes no ports (the task ended; the next task may take them). */
export function withoutPorts(state: BridgeState, id: string): BridgeState {
  const e = state.endpoints[id];
  if (e?.ports === undefined) return state;
  const rest = { ...e };
  delete rest.ports;
  return { ...state, endpoints: { ...state.endpoints, [id]: rest } };
}

/** A new state without `id` (its address free again). */
export function release(state: BridgeState, id: string): BridgeState {
  const endpoints = { ...state.endpoints };
  delete endpoints[id];
  return { ...state, endpoints };
}

/**
 * Reads the state file's text; anything that is not a state this code wrote (bad JSON, missing or
 * mistyped fields, an address outside the subnet or given out twice) is a CorruptFileError naming
 * `path`.
 */
export function parseState(path: string, text: string): BridgeState {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new CorruptFileError(path, `not JSON (${(err as Error).message}); remove it only if no container is attached to the network`);
  }
  const bad = (problem: string): CorruptFileError => new CorruptFileError(path, problem);
  if (typeof v !== 'object' || v === null) throw bad('not a JSON object');
  const o = v as Record<string, unknown>;
  if (o.version !== 1) throw bad(`unknown version ${JSON.stringify(o.version)}`);
  if (typeof o.bridge !== 'string' || typeof o.subnet !== 'string' || typeof o.gateway !== 'string') throw bad('bridge, subnet and gateway must be strings');
  let subnet: Subnet;
  try {
    subnet = parseSubnet('subnet', o.subnet);
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (typeof o.endpoints !== 'object' || o.endpoints === null || Array.isArray(o.endpoints)) throw bad('endpoints must be an object');
  const seen = new Map<string, string>();
  const published = new Map<string, string>();
  for (const [id, e] of Object.entries(o.endpoints as Record<string, unknown>)) {
    const r = e as Partial<EndpointRecord> | null;
    if (typeof r !== 'object' || r === null || typeof r.address !== 'string' || typeof r.hostVeth !== 'string' || typeof r.netns !== 'string')
      throw bad(`endpoint ${JSON.stringify(id)}: address, hostVeth and netns must be strings`);
    if (!contains(subnet, r.address)) throw bad(`endpoint ${JSON.stringify(id)}: address ${r.address} is not in ${subnet.cidr}`);
    const other = seen.get(r.address);
    if (other !== undefined) throw bad(`address ${r.address} is given to both ${JSON.stringify(other)} and ${JSON.stringify(id)}`);
    seen.set(r.address, id);
    if (r.ports !== undefined) {
      const ports = parsePorts(r.ports);
      if (typeof ports === 'string') throw bad(`endpoint ${JSON.stringify(id)}: ${ports}`);
      for (const p of ports) {
        const holder = published.get(portName(p));
        if (holder !== undefined) throw bad(`port ${portName(p)} is published by both ${JSON.stringify(holder)} and ${JSON.stringify(id)}`);
        published.set(portName(p), id);
      }
    }
  }
  return v as BridgeState;
}
