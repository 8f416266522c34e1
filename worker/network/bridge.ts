// The bridge network driver: one Linux bridge per host (like docker0) holding the gateway address,
// one veth pair per container, NAT for outbound traffic in an nftables table of its own. It is a
// thin shell over `ip` (iproute2), `nft` and `nsenter`; the address bookkeeping is ipam.ts.
//
// Every command that acts on the host side runs in the driver's host network namespace: the
// process's own by default, or `netns` (a name under /run/netns or a path), so that tests and labs
// can run a complete "host" inside a throwaway namespace.
import { SerialQueue } from '../../common/serial.js';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { IllegalStateError, InvalidArgumentError, TswarmError } from '../../common/errors.js';
import {
  allocate,
  checkEndpointId,
  checkInterfaceName,
  emptyState,
  gatewayOf,
  parseState,
  parseSubnet,
  release,
  type BridgeState,
  type Subnet,
} from './ipam.js';

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
}

/** The nftables table of a bridge: `ip tswarm-<bridge>`. */
export function natTable(bridge: string): string {
  return `tswarm-${bridge}`;
}

/**
 * The nft script that (re)creates the bridge's table in one transaction: masquerade what leaves
 * the subnet through any interface but the bridge itself (traffic between containers keeps its
 * addresses).
 */
export function natRuleset(bridge: string, subnet: string): string {
  const t = natTable(bridge);
  return [
    `table ip ${t}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${subnet} oifname != "${bridge}" masquerade`,
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

/** A container's MAC from its IPv4 address: 02:42 and the address's four bytes (Docker's rule), so that a reused address keeps its MAC and no neighbour holds a stale one. */
export function macOf(address: string): string {
  return ['02', '42', ...address.split('.').map((b) => Number(b).toString(16).padStart(2, '0'))].join(':');
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
      await this.saveState(await this.loadState());
      const mtu = this.mtu === undefined ? [] : ['mtu', String(this.mtu)];
      if (!(await this.linkExists(this.name))) await this.host(['ip', 'link', 'add', 'name', this.name, ...mtu, 'type', 'bridge']);
      const kind = await this.linkKind(this.name);
      if (kind !== 'bridge') throw new NetworkError(this.name, `a device ${this.name} exists and is a ${kind ?? 'plain device'}, not a bridge`);
      await this.host(['ip', 'addr', 'replace', `${this.gateway}/${this.subnet.prefixLength}`, 'dev', this.name]);
      await this.host(['ip', 'link', 'set', 'dev', this.name, ...mtu, 'up']);
      await this.host(['sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
      await this.host(['nft', '-f', '-'], natRuleset(this.name, this.subnet.cidr));
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
   * several attaches runs concurrently, and each side is one `ip -batch` (two processes in all),
   * since many containers start at once and moving a device between namespaces costs the kernel
   * an RCU grace period.
   */
  async attach(endpointId: string, containerNetns: string, opts: { ifname?: string } = {}): Promise<Attachment> {
    checkEndpointId(endpointId);
    const ifname = checkInterfaceName('ifname', opts.ifname ?? 'eth0');
    const target = nsPath(containerNetns);
    if (/\s|"/.test(target)) throw new InvalidArgumentError('containerNetns', `must not contain white space or quotes: ${JSON.stringify(target)}`);
    const { host } = vethNames(this.name, endpointId);
    const address = await this.exclusive(async () => {
      const before = await this.loadState();
      const existing = before.endpoints[endpointId];
      if (existing !== undefined) throw new IllegalStateError(`network ${this.name}: endpoint ${endpointId} is already attached (${existing.address})`);
      const allocated = allocate(before, endpointId, host, target);
      await this.saveState(allocated.state);
      return allocated.address;
    });
    const mtu = this.mtu === undefined ? '' : ` mtu ${this.mtu}`;
    const mac = macOf(address);
    try {
      await this.host(['ip', '-batch', '-'], [`link add name ${host}${mtu} type veth peer name ${ifname}${mtu} address ${mac} netns ${target}`, `link set dev ${host} master ${this.name} up`, ''].join('\n'));
      await this.runner(
        ['nsenter', `--net=${target}`, '--', 'ip', '-batch', '-'],
        [`addr add ${address}/${this.subnet.prefixLength} dev ${ifname}`, `link set dev ${ifname} up`, 'link set dev lo up', `route add default via ${this.gateway} dev ${ifname}`, ''].join('\n'),
      );
      return { endpointId, address, prefixLength: this.subnet.prefixLength, gateway: this.gateway, ifname, hostVeth: host, mac };
    } catch (err) {
      await this.exclusive(async () => {
        await this.deleteLink(host).catch(() => undefined); // takes the peer with it, wherever it is
        await this.saveState(release(await this.loadState(), endpointId));
      });
      throw new NetworkError(this.name, `attaching ${endpointId} to ${target}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Detaches a container: deletes its veth pair (if the namespace has not taken it already) and releases its address. */
  async detach(endpointId: string): Promise<boolean> {
    return this.exclusive(async () => {
      const state = await this.loadState();
      const e = state.endpoints[endpointId];
      if (e === undefined) return false;
      await this.deleteLink(e.hostVeth);
      await this.saveState(release(state, endpointId));
      return true;
    });
  }

  /** The attached endpoints, as persisted. */
  async endpoints(): Promise<BridgeState['endpoints']> {
    return (await this.loadState()).endpoints;
  }

  /** Removes every endpoint's veth, the bridge, the NAT table and the state file. */
  async destroy(): Promise<void> {
    await this.exclusive(async () => {
      const state = await this.loadState();
      for (const e of Object.values(state.endpoints)) await this.deleteLink(e.hostVeth);
      await this.deleteLink(this.name);
      const table = natTable(this.name);
      if (await this.succeeds(['nft', 'list', 'table', 'ip', table])) await this.host(['nft', 'delete', 'table', 'ip', table]);
      await rm(this.statePath, { force: true });
    });
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

  private async deleteLink(name: string): Promise<void> {
    if (!(await this.linkExists(name))) return;
    try {
      await this.host(['ip', 'link', 'del', 'dev', name]);
    } catch (err) {
      // A namespace that went away takes its veth pair with it, asynchronously (the kernel cleans
      // up namespaces in a work queue): the device may vanish between the check and the delete.
      if (!(err instanceof CommandError && /Cannot find device/.test(err.stderr))) throw err;
    }
  }

  private async loadState(): Promise<BridgeState> {
    let text: string;
    try {
      text = await readFile(this.statePath, 'utf8');
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
  private async saveState(state: BridgeState): Promise<void> {
    await mkdir(path.dirname(this.statePath), { recursive: true });
    const tmp = `${this.statePath}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
    await rename(tmp, this.statePath);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.serial.run(fn);
  }
}
