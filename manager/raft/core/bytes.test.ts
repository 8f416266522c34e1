import { describe, expect, it } from 'vitest';
import { PieceBytes } from './bytes.js';

describe('PieceBytes', () => {
  it('reads any range across pieces (empty ones too) as the joined bytes would', () => {
    const pieces = [[1, 2, 3], [], [4], [5, 6, 7, 8], [], [9]].map((p) => Uint8Array.from(p));
    const joined = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const b = new PieceBytes(pieces);
    expect(b.length).toBe(9);
    for (let begin = 0; begin <= 10; begin++) for (let end = begin; end <= 11; end++) expect([...b.subarray(begin, end)], `${begin}..${end}`).toEqual([...joined.subarray(begin, end)]);
  });

  it('gives a view, not a copy, of a range inside one piece', () => {
    const piece = Uint8Array.from([1, 2, 3, 4]);
    const view = new PieceBytes([Uint8Array.from([0]), piece]).subarray(2, 4);
    expect(view.buffer).toBe(piece.buffer);
  });
});
