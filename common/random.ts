// Random bytes for ids and nonces, drawn from a pool that is filled 4 KiB at a time. The bytes are
// the operating system's CSPRNG's (through OpenSSL) exactly as randomBytes() gives them; only the
// calls are fewer: randomBytes(16) costs about 5 µs (a call into the binding each time), a slice of
// the pool well under 0.1 µs, and the leader draws an id and a nonce for every secret it creates.
// (Node's randomUUID() keeps a cache of the same kind.)
import { randomBytes, randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let offset = 0;

/**
 * `n` random bytes, each handed out once. The result is a view of a pool that is never written
 * again (a new pool replaces it when it runs out), so it may be kept as long as needed.
 */
export function poolRandomBytes(n: number): Buffer {
  if (n > POOL_BYTES / 4) return randomBytes(n);
  if (offset + n > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_BYTES));
    offset = 0;
  }
  const out = pool.subarray(offset, offset + n);
  offset += n;
  return out;
}
