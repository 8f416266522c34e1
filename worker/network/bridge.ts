// The bridge network driver: one Linux bridge per host (like docker0) holding the gateway address,
// one veth pair per container, NAT for outbound traffic and DNAT for host-mode published ports in
// an nftables table of its own. It is a thin shell over `ip` (iproute2), `nft`, `ss` and
// `nsenter`, or swarm-spawn's netlink built-ins for the per-container devices (LinkOps); the
// address bookkeeping is ipam.ts, the published ports' nft text ports.ts.
//
// Every command that acts on the host side runs in the driver's host network namespace: the
// process's own by default, or `netns` (a name under /run/netns or a path), so that tests and labs
// can run a complete "host" inside a throwaway namespace.
import { SerialQueue } from '../../common/serial.js';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { IllegalStateError, InvalidArgumentError, TswarmError } from '../../common/errors.js';
import {
  allocate,
  checkEndpointId,
  type EndpointRecord,
  checkInterfaceName,
  emptyState,
  gatewayOf,
  macOf,
  parseState,
  parseSubnet,
  release,
  type BridgeState,
  type Subnet,
  withoutPorts,
} from './ipam.js';
import { checkPorts, portElements, portName, portTaken, publishScript, type PublishedPort } from './ports.js';

export const DEFAULT_BRIDGE = 'tsw0';
export const DEFAULT_SUBNET = '172.31.0.0/16';

/** A failure of the network driver: names the network (the bridge) and what failed. */
export class NetworkError extends TswarmError {
  constructor(
    readonly network: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`network ${network}: ${problem}`, options);
  }
}

/** A command that exited non-zero: carries the command line and what it printed on stderr. */
export class CommandError extends TswarmError {
  constructor(
    readonly argv: readonly string[],
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(`\`${argv.join(' ')}\` failed: ${stderr}`, options);
  }
}

/** Runs argv (no shell), feeding `input` on stdin; resolves to stdout, rejects with a CommandError. */
export type CommandRunner = (argv: readonly string[], input?: string) => Promise<string>;

export const execRunner: CommandRunner = (argv, input) =>
  new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', (err) => reject(new CommandError(argv, err.message, { cause: err })));
    child.once('close', (code, signal) => {
      if (code === 0) resolve(stdout);
      else reject(new CommandError(argv, stderr.trim() || `exit ${code ?? signal}`));
    });
    if (input !== undefined) {
      child.stdin?.once('error', () => undefined); // a command that exits early: its status tells
      child.stdin?.end(input);
    }
  });

/** A container's veth pair, as BridgeDriver.attach makes it (see there). */
export interface VethRequest {
  /** The bridge's network namespace (a path); undefined: this process's. */
  hostNetns: string | undefined;
  bridge: string;
  /** The host end, enslaved to the bridge and up. */
  hostEnd: string;
  /** The container's network namespace (a path), where its end is made directly. */
  containerNetns: string;
  ifname: string;
  mac: string;
  mtu: number | undefined;
  address: string;
  prefixLength: number;
  gateway: string;
  /** The host end's bridge port in hairpin mode. */
  hairpin: boolean;
}

/**
 * The device work of attach and detach, in one of two ways: ip(8) through a CommandRunner
 * (ipLinks: three processes per attach, ip on the host side, nsenter and ip on the container's),
 * or swarm-spawn's netlink built-ins (Spawner.links: none; an exec costs 0.6-0.9 ms here and
 * many containers start at once). The two make the same devices; the bridge tests run both.
 */
export interface LinkOps {
  /** Makes the pair; on failure the host end may be left (the caller deletes it). */
  addVeth(r: VethRequest): Promise<void>;
  /** Deletes a device of a namespace (undefined: this process's); none there is not an error. */
  deleteLink(netns: string | undefined, name: string): Promise<void>;
}

/** LinkOps with ip(8) (and nsenter(1) for other namespaces), through `runner`. */
export function ipLinks(runner: CommandRunner): LinkOps {
  const host = (netns: string | undefined, argv: string[], input?: string): Promise<string> =>
    runner(netns === undefined ? argv : ['nsenter', `--net=${netns}`, '--', ...argv], input);
  return {
    async addVeth(r) {
      const mtu = r.mtu === undefined ? '' : ` mtu ${r.mtu}`;
      // A publishing endpoint's port is in hairpin mode: where br_netfilter is on, the DNAT of the
      // container's own traffic to its published port (through a host address) is bridged, not
      // routed, and goes back out the port it came in on.
      const hairpin = r.hairpin ? [`link set dev ${r.hostEnd} type bridge_slave hairpin on`] : [];
      const add = `link add name ${r.hostEnd}${mtu} type veth peer name ${r.ifname}${mtu} address ${r.mac} netns ${r.containerNetns}`;
      await host(r.hostNetns, ['ip', '-batch', '-'], [add, `link set dev ${r.hostEnd} master ${r.bridge} up`, ...hairpin, ''].join('\n'));
      await runner(
        ['nsenter', `--net=${r.containerNetns}`, '--', 'ip', '-batch', '-'],
        [`addr add ${r.address}/${r.prefixLength} dev ${r.ifname}`, `link set dev ${r.ifname} up`, 'link set dev lo up', `route add default via ${r.gateway} dev ${r.ifname}`, ''].join('\n'),
      );
    },
    async deleteLink(netns, name) {
      try {
        await host(netns, ['ip', 'link', 'show', 'dev', name]);
      } catch (err) {
        if (err instanceof CommandError) return;
        throw err;
      }
      try {
        await host(netns, ['ip', 'link', 'del', 'dev', name]);
      } catch (err) {
        // A namespace that went away takes its veth pair with it, asynchronously (the kernel cleans
        // up namespaces in a work queue): the device may vanish between the check and the delete.
        if (!(err instanceof CommandError && /Cannot find device/.test(err.stderr))) throw err;
      }
    },
  };
}

export interface BridgeOptions {
  /** Directory for the state file `bridge-<name>.json` (made if absent). */
  stateDir: string;
  /** The bridge device, also the network's name; default tsw0. */
  name?: string;
  /** IPv4 subnet; the bridge holds its first address as the gateway. Default 172.31.0.0/16. */
  subnet?: string;
  /** The host's network namespace, a name under /run/netns or a path; default: this process's. */
  netns?: string;
  /** MTU of the bridge and the veth pairs; default: the kernel's (1500). */
  mtu?: number;
  runner?: CommandRunner;
  /** How veth pairs are made and devices deleted; default ipLinks(runner). */
  links?: LinkOps;
}

export interface Attachment {
  endpointId: string;
  /** The container's address, without prefix length. */
  address: string;
  prefixLength: number;
  gateway: string;
  /** The interface inside the container. */
  ifname: string;
  /** The host end, enslaved to the bridge. */
  hostVeth: string;
  mac: string;
  /** The host-mode published ports, as published (absent: none). */
  ports?: PublishedPort[];
}

/** The nftables table of a bridge: `ip tswarm-<bridge>`. */
export function natTable(bridge: string): string {
  return `tswarm-${bridge}`;
}

/**
 * The nft script that (re)creates the bridge's table in one transaction, with the published ports
 * of `endpoints` (so a restarted worker's table holds what its running containers publish):
 *
 * - postrouting: masquerade what leaves the subnet through any interface but the bridge itself
 *   (traffic between containers keeps its addresses); masquerade what reaches a container through
 *   a published port from a container of the bridge (the hairpin: without it the answer would go
 *   straight back over the bridge, un-NATed) or from the host's loopback (127.0.0.1 cannot be a
 *   source on the bridge; this needs route_localnet on the bridge, which create() sets);
 * - prerouting (traffic from other hosts and from containers) and output (traffic from the host
 *   itself): DNAT what is addressed to any local address of the host through the `published` map
 *   (protocol . host port → container address . container port; see ports.ts);
 * - raw prerouting: drop what comes in on the bridge addressed to 127.0.0.0/8, which route_localnet
 *   would otherwise let containers send to the host's loopback services (Kubernetes'
 *   CVE-2020-8558). Answers to the host's own loopback connections arrive addressed to the gateway
 *   and are un-NATed later, at the nat hook, so they pass.
 */
export function natRuleset(bridge: string, subnet: string, endpoints: Record<string, EndpointRecord> = {}): string {
  const t = natTable(bridge);
  const elements = Object.values(endpoints)
    .filter((e) => (e.ports ?? []).length > 0)
    .map((e) => portElements(e.address, e.ports ?? []))
    .join(', ');
  return [
    `table ip ${t}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    '  map published {',
    '    type inet_proto . inet_service : ipv4_addr . inet_service',
    ...(elements ? [`    elements = { ${elements} }`] : []),
    '  }',
    '  chain prerouting {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    fib daddr type local dnat ip to meta l4proto . th dport map @published',
    '  }',
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    '    fib daddr type local dnat ip to meta l4proto . th dport map @published',
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${subnet} oifname != "${bridge}" masquerade`,
    `    oifname "${bridge}" ct status dnat ip saddr ${subnet} masquerade`,
    `    oifname "${bridge}" ip saddr 127.0.0.0/8 masquerade`,
    '  }',
    '  chain guard {',
    '    type filter hook prerouting priority raw; policy accept;',
    `    iifname "${bridge}" ip daddr 127.0.0.0/8 drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * The veth names of an endpoint: `tsv<12 hex>` on the host, `tsc<12 hex>` for the container end
 * until it is renamed inside the container (both 15 characters, IFNAMSIZ), from a hash of the
 * bridge and endpoint id so that they are stable across restarts.
 */
export function vethNames(bridge: string, endpointId: string): { host: string; peer: string } {
  const h = createHash('sha256').update(`${bridge}\0${endpointId}`).digest('hex').slice(0, 12);
  return { host: `tsv${h}`, peer: `tsc${h}` };
}

function nsPath(ns: string): string {
  return ns.includes('/') ? ns : path.join('/run/netns', ns);
}

export class BridgeDriver {
  readonly name: string;
  readonly subnet: Subnet;
  readonly statePath: string;
  private readonly netns: string | undefined;
  private readonly mtu: number | undefined;
  private readonly runner: CommandRunner;
  private readonly links: LinkOps;
  private readonly serial = new SerialQueue();

  constructor(opts: BridgeOptions) {
    this.name = checkInterfaceName('bridge name', opts.name ?? DEFAULT_BRIDGE);
    this.subnet = parseSubnet('subnet', opts.subnet ?? DEFAULT_SUBNET);
    if (opts.mtu !== undefined && !(Number.isInteger(opts.mtu) && opts.mtu >= 576 && opts.mtu <= 65535))
      throw new InvalidArgumentError('mtu', `must be an integer from 576 to 65535, got ${opts.mtu}`);
    this.mtu = opts.mtu;
    this.netns = opts.netns === undefined ? undefined : nsPath(opts.netns);
    this.statePath = path.join(path.resolve(opts.stateDir), `bridge-${this.name}.json`);
    this.runner = opts.runner ?? execRunner;
    this.links = opts.links ?? ipLinks(this.runner);
  }

  get gateway(): string {
    return gatewayOf(this.subnet);
  }

  /**
   * Makes the bridge (or checks the one there is a bridge), gives it the gateway address, brings it
   * up, enables IPv4 forwarding and (re)writes the NAT table. Idempotent: a restarted worker calls it
   * again.
   */
  async create(): Promise<void> {
    await this.exclusive(async () => {
      this.saveState(this.loadState());
      const mtu = this.mtu === undefined ? [] : ['mtu', String(this.mtu)];
      if (!(await this.linkExists(this.name))) await this.host(['ip', 'link', 'add', 'name', this.name, ...mtu, 'type', 'bridge']);
      const kind = await this.linkKind(this.name);
      if (kind !== 'bridge') throw new NetworkError(this.name, `a device ${this.name} exists and is a ${kind ?? 'plain device'}, not a bridge`);
      await this.host(['ip', 'addr', 'replace', `${this.gateway}/${this.subnet.prefixLength}`, 'dev', this.name]);
      await this.host(['ip', 'link', 'set', 'dev', this.name, ...mtu, 'up']);
      await this.host(['sh', '-c', `echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv4/conf/${this.name}/route_localnet`]);
      await this.host(['nft', '-f', '-'], natRuleset(this.name, this.subnet.cidr, this.loadState().endpoints));
    });
  }

  /**
   * Attaches a container: allocates an address (persisted before any device is made), makes a veth
   * pair with its host end on the bridge and its other end created directly in `containerNetns` (a
   * path such as /proc/PID/ns/net, or a name under /run/netns) as `ifname`, with the MAC
   * 02:42:<the address's four bytes> (as Docker), and configures it there (address, up, lo up,
   * default route via the gateway). On failure everything it made is undone.
   *
   * Only the allocation is serialized (it reads and writes the state file); the device work of
   * several attaches runs concurrently (through LinkOps: a few netlink requests, or one `ip -batch`
   * per side), since many containers start at once; the container's end is made in its namespace,
   * as moving a device between namespaces costs the kernel an RCU grace period.
   *
   * `ports` are published once the container's side is configured: traffic to any address of the
   * host on a published port goes to the container's target port. A port that another endpoint
   * publishes, or that a process of the host listens on, is refused (a NetworkError naming it and
   * its holder) before anything is made.
   */
  async attach(endpointId: string, containerNetns: string, opts: { ifname?: string; ports?: readonly PublishedPort[] } = {}): Promise<Attachment> {
    checkEndpointId(endpointId);
    const ifname = checkInterfaceName('ifname', opts.ifname ?? 'eth0');
    const ports = checkPorts(opts.ports ?? []);
    const target = nsPath(containerNetns);
    if (/\s|"/.test(target)) throw new InvalidArgumentError('containerNetns', `must not contain white space or quotes: ${JSON.stringify(target)}`);
    const { host } = vethNames(this.name, endpointId);
    for (const p of ports) {
      const listening = await this.host(['ss', '-Hln', p.protocol === 'udp' ? '-u' : p.protocol === 'sctp' ? '-S' : '-t', `sport = :${p.published}`]);
      if (listening.trim() !== '') throw new NetworkError(this.name, `cannot publish port ${portName(p)} for ${endpointId}: a process of the host listens on it`);
    }
    const address = await this.exclusive(() => {
      const before = this.loadState();
      const existing = before.endpoints[endpointId];
      if (existing !== undefined) throw new IllegalStateError(`network ${this.name}: endpoint ${endpointId} is already attached (${existing.address})`);
      const taken = portTaken(before.endpoints, endpointId, ports);
      if (taken) throw new NetworkError(this.name, `cannot publish port ${portName(taken.port)} for ${endpointId}: endpoint ${taken.by} publishes it`);
      const allocated = allocate(before, endpointId, host, target, ports);
      this.saveState(allocated.state);
      return allocated.address;
    });
    const mac = macOf(address);
    try {
      await this.links.addVeth({
        hostNetns: this.netns,
        bridge: this.name,
        hostEnd: host,
        containerNetns: target,
        ifname,
        mac,
        mtu: this.mtu,
        address,
        prefixLength: this.subnet.prefixLength,
        gateway: this.gateway,
        hairpin: ports.length > 0,
      });
      if (ports.length > 0) await this.host(['nft', '-f', '-'], publishScript(natTable(this.name), 'add', address, ports));
      return { endpointId, address, prefixLength: this.subnet.prefixLength, gateway: this.gateway, ifname, hostVeth: host, mac, ...(ports.length > 0 ? { ports } : {}) };
    } catch (err) {
      await this.exclusive(async () => {
        await this.unpublishElements(address, ports);
        await this.deleteLink(host).catch(() => undefined); // takes the peer with it, wherever it is
        this.saveState(release(this.loadState(), endpointId));
      });
      throw new NetworkError(this.name, `attaching ${endpointId} to ${target}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Withdraws an endpoint's published ports (its task ended: the next task on this host may
   * publish them) and keeps the endpoint. False when it is not attached or published nothing.
   */
  async unpublish(endpointId: string): Promise<boolean> {
    return this.exclusive(async () => {
      const state = this.loadState();
      const e = state.endpoints[endpointId];
      if (e?.ports === undefined) return false;
      await this.unpublishElements(e.address, e.ports);
      this.saveState(withoutPorts(state, endpointId));
      return true;
    });
  }

  /** Detaches a container: withdraws its published ports, deletes its veth pair (if the namespace has not taken it already) and releases its address. */
  async detach(endpointId: string): Promise<boolean> {
    return this.exclusive(async () => {
      const state = this.loadState();
      const e = state.endpoints[endpointId];
      if (e === undefined) return false;
      await this.unpublishElements(e.address, e.ports ?? []);
      await this.deleteLink(e.hostVeth);
      this.saveState(release(state, endpointId));
      return true;
    });
  }

  /** The attached endpoints, as persisted. */
  endpoints(): Promise<BridgeState['endpoints']> {
    return Promise.resolve(this.loadState().endpoints);
  }

  /** Removes every endpoint's veth, the bridge, the NAT table and the state file. */
  async destroy(): Promise<void> {
    await this.exclusive(async () => {
      const state = this.loadState();
      for (const e of Object.values(state.endpoints)) await this.deleteLink(e.hostVeth);
      await this.deleteLink(this.name);
      const table = natTable(this.name);
      if (await this.succeeds(['nft', 'list', 'table', 'ip', table])) await this.host(['nft', 'delete', 'table', 'ip', table]);
      await rm(this.statePath, { force: true });
    });
  }

  // Deletes the map elements of `ports`; ones already gone (a table rebuilt by create(), or a failed
  // publish) are no error.
  private async unpublishElements(address: string, ports: readonly PublishedPort[]): Promise<void> {
    for (const p of ports) {
      try {
        await this.host(['nft', '-f', '-'], publishScript(natTable(this.name), 'delete', address, [p]));
      } catch (err) {
        if (!(err instanceof CommandError && /No such file or directory/.test(err.stderr))) throw err;
      }
    }
  }

  private host(argv: string[], input?: string): Promise<string> {
    return this.runner(this.netns === undefined ? argv : ['nsenter', `--net=${this.netns}`, '--', ...argv], input);
  }

  private async succeeds(argv: string[]): Promise<boolean> {
    try {
      await this.host(argv);
      return true;
    } catch (err) {
      if (err instanceof CommandError) return false;
      throw err;
    }
  }

  private linkExists(name: string): Promise<boolean> {
    return this.succeeds(['ip', 'link', 'show', 'dev', name]);
  }

  private async linkKind(name: string): Promise<string | undefined> {
    const links = JSON.parse(await this.host(['ip', '-j', '-d', 'link', 'show', 'dev', name])) as { linkinfo?: { info_kind?: string } }[];
    return links[0]?.linkinfo?.info_kind;
  }

  private deleteLink(name: string): Promise<void> {
    return this.links.deleteLink(this.netns, name);
  }

  // The state file is read and written with the synchronous calls: it is small, and every attach
  // holds the driver's lock while it allocates; with fs/promises each of its steps waited for the
  // thread pool, which many container starts at once keep busy, so the attaches queued behind
  // the lock for the pool's latency rather than for any work.
  private loadState(): BridgeState {
    let text: string;
    try {
      text = readFileSync(this.statePath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState(this.name, this.subnet);
      throw err;
    }
    const state = parseState(this.statePath, text);
    if (state.bridge !== this.name) throw new NetworkError(this.name, `${this.statePath} is the state of bridge ${state.bridge}`);
    if (state.subnet !== this.subnet.cidr)
      throw new InvalidArgumentError('subnet', `${this.subnet.cidr} differs from ${state.subnet} recorded in ${this.statePath}; destroy the network to change its subnet`);
    return state;
  }

  // Written to a temporary file and renamed, so that a crash leaves the old state or the new one.
  private saveState(state: BridgeState): void {
    mkdirSync(path.dirname(this.statePath), { recursive: true });
    const tmp = `${this.statePath}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
    renameSync(tmp, this.statePath);
  }

  private exclusive<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.serial.run(fn);
  }
}
