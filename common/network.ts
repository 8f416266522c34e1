// Overlay networks' shared vocabulary: what a network's spec means to the managers that allocate
// it and to the workers that program it.
import type { NetworkSpec } from '../proto/gen/tswarm/specs.js';

/** The driver option Docker reads a network's MTU from (`--opt com.docker.network.driver.mtu=N`). */
export const MTU_OPTION = 'com.docker.network.driver.mtu';
/** IPv6's minimum link MTU; below it some stacks misbehave, and Docker's overlays never go there. */
export const MIN_MTU = 1280;
/** What VXLAN adds to each packet on an IPv4 underlay: outer IP 20, UDP 8, VXLAN 8, inner Ethernet 14. */
export const VXLAN_OVERHEAD = 50;
/** IANA's VXLAN port (RFC 7348), Docker's default data-path port. */
export const DEFAULT_DATA_PATH_PORT = 4789;
/** VXLAN ids: 24 bits. */
export const MAX_VNI = 0xffffff;

/** A network's MTU as its spec sets it (the field, or Docker's driver option); 0: each node's underlay MTU − 50. */
export function specMtu(spec: NetworkSpec | undefined): number {
  if (!spec) return 0;
  const opt = spec.driverOptions[MTU_OPTION];
  return spec.mtu || (opt === undefined ? 0 : Number(opt));
}
