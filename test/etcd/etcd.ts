// Starts a real etcd (Debian's etcd-server) on loopback for a test, and removes it afterwards.
import { freePort } from '../util/net.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';


export interface EtcdServer {
  endpoint: string;
  client(): Etcd3;
  stop(): Promise<void>;
}

/** One etcd member on 127.0.0.1, its data in a temporary directory; ready when it answers. */
export async function startEtcd(): Promise<EtcdServer> {
  const dir = mkdtempSync(join(tmpdir(), 'etcd-test-'));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  let stderr = '';
  const proc: ChildProcess = spawn(
    'etcd',
    ['--name', 'test', '--data-dir', join(dir, 'data'), '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `test=${peer}`, '--log-level', 'error'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  proc.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const clients: Etcd3[] = [];
  const stop = async (): Promise<void> => {
    for (const c of clients) c.close();
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const probe = new Etcd3({ hosts: endpoint });
  try {
    for (let i = 0; ; i++) {
      try {
        await probe.get('probe').string();
        break;
      } catch (err) {
        if (i > 100 || proc.exitCode !== null) throw new Error(`etcd did not start: ${(err as Error).message}\n${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } catch (err) {
    probe.close();
    await stop();
    throw err;
  }
  probe.close();
  return {
    endpoint,
    client: () => {
      const c = new Etcd3({ hosts: endpoint });
      clients.push(c);
      return c;
    },
    stop,
  };
}
