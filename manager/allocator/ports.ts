// Published ports, cluster-wide and pure. An ingress-mode port (the routing mesh: every node
// forwards it) is unique in the cluster per protocol; a host-mode port only per node (the
// scheduler's host-port filter), but never one an ingress port holds, since that one is taken on
// every node. A published port of 0 in ingress mode is given one from 30000–32767 (Docker's
// range), the one the service had for the same target and protocol when it is still free.
import { InvalidArgumentError } from '../../common/errors.js';
import type { Network, Service } from '../../proto/gen/tswarm/objects.js';
import { PortConfig_Protocol, PortConfig_PublishMode, type EndpointSpec, type PortConfig } from '../../proto/gen/tswarm/types.js';

export const INGRESS_PORTS = { first: 30000, last: 32767 } as const;
/** The network the routing mesh runs over, made by the control API with the first ingress port. */
export const INGRESS_NETWORK = 'ingress';

export const isIngress = (p: PortConfig): boolean => p.publishMode === PortConfig_PublishMode.PUBLISH_MODE_INGRESS;

/** The routing mesh's network among these (at most one has `spec.ingress`). */
export function ingressNetworkIn(networks: readonly Network[]): Network | undefined {
  return networks.find((n) => n.spec?.ingress);
}

/** The ingress-mode ports of an endpoint spec. */
export function ingressPorts(spec: EndpointSpec | undefined): PortConfig[] {
  return (spec?.ports ?? []).filter(isIngress);
}

function protocolName(p: PortConfig_Protocol): string {
  return p === PortConfig_Protocol.PROTOCOL_UDP ? 'udp' : p === PortConfig_Protocol.PROTOCOL_SCTP ? 'sctp' : 'tcp';
}

/**
 * The service's ports with the ingress ones numbered; refuses (InvalidArgumentError naming the
 * port's field and the service holding it) a port another service publishes in a way that
 * collides. `previous`: the service's allocated ports before (kept for an unchanged 0).
 */
export function allocatePorts(serviceId: string, wanted: readonly PortConfig[], previous: readonly PortConfig[], others: readonly Service[]): PortConfig[] {
  const held = new Map<string, { name: string; ingress: boolean }>();
  for (const s of others) {
    if (s.id === serviceId) continue;
    for (const p of s.endpoint?.ports ?? []) if (p.publishedPort > 0) held.set(`${p.protocol}/${p.publishedPort}`, { name: s.spec?.annotations?.name ?? s.id, ingress: isIngress(p) });
  }
  const out: PortConfig[] = [];
  const taken = (p: PortConfig_Protocol, port: number): boolean => held.has(`${p}/${port}`) || out.some((o) => o.protocol === p && o.publishedPort === port);
  wanted.forEach((p, i) => {
    const field = `spec.endpoint.ports[${i}].publishedPort`;
    if (p.publishedPort > 0) {
      const h = held.get(`${p.protocol}/${p.publishedPort}`);
      // Two host-mode ports may share a number (on different nodes); anything with an ingress one may not.
      if (h && (h.ingress || isIngress(p))) throw new InvalidArgumentError(field, `port ${p.publishedPort}/${protocolName(p.protocol)} is already published by service ${h.name}${h.ingress ? ' (ingress mode: on every node)' : ''}`);
      out.push({ ...p });
      return;
    }
    if (!isIngress(p)) {
      out.push({ ...p });
      return;
    }
    const before = previous.find((q) => isIngress(q) && q.protocol === p.protocol && q.targetPort === p.targetPort && q.publishedPort > 0);
    if (before && !taken(p.protocol, before.publishedPort)) {
      out.push({ ...p, publishedPort: before.publishedPort });
      return;
    }
    for (let port: number = INGRESS_PORTS.first; port <= INGRESS_PORTS.last; port++) {
      if (taken(p.protocol, port)) continue;
      out.push({ ...p, publishedPort: port });
      return;
    }
    throw new InvalidArgumentError(field, `no free port in ${INGRESS_PORTS.first}-${INGRESS_PORTS.last} for ${protocolName(p.protocol)}; name one`);
  });
  return out;
}
