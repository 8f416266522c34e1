// The VXLAN overlay driver: Docker's overlay network without its gossip. For each overlay network a
// node has tasks on, a *sandbox* network namespace holds a bridge (br0, the gateway and this node's
// address) and a VXLAN device (vx-<vni>) whose UDP socket lives in the host namespace, pinned to
// the node's data-path address; a container joins through a veth pair whose host end is on br0.
// The managers' store is the only truth about where an address lives, so every forwarding and
// neighbour entry is static, programmed by setPeers(): the device neither learns nor floods.
//
// A thin shell over ip(8), bridge(8) and nsenter(1) through a CommandRunner; the names, checks,
// MTU rule, parsing and plans are overlay-plan.ts. See docs/network.md.
import { DEFAULT_DATA_PATH_PORT } from '../../common/network.js';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { InvalidArgumentError } from '../../common/errors.js';
import { SerialQueue } from '../../common/serial.js';
import { CommandError, execRunner, NetworkError, type CommandRunner } from './bridge.js';
import { checkEndpointId, checkInterfaceName, macOf } from './ipam.js';
import {
  checkHostAddress,
  checkIPv4,
  checkNetwork,
  checkNetworkId,
  checkPeers,
  checkSandboxPrefix,
  DEFAULT_SANDBOX_PREFIX,
  endpointLines,
  hostVethName,
  ingressLinkPlan,
  INGRESS_LINK,
  netnsPath,
  networkIdOf,
  NOTRACK_TABLE,
  notrackRuleset,
  overlayMtu,
  parseFdb,
  parseLinks,
  parseNeigh,
  parseUnderlay,
  peerPlan,
  sandboxName,
  sandboxPlan,
  vxlanName,
  type CheckedNetwork,
  type EndpointWant,
  type OverlayNetwork,
  type OverlayPeer,
} from './overlay-plan.js';

export type { OverlayNetwork, OverlayPeer } from './overlay-plan.js';

const NETNS_DIR = '/run/netns';

/** A container's endpoint on an overlay network, as attach made (or adopted) it. */
export interface OverlayAttachment {
  networkId: string;
  /** The interface inside the container. */
  ifname: string;
  /** The host end, in the sandbox, on its bridge. */
  hostVeth: string;
  /** CIDR. */
  address: string;
  mac: string;
  mtu: number;
}

export interface OverlayOptions {
  /** This node's data-path address: the outer source of its VXLAN packets, and its VTEP for peers. */
  dataPathAddr: string;
  /** The VXLAN UDP port, on every node alike; default 4789. */
  dataPathPort?: number;
  /** The host's network namespace (a path, or a name under /run/netns); default: this process's. */
  netns?: string;
  /** Sandboxes are `<prefix>-<network id>` under /run/netns; default `tswov`. Letters and digits. */
  sandboxPrefix?: string;
  runner?: CommandRunner;
}

export class OverlayDriver {
  readonly dataPathAddr: string;
  readonly dataPathPort: number;
  readonly sandboxPrefix: string;
  private readonly netns: string | undefined;
  private readonly runner: CommandRunner;
  /** One queue per network: its sandbox's making, re-making, removal and static entries. */
  private readonly queues = new Map<string, SerialQueue>();
  /** What ensure() left in force, per network id (the network it was for, the MTU): attach needs it. */
  private readonly ensured = new Map<string, { key: string; vni: number; mtu: number }>();
  /** The data-path ports NOTRACK_TABLE holds, as this driver last wrote it (empty: not written yet). */
  private readonly untracked = new Set<number>();

  constructor(opts: OverlayOptions) {
    this.dataPathAddr = checkIPv4('dataPathAddr', opts.dataPathAddr);
    const port = opts.dataPathPort ?? DEFAULT_DATA_PATH_PORT;
    if (!(Number.isInteger(port) && port >= 1 && port <= 65535)) throw new InvalidArgumentError('dataPathPort', `must be an integer from 1 to 65535, got ${port}`);
    this.dataPathPort = port;
    this.sandboxPrefix = checkSandboxPrefix(opts.sandboxPrefix ?? DEFAULT_SANDBOX_PREFIX);
    this.netns = opts.netns === undefined ? undefined : netnsPath(opts.netns);
    this.runner = opts.runner ?? execRunner;
  }

  /** The sandbox namespace's path of a network. */
  sandboxPath(networkId: string): string {
    return netnsPath(sandboxName(this.sandboxPrefix, networkId));
  }

  /**
   * Idempotent: makes what is missing of the sandbox (the namespace, br0 with the gateway and
   * node addresses, the vxlan device) and sets what differs; returns the MTU in force. A sandbox
   * made for another VNI or subnet is re-made (its endpoints go with it). The MTU is the network's,
   * or auto (0): that of the host-namespace interface holding dataPathAddr, less 50; an explicit
   * one above that or below 1280 is an InvalidArgumentError naming `mtu`.
   */
  async ensure(net: OverlayNetwork): Promise<{ mtu: number }> {
    const n = checkNetwork(net);
    return this.exclusive(n.id, () => this.ensureLocked(n));
  }

  /**
   * Makes the sandbox's static entries exactly `peers` (see peerPlan): a permanent FDB entry
   * MAC → VTEP and a permanent neighbour entry address → MAC on the vxlan device for each peer on
   * another node; the entries of addresses not among them are deleted. The MAC of an address is
   * derived from it (02:42 and its four bytes), on every node alike. The sandbox must exist.
   */
  async setPeers(networkId: string, peers: readonly OverlayPeer[]): Promise<void> {
    checkNetworkId(networkId);
    const wanted = checkPeers(peers);
    await this.exclusive(networkId, async () => {
      const sbx = this.sandboxPath(networkId);
      if (!existsSync(sbx)) throw new NetworkError(networkId, `setting peers: there is no sandbox ${sbx}; ensure() the network first`);
      try {
        const dev = await this.vxlanDevice(networkId, sbx);
        const fdb = parseFdb(await this.inNs(sbx, ['bridge', '-j', 'fdb', 'show', 'dev', dev]));
        const neigh = parseNeigh(await this.inNs(sbx, ['ip', '-4', '-j', 'neigh', 'show', 'dev', dev]));
        const plan = peerPlan(dev, this.dataPathAddr, wanted, fdb, neigh);
        if (plan.fdb.length > 0) await this.inNs(sbx, ['bridge', '-batch', '-'], lines(plan.fdb));
        if (plan.neigh.length > 0) await this.inNs(sbx, ['ip', '-batch', '-'], lines(plan.neigh));
      } catch (err) {
        if (err instanceof NetworkError) throw err;
        throw new NetworkError(networkId, `setting peers in ${sbx}: ${(err as Error).message}`, { cause: err });
      }
    });
  }

  /**
   * Attaches a container: a veth pair, its host end (hostVethName: stable) in the sandbox on br0 and
   * up, its other end made directly in `containerNetns` (a path such as /proc/PID/ns/net, or a
   * name under /run/netns) as `ifname` with `address` (CIDR, inside the subnet), the MAC derived
   * from it, the network's MTU on both ends, up, and lo up. No default route: the subnet's
   * connected route reaches the overlay. Makes the sandbox first when this driver has not ensured
   * it (with this network's description) yet.
   *
   * An endpoint whose host end is in the sandbox already is adopted (a restarted worker), not an
   * error. On failure nothing of the endpoint is left (an adopted one neither). Attaches of
   * different endpoints run concurrently; removing the network meanwhile is the caller's error.
   */
  async attach(net: OverlayNetwork, endpointId: string, containerNetns: string, opts: { address: string; ifname: string }): Promise<OverlayAttachment> {
    const n = checkNetwork(net);
    checkEndpointId(endpointId);
    const ifname = checkInterfaceName('ifname', opts.ifname);
    const { address, prefixLength } = checkHostAddress('address', opts.address, n.subnet, n.gateway);
    if (address === n.node?.address) throw new InvalidArgumentError('address', `${address} is this node's address on the network`);
    const target = netnsPath(containerNetns);
    if (/\s|"/.test(target)) throw new InvalidArgumentError('containerNetns', `must not contain white space or quotes: ${JSON.stringify(target)}`);
    const mtu = await this.ready(n);
    const sbx = this.sandboxPath(n.id);
    const e: EndpointWant = { hostVeth: hostVethName(n.id, endpointId), containerNetns: target, ifname, address, prefixLength, mac: macOf(address), mtu };
    try {
      let adopt = false;
      try {
        await this.inNs(sbx, ['ip', '-batch', '-'], lines(endpointLines(e).sandbox));
      } catch (err) {
        // "File exists" is the host end (ours: adopt it) or the container's ifname (an error).
        if (!(err instanceof CommandError && /File exists/.test(err.stderr) && (await this.linkExists(sbx, e.hostVeth)))) throw err;
        adopt = true;
        await this.inNs(sbx, ['ip', '-batch', '-'], lines(endpointLines(e, true).sandbox));
      }
      await this.runner(['nsenter', `--net=${target}`, '--', 'ip', '-batch', '-'], lines(endpointLines(e, adopt).container));
      return { networkId: n.id, ifname, hostVeth: e.hostVeth, address: `${address}/${prefixLength}`, mac: e.mac, mtu };
    } catch (err) {
      await this.deleteLink(sbx, e.hostVeth).catch(() => undefined); // takes the container's end with it
      this.ensured.delete(n.id); // the next attach checks the sandbox again
      throw new NetworkError(n.id, `attaching ${endpointId} to ${target}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Deletes an endpoint's veth pair (both ends); false when there was nothing. */
  async detach(networkId: string, endpointId: string): Promise<boolean> {
    checkNetworkId(networkId);
    checkEndpointId(endpointId);
    const sbx = this.sandboxPath(networkId);
    if (!existsSync(sbx)) return false;
    try {
      return await this.deleteLink(sbx, hostVethName(networkId, endpointId));
    } catch (err) {
      throw new NetworkError(networkId, `detaching ${endpointId}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Removes the sandbox and everything in it (its vxlan device, bridge, veth pairs); none is no
   * error. With the last sandbox goes the host's NOTRACK_TABLE.
   */
  async remove(networkId: string): Promise<void> {
    checkNetworkId(networkId);
    await this.exclusive(networkId, async () => {
      this.ensured.delete(networkId);
      await this.removeSandbox(networkId);
    });
    if (this.ensured.size === 0 && (await this.list()).length === 0) {
      this.untracked.clear();
      await this.host(['nft', 'delete', 'table', 'ip', NOTRACK_TABLE]).catch((err: unknown) => {
        if (!(err instanceof CommandError && /No such file or directory/.test(err.stderr))) throw new NetworkError(networkId, `removing the table ${NOTRACK_TABLE}: ${(err as Error).message}`, { cause: err });
      });
    }
  }

  /**
   * One probe of the path to another node through the network: an ICMP echo from this node's
   * address on the network (`from`, the sandbox bridge's; not the gateway, which every node's
   * bridge holds, so the answer would never come back) to the peer node's (`to`), over VXLAN.
   * Resolves when answered within `timeoutMs` (whole seconds, at least 1); else a NetworkError
   * saying what ping saw.
   */
  async probe(networkId: string, from: string, to: string, timeoutMs = 1000): Promise<void> {
    checkIPv4('from', from);
    checkIPv4('to', to);
    const wait = String(Math.max(1, Math.round(timeoutMs / 1000)));
    try {
      await this.inNs(this.sandboxPath(networkId), ['ping', '-c', '1', '-n', '-q', '-W', wait, '-I', from, to]);
    } catch (err) {
      const text = err instanceof CommandError ? err.stderr : (err as Error).message;
      const why = /0 received|100% packet loss|exit 1\b/.test(text) || text === '' ? `no answer from ${to} within ${wait} s` : text.split('\n').find((l) => l.trim() !== '') ?? text;
      throw new NetworkError(networkId, why, { cause: err });
    }
  }

  /**
   * The sandboxes present (namespaces under /run/netns with this driver's prefix): the network id
   * and the host veth names in each, so that a restarted worker can remove what is stale.
   */
  async list(): Promise<{ networkId: string; hostVeths: string[] }[]> {
    let names: string[];
    try {
      names = await readdir(NETNS_DIR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: { networkId: string; hostVeths: string[] }[] = [];
    for (const name of names.sort()) {
      const networkId = networkIdOf(this.sandboxPrefix, name);
      if (networkId === undefined) continue;
      try {
        const links = parseLinks(await this.inNs(netnsPath(name), ['ip', '-j', '-d', 'link', 'show', 'type', 'veth']));
        out.push({ networkId, hostVeths: links.map((l) => l.ifname).sort() });
      } catch (err) {
        if (!existsSync(netnsPath(name))) continue; // removed meanwhile
        throw new NetworkError(networkId, `listing the sandbox ${name}: ${(err as Error).message}`, { cause: err });
      }
    }
    return out;
  }

  private async ensureLocked(n: CheckedNetwork): Promise<{ mtu: number }> {
    const name = sandboxName(this.sandboxPrefix, n.id);
    const sbx = netnsPath(name);
    const failed = (what: string, err: unknown): NetworkError => new NetworkError(n.id, `${what}: ${(err as Error).message}`, { cause: err });
    let hostAddrs: string;
    try {
      hostAddrs = await this.host(['ip', '-j', 'addr', 'show']);
    } catch (err) {
      throw failed("reading the host's interfaces", err);
    }
    const underlay = parseUnderlay(hostAddrs, this.dataPathAddr);
    if (underlay === undefined)
      throw new InvalidArgumentError('dataPathAddr', `no interface of the host's network namespace${this.netns === undefined ? '' : ` ${this.netns}`} holds ${this.dataPathAddr}`);
    const mtu = overlayMtu(n.mtu, underlay);
    const want = { net: n, mtu, sandboxPath: sbx, dataPathAddr: this.dataPathAddr, dataPathPort: n.dataPathPort ?? this.dataPathPort };
    let made = false;
    try {
      let present = existsSync(sbx) ? parseLinks(await this.inNs(sbx, ['ip', '-j', '-d', 'addr', 'show'])) : undefined;
      let plan = sandboxPlan(want, present);
      if (plan.remake !== undefined) {
        await this.removeSandbox(n.id);
        present = undefined;
        plan = sandboxPlan(want);
      }
      if (present === undefined) {
        await this.runner(['ip', 'netns', 'add', name]);
        made = true;
        // Frames the sandbox's bridge forwards are not passed through netfilter (br_netfilter,
        // loaded on Docker's hosts, defaults to on in every namespace): nothing filters them
        // here, and the hook costs every packet. -e: the keys are absent without br_netfilter.
        await this.inNs(sbx, ['sysctl', '-q', '-e', '-w', 'net.bridge.bridge-nf-call-iptables=0', 'net.bridge.bridge-nf-call-ip6tables=0', 'net.bridge.bridge-nf-call-arptables=0']);
      }
      if (plan.before.length > 0) await this.inNs(sbx, ['ip', '-batch', '-'], lines(plan.before));
      // Made from the host namespace, so that its UDP socket is bound there; `netns` puts the device itself in the sandbox.
      if (plan.vxlan !== undefined) await this.host(['ip', '-batch', '-'], lines([plan.vxlan]));
      if (plan.after.length > 0) await this.inNs(sbx, ['ip', '-batch', '-'], lines(plan.after));
      if (n.ingress) await this.ensureIngressLink(n, name, sbx);
      if (!this.untracked.has(want.dataPathPort)) {
        await this.host(['nft', '-f', '-'], notrackRuleset([...this.untracked, want.dataPathPort]));
        this.untracked.add(want.dataPathPort);
      }
    } catch (err) {
      this.ensured.delete(n.id);
      if (made) await this.removeSandbox(n.id).catch(() => undefined);
      throw failed(`making the sandbox ${name}`, err);
    }
    this.ensured.set(n.id, { key: networkKey(n), vni: n.vni, mtu });
    return { mtu };
  }

  // The MTU in force for `n`, ensuring the sandbox first unless this driver did so for the same description.
  private async ready(n: CheckedNetwork): Promise<number> {
    const e = this.ensured.get(n.id);
    if (e !== undefined && e.key === networkKey(n)) return e.mtu;
    return (await this.exclusive(n.id, () => this.ensureLocked(n))).mtu;
  }

  // The sandbox's vxlan device: known from ensure(), else looked up (a restarted worker).
  private async vxlanDevice(networkId: string, sbx: string): Promise<string> {
    const e = this.ensured.get(networkId);
    if (e !== undefined) return vxlanName(e.vni);
    const vx = parseLinks(await this.inNs(sbx, ['ip', '-j', '-d', 'link', 'show', 'type', 'vxlan'])).find((l) => l.vxlan !== undefined);
    if (vx === undefined) throw new NetworkError(networkId, `the sandbox ${sbx} has no vxlan device; ensure() the network first`);
    return vx.ifname;
  }

  // Deletes the vxlan device and the veth pairs first, then the namespace: a namespace is dismantled
  // asynchronously by the kernel, and until then its vxlan device would hold the VNI (a re-made
  // sandbox could not have it) and the containers would keep their ends.
  private async removeSandbox(networkId: string): Promise<void> {
    const name = sandboxName(this.sandboxPrefix, networkId);
    const sbx = netnsPath(name);
    if (!existsSync(sbx)) return;
    try {
      const doomed = parseLinks(await this.inNs(sbx, ['ip', '-j', '-d', 'link', 'show'])).filter((l) => l.kind === 'vxlan' || l.kind === 'veth');
      if (doomed.length > 0) await this.inNs(sbx, ['ip', '-batch', '-'], lines(doomed.map((l) => `link del dev ${l.ifname}`)));
      await this.runner(['ip', 'netns', 'delete', name]);
    } catch (err) {
      throw new NetworkError(networkId, `removing the sandbox ${name}: ${(err as Error).message}`, { cause: err });
    }
  }

  // Deletes a device of a namespace; false when there was none.
  private async deleteLink(netns: string, dev: string): Promise<boolean> {
    try {
      await this.inNs(netns, ['ip', 'link', 'del', 'dev', dev]);
      return true;
    } catch (err) {
      if (err instanceof CommandError && /Cannot find device/.test(err.stderr)) return false;
      throw err;
    }
  }

  private async linkExists(netns: string, dev: string): Promise<boolean> {
    try {
      await this.inNs(netns, ['ip', 'link', 'show', 'dev', dev]);
      return true;
    } catch (err) {
      if (err instanceof CommandError) return false;
      throw err;
    }
  }

  private host(argv: string[], input?: string): Promise<string> {
    return this.runner(this.netns === undefined ? argv : ['nsenter', `--net=${this.netns}`, '--', ...argv], input);
  }

  /** The ingress sandbox's link to the host (ingressLinkPlan), made if missing, with forwarding on in both; its route kept. */
  private async ensureIngressLink(n: CheckedNetwork, name: string, sbx: string): Promise<void> {
    const present = await this.host(['ip', '-j', 'link', 'show', 'dev', INGRESS_LINK.host]).then(
      () => true,
      () => false,
    );
    if (!present) {
      const plan = ingressLinkPlan(n, name);
      await this.host(['ip', '-batch', '-'], lines(plan.host.slice(0, 3)));
      await this.inNs(sbx, ['ip', '-batch', '-'], lines(plan.sandbox));
      await this.host(['ip', '-batch', '-'], lines(plan.host.slice(3)));
      await this.inNs(sbx, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
      await this.host(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    } else {
      await this.host(['ip', 'route', 'replace', n.subnet.cidr, 'via', INGRESS_LINK.sandboxAddress, 'dev', INGRESS_LINK.host]);
    }
  }

  private inNs(netns: string, argv: string[], input?: string): Promise<string> {
    return this.runner(['nsenter', `--net=${netns}`, '--', ...argv], input);
  }

  private exclusive<T>(networkId: string, fn: () => Promise<T>): Promise<T> {
    let q = this.queues.get(networkId);
    if (q === undefined) this.queues.set(networkId, (q = new SerialQueue()));
    return q.run(fn);
  }
}

// What makes two descriptions of a network the same sandbox.
function networkKey(n: CheckedNetwork): string {
  return JSON.stringify([n.vni, n.subnet.cidr, n.gateway, n.mtu, n.node?.address ?? null, n.dataPathPort ?? null, n.ingress === true]);
}

function lines(ls: readonly string[]): string {
  return `${ls.join('\n')}\n`;
}
