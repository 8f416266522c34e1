// Encryption at rest of the secret material the store holds (secret data, services' registry
// credentials, the root CA's key):
// sealed with AES-256-GCM under a data-encryption key (DEK) before it enters a transaction, so
// the Raft log, its snapshots and etcd only ever see ciphertext. The DEK is made at `swarmd init`
// and kept in the manager's data directory (mode 0600); joining managers will receive it over
// mutual TLS. Sealed blobs carry a version byte so the format can change.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Service } from '../../proto/gen/tswarm/objects.js';
import { RegistryAuth } from '../../proto/gen/tswarm/types.js';
import { CorruptFileError, TswarmError } from '../../common/errors.js';
import { poolRandomBytes } from '../../common/random.js';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SealError extends TswarmError {}

export class Sealer {
  private constructor(private readonly key: Buffer) {}

  /** A new random key (for tests, and for init through loadOrCreate). */
  static random(): Sealer {
    return new Sealer(randomBytes(32));
  }

  /**
   * The key kept at `path`: made (atomically, mode 0600) if the file does not exist; a file that
   * is not a key is refused, never replaced (what it sealed would be lost).
   */
  static loadOrCreate(path: string, given?: Uint8Array): Sealer {
    let raw: Buffer | undefined;
    try {
      raw = readFileSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (raw !== undefined) {
      const key = Buffer.from(raw.toString('utf8').trim(), 'base64');
      if (key.length !== 32) throw new CorruptFileError(path, 'is not a 256-bit key (base64); restore it from a backup — without it the secrets cannot be read');
      return new Sealer(key);
    }
    // A joining manager is given the cluster's key; the first manager makes one.
    if (given && given.length !== 32) throw new SealError('the data key a manager sent is not 256 bits');
    const key = given ? Buffer.from(given) : randomBytes(32);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(`${path}.tmp`, `${key.toString('base64')}\n`, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
    return new Sealer(key);
  }

  /** The key itself, handed (over mutual TLS) to a manager that joins: every manager opens what any sealed. */
  exportKey(): Buffer {
    return Buffer.from(this.key);
  }

  /** version || iv || tag || ciphertext; `context` (e.g. the object id) is bound as associated data. */
  seal(plain: Uint8Array, context: string): Buffer {
    // A random 96-bit IV per message (NIST SP 800-38D §8.2.2): unique under the key with
    // overwhelming probability for far more messages than a cluster seals.
    const iv = poolRandomBytes(IV_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(context));
    const body = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, c.getAuthTag(), body]);
  }

  open(sealed: Uint8Array, context: string): Buffer {
    const b = Buffer.from(sealed);
    if (b.length < 1 + IV_BYTES + TAG_BYTES || b[0] !== VERSION) throw new SealError(`sealed data for ${context} is malformed (version ${b[0] ?? 'none'})`);
    const d = createDecipheriv('aes-256-gcm', this.key, b.subarray(1, 1 + IV_BYTES));
    d.setAAD(Buffer.from(context));
    d.setAuthTag(b.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([d.update(b.subarray(1 + IV_BYTES + TAG_BYTES)), d.final()]);
    } catch {
      throw new SealError(`sealed data for ${context} does not decrypt: wrong key or tampered`);
    }
  }
}

/**
 * A service's registry credential (`Service.registry_auth`) is a RegistryAuth sealed under this
 * context: bound to the service, so that sealed bytes copied into another service do not open.
 */
export function registryAuthContext(serviceId: string): string {
  return `registry-auth:${serviceId}`;
}

/** The credential as the service keeps it: sealed (plain protobuf without a sealer, in unit tests). */
export function sealRegistryAuth(sealer: Sealer | undefined, serviceId: string, auth: RegistryAuth): Buffer {
  const plain = RegistryAuth.encode(auth).finish();
  return sealer ? sealer.seal(plain, registryAuthContext(serviceId)) : Buffer.from(plain);
}

/** The service's credential in clear; undefined when it has none. */
export function openRegistryAuth(sealer: Sealer | undefined, service: Service): RegistryAuth | undefined {
  if (service.registryAuth.length === 0) return undefined;
  const plain = sealer ? sealer.open(service.registryAuth, registryAuthContext(service.id)) : service.registryAuth;
  return RegistryAuth.decode(plain);
}
