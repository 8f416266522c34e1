// RaftServer, the API the store will use, with real disks and gRPC on loopback: proposals resolve
// with the state machine's result or fail with a typed error; membership changes run over the
// wire; the transport works over mutual TLS; a restarted server recovers its state from disk.
import * as grpc from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfState } from '../../proto/gen/tswarm/raft.js';
import { NotLeaderError, StoppedError, TooLargeError } from './errors.js';
import type { StateMachine } from './node.js';
import { RaftServer, type RaftServerOptions } from './server.js';

/** Appends each command to a list; apply returns the list's length. */
class ListMachine implements StateMachine<number> {
  items: string[] = [];
  apply(data: Uint8Array): number {
    return this.items.push(Buffer.from(data).toString());
  }
  snapshot(): Uint8Array {
    return Buffer.from(JSON.stringify(this.items));
  }
  restore(data: Uint8Array): void {
    this.items = JSON.parse(Buffer.from(data).toString()) as string[];
  }
}

const basePort = 41000 + (process.pid % 400) * 20;
const addr = (id: number): string => `127.0.0.1:${basePort + id}`;

async function until<T>(fn: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A new leader accepts a membership change only once its bootstrap entries are applied: retry briefly. */
async function addLearnerSoon(leader: RaftServer<number>, id: number): Promise<void> {
  for (let tries = 0; ; tries++) {
    try {
      await leader.addLearner(id, addr(id));
      return;
    } catch (err) {
      if (tries > 100) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

describe('RaftServer', () => {
  const dirs: string[] = [];
  const servers: RaftServer<number>[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function cluster(ids: number[], extra: Partial<RaftServerOptions<number>> = {}): Promise<{ servers: Map<number, RaftServer<number>>; machines: Map<number, ListMachine>; root: string }> {
    const root = mkdtempSync(join(tmpdir(), 'raft-server-'));
    dirs.push(root);
    const peers = new Map(ids.map((id) => [id, addr(id)]));
    const machines = new Map<number, ListMachine>();
    const out = new Map<number, RaftServer<number>>();
    for (const id of ids) {
      const sm = new ListMachine();
      machines.set(id, sm);
      const s = new RaftServer<number>({ id, dataDir: join(root, `n${id}`), listenAddr: addr(id), peers, bootstrapVoters: ids, stateMachine: sm, tickMs: 10, ...extra });
      servers.push(s);
      out.set(id, s);
    }
    await Promise.all([...out.values()].map((s) => s.start()));
    return { servers: out, machines, root };
  }

  const leaderOf = (servers: Map<number, RaftServer<number>>): Promise<RaftServer<number>> =>
    until(() => [...servers.values()].find((s) => !s.isStopped && s.status().role === 'leader' && s.status().commit > 0));

  it('resolves a proposal with the state machine result once applied, and reads linearizably', async () => {
    const { servers: ss, machines } = await cluster([1, 2, 3]);
    const leader = await leaderOf(ss);
    expect(await leader.propose(Buffer.from('a'))).toBe(1);
    expect(await leader.propose(Buffer.from('b'))).toBe(2);
    await leader.readBarrier();
    expect(machines.get(leader.status().id)!.items).toEqual(['a', 'b']);
    // Followers apply the same entries in the same order.
    for (const m of machines.values()) await until(() => (m.items.length === 2 ? true : undefined));
    for (const m of machines.values()) expect(m.items).toEqual(['a', 'b']);
  });

  it('rejects with typed errors: not leader (naming it), too large, stopped', async () => {
    const { servers: ss } = await cluster([1, 2, 3], { core: { maxProposalBytes: 100 } });
    const leader = await leaderOf(ss);
    const follower = [...ss.values()].find((s) => s !== leader)!;
    await until(() => (follower.status().leader === leader.status().id ? true : undefined));
    const err = await follower.propose(Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotLeaderError);
    expect((err as NotLeaderError).leader).toBe(leader.status().id);
    await expect(leader.propose(Buffer.alloc(101))).rejects.toBeInstanceOf(TooLargeError);
    await follower.stop();
    await expect(follower.propose(Buffer.from('y'))).rejects.toBeInstanceOf(StoppedError);
  });

  it('adds a learner over the wire, promotes it once caught up, and removes a voter', async () => {
    const { servers: ss, machines, root } = await cluster([1, 2, 3]);
    const leader = await leaderOf(ss);
    for (let i = 0; i < 20; i++) await leader.propose(Buffer.from(`v${i}`));
    const sm4 = new ListMachine();
    const s4 = new RaftServer<number>({ id: 4, dataDir: join(root, 'n4'), listenAddr: addr(4), peers: new Map([[1, addr(1)], [2, addr(2)], [3, addr(3)]]), stateMachine: sm4, tickMs: 10 });
    servers.push(s4);
    await s4.start();
    await addLearnerSoon(leader, 4);
    await until(() => (sm4.items.length === 20 ? true : undefined));
    expect(s4.status().confState.learners).toEqual([4]);
    // Promotion is refused until the learner has answered the leader; retry briefly.
    let promoted: ConfState | undefined;
    for (let i = 0; i < 100 && !promoted; i++) {
      promoted = await leader.promote(4).catch(async () => {
        await new Promise((r) => setTimeout(r, 20));
        return undefined;
      });
    }
    if (!promoted) throw new Error('promotion never accepted');
    expect(promoted.voters).toEqual([1, 2, 3, 4]);
    const gone = [1, 2, 3].find((id) => id !== leader.status().id)!;
    expect((await leader.remove(gone)).voters).toEqual([1, 2, 3, 4].filter((id) => id !== gone));
    await ss.get(gone)!.stop();
    expect(await leader.propose(Buffer.from('after'))).toBe(21);
    await until(() => (sm4.items.length === 21 ? true : undefined));
    expect(machines.get(gone)!.items.length).toBeLessThan(21);
  });

  it('keeps members addresses through snapshots and compaction', async () => {
    const { servers: ss, root } = await cluster([1, 2, 3], { snapshotEntries: 5, keepEntries: 0 });
    const leader = await leaderOf(ss);
    const s4 = new RaftServer<number>({ id: 4, dataDir: join(root, 'n4'), listenAddr: addr(4), peers: new Map([[1, addr(1)], [2, addr(2)], [3, addr(3)]]), stateMachine: new ListMachine(), tickMs: 10 });
    servers.push(s4);
    await s4.start();
    await addLearnerSoon(leader, 4);
    for (let i = 0; i < 30; i++) await leader.propose(Buffer.from(`x${i}`));
    const follower = [...ss.entries()].find(([, s]) => s !== leader)!;
    const [fid, fserver] = follower;
    await until(() => (fserver.node.appliedIndex >= leader.node.appliedIndex ? true : undefined));
    expect(fserver.status().snapshotIndex).toBeGreaterThan(10); // the add-learner entry is compacted away
    await fserver.stop();
    // Restarted with only the initial peers: member 4's address must come from the snapshot.
    const again = new RaftServer<number>({ id: fid, dataDir: join(root, `n${fid}`), listenAddr: addr(fid), peers: new Map([[1, addr(1)], [2, addr(2)], [3, addr(3)]]), stateMachine: new ListMachine(), tickMs: 10 });
    servers.push(again);
    expect(again.node.addresses.get(4)).toBe(addr(4));
    expect(again.node.addresses.get(1)).toBe(addr(1));
  });

  it('recovers its log from disk after a restart', async () => {
    const { servers: ss, root } = await cluster([1]);
    const only = await leaderOf(ss);
    for (let i = 0; i < 5; i++) await only.propose(Buffer.from(`p${i}`));
    await only.stop();
    const sm = new ListMachine();
    const again = new RaftServer<number>({ id: 1, dataDir: join(root, 'n1'), listenAddr: addr(1), peers: new Map([[1, addr(1)]]), stateMachine: sm, tickMs: 10 });
    servers.push(again);
    await again.start();
    await until(() => (sm.items.length === 5 ? true : undefined));
    expect(sm.items).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
    expect(await (await leaderOf(new Map([[1, again]]))).propose(Buffer.from('p5'))).toBe(6);
  });

  it('runs its transport over mutual TLS', async () => {
    const root = mkdtempSync(join(tmpdir(), 'raft-tls-'));
    dirs.push(root);
    const f = (n: string): string => join(root, n);
    const ssl = (...args: string[]): void => {
      execFileSync('openssl', args, { stdio: 'ignore' });
    };
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=test-ca');
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('node.key'), '-out', f('node.csr'), '-subj', '/CN=raft-node');
    execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1\\n' > ${f('ext')}`]);
    ssl('x509', '-req', '-in', f('node.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('node.pem'), '-days', '1', '-extfile', f('ext'));
    const [ca, key, cert] = [readFileSync(f('ca.pem')), readFileSync(f('node.key')), readFileSync(f('node.pem'))];
    const { servers: ss } = await cluster([1, 2, 3], {
      serverCredentials: grpc.ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: cert }], true),
      clientCredentials: grpc.credentials.createSsl(ca, key, cert),
    });
    const leader = await leaderOf(ss);
    expect(await leader.propose(Buffer.from('secure'))).toBe(1);
  });
});
