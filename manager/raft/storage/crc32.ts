// CRC-32 (IEEE 802.3, the zlib/gzip polynomial) for WAL records and snapshot files. Node has a
// native one since 20.15 (`zlib.crc32`); older Node 20 releases get the table-driven fallback,
// which gives identical values (a test checks both).
import * as zlib from 'node:zlib';

/** `crc32(data, previous)` continues a checksum over several buffers, like zlib's. */
export type Crc32 = (data: Uint8Array, previous?: number) => number;

let table: Uint32Array | undefined;

/** The portable implementation: about 10 times slower than zlib's; only used when that is absent. */
export function crc32Js(data: Uint8Array, previous = 0): number {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  const t = table;
  let crc = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) crc = (t[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

// Feature-detected: the typings declare zlib.crc32, but a Node 20 before 20.15 lacks it.
const native = (zlib as { crc32?: Crc32 }).crc32;

export const crc32: Crc32 = typeof native === 'function' ? native : crc32Js;
