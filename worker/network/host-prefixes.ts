// What a node reports about its own network to the managers, which allocate no overlay subnet
// overlapping it: the IPv4 prefixes of its interface addresses and of its routes (the default
// route excepted: it covers everything). Parsing is pure; reading runs `ip -j` in the node's
// network namespace.
import { formatPrefix, maskOf, parseIPv4, type Prefix } from '../../common/ipv4.js';
import { CommandError, type CommandRunner } from './bridge.js';

interface IpAddrJson {
  ifname?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

interface IpRouteJson {
  dst?: string;
}

function prefixOf(address: string, length: number): Prefix | undefined {
  const a = parseIPv4(address);
  if (a === undefined || !(length >= 0 && length <= 32)) return undefined;
  return { base: (a & maskOf(length)) >>> 0, length };
}

/** The prefixes of `ip -j -4 addr show` and `ip -j -4 route show` output, each once, sorted; loopback's left out. */
export function parseHostPrefixes(addrJson: string, routeJson: string): string[] {
  const out = new Set<string>();
  for (const link of JSON.parse(addrJson) as IpAddrJson[]) {
    if (link.ifname === 'lo') continue;
    for (const a of link.addr_info ?? []) {
      if (a.family !== 'inet' || a.local === undefined || a.prefixlen === undefined) continue;
      const p = prefixOf(a.local, a.prefixlen);
      if (p) out.add(formatPrefix(p));
    }
  }
  for (const r of JSON.parse(routeJson) as IpRouteJson[]) {
    if (!r.dst || r.dst === 'default') continue;
    const [addr, len] = r.dst.split('/');
    const p = prefixOf(addr!, len === undefined ? 32 : Number(len));
    if (p && p.length > 0) out.add(formatPrefix(p));
  }
  return [...out].sort();
}

/** The IPv4 addresses of `ip -j -4 addr show` output, loopback's included. */
export function parseHostAddresses(addrJson: string): string[] {
  return (JSON.parse(addrJson) as IpAddrJson[]).flatMap((l) => (l.addr_info ?? []).flatMap((a) => (a.family === 'inet' && a.local !== undefined ? [a.local] : [])));
}

/**
 * This node's network as it reports it and checks its data-path address against: the prefixes
 * (see parseHostPrefixes) and the addresses, from one `ip addr` and one `ip route`.
 */
export async function readHostNetwork(runner: CommandRunner): Promise<{ prefixes: string[]; addresses: string[] }> {
  const [addrs, routes] = await Promise.all([runner(['ip', '-j', '-4', 'addr', 'show']), runner(['ip', '-j', '-4', 'route', 'show'])]);
  try {
    return { prefixes: parseHostPrefixes(addrs, routes), addresses: parseHostAddresses(addrs) };
  } catch (err) {
    throw new CommandError(['ip', '-j', '-4', 'addr|route', 'show'], `unreadable output: ${(err as Error).message}`, { cause: err });
  }
}
