// A small tar reader and writer for image layers: ustar headers, pax extended headers ('x', 'g')
// and GNU long names ('L', 'K'). The reader is an async generator over a byte stream; each entry's
// content is read into memory (layers are unpacked one entry at a time).

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'chardev' | 'blockdev' | 'directory' | 'fifo';

export interface TarEntry {
  type: TarEntryType;
  /** As written in the archive (not normalized). */
  path: string;
  /** Target of a symlink or hard link. */
  linkpath: string;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  devmajor: number;
  devminor: number;
  /** pax SCHILY.xattr.* records. */
  xattrs: Record<string, string>;
  /** Content of a regular file; empty for everything else. */
  content: Buffer;
}

/** A malformed archive; `offset` is the byte offset of the header at fault. */
export class TarFormatError extends Error {
  constructor(
    readonly problem: string,
    readonly offset: number,
  ) {
    super(`tar at offset ${offset}: ${problem}`);
    this.name = 'TarFormatError';
  }
}

class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  offset = 0;
  constructor(private readonly it: AsyncIterator<Buffer | Uint8Array>) {}

  /** Exactly n bytes, or null at a clean end of stream; throws on a short read. */
  async read(n: number): Promise<Buffer | null> {
    while (this.buffered < n && !this.done) {
      const r = await this.it.next();
      if (r.done === true) this.done = true;
      else {
        const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
        this.chunks.push(b);
        this.buffered += b.length;
      }
    }
    if (this.buffered < n) {
      if (this.buffered === 0) return null;
      throw new TarFormatError(`truncated archive (wanted ${n} bytes, have ${this.buffered})`, this.offset);
    }
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    this.offset += n;
    return Buffer.from(out);
  }

  async drain(): Promise<void> {
    for (;;) {
      const r = await this.it.next();
      if (r.done === true) return;
    }
  }
}

function cstr(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const z = s.indexOf(0);
  return (z < 0 ? s : s.subarray(0, z)).toString('utf8');
}

function num(b: Buffer, start: number, len: number, at: number): number {
  const s = b.subarray(start, start + len);
  if (s.length > 0 && (s[0]! & 0x80) !== 0) {
    // base-256 (GNU): big-endian, first byte's top bit set
    let v = s[0]! & 0x7f;
    for (let i = 1; i < s.length; i++) v = v * 256 + s[i]!;
    return v;
  }
  const t = cstr(b, start, len).trim();
  if (t === '') return 0;
  if (!/^[0-7]+$/.test(t)) throw new TarFormatError(`bad octal number ${JSON.stringify(t)}`, at);
  return parseInt(t, 8);
}

function parsePax(data: Buffer, at: number): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(data.subarray(i, sp).toString('ascii'), 10);
    if (!Number.isFinite(len) || len <= 0 || i + len > data.length) throw new TarFormatError('bad pax record', at);
    const rec = data.subarray(sp + 1, i + len - 1).toString('utf8'); // without the trailing newline
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'chardev',
  '4': 'blockdev',
  '5': 'directory',
  '6': 'fifo',
};

/** Reads the entries of a tar stream in order. */
export async function* readTar(source: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<TarEntry> {
  const r = new ByteReader(source[Symbol.asyncIterator]());
  let global = new Map<string, string>();
  let pax: Map<string, string> | null = null;
  let longName: string | null = null;
  let longLink: string | null = null;
  for (;;) {
    const at = r.offset;
    const h = await r.read(512);
    if (h === null) return; // end without the two zero blocks: accepted
    if (h.every((x) => x === 0)) {
      await r.drain();
      return;
    }
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
    if (num(h, 148, 8, at) !== sum) throw new TarFormatError('header checksum mismatch', at);
    const flag = String.fromCharCode(h[156]!);
    const attrs = new Map([...global, ...(pax ?? [])]);
    const sizeAttr = attrs.get('size');
    const size = sizeAttr !== undefined ? Number(sizeAttr) : num(h, 124, 12, at);
    const padded = Math.ceil(size / 512) * 512;
    const body = padded > 0 ? await r.read(padded) : Buffer.alloc(0);
    if (body === null) throw new TarFormatError('truncated entry', at);
    const content = body.subarray(0, size);
    if (flag === 'x' || flag === 'g') {
      const p = parsePax(content, at);
      if (flag === 'g') global = new Map([...global, ...p]);
      else pax = p;
      continue;
    }
    if (flag === 'L' || flag === 'K') {
      const s = cstr(content, 0, content.length);
      if (flag === 'L') longName = s;
      else longLink = s;
      continue;
    }
    const type = TYPES[flag];
    if (type === undefined) throw new TarFormatError(`unsupported entry type ${JSON.stringify(flag)}`, at);
    const magic = cstr(h, 257, 6);
    const prefix = magic.startsWith('ustar') ? cstr(h, 345, 155) : '';
    let path = cstr(h, 0, 100);
    if (prefix !== '') path = `${prefix}/${path}`;
    path = attrs.get('path') ?? longName ?? path;
    const linkpath = attrs.get('linkpath') ?? longLink ?? cstr(h, 157, 100);
    const xattrs: Record<string, string> = {};
    for (const [k, v] of attrs) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice('SCHILY.xattr.'.length)] = v;
    const num1 = (key: string, start: number, len: number): number => {
      const v = attrs.get(key);
      return v !== undefined ? Math.floor(Number(v)) : num(h, start, len, at);
    };
    yield {
      type: type === 'file' && path.endsWith('/') ? 'directory' : type,
      path,
      linkpath,
      mode: num(h, 100, 8, at) & 0o7777,
      uid: num1('uid', 108, 8),
      gid: num1('gid', 116, 8),
      mtime: num1('mtime', 136, 12),
      devmajor: num(h, 329, 8, at),
      devminor: num(h, 337, 8, at),
      xattrs,
      content: type === 'file' ? content : Buffer.alloc(0),
    };
    pax = null;
    longName = null;
    longLink = null;
  }
}

/** What `writeTar` needs of an entry; missing fields take ordinary defaults. */
export interface TarInput {
  type: TarEntryType;
  path: string;
  linkpath?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
  content?: Buffer;
}

const FLAGS: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  chardev: '3',
  blockdev: '4',
  directory: '5',
  fifo: '6',
};

function header(name: string, flag: string, size: number, e: Partial<TarInput>, link: string): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, start: number, len: number): void => {
    Buffer.from(s, 'utf8').copy(h, start, 0, len);
  };
  const oct = (n: number, start: number, len: number): void => put(n.toString(8).padStart(len - 1, '0'), start, len - 1);
  put(name, 0, 100);
  oct(e.mode ?? (flag === '5' ? 0o755 : 0o644), 100, 8);
  oct(e.uid ?? 0, 108, 8);
  oct(e.gid ?? 0, 116, 8);
  oct(size, 124, 12);
  oct(e.mtime ?? 0, 136, 12);
  h.fill(32, 148, 156);
  h.write(flag, 156, 'latin1');
  put(link, 157, 100);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  oct(e.devmajor ?? 0, 329, 8);
  oct(e.devminor ?? 0, 337, 8);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

function pad(b: Buffer): Buffer[] {
  const rest = b.length % 512;
  return rest === 0 ? [b] : [b, Buffer.alloc(512 - rest)];
}

/** Writes a tar archive (ustar, with a pax header for names or link targets over 100 bytes). */
export function writeTar(entries: readonly TarInput[]): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const link = e.linkpath ?? '';
    const long = Buffer.byteLength(e.path) > 100 || Buffer.byteLength(link) > 100;
    if (long) {
      let recs = '';
      for (const [k, v] of [
        ['path', e.path],
        ['linkpath', link],
      ] as const) {
        if (v === '') continue;
        const body = ` ${k}=${v}\n`;
        let len = Buffer.byteLength(body);
        len += String(len).length;
        if (String(len).length !== String(len - String(len).length).length) len += 1;
        recs += `${len}${body}`;
      }
      const data = Buffer.from(recs, 'utf8');
      out.push(header('PaxHeader', 'x', data.length, {}, ''), ...pad(data));
    }
    const content = e.type === 'file' ? (e.content ?? Buffer.alloc(0)) : Buffer.alloc(0);
    out.push(header(e.path.slice(0, 100), FLAGS[e.type], content.length, e, link.slice(0, 100)));
    if (content.length > 0) out.push(...pad(content));
  }
  out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}
