// Secrets and configs as files in a task's container. Each config a task references is written as
// a file of its own into a directory of the task's on a tmpfs (`<configsDir>/<task id>/<n>`, n
// its position in the spec), with the mode, uid and gid of the reference, and bind-mounted
// read-only at its target. Its secrets are files named as their targets in one directory of the
// task's on the secrets tmpfs (`<secretsDir>/<task id>/`), bind-mounted read-only at
// /run/secrets. The agent removes both directories when the task is withdrawn.
//
// Targets follow Docker: an absolute path anywhere in the container (e.g. /etc/app/app.conf), a
// relative one under `/` (the default target is `/<config name>`).
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import type { ConfigReference, SecretReference } from '../../proto/gen/tswarm/types.js';
import { TswarmError } from '../../common/errors.js';
import type { Mount } from '../exec/executor.js';

/** A config file the node cannot make: names the config and the rule. */
export class ConfigFileError extends TswarmError {
  constructor(
    readonly config: string,
    readonly problem: string,
  ) {
    super(`config ${config}: ${problem}`);
  }
}

/** A secret file the node cannot make: names the secret and the rule. */
export class SecretFileError extends TswarmError {
  constructor(
    readonly secret: string,
    readonly problem: string,
  ) {
    super(`secret ${secret}: ${problem}`);
  }
}

/** Where a config file must not go: the kernel's file systems. */
const FORBIDDEN_DIRS = ['/proc', '/sys', '/dev'];

/**
 * The absolute path of a config's file in the container, from its target. `..`, a target that
 * names a directory (the root, a trailing '/') and targets in /proc, /sys or /dev are refused (the
 * control API refuses them first; this guards the node against any other writer of the store).
 */
export function configTarget(config: string, name: string): string {
  if (name === '') throw new ConfigFileError(config, 'the target is empty');
  if (name.split('/').includes('..')) throw new ConfigFileError(config, `target "${name}" must not contain '..'`);
  const target = posix.normalize(posix.join('/', name));
  if (target === '/' || name.endsWith('/')) throw new ConfigFileError(config, `target "${name}" must name a file, not a directory`);
  const under = FORBIDDEN_DIRS.find((d) => target === d || target.startsWith(`${d}/`));
  if (under) throw new ConfigFileError(config, `target "${name}" must not be in ${under}`);
  return target;
}

/**
 * Writes the referenced configs into `dir` (made 0700; the files keep the reference's mode,
 * default 0444, uid and gid, default 0) and returns their read-only bind mounts, in the order of
 * `refs`. A config missing from `data` (not delivered to this node) or a bad target is a
 * ConfigFileError; two references with one target are refused too.
 */
export function writeConfigFiles(dir: string, refs: readonly ConfigReference[], data: ReadonlyMap<string, Uint8Array>): Mount[] {
  const targets = new Map<string, string>();
  const plan = refs.map((r) => {
    const name = r.configName || r.configId;
    const bytes = data.get(r.configId);
    if (bytes === undefined) throw new ConfigFileError(name, 'was not delivered to this node');
    const target = configTarget(name, r.file?.name || r.configName);
    const other = targets.get(target);
    if (other !== undefined) throw new ConfigFileError(name, `target ${target} is also the target of config ${other}`);
    targets.set(target, name);
    return { r, bytes, target };
  });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return plan.map(({ r, bytes, target }, i): Mount => {
    const path = join(dir, String(i));
    const mode = r.file?.mode || 0o444;
    writeFileSync(path, bytes, { mode });
    chmodSync(path, mode); // writeFileSync's mode is filtered by the umask, and ignored for an existing file
    chownSync(path, r.file?.uid ?? 0, r.file?.gid ?? 0);
    return { type: 'bind', source: path, target, readOnly: true };
  });
}

/**
 * Writes the referenced secrets into `dir` (made 0700, then 0755 once filled; the files keep the
 * reference's mode, default 0444, uid and gid) and returns the one read-only bind mount of `dir`
 * at /run/secrets; no mount without secrets. A secret missing from `data` (not delivered to this
 * node) or a file name that is not a plain name is a SecretFileError.
 */
export function writeSecretFiles(dir: string, refs: readonly SecretReference[], data: ReadonlyMap<string, Uint8Array>): Mount[] {
  if (refs.length === 0) return [];
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const r of refs) {
    const bytes = data.get(r.secretId);
    if (!bytes) throw new SecretFileError(r.secretName || r.secretId, 'was not delivered to this node');
    const name = r.file?.name || r.secretName;
    if (!name || name.includes('/') || name === '..' || name === '.') throw new SecretFileError(r.secretName, `the file name "${name}" must be a plain name`);
    const path = join(dir, name);
    const mode = r.file?.mode || 0o444;
    writeFileSync(path, bytes, { mode });
    chmodSync(path, mode);
    chownSync(path, r.file?.uid ?? 0, r.file?.gid ?? 0);
  }
  chmodSync(dir, 0o755);
  return [{ type: 'bind', source: dir, target: '/run/secrets', readOnly: true }];
}
