// Service discovery on a node: the embedded DNS and the VIP load balancers of its containers, kept
// to the services the dispatcher sends (ServiceEndpoints items; the managers' store is the only
// truth, as for the overlay's peer tables).
//
// - A container on an overlay network is attached before its process runs (the executor calls
//   attach() from prepare): swarm-dnsproxy opens its DNS sockets inside the container's namespace
//   and the namespace's `tswarm-svc` table is written (worker/network/service-lb.ts).
// - Every query the proxy relays is answered here from the names of the container's networks
//   (worker/network/dns-names.ts), or forwarded to the upstream resolvers (dns-forward.ts).
// - At every change of the services, each container's table is written again where it differs
//   (one `nft -f` each, several at once), the connections to tasks that left its backends are
//   flushed, and then the message's sequence is acknowledged to the dispatcher (onApplied): a
//   task's stop waits for that on every node (manager/dispatcher/dispatcher.ts, the stop gate).
import { existsSync } from 'node:fs';
import type { ServiceEndpoints } from '../../proto/gen/tswarm/dispatcher.js';
import type { Logger } from '../../common/logger.js';
import type { ContainerDiscovery, DiscoveryMember } from '../exec/executor.js';
import { buildNames, decide, servfail, type NetworkNames } from '../network/dns-names.js';
import { forward, parseUpstream, type Upstream } from '../network/dns-forward.js';
import type { DnsProxy, ProxyQuery } from '../network/dns-proxy.js';
import { meshMark, withdrawn, type LbState, type LoadBalancer, type MeshNode } from '../network/service-lb.js';
import type { MeshPort, MeshTable } from '../network/mesh.js';
import { macOf } from '../../common/ipv4.js';
import { PortConfig_Protocol } from '../../proto/gen/tswarm/types.js';

/** Containers' tables written at once in a pass. */
const CONCURRENCY = 4;
/**
 * How long TCP connections to a task that left the backends are left to finish before they are
 * flushed: Docker's default stop grace period (a task is told to stop once it left the backends
 * everywhere, and has this long to end what it is serving).
 */
export const TCP_DRAIN_MS = 10_000;

export interface DiscoveryOptions {
  lb: LoadBalancer;
  /** The routing mesh's table in this node's namespace; none: the node forwards no published port. */
  mesh?: MeshTable;
  /** The node's resolvers, for containers that set no --dns: `IP` or `IP:PORT`. */
  upstream: readonly string[];
  log: Logger;
}

/** The resolvers of a list that parse (swarmd's --dns is checked at start; a container's were by the control API). */
function upstreams(list: readonly string[]): Upstream[] {
  return list.map(parseUpstream).filter((u): u is Upstream => u !== undefined);
}

interface Member {
  id: string;
  key: number;
  netns: string;
  networks: readonly string[];
  interfaces: Readonly<Record<string, string>>;
  upstream: readonly Upstream[];
  udpPort: number;
  tcpPort: number;
  /** What the container's table holds now (undefined: not written yet). */
  applied: LbState | undefined;
  /** Its table's writes, one at a time. */
  queue: Promise<void>;
}

export class ServiceDiscovery implements ContainerDiscovery {
  private proxy: DnsProxy | undefined;
  private items: ServiceEndpoints[] = [];
  /** The routing mesh's network and its nodes, when there is one. */
  private ingress: { networkId: string; nodes: MeshNode[] } | undefined;
  private tables: ReadonlyMap<string, NetworkNames> = new Map();
  private readonly members = new Map<string, Member>();
  private readonly byKey = new Map<number, Member>();
  private nextKey = 1;
  private readonly upstream: Upstream[];
  private wanted = 0;
  private appliedSeq = 0;
  private running: Promise<void> | undefined;
  private again = false;
  /** Moves with every new session: a pass begun in an older one acknowledges nothing. */
  private epoch = 0;
  /** Told the sequence of the last message whose services every container has in force (the agent's session). */
  onApplied: ((seq: number) => void) | undefined;

  constructor(private readonly opts: DiscoveryOptions) {
    this.upstream = upstreams(opts.upstream);
  }

  /** The proxy that holds the containers' sockets (started by swarmd; its queries come to onQuery). */
  useProxy(proxy: DnsProxy): void {
    this.proxy = proxy;
  }

  /** The sequence acknowledged last (0 in a new session until its first message is in force). */
  get applied(): number {
    return this.appliedSeq;
  }

  /** A new session: its sequences start again. */
  resetSequence(): void {
    this.appliedSeq = this.wanted = 0;
    this.epoch++;
  }

  /** The routing mesh's network and its nodes' addresses there (this one's included); undefined: none. */
  setIngress(i: { networkId: string; nodes: readonly string[] } | undefined): void {
    this.ingress = i && { networkId: i.networkId, nodes: [...new Set(i.nodes)].sort().map((address) => ({ address, mac: macOf(address), mark: meshMark(address) })) };
  }

  /** The services of the node's networks now, as of message `seq`. */
  setServices(items: Iterable<ServiceEndpoints>, seq: number): void {
    this.items = [...items];
    // The ingress network has no names (as Docker's): services meet on their own networks.
    this.tables = buildNames(this.items.filter((s) => s.networkId !== this.ingress?.networkId));
    this.wanted = Math.max(this.wanted, seq);
    this.schedule();
  }

  async attach(c: DiscoveryMember): Promise<void> {
    if (!this.proxy) throw new Error('service discovery: no DNS proxy (swarm-dnsproxy) is running on this node');
    await this.detach(c.id);
    const key = this.nextKey++;
    const ports = await this.proxy.attach(key, c.netns);
    const upstream = upstreams(c.upstream ?? []);
    const m: Member = { id: c.id, key, netns: c.netns, networks: [...c.networks], interfaces: { ...(c.interfaces ?? {}) }, upstream: upstream.length > 0 ? upstream : this.upstream, udpPort: ports.udpPort, tcpPort: ports.tcpPort, applied: undefined, queue: Promise.resolve() };
    this.members.set(c.id, m);
    this.byKey.set(key, m);
    try {
      await this.program(m);
    } catch (err) {
      await this.detach(c.id);
      throw err;
    }
  }

  async detach(id: string): Promise<void> {
    const m = this.members.get(id);
    if (!m) return;
    this.members.delete(id);
    this.byKey.delete(m.key);
    await this.proxy?.detach(m.key).catch((err: Error) => this.opts.log.debug({ container: id, err: err.message }, 'discovery: detaching from the DNS proxy failed (it is gone)'));
  }

  /** A query relayed by the proxy: answered from the names, or forwarded, or dropped. */
  onQuery(q: ProxyQuery): void {
    const m = this.byKey.get(q.key);
    if (!m) return this.proxy?.answer(q.id, undefined);
    const d = decide(q.message, m.networks, this.tables, q.transport);
    if (d.kind === 'answer') return this.proxy?.answer(q.id, d.message);
    if (d.kind === 'drop') return this.proxy?.answer(q.id, undefined);
    void forward(q.message, m.upstream, q.transport).then((answer) => this.proxy?.answer(q.id, answer ?? servfail(q.message)));
  }

  /** Resolves once no pass runs (tests, and stop). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** The table a member's namespace should hold now. */
  private stateOf(m: Member): LbState {
    const vips = this.items
      .filter((s) => s.vip && m.networks.includes(s.networkId))
      .map((s) => ({ vip: s.vip, backends: s.backends.map((b) => b.address) }));
    const ifname = this.ingress ? m.interfaces[this.ingress.networkId] : undefined;
    return { dnsUdpPort: m.udpPort, dnsTcpPort: m.tcpPort, vips, ...(ifname && this.ingress ? { ingress: { ifname, nodes: this.ingress.nodes } } : {}) };
  }

  /** The published ports this node forwards: the ingress network's services' ports, to their serving tasks there. */
  private meshPorts(): MeshPort[] {
    if (!this.ingress) return [];
    const out: MeshPort[] = [];
    for (const s of this.items) {
      if (s.networkId !== this.ingress.networkId) continue;
      for (const p of s.ports) {
        const protocol = p.protocol === PortConfig_Protocol.PROTOCOL_UDP ? 'udp' : p.protocol === PortConfig_Protocol.PROTOCOL_SCTP ? 'sctp' : 'tcp';
        out.push({ protocol, published: p.publishedPort, target: p.targetPort, backends: s.backends.map((b) => b.address) });
      }
    }
    return out;
  }

  /** Writes the member's table if it differs from what it holds; flushes the withdrawn backends' connections. */
  private program(m: Member): Promise<void> {
    const run = m.queue.then(async () => {
      if (this.members.get(m.id) !== m) return;
      const next = this.stateOf(m);
      if (m.applied && JSON.stringify(m.applied) === JSON.stringify(next)) return;
      await this.opts.lb.apply(m.netns, next);
      const gone = withdrawn(m.applied, next);
      m.applied = next;
      if (gone.length === 0) return;
      await this.opts.lb.flush(m.netns, gone, 'udp');
      setTimeout(() => {
        // Those that are still not backends (a task back on the same address is one again).
        const still = gone.filter((a) => !m.applied?.vips.some((v) => v.backends.includes(a)));
        if (this.members.get(m.id) === m && still.length > 0) {
          m.queue = m.queue.then(() => this.opts.lb.flush(m.netns, still, 'tcp')).catch((err: Error) => this.opts.log.debug({ container: m.id, err: err.message }, 'discovery: flushing drained connections failed'));
        }
      }, TCP_DRAIN_MS).unref();
    });
    m.queue = run.catch(() => undefined);
    return run;
  }

  private schedule(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.schedule();
      }
    });
  }

  private async pass(): Promise<void> {
    const [target, epoch] = [this.wanted, this.epoch];
    const members = [...this.members.values()];
    let failed = false;
    if (this.opts.mesh) {
      const ports = this.meshPorts();
      await (this.ingress ? this.opts.mesh.apply(ports) : this.opts.mesh.remove()).catch((err: Error) => {
        failed = true;
        this.opts.log.warn({ err: err.message }, 'discovery: the routing mesh\'s table could not be written; again at the next change');
      });
    }
    for (let i = 0; i < members.length; i += CONCURRENCY) {
      await Promise.all(
        members.slice(i, i + CONCURRENCY).map((m) =>
          this.program(m).catch(async (err: Error) => {
            if (this.members.get(m.id) !== m) return;
            // A container whose process has exited has no namespace left (its removal detaches
            // it later): nothing to hold there, and nothing to hold the acknowledgement for.
            if (!existsSync(m.netns)) return this.detach(m.id);
            failed = true;
            this.opts.log.warn({ container: m.id, err: err.message }, 'discovery: a container\'s load balancer could not be written; again at the next change');
          }),
        ),
      );
    }
    // Acknowledged only when every container has it: the stop gate's timeout covers a failure.
    if (failed || epoch !== this.epoch || target <= this.appliedSeq) return;
    this.appliedSeq = target;
    this.onApplied?.(target);
  }
}
