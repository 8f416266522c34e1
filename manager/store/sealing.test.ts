// Secrets and registry credentials at rest: what the control API stores, and so what reaches the Raft log on disk, is
// ciphertext; the clear data comes back only with the key; a bad key file is refused.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlApi } from '../controlapi/control.js';
import { RaftServer } from '../raft/server.js';
import { MemoryStore, type ApplyResult } from './memory.js';
import { RaftProposer, storeStateMachine } from './raft.js';
import { openRegistryAuth, SealError, Sealer } from './sealing.js';
import { ResolveImage } from '../../proto/gen/tswarm/control.js';
import { ContainerSpec } from '../../proto/gen/tswarm/specs.js';

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

describe('sealing', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const tmp = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'seal-'));
    dirs.push(d);
    return d;
  };

  it('round-trips, binds the context, and detects tampering or a wrong key', () => {
    const s = Sealer.random();
    const sealed = s.seal(Buffer.from('hunter2'), 'secret:a');
    expect(sealed.includes(Buffer.from('hunter2'))).toBe(false);
    expect(s.open(sealed, 'secret:a').toString()).toBe('hunter2');
    expect(() => s.open(sealed, 'secret:b')).toThrow(SealError);
    sealed[sealed.length - 1]! ^= 1;
    expect(() => s.open(sealed, 'secret:a')).toThrow(/tampered/);
    expect(() => Sealer.random().open(s.seal(Buffer.from('x'), 'c'), 'c')).toThrow(/wrong key/);
  });

  it('keeps its key in a 0600 file, and refuses a corrupt one without replacing it', () => {
    const dir = tmp();
    const path = join(dir, 'keys', 'dek');
    const a = Sealer.loadOrCreate(path);
    const b = Sealer.loadOrCreate(path);
    expect(b.open(a.seal(Buffer.from('same key'), 'c'), 'c').toString()).toBe('same key');
    writeFileSync(path, 'not a key');
    expect(() => Sealer.loadOrCreate(path)).toThrow(/dek: is not a 256-bit key/);
    expect(readFileSync(path, 'utf8')).toBe('not a key');
  });

  it('puts only ciphertext in the Raft log and snapshots on disk', async () => {
    const dir = tmp();
    const store = new MemoryStore();
    const raft = new RaftServer<ApplyResult>({ id: 1, dataDir: join(dir, 'raft'), listenAddr: '127.0.0.1:0', peers: new Map([[1, '127.0.0.1:0']]), bootstrapVoters: [1], stateMachine: storeStateMachine(store), tickMs: 10, snapshotEntries: 3 });
    store.setProposer(new RaftProposer(raft));
    await raft.start();
    try {
      // A lone member elects itself after one election timeout (25–50 ticks of 10 ms here).
      for (let i = 0; i < 500 && raft.status().role !== 'leader'; i++) await new Promise((r) => setTimeout(r, 10));
      const sealer = Sealer.random();
      const api = new ControlApi(store, sealer);
      const plain = 'correct horse battery staple';
      const secret = await api.createSecret({ annotations: { name: 'pw', labels: {} }, data: Buffer.from(plain) });
      for (let i = 0; i < 5; i++) await api.createConfig({ annotations: { name: `c${i}`, labels: {} }, data: Buffer.from('x') }); // force a snapshot
      expect(api.openSecret('pw').toString()).toBe(plain);
      expect(api.openSecret(secret.id).toString()).toBe(plain);
      // A service's registry credential too (sealed under registry-auth:<service id>).
      const password = 'registry-password-in-clear';
      const registryAuth = { serverAddress: '10.0.0.1:5000', username: 'alice', password, identityToken: 'identity-token-in-clear' };
      const spec = { annotations: { name: 'web', labels: {} }, mode: { $case: 'replicated' as const, replicated: { replicas: 1 } }, task: { container: ContainerSpec.fromPartial({ image: '10.0.0.1:5000/app:t' }), networks: [], forceUpdate: 0 } };
      const { service } = await api.createService(spec, { registryAuth, resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER });
      for (let i = 5; i < 10; i++) await api.createConfig({ annotations: { name: `c${i}`, labels: {} }, data: Buffer.from('x') }); // and another snapshot
      expect(openRegistryAuth(sealer, store.get('service', service.id)!)).toEqual(registryAuth);
      // The snapshots are written off the loop, after the writes that made them due: wait for one.
      for (let i = 0; i < 500 && !filesUnder(join(dir, 'raft')).some((f) => f.endsWith('.snap')); i++) await new Promise((r) => setTimeout(r, 10));
      const files = filesUnder(join(dir, 'raft'));
      expect(files.some((f) => f.endsWith('.snap'))).toBe(true);
      for (const f of files) {
        for (const clear of [plain, password, 'identity-token-in-clear']) expect(readFileSync(f).includes(Buffer.from(clear)), `${clear} in ${f}`).toBe(false);
      }
    } finally {
      await raft.stop();
    }
  });
});
