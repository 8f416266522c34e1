// The external-etcd backend of the store: etcd is the replicated log. Every StoreRequest is a put
// of one key (`<prefix>/log`); etcd's revisions give all requests one total order, and every
// manager watches that key from the revision after its store's version and applies each put in
// revision order, with the revision as the log index. A proposer learns its request's verdict
// when its own store applies that revision, exactly as with Raft. A manager that starts reads the
// latest store snapshot (`<prefix>/snapshot`, if any) and watches from the revision after it.
//
// Leadership among managers (who runs the orchestrators, the scheduler, the dispatcher) comes from
// an etcd election on a lease: see EtcdLeadership.
import type { Etcd3, Election, Watcher } from 'etcd3';
import { StoreSnapshot } from '../../proto/gen/tswarm/store.js';
import type { ApplyResult, MemoryStore, Proposer } from './memory.js';
import { StoreError } from './memory.js';

export interface EtcdLogOptions {
  prefix?: string;
  /** Write a store snapshot to etcd after this many applied requests (0: never); a function is asked each time. */
  snapshotEvery?: number | (() => number);
}

export class EtcdLog implements Proposer {
  private readonly logKey: string;
  private readonly snapKey: string;
  private watcher: Watcher | undefined;
  private readonly waiting = new Map<number, { resolve: (r: ApplyResult) => void; reject: (e: Error) => void }>();
  private readonly results = new Map<number, ApplyResult>();
  private applied = 0;
  private lastSnapshot = 0;
  private stopped = false;

  constructor(
    private readonly client: Etcd3,
    private readonly store: MemoryStore,
    private readonly opts: EtcdLogOptions = {},
  ) {
    const prefix = opts.prefix ?? '/tswarm';
    this.logKey = `${prefix}/log`;
    this.snapKey = `${prefix}/snapshot`;
  }

  /** Restores the latest snapshot, then follows the log from the revision after it; resolves once caught up. */
  async start(): Promise<void> {
    const snap = await this.client.get(this.snapKey).buffer();
    if (snap) {
      this.store.restore(snap);
      this.lastSnapshot = StoreSnapshot.decode(snap).version;
    }
    this.applied = this.store.version;
    this.watcher = await this.client
      .watch()
      .key(this.logKey)
      .startRevision(String(this.applied + 1))
      .create();
    this.watcher.on('put', (kv) => this.onPut(Number(kv.mod_revision), kv.value));
    // Caught up before anyone reads: wait for the last put that exists now.
    const head = await this.client.get(this.logKey).exec();
    const last = Number(head.kvs[0]?.mod_revision ?? 0);
    const deadline = Date.now() + 30_000;
    while (this.applied < last) {
      if (Date.now() > deadline) throw new StoreError(`store: could not catch up with the etcd log (applied ${this.applied} of ${last})`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private onPut(revision: number, value: Buffer): void {
    if (revision <= this.applied) return;
    const result = this.store.apply(value, revision);
    this.applied = revision;
    const w = this.waiting.get(revision);
    if (w) {
      this.waiting.delete(revision);
      w.resolve(result);
    } else {
      // The put's response may come after the watch event: keep the verdict for it briefly.
      this.results.set(revision, result);
      if (this.results.size > 10_000) this.results.delete(this.results.keys().next().value!);
    }
    const every = typeof this.opts.snapshotEvery === 'function' ? this.opts.snapshotEvery() : (this.opts.snapshotEvery ?? 0);
    if (every > 0 && revision - this.lastSnapshot >= every) {
      this.lastSnapshot = revision;
      void this.client.put(this.snapKey).value(Buffer.from(this.store.snapshot())).catch(() => undefined);
    }
  }

  async propose(data: Uint8Array): Promise<ApplyResult> {
    if (this.stopped) throw new StoreError('store: the etcd log is stopped');
    const res = await this.client.put(this.logKey).value(Buffer.from(data)).exec();
    const revision = Number(res.header.revision);
    const done = this.results.get(revision);
    if (done) {
      this.results.delete(revision);
      return done;
    }
    return new Promise((resolve, reject) => this.waiting.set(revision, { resolve, reject }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.watcher?.cancel();
    for (const w of this.waiting.values()) w.reject(new StoreError('store: the etcd log stopped before the request was applied here'));
    this.waiting.clear();
  }
}

/**
 * Leadership among managers through an etcd election: campaign() resolves when this manager
 * leads; the lease (ttl seconds) ends leadership if the manager dies or loses etcd.
 */
export class EtcdLeadership {
  private readonly election: Election;
  private campaignHandle: ReturnType<Election['campaign']> | undefined;

  constructor(
    client: Etcd3,
    private readonly managerId: string,
    ttlSeconds = 3,
    name = 'tswarm-leader',
  ) {
    this.election = client.election(name, ttlSeconds);
  }

  /** Resolves once this manager is the leader. */
  campaign(): Promise<void> {
    const c = this.election.campaign(this.managerId);
    this.campaignHandle = c;
    return new Promise((resolve, reject) => {
      c.on('elected', () => resolve());
      c.on('error', (err: Error) => reject(err));
    });
  }

  /** The current leader's manager id, if any. */
  async leader(): Promise<string | undefined> {
    return this.election.leader();
  }

  async resign(): Promise<void> {
    await this.campaignHandle?.resign();
  }
}
