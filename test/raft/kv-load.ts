#!/usr/bin/env node
// Load and inspection client for the Raft KV replicas, run as a process on a lab host (the lab's
// addresses are reachable only from inside its namespaces).
//   status --peers 1=host:port,...            statuses of the replicas as JSON (null if down)
//   load   --peers ... --duration MS --clients N --out FILE
//          N clients: each writes unique keys (w.<client>.<n>) and puts/gets a few shared keys;
//          every operation goes to FILE as a history (call/return in microseconds, or unknown)
//   verify --peers ... --in FILE               reads back every acknowledged unique write
import { readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { KvCluster } from './kv-client.js';

export interface HistoryOp {
  client: number;
  op: 'put' | 'get';
  key: string;
  value?: string;
  call: number;
  ret?: number;
  /** get: what was read (undefined: absent). */
  read?: string | null;
}

function parsePeers(s: string): Map<number, string> {
  return new Map(
    s.split(',').map((p) => {
      const [id, addr] = p.split('=');
      return [Number(id), addr!] as [number, string];
    }),
  );
}

const now = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000);

async function load(cluster: () => KvCluster, durationMs: number, clients: number): Promise<HistoryOp[]> {
  const history: HistoryOp[] = [];
  const end = Date.now() + durationMs;
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      const c = cluster();
      let n = 0;
      while (Date.now() < end) {
        n++;
        const shared = n % 3 === 0;
        const key = shared ? `s${n % 4}` : `w.${client}.${n}`;
        const isGet = shared && n % 2 === 0;
        const op: HistoryOp = { client, op: isGet ? 'get' : 'put', key, call: now() };
        if (isGet) {
          const r = await c.get(key, 3000);
          if (r.ok) {
            op.ret = now();
            op.read = r.value.found ? Buffer.from(r.value.value).toString() : null;
          } else continue; // a failed read has no effect: leave it out
        } else {
          op.value = `${client}.${n}`;
          // Half the clients write over PutStream, half with unary calls: both paths are checked.
          const r = client % 2 === 1 ? await c.putStreamed(key, Buffer.from(op.value), 3000) : await c.put(key, Buffer.from(op.value), 3000);
          if (r.ok) op.ret = now();
        }
        history.push(op);
      }
      c.close();
    }),
  );
  return history;
}

const argv = await yargs(hideBin(process.argv))
  .strict()
  .command('status', 'replica statuses')
  .command('load', 'run a load and record its history')
  .command('verify', 'read back acknowledged writes')
  .demandCommand(1)
  .option('peers', { type: 'string', demandOption: true })
  .option('duration', { type: 'number', default: 5000 })
  .option('clients', { type: 'number', default: 4 })
  .option('out', { type: 'string' })
  .option('in', { type: 'string' })
  .parseAsync();

const peers = parsePeers(argv.peers);
const cmd = argv._[0];
if (cmd === 'status') {
  const c = new KvCluster(peers);
  const out = await Promise.all(c.ids().map((id) => c.status(id).catch(() => null)));
  c.close();
  console.log(JSON.stringify(out));
} else if (cmd === 'load') {
  const history = await load(() => new KvCluster(peers), argv.duration, argv.clients);
  writeFileSync(argv.out!, JSON.stringify(history));
  console.log(JSON.stringify({ ops: history.length, acked: history.filter((h) => h.ret !== undefined).length }));
} else if (cmd === 'verify') {
  const history = JSON.parse(readFileSync(argv.in!, 'utf8')) as HistoryOp[];
  const c = new KvCluster(peers);
  const missing: string[] = [];
  let checked = 0;
  for (const h of history) {
    if (h.op !== 'put' || h.ret === undefined || !h.key.startsWith('w.')) continue;
    const r = await c.get(h.key, 5000);
    checked++;
    if (!r.ok || !r.value.found || Buffer.from(r.value.value).toString() !== h.value) missing.push(h.key);
  }
  c.close();
  console.log(JSON.stringify({ checked, missing }));
}
