// Deterministic simulation of a Raft cluster in one process: the real RaftNode loop and the real
// write-ahead log (RaftDisk) over an in-memory file system that loses power, an in-memory network
// that drops, duplicates, reorders and delays messages and partitions and heals, crashes and
// restarts (also in the middle of an fsync, tearing the write), membership changes and snapshots
// during the chaos, and clients whose history is checked for linearizability. Everything is drawn
// from one seeded PRNG and a virtual clock: a seed replays exactly.
//
// Safety is checked continuously: election safety (one leader per term), log matching, leader
// completeness and state-machine safety (no two nodes apply different entries at one index).
import { ConfChange, ConfChange_Type, type RaftMessage } from '../../proto/gen/tswarm/raft.js';
import { bootstrapState } from '../../manager/raft/core/raft.js';
import { randomInt, seededRandom, type Random } from '../../manager/raft/core/rand.js';
import { DEFAULT_CORE_CONFIG, type PersistedState } from '../../manager/raft/core/types.js';
import { NotLeaderError } from '../../manager/raft/errors.js';
import { RaftNode, type RaftStorage, type StateMachine } from '../../manager/raft/node.js';
import { RaftDisk } from '../../manager/raft/storage/disk.js';
import { MemFs } from '../../manager/raft/storage/fs.js';
import { checkOperations } from '../lincheck/checker.js';
import { HistoryRecorder, kvModel, type CallHandle, type KvInput, type KvOperation, type KvOutput } from '../lincheck/kv.js';

export interface SimOptions {
  seed: number;
  /** Initial voters. */
  nodes: number;
  /** Virtual ticks of chaos, then a calm period to check that the cluster recovers. */
  ticks: number;
  clients: number;
  dropRate: number;
  dupRate: number;
  /** Message delay in virtual ms, uniform in [1, maxDelay]; a tick is 10 ms. */
  maxDelay: number;
  /** Per tick probability of each kind of fault. */
  partitionRate: number;
  crashRate: number;
  membershipRate: number;
  /** Planted bug for the checker's self-test: a leader serves reads from its state without read-index. */
  bug?: 'stale-reads';
  checkQuorum?: boolean;
}

export const DEFAULT_SIM: Omit<SimOptions, 'seed'> = {
  nodes: 3,
  ticks: 600,
  clients: 4,
  dropRate: 0.05,
  dupRate: 0.02,
  maxDelay: 15,
  partitionRate: 0.01,
  crashRate: 0.008,
  membershipRate: 0.01,
};

export class SimViolation extends Error {
  constructor(seed: number, what: string) {
    super(`raft simulation seed ${seed}: ${what}\nreplay: RAFT_SIM_SEED=${seed} npx vitest run test/raft/sim.test.ts`);
    this.name = 'SimViolation';
  }
}

class SimCrash extends Error {}

const TICK_MS = 10;
const DIR = '/raft';

/** The replicated state machine of the simulation: a string map. */
class KvMachine implements StateMachine<void> {
  map = new Map<string, string>();
  constructor(private readonly onApply: (index: number, data: Uint8Array) => void) {}
  apply(data: Uint8Array, index: number): void {
    this.onApply(index, data);
    const cmd = JSON.parse(Buffer.from(data).toString()) as { key: string; value: string };
    this.map.set(cmd.key, cmd.value);
  }
  snapshot(): Uint8Array {
    return Buffer.from(JSON.stringify([...this.map]));
  }
  restore(data: Uint8Array): void {
    this.map = new Map(JSON.parse(Buffer.from(data).toString()) as [string, string][]);
  }
}

interface SimMember {
  id: number;
  fs: MemFs;
  /** Throw SimCrash at the next fsync (a power loss in the middle of a write). */
  crashAtSync: boolean;
  alive: boolean;
  removed: boolean;
  node?: RaftNode<void>;
  kv?: KvMachine;
  restartAt: number;
  /** Bumped at every start: an fsync completing for an earlier incarnation is ignored. */
  incarnation: number;
}

interface Event {
  at: number;
  seq: number;
  run: () => void;
}

/** A binary min-heap of events by (time, insertion order). */
class EventQueue {
  private heap: Event[] = [];
  private seq = 0;
  push(at: number, run: () => void): void {
    const e = { at, seq: this.seq++, run };
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p]!, h[i]!)) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }
  pop(): Event | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
  peekTime(): number {
    return this.heap[0]?.at ?? Infinity;
  }
}

function less(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export interface SimResult {
  history: KvOperation[];
  acknowledgedWrites: number;
  crashes: number;
  leaderChanges: number;
  snapshotsSent: number;
  membershipChanges: number;
  finalApplied: number;
}

export class Simulation {
  private readonly rng: Random;
  private readonly members = new Map<number, SimMember>();
  private readonly queue = new EventQueue();
  private now = 0;
  private clock = 0;
  private readonly cut = new Set<string>();
  private readonly leaderOfTerm = new Map<number, number>();
  /** What was applied at each index anywhere (state-machine safety). */
  private readonly appliedAt = new Map<number, string>();
  private maxApplied = 0;
  private nextId: number;
  private calm = false;
  private readonly recorder = new HistoryRecorder();
  private readonly stats = { acknowledgedWrites: 0, crashes: 0, leaderChanges: 0, snapshotsSent: 0, membershipChanges: 0 };
  private membershipBusy = false;

  constructor(private readonly opts: SimOptions) {
    this.rng = seededRandom(opts.seed);
    const ids = Array.from({ length: opts.nodes }, (_, i) => i + 1);
    this.nextId = ids.length + 1;
    for (const id of ids) this.addMember(id, bootstrapState(ids));
  }

  private fail(what: string): never {
    throw new SimViolation(this.opts.seed, what);
  }

  private time(): number {
    this.clock = Math.max(this.clock + 1, this.now * 1000);
    return this.clock;
  }

  // ---------------------------------------------------------------- members

  private addMember(id: number, bootstrap?: PersistedState): SimMember {
    const member: SimMember = { id, fs: undefined as unknown as MemFs, crashAtSync: false, alive: false, removed: false, restartAt: 0, incarnation: 0 };
    member.fs = new MemFs((op) => {
      if (member.crashAtSync && op === 'sync' && this.rng() < 0.5) throw new SimCrash();
    });
    member.fs.mkdirp(DIR);
    this.members.set(id, member);
    this.start(member, bootstrap);
    return member;
  }

  private start(member: SimMember, bootstrap?: PersistedState): void {
    member.crashAtSync = false;
    let disk: RaftDisk;
    let state: PersistedState;
    try {
      ({ disk, state } = RaftDisk.open(member.fs, DIR, { segmentBytes: 4096 }));
    } catch (err) {
      this.fail(`node ${member.id} cannot recover its disk: ${(err as Error).message}`);
    }
    if (bootstrap && state.entries.length === 0 && !state.snapshot && state.hardState.term === 0) {
      disk.append(bootstrap.entries, bootstrap.hardState);
      disk.sync();
      state = bootstrap;
    }
    const kv = new KvMachine((index, data) => this.recordApply(member.id, index, data));
    member.kv = kv;
    member.alive = true;
    member.crashAtSync = false;
    const incarnation = ++member.incarnation;
    // Odd seeds run the asynchronous-fsync path of the server: the write completes a few virtual
    // milliseconds later, while the node keeps stepping messages; a crash meanwhile loses it.
    const asyncSync = this.opts.seed % 2 === 1;
    // Both ways of telling followers a new commit index (RaftConfig.lazyCommit), by seed.
    const lazyCommit = Math.floor(this.opts.seed / 2) % 2 === 0;
    const storage: RaftStorage = {
      append: (entries, hs) => disk.append(entries, hs),
      sync: () => disk.sync(),
      saveSnapshot: (meta, data) => disk.saveSnapshot(meta, data),
      syncAsync: (done) => {
        this.queue.push(this.now + randomInt(this.rng, 0, 4), () => {
          if (member.incarnation !== incarnation || !member.alive) return;
          this.guard(member, () => {
            disk.sync();
            done(null);
          });
        });
      },
    };
    member.node = new RaftNode({
      config: {
        ...DEFAULT_CORE_CONFIG,
        id: member.id,
        random: seededRandom(this.opts.seed * 7919 + member.id * 104729 + this.stats.crashes),
        snapshotChunkBytes: 64,
        checkQuorum: this.opts.checkQuorum ?? true,
        maxInflight: 8,
        maxMsgBytes: 512,
        lazyCommit,
      },
      storage,
      asyncSync,
      state,
      stateMachine: kv,
      send: (msgs) => this.transmit(msgs),
      snapshotEntries: 8 + (this.opts.seed % 17),
      keepEntries: 3,
      onSoftState: (s) => {
        if (s.role === 'leader') this.onLeader(member);
      },
    });
    this.guard(member, () => member.node!.process());
  }

  /** Runs fn on a live member; a SimCrash thrown from its disk is a power loss. */
  private guard(member: SimMember, fn: () => void): void {
    if (!member.alive) return;
    try {
      fn();
    } catch (err) {
      if (err instanceof SimCrash) this.crash(member, true);
      else throw err;
    }
  }

  private crash(member: SimMember, torn: boolean): void {
    if (!member.alive) return;
    member.alive = false;
    member.crashAtSync = false;
    this.stats.crashes++;
    member.node?.stop();
    member.node = undefined;
    member.fs.crash(this.rng, { tear: torn || this.rng() < 0.5 });
    member.restartAt = this.now + randomInt(this.rng, 100, 2000);
    // The kernel closes a dead process's connections: some peers' transports notice at once.
    for (const other of this.members.values()) if (other !== member && this.rng() < 0.5) this.reportDisconnected(other, member.id);
  }

  /** `member`'s transport reports its connection to `peer` broken a moment from now (RaftNode.reportDisconnected). */
  private reportDisconnected(member: SimMember, peer: number): void {
    const incarnation = member.incarnation;
    this.queue.push(this.now + randomInt(this.rng, 1, 6), () => {
      if (!member.alive || !member.node || member.incarnation !== incarnation) return;
      this.guard(member, () => {
        member.node!.reportDisconnected(peer);
        member.node!.process();
      });
    });
  }

  private recordApply(id: number, index: number, data: Uint8Array): void {
    const text = Buffer.from(data).toString();
    const seen = this.appliedAt.get(index);
    if (seen === undefined) this.appliedAt.set(index, text);
    else if (seen !== text) this.fail(`state-machine safety: node ${id} applied ${text} at index ${index}, another node applied ${seen}`);
    this.maxApplied = Math.max(this.maxApplied, index);
  }

  private onLeader(member: SimMember): void {
    const node = member.node!;
    const term = node.core.term;
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== member.id) this.fail(`election safety: nodes ${other} and ${member.id} both lead term ${term}`);
    this.leaderOfTerm.set(term, member.id);
    this.stats.leaderChanges++;
    // Leader completeness: everything applied anywhere is in the new leader's log.
    const log = node.core.log;
    if (log.lastIndex() < this.maxApplied) this.fail(`leader completeness: leader ${member.id} of term ${term} ends at ${log.lastIndex()}, index ${this.maxApplied} was applied`);
    for (let i = log.snapshotIndex + 1; i <= this.maxApplied; i++) {
      const e = log.entry(i)!;
      const applied = this.appliedAt.get(i);
      if (applied !== undefined && Buffer.from(e.data).toString() !== applied) {
        this.fail(`leader completeness: leader ${member.id} of term ${term} has a different entry at applied index ${i}`);
      }
    }
  }

  private checkLogMatching(): void {
    const live = [...this.members.values()].filter((m) => m.alive && m.node);
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++) {
        const la = live[a]!.node!.core.log;
        const lb = live[b]!.node!.core.log;
        const lo = Math.max(la.firstIndex(), lb.firstIndex());
        const hi = Math.min(la.lastIndex(), lb.lastIndex());
        let k = hi;
        while (k >= lo && la.term(k) !== lb.term(k)) k--;
        for (let i = lo; i <= k; i++) {
          const ea = la.entry(i)!;
          const eb = lb.entry(i)!;
          if (ea.term !== eb.term || !Buffer.from(ea.data).equals(Buffer.from(eb.data))) {
            this.fail(`log matching: nodes ${live[a]!.id} and ${live[b]!.id} agree at index ${k} but differ at ${i}`);
          }
        }
      }
    }
  }

  // ---------------------------------------------------------------- network

  private transmit(msgs: RaftMessage[]): void {
    for (const m of msgs) {
      if (m.snapshotChunk.length > 0) this.stats.snapshotsSent++;
      if (!this.calm && this.rng() < this.opts.dropRate) continue;
      const copies = !this.calm && this.rng() < this.opts.dupRate ? 2 : 1;
      for (let c = 0; c < copies; c++) {
        this.queue.push(this.now + randomInt(this.rng, 1, this.opts.maxDelay + 1), () => this.deliver(m));
      }
    }
  }

  private deliver(m: RaftMessage): void {
    if (this.cut.has(`${m.from}>${m.to}`)) return;
    const member = this.members.get(m.to);
    if (!member?.alive || !member.node) return;
    this.guard(member, () => {
      member.node!.step(m);
      member.node!.process();
    });
  }

  // ---------------------------------------------------------------- faults

  private partition(): void {
    const ids = [...this.members.values()].filter((m) => !m.removed).map((m) => m.id);
    const side = new Set(ids.filter(() => this.rng() < 0.5));
    for (const a of ids) {
      for (const b of ids) {
        if (side.has(a) === side.has(b)) continue;
        this.cut.add(`${a}>${b}`);
        // A broken link, not a dead peer: the report is wrong about the peer's health.
        const member = this.members.get(a);
        if (member && this.rng() < 0.25) this.reportDisconnected(member, b);
      }
    }
    const healAt = this.now + randomInt(this.rng, 50, 1500);
    this.queue.push(healAt, () => this.cut.clear());
  }

  private crashSomeone(): void {
    const live = [...this.members.values()].filter((m) => m.alive);
    if (live.length === 0) return;
    const victim = live[randomInt(this.rng, 0, live.length)]!;
    if (this.rng() < 0.5) victim.crashAtSync = true; // dies at its next fsync, mid-write
    else this.crash(victim, false);
  }

  private leaderMember(): SimMember | undefined {
    return [...this.members.values()].find((m) => m.alive && m.node?.isLeader());
  }

  /** Adds a learner, promotes it once caught up, then removes another voter: one change at a time. */
  private changeMembership(): void {
    const leader = this.leaderMember();
    if (!leader || this.membershipBusy) return;
    const node = leader.node!;
    const voters = node.confState.voters;
    const learners = node.confState.learners;
    const propose = (cc: ConfChange, then?: () => void): void => {
      this.membershipBusy = true;
      node.proposeConfChange(cc, (err) => {
        this.membershipBusy = false;
        if (!err) {
          this.stats.membershipChanges++;
          then?.();
        }
      });
    };
    if (learners.length > 0) {
      const learner = learners[0]!;
      propose(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_PROMOTE, nodeId: learner }));
    } else if (voters.length > this.opts.nodes) {
      const candidates = voters.filter((v) => v !== leader.id);
      const gone = candidates[randomInt(this.rng, 0, candidates.length)]!;
      propose(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_REMOVE, nodeId: gone }), () => {
        const m = this.members.get(gone);
        if (m) {
          m.removed = true;
          if (m.alive) {
            m.node?.stop();
            m.alive = false;
          }
        }
      });
    } else {
      const id = this.nextId++;
      this.addMember(id);
      propose(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_ADD_LEARNER, nodeId: id }));
    }
    this.guard(leader, () => node.process());
  }

  // ---------------------------------------------------------------- clients

  private runClient(clientId: number, opNo: number): void {
    if (this.now > this.endOfLoad) return;
    const key = `k${randomInt(this.rng, 0, 3)}`;
    const input: KvInput = this.rng() < 0.5 ? { op: 'put', key, value: `c${clientId}.${opNo}` } : { op: 'get', key };
    const handle = this.recorder.invoke(clientId, input, this.time());
    this.attempt(clientId, opNo, input, handle, randomInt(this.rng, 1, this.opts.nodes + 1), this.now + 3000);
  }

  private endOfLoad = 0;

  private attempt(clientId: number, opNo: number, input: KvInput, handle: CallHandle, target: number, deadline: number): void {
    const next = (): void => this.queue.push(this.now + randomInt(this.rng, 1, 30), () => this.runClient(clientId, opNo + 1));
    let settled = false;
    const finish = (output: KvOutput | undefined): void => {
      if (settled) return;
      settled = true;
      if (output === undefined) this.recorder.unknown(handle);
      else this.recorder.complete(handle, output, this.time());
      next();
    };
    if (this.now > deadline) return finish(undefined);
    const retry = (hint: number): void => {
      const ids = [...this.members.keys()];
      const to = hint !== 0 && this.members.has(hint) ? hint : ids[randomInt(this.rng, 0, ids.length)]!;
      this.queue.push(this.now + randomInt(this.rng, 5, 50), () => this.attempt(clientId, opNo, input, handle, to, deadline));
    };
    const member = this.members.get(target);
    if (!member?.alive || !member.node) return retry(0);
    const node = member.node;
    // The reply can be lost: a client that hears nothing by its deadline does not know the outcome.
    this.queue.push(deadline, () => finish(undefined));
    if (input.op === 'put') {
      node.propose(Buffer.from(JSON.stringify({ key: input.key, value: input.value })), (err) => {
        if (!err) {
          this.stats.acknowledgedWrites++;
          return finish({});
        }
        if (err instanceof NotLeaderError) {
          // Definitely not appended: the same operation may be tried elsewhere.
          settled = true;
          return retry(err.leader);
        }
        finish(undefined);
      });
    } else if (input.op === 'get') {
      if (this.opts.bug === 'stale-reads' && node.isLeader()) return finish({ value: member.kv!.map.get(input.key) });
      node.readBarrier((err) => {
        if (!err) return finish({ value: member.kv!.map.get(input.key) });
        if (err instanceof NotLeaderError) {
          settled = true;
          return retry(err.leader);
        }
        finish(undefined);
      });
    }
    this.guard(member, () => node.process());
  }

  // ---------------------------------------------------------------- run

  run(): SimResult {
    const o = this.opts;
    this.endOfLoad = o.ticks * TICK_MS;
    for (let c = 0; c < o.clients; c++) this.queue.push(randomInt(this.rng, 0, 500), () => this.runClient(c, 0));
    const calmTicks = 400;
    for (let tick = 0; tick < o.ticks + calmTicks; tick++) {
      const tickTime = tick * TICK_MS;
      while (this.queue.peekTime() <= tickTime) {
        const e = this.queue.pop()!;
        this.now = Math.max(this.now, e.at);
        e.run();
      }
      this.now = tickTime;
      if (tick === o.ticks) {
        // Calm: heal, restart everyone, stop injecting faults; the cluster must recover.
        this.calm = true;
        this.cut.clear();
        for (const m of this.members.values()) if (!m.alive && !m.removed) m.restartAt = this.now;
      }
      if (!this.calm) {
        if (this.rng() < o.partitionRate) this.partition();
        if (this.rng() < o.crashRate) this.crashSomeone();
        if (this.rng() < o.membershipRate) this.changeMembership();
      }
      for (const m of this.members.values()) {
        if (!m.alive && !m.removed && m.restartAt <= this.now) this.start(m);
      }
      for (const m of this.members.values()) {
        this.guard(m, () => {
          m.node!.tick();
          m.node!.process();
        });
      }
      if (tick % 20 === 0) this.checkLogMatching();
    }
    this.checkConvergence();
    const history = this.recorder.operations();
    return { history, ...this.stats, finalApplied: this.maxApplied };
  }

  /** After the calm period: one leader, and every live member has applied the same prefix. */
  private checkConvergence(): void {
    const live = [...this.members.values()].filter((m) => m.alive && m.node);
    const leaders = live.filter((m) => m.node!.isLeader());
    if (leaders.length !== 1) this.fail(`liveness: ${leaders.length} leaders after the calm period`);
    const voters = new Set(leaders[0]!.node!.confState.voters);
    const applied = live.filter((m) => voters.has(m.id)).map((m) => m.node!.appliedIndex);
    if (new Set(applied).size !== 1) this.fail(`liveness: voters did not converge after the calm period (applied ${applied.join(', ')})`);
    const maps = live.filter((m) => voters.has(m.id)).map((m) => JSON.stringify([...m.kv!.map].sort()));
    if (new Set(maps).size !== 1) this.fail('state machines differ after convergence');
  }
}

/** Runs one seed and checks the client history; throws SimViolation with the seed on any failure. */
export function simulate(opts: SimOptions): SimResult {
  const result = new Simulation(opts).run();
  const check = checkOperations(kvModel, result.history, { timeoutMs: 20_000 });
  if (check.ok === false) throw new SimViolation(opts.seed, `history is not linearizable:\n${check.explanation}`);
  if (check.ok === 'timeout') throw new SimViolation(opts.seed, 'linearizability check timed out');
  return result;
}
