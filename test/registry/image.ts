// Builds small OCI images for tests and pushes them with our distribution client: a busybox layer
// from Debian's busybox-static (/bin/busybox plus applet symlinks), and layers from tar entries.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { REPO } from '../util/dist.js';
import { MEDIA, type ImageConfig, type RegistryClient, sha256Digest, hostPlatform } from '../../worker/image/distribution.js';
import { writeTar, type TarInput } from '../../worker/image/tar.js';

export const BUSYBOX = '/bin/busybox';
export const BUSYBOX_APPLETS = ['sh', 'sleep', 'httpd', 'nc', 'wget', 'nslookup', 'ping', 'true', 'echo', 'cat', 'id', 'hostname', 'ls'];

export function busyboxAvailable(): boolean {
  return existsSync(BUSYBOX);
}

export interface Layer {
  /** Uncompressed tar. */
  tar: Buffer;
  /** What is pushed. */
  blob: Buffer;
  mediaType: string;
  digest: string;
  diffId: string;
}

export function makeLayer(entries: readonly TarInput[], compression: 'gzip' | 'none' = 'gzip'): Layer {
  const tar = writeTar(entries);
  const blob = compression === 'gzip' ? gzipSync(tar) : tar;
  return {
    tar,
    blob,
    mediaType: compression === 'gzip' ? MEDIA.ociLayerGzip : MEDIA.ociLayerTar,
    digest: sha256Digest(blob),
    diffId: sha256Digest(tar),
  };
}

/** A layer from a pre-compressed blob (e.g. zstd made by the zstd tool). */
export function layerFromBlob(tar: Buffer, blob: Buffer, mediaType: string): Layer {
  return { tar, blob, mediaType, digest: sha256Digest(blob), diffId: sha256Digest(tar) };
}

/** The busybox base layer: bin/busybox (mode 0755, from Debian's busybox-static) and applet symlinks. */
export function busyboxLayer(): Layer {
  const bin = readFileSync(BUSYBOX);
  const mode = statSync(BUSYBOX).mode & 0o7777;
  const entries: TarInput[] = [
    { type: 'directory', path: 'bin/', mode: 0o755 },
    { type: 'file', path: 'bin/busybox', mode, content: bin },
    ...BUSYBOX_APPLETS.map((a): TarInput => ({ type: 'symlink', path: `bin/${a}`, linkpath: 'busybox', mode: 0o777 })),
    { type: 'directory', path: 'etc/', mode: 0o755 },
    { type: 'file', path: 'etc/passwd', content: Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n') },
    { type: 'file', path: 'etc/group', content: Buffer.from('root:x:0:\nnogroup:x:65534:\n') },
    { type: 'directory', path: 'tmp/', mode: 0o1777 },
    { type: 'directory', path: 'root/', mode: 0o700 },
  ];
  return makeLayer(entries);
}

export interface BuiltImage {
  layers: Layer[];
  config: Buffer;
  configDigest: string;
  manifest: Buffer;
  manifestDigest: string;
}

export function buildImage(layers: Layer[], cmd: string[] = ['/bin/sh']): BuiltImage {
  const p = hostPlatform();
  const cfg: ImageConfig = {
    architecture: p.architecture,
    os: p.os,
    config: { Cmd: cmd, Env: ['PATH=/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  };
  const config = Buffer.from(JSON.stringify(cfg));
  const configDigest = sha256Digest(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.blob.length })),
    }),
  );
  return { layers, config, configDigest, manifest, manifestDigest: sha256Digest(manifest) };
}

/** Pushes the blobs, then the manifest under `tag`. */
export async function pushImage(client: RegistryClient, repo: string, tag: string, img: BuiltImage): Promise<string> {
  for (const l of img.layers) await client.pushBlob(repo, l.digest, l.blob);
  await client.pushBlob(repo, img.configDigest, img.config);
  return client.pushManifest(repo, tag, MEDIA.ociManifest, img.manifest);
}

/** Pushes an OCI index over already-pushed manifests (each with its platform). */
export async function pushIndex(
  client: RegistryClient,
  repo: string,
  tag: string,
  entries: { img: BuiltImage; platform: { os: string; architecture: string; variant?: string } }[],
): Promise<string> {
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociIndex,
      manifests: entries.map((e) => ({ mediaType: MEDIA.ociManifest, digest: e.img.manifestDigest, size: e.img.manifest.length, platform: e.platform })),
    }),
  );
  return client.pushManifest(repo, tag, MEDIA.ociIndex, index);
}

// ---------------------------------------------------------------- OCI image layout on disk

/** Writes an image as an OCI image layout (oci-layout, index.json, blobs/sha256/…), replacing `dir` whole. */
export function writeLayout(dir: string, img: BuiltImage, tag: string): void {
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'blobs', 'sha256'), { recursive: true });
  const blob = (digest: string, data: Buffer): void => writeFileSync(join(tmp, 'blobs', 'sha256', digest.slice('sha256:'.length)), data);
  for (const l of img.layers) blob(l.digest, l.blob);
  blob(img.configDigest, img.config);
  blob(img.manifestDigest, img.manifest);
  writeFileSync(join(tmp, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [{ mediaType: MEDIA.ociManifest, digest: img.manifestDigest, size: img.manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  };
  writeFileSync(join(tmp, 'index.json'), JSON.stringify(index));
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, '..'), { recursive: true });
  renameSync(tmp, dir);
}

/** Reads an image layout written by writeLayout (the first manifest of its index), checking every digest. */
export function readLayout(dir: string): BuiltImage {
  const read = (digest: string): Buffer => {
    const data = readFileSync(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)));
    if (sha256Digest(data) !== digest) throw new Error(`${dir}: blob ${digest} does not match its digest`);
    return data;
  };
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifestDigest = index.manifests[0]?.digest;
  if (!manifestDigest) throw new Error(`${dir}/index.json: no manifest`);
  const manifest = read(manifestDigest);
  const m = JSON.parse(manifest.toString()) as { config: { digest: string }; layers: { digest: string; mediaType: string }[] };
  const config = read(m.config.digest);
  const diffIds = (JSON.parse(config.toString()) as ImageConfig).rootfs.diff_ids;
  const layers = m.layers.map((l, i): Layer => ({ tar: l.mediaType === MEDIA.ociLayerGzip ? gunzipSync(read(l.digest)) : read(l.digest), blob: read(l.digest), mediaType: l.mediaType, digest: l.digest, diffId: diffIds[i] ?? '' }));
  return { layers, config, configDigest: m.config.digest, manifest, manifestDigest };
}

/** Where the set-up leaves the busybox image layout (scripts/build-image.ts). */
export const BUSYBOX_LAYOUT = join(REPO, 'build/images/busybox');

/**
 * Pushes the busybox image (one layer, Cmd /bin/sh) as `repo:tag`: the layout the set-up built
 * when it is there, else built here.
 */
export async function pushBusyboxImage(client: RegistryClient, repo = 'library/busybox', tag = 'latest'): Promise<BuiltImage> {
  const img = existsSync(join(BUSYBOX_LAYOUT, 'index.json')) ? readLayout(BUSYBOX_LAYOUT) : buildImage([busyboxLayer()]);
  await pushImage(client, repo, tag, img);
  return img;
}
