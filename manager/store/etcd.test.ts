// Leadership among managers through etcd leases: one leader at a time; when it resigns or its
// lease lapses (the manager died), another takes over.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../../test/util/dist.js';
import { startEtcd, type EtcdServer } from '../../test/etcd/etcd.js';
import { EtcdLeadership } from './etcd.js';

describe('EtcdLeadership', () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('elects one manager, and another once the leader resigns', async () => {
    const a = new EtcdLeadership(etcd.client(), 'manager-a', 2, 'test-resign');
    const b = new EtcdLeadership(etcd.client(), 'manager-b', 2, 'test-resign');
    await a.campaign();
    let bLeads = false;
    const bElected = b.campaign().then(() => (bLeads = true));
    await new Promise((r) => setTimeout(r, 300));
    expect(bLeads).toBe(false);
    expect(await a.leader()).toBe('manager-a');
    await a.resign();
    await bElected;
    expect(await b.leader()).toBe('manager-b');
  });

  it('hands over when the leader process dies (kill -9) and its lease lapses', async () => {
    // The leader is another process, so that its death stops the lease keep-alives for real.
    const script = `const { Etcd3 } = await import('etcd3');
      const c = new Etcd3({ hosts: '${etcd.endpoint}' });
      c.election('test-lease', 2).campaign('manager-a').on('elected', () => console.log('elected'));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('elected') && resolve());
        child.once('exit', (code) => reject(new Error(`leader process exited early (${code})`)));
      });
      const b = new EtcdLeadership(etcd.client(), 'manager-b', 2, 'test-lease');
      expect(await b.leader()).toBe('manager-a');
      const elected = b.campaign();
      const killedAt = Date.now();
      child.kill('SIGKILL');
      await elected;
      expect(Date.now() - killedAt).toBeLessThan(15_000);
      expect(await b.leader()).toBe('manager-b');
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});
