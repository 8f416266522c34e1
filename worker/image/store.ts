// The content-addressed image store of a worker:
//
//   <root>/blobs/sha256/<hex>          compressed layers, configs and manifests, verified by digest
//   <root>/layers/<diffid-hex>/diff/   one unpacked layer (overlayfs whiteout form), made once
//   <root>/images/<sha256 of ref>.json one record per image reference (manifest, config, layers)
//
// Reference counts are derived from the image records: a blob or layer is live while a record
// names it; gc() removes everything else. A layer is unpacked into a temporary directory next to
// its final place and renamed there, so a crash never leaves a half-unpacked layer in use.
import { SerialQueue } from '../../common/serial.js';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, rmdir, chmod, lchown, lutimes, link, symlink, writeFile, utimes } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { CorruptFileError, IllegalStateError, InvalidArgumentError, TswarmError } from '../../common/errors.js';
import { digestHex, hashFile, hostPlatform, MEDIA, type ImageConfig, type Platform, RegistryClient, sha256Digest } from './distribution.js';
import { readTar, type TarEntry } from './tar.js';
import { execMounter, isMountPoint, mountOverlay, planOverlay, RootfsError, unmount, type Mounter } from './rootfs.js';

export { RootfsError } from './rootfs.js';

const run = promisify(execFile);

/** A layer that cannot be unpacked safely or correctly: names the layer digest and the entry. */
export class LayerError extends TswarmError {
  constructor(
    readonly layer: string,
    readonly entry: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`layer ${layer}: entry ${JSON.stringify(entry)}: ${problem}`, options);
  }
}

export interface LayerRecord {
  /** Digest of the blob as stored (compressed). */
  digest: string;
  /** Digest of the uncompressed tar (rootfs.diff_ids). */
  diffId: string;
  mediaType: string;
  size: number;
}

export interface ImageRecord {
  /** registry/repository:tag or @digest, as pulled. */
  reference: string;
  manifestDigest: string;
  manifestMediaType: string;
  configDigest: string;
  config: ImageConfig;
  /** Base first. */
  layers: LayerRecord[];
}

export interface PullResult {
  image: ImageRecord;
  /** Blobs that were downloaded this time (not found, or found corrupt, in the store). */
  downloaded: string[];
  /** Blobs found corrupt in the store and fetched again. */
  repaired: string[];
  /** diff ids unpacked by this pull (a layer already present is not unpacked again). */
  unpacked: string[];
}

/** A container's root filesystem, recorded in <root>/containers/<id>/rootfs.json. */
export interface RootfsRecord {
  id: string;
  /** The image reference it was made from. */
  image: string;
  /** The diff ids of its layers, base first: gc() keeps them while this record exists. */
  layers: string[];
  /** Where the overlay is mounted. */
  target: string;
  upperDir: string;
  workDir: string;
}

export interface GcResult {
  blobs: string[];
  layers: string[];
}

type Compression = 'none' | 'gzip' | 'zstd';

function compressionOf(mediaType: string): Compression {
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.tar.gzip') || mediaType === MEDIA.dockerLayerGzip) return 'gzip';
  if (mediaType.endsWith('+zstd')) return 'zstd';
  if (mediaType.endsWith('.tar') || mediaType.endsWith('.tar.v1')) return 'none';
  throw new TswarmError(`unsupported layer media type ${JSON.stringify(mediaType)}`);
}

function zstdStream(): Transform {
  let dec: Decompress | undefined;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      try {
        dec ??= new Decompress((d) => {
          this.push(Buffer.from(d));
        });
        dec.push(chunk);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb) {
      try {
        dec?.push(new Uint8Array(0), true);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}

/** The name an image is recorded under: host:port/repo:tag or host:port/repo@digest. */
export function imageReference(url: string, repo: string, ref: string): string {
  return `${url.replace(/^https?:\/\//, '').replace(/\/+$/, '')}/${repo}${ref.startsWith('sha256:') ? '@' : ':'}${ref}`;
}

function within(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}

export class ImageStore {
  readonly root: string;
  // Work in progress in this process, so that concurrent pulls share one download or unpack.
  private readonly fetching = new Map<string, Promise<void>>();
  private readonly unpacking = new Map<string, Promise<boolean>>();
  private seq = 0;
  private readonly serial = new SerialQueue();
  private readonly mounter: Mounter;
  /** `mounter` makes and removes the overlay mounts (default: mount(8) and umount(8); see Mounter). */
  constructor(root: string, opts: { mounter?: Mounter } = {}) {
    this.root = path.resolve(root);
    this.mounter = opts.mounter ?? execMounter;
  }

  blobPath(digest: string): string {
    return path.join(this.root, 'blobs', 'sha256', digestHex(digest));
  }

  /** The unpacked tree of a layer (an overlay lower directory). */
  layerPath(diffId: string): string {
    return path.join(this.root, 'layers', digestHex(diffId), 'diff');
  }

  private imagePath(reference: string): string {
    return path.join(this.root, 'images', `${createHash('sha256').update(reference).digest('hex')}.json`);
  }

  async init(): Promise<void> {
    for (const d of ['blobs/sha256', 'layers', 'images', 'tmp']) await mkdir(path.join(this.root, d), { recursive: true });
  }

  async hasBlob(digest: string): Promise<boolean> {
    return exists(this.blobPath(digest));
  }

  async hasLayer(diffId: string): Promise<boolean> {
    return exists(this.layerPath(diffId));
  }

  /** Re-hashes a stored blob; a blob that fails is removed. Returns false if absent or corrupt. */
  async verifyBlob(digest: string): Promise<boolean> {
    const p = this.blobPath(digest);
    if (!(await exists(p))) return false;
    if ((await hashFile(p)) === digest) return true;
    await rm(p, { force: true });
    return false;
  }

  async putBlob(data: Buffer): Promise<string> {
    const digest = sha256Digest(data);
    const p = this.blobPath(digest);
    if (!(await exists(p))) {
      const tmp = path.join(this.root, 'tmp', `${digestHex(digest)}.${process.pid}.${++this.seq}`);
      await writeFile(tmp, data);
      await rename(tmp, p);
    }
    return digest;
  }

  /**
   * Pulls `repo:ref` from the registry: resolves the manifest (platform selection for an index),
   * downloads missing blobs (and any stored blob that fails its digest check, again), unpacks each
   * layer not yet unpacked, checks every layer's diff id against the config, and records the image.
   */
  async pull(client: RegistryClient, repo: string, ref: string, platform: Platform = hostPlatform()): Promise<PullResult> {
    await this.init();
    const downloaded: string[] = [];
    const repaired: string[] = [];
    const unpacked: string[] = [];
    const m = await client.resolveManifest(repo, ref, platform);
    await this.putBlob(m.bytes);
    const fetchBlob = async (digest: string): Promise<void> => {
      const pending = this.fetching.get(digest);
      if (pending !== undefined) return pending;
      const p = (async () => {
        const present = await this.hasBlob(digest);
        if (present && (await this.verifyBlob(digest))) return;
        if (present) repaired.push(digest);
        await client.downloadBlob(repo, digest, this.blobPath(digest));
        downloaded.push(digest);
      })().finally(() => this.fetching.delete(digest));
      this.fetching.set(digest, p);
      return p;
    };
    await fetchBlob(m.manifest.config.digest);
    const config = JSON.parse(await readFile(this.blobPath(m.manifest.config.digest), 'utf8')) as ImageConfig;
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== m.manifest.layers.length)
      throw new TswarmError(`image ${repo}:${ref}: config has ${diffIds.length} diff ids for ${m.manifest.layers.length} layers`);
    const layers: LayerRecord[] = [];
    for (const [i, l] of m.manifest.layers.entries()) {
      const diffId = diffIds[i]!;
      layers.push({ digest: l.digest, diffId, mediaType: l.mediaType, size: l.size });
      // The blob is kept (and verified) even when its layer is unpacked: push and re-unpack need it.
      await fetchBlob(l.digest);
      if (await this.hasLayer(diffId)) continue;
      if (await this.unpackLayer(l.digest, l.mediaType, diffId)) unpacked.push(diffId);
    }
    const image: ImageRecord = {
      reference: imageReference(client.url, repo, ref),
      manifestDigest: m.digest,
      manifestMediaType: m.mediaType,
      configDigest: m.manifest.config.digest,
      config,
      layers,
    };
    await this.writeImage(image);
    return { image, downloaded, repaired, unpacked };
  }

  private async writeImage(image: ImageRecord): Promise<void> {
    const p = this.imagePath(image.reference);
    const tmp = `${p}.${process.pid}.${++this.seq}.tmp`;
    await writeFile(tmp, JSON.stringify(image, null, 2));
    await rename(tmp, p);
  }

  async getImage(reference: string): Promise<ImageRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.imagePath(reference), 'utf8')) as ImageRecord;
    } catch {
      return undefined;
    }
  }

  async listImages(): Promise<ImageRecord[]> {
    const dir = path.join(this.root, 'images');
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch {
      return [];
    }
    const out: ImageRecord[] = [];
    for (const n of names.filter((x) => x.endsWith('.json')).sort())
      out.push(JSON.parse(await readFile(path.join(dir, n), 'utf8')) as ImageRecord);
    return out;
  }

  /** Drops an image reference (its layers and blobs go at the next gc() if nothing else names them). */
  async removeImage(reference: string): Promise<boolean> {
    const p = this.imagePath(reference);
    if (!(await exists(p))) return false;
    await rm(p);
    return true;
  }

  /** How many image records and container root filesystems name each layer (by diff id). */
  async layerRefCounts(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    const users = [...(await this.listImages()).map((img) => img.layers.map((x) => x.diffId)), ...(await this.listRootfs()).map((r) => r.layers)];
    for (const layers of users) for (const l of new Set(layers)) counts.set(l, (counts.get(l) ?? 0) + 1);
    return counts;
  }

  /**
   * Removes blobs and unpacked layers that no image record references (a layer a container's root
   * filesystem uses is kept), short links to removed layers, and stale temporaries.
   */
  gc(): Promise<GcResult> {
    return this.exclusive(() => this.gcNow());
  }

  private async gcNow(): Promise<GcResult> {
    await this.init();
    const liveBlobs = new Set<string>();
    const liveLayers = new Set<string>();
    for (const img of await this.listImages()) {
      liveBlobs.add(digestHex(img.manifestDigest));
      liveBlobs.add(digestHex(img.configDigest));
      for (const l of img.layers) {
        liveBlobs.add(digestHex(l.digest));
        liveLayers.add(digestHex(l.diffId));
      }
    }
    for (const r of await this.listRootfs()) for (const l of r.layers) liveLayers.add(digestHex(l));
    const result: GcResult = { blobs: [], layers: [] };
    for (const hex of await readdir(path.join(this.root, 'blobs', 'sha256'))) {
      if (liveBlobs.has(hex)) continue;
      await rm(path.join(this.root, 'blobs', 'sha256', hex), { force: true });
      if (/^[0-9a-f]{64}$/.test(hex)) result.blobs.push(`sha256:${hex}`);
    }
    for (const hex of await readdir(path.join(this.root, 'layers'))) {
      if (liveLayers.has(hex)) continue;
      await rm(path.join(this.root, 'layers', hex), { recursive: true, force: true });
      if (/^[0-9a-f]{64}$/.test(hex)) result.layers.push(`sha256:${hex}`);
    }
    for (const t of await readdir(path.join(this.root, 'tmp'))) await rm(path.join(this.root, 'tmp', t), { recursive: true, force: true });
    const links = await readdir(path.join(this.root, 'l')).catch(() => [] as string[]);
    for (const name of links) {
      const p = path.join(this.root, 'l', name);
      if (!(await exists(path.resolve(path.dirname(p), await readlink(p).catch(() => ''))))) await rm(p, { force: true });
    }
    return result;
  }

  /**
   * Unpacks a stored blob into layers/<diffid>/diff, once: the uncompressed stream must hash to
   * `diffId`. Entries are refused (LayerError naming the layer and the entry) for an absolute path,
   * a `..` component, or a parent that resolves through a symlink to outside the layer. Whiteouts
   * become overlayfs form: `.wh.x` a character device 0/0 named x, `.wh..wh..opq` the xattr
   * trusted.overlay.opaque=y on its directory. Hard links, symlinks, modes, ownership and times kept.
   * Returns true if this call unpacked it (false: it was there, or a concurrent call made it).
   */
  async unpackLayer(digest: string, mediaType: string, diffId: string): Promise<boolean> {
    const pending = this.unpacking.get(diffId);
    if (pending !== undefined) {
      await pending;
      return false;
    }
    const p = this.unpackOnce(digest, mediaType, diffId).finally(() => this.unpacking.delete(diffId));
    this.unpacking.set(diffId, p);
    return p;
  }

  private async unpackOnce(digest: string, mediaType: string, diffId: string): Promise<boolean> {
    const final = path.join(this.root, 'layers', digestHex(diffId));
    if (await exists(path.join(final, 'diff'))) return false;
    const work = path.join(this.root, 'tmp', `layer-${digestHex(diffId)}-${process.pid}-${++this.seq}`);
    await rm(work, { recursive: true, force: true });
    const dir = path.join(work, 'diff');
    await mkdir(dir, { recursive: true });
    let source: { destroy(): void } | undefined;
    try {
      const hash = createHash('sha256');
      const comp = compressionOf(mediaType);
      const file = createReadStream(this.blobPath(digest));
      source = file;
      let stream: NodeJS.ReadableStream = file;
      if (comp === 'gzip') stream = stream.pipe(createGunzip());
      else if (comp === 'zstd') stream = stream.pipe(zstdStream());
      const hashed = (async function* () {
        for await (const chunk of stream) {
          const b = chunk as Buffer;
          hash.update(b);
          yield b;
        }
      })();
      const dirs: { p: string; e: TarEntry }[] = [];
      for await (const e of readTar(hashed)) {
        const d = await this.applyEntry(digest, dir, e);
        if (d !== null) dirs.push({ p: d, e });
      }
      // Directory modes and times last, deepest first, so that writing into them worked.
      for (const { p, e } of dirs.reverse()) {
        await chmod(p, e.mode);
        await utimes(p, e.mtime, e.mtime);
      }
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== diffId) throw new LayerError(digest, '', `uncompressed content hashes to ${got}, config says ${diffId}`);
      try {
        await rename(work, final);
      } catch (err) {
        // another process unpacked it meanwhile: theirs is as good as ours
        if (!(await exists(path.join(final, 'diff')))) throw err;
        await rm(work, { recursive: true, force: true });
        return false;
      }
      return true;
    } catch (err) {
      source?.destroy();
      await rm(work, { recursive: true, force: true });
      if (err instanceof LayerError) throw err;
      throw new LayerError(digest, '', `cannot unpack: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  // Resolves the parent directory of `rel` inside `root`, following symlinks that stay inside and
  // refusing any that lead outside. Returns the real parent path (created as directories if missing).
  private async safeParent(layer: string, root: string, rel: string, entry: string): Promise<string> {
    const parts = rel.split('/');
    parts.pop();
    let cur = root;
    let hops = 0;
    const queue = [...parts];
    while (queue.length > 0) {
      const part = queue.shift()!;
      const next = path.join(cur, part);
      let st;
      try {
        st = await lstat(next);
      } catch {
        await mkdir(next, { mode: 0o755 });
        cur = next;
        continue;
      }
      if (st.isSymbolicLink()) {
        if (++hops > 40) throw new LayerError(layer, entry, 'too many symlinks in path');
        const target = await readlink(next);
        const resolved = path.isAbsolute(target) ? path.normalize(target) : path.resolve(cur, target);
        if (!within(root, resolved)) throw new LayerError(layer, entry, `path resolves through symlink ${path.relative(root, next)} -> ${target}, outside the layer`);
        // restart from the root with the resolved path plus what remains
        queue.unshift(...path.relative(root, resolved).split('/').filter((x) => x !== ''));
        cur = root;
        continue;
      }
      if (!st.isDirectory()) throw new LayerError(layer, entry, `parent ${path.relative(root, next)} is not a directory`);
      cur = next;
    }
    return cur;
  }

  private static clean(layer: string, p: string, entry: string): string {
    if (p.startsWith('/')) throw new LayerError(layer, entry, 'absolute path refused');
    const parts = p.split('/').filter((x) => x !== '' && x !== '.');
    if (parts.includes('..')) throw new LayerError(layer, entry, '".." path component refused');
    return parts.join('/');
  }

  // Applies one tar entry; returns the path of a directory whose mode is set at the end, else null.
  private async applyEntry(layer: string, root: string, e: TarEntry): Promise<string | null> {
    const rel = ImageStore.clean(layer, e.path, e.path);
    if (rel === '') return null; // the layer root itself
    const parent = await this.safeParent(layer, root, rel, e.path);
    const base = path.basename(rel);
    if (base === '.wh..wh..opq') {
      await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', parent]);
      return null;
    }
    if (base.startsWith('.wh.')) {
      const target = path.join(parent, base.slice(4));
      await rm(target, { recursive: true, force: true });
      await run('mknod', [target, 'c', '0', '0']);
      await lchown(target, e.uid, e.gid);
      return null;
    }
    const target = path.join(parent, base);
    const old = await lstat(target).catch(() => null);
    if (old !== null && !(old.isDirectory() && e.type === 'directory')) await rm(target, { recursive: true, force: true });
    switch (e.type) {
      case 'directory':
        if (old === null || !old.isDirectory()) await mkdir(target, { mode: 0o700 });
        await lchown(target, e.uid, e.gid);
        return target;
      case 'file':
        await writeFile(target, e.content, { flag: 'wx', mode: 0o600 });
        break;
      case 'symlink':
        await symlink(e.linkpath, target);
        break;
      case 'hardlink': {
        const lrel = ImageStore.clean(layer, e.linkpath, e.path);
        const lparent = await this.safeParent(layer, root, lrel, e.path);
        const src = path.join(lparent, path.basename(lrel));
        const st = await lstat(src).catch(() => null);
        if (st === null) throw new LayerError(layer, e.path, `hard link target ${JSON.stringify(e.linkpath)} is not in the layer`);
        await link(src, target);
        return null; // the target's metadata is the link's
      }
      case 'chardev':
      case 'blockdev':
      case 'fifo':
        await run('mknod', [target, e.type === 'fifo' ? 'p' : e.type === 'chardev' ? 'c' : 'b', ...(e.type === 'fifo' ? [] : [String(e.devmajor), String(e.devminor)])]);
        break;
    }
    await lchown(target, e.uid, e.gid);
    if (e.type !== 'symlink') await chmod(target, e.mode);
    await lutimes(target, e.mtime, e.mtime);
    return null;
  }

  /**
   * Mounts an overlay of `image`'s unpacked layers at `target`: the layers are the lower
   * directories (top layer first, as overlayfs wants them), `upperDir` and `workDir` (same
   * filesystem, owned by the container, made if absent) take its writes. When the joined lowerdir
   * option would not fit in one page, short symlinks `l/<id>` to the layers stand in for the long
   * paths and the mount is made from the store root. Returns the mount point. This holds no
   * reference to the layers: containers use createRootfs(), which does.
   */
  async mountRootfs(image: ImageRecord, target: string, upperDir: string, workDir: string, opts: { knownUnmounted?: boolean } = {}): Promise<string> {
    let mountPoint = path.resolve(target);
    const lowers: string[] = [];
    for (const l of [...image.layers].reverse()) {
      const dir = this.layerPath(l.diffId);
      if (!existsSync(dir)) throw new RootfsError(mountPoint, `layer ${l.diffId} of image ${image.reference} is not in the store (pull the image again)`);
      lowers.push(dir);
    }
    const empty = path.join(this.root, 'empty');
    if (lowers.length === 0) {
      // An image without layers (FROM scratch with nothing added): overlayfs needs one lower directory.
      await mkdir(empty, { recursive: true });
      lowers.push(empty);
    }
    const plan = planOverlay({
      root: this.root,
      lowers,
      // the first 16 hex digits of the diff id: 2^64 ids, and 19 bytes of options per layer
      shorts: lowers.map((l) => (l === empty ? 'empty' : path.basename(path.dirname(l)).slice(0, 16))),
      upperDir: path.resolve(upperDir),
      workDir: path.resolve(workDir),
    });
    // Synchronous calls on the hot path of every container start: see createRootfs.
    for (const d of [mountPoint, upperDir, workDir]) mkdirSync(d, { recursive: true });
    mountPoint = realpathSync(mountPoint); // as /proc/self/mountinfo will name it
    if (opts.knownUnmounted !== true && (await isMountPoint(mountPoint))) throw new RootfsError(mountPoint, 'something is already mounted there');
    for (const link of plan.links) await this.ensureLink(link.name, link.target);
    await mountOverlay(plan, mountPoint, this.mounter);
    return mountPoint;
  }

  /** Unmounts what mountRootfs() mounted at `target` (nothing mounted: nothing to do). */
  async unmountRootfs(target: string): Promise<void> {
    await unmount(path.resolve(target), this.mounter);
  }

  // l/<short> -> ../layers/<hex>/diff. A link already there must point at the same layer.
  private async ensureLink(name: string, target: string): Promise<void> {
    const p = path.join(this.root, name);
    await mkdir(path.dirname(p), { recursive: true });
    try {
      await symlink(target, p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const have = await readlink(p);
      if (have !== target) throw new RootfsError(p, `short link points to ${have}, wanted ${target} (two layers share a short id)`);
    }
  }

  private containerDir(id: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id))
      throw new InvalidArgumentError('container id', `1-128 characters of letters, digits, '_', '.' and '-', not starting with a punctuation mark: ${JSON.stringify(id)}`);
    return path.join(this.root, 'containers', id);
  }

  /**
   * Makes the root filesystem of container `id`: `<root>/containers/<id>/{upper,work}` and an overlay
   * of `image` at `target` (default `<root>/containers/<id>/merged`). The container's record
   * (`rootfs.json`) is written before the mount and names the image's layers, so gc() keeps them
   * while the container exists, even after its image record is removed. Calling it again for a
   * container that exists (e.g. after a reboot unmounted it) mounts it again if needed; for another
   * image it is an IllegalStateError.
   */
  async createRootfs(id: string, image: ImageRecord, target?: string): Promise<RootfsRecord> {
    const dir = this.containerDir(id);
    const record: RootfsRecord = {
      id,
      image: image.reference,
      layers: image.layers.map((l) => l.diffId),
      target: path.resolve(target ?? path.join(dir, 'merged')),
      upperDir: path.join(dir, 'upper'),
      workDir: path.join(dir, 'work'),
    };
    // The record's small files with the synchronous calls: this runs for every container a
    // worker starts, and fs/promises costs several thread-pool round trips per call.
    const created = await this.exclusive(() => {
      const old = this.readRootfs(id);
      if (old !== undefined && (old.image !== record.image || old.target !== record.target || old.layers.join() !== record.layers.join()))
        throw new IllegalStateError(`container ${id} already has a root filesystem of ${old.image} at ${old.target}`);
      if (old === undefined) {
        mkdirSync(dir, { recursive: true });
        const p = path.join(dir, 'rootfs.json');
        writeFileSync(`${p}.tmp`, JSON.stringify(record, null, 2));
        renameSync(`${p}.tmp`, p);
      }
      return Promise.resolve(old === undefined);
    });
    // A record made just now, with its target in the container's directory, has nothing mounted
    // there (a record is written before its mount and removed after its unmount): no need to read
    // the mount table, which grows with every container.
    const fresh = created && within(dir, record.target);
    if (fresh || !(await isMountPoint(record.target))) {
      try {
        await this.mountRootfs(image, record.target, record.upperDir, record.workDir, { knownUnmounted: fresh });
      } catch (err) {
        if (created) await rm(dir, { recursive: true, force: true }); // a new container: leave no record behind
        throw err;
      }
    }
    return record;
  }

  getRootfs(id: string): Promise<RootfsRecord | undefined> {
    try {
      return Promise.resolve(this.readRootfs(id));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private readRootfs(id: string): RootfsRecord | undefined {
    const p = path.join(this.containerDir(id), 'rootfs.json');
    let text: string;
    try {
      text = readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
    try {
      return JSON.parse(text) as RootfsRecord;
    } catch (err) {
      throw new CorruptFileError(p, `not JSON: ${(err as Error).message}`);
    }
  }

  async listRootfs(): Promise<RootfsRecord[]> {
    let ids: string[];
    try {
      ids = await readdir(path.join(this.root, 'containers'));
    } catch {
      return [];
    }
    const out: RootfsRecord[] = [];
    for (const id of ids.sort()) {
      const r = await this.getRootfs(id);
      if (r !== undefined) out.push(r);
    }
    return out;
  }

  /**
   * Unmounts container `id`'s root filesystem and removes its upper and work directories, then its
   * record, which releases its layers (gc() may take them once no image names them). Returns false
   * when there was no such container. An unmount that fails (busy) leaves everything in place.
   */
  async removeRootfs(id: string): Promise<boolean> {
    const dir = this.containerDir(id);
    const r = await this.getRootfs(id);
    if (r === undefined && !(await exists(dir))) return false;
    if (r !== undefined) await unmount(r.target, this.mounter);
    await unmount(path.join(dir, 'merged'), this.mounter);
    await this.exclusive(async () => {
      // The record goes last, so that a crash half-way leaves a container that can be removed again.
      for (const d of ['merged', 'upper', 'work']) await rm(path.join(dir, d), { recursive: true, force: true });
      await rm(dir, { recursive: true, force: true });
    });
    // A target outside the container's directory was made by mountRootfs: remove it if empty.
    if (r !== undefined && !within(dir, r.target)) await rmdir(r.target).catch(() => undefined);
    return true;
  }

  // Serializes the steps that read or write references (createRootfs's record, gc) in this process.
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.serial.run(fn);
  }
}
