// The image store and distribution client against a real registry (Debian's docker-registry on
// loopback), with a loopback proxy for bearer auth and cut connections.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type Proxy } from '../../test/registry/proxy.js';
import { startRegistry, registryAvailable, type Registry } from '../../test/registry/registry.js';
import {
  buildImage,
  busyboxAvailable,
  busyboxLayer,
  BUSYBOX_APPLETS,
  layerFromBlob,
  makeLayer,
  pushImage,
  pushBusyboxImage,
  pushIndex,
  type Layer,
} from '../../test/registry/image.js';
import { MEDIA, RegistryClient, RegistryError, hostPlatform, sha256Digest } from './distribution.js';
import { ImageStore, imageReference, LayerError } from './store.js';
import { writeTar } from './tar.js';

let registry: Registry;
let client: RegistryClient;
let base: Layer;
const dirs: string[] = [];
const proxies: Proxy[] = [];

async function newStore(): Promise<ImageStore> {
  const d = await mkdtemp(path.join(tmpdir(), 'tswarm-store-'));
  dirs.push(d);
  return new ImageStore(d);
}

beforeAll(async () => {
  if (!registryAvailable()) throw new Error('docker-registry is not installed (apt-get install docker-registry)');
  if (!busyboxAvailable()) throw new Error('busybox-static is not installed (apt-get install busybox-static)');
  registry = await startRegistry();
  client = new RegistryClient({ url: registry.url });
  const busybox = await pushBusyboxImage(client);
  base = busybox.layers[0]!;
  expect(base.digest).toBe(busyboxLayer().digest); // the layer is reproducible
});

afterEach(async () => {
  for (const p of proxies.splice(0)) await p.close();
});

afterAll(async () => {
  for (const p of proxies.splice(0)) await p.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  await registry?.stop();
});

describe('pull', () => {
  it('pulls the busybox image and unpacks a runnable busybox with its applets', async () => {
    const store = await newStore();
    const r = await store.pull(client, 'library/busybox', 'latest');
    expect(r.unpacked).toEqual([base.diffId]);
    expect(r.image.config.config?.Cmd).toEqual(['/bin/sh']);
    expect(r.image.config.rootfs.diff_ids).toEqual([base.diffId]);
    const root = store.layerPath(base.diffId);
    const bb = path.join(root, 'bin', 'busybox');
    expect((await stat(bb)).mode & 0o777).toBe(0o755);
    for (const a of BUSYBOX_APPLETS) expect(await readlink(path.join(root, 'bin', a))).toBe('busybox');
    expect((await stat(path.join(root, 'tmp'))).mode & 0o7777).toBe(0o1777);
    expect(execFileSync(bb, ['echo', 'hello from the layer']).toString()).toBe('hello from the layer\n');
    expect(await store.getImage(imageReference(registry.url, 'library/busybox', 'latest'))).toEqual(r.image);
    // every blob is in the store under its digest
    for (const d of [r.image.manifestDigest, r.image.configDigest, base.digest]) expect(await store.verifyBlob(d)).toBe(true);
  });

  it('pulls by digest, and a Docker schema 2 manifest', async () => {
    const img = buildImage([base], ['/bin/true']);
    const dockerManifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.dockerManifest,
        config: { mediaType: MEDIA.dockerConfig, digest: img.configDigest, size: img.config.length },
        layers: [{ mediaType: MEDIA.dockerLayerGzip, digest: base.digest, size: base.blob.length }],
      }),
    );
    await client.pushBlob('docker/busybox', base.digest, base.blob);
    await client.pushBlob('docker/busybox', img.configDigest, img.config);
    const digest = await client.pushManifest('docker/busybox', 'v2', MEDIA.dockerManifest, dockerManifest);
    expect(digest).toBe(sha256Digest(dockerManifest));
    const store = await newStore();
    const r = await store.pull(client, 'docker/busybox', digest);
    expect(r.image.manifestMediaType).toBe(MEDIA.dockerManifest);
    expect(r.image.reference).toBe(imageReference(registry.url, 'docker/busybox', digest));
    expect(r.image.config.config?.Cmd).toEqual(['/bin/true']);
  });

  it('selects the platform from an image index (os, architecture, variant)', async () => {
    const host = buildImage([base], ['/bin/sh']);
    const other = buildImage([base], ['/bin/echo', 'arm']);
    await pushImage(client, 'multi/busybox', 'host', host);
    await pushImage(client, 'multi/busybox', 'arm', other);
    await pushIndex(client, 'multi/busybox', 'latest', [
      { img: other, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { img: host, platform: hostPlatform() },
    ]);
    const arm = await client.resolveManifest('multi/busybox', 'latest', { os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(arm.digest).toBe(other.manifestDigest);
    const mine = await client.resolveManifest('multi/busybox', 'latest');
    expect(mine.digest).toBe(host.manifestDigest);
    await expect(client.resolveManifest('multi/busybox', 'latest', { os: 'linux', architecture: 'arm64', variant: 'v7' })).rejects.toThrow(
      /no manifest for platform linux\/arm64\/v7 in index \(has linux\/arm64\/v8, linux\//,
    );
    const store = await newStore();
    const r = await store.pull(client, 'multi/busybox', 'latest');
    expect(r.image.manifestDigest).toBe(host.manifestDigest);
  });

  it('pulls a zstd layer', async () => {
    const tar = writeTar([
      { type: 'directory', path: 'z/' },
      { type: 'file', path: 'z/hello', content: Buffer.from('zstd works\n') },
    ]);
    const blob = execFileSync('zstd', ['-q', '-c'], { input: tar });
    const layer = layerFromBlob(tar, blob, MEDIA.ociLayerZstd);
    await pushImage(client, 'zstd/img', 'latest', buildImage([base, layer]));
    const store = await newStore();
    const r = await store.pull(client, 'zstd/img', 'latest');
    expect(r.unpacked).toEqual([base.diffId, layer.diffId]);
    expect(await readFile(path.join(store.layerPath(layer.diffId), 'z', 'hello'), 'utf8')).toBe('zstd works\n');
  });

  it('keeps hard links, ownership and modes', async () => {
    const layer = makeLayer([
      { type: 'directory', path: 'data/', uid: 1000, gid: 1001, mode: 0o750 },
      { type: 'file', path: 'data/a', content: Buffer.from('same'), uid: 1000, gid: 1001, mode: 0o640 },
      { type: 'hardlink', path: 'data/b', linkpath: 'data/a' },
      { type: 'symlink', path: 'data/s', linkpath: '/etc/passwd', uid: 1000, gid: 1001 },
      { type: 'file', path: `data/${'long'.repeat(40)}`, content: Buffer.from('pax') },
    ]);
    await pushImage(client, 'links/img', 'latest', buildImage([layer]));
    const store = await newStore();
    await store.pull(client, 'links/img', 'latest');
    const root = store.layerPath(layer.diffId);
    const a = await stat(path.join(root, 'data/a'));
    const b = await stat(path.join(root, 'data/b'));
    expect(b.ino).toBe(a.ino);
    expect(a.nlink).toBe(2);
    expect([a.uid, a.gid, a.mode & 0o777]).toEqual([1000, 1001, 0o640]);
    const d = await stat(path.join(root, 'data'));
    expect([d.uid, d.gid, d.mode & 0o777]).toEqual([1000, 1001, 0o750]);
    const s = await lstat(path.join(root, 'data/s'));
    expect([s.isSymbolicLink(), s.uid]).toEqual([true, 1000]);
    expect(await readlink(path.join(root, 'data/s'))).toBe('/etc/passwd');
    expect(await readFile(path.join(root, 'data', 'long'.repeat(40)), 'utf8')).toBe('pax');
  });

  it('reports a missing tag with the registry, repository, reference and status', async () => {
    const host = new URL(registry.url).host;
    await expect(client.resolveManifest('library/busybox', 'nope')).rejects.toThrow(
      new RegExp(`^registry ${host}, repository library/busybox, nope: GET failed: manifest unknown: .*\\(HTTP 404\\)$`),
    );
    const missing = sha256Digest(Buffer.from('missing'));
    await expect(client.getBlob('library/busybox', missing)).rejects.toThrow(`repository library/busybox, ${missing}`);
  });
});

describe('layer store', () => {
  it('unpacks a layer shared by two images once and counts its references', async () => {
    const extra = makeLayer([{ type: 'file', path: 'etc/motd', content: Buffer.from('second image\n') }]);
    await pushImage(client, 'shared/two', 'latest', buildImage([base, extra]));
    const store = await newStore();
    const one = await store.pull(client, 'library/busybox', 'latest');
    const two = await store.pull(client, 'shared/two', 'latest');
    expect(one.unpacked).toEqual([base.diffId]);
    expect(two.unpacked).toEqual([extra.diffId]);
    expect(two.downloaded).not.toContain(base.digest);
    expect((await readdir(path.join(store.root, 'layers'))).sort()).toEqual([base.diffId, extra.diffId].map((d) => d.slice(7)).sort());
    const counts = await store.layerRefCounts();
    expect(counts.get(base.diffId)).toBe(2);
    expect(counts.get(extra.diffId)).toBe(1);
  });

  it('shares one download and one unpack between concurrent pulls', async () => {
    const store = await newStore();
    const [a, b] = await Promise.all([store.pull(client, 'library/busybox', 'latest'), store.pull(client, 'shared/two', 'latest')]);
    expect([...a.unpacked, ...b.unpacked].filter((d) => d === base.diffId)).toHaveLength(1);
    expect([...a.downloaded, ...b.downloaded].filter((d) => d === base.digest)).toHaveLength(1);
    expect(await readdir(path.join(store.root, 'tmp'))).toEqual([]);
  });

  it('converts whiteouts to the overlay form (deleted file, opaque directory)', async () => {
    const lower = makeLayer([
      { type: 'directory', path: 'etc/' },
      { type: 'file', path: 'etc/motd', content: Buffer.from('bye') },
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
    await pushImage(client, 'whiteout/img', 'latest', buildImage([lower, upper]));
    const store = await newStore();
    await store.pull(client, 'whiteout/img', 'latest');
    const root = store.layerPath(upper.diffId);
    const wh = await lstat(path.join(root, 'etc/motd'));
    expect(wh.isCharacterDevice()).toBe(true);
    expect(wh.rdev).toBe(0);
    const opaque = execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'trusted.overlay.opaque', path.join(root, 'var/cache')]).toString();
    expect(opaque).toBe('y');
    expect(await readdir(path.join(root, 'var/cache'))).toEqual(['new']);
    expect(await readdir(path.join(root, 'etc'))).toEqual(['motd']);
    // the lower layer is untouched
    expect(await readFile(path.join(store.layerPath(lower.diffId), 'etc/motd'), 'utf8')).toBe('bye');
  });

  const refused: [string, Parameters<typeof makeLayer>[0], RegExp][] = [
    ['a ../ path', [{ type: 'file', path: 'ok/../../evil', content: Buffer.from('x') }], /entry "ok\/..\/..\/evil": ".." path component refused/],
    ['an absolute path', [{ type: 'file', path: '/etc/evil', content: Buffer.from('x') }], /entry "\/etc\/evil": absolute path refused/],
    [
      'a relative symlink escape',
      [
        { type: 'symlink', path: 'up', linkpath: '../../../../../../../tmp' },
        { type: 'file', path: 'up/tswarm-escape', content: Buffer.from('x') },
      ],
      /entry "up\/tswarm-escape": path resolves through symlink up -> ..\/..\/..\/..\/..\/..\/..\/tmp, outside the layer/,
    ],
    [
      'an absolute symlink escape',
      [
        { type: 'symlink', path: 'abs', linkpath: '/tmp' },
        { type: 'file', path: 'abs/tswarm-escape', content: Buffer.from('x') },
      ],
      /entry "abs\/tswarm-escape": path resolves through symlink abs -> \/tmp, outside the layer/,
    ],
    [
      'a hard link to outside',
      [{ type: 'hardlink', path: 'pw', linkpath: '../../../../etc/passwd' }],
      /entry "pw": ".." path component refused/,
    ],
  ];
  it.each(refused)('refuses a layer with %s, naming the layer and the entry', async (_what, entries, message) => {
    const bad = makeLayer(entries);
    const repo = `refuse/${sha256Digest(bad.blob).slice(7, 19)}`;
    await pushImage(client, repo, 'latest', buildImage([bad]));
    const store = await newStore();
    const err = await store.pull(client, repo, 'latest').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayerError);
    expect((err as LayerError).message).toContain(`layer ${bad.digest}: `);
    expect((err as LayerError).message).toMatch(message);
    expect(existsSync('/tmp/tswarm-escape')).toBe(false);
    expect(await store.hasLayer(bad.diffId)).toBe(false);
    expect(await readdir(path.join(store.root, 'tmp'))).toEqual([]);
  });

  it('follows a symlink that stays inside the layer', async () => {
    const layer = makeLayer([
      { type: 'directory', path: 'usr/' },
      { type: 'directory', path: 'usr/lib/' },
      { type: 'symlink', path: 'lib', linkpath: 'usr/lib' },
      { type: 'file', path: 'lib/libx.so', content: Buffer.from('x') },
    ]);
    await pushImage(client, 'inside/img', 'latest', buildImage([layer]));
    const store = await newStore();
    await store.pull(client, 'inside/img', 'latest');
    expect(await readFile(path.join(store.layerPath(layer.diffId), 'usr/lib/libx.so'), 'utf8')).toBe('x');
  });

  it('detects a corrupted blob on verify and fetches it again', async () => {
    const store = await newStore();
    await store.pull(client, 'library/busybox', 'latest');
    const p = store.blobPath(base.digest);
    const bytes = await readFile(p);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await writeFile(p, bytes);
    expect(await store.verifyBlob(base.digest)).toBe(false);
    expect(await store.hasBlob(base.digest)).toBe(false); // removed when found corrupt
    await writeFile(p, bytes); // corrupt again, and let pull find it
    const r = await store.pull(client, 'library/busybox', 'latest');
    expect(r.repaired).toEqual([base.digest]);
    expect(r.downloaded).toEqual([base.digest]);
    expect(r.unpacked).toEqual([]);
    expect(await store.verifyBlob(base.digest)).toBe(true);
  });

  it('garbage-collects layers and blobs when their last image reference goes', async () => {
    const extra = makeLayer([{ type: 'file', path: 'gc-marker', content: Buffer.from('gc') }]);
    const two = buildImage([base, extra]);
    await pushImage(client, 'gc/two', 'latest', two);
    const store = await newStore();
    const r1 = await store.pull(client, 'library/busybox', 'latest');
    const r2 = await store.pull(client, 'gc/two', 'latest');
    expect(await store.gc()).toEqual({ blobs: [], layers: [] });
    expect(await store.removeImage(r2.image.reference)).toBe(true);
    const g1 = await store.gc();
    expect(g1.layers).toEqual([extra.diffId]);
    expect(g1.blobs.sort()).toEqual([extra.digest, two.configDigest, two.manifestDigest].sort());
    expect(await store.hasLayer(base.diffId)).toBe(true);
    expect(await store.hasLayer(extra.diffId)).toBe(false);
    expect(await store.removeImage(r1.image.reference)).toBe(true);
    const g2 = await store.gc();
    expect(g2.layers).toEqual([base.diffId]);
    expect(await readdir(path.join(store.root, 'layers'))).toEqual([]);
    expect(await readdir(path.join(store.root, 'blobs', 'sha256'))).toEqual([]);
  });
});

describe('distribution client', () => {
  it('resumes an interrupted blob download with a Range request', async () => {
    const cutAfter = Math.floor(base.blob.length / 2);
    const proxy = await startProxy({ upstream: registry.url, cutBlobs: 1, cutAfter });
    proxies.push(proxy);
    const store = await newStore();
    const via = new RegistryClient({ url: proxy.url, backoffMs: 10 });
    const r = await store.pull(via, 'library/busybox', 'latest');
    expect(r.unpacked).toEqual([base.diffId]);
    const gets = proxy.seen.filter((s) => s.method === 'GET' && s.path.endsWith(`/blobs/${base.digest}`));
    expect(gets).toHaveLength(2);
    expect(gets[0]!.range).toBeUndefined();
    const m = /^bytes=(\d+)-$/.exec(gets[1]!.range ?? '');
    expect(m).not.toBeNull();
    const from = Number(m![1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(cutAfter);
    expect(gets[1]!.status).toBe(206);
    expect(await store.verifyBlob(base.digest)).toBe(true);
  });

  it('resumes a stalled download after the idle timeout', async () => {
    const cutAfter = Math.floor(base.blob.length / 3);
    const proxy = await startProxy({ upstream: registry.url, cutBlobs: 1, cutAfter, stall: true });
    proxies.push(proxy);
    const dir = await mkdtemp(path.join(tmpdir(), 'tswarm-store-'));
    dirs.push(dir);
    const via = new RegistryClient({ url: proxy.url, backoffMs: 10, idleTimeoutMs: 500 });
    const r = await via.downloadBlob('library/busybox', base.digest, path.join(dir, 'blob'));
    expect(r.bytes).toBe(base.blob.length);
    expect(r.resumedFrom).toHaveLength(1);
    expect(r.resumedFrom[0]).toBeGreaterThan(0);
    expect((await readFile(path.join(dir, 'blob'))).equals(base.blob)).toBe(true);
  });

  it('verifies every blob as it streams: a corrupted transfer is fetched again, twice is an error', async () => {
    const once = await startProxy({ upstream: registry.url, corruptBlobs: 1 });
    proxies.push(once);
    const dir = await mkdtemp(path.join(tmpdir(), 'tswarm-store-'));
    dirs.push(dir);
    const via = new RegistryClient({ url: once.url, backoffMs: 10 });
    await via.downloadBlob('library/busybox', base.digest, path.join(dir, 'blob'));
    expect((await readFile(path.join(dir, 'blob'))).equals(base.blob)).toBe(true);
    expect(once.seen.filter((s) => s.path.endsWith(base.digest)).map((s) => s.range)).toEqual([undefined, undefined]);

    const twice = await startProxy({ upstream: registry.url, corruptBlobs: 2 });
    proxies.push(twice);
    const bad = new RegistryClient({ url: twice.url, backoffMs: 10 });
    await expect(bad.downloadBlob('library/busybox', base.digest, path.join(dir, 'blob2'))).rejects.toThrow(
      new RegExp(`^registry ${new URL(twice.url).host}, repository library/busybox, ${base.digest}: blob digest mismatch: got sha256:[0-9a-f]{64} \\(HTTP 200\\)$`),
    );
    expect(existsSync(path.join(dir, 'blob2'))).toBe(false);
    expect(existsSync(path.join(dir, 'blob2.partial'))).toBe(false);
  });

  it('fetches a bearer token on a 401 challenge and retries', async () => {
    const proxy = await startProxy({ upstream: registry.url, bearer: true, credentials: 'alice:secret' });
    proxies.push(proxy);
    const store = await newStore();
    const via = new RegistryClient({ url: proxy.url, username: 'alice', password: 'secret' });
    const r = await store.pull(via, 'library/busybox', 'latest');
    expect(r.unpacked).toEqual([base.diffId]);
    expect(proxy.tokenRequests.length).toBeGreaterThanOrEqual(1);
    expect(proxy.tokenRequests[0]).toBe('/token?service=test-registry&scope=repository%3Alibrary%2Fbusybox%3Apull');
    // after the first challenge, requests carry the token
    const authed = proxy.seen.filter((s) => s.path.startsWith('/v2/library/busybox/') && s.status !== 401);
    expect(authed.every((s) => s.authorization === 'Bearer test-token-0123456789')).toBe(true);
    expect(proxy.seen.filter((s) => s.status === 401)).toHaveLength(1);
  });

  it('names the registry, repository, reference and status when the token is refused', async () => {
    const proxy = await startProxy({ upstream: registry.url, bearer: true, credentials: 'alice:secret' });
    proxies.push(proxy);
    const via = new RegistryClient({ url: proxy.url, username: 'alice', password: 'wrong' });
    const err = await via.resolveManifest('library/busybox', 'latest').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toBe(
      `registry ${new URL(proxy.url).host}, repository library/busybox, latest: token request to ${proxy.url} refused (HTTP 401)`,
    );
  });

  it('pushes through bearer auth, skipping blobs the registry has', async () => {
    const proxy = await startProxy({ upstream: registry.url, bearer: true });
    proxies.push(proxy);
    const via = new RegistryClient({ url: proxy.url });
    expect(await via.pushBlob('library/busybox', base.digest, base.blob)).toBe('exists');
    const fresh = makeLayer([{ type: 'file', path: 'pushed', content: Buffer.from('pushed through the proxy') }]);
    expect(await via.pushBlob('pushed/img', fresh.digest, fresh.blob)).toBe('uploaded');
    expect(await client.getBlob('pushed/img', fresh.digest)).toEqual(fresh.blob);
  });
});
