// Overlay root filesystems of containers: the option planning (pure), and real overlay mounts of
// images pulled from a local registry (root). Every mount a test makes is unmounted afterwards,
// also when the test fails.
import { execFileSync } from 'node:child_process';
import { lstat, mkdtemp, readdir, readFile, rm, writeFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IllegalStateError, InvalidArgumentError } from '../../common/errors.js';
import { startRegistry, registryAvailable, type Registry } from '../../test/registry/registry.js';
import { buildImage, busyboxAvailable, busyboxLayer, makeLayer, pushImage, pushBusyboxImage, type Layer } from '../../test/registry/image.js';
import { RegistryClient } from './distribution.js';
import { MOUNT_OPTIONS_LIMIT, parseMountinfo, planOverlay, readMounts } from './rootfs.js';
import { ImageStore } from './store.js';

describe('planOverlay', () => {
  const root = '/var/lib/tswarm/images';
  const layer = (i: number): string => `${root}/layers/${i.toString(16).padStart(64, '0')}/diff`;
  it('names the layers by absolute path, top first, when the options fit in a page', () => {
    const p = planOverlay({ root, lowers: [layer(2), layer(1)], shorts: ['2', '1'], upperDir: '/c/upper', workDir: '/c/work' });
    expect(p).toEqual({ options: `lowerdir=${layer(2)}:${layer(1)},upperdir=/c/upper,workdir=/c/work`, cwd: undefined, links: [] });
  });

  it('switches to short l/ links relative to the store root when they do not', () => {
    const lowers = Array.from({ length: 60 }, (_, i) => layer(60 - i));
    const shorts = lowers.map((_, i) => `s${60 - i}`);
    const p = planOverlay({ root, lowers, shorts, upperDir: `${root}/containers/c1/upper`, workDir: `${root}/containers/c1/work` });
    expect(p.cwd).toBe(root);
    expect(p.options).toBe(`lowerdir=${shorts.map((s) => `l/${s}`).join(':')},upperdir=containers/c1/upper,workdir=containers/c1/work`);
    expect(p.options.length).toBeLessThanOrEqual(MOUNT_OPTIONS_LIMIT);
    expect(p.links[0]).toEqual({ name: 'l/s60', target: `../layers/${(60).toString(16).padStart(64, '0')}/diff` });
  });

  it('refuses what cannot be mounted, naming the field', () => {
    expect(() => planOverlay({ root, lowers: [layer(1)], shorts: ['1'], upperDir: '/c,x/upper', workDir: '/c/work' })).toThrow(InvalidArgumentError);
    expect(() => planOverlay({ root, lowers: [layer(1)], shorts: ['1'], upperDir: '/c,x/upper', workDir: '/c/work' })).toThrow(/^upperDir: must not contain/);
    expect(() => planOverlay({ root, lowers: [], shorts: [], upperDir: '/u', workDir: '/w' })).toThrow(/^lowers: /);
    const many = Array.from({ length: 300 }, (_, i) => layer(i));
    expect(() => planOverlay({ root, lowers: many, shorts: many.map((_, i) => `${i}`.padStart(16, '0')), upperDir: '/u', workDir: '/w' })).toThrow(
      /^image: 300 layers do not fit in one overlay mount/,
    );
  });
});

describe('parseMountinfo', () => {
  it('reads mount points (with octal escapes), types and options', () => {
    const text = [
      '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
      '46 27 0:39 / /tmp/with\\040space rw,relatime - overlay overlay rw,lowerdir=l/B:l/A,upperdir=u,workdir=w',
      'garbage',
    ].join('\n');
    expect(parseMountinfo(text)).toEqual([
      { mountPoint: '/', fsType: 'ext4', source: '/dev/vda', superOptions: 'rw' },
      { mountPoint: '/tmp/with space', fsType: 'overlay', source: 'overlay', superOptions: 'rw,lowerdir=l/B:l/A,upperdir=u,workdir=w' },
    ]);
  });
});

describe('container root filesystems', () => {
  let registry: Registry;
  let client: RegistryClient;
  let base: Layer;
  const dirs: string[] = [];

  async function newStore(): Promise<ImageStore> {
    const d = await mkdtemp(path.join(tmpdir(), 'tswarm-rootfs-'));
    dirs.push(d);
    return new ImageStore(d);
  }

  async function mountsUnder(dir: string): Promise<string[]> {
    return (await readMounts()).map((m) => m.mountPoint).filter((m) => m === dir || m.startsWith(`${dir}/`));
  }

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('overlay mounts need root');
    if (!registryAvailable()) throw new Error('docker-registry is not installed (apt-get install docker-registry)');
    if (!busyboxAvailable()) throw new Error('busybox-static is not installed (apt-get install busybox-static)');
    registry = await startRegistry();
    client = new RegistryClient({ url: registry.url });
    base = (await pushBusyboxImage(client)).layers[0]!;
  });

  afterEach(async () => {
    // Unmount everything the test left under its stores (deepest first), then remove the stores.
    for (const d of dirs.splice(0)) {
      for (const m of (await mountsUnder(d)).reverse()) execFileSync('umount', ['-l', m]);
      await rm(d, { recursive: true, force: true });
    }
  });

  afterAll(async () => {
    await registry?.stop();
  });

  it('mounts the busybox image: its files are visible and it runs; writes go to the upper directory only', async () => {
    const store = await newStore();
    const { image } = await store.pull(client, 'library/busybox', 'latest');
    const r = await store.createRootfs('c1', image);
    expect(r.target).toBe(path.join(store.root, 'containers', 'c1', 'merged'));
    expect(await mountsUnder(store.root)).toEqual([r.target]);
    const layer = store.layerPath(base.diffId);
    const info = (await readMounts()).find((m) => m.mountPoint === r.target)!;
    expect(info.fsType).toBe('overlay');
    expect(info.superOptions).toContain(`lowerdir=${layer},upperdir=${r.upperDir},workdir=${r.workDir}`);
    expect(await readFile(path.join(r.target, 'etc/passwd'), 'utf8')).toMatch(/^root:x:0:0:/);
    expect(execFileSync('chroot', [r.target, '/bin/sh', '-c', 'echo hello from $(cat /etc/group | head -1)']).toString()).toBe('hello from root:x:0:\n');

    // a new file, a changed file and a deleted file: all in upper, the layer untouched
    await writeFile(path.join(r.target, 'tmp/new'), 'new');
    await writeFile(path.join(r.target, 'etc/passwd'), 'changed\n');
    await unlink(path.join(r.target, 'etc/group'));
    expect(await readFile(path.join(r.upperDir, 'tmp/new'), 'utf8')).toBe('new');
    expect(await readFile(path.join(r.upperDir, 'etc/passwd'), 'utf8')).toBe('changed\n');
    const wh = await lstat(path.join(r.upperDir, 'etc/group'));
    expect(wh.isCharacterDevice() && wh.rdev === 0).toBe(true);
    expect(await readFile(path.join(layer, 'etc/passwd'), 'utf8')).toMatch(/^root:x:0:0:/);
    expect(await readFile(path.join(layer, 'etc/group'), 'utf8')).toMatch(/^root:x:0:/);
    await expect(lstat(path.join(layer, 'tmp/new'))).rejects.toThrow(/ENOENT/);
    expect(await readdir(path.join(r.target, 'etc'))).toEqual(['passwd']);

    expect(await store.removeRootfs('c1')).toBe(true);
    expect(await mountsUnder(store.root)).toEqual([]);
    expect(await readdir(path.join(store.root, 'containers'))).toEqual([]);
    expect(await store.removeRootfs('c1')).toBe(false);
    expect(await readFile(path.join(layer, 'etc/passwd'), 'utf8')).toMatch(/^root:x:0:0:/);
  });

  it("hides what an upper layer's whiteouts delete (a file, an opaque directory's children)", async () => {
    const lower = makeLayer([
      { type: 'directory', path: 'etc/' },
      { type: 'file', path: 'etc/motd', content: Buffer.from('bye') },
      { type: 'file', path: 'etc/hostname', content: Buffer.from('kept') },
      { type: 'directory', path: 'var/' },
      { type: 'directory', path: 'var/cache/' },
      { type: 'file', path: 'var/cache/old', content: Buffer.from('old') },
    ]);
    const upper = makeLayer([
      { type: 'directory', path: 'etc/' },
      { type: 'file', path: 'etc/.wh.motd' },
      { type: 'directory', path: 'var/' },
      { type: 'directory', path: 'var/cache/' },
      { type: 'file', path: 'var/cache/.wh..wh..opq' },
      { type: 'file', path: 'var/cache/new', content: Buffer.from('new') },
    ]);
    await pushImage(client, 'rootfs/whiteout', 'latest', buildImage([base, lower, upper]));
    const store = await newStore();
    const { image } = await store.pull(client, 'rootfs/whiteout', 'latest');
    const r = await store.createRootfs('wh', image);
    expect((await readdir(path.join(r.target, 'etc'))).sort()).toEqual(['group', 'hostname', 'passwd']);
    expect(await readdir(path.join(r.target, 'var/cache'))).toEqual(['new']);
    expect(await readFile(path.join(r.target, 'etc/hostname'), 'utf8')).toBe('kept');
    await store.removeRootfs('wh');
    expect(await mountsUnder(store.root)).toEqual([]);
  });

  it('shares the layers between two containers of one image and keeps them from gc while either exists', async () => {
    const store = await newStore();
    const { image } = await store.pull(client, 'library/busybox', 'latest');
    const a = await store.createRootfs('a', image);
    const b = await store.createRootfs('b', image, path.join(store.root, 'elsewhere', 'b'));
    const layer = store.layerPath(base.diffId);
    const mounts = (await readMounts()).filter((m) => m.mountPoint === a.target || m.mountPoint === b.target);
    expect(mounts).toHaveLength(2);
    for (const m of mounts) expect(m.superOptions).toContain(`lowerdir=${layer},`);
    await writeFile(path.join(a.target, 'tmp/only-a'), 'a');
    await expect(lstat(path.join(b.target, 'tmp/only-a'))).rejects.toThrow(/ENOENT/);
    expect((await store.layerRefCounts()).get(base.diffId)).toBe(3); // the image and two containers

    // the image record goes: the containers still hold the layer
    expect(await store.removeImage(image.reference)).toBe(true);
    expect((await store.gc()).layers).toEqual([]);
    expect(await store.hasLayer(base.diffId)).toBe(true);
    expect((await store.listRootfs()).map((r) => r.id)).toEqual(['a', 'b']);

    // remounting an existing container is idempotent; another image for it is refused
    await store.unmountRootfs(a.target);
    expect(await store.createRootfs('a', image)).toEqual(a);
    expect(await readFile(path.join(a.target, 'tmp/only-a'), 'utf8')).toBe('a');
    await expect(store.createRootfs('a', { ...image, reference: 'other/image:latest' })).rejects.toThrow(IllegalStateError);
    await expect(store.createRootfs('../escape', image)).rejects.toThrow(/^container id: /);

    expect(await store.removeRootfs('a')).toBe(true);
    expect((await store.gc()).layers).toEqual([]);
    expect(await store.removeRootfs('b')).toBe(true);
    expect((await store.gc()).layers).toEqual([base.diffId]);
    expect(await mountsUnder(store.root)).toEqual([]);
    await expect(lstat(b.target)).rejects.toThrow(/ENOENT/);
  });

  it('mounts an image with many layers through short l/ links, the top layer winning', async () => {
    const n = 60;
    const layers = [busyboxLayer()];
    for (let i = 1; i <= n; i++)
      layers.push(
        makeLayer([
          { type: 'directory', path: 'layers/' },
          { type: 'file', path: `layers/${i}`, content: Buffer.from(`${i}`) },
          { type: 'file', path: 'layers/top', content: Buffer.from(`${i}`) },
        ]),
      );
    await pushImage(client, 'rootfs/many', 'latest', buildImage(layers));
    const store = await newStore();
    const { image } = await store.pull(client, 'rootfs/many', 'latest');
    const r = await store.createRootfs('many', image);
    const info = (await readMounts()).find((m) => m.mountPoint === r.target)!;
    expect(info.superOptions).toMatch(/lowerdir=l\/[0-9a-f]{16}:/);
    expect(info.superOptions).toContain(',upperdir=containers/many/upper,workdir=containers/many/work');
    expect((await readdir(path.join(store.root, 'l'))).length).toBe(n + 1);
    expect(await readFile(path.join(r.target, 'layers/top'), 'utf8')).toBe(`${n}`);
    expect((await readdir(path.join(r.target, 'layers'))).length).toBe(n + 1);
    expect(await readFile(path.join(r.target, 'layers/1'), 'utf8')).toBe('1');
    expect(execFileSync('chroot', [r.target, '/bin/cat', '/layers/30']).toString()).toBe('30');
    await store.removeRootfs('many');
    expect(await mountsUnder(store.root)).toEqual([]);
    await store.removeImage(image.reference);
    expect((await store.gc()).layers).toHaveLength(n + 1);
    expect(await readdir(path.join(store.root, 'l'))).toEqual([]);
  });
});
