// A container's own service plumbing, in its network namespace, as one nftables table
// (`ip tswarm-svc`) replaced whole in one `nft -f` transaction at every change:
//
//   the embedded DNS   127.0.0.11:53 (UDP and TCP) DNAT'd to the ports swarm-dnsproxy holds there
//                      (a random port: a container's own server on :53 keeps working, as Docker's)
//   the VIPs           each VIP of a service on the container's networks DNAT'd to one of its
//                      serving tasks, chosen by `numgen random` (per connection: conntrack keeps a
//                      connection on its task); no SNAT, so the task sees the client's address
//   a VIP with no task refused at once (TCP reset, ICMP port unreachable) rather than left to time out
//
// Connections to a task that left the backends are flushed from conntrack (conntrack(8)), so that
// neither a TCP connection nor a UDP flow goes on towards a task that is gone: UDP flows at once
// (they have no end of their own), TCP connections after a delay (discovery.ts), so that a request
// in flight when the task left its backends ends normally during its stop grace period.
//
// ruleset() is pure; LoadBalancer is the shell (nsenter + nft, conntrack) through a CommandRunner.
import { CommandError, execRunner, type CommandRunner } from './bridge.js';

export const LB_TABLE = 'tswarm-svc';
export const EMBEDDED_DNS = '127.0.0.11';

export interface VipBackends {
  vip: string;
  /** Addresses of the serving tasks. */
  backends: readonly string[];
}

/** A node on the routing mesh, as a task on the ingress network sends replies back to it. */
export interface MeshNode {
  /** Its address on the ingress network (its sandbox's bridge, whose MAC its forwarded packets carry). */
  address: string;
  mac: string;
  /** The connection mark, and routing table, of connections that came in through it. */
  mark: number;
}

export interface LbState {
  /** The proxy's ports in the container's namespace (swarm-dnsproxy). */
  dnsUdpPort: number;
  dnsTcpPort: number;
  vips: readonly VipBackends[];
  /** The container is on the ingress network, through this interface: replies go back to the node a request came in on. */
  ingress?: { ifname: string; nodes: readonly MeshNode[] };
}

/** The mark (and routing table) of a mesh node: from the low 16 bits of its ingress address, above the kernel's tables. */
export function meshMark(address: string): number {
  const [, , c, d] = address.split('.').map(Number) as [number, number, number, number];
  return 0x10000 + c * 256 + d;
}

/** The table as `nft -f` input: made if missing, deleted, made again (one transaction). */
export function ruleset(s: LbState): string {
  const lines = [
    `table ip ${LB_TABLE} {}`,
    `delete table ip ${LB_TABLE}`,
    `table ip ${LB_TABLE} {`,
    '  chain nat-output {',
    '    type nat hook output priority -100; policy accept;',
    `    ip daddr ${EMBEDDED_DNS} udp dport 53 dnat to ${EMBEDDED_DNS}:${s.dnsUdpPort}`,
    `    ip daddr ${EMBEDDED_DNS} tcp dport 53 dnat to ${EMBEDDED_DNS}:${s.dnsTcpPort}`,
  ];
  const vips = [...s.vips].sort((a, b) => (a.vip < b.vip ? -1 : a.vip > b.vip ? 1 : 0));
  const served = vips.filter((v) => v.backends.length > 0);
  const empty = vips.filter((v) => v.backends.length === 0);
  for (const v of served) {
    const map = v.backends.map((b, i) => `${i} : ${b}`).join(', ');
    lines.push(`    ip daddr ${v.vip} dnat to numgen random mod ${v.backends.length} map { ${map} }`);
  }
  lines.push('  }');
  if (empty.length > 0) {
    const set = empty.map((v) => v.vip).join(', ');
    lines.push(
      '  chain filter-output {',
      '    type filter hook output priority filter; policy accept;',
      `    ip daddr { ${set} } meta l4proto tcp reject with tcp reset`,
      `    ip daddr { ${set} } reject with icmp type port-unreachable`,
      '  }',
    );
  }
  const mesh = s.ingress && s.ingress.nodes.length > 0 ? s.ingress : undefined;
  if (mesh) {
    // A connection that came in on the ingress interface is marked with the node it came through
    // (the source MAC: that node's sandbox bridge routed it); its replies carry the mark, and the
    // mark's routing table sends them back through that node (routes(), below).
    const map = [...mesh.nodes].sort((a, b) => a.mark - b.mark).map((n) => `${n.mac} : ${n.mark}`).join(', ');
    lines.push(
      '  chain mesh-mark {',
      '    type filter hook prerouting priority mangle; policy accept;',
      `    iifname "${mesh.ifname}" ct state new ct mark set ether saddr map { ${map} }`,
      '  }',
      '  chain mesh-route {',
      '    type route hook output priority mangle; policy accept;',
      '    ct mark != 0 meta mark set ct mark',
      '  }',
    );
  }
  lines.push('}', '');
  return lines.join('\n');
}

/** The mesh rules present (from `ip -j rule show`): their marks. */
export function parseMeshRules(json: string): number[] {
  const rules = JSON.parse(json || '[]') as { priority?: number; fwmark?: string; table?: string }[];
  return rules.filter((r) => r.priority === MESH_RULE_PRIORITY && r.fwmark !== undefined).map((r) => Number(r.fwmark));
}

const MESH_RULE_PRIORITY = 1000;

/**
 * `ip -batch` lines: per mesh node, a rule from its mark to its table (added when missing) and
 * the table's default route through the node; the rules of nodes gone, deleted.
 */
export function meshRoutes(s: LbState, present: readonly number[]): string {
  const mesh = s.ingress;
  const out: string[] = [];
  const wanted = new Set((mesh?.nodes ?? []).map((n) => n.mark));
  for (const m of present) if (!wanted.has(m)) out.push(`rule del fwmark ${m} table ${m} priority ${MESH_RULE_PRIORITY}`);
  for (const n of mesh?.nodes ?? []) {
    if (!present.includes(n.mark)) out.push(`rule add fwmark ${n.mark} table ${n.mark} priority ${MESH_RULE_PRIORITY}`);
    out.push(`route replace default via ${n.address} dev ${mesh!.ifname} table ${n.mark}`);
  }
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}

/** The backends `before` had that `after` has not (their connections are to be flushed). */
export function withdrawn(before: LbState | undefined, after: LbState): string[] {
  if (!before) return [];
  const now = new Set(after.vips.flatMap((v) => v.backends));
  return [...new Set(before.vips.flatMap((v) => v.backends))].filter((b) => !now.has(b));
}

export class LoadBalancer {
  constructor(private readonly runner: CommandRunner = execRunner) {}

  /** Puts `s` in force in the namespace (one transaction). */
  async apply(netns: string, s: LbState): Promise<void> {
    await this.runner(['nsenter', `--net=${netns}`, '--', 'nft', '-f', '-'], ruleset(s));
    if (!s.ingress) return;
    const present = parseMeshRules(await this.runner(['nsenter', `--net=${netns}`, '--', 'ip', '-j', 'rule', 'show']));
    const routes = meshRoutes(s, present);
    if (routes) await this.runner(['nsenter', `--net=${netns}`, '--', 'ip', '-batch', '-'], routes);
  }

  /**
   * Deletes the namespace's conntrack entries whose reply comes from one of `addrs` (its
   * connections through a VIP to those tasks, and any made straight to them), of one protocol or
   * all. conntrack exits 1 when it deleted nothing, which is not a failure here.
   */
  async flush(netns: string, addrs: readonly string[], protocol?: 'udp' | 'tcp'): Promise<void> {
    for (const a of addrs) {
      try {
        await this.runner(['nsenter', `--net=${netns}`, '--', 'conntrack', '-D', ...(protocol ? ['-p', protocol] : []), '--reply-src', a]);
      } catch (err) {
        if (err instanceof CommandError && /0 flow entries have been deleted/.test(err.stderr)) continue;
        throw err;
      }
    }
  }
}
