// The control API load generator of bench/controlapi.ts, run as a child process inside a lab host
// (the lab's addresses are reachable only from the lab's network namespaces). It connects to one
// manager over TCP with mutual TLS, presenting the certificate in --cert-dir (a manager's
// <data-dir>/certs), as swarmctl --host --cert-dir does, and creates secrets or configs with unique
// names: --clients concurrent writers over one channel (as the Raft and etcd loads share theirs),
// for --seconds. Prints one line: the LoadResult as JSON.
import * as grpc from '@grpc/grpc-js';
import { basename, dirname } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { TLS_CHANNEL_OPTIONS, checkManagerIdentity, loadNodeCerts } from '../../common/certs.js';
import { ControlClient } from '../../proto/gen/tswarm/control.js';
import { runOps } from './load.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('addr', { type: 'string', demandOption: true, describe: 'host:port of a manager' })
  .option('cert-dir', { type: 'string', demandOption: true, describe: "a manager's certs directory (ca.crt, node.crt, node.key)" })
  .option('clients', { type: 'number', default: 1 })
  .option('seconds', { type: 'number', default: 10 })
  .option('kind', { choices: ['secret', 'config'] as const, default: 'secret' as const })
  .option('payload-bytes', { type: 'number', default: 1024 })
  .option('prefix', { type: 'string', demandOption: true, describe: 'object names start with this (unique per run)' })
  .parseSync();

const dir = argv['cert-dir'].replace(/\/+$/, '');
const certs = loadNodeCerts(dirname(dir), basename(dir));
const creds = grpc.credentials.createSsl(Buffer.from(certs.caPem), Buffer.from(certs.keyPem), Buffer.from(certs.certPem), { checkServerIdentity: checkManagerIdentity() });
const client = new ControlClient(argv.addr, creds, { ...TLS_CHANNEL_OPTIONS, 'grpc.enable_retries': 0 });
await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())));

const data = Buffer.alloc(argv['payload-bytes'], 0x61);
const create = (name: string): Promise<void> =>
  new Promise((resolve, reject) => {
    const spec = { annotations: { name, labels: {} }, data };
    const opts = { deadline: Date.now() + 10_000 };
    const cb = (err: grpc.ServiceError | null): void => (err ? reject(err) : resolve());
    if (argv.kind === 'secret') client.createSecret({ spec }, new grpc.Metadata(), opts, cb);
    else client.createConfig({ spec }, new grpc.Metadata(), opts, cb);
  });

const result = await runOps(
  (c, n) => create(`${argv.prefix}-c${c}-${n}`),
  argv.clients,
  argv.seconds,
  (i) => create(`${argv.prefix}-warm-${i}`),
);
client.close();
const { latencies: _, ...summary } = result;
process.stdout.write(`${JSON.stringify(summary)}\n`);
process.exit(0);
