// The routing mesh on a node: every ingress-mode published port of the cluster, on every address
// of the node, DNAT'd to one of the service's tasks on the ingress network (numgen random per
// connection), in the host's namespace as one nftables table (`ip tswarm-mesh`) replaced whole in
// one `nft -f` transaction. The packet then goes through the ingress sandbox's link onto the
// overlay (overlay-plan.ts, ingressLinkPlan) with the client's own address as its source: no
// SNAT. The task sends its reply back to the node the request came in on (service-lb.ts: its
// connection is marked by the MAC it came from, and routed back there), so this host's conntrack
// undoes the DNAT. Pure, but for MeshTable.apply.
import { execRunner, type CommandRunner } from './bridge.js';

export const MESH_TABLE = 'tswarm-mesh';

export interface MeshPort {
  protocol: 'tcp' | 'udp' | 'sctp';
  published: number;
  target: number;
  /** The serving tasks' addresses on the ingress network. */
  backends: readonly string[];
}

/** The table as `nft -f` input (made if missing, deleted, made again: one transaction). */
export function meshRuleset(ports: readonly MeshPort[]): string {
  const rules: string[] = [];
  const sorted = [...ports].sort((a, b) => a.published - b.published || (a.protocol < b.protocol ? -1 : 1));
  for (const p of sorted) {
    if (p.backends.length === 0) continue; // nothing listens: the kernel refuses the connection
    const map = p.backends.map((b, i) => `${i} : ${b}`).join(', ');
    rules.push(`    fib daddr type local ${p.protocol} dport ${p.published} dnat to numgen random mod ${p.backends.length} map { ${map} } : ${p.target}`);
  }
  return [
    `table ip ${MESH_TABLE} {}`,
    `delete table ip ${MESH_TABLE}`,
    `table ip ${MESH_TABLE} {`,
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    ...rules,
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    ...rules,
    '  }',
    '}',
    '',
  ].join('\n');
}

export class MeshTable {
  private applied: string | undefined;

  constructor(private readonly runner: CommandRunner = execRunner) {}

  /** Puts the ports in force in this process's namespace, if they differ from what it holds. */
  async apply(ports: readonly MeshPort[]): Promise<void> {
    const text = meshRuleset(ports);
    if (text === this.applied) return;
    await this.runner(['nft', '-f', '-'], text);
    this.applied = text;
  }

  /** Removes the table (no ingress network any more). */
  async remove(): Promise<void> {
    if (this.applied === undefined) return;
    await this.runner(['nft', 'delete', 'table', 'ip', MESH_TABLE]).catch(() => undefined);
    this.applied = undefined;
  }
}
