// A minimal in-memory cluster of Raft cores for unit tests of the rules: persisting is a no-op
// (advance() right after ready()), messages are queued and delivered in order unless a link is
// cut, and committed entries are recorded per node.
import { ConfChange, EntryType, type Entry, type RaftMessage } from '../../proto/gen/tswarm/raft.js';
import { bootstrapState, RaftCore } from '../../manager/raft/core/raft.js';
import { seededRandom } from '../../manager/raft/core/rand.js';
import { DEFAULT_CORE_CONFIG, type PersistedState, type RaftConfig, type ReadState } from '../../manager/raft/core/types.js';

export class MemCluster {
  readonly nodes = new Map<number, RaftCore>();
  readonly applied = new Map<number, Entry[]>();
  readonly readStates = new Map<number, ReadState[]>();
  readonly sent: RaftMessage[] = [];
  private queue: RaftMessage[] = [];
  private readonly cut = new Set<string>();
  /** Drop messages for which this returns true (after the cut check). */
  filter: ((m: RaftMessage) => boolean) | undefined;

  constructor(
    ids: number[],
    private readonly overrides: Partial<RaftConfig> = {},
    private readonly seed = 1,
  ) {
    for (const id of ids) this.add(id, bootstrapState(ids));
    this.stabilize(); // apply the bootstrap membership entries
  }

  /** Adds a node from the given state (a joining node: an empty one). */
  add(id: number, state: PersistedState = { hardState: { term: 0, vote: 0, commit: 0 }, entries: [] }): RaftCore {
    // Eager commit propagation unless a test asks otherwise: the rule tests stabilize without
    // ticks and expect every follower to have applied what the leader committed.
    const core = new RaftCore({ ...DEFAULT_CORE_CONFIG, lazyCommit: false, id, random: seededRandom(this.seed * 1000 + id), ...this.overrides }, state);
    this.nodes.set(id, core);
    this.applied.set(id, []);
    this.readStates.set(id, []);
    return core;
  }

  node(id: number): RaftCore {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Processes every node's Ready and delivers messages until nothing moves (bounded). */
  stabilize(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const [id, n] of this.nodes) {
        while (n.hasReady()) {
          moved = true;
          const rd = n.ready();
          for (const e of rd.committed) {
            this.applied.get(id)!.push(e);
            if (e.type === EntryType.ENTRY_TYPE_CONF_CHANGE) n.applyConfChange(ConfChange.decode(e.data));
          }
          this.readStates.get(id)!.push(...rd.readStates);
          this.queue.push(...rd.messages);
          this.sent.push(...rd.messages);
          n.advance(rd);
        }
      }
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        if (this.cut.has(`${m.from}>${m.to}`)) continue;
        if (this.filter?.(m)) continue;
        const to = this.nodes.get(m.to);
        if (to) {
          to.step(m);
          moved = true;
        }
      }
      if (!moved) return;
    }
    throw new Error('cluster did not stabilize');
  }

  tick(ids: number[], times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const id of ids) this.node(id).tick();
      this.stabilize();
    }
  }

  tickAll(times = 1): void {
    this.tick([...this.nodes.keys()], times);
  }

  /** Cuts both directions between a and b (or a and everyone). */
  isolate(a: number, b?: number): void {
    for (const other of b === undefined ? [...this.nodes.keys()] : [b]) {
      if (other === a) continue;
      this.cut.add(`${a}>${other}`);
      this.cut.add(`${other}>${a}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  leaders(): number[] {
    return [...this.nodes.values()].filter((n) => n.role === 'leader').map((n) => n.id);
  }

  /** Ticks until exactly one leader among `among` exists; returns it. */
  electLeader(among = [...this.nodes.keys()], maxTicks = 200): number {
    for (let i = 0; i < maxTicks; i++) {
      const ls = this.leaders().filter((l) => among.includes(l));
      if (ls.length === 1 && this.node(ls[0]!).status().commit > 0) return ls[0]!;
      this.tick(among);
    }
    throw new Error(`no leader among ${among.join(',')} after ${maxTicks} ticks`);
  }

  appliedData(id: number): string[] {
    return this.applied
      .get(id)!
      .filter((e) => e.type === EntryType.ENTRY_TYPE_NORMAL)
      .map((e) => Buffer.from(e.data).toString());
  }
}

export const enc = (s: string): Uint8Array => Buffer.from(s);
