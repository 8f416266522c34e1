// The gRPC transport between real sockets: batches arrive in order, a peer that goes away is
// reported unreachable, and the stream comes back when the peer does.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { MessageType, type RaftMessage } from '../../proto/gen/tswarm/raft.js';
import { message } from './core/raft.js';
import { addRaftService, GrpcTransport } from './transport.js';

async function listen(onMessages: (m: RaftMessage[]) => void, port = 0): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  addRaftService(server, onMessages);
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port: bound };
}

const until = async (cond: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('GrpcTransport', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });

  it('delivers every message in order, batched per call', async () => {
    const got: RaftMessage[] = [];
    let batches = 0;
    const { server, port } = await listen((ms) => {
      batches++;
      got.push(...ms);
    });
    cleanups.push(() => server.forceShutdown());
    const t = new GrpcTransport({ credentials: grpc.credentials.createInsecure(), onUnreachable: () => {} });
    cleanups.push(() => t.close());
    t.setPeer(2, `127.0.0.1:${port}`);
    for (let i = 0; i < 100; i++) {
      t.send(Array.from({ length: 10 }, (_, j) => message({ type: MessageType.MSG_HEARTBEAT, to: 2, from: 1, term: 1, commit: i * 10 + j })));
    }
    await until(() => got.length === 1000);
    expect(got.map((m) => m.commit)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(batches).toBeLessThanOrEqual(100);
  });

  it('reports a peer that is down or unknown as unreachable, and recovers when it returns', async () => {
    const unreachable: number[] = [];
    const got: RaftMessage[] = [];
    const first = await listen((ms) => got.push(...ms));
    const port = first.port;
    const t = new GrpcTransport({ credentials: grpc.credentials.createInsecure(), onUnreachable: (id) => unreachable.push(id) });
    cleanups.push(() => t.close());
    t.setPeer(2, `127.0.0.1:${port}`);
    t.send([message({ type: MessageType.MSG_HEARTBEAT, to: 9, from: 1, term: 1 })]);
    expect(unreachable).toEqual([9]);
    t.send([message({ type: MessageType.MSG_HEARTBEAT, to: 2, from: 1, term: 1, commit: 1 })]);
    await until(() => got.length === 1);
    first.server.forceShutdown();
    await until(() => unreachable.includes(2));
    const second = await listen((ms) => got.push(...ms), port);
    cleanups.push(() => second.server.forceShutdown());
    const end = Date.now() + 5000;
    while (!got.some((m) => m.commit === 2) && Date.now() < end) {
      t.send([message({ type: MessageType.MSG_HEARTBEAT, to: 2, from: 1, term: 1, commit: 2 })]);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(got.some((m) => m.commit === 2)).toBe(true);
  });
});
