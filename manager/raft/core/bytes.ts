// Snapshot bytes the leader sends from, without ever holding them as one buffer: a snapshot
// streamed to disk in pieces (node.ts) stays those pieces, and a chunk for a follower is cut out
// of them when it is sent. Joining a large store's snapshot into one buffer was a long stop of the
// leader's event loop (hundreds of milliseconds at 100,000 objects).

/** What the core reads a snapshot's data through: a Uint8Array is one. */
export interface SnapshotBytes {
  readonly length: number;
  /** The bytes from `begin` to `end` (a view when they lie in one piece, else a copy). */
  subarray(begin: number, end: number): Uint8Array;
}

/** Pieces read as one run of bytes; the pieces must not change. */
export class PieceBytes implements SnapshotBytes {
  readonly length: number;
  /** Where each piece starts. */
  private readonly starts: number[];

  constructor(private readonly pieces: readonly Uint8Array[]) {
    this.starts = new Array<number>(pieces.length);
    let at = 0;
    for (let i = 0; i < pieces.length; i++) {
      this.starts[i] = at;
      at += pieces[i]!.length;
    }
    this.length = at;
  }

  subarray(begin: number, end: number): Uint8Array {
    const from = Math.max(0, Math.min(begin, this.length));
    const to = Math.max(from, Math.min(end, this.length));
    if (to === from) return new Uint8Array(0);
    let i = this.pieceAt(from);
    const first = this.pieces[i]!;
    const offset = from - this.starts[i]!;
    if (offset + (to - from) <= first.length) return first.subarray(offset, offset + (to - from));
    const out = new Uint8Array(to - from);
    let written = 0;
    for (let at = offset; written < out.length; i++, at = 0) {
      const piece = this.pieces[i]!;
      const n = Math.min(piece.length - at, out.length - written);
      out.set(piece.subarray(at, at + n), written);
      written += n;
    }
    return out;
  }

  /** The index of the piece holding byte `pos` (binary search; empty pieces skipped). */
  private pieceAt(pos: number): number {
    let lo = 0;
    let hi = this.pieces.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    while (this.pieces[lo]!.length === 0 || pos >= this.starts[lo]! + this.pieces[lo]!.length) lo++;
    return lo;
  }
}
