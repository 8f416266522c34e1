// The store's snapshot reuses each object's encoding between snapshots; it must still be exactly
// the store: decoded, it holds every current object (and nothing removed or outdated), and a
// restored store lists the same objects.
import { describe, expect, it } from 'vitest';
import { StoreSnapshot } from '../../proto/gen/tswarm/store.js';
import { LocalProposer } from './local.js';
import { MemoryStore } from './memory.js';

function secret(i: number, size: number, tag = '') {
  return { id: `secret${String(i).padStart(19, '0')}`, spec: { annotations: { name: `s${i}`, labels: { tag } }, data: Buffer.alloc(size, i % 251) } };
}

describe('store snapshot', () => {
  it('holds exactly the current objects after creates, updates and removes between snapshots', async () => {
    const store = new MemoryStore();
    store.setProposer(new LocalProposer(store));
    // Sizes around the varint boundaries of the length prefix (127/128, 16383/16384) and beyond.
    const sizes = [0, 1, 100, 127, 128, 200, 16_000, 16_383, 16_384, 70_000];
    await store.update((tx) => sizes.forEach((size, i) => tx.create('secret', secret(i, size))));
    const first = StoreSnapshot.decode(store.snapshot());
    expect(first.objects).toHaveLength(sizes.length);
    // Change some, remove one, add some: the next snapshot must not reuse what changed.
    await store.update((tx) => {
      for (const i of [1, 4]) {
        const s = tx.get('secret', secret(i, 0).id)!;
        tx.update('secret', { ...s, spec: { ...s.spec!, annotations: { name: `s${i}`, labels: { tag: 'changed' } } } });
      }
      tx.remove('secret', secret(2, 0).id);
      tx.create('secret', secret(100, 300, 'new'));
    });
    const data = store.snapshot();
    const snap = StoreSnapshot.decode(data);
    expect(snap.version).toBe(store.version);
    const byId = new Map(snap.objects.map((o) => [o.object?.$case === 'secret' ? o.object.secret.id : '', o.object?.$case === 'secret' ? o.object.secret : undefined]));
    expect([...byId.keys()].sort()).toEqual(store.list('secret').map((s) => s.id).sort());
    for (const s of store.list('secret')) expect(byId.get(s.id)).toEqual(s);
    expect(byId.get(secret(1, 0).id)?.spec?.annotations?.labels).toEqual({ tag: 'changed' });
    expect(byId.has(secret(2, 0).id)).toBe(false);
    // And it restores.
    const again = new MemoryStore();
    again.restore(data);
    expect(again.list('secret').sort((a, b) => a.id.localeCompare(b.id))).toEqual(store.list('secret').sort((a, b) => a.id.localeCompare(b.id)));
    expect(again.version).toBe(store.version);
  });
});
