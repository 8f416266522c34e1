// The rules of the Raft paper (Ongaro & Ousterhout, "In Search of an Understandable Consensus
// Algorithm", extended version) and of the thesis, one by one, on the pure core.
import { describe, expect, it } from 'vitest';
import { ConfChange, ConfChange_Type, EntryType, MessageType, type RaftMessage } from '../../proto/gen/tswarm/raft.js';
import { message, RaftCore } from '../../manager/raft/core/raft.js';
import { seededRandom } from '../../manager/raft/core/rand.js';
import { DEFAULT_CORE_CONFIG } from '../../manager/raft/core/types.js';
import { ConfChangeError, NotLeaderError, ProposalDroppedError, TooLargeError } from '../../manager/raft/errors.js';
import { enc, MemCluster } from './memnet.js';

const noPreVote = { preVote: false, checkQuorum: false };

function single(id: number, voters: number[], overrides = {}): RaftCore {
  return new RaftCore(
    { ...DEFAULT_CORE_CONFIG, id, random: seededRandom(id), ...overrides },
    { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: { metadata: { index: 0, term: 0, confState: { voters, learners: [], addresses: {} } }, data: new Uint8Array() }, entries: [] },
  );
}

function drain(n: RaftCore): RaftMessage[] {
  const out: RaftMessage[] = [];
  while (n.hasReady()) {
    const rd = n.ready();
    out.push(...rd.messages);
    n.advance(rd);
  }
  return out;
}

describe('§5.2 leader election', () => {
  it('a follower that hears nothing for an election timeout starts an election in a new term and votes for itself', () => {
    const n = single(1, [1, 2, 3], noPreVote);
    for (let i = 0; i < 2 * DEFAULT_CORE_CONFIG.electionTick; i++) n.tick();
    expect(n.role).toBe('candidate');
    expect(n.term).toBe(1);
    expect(n.vote).toBe(1);
    const rd = n.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 0 });
    expect(rd.messages.map((m) => [m.type, m.to, m.term])).toEqual([
      [MessageType.MSG_VOTE, 2, 1],
      [MessageType.MSG_VOTE, 3, 1],
    ]);
  });

  it('randomises the election timeout within [electionTick, 2×electionTick)', () => {
    const seen = new Set<number>();
    for (let id = 1; id <= 40; id++) {
      const n = single(id, [id, 100], noPreVote);
      let ticks = 0;
      while (n.role === 'follower') {
        n.tick();
        ticks++;
      }
      seen.add(ticks);
      expect(ticks).toBeGreaterThanOrEqual(DEFAULT_CORE_CONFIG.electionTick);
      expect(ticks).toBeLessThan(2 * DEFAULT_CORE_CONFIG.electionTick);
    }
    expect(seen.size).toBeGreaterThan(3);
  });

  it('a candidate that gets votes from a majority becomes leader and appends an empty entry', () => {
    const c = new MemCluster([1, 2, 3], noPreVote);
    c.node(1).campaign();
    c.stabilize();
    expect(c.node(1).role).toBe('leader');
    expect(c.node(2).leader).toBe(1);
    expect(c.node(1).log.entry(c.node(1).log.lastIndex())).toMatchObject({ type: EntryType.ENTRY_TYPE_EMPTY, term: c.node(1).term });
  });

  it('each server grants at most one vote per term, first come first served', () => {
    const n = single(1, [1, 2, 3], noPreVote);
    n.step(message({ type: MessageType.MSG_VOTE, from: 2, to: 1, term: 1 }));
    n.step(message({ type: MessageType.MSG_VOTE, from: 3, to: 1, term: 1 }));
    const resps = drain(n).filter((m) => m.type === MessageType.MSG_VOTE_RESP);
    expect(resps.map((m) => [m.to, m.reject])).toEqual([
      [2, false],
      [3, true],
    ]);
    expect(n.vote).toBe(2);
  });

  it('a candidate that receives an append from a leader of its term steps down', () => {
    const n = single(1, [1, 2, 3], noPreVote);
    n.campaign();
    drain(n);
    n.step(message({ type: MessageType.MSG_APP, from: 2, to: 1, term: 1 }));
    expect(n.role).toBe('follower');
    expect(n.leader).toBe(2);
  });

  it('a candidate that loses (majority rejects) returns to follower', () => {
    const n = single(1, [1, 2, 3], noPreVote);
    n.campaign();
    n.step(message({ type: MessageType.MSG_VOTE_RESP, from: 2, to: 1, term: 1, reject: true }));
    n.step(message({ type: MessageType.MSG_VOTE_RESP, from: 3, to: 1, term: 1, reject: true }));
    expect(n.role).toBe('follower');
  });

  it('§5.1: a message with a higher term makes any server a follower in that term', () => {
    const c = new MemCluster([1, 2, 3], noPreVote);
    const l = c.electLeader();
    c.node(l).step(message({ type: MessageType.MSG_APP_RESP, from: 2, to: l, term: 9 }));
    expect(c.node(l).role).toBe('follower');
    expect(c.node(l).term).toBe(9);
  });

  it('§5.1: a message with a stale term is not acted on', () => {
    const n = single(1, [1, 2, 3], noPreVote);
    n.step(message({ type: MessageType.MSG_APP, from: 2, to: 1, term: 5 }));
    drain(n);
    n.step(message({ type: MessageType.MSG_VOTE, from: 3, to: 1, term: 4, index: 100, logTerm: 100 }));
    expect(drain(n)).toEqual([]);
    expect(n.vote).toBe(0);
  });
});

describe('§5.4.1 election restriction', () => {
  it('a voter denies its vote to a candidate whose log is less up-to-date', () => {
    const c = new MemCluster([1, 2, 3], noPreVote);
    const l = c.electLeader();
    c.node(l).propose(enc('x'));
    c.stabilize();
    const voter = [1, 2, 3].find((i) => i !== l)!;
    const v = c.node(voter);
    const last = v.log.lastIndex();
    const lastTerm = v.log.lastTerm();
    for (const [index, logTerm, granted] of [
      [last - 1, lastTerm, false],
      [last, lastTerm - 1, false],
      [last, lastTerm, true],
      [last - 1, lastTerm + 1, true],
    ] as const) {
      const fresh = single(7, [7, 8, 9], noPreVote);
      // Copy the voter's log into a fresh node by replaying appends.
      fresh.step(message({ type: MessageType.MSG_APP, from: 8, to: 7, term: v.term, index: 0, logTerm: 0, entries: v.log.slice(1, last + 1)! }));
      drain(fresh);
      fresh.step(message({ type: MessageType.MSG_VOTE, from: 9, to: 7, term: v.term + 1, index, logTerm }));
      const resp = drain(fresh).find((m) => m.type === MessageType.MSG_VOTE_RESP)!;
      expect(resp.reject, `index ${index} logTerm ${logTerm}`).toBe(!granted);
    }
  });
});

describe('§5.3 log replication', () => {
  it('replicates a proposal to every follower and commits it once a majority has it', () => {
    const c = new MemCluster([1, 2, 3], noPreVote);
    const l = c.electLeader();
    const { index } = c.node(l).propose(enc('a'));
    c.stabilize();
    for (const id of [1, 2, 3]) {
      expect(c.node(id).log.committed).toBeGreaterThanOrEqual(index);
      expect(c.appliedData(id)).toEqual(['a']);
    }
  });

  it('lazy commit: no append is sent for a new commit index alone; followers learn it from the next heartbeat', () => {
    const c = new MemCluster([1, 2, 3], { ...noPreVote, lazyCommit: true });
    const l = c.electLeader();
    const followers = [1, 2, 3].filter((i) => i !== l);
    const sentBefore = c.sent.length;
    const { index } = c.node(l).propose(enc('a'));
    c.stabilize();
    expect(c.node(l).log.committed).toBe(index);
    expect(c.appliedData(l)).toEqual(['a']);
    const appends = c.sent.slice(sentBefore).filter((m) => m.type === MessageType.MSG_APP);
    // One append per follower, carrying the entry; none empty.
    expect(appends.map((m) => [m.to, m.entries.length]).sort()).toEqual(followers.map((f) => [f, 1]).sort());
    for (const f of followers) expect(c.node(f).log.committed).toBeLessThan(index);
    c.tick([l], 1); // heartbeatTick is 1
    for (const f of followers) {
      expect(c.node(f).log.committed).toBe(index);
      expect(c.appliedData(f)).toEqual(['a']);
    }
  });

  it('lazy commit: the commit index rides on the next append', () => {
    const c = new MemCluster([1, 2, 3], { ...noPreVote, lazyCommit: true });
    const l = c.electLeader();
    const f = [1, 2, 3].find((i) => i !== l)!;
    const first = c.node(l).propose(enc('a')).index;
    c.stabilize();
    expect(c.node(f).log.committed).toBeLessThan(first);
    c.node(l).propose(enc('b'));
    c.stabilize();
    expect(c.node(f).log.committed).toBe(first);
    expect(c.appliedData(f)).toEqual(['a']);
  });

  it('a follower rejects an append whose previous entry does not match (consistency check)', () => {
    const n = single(1, [1, 2, 3], noPreVote);
    n.step(message({ type: MessageType.MSG_APP, from: 2, to: 1, term: 1, index: 5, logTerm: 1, entries: [] }));
    const resp = drain(n).find((m) => m.type === MessageType.MSG_APP_RESP)!;
    expect(resp.reject).toBe(true);
    expect(resp.rejectHint).toBe(0);
  });

  it('the leader repairs a follower log, overwriting conflicting uncommitted entries', () => {
    const c = new MemCluster([1, 2, 3], noPreVote);
    const l1 = c.electLeader();
    // The old leader, cut off, appends entries no one else gets.
    c.isolate(l1);
    c.node(l1).propose(enc('lost-1'));
    c.node(l1).propose(enc('lost-2'));
    c.stabilize();
    const others = [1, 2, 3].filter((i) => i !== l1);
    const l2 = c.electLeader(others);
    c.node(l2).propose(enc('kept'));
    c.stabilize();
    c.heal();
    c.tickAll(3);
    c.stabilize();
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(['kept']);
    expect(c.node(l1).log.lastIndex()).toBe(c.node(l2).log.lastIndex());
  });

  it('never commits on a follower past what matches the leader (commit = min(leaderCommit, last new))', () => {
    const n = single(1, [1, 2, 3], noPreVote);
    n.step(message({ type: MessageType.MSG_APP, from: 2, to: 1, term: 1, index: 0, logTerm: 0, commit: 10, entries: [{ term: 1, index: 1, type: EntryType.ENTRY_TYPE_NORMAL, data: Buffer.from('a') }] }));
    expect(n.log.committed).toBe(1);
  });
});

describe('§5.4.2 committing entries from previous terms', () => {
  it('a leader does not commit an entry of an earlier term by counting replicas (Figure 8)', () => {
    const c = new MemCluster([1, 2, 3, 4, 5], noPreVote);
    const l = c.electLeader();
    const f = [1, 2, 3, 4, 5].filter((i) => i !== l);
    // The leader gets an entry to one follower only, then crashes (is cut off).
    for (const id of f.slice(1)) c.isolate(l, id);
    c.node(l).propose(enc('old-term'));
    c.stabilize();
    const idx = c.node(l).log.lastIndex();
    expect(c.node(f[0]!).log.lastIndex()).toBe(idx);
    c.isolate(l);
    // f[0] becomes leader of a later term with the entry; it must not count it committed until
    // an entry of its own term commits.
    c.isolate(f[0]!, f[3]);
    c.isolate(f[0]!, f[2]);
    c.node(f[0]!).campaign();
    c.stabilize();
    const mid = c.node(f[0]!);
    if (mid.role === 'leader') {
      // Only f[0], f[1] reachable: no majority of 5, so nothing may commit.
      expect(mid.log.committed).toBeLessThan(idx);
    }
    c.heal();
    c.isolate(l);
    const leader = c.electLeader(f);
    expect(c.node(leader).log.term(c.node(leader).log.committed)).toBe(c.node(leader).term);
  });

  it('a new leader commits earlier-term entries indirectly, with the empty entry of its term', () => {
    const c = new MemCluster([1, 2, 3], noPreVote);
    const l = c.electLeader();
    const f = [1, 2, 3].filter((i) => i !== l);
    c.filter = (m) => m.type === MessageType.MSG_APP_RESP; // the leader never learns it replicated
    c.node(l).propose(enc('v'));
    c.stabilize();
    expect(c.node(l).log.committed).toBeLessThan(c.node(l).log.lastIndex());
    c.filter = undefined;
    c.isolate(l);
    const l2 = c.electLeader(f);
    expect(c.appliedData(l2)).toEqual(['v']);
  });
});

describe('pre-vote and check-quorum (thesis §9.6, §6.2)', () => {
  it('a partitioned node does not raise the term of the cluster when it comes back', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    const lone = [1, 2, 3].find((i) => i !== l)!;
    const term = c.node(l).term;
    c.isolate(lone);
    c.tick([lone], 100);
    expect(c.node(lone).term).toBe(term);
    expect(c.node(lone).role).toBe('precandidate');
    c.heal();
    c.tickAll(5);
    expect(c.node(l).role).toBe('leader');
    expect(c.node(l).term).toBe(term);
  });

  it('a leader that cannot hear from a quorum steps down after an election timeout', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    c.isolate(l);
    c.tick([l], DEFAULT_CORE_CONFIG.electionTick * 2 + 1);
    expect(c.node(l).role).toBe('follower');
  });

  it('a follower whose connection to its leader broke campaigns after two silent heartbeats and the randomised rest, not a whole timeout', () => {
    const { electionTick, heartbeatTick } = DEFAULT_CORE_CONFIG;
    const ticksToCampaign = (report: boolean): number => {
      const n = single(1, [1, 2, 3]);
      n.step(message({ type: MessageType.MSG_HEARTBEAT, from: 2, to: 1, term: 1, commit: 0 }));
      drain(n);
      expect(n.leader).toBe(2);
      if (report) n.reportDisconnected(2);
      for (let t = 1; t <= 4 * electionTick; t++) {
        n.tick();
        if (n.role !== 'follower') return t;
      }
      throw new Error('never campaigned');
    };
    // Twin nodes (same seed, same randomised timeout): the report takes the election timeout
    // less two heartbeat intervals off the wait.
    const told = ticksToCampaign(true);
    expect(told).toBe(ticksToCampaign(false) - (electionTick - 2 * heartbeatTick));
    expect(told).toBeGreaterThanOrEqual(2 * heartbeatTick);
  });

  it('with a long election timeout, a report still brings the campaign within two heartbeats and reportedElectionTick; the leader heard from again undoes it', () => {
    const cfg = { electionTick: 25, reportedElectionTick: 6 };
    const heartbeat = (n: RaftCore): void => {
      n.step(message({ type: MessageType.MSG_HEARTBEAT, from: 2, to: 1, term: 1, commit: 0 }));
      drain(n);
    };
    const ticksToCampaign = (seed: number, report: 'report' | 'report, then a heartbeat' | 'none'): number => {
      const n = single(1, [1, 2, 3], { ...cfg, random: seededRandom(seed) });
      heartbeat(n);
      if (report !== 'none') n.reportDisconnected(2);
      if (report === 'report, then a heartbeat') {
        n.tick();
        heartbeat(n);
      }
      for (let t = 1; t <= 4 * cfg.electionTick; t++) {
        n.tick();
        if (n.role !== 'follower') return t;
      }
      throw new Error('never campaigned');
    };
    const spread = new Set<number>();
    for (let seed = 1; seed <= 20; seed++) {
      const told = ticksToCampaign(seed, 'report');
      expect(told, `seed ${seed}`).toBeGreaterThanOrEqual(2);
      expect(told, `seed ${seed}`).toBeLessThan(2 + cfg.reportedElectionTick);
      spread.add(told);
      expect(ticksToCampaign(seed, 'none'), `seed ${seed}`).toBeGreaterThanOrEqual(cfg.electionTick);
      expect(ticksToCampaign(seed, 'report, then a heartbeat'), `seed ${seed}`).toBeGreaterThanOrEqual(cfg.electionTick);
    }
    // The members keep their spread (a split vote needs equal waits).
    expect(spread.size).toBeGreaterThan(2);
  });

  it('after the report the lease holds for two heartbeat intervals, then pre-votes are granted', () => {
    const { electionTick, heartbeatTick } = DEFAULT_CORE_CONFIG;
    expect(electionTick).toBeGreaterThan(2 * heartbeatTick); // the grace is shorter than the lease
    // A timeout far above electionTick, so that the node does not campaign itself meanwhile.
    const n = single(1, [1, 2, 3], { random: () => 0.99 });
    n.step(message({ type: MessageType.MSG_HEARTBEAT, from: 2, to: 1, term: 1, commit: 0 }));
    drain(n);
    n.reportDisconnected(2);
    const preVote = (): RaftMessage | undefined => {
      n.step(message({ type: MessageType.MSG_PRE_VOTE, from: 3, to: 1, term: 2, index: 10, logTerm: 1 }));
      return drain(n).find((m) => m.type === MessageType.MSG_PRE_VOTE_RESP);
    };
    for (let t = 1; t < 2 * heartbeatTick; t++) n.tick();
    expect(preVote()).toBeUndefined(); // still in the lease: ignored
    n.tick();
    expect(preVote()?.reject).toBe(false);
  });

  it('a dead leader whose followers are told is replaced sooner, mostly within one election timeout', () => {
    const { electionTick } = DEFAULT_CORE_CONFIG;
    const ticksToNewLeader = (seed: number, report: boolean): number => {
      const c = new MemCluster([1, 2, 3], {}, seed);
      const l = c.electLeader();
      const followers = [1, 2, 3].filter((i) => i !== l);
      c.isolate(l);
      if (report) for (const f of followers) c.node(f).reportDisconnected(l);
      for (let t = 1; t <= 10 * electionTick; t++) {
        c.tick(followers);
        if (c.leaders().some((x) => followers.includes(x))) return t;
      }
      throw new Error(`seed ${seed}: no new leader`);
    };
    let withinTimeout = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const told = ticksToNewLeader(seed, true);
      expect(told, `seed ${seed}`).toBeLessThan(ticksToNewLeader(seed, false));
      if (told < electionTick) withinTimeout++;
    }
    // Equal randomised timeouts can still split a vote (and cost another round) now and then.
    expect(withinTimeout).toBeGreaterThanOrEqual(6);
  });

  it('reports about a healthy leader start no election, also when they repeat on a link broken one way', () => {
    for (let seed = 1; seed <= 8; seed++) {
      const c = new MemCluster([1, 2, 3], {}, seed);
      const l = c.electLeader();
      const term = c.node(l).term;
      const followers = [1, 2, 3].filter((i) => i !== l);
      for (const f of followers) c.node(f).reportDisconnected(l);
      c.tickAll(3 * DEFAULT_CORE_CONFIG.electionTick);
      expect(c.leaders(), `seed ${seed}`).toEqual([l]);
      // The link from one follower to the leader fails; the transport reports it after every try.
      const lone = followers[0]!;
      c.filter = (m) => m.from === lone && m.to === l;
      for (let t = 0; t < 3 * DEFAULT_CORE_CONFIG.electionTick; t++) {
        c.node(lone).reportDisconnected(l);
        c.tickAll();
        expect(c.node(lone).role, `seed ${seed}, tick ${t}`).toBe('follower');
      }
      c.filter = undefined;
      expect(c.leaders(), `seed ${seed}`).toEqual([l]);
      expect(c.node(l).term, `seed ${seed}`).toBe(term);
    }
  });

  it('followers that hear from a leader ignore vote requests (leader lease)', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    const f = [1, 2, 3].find((i) => i !== l)!;
    c.node(f).step(message({ type: MessageType.MSG_VOTE, from: 99, to: f, term: c.node(f).term + 5, index: 1000, logTerm: 1000 }));
    expect(c.node(f).leader).toBe(l);
    expect(drain(c.node(f)).filter((m) => m.type === MessageType.MSG_VOTE_RESP)).toEqual([]);
  });
});

describe('linearizable reads (§6.4, read-index)', () => {
  it('confirms leadership with a quorum before releasing a read at the commit index', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    c.node(l).propose(enc('w'));
    c.stabilize();
    c.node(l).readIndex('r1');
    c.stabilize();
    expect(c.readStates.get(l)).toEqual([{ requestId: 'r1', index: c.node(l).log.committed }]);
  });

  it('a leader cut off from the quorum never releases the read', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    c.isolate(l);
    c.node(l).readIndex('r2');
    c.stabilize();
    c.tick([l], 3);
    expect(c.readStates.get(l)).toEqual([]);
  });

  it('releases a read whose own heartbeat acknowledgements were lost, with the next heartbeats', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    c.filter = (m) => m.type === MessageType.MSG_HEARTBEAT_RESP && m.context.toString() === 'r-lost';
    c.node(l).readIndex('r-lost');
    c.stabilize();
    expect(c.readStates.get(l)).toEqual([]);
    c.filter = undefined;
    c.tick([l], 2);
    expect(c.readStates.get(l)?.map((r) => r.requestId)).toEqual(['r-lost']);
  });

  it('a follower refuses read-index, naming the leader', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    const f = [1, 2, 3].find((i) => i !== l)!;
    expect(() => c.node(f).readIndex('r3')).toThrow(NotLeaderError);
    expect(() => c.node(f).readIndex('r3')).toThrow(`the leader is ${l}`);
  });
});

describe('leadership transfer (thesis §3.10)', () => {
  it('catches the transferee up and makes it leader in the next term; proposals are refused meanwhile', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    const t = [1, 2, 3].find((i) => i !== l)!;
    const term = c.node(l).term;
    c.filter = (m) => m.to === t && m.type === MessageType.MSG_APP;
    c.node(l).propose(enc('behind'));
    c.stabilize();
    c.filter = undefined;
    c.node(l).transferLeadership(t);
    expect(() => c.node(l).propose(enc('x'))).toThrow(ProposalDroppedError);
    c.stabilize();
    c.tickAll(2);
    expect(c.node(t).role).toBe('leader');
    expect(c.node(t).term).toBe(term + 1);
    expect(c.appliedData(t)).toEqual(['behind']);
  });
});

describe('leadership transfer with a lost timeout-now', () => {
  it('tells the caught-up transferee again at the next heartbeat', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    const t = [1, 2, 3].find((i) => i !== l)!;
    let dropped = 0;
    c.filter = (m) => m.type === MessageType.MSG_TIMEOUT_NOW && dropped++ === 0;
    c.node(l).transferLeadership(t);
    c.stabilize();
    expect(c.node(t).role).not.toBe('leader');
    c.tick([l], 2);
    expect(dropped).toBeGreaterThan(1);
    expect(c.node(t).role).toBe('leader');
  });
});

describe('membership changes (one at a time, thesis §4.1)', () => {
  it('adds a learner that receives the log but has no vote, and promotes it once caught up', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    c.node(l).propose(enc('before'));
    c.stabilize();
    c.add(4);
    c.node(l).proposeConfChange(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_ADD_LEARNER, nodeId: 4 }));
    c.stabilize();
    c.tickAll(2);
    expect(c.node(l).learners.has(4)).toBe(true);
    expect(c.appliedData(4)).toEqual(['before']);
    expect(c.node(4).role).toBe('follower');
    c.tick([4], 100);
    expect(c.node(4).role).toBe('follower'); // learners never campaign
    c.node(l).proposeConfChange(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_PROMOTE, nodeId: 4 }));
    c.stabilize();
    expect([...c.node(l).voters].sort()).toEqual([1, 2, 3, 4]);
    expect([...c.node(4).voters].sort()).toEqual([1, 2, 3, 4]);
  });

  it('with lazy commit, a removed follower still learns the commit index and applies its own removal', () => {
    const c = new MemCluster([1, 2, 3], { lazyCommit: true });
    const l = c.electLeader();
    const gone = [1, 2, 3].find((i) => i !== l)!;
    c.node(l).proposeConfChange(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_REMOVE, nodeId: gone }));
    c.stabilize();
    expect(c.node(l).voters.has(gone)).toBe(false);
    expect(c.node(gone).voters.has(gone)).toBe(false);
    // So it never campaigns.
    c.tick([gone], 5 * DEFAULT_CORE_CONFIG.electionTick);
    expect(c.node(gone).role).toBe('follower');
  });

  it('refuses a second change while one is pending, and unsafe changes, with the rule', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    c.isolate(l); // nothing commits
    c.node(l).proposeConfChange(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_ADD_LEARNER, nodeId: 4 }));
    expect(() => c.node(l).proposeConfChange(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_ADD_LEARNER, nodeId: 5 }))).toThrow(/already in progress/);
    c.heal();
    c.tickAll(2);
    expect(() => c.node(l).proposeConfChange(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_REMOVE, nodeId: l }))).toThrow(/transfer leadership first/);
    expect(() => c.node(l).proposeConfChange(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_PROMOTE, nodeId: 4 }))).toThrow(ConfChangeError);
    expect(() => c.node(l).proposeConfChange(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_REMOVE, nodeId: 42 }))).toThrow(/not a member/);
  });

  it('removes a voter: the remaining two commit on their own', () => {
    const c = new MemCluster([1, 2, 3]);
    const l = c.electLeader();
    const gone = [1, 2, 3].find((i) => i !== l)!;
    c.node(l).proposeConfChange(ConfChange.fromPartial({ type: ConfChange_Type.TYPE_REMOVE, nodeId: gone }));
    c.stabilize();
    c.isolate(gone);
    c.node(l).propose(enc('after'));
    c.stabilize();
    const rest = [1, 2, 3].filter((i) => i !== gone);
    for (const id of rest) expect(c.appliedData(id)).toEqual(['after']);
  });
});

describe('snapshots and compaction', () => {
  it('sends a chunked snapshot to a follower that needs compacted entries, and it catches up', () => {
    const c = new MemCluster([1, 2, 3], { snapshotChunkBytes: 7 });
    const l = c.electLeader();
    const lag = [1, 2, 3].find((i) => i !== l)!;
    c.isolate(lag);
    for (let i = 0; i < 10; i++) c.node(l).propose(enc(`v${i}`));
    c.stabilize();
    const leader = c.node(l);
    const state = Buffer.from(JSON.stringify(c.appliedData(l)));
    leader.createSnapshot(leader.log.applied, leader.confState(), state);
    leader.compact(leader.log.applied);
    let chunks = 0;
    c.filter = (m) => {
      if (m.type === MessageType.MSG_SNAP) chunks++;
      return m.type === MessageType.MSG_SNAP && chunks === 3; // lose one chunk: it is resent
    };
    c.heal();
    c.tickAll(10);
    c.stabilize();
    expect(chunks).toBeGreaterThan(Math.ceil(state.length / 7));
    expect(c.node(lag).log.snapshotIndex).toBe(leader.log.snapshotIndex);
    expect(c.node(lag).latestSnapshot()?.data).toEqual(state);
    leader.propose(enc('after'));
    c.stabilize();
    expect(c.appliedData(lag)).toEqual(['after']);
  });
});

describe('snapshot install on a follower that already holds the snapshot point', () => {
  it('acknowledges the snapshot index only, not an unverified tail after it', () => {
    const f = single(1, [1, 2, 3], noPreVote);
    const ent = (index: number, term: number) => ({ term, index, type: EntryType.ENTRY_TYPE_NORMAL, data: Buffer.from(`e${index}`) });
    const first = Array.from({ length: 10 }, (_, i) => ent(i + 1, 1));
    const tail = Array.from({ length: 5 }, (_, i) => ent(i + 11, 2));
    f.step(message({ type: MessageType.MSG_APP, from: 2, to: 1, term: 2, index: 0, logTerm: 0, commit: 5, entries: [...first, ...tail] }));
    drain(f);
    const data = Buffer.from('state');
    f.step(message({ type: MessageType.MSG_SNAP, from: 3, to: 1, term: 3, snapshot: { index: 10, term: 1, confState: { voters: [1, 2, 3], learners: [], addresses: {} } }, snapshotChunk: data, snapshotOffset: 0, snapshotLast: true, snapshotSize: data.length }));
    const ack = drain(f).find((m) => m.type === MessageType.MSG_APP_RESP)!;
    expect(ack.index).toBe(10);
    expect(f.log.committed).toBe(10);
  });
});

describe('proposals', () => {
  it('are refused on a follower with the leader named, and when too large', () => {
    const c = new MemCluster([1, 2, 3], { maxProposalBytes: 10 });
    const l = c.electLeader();
    const f = [1, 2, 3].find((i) => i !== l)!;
    expect(() => c.node(f).propose(enc('x'))).toThrow(NotLeaderError);
    expect(() => c.node(l).propose(new Uint8Array(11))).toThrow(TooLargeError);
  });
});
