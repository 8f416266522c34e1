// Starts Debian's docker-registry (the Distribution registry v2) on a free loopback port, with its
// configuration and filesystem storage in a temporary directory; stop() kills it and removes both.
import { freePort } from '../util/net.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

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

/** docker-registry's configuration: filesystem storage under `root`, listening on `addr`, quiet logs. */
export function registryConfig(root: string, addr: string): string {
  return ['version: 0.1', 'log:', '  level: warn', '  accesslog:', '    disabled: true', 'storage:', '  filesystem:', `    rootdirectory: ${root}`, '  delete:', '    enabled: true', 'http:', `  addr: ${addr}`, ''].join('\n');
}

export async function startRegistry(): Promise<Registry> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tswarm-registry-'));
  const port = await freePort();
  const config = registryConfig(path.join(dir, 'data'), `127.0.0.1:${port}`);
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
      if (res.status === 200) break;
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
