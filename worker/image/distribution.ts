// An OCI distribution client: manifests (OCI and Docker schema 2, indexes and manifest lists with
// platform selection), blobs verified by sha256 while they stream, retry with backoff and resume of
// an interrupted download (HTTP Range from the bytes already on disk), auth (basic, and bearer tokens
// anonymous, with basic credentials or with an identity token), and push
// (monolithic blob upload, manifest PUT). Plain HTTP or HTTPS, by the registry URL's scheme.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { setTimeout as sleep } from 'node:timers/promises';
import { TswarmError } from '../../common/errors.js';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

const ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface ImageManifest {
  schemaVersion: number;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
}

export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  config?: {
    Cmd?: string[];
    Entrypoint?: string[];
    Env?: string[];
    WorkingDir?: string;
    User?: string;
    StopSignal?: string;
  };
  rootfs: { type: string; diff_ids: string[] };
}

/** A registry request failed: names the registry, repository, reference or digest and the HTTP status. */
export class RegistryError extends TswarmError {
  constructor(
    readonly registry: string,
    readonly repository: string,
    readonly reference: string,
    readonly status: number | undefined,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(
      `registry ${registry}, repository ${repository}, ${reference}: ${problem}${status === undefined ? '' : ` (HTTP ${status})`}`,
      options,
    );
  }
}

export function sha256Digest(data: Buffer | Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The hex part of a sha256 digest; throws on anything else (digests become file names). */
export function digestHex(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (m === null) throw new TswarmError(`unsupported or malformed digest ${JSON.stringify(digest)}`);
  return m[1]!;
}

/** Hashes a file's content. */
export async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/** The platform of this process, in OCI terms. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' };
  return { os: 'linux', architecture: arch[process.arch] ?? process.arch };
}

export interface RegistryClientOptions {
  /** e.g. http://127.0.0.1:5000 */
  url: string;
  /** Basic credentials, sent to the token realm (bearer) or to the registry (basic challenge). */
  username?: string;
  password?: string;
  /**
   * An identity token (an OAuth2 refresh token, as `docker login` keeps for some registries):
   * exchanged at the token realm with a POST (grant_type=refresh_token), as the docker CLI and
   * containerd do. Takes precedence over username and password for bearer auth.
   */
  identityToken?: string;
  /** Attempts per request on network errors and 5xx (default 4). */
  attempts?: number;
  /** First backoff delay in ms, doubled each retry (default 100). */
  backoffMs?: number;
  /** A request whose response (headers, or the next body chunk of a download) takes longer fails (default 30000). */
  idleTimeoutMs?: number;
  /** Called for each HTTP request made (method, URL, request headers), for tests and logs. */
  onRequest?: (method: string, url: string, headers: Record<string, string>) => void;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

function parseChallenge(h: string | null): Challenge | null {
  if (h === null) return null;
  const m = /^\s*(\w+)\s*(.*)$/.exec(h);
  if (m === null) return null;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))/g;
  for (let p = re.exec(m[2]!); p !== null; p = re.exec(m[2]!)) params[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? '';
  return { scheme: m[1]!.toLowerCase(), params };
}

interface Req {
  method: string;
  path: string;
  repo: string;
  ref: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Statuses that are answers rather than errors (default: 2xx). */
  ok?: (status: number) => boolean;
  /** For a download whose body the caller watches (see downloadBlob). */
  signal?: AbortSignal;
}

export class RegistryClient {
  readonly url: string;
  private readonly host: string;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly idleMs: number;
  private readonly tokens = new Map<string, string>();
  private basic: string | null = null;

  constructor(private readonly opts: RegistryClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.host = new URL(this.url).host;
    this.attempts = opts.attempts ?? 4;
    this.backoffMs = opts.backoffMs ?? 100;
    this.idleMs = opts.idleTimeoutMs ?? 30_000;
  }

  /** GET a manifest or index by tag or digest; returns its bytes, media type and digest (verified when ref is a digest). */
  async getManifest(repo: string, ref: string): Promise<{ mediaType: string; digest: string; bytes: Buffer }> {
    const res = await this.request({ method: 'GET', path: `/v2/${repo}/manifests/${ref}`, repo, ref, headers: { accept: ACCEPT } });
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = sha256Digest(bytes);
    if (ref.startsWith('sha256:') && digest !== ref)
      throw new RegistryError(this.host, repo, ref, res.status, `manifest digest mismatch: got ${digest}`);
    let mediaType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    try {
      const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: string };
      if (typeof parsed.mediaType === 'string') mediaType = parsed.mediaType;
    } catch (cause) {
      throw new RegistryError(this.host, repo, ref, res.status, 'manifest is not JSON', { cause });
    }
    return { mediaType, digest, bytes };
  }

  /**
   * Resolves a reference to an image manifest: an index or manifest list is narrowed to the entry
   * for `platform` (os and architecture; variant too when given).
   */
  async resolveManifest(
    repo: string,
    ref: string,
    platform: Platform = hostPlatform(),
  ): Promise<{ digest: string; manifest: ImageManifest; bytes: Buffer; mediaType: string }> {
    let m = await this.getManifest(repo, ref);
    if (m.mediaType === MEDIA.ociIndex || m.mediaType === MEDIA.dockerList) {
      const index = JSON.parse(m.bytes.toString('utf8')) as ImageIndex;
      const pick = index.manifests.find(
        (d) =>
          d.platform !== undefined &&
          d.platform.os === platform.os &&
          d.platform.architecture === platform.architecture &&
          (platform.variant === undefined || d.platform.variant === platform.variant),
      );
      if (pick === undefined) {
        const have = index.manifests.map((d) => (d.platform ? [d.platform.os, d.platform.architecture, d.platform.variant].filter(Boolean).join('/') : '?'));
        const want = [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
        throw new RegistryError(this.host, repo, ref, undefined, `no manifest for platform ${want} in index (has ${have.join(', ') || 'none'})`);
      }
      m = await this.getManifest(repo, pick.digest);
    }
    if (m.mediaType !== MEDIA.ociManifest && m.mediaType !== MEDIA.dockerManifest)
      throw new RegistryError(this.host, repo, ref, undefined, `unsupported manifest media type ${JSON.stringify(m.mediaType)}`);
    const manifest = JSON.parse(m.bytes.toString('utf8')) as ImageManifest;
    return { digest: m.digest, manifest, bytes: m.bytes, mediaType: m.mediaType };
  }

  /** GET a small blob (a config) into memory, verified. */
  async getBlob(repo: string, digest: string): Promise<Buffer> {
    digestHex(digest);
    const res = await this.request({ method: 'GET', path: `/v2/${repo}/blobs/${digest}`, repo, ref: digest });
    const bytes = Buffer.from(await res.arrayBuffer());
    const got = sha256Digest(bytes);
    if (got !== digest) throw new RegistryError(this.host, repo, digest, res.status, `blob digest mismatch: got ${got}`);
    return bytes;
  }

  /**
   * Downloads a blob to `dest`, verified by sha256 while it streams. Bytes go to `dest + ".partial"`
   * first; an interrupted download is retried with backoff and resumed with a Range request from
   * the bytes already there (a server that ignores Range sends it whole, and we start over).
   * On a digest mismatch the partial file is removed and the download starts once more from zero.
   */
  async downloadBlob(repo: string, digest: string, dest: string): Promise<{ bytes: number; resumedFrom: number[] }> {
    digestHex(digest);
    const partial = `${dest}.partial`;
    const resumedFrom: number[] = [];
    let lastError: unknown;
    let mismatches = 0;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      if (attempt > 0) await sleep(this.backoffMs * 2 ** (attempt - 1));
      let have = 0;
      try {
        have = (await stat(partial)).size;
      } catch {
        have = 0;
      }
      try {
        // Aborted when no byte arrives for idleMs (a stalled connection counts as interrupted).
        const ac = new AbortController();
        let timer = setTimeout(() => ac.abort(new Error(`no data for ${this.idleMs} ms`)), this.idleMs);
        const touch = (): void => {
          clearTimeout(timer);
          timer = setTimeout(() => ac.abort(new Error(`no data for ${this.idleMs} ms`)), this.idleMs);
        };
        const headers: Record<string, string> = {};
        if (have > 0) {
          headers.range = `bytes=${have}-`;
          resumedFrom.push(have);
        }
        const res = await this.request({
          method: 'GET',
          path: `/v2/${repo}/blobs/${digest}`,
          repo,
          ref: digest,
          headers,
          ok: (s) => s === 200 || s === 206 || (s === 416 && have > 0),
          signal: ac.signal,
        }).catch((err: unknown) => {
          clearTimeout(timer);
          throw err;
        });
        touch();
        const hash = createHash('sha256');
        let flags = 'w';
        if (res.status === 206) {
          const range = res.headers.get('content-range') ?? '';
          if (have === 0 || !range.startsWith(`bytes ${have}-`)) {
            // not the part we asked for: start over from zero
            clearTimeout(timer);
            await res.body?.cancel();
            await rm(partial, { force: true });
            throw new Error(`unexpected partial content ${JSON.stringify(range)} for a request from byte ${have}`);
          }
          for await (const chunk of createReadStream(partial)) hash.update(chunk as Buffer);
          touch();
          flags = 'a';
        } else if (res.status === 416) {
          // Range beyond the end: what we have may already be the whole blob.
          await res.body?.cancel();
          for await (const chunk of createReadStream(partial)) hash.update(chunk as Buffer);
          flags = '';
        }
        if (flags !== '') {
          if (res.body === null) throw new RegistryError(this.host, repo, digest, res.status, 'empty response body');
          const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
          body.on('data', (c: Buffer) => {
            touch();
            hash.update(c);
          });
          try {
            await pipeline(body, createWriteStream(partial, { flags }));
          } finally {
            clearTimeout(timer);
          }
        }
        clearTimeout(timer);
        const got = `sha256:${hash.digest('hex')}`;
        if (got !== digest) {
          await rm(partial, { force: true });
          mismatches++;
          const err = new RegistryError(this.host, repo, digest, res.status, `blob digest mismatch: got ${got}`);
          if (mismatches > 1) throw err;
          lastError = err;
          continue;
        }
        const fh = await open(partial, 'r');
        await fh.sync();
        await fh.close();
        await rename(partial, dest);
        return { bytes: (await stat(dest)).size, resumedFrom };
      } catch (err) {
        if (err instanceof RegistryError && (err.status === undefined || err.status < 500) && !err.problem.startsWith('network'))
          throw err;
        lastError = err;
      }
    }
    if (lastError instanceof RegistryError) throw lastError;
    throw new RegistryError(this.host, repo, digest, undefined, `download failed after ${this.attempts} attempts: ${errText(lastError)}`, {
      cause: lastError,
    });
  }

  /** Uploads a blob unless the registry has it: POST to start, PUT with the digest (monolithic). */
  async pushBlob(repo: string, digest: string, data: Buffer): Promise<'exists' | 'uploaded'> {
    digestHex(digest);
    const head = await this.request({ method: 'HEAD', path: `/v2/${repo}/blobs/${digest}`, repo, ref: digest, ok: (s) => s === 200 || s === 404 });
    if (head.status === 200) return 'exists';
    const start = await this.request({ method: 'POST', path: `/v2/${repo}/blobs/uploads/`, repo, ref: digest, ok: (s) => s === 202 });
    const loc = start.headers.get('location');
    if (loc === null) throw new RegistryError(this.host, repo, digest, start.status, 'upload started without a Location');
    const u = new URL(loc, this.url);
    u.searchParams.set('digest', digest);
    await this.request({
      method: 'PUT',
      path: u.pathname + u.search,
      repo,
      ref: digest,
      headers: { 'content-type': 'application/octet-stream' },
      body: data,
      ok: (s) => s === 201,
    });
    return 'uploaded';
  }

  /** PUTs a manifest under a tag (or digest); returns its digest. */
  async pushManifest(repo: string, ref: string, mediaType: string, bytes: Buffer): Promise<string> {
    const res = await this.request({
      method: 'PUT',
      path: `/v2/${repo}/manifests/${ref}`,
      repo,
      ref,
      headers: { 'content-type': mediaType },
      body: bytes,
      ok: (s) => s === 201,
    });
    return res.headers.get('docker-content-digest') ?? sha256Digest(bytes);
  }

  // One request with auth (a 401 challenge fetches a token or uses basic credentials, then retries
  // once) and retry with backoff on network errors and 5xx.
  private async request(r: Req): Promise<Response> {
    const ok = r.ok ?? ((s: number) => s >= 200 && s < 300);
    let lastError: unknown;
    let authTried = false;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      if (attempt > 0) await sleep(this.backoffMs * 2 ** (attempt - 1));
      const url = this.url + r.path;
      const headers: Record<string, string> = { ...(r.headers ?? {}) };
      const auth = this.authFor(r.repo);
      if (auth !== null) headers.authorization = auth;
      this.opts.onRequest?.(r.method, url, headers);
      let res: Response;
      try {
        const signal = r.signal ?? AbortSignal.timeout(this.idleMs);
        res = await fetch(url, { method: r.method, headers, body: r.body, redirect: 'follow', signal });
      } catch (err) {
        lastError = new RegistryError(this.host, r.repo, r.ref, undefined, `network error on ${r.method}: ${errText(err)}`, { cause: err });
        if (r.signal?.aborted === true) break; // the caller gave up (a stalled download); it retries
        continue;
      }
      if (res.status === 401 && !authTried) {
        authTried = true;
        const challenge = parseChallenge(res.headers.get('www-authenticate'));
        // Nothing to answer a basic challenge with: the registry's refusal is the answer.
        if (challenge?.scheme === 'basic' && this.opts.username === undefined) {
          const detail = await errorDetail(res);
          throw new RegistryError(this.host, r.repo, r.ref, 401, `${r.method} failed${detail || ': unauthorized'}${this.opts.identityToken === undefined ? '' : ' (the registry asks for basic auth, which an identity token cannot answer)'}`);
        }
        await res.body?.cancel();
        await this.authenticate(r, challenge);
        attempt--; // the auth round is not a failed attempt
        continue;
      }
      if (ok(res.status)) return res;
      const detail = await errorDetail(res);
      const err = new RegistryError(this.host, r.repo, r.ref, res.status, `${r.method} failed${detail}`);
      if (res.status >= 500 || res.status === 429) {
        lastError = err;
        continue;
      }
      throw err;
    }
    throw lastError instanceof Error ? lastError : new RegistryError(this.host, r.repo, r.ref, undefined, `${r.method} failed`);
  }

  private authFor(repo: string): string | null {
    const t = this.tokens.get(repo);
    if (t !== undefined) return `Bearer ${t}`;
    return this.basic;
  }

  /**
   * Answers a 401 challenge. `Basic`: the configured user and password, on every later request.
   * `Bearer`: a token from the realm for the repository's scope: with an identity token, Docker's
   * OAuth2 POST (grant_type=refresh_token); else a GET, with basic credentials when configured
   * (anonymous otherwise: the token server decides what an anonymous client may do).
   */
  private async authenticate(r: Req, ch: Challenge | null): Promise<void> {
    const creds =
      this.opts.username !== undefined ? Buffer.from(`${this.opts.username}:${this.opts.password ?? ''}`).toString('base64') : null;
    if (ch?.scheme === 'basic') {
      this.basic = `Basic ${creds}`;
      return;
    }
    if (ch?.scheme !== 'bearer' || ch.params.realm === undefined)
      throw new RegistryError(this.host, r.repo, r.ref, 401, 'unauthorized, and no usable Bearer challenge');
    let realm: URL;
    try {
      realm = new URL(ch.params.realm);
    } catch (cause) {
      throw new RegistryError(this.host, r.repo, r.ref, 401, `the Bearer challenge's realm ${JSON.stringify(ch.params.realm)} is not a URL`, { cause });
    }
    // Ask for push as well when the request writes.
    const write = r.method !== 'GET' && r.method !== 'HEAD';
    const scope = ch.params.scope ?? `repository:${r.repo}:${write ? 'pull,push' : 'pull'}`;
    let res: Response;
    try {
      if (this.opts.identityToken !== undefined) {
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.opts.identityToken, client_id: 'tswarm', scope });
        if (ch.params.service !== undefined) form.set('service', ch.params.service);
        const headers = { 'content-type': 'application/x-www-form-urlencoded' };
        this.opts.onRequest?.('POST', realm.toString(), headers);
        res = await fetch(realm, { method: 'POST', headers, body: form.toString(), signal: AbortSignal.timeout(this.idleMs) });
      } else {
        const u = new URL(realm);
        if (ch.params.service !== undefined) u.searchParams.set('service', ch.params.service);
        u.searchParams.set('scope', scope);
        const headers: Record<string, string> = {};
        if (creds !== null) headers.authorization = `Basic ${creds}`;
        this.opts.onRequest?.('GET', u.toString(), headers);
        res = await fetch(u, { headers, signal: AbortSignal.timeout(this.idleMs) });
      }
    } catch (err) {
      throw new RegistryError(this.host, r.repo, r.ref, undefined, `token request to ${realm.origin} failed: ${errText(err)}`, { cause: err });
    }
    if (res.status !== 200) throw new RegistryError(this.host, r.repo, r.ref, res.status, `token request to ${realm.origin} refused${await errorDetail(res)}`);
    const body = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (typeof token !== 'string' || token === '') throw new RegistryError(this.host, r.repo, r.ref, res.status, `token response from ${realm.origin} has no token`);
    this.tokens.set(r.repo, token);
  }
}

/**
 * The registry's reason, as the docker CLI shows it: `: unauthorized: authentication required`
 * (the error code in lower case with spaces, then its message); a token server's `details`
 * (Docker Hub's form); nothing for a body that is neither.
 */
async function errorDetail(res: Response): Promise<string> {
  try {
    const text = await res.text();
    const j = JSON.parse(text) as { errors?: { code?: string; message?: string }[]; details?: string };
    const e = j.errors?.[0];
    if (e !== undefined) return `: ${[e.code?.toLowerCase().replace(/_/g, ' '), e.message].filter(Boolean).join(': ')}`;
    if (typeof j.details === 'string' && j.details !== '') return `: ${j.details}`;
  } catch {
    // not a registry error body
  }
  return '';
}

function errText(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
    return err.message + cause;
  }
  return String(err);
}
