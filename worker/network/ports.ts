// Host-mode published ports of the bridge network, as pure functions: checking a container's port
// list, finding a port another endpoint holds, and the nftables text that publishes them. No I/O
// here; bridge.ts runs the commands and persists the ports with the endpoint.
//
// A published port is one element of the bridge table's `published` map, keyed by protocol and
// host port, valued by the container's address and port:
//
//   tcp . 8080 : 172.31.0.2 . 80
//
// The table's prerouting and output chains DNAT what is addressed to any local address of the host
// through that map (see natRuleset in bridge.ts), so publishing and unpublishing a task's ports is
// one `add element` / `delete element` transaction: no rule handles to track, and the rules
// themselves never change.
import { InvalidArgumentError } from '../../common/errors.js';

export type PortProtocol = 'tcp' | 'udp' | 'sctp';
const PROTOCOLS: readonly PortProtocol[] = ['tcp', 'udp', 'sctp'];

/** Traffic to any of the host's addresses on `published` goes to the container's `target`. */
export interface PublishedPort {
  protocol: PortProtocol;
  /** The host's port, 1-65535 (0, "any free port", is not taken here: the manager refuses it for host mode). */
  published: number;
  /** The container's port, 1-65535. */
  target: number;
}

/** `8080/tcp`, as Docker prints it. */
export function portName(p: Pick<PublishedPort, 'protocol' | 'published'>): string {
  return `${p.published}/${p.protocol}`;
}

const isPort = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;

/** Checks a port list for `field`: protocols, port numbers, and no host port twice. Returns it. */
export function checkPorts(ports: readonly PublishedPort[], field = 'ports'): PublishedPort[] {
  const seen = new Set<string>();
  ports.forEach((p, i) => {
    if (!PROTOCOLS.includes(p.protocol)) throw new InvalidArgumentError(`${field}[${i}].protocol`, `must be tcp, udp or sctp, got ${JSON.stringify(p.protocol)}`);
    if (!isPort(p.published)) throw new InvalidArgumentError(`${field}[${i}].published`, `must be a port, 1-65535, got ${JSON.stringify(p.published)}`);
    if (!isPort(p.target)) throw new InvalidArgumentError(`${field}[${i}].target`, `must be a port, 1-65535, got ${JSON.stringify(p.target)}`);
    if (seen.has(portName(p))) throw new InvalidArgumentError(`${field}[${i}].published`, `${portName(p)} is published twice`);
    seen.add(portName(p));
  });
  return [...ports];
}

/** The first of `ports` that another endpoint of `endpoints` publishes already, with that endpoint's id. */
export function portTaken(
  endpoints: Record<string, { ports?: PublishedPort[] | undefined }>,
  endpointId: string,
  ports: readonly PublishedPort[],
): { port: PublishedPort; by: string } | undefined {
  for (const [id, e] of Object.entries(endpoints)) {
    if (id === endpointId) continue;
    for (const port of ports) if ((e.ports ?? []).some((q) => q.protocol === port.protocol && q.published === port.published)) return { port, by: id };
  }
  return undefined;
}

/** The map elements of one endpoint: `tcp . 8080 : 172.31.0.2 . 80, udp . 53 : 172.31.0.2 . 53`. */
export function portElements(address: string, ports: readonly PublishedPort[]): string {
  return ports.map((p) => `${p.protocol} . ${p.published} : ${address} . ${p.target}`).join(', ');
}

/** The nft script that publishes (`add`) or unpublishes (`delete`) an endpoint's ports in one transaction; '' when there are none. */
export function publishScript(table: string, action: 'add' | 'delete', address: string, ports: readonly PublishedPort[]): string {
  if (ports.length === 0) return '';
  const elements = action === 'add' ? portElements(address, ports) : ports.map((p) => `${p.protocol} . ${p.published}`).join(', ');
  return `${action} element ip ${table} published { ${elements} }\n`;
}

/** Parses a persisted port list (bridge state); a message naming the problem, or the ports. */
export function parsePorts(v: unknown): PublishedPort[] | string {
  if (!Array.isArray(v)) return 'ports must be a list';
  for (const p of v as unknown[]) {
    const o = p as Partial<PublishedPort> | null;
    if (typeof o !== 'object' || o === null || !PROTOCOLS.includes(o.protocol as PortProtocol) || !isPort(o.published) || !isPort(o.target))
      return `ports: ${JSON.stringify(p)} is not {protocol, published, target}`;
  }
  return v as PublishedPort[];
}
