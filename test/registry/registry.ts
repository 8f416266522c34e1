// Starts Debian's docker-registry (the Distribution registry v2) on a free loopback port, with its
// configuration and filesystem storage in a temporary directory; stop() kills it and removes both.
import { freePort } from '../util/net.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

/**
 * A `--default-registry` for daemons of tests that name images without a registry (`busybox`) and
 * have no registry to pull them from: a loopback port nobody serves. Without one such names go to
 * Docker Hub, and a test must never reach a registry on the internet (nor look its name up).
 */
export const NO_REGISTRY = 'http://127.0.0.1:9';

export function registryAvailable(): boolean {
  return existsSync(REGISTRY_BINARY);
}

export interface Registry {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  dir: string;
  /** What the registry printed (stderr and stdout), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}


const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/**
 * How the registry checks its clients (docker-registry's `auth:` section), checked for real:
 * - `htpasswd`: basic auth against an htpasswd file (bcrypt hashes, made by `htpasswdFile`);
 * - `token`: bearer tokens, JWTs whose signing certificate chains to `rootCertBundle` (a PEM
 *   file), from `issuer`, for `service`; clients are sent to `realm` for them (see token-server.ts).
 */
export type RegistryAuthConfig =
  | { htpasswd: { path: string } }
  | { token: { realm: string; service: string; issuer: string; rootCertBundle: string } };

/** docker-registry's configuration: filesystem storage under `root`, listening on `addr`, quiet logs, optional auth. */
export function registryConfig(root: string, addr: string, auth?: RegistryAuthConfig): string {
  const lines = ['version: 0.1', 'log:', '  level: warn', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${root}`, '  delete:', '    enabled: true', 'http:', `  addr: ${addr}`];
  if (auth && 'htpasswd' in auth) lines.push('auth:', '  htpasswd:', '    realm: tswarm-test', `    path: ${auth.htpasswd.path}`);
  if (auth && 'token' in auth) {
    const t = auth.token;
    lines.push('auth:', '  token:', `    realm: ${t.realm}`, `    service: ${t.service}`, `    issuer: ${t.issuer}`, `    rootcertbundle: ${t.rootCertBundle}`);
  }
  return [...lines, ''].join('\n');
}

/** An htpasswd file's content for `users` (name → password), with bcrypt hashes as docker-registry wants (Debian's apache2-utils). */
export function htpasswdFile(users: Record<string, string>): string {
  if (!existsSync('/usr/bin/htpasswd')) throw new Error('htpasswd is not installed (apt-get install apache2-utils; scripts/setup.sh does)');
  return Object.entries(users)
    .map(([user, password]) => execFileSync('/usr/bin/htpasswd', ['-nbB', '-C', '4', user, password], { encoding: 'utf8' }).trim())
    .join('\n') + '\n';
}

export interface StartRegistryOptions {
  /** The registry's port (default: a free one). */
  port?: number;
  /** Makes the auth section, given the registry's temp dir (for files it needs). */
  auth?: (dir: string) => Promise<RegistryAuthConfig> | RegistryAuthConfig;
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<Registry> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tswarm-registry-'));
  const port = opts.port ?? (await freePort());
  let auth: RegistryAuthConfig | undefined;
  try {
    auth = await opts.auth?.(dir);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const config = registryConfig(path.join(dir, 'data'), `127.0.0.1:${port}`, auth);
  const configPath = path.join(dir, 'config.yml');
  await writeFile(configPath, config);
  const child = spawn(REGISTRY_BINARY, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  let exited = false;
  child.once('exit', () => {
    exited = true;
    live.delete(child);
  });
  const stop = async (): Promise<void> => {
    if (!exited) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, sleep(3000)]);
      if (!exited) {
        child.kill('SIGKILL');
        await gone;
      }
    }
    await rm(dir, { recursive: true, force: true });
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`docker-registry exited before answering on ${url}: ${output.trim()}`);
    }
    try {
      const res = await fetch(`${url}/v2/`);
      await res.body?.cancel();
      if (res.status === 200 || (auth !== undefined && res.status === 401)) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not answer GET ${url}/v2/ within 15 s: ${output.trim()}`);
    }
    await sleep(50);
  }
  return { url, port, dir, log: () => output, stop };
}

export { freePort };
