// The load generator of the like-for-like etcd anchor (etcd-lab.ts), run as a child process inside
// a lab host as controlapi-client.ts is: puts of --value-bytes values under unique keys over mutual
// TLS, --clients concurrent writers over one client for --seconds, sent to the one member named by
// --endpoint (the etcd leader, as the control API's load goes to our leader). --leader prints
// {"type":"leader","endpoint":URL} (asked of every member in --endpoints) and writes nothing.
// Otherwise prints {"type":"result",...}: the LoadResult, with the warm-up writes acknowledged.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { runOps, type LoadResult } from './load.js';

const argv = yargs(hideBin(process.argv))
  .strict()
  .option('endpoint', { type: 'string', describe: 'https://host:port of the member to write to' })
  .option('endpoints', { type: 'string', describe: 'comma-separated members (with --leader)' })
  .option('cert-dir', { type: 'string', demandOption: true, describe: 'holds ca.crt, client.crt and client.key' })
  .option('clients', { type: 'number', default: 1 })
  .option('seconds', { type: 'number', default: 10 })
  .option('value-bytes', { type: 'number', default: 1024 })
  .option('prefix', { type: 'string', default: 'b', describe: 'keys start with this (unique per run)' })
  .option('leader', { type: 'boolean', default: false, describe: 'print the leader member\'s endpoint and write nothing' })
  .parseSync();

const dir = argv['cert-dir'];
const credentials = {
  rootCertificate: readFileSync(join(dir, 'ca.crt')),
  certChain: readFileSync(join(dir, 'client.crt')),
  privateKey: readFileSync(join(dir, 'client.key')),
};
const print = (line: object): void => void process.stdout.write(`${JSON.stringify(line)}\n`);

if (argv.leader) {
  const endpoints = (argv.endpoints ?? '').split(',').filter(Boolean);
  for (const endpoint of endpoints) {
    const one = new Etcd3({ hosts: [endpoint], credentials });
    try {
      const s = await one.maintenance.status();
      if (s.leader === s.header.member_id) {
        print({ type: 'leader', endpoint });
        process.exit(0);
      }
    } catch {
      // not up (yet), or not the leader's: the next one
    } finally {
      one.close();
    }
  }
  process.exit(3);
}

if (!argv.endpoint) throw new Error('--endpoint is needed to write');
const client = new Etcd3({ hosts: [argv.endpoint], credentials });
const value = Buffer.alloc(argv['value-bytes'], 0x61);
const put = (key: string): Promise<void> => client.put(key).value(value).then(() => undefined);
let warmUpAcked = 0;
const result = await runOps(
  (c, n) => put(`${argv.prefix}-c${c}-${n}`),
  argv.clients,
  argv.seconds,
  async (i) => {
    await put(`${argv.prefix}-warm-${i}`);
    warmUpAcked++;
  },
);
client.close();
const { latencies: _, ...r }: LoadResult = result;
print({ type: 'result', ...r, warmUpAcked });
process.exit(0);
