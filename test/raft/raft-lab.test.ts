// Real processes: three Raft replicas on three lab hosts and a client on a fourth; a stream of
// writes while the leader is killed with -9 and restarted. Every acknowledged write is there
// afterwards, the history checks linearizable, and the killed replica rejoins.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_STATE_MOUNT, Lab, type LabProcess } from '../lab/lab.js';
import { checkOperations } from '../lincheck/checker.js';
import { kvModel, type KvOperation } from '../lincheck/kv.js';
import { dist } from '../util/dist.js';
import type { HistoryOp } from './kv-load.js';

const server = dist('test/raft/kv-server.js');
const loader = dist('test/raft/kv-load.js');

interface Status {
  id: number;
  leader: number;
  term: number;
  applied: number;
  role: string;
}

describe('raft replicas as real processes on the lab', () => {
  let lab: Lab;
  const replicas = new Map<number, LabProcess>();
  let peers = '';
  let kvPeers = '';

  async function statuses(): Promise<(Status | null)[]> {
    const r = await lab.host('client').exec(process.execPath, [loader, 'status', '--peers', kvPeers]);
    return JSON.parse(r.stdout) as (Status | null)[];
  }

  async function waitForLeader(timeoutMs = 10_000): Promise<number> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const s = await statuses();
      const leaders = s.filter((x) => x?.role === 'leader');
      if (leaders.length === 1) return leaders[0]!.id;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  }

  beforeAll(async () => {
    lab = await Lab.create({ hosts: ['r1', 'r2', 'r3', 'client'] });
    const hosts = [1, 2, 3].map((i) => lab.host(`r${i}`));
    peers = hosts.map((h, i) => `${i + 1}=${h.address}:7000`).join(',');
    kvPeers = hosts.map((h, i) => `${i + 1}=${h.address}:8000`).join(',');
    hosts.forEach((h, i) => {
      const args = [server, '--id', String(i + 1), '--raft-addr', `${h.address}:7000`, '--kv-addr', `${h.address}:8000`, '--peers', peers, '--bootstrap', '--data-dir', `${HOST_STATE_MOUNT}/raft`, '--snapshot-entries', '200'];
      replicas.set(i + 1, h.start('kv', process.execPath, args));
    });
    await Promise.all([...replicas.values()].map((p) => p.waitForLog(/raft-kv ready/)));
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it('keeps every acknowledged write through a kill -9 of the leader, linearizably, and the old leader rejoins', async () => {
    const first = await waitForLeader();
    const client = lab.host('client');
    const load = client.start('load', process.execPath, [loader, 'load', '--peers', kvPeers, '--duration', '6000', '--clients', '4', '--out', `${HOST_STATE_MOUNT}/history.json`]);
    await new Promise((r) => setTimeout(r, 2000));
    await replicas.get(first)!.kill9();
    const second = await waitForLeader();
    expect(second).not.toBe(first);
    await new Promise((r) => setTimeout(r, 1000));
    await replicas.get(first)!.restart();
    expect(await load.wait()).toBe(0);

    const history = JSON.parse(readFileSync(join(client.stateDir, 'history.json'), 'utf8')) as HistoryOp[];
    const acked = history.filter((h) => h.op === 'put' && h.ret !== undefined);
    expect(acked.length).toBeGreaterThan(50);

    // Every acknowledged write is still there.
    const verify = await client.exec(process.execPath, [loader, 'verify', '--peers', kvPeers, '--in', `${HOST_STATE_MOUNT}/history.json`], { timeoutMs: 60_000 });
    const result = JSON.parse(verify.stdout) as { checked: number; missing: string[] };
    expect(result.missing).toEqual([]);
    expect(result.checked).toBeGreaterThan(30);

    // The whole history is linearizable.
    const ops: KvOperation[] = history.map((h): KvOperation => {
      const input: KvOperation['input'] = h.op === 'put' ? { op: 'put', key: h.key, value: h.value! } : { op: 'get', key: h.key };
      if (h.ret === undefined) return { clientId: h.client, input, call: h.call };
      return { clientId: h.client, input, call: h.call, ret: h.ret, output: h.op === 'put' ? {} : { value: h.read ?? undefined } };
    });
    const check = checkOperations(kvModel, ops, { timeoutMs: 30_000 });
    expect(check).toEqual({ ok: true });

    // The restarted replica caught up with the others.
    const end = Date.now() + 10_000;
    let s = await statuses();
    while (Date.now() < end && !(s[first - 1] && s[first - 1]!.applied >= Math.max(...s.map((x) => x?.applied ?? 0)) - 1)) {
      await new Promise((r) => setTimeout(r, 200));
      s = await statuses();
    }
    expect(s[first - 1]?.leader).toBe(second);
  });
});
