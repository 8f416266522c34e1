// A snapshot of a large store, taken by a real RaftServer over a real disk, does not stop the
// event loop: the store hands out its pieces a few milliseconds at a time and the file is written
// in the thread pool. The loop's lag is measured while the snapshot is taken and must stay under a
// bound far below an election timeout; the snapshot then restores to the same store.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore, type ApplyResult } from '../store/memory.js';
import { RaftProposer, storeStateMachine } from '../store/raft.js';
import { RaftServer } from './server.js';

/**
 * What the loop may stall for while a snapshot is taken: well under the 240 ms election timeout,
 * with room for the scheduling noise of a 2-core machine running the suite two files at a time
 * (a stall of ours would be much longer: taken in one go, this snapshot stopped the loop for over
 * a second). The benchmark measures the real figure on a quiet machine.
 */
const LAG_BOUND_MS = 150;
const OBJECTS = 40_000;
const PER_ENTRY = 1_000;

/** A 25-character object id. */
const idOf = (prefix: string, n: number): string => `${prefix}${String(n).padStart(24, '0')}`;

const port = 43000 + (process.pid % 400) * 5;

describe('a snapshot of a large store', () => {
  const dirs: string[] = [];
  const servers: RaftServer<ApplyResult>[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function start(dataDir: string, store: MemoryStore, snapshotEntries: number | (() => number)): Promise<RaftServer<ApplyResult>> {
    const s = new RaftServer<ApplyResult>({ id: 1, dataDir, listenAddr: `127.0.0.1:${port}`, peers: new Map([[1, `127.0.0.1:${port}`]]), bootstrapVoters: [1], stateMachine: storeStateMachine(store), tickMs: 10, snapshotEntries, keepEntries: 0 });
    servers.push(s);
    await s.start();
    store.setProposer(new RaftProposer(s));
    for (let i = 0; i < 500 && !s.node.isLeader(); i++) await new Promise((r) => setTimeout(r, 10));
    return s;
  }

  it(`of ${OBJECTS} objects keeps the event loop's lag under ${LAG_BOUND_MS} ms (1,069 ms taken in one go), and restores to the same store`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raft-snap-'));
    dirs.push(dir);
    const store = new MemoryStore();
    // One snapshot once the objects are in: 40 entries of 1,000 secrets, then a few small ones.
    const entries = OBJECTS / PER_ENTRY;
    const server = await start(join(dir, 'raft'), store, entries + 5);
    for (let e = 0; e < entries; e++) {
      await store.update((tx) => {
        for (let j = 0; j < PER_ENTRY; j++) {
          const n = e * PER_ENTRY + j;
          tx.create('secret', { id: idOf('s', n), spec: { annotations: { name: `secret-${n}`, labels: {} }, data: randomBytes(1000) } });
        }
      });
    }
    const snapDir = join(dir, 'raft', 'snap');
    const snapshots = (): string[] => (existsSync(snapDir) ? readdirSync(snapDir).filter((f) => f.endsWith('.snap')) : []);
    const before = snapshots().length;
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    try {
      for (let i = 0; i < 10; i++) await store.update((tx) => tx.create('config', { id: idOf('c', i), spec: { annotations: { name: `config-${i}`, labels: {} }, data: Buffer.from('x') } }));
      for (let i = 0; i < 3000 && snapshots().length === before; i++) await new Promise((r) => setTimeout(r, 5));
      expect(snapshots().length).toBeGreaterThan(before);
      // The snapshot is committed: the log was compacted up to it.
      for (let i = 0; i < 400 && server.node.core.log.snapshotIndex === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(server.node.core.log.snapshotIndex).toBeGreaterThanOrEqual(entries + 5);
    } finally {
      lag.disable();
    }
    const maxMs = lag.max / 1e6;
    expect(maxMs, `the loop stalled for ${maxMs.toFixed(1)} ms`).toBeLessThan(LAG_BOUND_MS);

    // A new server on the same directory restores the snapshot (and replays the rest).
    const count = store.list('secret').length + store.list('config').length;
    await servers.pop()!.stop();
    const again = new MemoryStore();
    await start(join(dir, 'raft'), again, 1_000_000);
    expect(again.list('secret').length + again.list('config').length).toBe(count);
    expect(again.get('secret', idOf('s', 39_999))?.spec?.data).toEqual(store.get('secret', idOf('s', 39_999))?.spec?.data);
  }, 120_000);

  it('follows a snapshot interval that changes (the cluster setting is asked at each check)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raft-snap-'));
    dirs.push(dir);
    const store = new MemoryStore();
    let every = 1_000_000;
    const server = await start(join(dir, 'raft'), store, () => every);
    const write = (i: number): Promise<unknown> => store.update((tx) => tx.create('config', { id: idOf('c', i), spec: { annotations: { name: `config-${i}`, labels: {} }, data: Buffer.from('x') } }));
    for (let i = 0; i < 20; i++) await write(i);
    expect(server.node.core.log.snapshotIndex).toBe(0);
    every = 10;
    await write(20);
    for (let i = 0; i < 400 && server.node.core.log.snapshotIndex === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(server.node.core.log.snapshotIndex).toBeGreaterThanOrEqual(20);
  });
});
