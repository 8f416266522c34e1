// swarmd with its store in an external etcd (Debian's etcd-server, started here on loopback):
// init with --store etcd://…, a second manager joins and sees the same objects, leadership moves
// when the leader is killed, a restarted manager resumes from etcd, and a second init on the same
// prefix is refused.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdServer } from './etcd/etcd.js';
import { dist } from './util/dist.js';
import { NO_REGISTRY } from './registry/registry.js';
import { freePort } from './util/net.js';

const swarmd = dist('cli/swarmd.js');
const swarmctl = dist('cli/swarmctl.js');

describe('swarmd with the store in etcd', () => {
  let etcd: EtcdServer;
  let dir = '';
  let store = '';
  const procs = new Map<string, ChildProcess>();
  const addrs = new Map<string, string>();

  const sock = (name: string): string => join(dir, `${name}.sock`);
  const ctl = (name: string, ...args: string[]) => {
    const r = spawnSync(process.execPath, [swarmctl, '--socket', sock(name), ...args], { encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  async function until<T>(what: string, fn: () => T | undefined, ms = 20_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = fn();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  function start(name: string, args: string[]): ChildProcess {
    const p = spawn(process.execPath, [swarmd, '--log-format', 'json', '--default-registry', NO_REGISTRY, '--data-dir', join(dir, name), '--socket', sock(name), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.set(name, p);
    return p;
  }

  async function up(name: string): Promise<void> {
    await until(`${name} to serve`, () => (ctl(name, 'service', 'ls').code === 0 ? true : undefined));
  }

  async function kill9(name: string): Promise<void> {
    const p = procs.get(name);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  beforeAll(async () => {
    etcd = await startEtcd();
    dir = mkdtempSync(join(tmpdir(), 'tswarm-etcd-store-'));
    store = `etcd://${etcd.endpoint.replace('http://', '')}/tswarm-test`;
    for (const [name, ip] of [['a', '127.0.0.1'], ['b', '127.0.0.2'], ['c', '127.0.0.3']] as const) addrs.set(name, `${ip}:${await freePort()}`);
  });

  afterAll(async () => {
    for (const name of procs.keys()) await kill9(name);
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs a cluster whose store is etcd: a second manager joins and sees the same objects', async () => {
    start('a', ['init', '--advertise-addr', addrs.get('a')!, '--store', store]);
    await up('a');
    expect(ctl('a', 'service', 'create', '--detach', '--name', 'web', '--image', 'busybox').code).toBe(0);
    const token = ctl('a', 'cluster', 'join-token', 'manager', '-q').out.trim();
    start('b', ['join', '--token', token, '--advertise-addr', addrs.get('b')!, addrs.get('a')!]);
    await up('b');
    expect(ctl('b', 'service', 'ls').out).toContain('web');
    expect(ctl('b', 'secret', 'create', 'pw', '/etc/hostname').code).toBe(0);
    expect(ctl('a', 'secret', 'ls').out).toContain('pw');
    const nodes = JSON.parse(ctl('a', 'node', 'ls', '--format', 'json').out) as { role: string }[];
    expect(nodes.map((n) => n.role)).toEqual(['NODE_ROLE_MANAGER', 'NODE_ROLE_MANAGER']);
    // Nothing went into a local Raft log.
    expect(spawnSync('ls', [join(dir, 'b')], { encoding: 'utf8' }).stdout).not.toContain('raft');
  }, 60_000);

  it('moves leadership when the leader dies, and a restarted manager resumes from etcd', async () => {
    await kill9('a');
    // b takes over once a's lease (3 s) runs out; writes forwarded to the dead leader fail until then.
    await until('b to lead and write', () => (ctl('b', 'service', 'create', '--detach', '--name', 'after', '--image', 'busybox').code === 0 ? true : undefined), 30_000);
    start('a', []);
    await up('a');
    await until('a to see the write', () => (ctl('a', 'service', 'ls').out.includes('after') ? true : undefined));
  }, 60_000);

  it('refuses a second init on the same prefix, leaving nothing behind', () => {
    const r = spawnSync(process.execPath, [swarmd, '--data-dir', join(dir, 'c'), '--socket', sock('c'), 'init', '--advertise-addr', addrs.get('c')!, '--store', store], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('this etcd prefix already holds a cluster');
    expect(spawnSync('ls', [join(dir, 'c')], { encoding: 'utf8' }).stdout.trim().split('\n').sort()).toEqual(['node-id']);
    const bad = spawnSync(process.execPath, [swarmd, '--data-dir', join(dir, 'c'), '--socket', sock('c'), 'init', '--advertise-addr', addrs.get('c')!, '--store', 'etcd:/nope'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--store: "etcd:/nope" must be etcd://HOST:PORT');
  }, 60_000);
});
