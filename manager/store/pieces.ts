// How the store holds an object: always as its snapshot piece (its StoreObject encoding, framed as
// field 2 of StoreSnapshot) in an arena of slabs, and decoded as well only while it is in use.
//
// Why: a decoded object is about a dozen JavaScript objects (the message, its meta, spec,
// annotations, labels, the data's Uint8Array, boxed numbers), and every one of them lives for
// good in V8's old generation, where each major GC marks it. With 300,000 secrets stored under
// 2,000 writes/s, that marking cost about 450 ms of a manager's main thread a cycle and held all
// three managers' loops for 200–800 ms at a time: the steady benchmark changed leaders 19 times.
// Held as pieces, an object costs the heap a Held, its id and name strings and its table entries
// (in one process, 300,000 secrets: 93–110 MiB of heap against 202 MiB decoded; the slabs are
// outside the heap), and the GC has three small objects to mark instead of a dozen. The steady
// benchmark, same load: a million secrets in 10 minutes, with 1–2 leader changes left at the old
// 240 ms election timeout (docs/benchmarks.md).
//
// Writes are held as pieces from the start (a write is not a read). A read decodes and keeps the
// object decoded; the sweeper (MemoryStore.sweep) is a clock that drops a decoded object not read
// since its last pass, and moves the pieces out of slabs that are mostly dead. Snapshots hand out
// the pieces as they are; a restore keeps only pieces.
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { StoreObject } from '../../proto/gen/tswarm/store.js';
import { InvalidArgumentError } from '../../common/errors.js';
import type { AnyObject, Kind } from './memory.js';

/** StoreSnapshot's field 2 (objects), length-delimited: the first byte of every piece. */
const PIECE_TAG = (2 << 3) | WireType.LengthDelimited;

export function toStoreObject(kind: Kind, obj: AnyObject): StoreObject {
  return { object: { $case: kind, [kind]: obj } as StoreObject['object'] };
}

export function fromStoreObject(o: StoreObject | undefined): { kind: Kind; obj: AnyObject } {
  const v = o?.object;
  if (!v) throw new InvalidArgumentError('action.object', 'must be set');
  return { kind: v.$case, obj: (v as unknown as Record<string, AnyObject>)[v.$case]! };
}

/** A slab of the arena: pieces packed one after another, never overwritten. */
class Slab {
  /** Bytes handed out. */
  used = 0;
  /** Bytes of pieces still held by a table (not removed or replaced). */
  live = 0;
  constructor(readonly bytes: Buffer) {}
}

/** Slabs of this size; a piece over a quarter of it gets a slab of its own. */
const SLAB_BYTES = 256 << 10;

/**
 * Where the pieces live: slabs of 256 KiB, so that a piece costs no JavaScript object of its own
 * (a Buffer per piece was about 100 bytes of heap and one more object to mark). A slab is never
 * written over: a piece removed or replaced stays valid for whoever still holds it (a snapshot
 * under way, the events kept for watches). A slab whose live pieces fall under half of it is
 * emptied by the sweeper, which moves its live pieces to the current slab; the slab goes once
 * nothing holds it.
 */
export class PieceArena {
  private current = new Slab(Buffer.allocUnsafeSlow(SLAB_BYTES));

  /** Copies `bytes` into the arena; returns where. */
  put(bytes: Uint8Array): { slab: Slab; offset: number } {
    if (bytes.length > SLAB_BYTES / 4) {
      const own = new Slab(Buffer.allocUnsafeSlow(bytes.length));
      own.bytes.set(bytes);
      own.used = own.live = bytes.length;
      return { slab: own, offset: 0 };
    }
    if (this.current.used + bytes.length > SLAB_BYTES) this.current = new Slab(Buffer.allocUnsafeSlow(SLAB_BYTES));
    const slab = this.current;
    const offset = slab.used;
    slab.bytes.set(bytes, offset);
    slab.used += bytes.length;
    slab.live += bytes.length;
    return { slab, offset };
  }

  /** A slab worth emptying: mostly dead, and no longer written to. */
  sparse(slab: Slab): boolean {
    return slab !== this.current && slab.live * 2 < slab.used;
  }

  /** A held object: its piece copied into the arena, not decoded. */
  hold(id: string, piece: Uint8Array): Held {
    const { slab, offset } = this.put(piece);
    return new Held(id, slab, offset, piece.length);
  }
}

/**
 * Pieces as views of runs of bytes in their slabs: pieces that lie one after another in a slab
 * (objects written one after another, as a table's are, in creation order) make one view. A
 * snapshot is kept until the next (the leader sends it to followers from memory): a view per
 * piece was 600,000 objects for the GC to mark, a copy of every piece was a gigabyte of memory
 * outside the heap whose growth made V8 collect again and again; runs are neither.
 */
export class PieceRuns {
  private readonly done: Uint8Array[] = [];
  private slab: Slab | undefined;
  private start = 0;
  private end = 0;

  add(slab: Slab, offset: number, length: number): void {
    if (slab === this.slab && offset === this.end) {
      this.end += length;
      return;
    }
    this.flush();
    this.slab = slab;
    this.start = offset;
    this.end = offset + length;
  }

  /** The views made so far (the run under way included), and a fresh start. */
  take(): Uint8Array[] {
    this.flush();
    return this.done.splice(0);
  }

  private flush(): void {
    if (this.slab && this.end > this.start) this.done.push(this.slab.bytes.subarray(this.start, this.end));
    this.slab = undefined;
  }
}

/**
 * One stored version of an object (an update stores a new Held): its piece in the arena, always,
 * and the decoded object while it is in use. Its content never changes.
 */
export class Held {
  /** Read since the sweeper last passed it (a clock's reference bit). */
  used = false;
  /** The decoded object, kept while it is read. */
  obj: AnyObject | undefined;

  constructor(
    readonly id: string,
    private slab: Slab,
    private offset: number,
    private readonly length: number,
  ) {}

  /** The snapshot piece (a view into the arena: no copy). */
  get piece(): Uint8Array {
    return this.slab.bytes.subarray(this.offset, this.offset + this.length);
  }

  /** Adds the piece to `runs`: to the last run if it follows it in the same slab. */
  addTo(runs: PieceRuns): void {
    runs.add(this.slab, this.offset, this.length);
  }

  /** The object, decoded from the piece if need be; `keep` keeps it decoded (and marks it used). */
  open(keep: boolean): AnyObject {
    if (this.obj) {
      if (keep) this.used = true;
      return this.obj;
    }
    const obj = decodePiece(this.piece).obj;
    if (keep) {
      this.obj = obj;
      this.used = true;
    }
    return obj;
  }

  /** Whether its piece lies in a slab the sweeper will empty. */
  inSparse(arena: PieceArena): boolean {
    return arena.sparse(this.slab);
  }

  /** Its bytes no longer count as live: the table no longer holds it (removed, or replaced). */
  release(): void {
    this.slab.live -= this.length;
  }

  /**
   * One step of the clock: a decoded object read since the last step loses its mark; one not read
   * since is dropped (the piece stays). A piece in a sparse slab moves to the current one (a copy
   * of its bytes: says so, for the sweeper's budget).
   */
  sweep(arena: PieceArena): 'moved' | undefined {
    if (this.obj) {
      if (this.used) this.used = false;
      else this.obj = undefined;
    }
    if (!arena.sparse(this.slab)) return undefined;
    const piece = this.piece;
    this.release();
    ({ slab: this.slab, offset: this.offset } = arena.put(piece));
    return 'moved';
  }
}

/** An object's snapshot piece: tag, length, StoreObject bytes (a fresh buffer; PieceArena.hold keeps a copy). */
export function pieceOf(kind: Kind, obj: AnyObject): Uint8Array {
  const w = new BinaryWriter();
  w.uint32(PIECE_TAG).fork();
  StoreObject.encode(toStoreObject(kind, obj), w);
  return w.join().finish();
}

export function decodePiece(piece: Uint8Array): { kind: Kind; obj: AnyObject } {
  const r = new BinaryReader(piece);
  r.uint32();
  return fromStoreObject(StoreObject.decode(r.bytes()));
}

/**
 * A StoreSnapshot read piece by piece: its version, and each object's piece (a view into `data`:
 * PieceArena.hold copies what it keeps) with the object decoded from it.
 */
export function readSnapshot(data: Uint8Array): { version: number; objects: { kind: Kind; obj: AnyObject; piece: Uint8Array }[] } {
  const r = new BinaryReader(data);
  let version = 0;
  const objects: { kind: Kind; obj: AnyObject; piece: Uint8Array }[] = [];
  while (r.pos < r.len) {
    const start = r.pos;
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.Varint) {
      version = Number(r.uint64());
    } else if (field === 2 && wireType === WireType.LengthDelimited) {
      const bytes = r.bytes();
      objects.push({ ...fromStoreObject(StoreObject.decode(bytes)), piece: data.subarray(start, r.pos) });
    } else {
      r.skip(wireType, field);
    }
  }
  return { version, objects };
}
