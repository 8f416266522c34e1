// Node identity: a random id made on a node's first start and kept in its data directory.
// The id is 25 lowercase base-36 characters (about 128 bits), like SwarmKit's; the cluster CA will
// put it in the node's certificate.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CorruptFileError } from './errors.js';
import { poolRandomBytes } from './random.js';

export const ID_PATTERN = /^[0-9a-z]{25}$/;

/** A new random object id (nodes, services, tasks...). */
export function newId(): string {
  const n = BigInt(`0x${poolRandomBytes(16).toString('hex')}`);
  return n.toString(36).padStart(25, '0').slice(-25);
}

/**
 * The node id kept in `<dataDir>/node-id`, made on the first call. The file is written to a
 * temporary name and renamed, so a crash never leaves a half-written id; an existing file that is
 * not a valid id is refused (not replaced: the id may be known to the cluster).
 */
export function loadOrCreateNodeId(dataDir: string): string {
  const path = join(dataDir, 'node-id');
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    const id = text.trim();
    if (!ID_PATTERN.test(id)) throw new CorruptFileError(path, 'not a node id (25 lowercase letters and digits); fix or remove the file');
    return id;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const id = newId();
  writeFileSync(`${path}.tmp`, `${id}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
  return id;
}
