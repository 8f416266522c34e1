// The manager store: the cluster's objects in memory, with indexes, read views, update
// transactions with optimistic concurrency, and watches that can resume from a version.
//
// Writes never touch the tables directly. update() runs the caller's function against a view plus
// its own pending changes, turns them into one StoreRequest and hands it to the Proposer (Raft or
// etcd). Every manager applies committed requests in log order through apply(), which re-checks
// versions and names deterministically, so all stores agree; the proposer's promise resolves with
// that verdict. An object's meta.version is the log index of its last write.
import { BigSet, OrderedShardedMap, ShardedMap } from './sharded.js';
import { Held, PieceArena, PieceRuns, fromStoreObject, pieceOf, readSnapshot, toStoreObject } from './pieces.js';
import { StoreAction, StoreAction_Kind, StoreRequest, StoreSnapshot } from '../../proto/gen/tswarm/store.js';
import type { Cluster, Config, Network, Node, Secret, Service, Task } from '../../proto/gen/tswarm/objects.js';
import type { TaskState } from '../../proto/gen/tswarm/types.js';
import { InvalidArgumentError, TswarmError } from '../../common/errors.js';

export interface ObjectTypes {
  cluster: Cluster;
  node: Node;
  service: Service;
  task: Task;
  network: Network;
  secret: Secret;
  config: Config;
}
export type Kind = keyof ObjectTypes;
export type AnyObject = ObjectTypes[Kind];
export const KINDS: readonly Kind[] = ['cluster', 'node', 'service', 'task', 'network', 'secret', 'config'];
/** Kinds whose names are unique cluster-wide (as in Swarm). */
const UNIQUE_NAMES: ReadonlySet<Kind> = new Set<Kind>(['cluster', 'service', 'network', 'secret', 'config']);

export class StoreError extends TswarmError {}

/** The object changed since the writer read it. */
export class VersionConflictError extends StoreError {
  constructor(
    readonly kind: Kind,
    readonly id: string,
    readonly expected: number,
    readonly actual: number | undefined,
  ) {
    super(
      actual === undefined
        ? `${kind} ${id}: update out of sequence: it was removed (the update was based on version ${expected})`
        : `${kind} ${id}: update out of sequence: it is at version ${actual}, the update was based on version ${expected}; read it again and retry`,
    );
  }
}

export class NameConflictError extends StoreError {
  constructor(
    readonly kind: Kind,
    readonly objectName: string,
  ) {
    super(`${kind} name "${objectName}" is already in use`);
  }
}

export class NotFoundError extends StoreError {
  constructor(
    readonly kind: Kind,
    readonly id: string,
  ) {
    super(`${kind} ${id} not found`);
  }
}

export class ExistsError extends StoreError {
  constructor(
    readonly kind: Kind,
    readonly id: string,
  ) {
    super(`${kind} ${id} already exists`);
  }
}

/** A watch asked to resume from a version whose events are no longer kept. */
export class WatchCompactedError extends StoreError {}

/**
 * What apply() returns to the proposer: the verdict every manager reached for the request. For an
 * entry that carries several requests (StoreRequest.batch, made by BatchingProposer), `batch`
 * holds each one's verdict in order, and `version` is the entry's index.
 */
export type ApplyResult = { ok: true; version: number; batch?: ApplyResult[] } | { ok: false; error: StoreError };

/** Hands a request to the replicated log; resolves with apply()'s result on this manager. */
export interface Proposer {
  propose(data: Uint8Array): Promise<ApplyResult>;
}

export type EventAction = 'create' | 'update' | 'remove';

export interface StoreEvent {
  kind: Kind;
  action: EventAction;
  object: AnyObject;
  /** For updates: the object before. */
  old?: AnyObject;
  version: number;
}

/**
 * An event as the store keeps it for watches that resume: the stored versions (Held) rather than
 * decoded objects. A decoded object kept for thousands of events would live long enough to reach
 * the old generation and die there, which costs the GC as much as keeping it for good.
 */
interface KeptEvent {
  kind: Kind;
  action: EventAction;
  held: Held;
  old?: Held;
  version: number;
}

export interface StoreOptions {
  /** Events kept for watches that resume from a version. */
  eventHistory?: number;
  /** Largest encoded request update() proposes (Raft refuses larger proposals). */
  maxRequestBytes?: number;
  now?: () => number;
}

export function nameOf(kind: Kind, obj: AnyObject): string | undefined {
  if (kind === 'task') return (obj as Task).annotations?.name;
  return (obj as { spec?: { annotations?: { name?: string } } }).spec?.annotations?.name;
}

function labelsOf(kind: Kind, obj: AnyObject): Record<string, string> {
  if (kind === 'task') return (obj as Task).annotations?.labels ?? {};
  return (obj as { spec?: { annotations?: { labels?: Record<string, string> } } }).spec?.annotations?.labels ?? {};
}

function versionOf(obj: AnyObject): number {
  return obj.meta?.version ?? 0;
}

/** A read-only view of the tables. */
export interface ReadView {
  get<K extends Kind>(kind: K, id: string): ObjectTypes[K] | undefined;
  list<K extends Kind>(kind: K): ObjectTypes[K][];
  byName<K extends Kind>(kind: K, name: string): ObjectTypes[K] | undefined;
}

export interface TaskQuery {
  serviceId?: string;
  nodeId?: string;
  desiredState?: TaskState;
}

/** An update transaction: reads see the store plus this transaction's own changes. */
export class Tx implements ReadView {
  readonly actions: StoreAction[] = [];
  private readonly pending = new Map<string, AnyObject | null>();

  constructor(private readonly store: MemoryStore) {}

  private key(kind: Kind, id: string): string {
    return `${kind}/${id}`;
  }

  get<K extends Kind>(kind: K, id: string): ObjectTypes[K] | undefined {
    const p = this.pending.get(this.key(kind, id));
    if (p !== undefined) return (p ?? undefined) as ObjectTypes[K] | undefined;
    return this.store.get(kind, id);
  }

  list<K extends Kind>(kind: K): ObjectTypes[K][] {
    const out = new Map<string, ObjectTypes[K]>();
    for (const o of this.store.list(kind)) out.set(o.id, o);
    for (const [k, v] of this.pending) {
      const [pk, id] = k.split('/') as [Kind, string];
      if (pk !== kind) continue;
      if (v === null) out.delete(id);
      else out.set(id, v as ObjectTypes[K]);
    }
    return [...out.values()];
  }

  /** Uses the store's name index for kinds with unique names (a create must not scan the table). */
  byName<K extends Kind>(kind: K, name: string): ObjectTypes[K] | undefined {
    if (!UNIQUE_NAMES.has(kind)) return this.list(kind).find((o) => nameOf(kind, o) === name);
    for (const [k, v] of this.pending) {
      if (v !== null && k.startsWith(`${kind}/`) && nameOf(kind, v) === name) return v as ObjectTypes[K];
    }
    const stored = this.store.byName(kind, name);
    // Still this name within this transaction (not removed or renamed by it)?
    const seen = stored ? this.get(kind, stored.id) : undefined;
    return seen && nameOf(kind, seen) === name ? seen : undefined;
  }

  create<K extends Kind>(kind: K, obj: ObjectTypes[K]): void {
    if (!obj.id) throw new InvalidArgumentError(`${kind}.id`, 'must be set');
    if (this.get(kind, obj.id)) throw new ExistsError(kind, obj.id);
    const name = nameOf(kind, obj);
    if (UNIQUE_NAMES.has(kind) && name !== undefined && name !== '' && this.byName(kind, name)) throw new NameConflictError(kind, name);
    this.pending.set(this.key(kind, obj.id), obj);
    this.actions.push({ kind: StoreAction_Kind.KIND_CREATE, object: toStoreObject(kind, obj) });
  }

  /** `obj.meta.version` must be the version read; the store refuses the write if it moved since. */
  update<K extends Kind>(kind: K, obj: ObjectTypes[K]): void {
    const current = this.get(kind, obj.id);
    if (!current) throw new NotFoundError(kind, obj.id);
    if (versionOf(current) !== versionOf(obj)) throw new VersionConflictError(kind, obj.id, versionOf(obj), versionOf(current));
    const name = nameOf(kind, obj);
    if (UNIQUE_NAMES.has(kind) && name && name !== nameOf(kind, current)) {
      const other = this.byName(kind, name);
      if (other && other.id !== obj.id) throw new NameConflictError(kind, name);
    }
    this.pending.set(this.key(kind, obj.id), obj);
    this.actions.push({ kind: StoreAction_Kind.KIND_UPDATE, object: toStoreObject(kind, obj) });
  }

  remove(kind: Kind, id: string): void {
    const current = this.get(kind, id);
    if (!current) throw new NotFoundError(kind, id);
    this.pending.set(this.key(kind, id), null);
    this.actions.push({ kind: StoreAction_Kind.KIND_REMOVE, object: toStoreObject(kind, current) });
  }
}

/** A filtered stream of events; iterate it, or poll with take(). */
export class Watch implements AsyncIterable<StoreEvent> {
  private queue: StoreEvent[] = [];
  private waiter: ((e: IteratorResult<StoreEvent>) => void) | undefined;
  private closed = false;

  constructor(
    private readonly filter: (e: StoreEvent) => boolean,
    private readonly onClose: (w: Watch) => void,
  ) {}

  /** @internal */
  push(e: StoreEvent): void {
    if (this.closed || !this.filter(e)) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: e, done: false });
    } else {
      this.queue.push(e);
    }
  }

  /** The events queued so far, without waiting. */
  take(): StoreEvent[] {
    const out = this.queue;
    this.queue = [];
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
    this.waiter?.({ value: undefined, done: true });
    this.waiter = undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<StoreEvent> {
    return {
      next: () => {
        const e = this.queue.shift();
        if (e) return Promise.resolve({ value: e, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (this.waiter = resolve));
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

export interface WatchOptions {
  kinds?: readonly Kind[];
  /** Replay the events after this version first (must still be kept), then follow live ones. */
  fromVersion?: number;
  filter?: (e: StoreEvent) => boolean;
}

/**
 * A kind's objects as they were when it was made, in creation order, decoded one at a time as
 * they are asked for and not kept decoded: a scan of a table that may be large (a list answer, a
 * lookup by id prefix) neither decodes nor revives the whole table at once.
 */
export interface TableScan<T> {
  readonly length: number;
  readonly idAt: (i: number) => string;
  readonly at: (i: number) => T;
}

export class MemoryStore implements ReadView {
  // Sharded (sharded.ts): a table or index of hundreds of thousands of entries must not rehash
  // all of them at once on the event loop.
  // Each object held decoded while in use, else as its snapshot piece (pieces.ts).
  private readonly tables = new Map<Kind, OrderedShardedMap<Held>>(KINDS.map((k) => [k, new OrderedShardedMap()]));
  private arena = new PieceArena();
  private readonly names = new Map<Kind, ShardedMap<string>>(KINDS.map((k) => [k, new ShardedMap()]));
  private readonly labels = new Map<Kind, ShardedMap<BigSet>>(KINDS.map((k) => [k, new ShardedMap()]));
  private readonly tasksByService = new Map<string, BigSet>();
  private readonly tasksByNode = new Map<string, BigSet>();
  private readonly tasksByDesired = new Map<TaskState, BigSet>();
  /** The last events, for watches that resume from a version (their objects as pieces: see KeptEvent). */
  private events: KeptEvent[] = [];
  private readonly watches = new Set<Watch>();
  private readonly eventHistory: number;
  private readonly maxRequestBytes: number;
  private readonly now: () => number;
  /** The log index of the last applied request (or of the snapshot restored). */
  version = 0;
  private proposer: Proposer | undefined;

  constructor(opts: StoreOptions = {}) {
    this.eventHistory = opts.eventHistory ?? 10_000;
    this.maxRequestBytes = opts.maxRequestBytes ?? 1536 << 10;
    this.now = opts.now ?? Date.now;
  }

  /** Connects the store to its replicated log (the store is also the log's state machine). */
  setProposer(p: Proposer): void {
    this.proposer = p;
  }

  // ---------------------------------------------------------------- reads

  get<K extends Kind>(kind: K, id: string): ObjectTypes[K] | undefined {
    return this.tables.get(kind)!.get(id)?.open(true) as ObjectTypes[K] | undefined;
  }

  /** Every object of the kind, decoded (and kept decoded a while): for tables that stay small, or reads that need them all. */
  list<K extends Kind>(kind: K): ObjectTypes[K][] {
    return this.tables.get(kind)!.valuesArray().map((h) => h.open(true)) as ObjectTypes[K][];
  }

  /** The kind's objects as of now, decoded one by one on demand (see TableScan). */
  scan<K extends Kind>(kind: K): TableScan<ObjectTypes[K]> {
    const held = this.tables.get(kind)!.valuesArray();
    return { length: held.length, idAt: (i) => held[i]!.id, at: (i) => held[i]!.open(false) as ObjectTypes[K] };
  }

  /**
   * How many objects of the kind are stored, how many of them are held decoded, and how many have
   * their pieces in a mostly dead slab that the sweeper has yet to empty (pieces.ts).
   */
  residency(kind: Kind): { objects: number; decoded: number; inSparseSlabs: number } {
    const held = this.tables.get(kind)!.valuesArray();
    return { objects: held.length, decoded: held.filter((h) => h.obj !== undefined).length, inSparseSlabs: held.filter((h) => h.inSparse(this.arena)).length };
  }

  byName<K extends Kind>(kind: K, name: string): ObjectTypes[K] | undefined {
    const id = this.names.get(kind)!.get(name);
    return id === undefined ? undefined : this.get(kind, id);
  }

  /** Objects carrying label key=value (value undefined: any value). */
  byLabel<K extends Kind>(kind: K, key: string, value?: string): ObjectTypes[K][] {
    const idx = this.labels.get(kind)!;
    const ids = new Set<string>();
    if (value !== undefined) for (const id of idx.get(`${key}=${value}`) ?? []) ids.add(id);
    else for (const [kv, set] of idx) if (kv.startsWith(`${key}=`)) for (const id of set) ids.add(id);
    return [...ids].map((id) => this.get(kind, id)!);
  }

  /** Tasks by service, node and desired state (all given criteria must hold), from the indexes. */
  findTasks(q: TaskQuery): Task[] {
    const sets: BigSet[] = [];
    if (q.serviceId !== undefined) sets.push(this.tasksByService.get(q.serviceId) ?? new BigSet());
    if (q.nodeId !== undefined) sets.push(this.tasksByNode.get(q.nodeId) ?? new BigSet());
    if (q.desiredState !== undefined) sets.push(this.tasksByDesired.get(q.desiredState) ?? new BigSet());
    if (sets.length === 0) return this.list('task');
    sets.sort((a, b) => a.size - b.size);
    const [first, ...rest] = sets;
    const out: Task[] = [];
    for (const id of first!) if (rest.every((s) => s.has(id))) out.push(this.get('task', id)!);
    return out;
  }

  // ---------------------------------------------------------------- writes

  /**
   * Runs `fn` in a transaction and proposes its changes as one request. Resolves with the
   * version the request was applied at; rejects with the StoreError every manager reached
   * (version conflict, duplicate name...), or with the log's error (not leader, ...).
   */
  async update(fn: (tx: Tx) => void): Promise<number> {
    if (!this.proposer) throw new StoreError('store: no proposer connected');
    const tx = new Tx(this);
    fn(tx);
    if (tx.actions.length === 0) return this.version;
    const data = StoreRequest.encode({ actions: tx.actions, unixMs: this.now(), batch: [] }).finish();
    if (data.length > this.maxRequestBytes) {
      throw new InvalidArgumentError('transaction', `${data.length} bytes exceed the ${this.maxRequestBytes}-byte limit of one log entry; use batch()`);
    }
    const result = await this.proposer.propose(data);
    if (!result.ok) throw result.error;
    return result.version;
  }

  /**
   * Many independent changes (each `fns` entry is one small transaction), packed into as few
   * requests as the size limit allows. Not atomic as a whole; each request is. Resolves with the
   * errors of the requests that failed (empty when all applied).
   *
   * Up to `maxInFlight` requests are proposed at once, so Raft commits them together instead of
   * one round trip each. A request reads the store as it was when it was made, without the
   * requests still in flight: the entries must touch disjoint objects (one that touches an object
   * of an earlier request in flight fails with a version conflict, never writes over it).
   */
  async batch(fns: readonly ((tx: Tx) => void)[], maxActions = 200, maxInFlight = 8): Promise<StoreError[]> {
    const errors: StoreError[] = [];
    const inflight = new Set<Promise<void>>();
    let thrown: { err: unknown } | undefined;
    let tx = new Tx(this);
    /** The encoded size of tx's actions, kept as they are added (re-encoding the request after each entry costs O(n²)). */
    let size = 0;
    const flush = async (): Promise<void> => {
      if (tx.actions.length === 0) return;
      const actions = tx.actions;
      tx = new Tx(this);
      size = 0;
      const p: Promise<void> = this.proposer!.propose(StoreRequest.encode({ actions, unixMs: this.now(), batch: [] }).finish())
        .then(
          (result) => {
            if (!result.ok) errors.push(result.error);
          },
          (err: unknown) => {
            thrown ??= { err };
          },
        )
        .finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= maxInFlight) await Promise.race(inflight);
    };
    for (const fn of fns) {
      // The log refused a request (e.g. no longer leader): propose nothing more.
      if (thrown) break;
      const before = tx.actions.length;
      try {
        fn(tx);
      } catch (err) {
        if (err instanceof StoreError) {
          errors.push(err);
          tx.actions.length = before;
          continue;
        }
        throw err;
      }
      // Each action adds its bytes, a tag and a length (at most 6 bytes).
      for (let i = before; i < tx.actions.length; i++) size += StoreAction.encode(tx.actions[i]!).finish().length + 6;
      if (tx.actions.length >= maxActions || size > this.maxRequestBytes / 2) await flush();
    }
    if (!thrown) await flush();
    await Promise.all(inflight);
    if (thrown) throw thrown.err;
    return errors;
  }

  // ---------------------------------------------------------------- the state machine side

  /**
   * Applies one committed entry at log index `index`, identically on every manager: a request, or
   * a batch of them, each applied in order as if it were an entry of its own at this index (a
   * conflict fails that request alone; see BatchingProposer).
   */
  apply(data: Uint8Array, index: number): ApplyResult {
    const req = StoreRequest.decode(data);
    if (req.batch.length === 0) return this.applyRequest(req, index);
    this.version = index;
    if (req.actions.length > 0) return { ok: false, error: new StoreError(`store: entry ${index} carries both actions and a batch; applied neither`) };
    const batch = req.batch.map((bytes, i): ApplyResult => {
      try {
        const one = StoreRequest.decode(bytes);
        if (one.batch.length > 0) return { ok: false, error: new StoreError(`store: request ${i} of the batch in entry ${index} carries a batch of its own; not applied`) };
        return this.applyRequest(one, index);
      } catch (err) {
        // Refused before it changed anything (a request is decoded and checked whole first), the
        // same way on every manager; the others of the entry keep their verdicts.
        return { ok: false, error: new StoreError(`store: request ${i} of the batch in entry ${index} is malformed: ${err instanceof Error ? err.message : String(err)}`, { cause: err }) };
      }
    });
    return { ok: true, version: index, batch };
  }

  /** Applies one request (a transaction) at `index`, or refuses all of it. */
  private applyRequest(req: StoreRequest, index: number): ApplyResult {
    const error = this.check(req);
    if (error) {
      this.version = index;
      return { ok: false, error };
    }
    const events: StoreEvent[] = [];
    const kept: KeptEvent[] = [];
    for (const a of req.actions) {
      const { kind, obj } = fromStoreObject(a.object);
      const table = this.tables.get(kind)!;
      const before = table.get(obj.id);
      const old = before?.open(false);
      before?.release();
      if (a.kind === StoreAction_Kind.KIND_REMOVE) {
        this.unindex(kind, old!);
        table.delete(obj.id);
        events.push({ kind, action: 'remove', object: old!, version: index });
        kept.push({ kind, action: 'remove', held: before!, version: index });
        continue;
      }
      const stored = {
        ...obj,
        meta: { version: index, createdAtUnixMs: old?.meta?.createdAtUnixMs ?? req.unixMs, updatedAtUnixMs: req.unixMs },
      } as AnyObject;
      if (old) this.unindex(kind, old);
      // Held as its piece from the start: a write is not a read (pieces.ts); the decoded object
      // goes to the watches and dies young.
      const held = this.arena.hold(obj.id, pieceOf(kind, stored));
      table.set(obj.id, held);
      this.index(kind, stored);
      events.push(old ? { kind, action: 'update', object: stored, old, version: index } : { kind, action: 'create', object: stored, version: index });
      kept.push({ kind, action: old ? 'update' : 'create', held, old: before, version: index });
    }
    this.version = index;
    this.publish(events, kept);
    return { ok: true, version: index };
  }

  /** The same checks as the transaction made, against the state at apply time. */
  private check(req: StoreRequest): StoreError | undefined {
    const seen = new Map<string, AnyObject | null>();
    const cur = (kind: Kind, id: string): AnyObject | undefined => {
      const s = seen.get(`${kind}/${id}`);
      return s === undefined ? this.tables.get(kind)!.get(id)?.open(false) : (s ?? undefined);
    };
    const names = new Map<string, string>();
    for (const a of req.actions) {
      const { kind, obj } = fromStoreObject(a.object);
      const current = cur(kind, obj.id);
      if (a.kind === StoreAction_Kind.KIND_CREATE) {
        if (current) return new ExistsError(kind, obj.id);
      } else {
        if (!current) return a.kind === StoreAction_Kind.KIND_UPDATE ? new VersionConflictError(kind, obj.id, versionOf(obj), undefined) : new NotFoundError(kind, obj.id);
        if (versionOf(current) !== versionOf(obj)) return new VersionConflictError(kind, obj.id, versionOf(obj), versionOf(current));
      }
      const name = a.kind === StoreAction_Kind.KIND_REMOVE ? undefined : nameOf(kind, obj);
      if (UNIQUE_NAMES.has(kind) && name) {
        const holder = names.get(`${kind}/${name}`) ?? this.names.get(kind)!.get(name);
        if (holder !== undefined && holder !== obj.id && seen.get(`${kind}/${holder}`) !== null) return new NameConflictError(kind, name);
        names.set(`${kind}/${name}`, obj.id);
      }
      seen.set(`${kind}/${obj.id}`, a.kind === StoreAction_Kind.KIND_REMOVE ? null : obj);
    }
    return undefined;
  }

  private index(kind: Kind, obj: AnyObject): void {
    const name = nameOf(kind, obj);
    if (UNIQUE_NAMES.has(kind) && name) this.names.get(kind)!.set(name, obj.id);
    const lidx = this.labels.get(kind)!;
    for (const [k, v] of Object.entries(labelsOf(kind, obj))) {
      let set = lidx.get(`${k}=${v}`);
      if (!set) lidx.set(`${k}=${v}`, (set = new BigSet()));
      set.add(obj.id);
    }
    if (kind === 'task') {
      const t = obj as Task;
      addTo(this.tasksByService, t.serviceId, t.id);
      addTo(this.tasksByNode, t.nodeId, t.id);
      addTo(this.tasksByDesired, t.desiredState, t.id);
    }
  }

  private unindex(kind: Kind, obj: AnyObject): void {
    const name = nameOf(kind, obj);
    if (UNIQUE_NAMES.has(kind) && name && this.names.get(kind)!.get(name) === obj.id) this.names.get(kind)!.delete(name);
    const lidx = this.labels.get(kind)!;
    for (const [k, v] of Object.entries(labelsOf(kind, obj))) removeFrom(lidx, `${k}=${v}`, obj.id);
    if (kind === 'task') {
      const t = obj as Task;
      removeFrom(this.tasksByService, t.serviceId, t.id);
      removeFrom(this.tasksByNode, t.nodeId, t.id);
      removeFrom(this.tasksByDesired, t.desiredState, t.id);
    }
  }

  private publish(events: StoreEvent[], kept: KeptEvent[]): void {
    this.events.push(...kept);
    // Trim in steps, not on every event: keeps at least eventHistory events, at most 1.25 times that.
    if (this.events.length > this.eventHistory * 1.25) this.events = this.events.slice(-this.eventHistory);
    for (const w of this.watches) for (const e of events) w.push(e);
  }

  /**
   * A stream of changes. With fromVersion, the kept events after that version come first; if they
   * are no longer kept, WatchCompactedError (list again, then watch from the store's version).
   */
  watch(opts: WatchOptions = {}): Watch {
    const kinds = opts.kinds ? new Set(opts.kinds) : undefined;
    const filter = (e: StoreEvent): boolean => (!kinds || kinds.has(e.kind)) && (!opts.filter || opts.filter(e));
    const w = new Watch(filter, (x) => this.watches.delete(x));
    if (opts.fromVersion !== undefined) {
      const oldest = this.events[0]?.version ?? this.version + 1;
      if (opts.fromVersion < this.version && opts.fromVersion + 1 < oldest) {
        throw new WatchCompactedError(`store: events after version ${opts.fromVersion} are no longer kept (oldest kept: ${oldest}); list again and watch from ${this.version}`);
      }
      for (const e of this.events) {
        if (e.version > opts.fromVersion) w.push({ kind: e.kind, action: e.action, object: e.held.open(false), old: e.old?.open(false), version: e.version });
      }
    }
    this.watches.add(w);
    return w;
  }

  // ---------------------------------------------------------------- snapshots

  /** The store as a StoreSnapshot message: snapshotSource()'s pieces, joined. */
  snapshot(): Uint8Array {
    const source = this.snapshotSource(Infinity);
    const pieces: Uint8Array[] = [];
    for (let p = source.next(); p !== undefined; p = source.next()) pieces.push(...p);
    return Buffer.concat(pieces);
  }

  /**
   * The store as of now, as StoreSnapshot bytes handed out a few milliseconds' worth at a time
   * (`budgetMs` per call): the stored versions are listed now (a copy of each table's array of
   * them; each is immutable, so the list is the state at this version), and each call hands out
   * the pieces (pieces.ts) of as many as its budget allows, as views of runs of them in the
   * arena (PieceRuns). The leader takes its snapshots this way across turns of its event loop
   * (RaftNode): at 100,000 objects, encoding and joining them in one go stopped the loop for over
   * half a second.
   */
  snapshotSource(budgetMs = 5): { next(): Uint8Array[] | undefined } {
    const head = StoreSnapshot.encode({ version: this.version, objects: [] }).finish();
    const lists = KINDS.map((kind) => this.tables.get(kind)!.positionsSnapshot());
    const runs = new PieceRuns();
    let started = false;
    let k = 0;
    let i = 0;
    return {
      next: (): Uint8Array[] | undefined => {
        if (!started) {
          started = true;
          return [head];
        }
        const deadline = performance.now() + budgetMs;
        let added = 0;
        while (k < lists.length) {
          const list = lists[k]!;
          if (i >= list.length) {
            k++;
            i = 0;
            continue;
          }
          const h = list[i++];
          if (h === undefined) continue;
          h.addTo(runs);
          // A piece costs far less than reading the clock.
          if ((++added & 1023) === 0 && performance.now() >= deadline) break;
        }
        const out = runs.take();
        return out.length > 0 ? out : undefined;
      },
    };
  }

  /** Where the sweeper's clock hand is: a kind, and a position in its table. */
  private hand = { k: 0, position: 0 };

  /**
   * A turn of the sweeper, for `budgetMs`: decoded objects not read since its last pass are
   * dropped (their pieces stay), and pieces in mostly dead slabs move (pieces.ts says why). The
   * manager calls it every 100 ms; a pass over 300,000 objects takes a few turns. Returns whether
   * this turn finished a pass.
   */
  sweep(budgetMs = 2): boolean {
    const deadline = performance.now() + budgetMs;
    for (let visited = 0; ; visited++) {
      const table = this.tables.get(KINDS[this.hand.k]!)!;
      if (this.hand.position >= table.positions) {
        this.hand = { k: (this.hand.k + 1) % KINDS.length, position: 0 };
        if (this.hand.k === 0) return true;
        continue;
      }
      // The clock is read every 256 objects, and after each piece moved (a copy of up to 64 KiB).
      const moved = table.valueAt(this.hand.position++)?.sweep(this.arena) === 'moved';
      if ((moved || (visited & 255) === 255) && performance.now() >= deadline) return false;
    }
  }

  /** Replaces everything with a snapshot's contents, kept as pieces. Watches are closed: their consumers re-list. */
  restore(data: Uint8Array): void {
    const snap = readSnapshot(data);
    for (const kind of KINDS) {
      this.tables.get(kind)!.clear();
      this.names.get(kind)!.clear();
      this.labels.get(kind)!.clear();
    }
    this.tasksByService.clear();
    this.tasksByNode.clear();
    this.tasksByDesired.clear();
    this.hand = { k: 0, position: 0 };
    this.arena = new PieceArena();
    for (const { kind, obj, piece } of snap.objects) {
      this.tables.get(kind)!.set(obj.id, this.arena.hold(obj.id, piece));
      this.index(kind, obj);
    }
    this.version = snap.version;
    this.events = [];
    for (const w of [...this.watches]) w.close();
  }
}

/** An index: a key's set of ids (a Map of a few keys, or a ShardedMap of many). */
interface IndexMap<K> {
  get(key: K): BigSet | undefined;
  set(key: K, value: BigSet): unknown;
  delete(key: K): boolean;
}

function addTo<K>(m: IndexMap<K>, key: K, id: string): void {
  let s = m.get(key);
  if (!s) m.set(key, (s = new BigSet()));
  s.add(id);
}

function removeFrom<K>(m: IndexMap<K>, key: K, id: string): void {
  const s = m.get(key);
  if (!s) return;
  s.delete(id);
  if (s.size === 0) m.delete(key);
}
