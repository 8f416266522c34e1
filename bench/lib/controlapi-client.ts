// The control API load generator of bench/controlapi.ts, run as a child process inside a lab host
// (the lab's addresses are reachable only from the lab's network namespaces). It connects to one
// manager over TCP with mutual TLS, presenting the certificate in --cert-dir (a manager's
// <data-dir>/certs), as swarmctl --host --cert-dir does, and creates secrets or configs with unique
// names: --clients concurrent writers over one channel (as the Raft and etcd loads share theirs),
// for --seconds. Failed writes are told apart by their gRPC status (write-outcome.ts).
// Prints JSON lines: with --report-every S, one {"type":"interval",...} per S seconds of the
// load; then {"type":"result",...}, the LoadResult with the warm-up writes acknowledged.
// --count prints {"type":"count","count":N}, the objects of the kind in the store, and writes
// nothing (swarmctl's list cannot: its 4 MiB message limit ends near 50,000 secrets).
import * as grpc from '@grpc/grpc-js';
import { basename, dirname } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { TLS_CHANNEL_OPTIONS, checkManagerIdentity, loadNodeCerts } from '../../common/certs.js';
import { ControlClient, type ListFilters } from '../../proto/gen/tswarm/control.js';
import { runOps, type LoadResult } from './load.js';
import { classifyWriteError } from './write-outcome.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('addr', { type: 'string', demandOption: true, describe: 'host:port of a manager' })
  .option('cert-dir', { type: 'string', demandOption: true, describe: "a manager's certs directory (ca.crt, node.crt, node.key)" })
  .option('clients', { type: 'number', default: 1 })
  .option('seconds', { type: 'number', default: 10 })
  .option('kind', { choices: ['secret', 'config'] as const, default: 'secret' as const })
  .option('payload-bytes', { type: 'number', default: 1024 })
  .option('prefix', { type: 'string', default: 'b', describe: 'object names start with this (unique per run)' })
  .option('report-every', { type: 'number', describe: 'also print the figures of every this many seconds' })
  .option('count', { type: 'boolean', default: false, describe: 'print how many objects of the kind the store holds, and write nothing' })
  .parseSync();

const dir = argv['cert-dir'].replace(/\/+$/, '');
const certs = loadNodeCerts(dirname(dir), basename(dir));
const creds = grpc.credentials.createSsl(Buffer.from(certs.caPem), Buffer.from(certs.keyPem), Buffer.from(certs.certPem), { checkServerIdentity: checkManagerIdentity() });
const client = new ControlClient(argv.addr, creds, { ...TLS_CHANNEL_OPTIONS, 'grpc.enable_retries': 0, 'grpc.max_receive_message_length': 1 << 30 });
await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));
const print = (line: object): void => void process.stdout.write(`${JSON.stringify(line)}\n`);

if (argv.count) {
  const filters: ListFilters = { names: [], namePrefixes: [], idPrefixes: [], labels: {}, serviceIds: [], nodeIds: [], desiredStates: [] };
  const opts = { deadline: Date.now() + 120_000 };
  const count = await new Promise<number>((resolve, reject) => {
    const cb = (err: grpc.ServiceError | null, res?: { secrets?: unknown[]; configs?: unknown[] }): void =>
      err ? reject(err) : resolve((res?.secrets ?? res?.configs ?? []).length);
    if (argv.kind === 'secret') client.listSecrets({ filters }, new grpc.Metadata(), opts, cb);
    else client.listConfigs({ filters }, new grpc.Metadata(), opts, cb);
  });
  print({ type: 'count', count });
  client.close();
  process.exit(0);
}

const data = Buffer.alloc(argv['payload-bytes'], 0x61);
const create = (name: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const spec = { annotations: { name, labels: {} }, data };
    const opts = { deadline: Date.now() + 10_000 };
    const cb = (err: grpc.ServiceError | null): void => (err ? reject(err) : resolve());
    if (argv.kind === 'secret') client.createSecret({ spec }, new grpc.Metadata(), opts, cb);
    else client.createConfig({ spec }, new grpc.Metadata(), opts, cb);
  });

// The warm-up's writes are unmeasured, but the store keeps those that were acknowledged.
let warmUpAcked = 0;
const strip = ({ latencies: _, ...r }: LoadResult): Omit<LoadResult, 'latencies'> => r;
const result = await runOps(
  (c, n) => create(`${argv.prefix}-c${c}-${n}`),
  argv.clients,
  argv.seconds,
  async (i) => {
    await create(`${argv.prefix}-warm-${i}`);
    warmUpAcked++;
  },
  {
    classify: classifyWriteError,
    ...(argv['report-every'] ? { report: { everyMs: argv['report-every'] * 1000, onReport: (r: LoadResult) => print({ type: 'interval', ...strip(r) }) } } : {}),
  },
);
client.close();
print({ type: 'result', ...strip(result), warmUpAcked });
process.exit(0);
