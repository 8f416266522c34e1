import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { describe, expect, it } from 'vitest';
import { varintSize, writeVarint } from './varint.js';

describe('varint', () => {
  it('writes and measures what the protobuf library writes, up to 2^53 - 1', () => {
    for (const v of [0, 1, 127, 128, 300, 16_383, 16_384, 2 ** 31 - 1, 2 ** 32, 2 ** 53 - 1]) {
      const want = new BinaryWriter().uint64(v).finish();
      const buf = new Uint8Array(10);
      expect(writeVarint(buf, 0, v)).toBe(want.length);
      expect(buf.subarray(0, want.length)).toEqual(want);
      expect(varintSize(v)).toBe(want.length);
    }
  });
});
