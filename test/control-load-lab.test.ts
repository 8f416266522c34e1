// A busy cluster keeps its leader: 64 concurrent writers (the benchmark's load generator, with a
// manager's certificate over mutual TLS) create secrets on the leader of three managers on lab
// hosts, with a snapshot interval small enough for the run to cross a snapshot or two of a store
// made large first (tens of megabytes: a snapshot taken in one go on the leader's event loop
// outlasted the election timeout there). No leader change, no failed write, and every
// acknowledged write is in the store.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabCluster, type NodeJson } from './lab/cluster.js';
import { dist } from './util/dist.js';

const WRITERS = 64;
const SECONDS = 10;
// The least the cluster takes: concurrent writes share log entries (store/batching.ts), so 64
// writers make far fewer entries than writes.
const SNAPSHOT_INTERVAL = 100;

/** The index of the newest snapshot in a manager's snapshot folder (0 for none). */
function newestSnapshot(snapDir: string): number {
  const names = readdirSync(snapDir).filter((f) => f.endsWith('.snap')).sort();
  return names.length === 0 ? 0 : parseInt(names.pop()!.slice(17, 33), 16);
}

/** The highest Raft term the managers have logged (the "raft: leader changed" lines carry it). */
function maxTerm(c: LabCluster): number {
  let term = 0;
  for (const m of c.managers) {
    for (const line of (c.swarmds.get(m)?.log() ?? '').split('\n')) {
      if (!line.includes('raft: leader changed')) continue;
      try {
        term = Math.max(term, Number((JSON.parse(line) as { term?: number }).term ?? 0));
      } catch {
        // not a JSON line
      }
    }
  }
  return term;
}

describe('a cluster under a write load', () => {
  let c: LabCluster;

  beforeAll(async () => {
    c = await LabCluster.create({ managers: 3, workers: 0 });
    await c.ok('m1', 'cluster', 'update', '--snapshot-interval', String(SNAPSHOT_INTERVAL));
  }, 120_000);

  afterAll(async () => {
    if (c) await c.destroy();
  }, 60_000);

  it(`keeps its leader with ${WRITERS} writers across a snapshot of a large store, and loses no write`, async () => {
    const leaderOf = async (): Promise<NodeJson> => (await c.nodes()).find((n) => n.managerStatus?.leader)!;
    const leader = await leaderOf();
    const leaderAddr = leader.managerStatus!.addr!;
    const termBefore = maxTerm(c);
    const from = c.managers.find((m) => c.addr(m) !== leaderAddr)!;
    const load = async (args: string[], seconds: number): Promise<{ ops: number; errors: number; firstError?: string }> => {
      const r = await c.host(from).exec(
        process.execPath,
        [dist('bench/lib/controlapi-client.js'), '--addr', leaderAddr, '--cert-dir', join(c.host('m1').stateDir, 'certs'), '--seconds', String(seconds), ...args],
        { timeoutMs: seconds * 1000 + 60_000 },
      );
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { ops: number; errors: number; firstError?: string };
    };
    // A large store first: secrets of 400 KB (a whole snapshot is then tens of megabytes).
    const big = await load(['--clients', '4', '--payload-bytes', String(400_000), '--prefix', 'big'], 5);
    expect(big.errors, big.firstError).toBe(0);
    const leaderHost = c.managers.find((m) => c.addr(m) === leaderAddr)!;
    const snapDir = join(c.host(leaderHost).stateDir, 'raft', 'snap');
    const snapshotBefore = newestSnapshot(snapDir);
    const res = await load(['--clients', String(WRITERS), '--prefix', 'load'], SECONDS);
    expect(res.errors, res.firstError).toBe(0);
    // Enough entries to cross a snapshot or two of the large store (tens of megabytes each),
    // which the leader took during the load.
    expect(newestSnapshot(snapDir)).toBeGreaterThanOrEqual(snapshotBefore + SNAPSHOT_INTERVAL);
    expect(maxTerm(c)).toBe(termBefore);
    expect((await leaderOf()).id).toBe(leader.id);
    // Every acknowledged write (and the load generator's warm-up writes) is in the store.
    const secrets = JSON.parse(await c.ok('m1', 'secret', 'ls', '--format', 'json')) as { spec?: { annotations?: { name?: string } } }[];
    const made = secrets.filter((s) => /^load-c\d+-\d+$/.test(s.spec?.annotations?.name ?? '')).length;
    expect(made).toBeGreaterThanOrEqual(res.ops);
  }, 120_000);
});
