import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CorruptFileError } from './errors.js';
import { ID_PATTERN, loadOrCreateNodeId, newId } from './identity.js';

describe('identity', () => {
  const dirs: string[] = [];
  const tmp = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'identity-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('makes ids of 25 base-36 characters that do not repeat', () => {
    const ids = new Set(Array.from({ length: 2000 }, newId));
    expect(ids.size).toBe(2000);
    for (const id of ids) expect(id).toMatch(ID_PATTERN);
  });

  it('makes the node id once and keeps it across loads', () => {
    const dir = join(tmp(), 'data');
    const id = loadOrCreateNodeId(dir);
    expect(id).toMatch(ID_PATTERN);
    expect(loadOrCreateNodeId(dir)).toBe(id);
    expect(readFileSync(join(dir, 'node-id'), 'utf8')).toBe(`${id}\n`);
    expect(readdirSync(dir)).toEqual(['node-id']);
  });

  it('refuses a corrupt node-id file with the path, and does not replace it', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'node-id'), 'not-an-id');
    let err: unknown;
    try {
      loadOrCreateNodeId(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CorruptFileError);
    expect((err as CorruptFileError).path).toBe(join(dir, 'node-id'));
    expect((err as Error).message).toMatch(/node-id: not a node id/);
    expect(readFileSync(join(dir, 'node-id'), 'utf8')).toBe('not-an-id');
    expect(existsSync(join(dir, 'node-id.tmp'))).toBe(false);
  });
});
