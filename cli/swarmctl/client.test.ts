// swarmctl's connection: one channel for all the calls of a command; a call answered
// "not proposed" (no leader) made again until a leader answers; other failures kept as RpcError
// with their gRPC code, made once.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { unavailableNotProposed } from '../../common/leader-retry.js';
import { callUnary, Connection, RpcError } from './client.js';

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v ?? null));
const parse = (b: Buffer): unknown => JSON.parse(b.toString()) as unknown;
const def = {
  put: { path: '/test.Echo/Put', requestStream: false, responseStream: false, requestSerialize: json, requestDeserialize: parse, responseSerialize: json, responseDeserialize: parse, originalName: 'put' },
} as unknown as grpc.ServiceDefinition;
const EchoClient = grpc.makeGenericClientConstructor(def, 'Echo');

describe('swarmctl connection', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanup.splice(0)) c();
  });

  async function server(answer: (req: unknown, n: number) => Partial<grpc.StatusObject> | { ok: unknown }): Promise<{ addr: string; calls: () => number }> {
    let n = 0;
    const s = new grpc.Server();
    s.addService(def, {
      put: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const a = answer(call.request, ++n);
        if ('ok' in a) cb(null, a.ok);
        else cb(a);
      },
    });
    const port = await new Promise<number>((resolve, reject) => s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    cleanup.push(() => s.forceShutdown());
    return { addr: `127.0.0.1:${port}`, calls: () => n };
  }

  it('opens one channel for all the calls of a command', async () => {
    const s = await server((req) => ({ ok: { echo: req } }));
    let channels = 0;
    class Counting extends EchoClient {
      constructor(...args: ConstructorParameters<typeof EchoClient>) {
        super(...args);
        channels++;
      }
    }
    const conn = new Connection(Counting, { address: s.addr });
    cleanup.push(() => conn.close());
    const got = await Promise.all(Array.from({ length: 5 }, (_, i) => callUnary(conn, 'put', { i })));
    for (let i = 0; i < 5; i++) expect(await callUnary(conn, 'put', { again: i })).toEqual({ echo: { again: i } });
    expect(got).toEqual(Array.from({ length: 5 }, (_, i) => ({ echo: { i } })));
    expect(channels).toBe(1);
    expect(s.calls()).toBe(10);
  });

  it('makes a call again while it is answered "not proposed", until a leader answers', async () => {
    const s = await server((_req, n) => (n <= 3 ? unavailableNotProposed('no manager leads the cluster right now') : { ok: 'created' }));
    const conn = new Connection(EchoClient, { address: s.addr });
    cleanup.push(() => conn.close());
    expect(await callUnary(conn, 'put', { name: 'x' })).toBe('created');
    expect(s.calls()).toBe(4);
  });

  it('does not make again a call that may have been applied, and keeps the code of every failure', async () => {
    const s = await server((req) =>
      (req as { kind: string }).kind === 'lost'
        ? { code: grpc.status.UNAVAILABLE, details: 'raft: node 1 lost leadership before the proposal was applied; its outcome is unknown' }
        : { code: grpc.status.INVALID_ARGUMENT, details: 'spec.annotations.name: is required' },
    );
    const conn = new Connection(EchoClient, { address: s.addr });
    cleanup.push(() => conn.close());
    const lost = await callUnary(conn, 'put', { kind: 'lost' }).catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(RpcError);
    expect((lost as RpcError).code).toBe(grpc.status.UNAVAILABLE);
    expect((lost as RpcError).message).toMatch(/outcome is unknown/);
    expect(s.calls()).toBe(1);
    const invalid = await callUnary(conn, 'put', { kind: 'bad' }).catch((e: unknown) => e);
    expect(invalid).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: 'spec.annotations.name: is required', method: 'put' });
    expect(s.calls()).toBe(2);
  });
});
