// Path health: this node probes, through each overlay network it is on, every other node on that
// network (an ICMP echo between the two nodes' own addresses there, over VXLAN), every few
// seconds, and reports what it found with its heartbeats; `swarmctl node inspect` shows it. A
// path that stops carrying (a cut link, a firewall that drops UDP 4789, a VTEP address that
// changed) shows as unreachable, with since when and the last error, instead of silently
// (Docker's overlays that "stop crossing nodes": moby#32195).
//
// The state machine is pure (afterProbe); the prober is its driver: targets in, probes out.
import type { NetworkAssignment, NetworkPeer } from '../../proto/gen/tswarm/dispatcher.js';
import { PeerPath_State, type PeerPath } from '../../proto/gen/tswarm/types.js';
import type { Logger } from '../../common/logger.js';

/** How often each path is probed. */
export const PROBE_INTERVAL_MS = 2_000;
/** How long a probe waits for its answer. */
export const PROBE_TIMEOUT_MS = 1_000;
/** Failures in a row before a path is unreachable: one lost packet is not a cut. */
export const FAILURES_TO_UNREACHABLE = 2;

/** One path to probe: from this node's address on a network to a peer node's. */
export interface PathTarget {
  networkId: string;
  nodeId: string;
  /** This node's address on the network (no prefix length). */
  from: string;
  /** The peer node's. */
  to: string;
}

export interface Tracked {
  path: PeerPath;
  /** Failed probes in a row. */
  failures: number;
}

/** The path's state after one probe (`error` undefined: answered). */
export function afterProbe(prev: Tracked | undefined, target: PathTarget, error: string | undefined, now: number): Tracked {
  const path = prev?.path ?? { nodeId: target.nodeId, networkId: target.networkId, state: PeerPath_State.STATE_UNKNOWN, sinceUnixMs: now, lastError: '' };
  const failures = error === undefined ? 0 : (prev?.failures ?? 0) + 1;
  let state = path.state;
  if (error === undefined) state = PeerPath_State.STATE_REACHABLE;
  else if (failures >= FAILURES_TO_UNREACHABLE) state = PeerPath_State.STATE_UNREACHABLE;
  // A single failure leaves a reachable path as it was; a path not yet known shows why.
  const lastError = error === undefined || state === PeerPath_State.STATE_REACHABLE ? '' : error;
  return { failures, path: { ...path, state, sinceUnixMs: state === path.state ? path.sinceUnixMs : now, lastError } };
}

/** The paths to probe, from the node's assignments: each network where this node has its own address, to each other node's. */
export function pathTargets(networks: ReadonlyMap<string, NetworkAssignment>, peers: Iterable<NetworkPeer>): PathTarget[] {
  const out: PathTarget[] = [];
  for (const p of peers) {
    if (!p.nodeAddress) continue;
    const from = networks.get(p.networkId)?.nodeAddress.split('/')[0];
    if (from) out.push({ networkId: p.networkId, nodeId: p.nodeId, from, to: p.address });
  }
  return out;
}

const keyOf = (t: { networkId: string; nodeId: string }): string => `${t.networkId}/${t.nodeId}`;

export interface PathProberOptions {
  probe: (networkId: string, from: string, to: string, timeoutMs: number) => Promise<void>;
  log: Logger;
  intervalMs?: number;
  now?: () => number;
}

export class PathProber {
  private targets = new Map<string, PathTarget>();
  private readonly tracked = new Map<string, Tracked>();
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;

  constructor(private readonly opts: PathProberOptions) {}

  /** The paths to probe from now on; those gone are forgotten. */
  setTargets(targets: readonly PathTarget[]): void {
    this.targets = new Map(targets.map((t) => [keyOf(t), t]));
    for (const k of this.tracked.keys()) if (!this.targets.has(k)) this.tracked.delete(k);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.round ??= this.probeAll().finally(() => (this.round = undefined));
    }, this.opts.intervalMs ?? PROBE_INTERVAL_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.round;
  }

  /** Every path's last state (what the heartbeats carry). */
  paths(): PeerPath[] {
    return [...this.tracked.values()].map((t) => t.path);
  }

  /** One probe of every path, all at once (each waits at most PROBE_TIMEOUT_MS). */
  async probeAll(): Promise<void> {
    const now = this.opts.now ?? Date.now;
    await Promise.all(
      [...this.targets.entries()].map(async ([key, t]) => {
        let error: string | undefined;
        try {
          await this.opts.probe(t.networkId, t.from, t.to, PROBE_TIMEOUT_MS);
        } catch (err) {
          error = (err as Error).message;
        }
        if (this.targets.get(key) !== t) return; // retargeted meanwhile
        const before = this.tracked.get(key);
        const after = afterProbe(before, t, error, now());
        this.tracked.set(key, after);
        if (before?.path.state !== after.path.state && after.path.state !== PeerPath_State.STATE_UNKNOWN) {
          const level = after.path.state === PeerPath_State.STATE_UNREACHABLE ? 'warn' : 'info';
          this.opts.log[level]({ network: t.networkId, peer: t.nodeId, address: t.to, err: after.path.lastError || undefined }, `network: overlay path to ${t.nodeId} ${after.path.state === PeerPath_State.STATE_REACHABLE ? 'reachable' : 'unreachable'}`);
        }
      }),
    );
  }
}
