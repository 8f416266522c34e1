// Overlay root filesystems: the pure part (building the overlay option string within the kernel's
// one-page limit, reading /proc/self/mountinfo) and the thin shell that mounts and unmounts (Mounter).
//
// The legacy mount(2) call copies its data argument (the option string) into one page, so an
// image with many layers cannot name every layer by its absolute path. As Docker's overlay2 driver
// does, each layer then gets a short symlink `l/<id>` in the store, and the mount is made with the
// store root as the working directory and relative `l/<id>` names in `lowerdir=`.
import { execFile } from 'node:child_process';
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { InvalidArgumentError, TswarmError } from '../../common/errors.js';

const execFileP = promisify(execFile);

/**
 * Mounts and unmounts: resolves when done, else rejects with an error whose `stderr` (or message)
 * says why. The default runs mount(8)/umount(8) with child_process.execFile (a fork of this
 * process); a worker passes its fork server's (worker/exec/spawner.ts), which makes the calls
 * itself, with no process.
 */
export interface Mounter {
  /** mount(2) of `source` at `target` with no flags: absolute paths in `options`. */
  mount(fsType: string, source: string, options: string, target: string): Promise<void>;
  unmount(target: string): Promise<void>;
}

export const execMounter: Mounter = {
  mount: async (fsType, source, options, target) => {
    await execFileP('mount', ['-t', fsType, source, '-o', options, target]);
  },
  unmount: async (target) => {
    await execFileP('umount', [target]);
  },
};

/** The most the option string may take: one page (4 KiB on the platforms we run on), minus its NUL. */
export const MOUNT_OPTIONS_LIMIT = 4095;

/** A mount or unmount that failed: names the mount point and what mount(8)/umount(8) said. */
export class RootfsError extends TswarmError {
  constructor(
    readonly target: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`rootfs ${target}: ${problem}`, options);
  }
}

/** How one overlay is to be mounted. */
export interface OverlayPlan {
  /** The `-o` string for mount(8). */
  options: string;
  /** The working directory to mount from when the options hold relative paths; undefined otherwise. */
  cwd: string | undefined;
  /** Short links to make (link name relative to the store root → target, relative to the link's directory). */
  links: { name: string; target: string }[];
}

export interface OverlayInput {
  /** The store root (where `l/` lives). */
  root: string;
  /** Layer directories, absolute, top layer first (overlayfs order). */
  lowers: readonly string[];
  /** Short names of the layers (same order): `l/<short>` will link to the layer. */
  shorts: readonly string[];
  upperDir: string;
  workDir: string;
  limit?: number;
}

// overlayfs splits its options at ',' and lowerdir at ':'; a backslash escapes either. Paths with
// those characters are refused rather than escaped, so that /proc/mounts stays readable.
function checkPath(field: string, p: string): void {
  if (!path.isAbsolute(p)) throw new InvalidArgumentError(field, `must be an absolute path, got ${JSON.stringify(p)}`);
  if (/[,:\\\n]/.test(p)) throw new InvalidArgumentError(field, `must not contain ',', ':', '\\' or a newline: ${JSON.stringify(p)}`);
}

/**
 * Builds the overlay options: absolute paths when they fit in `limit` bytes, otherwise `l/<short>`
 * names relative to the store root (upper and work directories relative too when they are under
 * it). Throws InvalidArgumentError when even the short form does not fit.
 */
export function planOverlay(input: OverlayInput): OverlayPlan {
  const limit = input.limit ?? MOUNT_OPTIONS_LIMIT;
  checkPath('root', input.root);
  checkPath('upperDir', input.upperDir);
  checkPath('workDir', input.workDir);
  if (input.lowers.length === 0) throw new InvalidArgumentError('lowers', 'an overlay needs at least one lower directory');
  if (input.shorts.length !== input.lowers.length) throw new InvalidArgumentError('shorts', 'one short name per lower directory');
  for (const l of input.lowers) checkPath('lowerdir', l);
  const long = `lowerdir=${input.lowers.join(':')},upperdir=${input.upperDir},workdir=${input.workDir}`;
  if (Buffer.byteLength(long) <= limit) return { options: long, cwd: undefined, links: [] };
  const rel = (p: string): string => {
    const r = path.relative(input.root, p);
    return r !== '' && !r.startsWith('..') && !path.isAbsolute(r) ? r : p;
  };
  const links = input.lowers.map((l, i) => ({ name: path.join('l', input.shorts[i]!), target: path.relative(path.join(input.root, 'l'), l) }));
  const short = `lowerdir=${links.map((l) => l.name).join(':')},upperdir=${rel(input.upperDir)},workdir=${rel(input.workDir)}`;
  if (Buffer.byteLength(short) > limit)
    throw new InvalidArgumentError('image', `${input.lowers.length} layers do not fit in one overlay mount (${Buffer.byteLength(short)} > ${limit} bytes of options)`);
  return { options: short, cwd: input.root, links };
}

/** Undoes the octal escapes of /proc/self/mountinfo (space, tab, newline, backslash). */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export interface MountInfo {
  mountPoint: string;
  fsType: string;
  source: string;
  superOptions: string;
}

/** Parses /proc/self/mountinfo (see proc(5)); lines that do not parse are skipped. */
export function parseMountinfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 4) continue;
    out.push({ mountPoint: unescapeMountinfo(f[4]!), fsType: f[sep + 1]!, source: unescapeMountinfo(f[sep + 2]!), superOptions: f[sep + 3]! });
  }
  return out;
}

export async function readMounts(): Promise<MountInfo[]> {
  return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** Whether something is mounted exactly at `target` (symlinks resolved, as mountinfo names it). */
export async function isMountPoint(target: string): Promise<boolean> {
  const real = await realpath(target).catch(() => target);
  return (await readMounts()).some((m) => m.mountPoint === real);
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: string | Buffer; message?: string };
  const s = e.stderr?.toString().trim();
  return s !== undefined && s !== '' ? s : (e.message ?? String(err));
}

/**
 * `mount -t overlay overlay -o <options> <target>`; from `plan.cwd` when it is set, always with
 * mount(8), since the kernel resolves the relative layer paths against the caller's directory.
 */
export async function mountOverlay(plan: OverlayPlan, target: string, mounter: Mounter = execMounter): Promise<void> {
  try {
    if (plan.cwd === undefined) await mounter.mount('overlay', 'overlay', plan.options, target);
    else await execFileP('mount', ['-t', 'overlay', 'overlay', '-o', plan.options, target], { cwd: plan.cwd });
  } catch (err) {
    throw new RootfsError(target, `mount -t overlay -o ${plan.options} failed: ${stderrOf(err)}`, { cause: err });
  }
}

/** Unmounts every mount stacked at `target`; nothing mounted there is not an error. */
export async function unmount(target: string, mounter: Mounter = execMounter): Promise<void> {
  target = await realpath(target).catch(() => target);
  while (await isMountPoint(target)) {
    try {
      await mounter.unmount(target);
    } catch (err) {
      throw new RootfsError(target, `umount failed: ${stderrOf(err)}`, { cause: err });
    }
  }
}
