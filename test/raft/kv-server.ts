#!/usr/bin/env node
// A replica of a key-value store over our Raft, as a separate process, for the Raft lab tests and
// benchmarks. Writes go through the log; reads use read-index. Not part of swarmd.
//
//   node dist/test/raft/kv-server.js --id 1 --raft-addr 127.0.0.1:7001 --kv-addr 127.0.0.1:8001 \
//     --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 --bootstrap --data-dir DIR
import * as grpc from '@grpc/grpc-js';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { createLogger } from '../../common/logger.js';
import { NotLeaderError } from '../../manager/raft/errors.js';
import { RaftServer } from '../../manager/raft/server.js';
import type { StateMachine } from '../../manager/raft/node.js';
import {
  KvPutRequest,
  RaftKVService,
  type KvPutStreamRequest,
  type KvPutStreamResponse,
  type KvGetRequest,
  type KvGetResponse,
  type KvPutResponse,
  type KvStatusResponse,
} from '../../proto/gen/tswarm/raftkv.js';

/** The replicated map. Entries are KvPutRequest protobufs. */
class KvStateMachine implements StateMachine<number> {
  map = new Map<string, Buffer>();
  apply(data: Uint8Array, index: number): number {
    const req = KvPutRequest.decode(data);
    this.map.set(req.key, req.value);
    return index;
  }
  snapshot(): Uint8Array {
    const obj: Record<string, string> = {};
    for (const [k, v] of this.map) obj[k] = v.toString('base64');
    return Buffer.from(JSON.stringify(obj));
  }
  restore(data: Uint8Array): void {
    const obj = JSON.parse(Buffer.from(data).toString()) as Record<string, string>;
    this.map = new Map(Object.entries(obj).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
  }
}

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('id', { type: 'number', demandOption: true })
  .option('raft-addr', { type: 'string', demandOption: true })
  .option('kv-addr', { type: 'string', demandOption: true })
  .option('peers', { type: 'string', demandOption: true, describe: 'id=host:port,...' })
  .option('bootstrap', { type: 'boolean', default: false, describe: 'initial member of a new cluster (all peers are voters)' })
  .option('data-dir', { type: 'string', demandOption: true })
  .option('tick-ms', { type: 'number' })
  .option('snapshot-entries', { type: 'number' })
  .option('lazy-commit', { type: 'boolean', default: false, describe: 'tell followers a new commit index with the next append or heartbeat (RaftConfig.lazyCommit)' })
  .parseSync();

const peers = new Map<number, string>();
for (const part of argv.peers.split(',')) {
  const [id, addr] = part.split('=');
  if (!id || !addr || !Number.isInteger(Number(id))) throw new Error(`--peers: "${part}" must be id=host:port`);
  peers.set(Number(id), addr);
}

const log = createLogger({ node: String(argv.id), component: 'raft-kv' });
const sm = new KvStateMachine();
const raft = new RaftServer<number>({
  id: argv.id,
  dataDir: argv['data-dir'],
  listenAddr: argv['raft-addr'],
  peers,
  bootstrapVoters: argv.bootstrap ? [...peers.keys()] : undefined,
  stateMachine: sm,
  tickMs: argv['tick-ms'],
  snapshotEntries: argv['snapshot-entries'],
  ...(argv['lazy-commit'] ? { core: { lazyCommit: true } } : {}),
  log: log.child({ component: 'raft' }),
});

function toStatus(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof NotLeaderError) {
    const md = new grpc.Metadata();
    md.set('leader', String(err.leader));
    return { code: grpc.status.FAILED_PRECONDITION, details: err.message, metadata: md };
  }
  return { code: grpc.status.UNAVAILABLE, details: err instanceof Error ? err.message : String(err) };
}

const server = new grpc.Server();
server.addService(RaftKVService, {
  put: (call: grpc.ServerUnaryCall<KvPutRequest, KvPutResponse>, cb: grpc.sendUnaryData<KvPutResponse>) => {
    raft.propose(KvPutRequest.encode(call.request).finish()).then(
      (index) => cb(null, { index }),
      (err: unknown) => cb(toStatus(err)),
    );
  },
  putStream: (call: grpc.ServerDuplexStream<KvPutStreamRequest, KvPutStreamResponse>) => {
    call.on('data', (req: KvPutStreamRequest) => {
      raft.propose(KvPutRequest.encode(req.put ?? { key: '', value: Buffer.alloc(0) }).finish()).then(
        (index) => call.write({ id: req.id, index, error: '', notLeader: false, leader: 0 }),
        (err: unknown) =>
          call.write(
            err instanceof NotLeaderError
              ? { id: req.id, index: 0, error: err.message, notLeader: true, leader: err.leader }
              : { id: req.id, index: 0, error: err instanceof Error ? err.message : String(err), notLeader: false, leader: 0 },
          ),
      );
    });
    call.on('end', () => call.end());
    call.on('error', () => undefined); // the client went away
  },
  get: (call: grpc.ServerUnaryCall<KvGetRequest, KvGetResponse>, cb: grpc.sendUnaryData<KvGetResponse>) => {
    raft.readBarrier().then(
      (index) => {
        const v = sm.map.get(call.request.key);
        cb(null, { found: v !== undefined, value: v ?? Buffer.alloc(0), index });
      },
      (err: unknown) => cb(toStatus(err)),
    );
  },
  status: (_call: unknown, cb: grpc.sendUnaryData<KvStatusResponse>) => {
    const s = raft.status();
    cb(null, { id: s.id, leader: s.leader, term: s.term, commit: s.commit, applied: raft.node.appliedIndex, role: s.role });
  },
});

await raft.start();
await new Promise<void>((resolve, reject) =>
  server.bindAsync(argv['kv-addr'], grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
);
log.info({ raft: argv['raft-addr'], kv: argv['kv-addr'] }, 'raft-kv ready');

const stop = (): void => {
  void raft.stop().then(() => server.tryShutdown(() => process.exit(0)));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
