// Deterministic simulation runs: many seeds per CI run (RAFT_SIM_SEEDS for a soak, e.g. 5000;
// RAFT_SIM_SEED=N to replay one). A failure names its seed; the same seed replays exactly.
import { describe, expect, it } from 'vitest';
import { DEFAULT_SIM, simulate, type SimOptions } from './sim.js';

const only = process.env.RAFT_SIM_SEED ? Number(process.env.RAFT_SIM_SEED) : undefined;
const seeds = Number(process.env.RAFT_SIM_SEEDS ?? 200);

function runSeeds(label: string, base: number, count: number, opts: Partial<SimOptions>): void {
  it(`${label}: ${only === undefined ? count : 1} seeds hold every safety property and check linearizable`, () => {
    const list = only !== undefined ? [only] : Array.from({ length: count }, (_, i) => base + i);
    let writes = 0;
    let crashes = 0;
    let snapshots = 0;
    let membership = 0;
    for (const seed of list) {
      const r = simulate({ ...DEFAULT_SIM, seed, ...opts });
      writes += r.acknowledgedWrites;
      crashes += r.crashes;
      snapshots += r.snapshotsSent;
      membership += r.membershipChanges;
    }
    // The chaos must actually have happened, or the run proves little.
    expect(writes).toBeGreaterThan(list.length * 5);
    if (list.length >= 20) {
      expect(crashes).toBeGreaterThan(0);
      expect(snapshots).toBeGreaterThan(0);
      expect(membership).toBeGreaterThan(0);
    }
  }, Math.max(60_000, count * 1_000));
}

describe('raft simulation', () => {
  runSeeds('3 voters', 1, seeds, { nodes: 3 });
  runSeeds('5 voters', 100_000, Math.ceil(seeds / 2), { nodes: 5 });

  it('replays a seed exactly', () => {
    const a = simulate({ ...DEFAULT_SIM, seed: 4242 });
    const b = simulate({ ...DEFAULT_SIM, seed: 4242 });
    expect(b.history).toEqual(a.history);
    expect(b.finalApplied).toBe(a.finalApplied);
  });
});

describe('the linearizability checker on simulation histories', () => {
  it('catches a planted bug: a deposed leader serving reads without read-index', () => {
    let caught = 0;
    let seed = 900_000;
    for (; seed < 900_060 && caught === 0; seed++) {
      try {
        simulate({ ...DEFAULT_SIM, seed, bug: 'stale-reads', checkQuorum: false, partitionRate: 0.05, crashRate: 0, membershipRate: 0 });
      } catch (err) {
        expect((err as Error).message).toMatch(/not linearizable/);
        caught++;
      }
    }
    expect(caught).toBe(1);
  });
});
