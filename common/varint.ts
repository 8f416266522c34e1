// Protobuf varints, for the few places that frame protobuf bytes by hand (the WAL's records, a
// batch entry made by concatenation, a snapshot's framed objects, a size measured without
// encoding). Division rather than bit operations: values go up to 2^53, past 32-bit shifts.

/** The length of `v` as a varint, in bytes. */
export function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Writes `v` as a varint into `buf` at `p`; returns the position after it. */
export function writeVarint(buf: Uint8Array, p: number, v: number): number {
  while (v >= 128) {
    buf[p++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  buf[p++] = v;
  return p;
}
