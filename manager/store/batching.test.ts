// Proposal batching over a log that the test holds in its hand: which transactions share an entry
// (a turn of the event loop, a full window), the limits of an entry, each caller's own verdict, the
// log's errors reaching every caller of the entry, and apply's handling of a batch entry. The store
// suite (store.test.ts) runs the same batching over Raft and etcd, every replica agreeing.
import { describe, expect, it } from 'vitest';
import { StoreAction_Kind, StoreRequest, type StoreAction } from '../../proto/gen/tswarm/store.js';
import type { Secret } from '../../proto/gen/tswarm/objects.js';
import { newId } from '../../common/identity.js';
import { BatchingProposer, encodeBatch } from './batching.js';
import { MemoryStore, NameConflictError, StoreError, VersionConflictError, type ApplyResult, type Proposer } from './memory.js';

function secret(name: string, bytes = 16): Secret {
  return { id: newId(), spec: { annotations: { name, labels: {} }, data: Buffer.alloc(bytes, 1) } };
}

/** A log whose entries the test settles: each proposal is recorded and applied when released. */
class HeldLog implements Proposer {
  readonly entries: { data: Uint8Array; release: () => void; fail: (err: Error) => void }[] = [];
  private index = 0;

  constructor(private readonly store: MemoryStore) {}

  propose(data: Uint8Array): Promise<ApplyResult> {
    return new Promise((resolve, reject) => {
      this.entries.push({ data, release: () => resolve(this.store.apply(data, ++this.index)), fail: reject });
    });
  }

  /** How many transactions each entry carries (1 for a plain request). */
  shape(): number[] {
    return this.entries.map((e) => StoreRequest.decode(e.data).batch.length || 1);
  }

  releaseAll(): void {
    for (const e of this.entries.splice(0)) e.release();
  }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function setup(opts: ConstructorParameters<typeof BatchingProposer>[1] = {}): { store: MemoryStore; log: HeldLog } {
  const store = new MemoryStore();
  const log = new HeldLog(store);
  store.setProposer(new BatchingProposer(log, opts));
  return { store, log };
}

describe('BatchingProposer', () => {
  it('sends a lone proposal at once and as it is; what comes in the same turn shares the next entry', async () => {
    const { store, log } = setup();
    const writes = ['a', 'b', 'c', 'd'].map((n) => store.update((tx) => tx.create('secret', secret(n))));
    // The first left at once (the log was idle), as a plain request.
    expect(log.shape()).toEqual([1]);
    expect(StoreRequest.decode(log.entries[0]!.data).actions).toHaveLength(1);
    await turn();
    expect(log.shape()).toEqual([1, 3]);
    log.releaseAll();
    const versions = await Promise.all(writes);
    expect(versions).toEqual([1, 2, 2, 2]);
    expect(store.list('secret').map((s) => s.spec?.annotations?.name).sort()).toEqual(['a', 'b', 'c', 'd']);
  });

  it('answers each caller with its own verdict: a conflict fails that transaction alone', async () => {
    const { store, log } = setup();
    const base = secret('base');
    const first = store.update((tx) => tx.create('secret', base));
    log.releaseAll();
    await first;
    const read = store.get('secret', base.id)!;
    const writes = [
      store.update((tx) => tx.create('secret', secret('x'))), // alone: the log was idle
      store.update((tx) => tx.update('secret', { ...read, spec: { ...read.spec!, data: Buffer.from('one') } })),
      store.update((tx) => tx.update('secret', { ...read, spec: { ...read.spec!, data: Buffer.from('two') } })), // read the same version
      store.update((tx) => tx.create('secret', secret('dup'))),
      store.update((tx) => tx.create('secret', secret('dup'))), // the name is taken by the one before it
      store.update((tx) => tx.create('secret', secret('y'))),
    ];
    await turn();
    expect(log.shape()).toEqual([1, 5]);
    log.releaseAll();
    const results = await Promise.allSettled(writes);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(VersionConflictError);
    expect((results[4] as PromiseRejectedResult).reason).toBeInstanceOf(NameConflictError);
    // Those that applied did so at the entry's index, as their objects' versions say.
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : undefined))).toEqual([2, 3, undefined, 3, undefined, 3]);
    expect(store.get('secret', base.id)?.meta?.version).toBe(3);
    expect(store.get('secret', base.id)?.spec?.data.toString()).toBe('one');
    expect(store.list('secret').map((x) => x.spec?.annotations?.name).sort()).toEqual(['base', 'dup', 'x', 'y']);
  });

  it('keeps an entry within the byte and count limits, and the first of a queue goes even if large', async () => {
    const { store, log } = setup({ maxEntryBytes: 1000, maxRequests: 3 });
    const busy = store.update((tx) => tx.create('secret', secret('busy')));
    const writes = [
      ...Array.from({ length: 5 }, (_, i) => store.update((tx) => tx.create('secret', secret(`s${i}`)))),
      store.update((tx) => tx.create('secret', secret('big', 1500))),
      store.update((tx) => tx.create('secret', secret('after'))),
    ];
    await turn();
    // 5 small ones in entries of at most 3; the large one alone (and as a plain request); then the last.
    expect(log.shape()).toEqual([1, 3, 2, 1]);
    expect(log.entries.slice(1, 3).every((e) => e.data.length <= 1000)).toBe(true);
    log.releaseAll();
    await turn();
    expect(log.shape()).toEqual([1]);
    log.releaseAll();
    await Promise.all([busy, ...writes]);
    expect(store.list('secret')).toHaveLength(8);
  });

  it('holds transactions while the window is full and sends them together when an entry settles', async () => {
    const { store, log } = setup({ maxInFlight: 1 });
    const writes = [store.update((tx) => tx.create('secret', secret('w0')))];
    for (let t = 1; t <= 3; t++) {
      await turn();
      writes.push(store.update((tx) => tx.create('secret', secret(`w${t}a`))), store.update((tx) => tx.create('secret', secret(`w${t}b`))));
    }
    await turn();
    // One entry in flight; the six proposed over three turns wait.
    expect(log.shape()).toEqual([1]);
    log.entries[0]!.release();
    log.entries.shift();
    await turn();
    expect(log.shape()).toEqual([6]);
    log.releaseAll();
    expect(await Promise.all(writes)).toEqual([1, 2, 2, 2, 2, 2, 2]);
  });

  it("gives the log's error for an entry to every caller in it", async () => {
    const { store, log } = setup();
    const lone = store.update((tx) => tx.create('secret', secret('l')));
    const batched = [store.update((tx) => tx.create('secret', secret('m'))), store.update((tx) => tx.create('secret', secret('n')))];
    await turn();
    const lost = new Error('leadership lost: outcome unknown');
    for (const e of log.entries.splice(0)) e.fail(lost);
    await expect(lone).rejects.toBe(lost);
    for (const b of batched) await expect(b).rejects.toBe(lost);
    expect(store.list('secret')).toHaveLength(0);
  });
});

describe('apply of a batch entry', () => {
  const create = (s: Secret): StoreAction => ({ kind: StoreAction_Kind.KIND_CREATE, object: { object: { $case: 'secret', secret: s } } });
  const request = (actions: StoreAction[]): Uint8Array => StoreRequest.encode({ actions, unixMs: 1000, batch: [] }).finish();

  it('is the concatenation of the requests, which decode as they were', () => {
    const reqs = [request([create(secret('a'))]), request([]), request([create(secret('b', 300))])];
    const entry = StoreRequest.decode(encodeBatch(reqs));
    expect(entry.actions).toEqual([]);
    expect(entry.batch.map((b) => Buffer.from(b).toString('hex'))).toEqual(reqs.map((r) => Buffer.from(r).toString('hex')));
  });

  it('applies each request in order at the entry index, each to its own verdict, the same on every store', () => {
    const a = secret('a');
    const stores = [new MemoryStore(), new MemoryStore()];
    const first = request([create(a)]);
    for (const s of stores) expect(s.apply(first, 1)).toEqual({ ok: true, version: 1 });
    const stored = stores[0]!.get('secret', a.id)!;
    const update = (data: string): StoreAction => ({ kind: StoreAction_Kind.KIND_UPDATE, object: { object: { $case: 'secret', secret: { ...stored, spec: { ...stored.spec!, data: Buffer.from(data) } } } } });
    const entry = encodeBatch([request([update('one')]), request([update('two')]), request([create(secret('a'))]), request([create(secret('c'))])]);
    const results = stores.map((s) => s.apply(entry, 2));
    for (const r of results) {
      expect(r.ok).toBe(true);
      const verdicts = (r as { batch: ApplyResult[] }).batch;
      expect(verdicts.map((v) => v.ok)).toEqual([true, false, false, true]);
      expect((verdicts[1] as { error: StoreError }).error).toBeInstanceOf(VersionConflictError);
      expect((verdicts[2] as { error: StoreError }).error).toBeInstanceOf(NameConflictError);
    }
    expect(Buffer.from(stores[0]!.snapshot()).equals(Buffer.from(stores[1]!.snapshot()))).toBe(true);
    expect(stores[0]!.get('secret', a.id)!.spec?.data.toString()).toBe('one');
    expect(stores[0]!.version).toBe(2);
  });

  it('refuses a nested batch, a malformed request (alone), and an entry with both actions and a batch', () => {
    const store = new MemoryStore();
    const nested = StoreRequest.encode({ actions: [], unixMs: 0, batch: [Buffer.from(request([]))] }).finish();
    const malformed = Uint8Array.from([0x0a, 0x05, 0x01]); // a field 1 of 5 bytes, cut after one
    const r = store.apply(encodeBatch([request([create(secret('ok'))]), nested, malformed, request([create(secret('after'))])]), 1) as { ok: true; batch: ApplyResult[] };
    expect(r.batch.map((v) => v.ok)).toEqual([true, false, false, true]);
    expect((r.batch[2] as { error: StoreError }).error.message).toMatch(/^store: request 2 of the batch in entry 1 is malformed/);
    const both = StoreRequest.encode({ actions: [create(secret('x'))], unixMs: 0, batch: [Buffer.from(request([]))] }).finish();
    const refused = store.apply(both, 2);
    expect(refused.ok).toBe(false);
    expect(store.list('secret').map((s) => s.spec?.annotations?.name).sort()).toEqual(['after', 'ok']);
    expect(store.version).toBe(2);
  });
});
