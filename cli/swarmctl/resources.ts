// swarmctl's resource commands over the control API: cluster, node, service, network, secret,
// config. Output: a table by default, --format json, -q for ids only. Exit codes: 0 success,
// 1 the operation failed (the message names the field or object), 2 bad usage.
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { ControlClient, type ListFilters } from '../../proto/gen/tswarm/control.js';
import type { ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import { NodeAvailability, nodeAvailabilityToJSON, nodeRoleToJSON, NodeState, nodeStateToJSON } from '../../proto/gen/tswarm/types.js';
import type { Network, Node, Secret, Service } from '../../proto/gen/tswarm/objects.js';
import { TswarmError } from '../../common/errors.js';
import { reportFatal } from '../util.js';
import { targetFrom, withClient, type Target } from './client.js';

interface GlobalArgs {
  socket: string;
  host?: string | undefined;
  format: 'table' | 'json';
  quiet?: boolean | undefined;
}

class CommandError extends TswarmError {}

/** Calls one control API method; a gRPC error becomes its message (which names the field). */
type UnaryMethod<Res> = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void;

function rpc<Res>(target: Target, method: Exclude<keyof ControlClient, keyof grpc.Client>, req: unknown): Promise<Res> {
  return withClient(ControlClient, target, (c) => {
    const fn = (c[method] as unknown as UnaryMethod<Res>).bind(c);
    return new Promise<Res>((resolve, reject) =>
      fn(req, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e, r) => (e ? reject(new CommandError(e.details || e.message)) : resolve(r))),
    );
  });
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('   ')).join('\n') + '\n';
}

function print(argv: GlobalArgs, objects: { id: string }[], header: string[], row: (o: never) => string[]): void {
  if (argv.quiet) process.stdout.write(objects.map((o) => `${o.id}\n`).join(''));
  else if (argv.format === 'json') process.stdout.write(`${JSON.stringify(objects, jsonBuffers, 2)}\n`);
  else process.stdout.write(table([header, ...objects.map((o) => row(o as never))]));
}

function jsonBuffers(_k: string, v: unknown): unknown {
  if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer') return `<${((v as { data: number[] }).data ?? []).length} bytes>`;
  return v;
}

const noFilters: ListFilters = { names: [], namePrefixes: [], idPrefixes: [], labels: {}, serviceIds: [], nodeIds: [], desiredStates: [] };

async function act(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    reportFatal('swarmctl', err);
  }
}

function parseLabels(list: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list ?? []) {
    const i = l.indexOf('=');
    const k = i < 0 ? l : l.slice(0, i);
    if (!k) throw new CommandError(`${flag}: "${l}" must be KEY=VALUE`);
    out[k] = i < 0 ? '' : l.slice(i + 1);
  }
  return out;
}

function readData(file: string): Buffer {
  try {
    // yargs hands a lone "-" over as an empty string.
    return file === '-' || file === '' ? readFileSync(0) : readFileSync(file);
  } catch (err) {
    throw new CommandError(`cannot read ${file}: ${(err as Error).message}`);
  }
}

/** The global options, which yargs does not type inside nested command builders. */
const g = (a: unknown): GlobalArgs => a as GlobalArgs;

export function registerResourceCommands(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  const tgt = (a: GlobalArgs): Target => targetFrom(a);
  return y
    .command('cluster <command>', 'Inspect the cluster', (c) =>
      c.command('inspect', 'Show the cluster object (root CA digest, settings)', {}, (a) =>
        act(async () => {
          const r = await rpc<{ clusters: { id: string; rootCa?: { caKey: Buffer } }[] }>(tgt(g(a)), 'listClusters', { filters: noFilters });
          // The root key never leaves through swarmctl.
          const clusters = r.clusters.map((cl) => ({ ...cl, rootCa: cl.rootCa ? { ...cl.rootCa, caKey: Buffer.alloc(0) } : undefined }));
          process.stdout.write(`${JSON.stringify(clusters.length === 1 ? clusters[0] : clusters, jsonBuffers, 2)}\n`);
        }),
      ).demandCommand(1),
    )
    .command('node <command>', 'Manage nodes', (c) =>
      c
        .command('ls', 'List nodes', { quiet: { alias: 'q', type: 'boolean' } }, (a) =>
          act(async () => {
            const r = await rpc<{ nodes: Node[] }>(tgt(g(a)), 'listNodes', { filters: noFilters });
            print(g(a), r.nodes, ['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'ROLE'], (n: Node) => [
              n.id,
              n.description?.hostname ?? '',
              nodeStateToJSON(n.status?.state ?? NodeState.NODE_STATE_UNKNOWN).replace('NODE_STATE_', '').toLowerCase(),
              nodeAvailabilityToJSON(n.spec?.availability ?? NodeAvailability.NODE_AVAILABILITY_ACTIVE).replace('NODE_AVAILABILITY_', '').toLowerCase(),
              nodeRoleToJSON(n.role).replace('NODE_ROLE_', '').toLowerCase(),
            ]);
          }),
        )
        .demandCommand(1),
    )
    .command('service <command>', 'Manage services', (c) =>
      c
        .command(
          'create',
          'Create a service',
          (o) =>
            o
              .option('name', { type: 'string', demandOption: true })
              .option('image', { type: 'string', demandOption: true })
              .option('replicas', { type: 'number', describe: 'Number of tasks (replicated mode)' })
              .option('mode', { choices: ['replicated', 'global'] as const, default: 'replicated' as const })
              .option('env', { type: 'string', array: true })
              .option('label', { type: 'string', array: true })
              .option('constraint', { type: 'string', array: true })
              .option('args', { type: 'string', array: true, describe: 'Command arguments' }),
          (a) =>
            act(async () => {
              if (a.replicas !== undefined && (!Number.isInteger(a.replicas) || a.replicas < 0)) throw new CommandError(`--replicas: ${a.replicas} must be a whole number, 0 or more`);
              if (a.mode === 'global' && a.replicas !== undefined) throw new CommandError('--replicas: a global service runs one task per node; drop --replicas or use --mode replicated');
              const spec: ServiceSpec = {
                annotations: { name: a.name, labels: parseLabels(a.label, '--label') },
                mode: a.mode === 'global' ? { $case: 'global', global: {} } : { $case: 'replicated', replicated: { replicas: a.replicas ?? 1 } },
                task: {
                  container: {
                    image: a.image, labels: {}, command: [], args: a.args ?? [], hostname: '', env: a.env ?? [], dir: '', user: '', groups: [], mounts: [], stopGracePeriodMs: 10_000,
                    stopSignal: '', secrets: [], configs: [], capabilityAdd: [], capabilityDrop: [], ulimits: [], readOnly: false, tty: false, init: false, oomScoreAdj: 0,
                  },
                  placement: a.constraint ? { constraints: a.constraint, preferences: [], platforms: [], maxReplicasPerNode: 0 } : undefined,
                  networks: [],
                  forceUpdate: 0,
                },
              };
              const r = await rpc<{ service: { id: string } }>(tgt(g(a)), 'createService', { spec });
              process.stdout.write(`${r.service.id}\n`);
            }),
        )
        .command('ls', 'List services', { quiet: { alias: 'q', type: 'boolean' } }, (a) =>
          act(async () => {
            const r = await rpc<{ services: Service[] }>(tgt(g(a)), 'listServices', { filters: noFilters });
            print(g(a), r.services, ['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE'], (s: Service) => [
              s.id,
              s.spec?.annotations?.name ?? '',
              s.spec?.mode?.$case ?? '',
              s.spec?.mode?.$case === 'replicated' ? String(s.spec.mode.replicated.replicas) : '-',
              s.spec?.task?.container?.image ?? '',
            ]);
          }),
        )
        .command('inspect <service>', 'Show a service (by id, name or id prefix)', {}, (a) =>
          act(async () => {
            const r = await rpc<{ service: unknown }>(tgt(g(a)), 'getService', { id: a.service as string });
            process.stdout.write(`${JSON.stringify(r.service, jsonBuffers, 2)}\n`);
          }),
        )
        .command('rm <service..>', 'Remove services', {}, (a) =>
          act(async () => {
            for (const id of a.service as string[]) {
              await rpc(tgt(g(a)), 'removeService', { id });
              process.stdout.write(`${id}\n`);
            }
          }),
        )
        .demandCommand(1),
    )
    .command('secret <command>', 'Manage secrets', (c) =>
      c
        .command('create <name> <file>', 'Create a secret from a file (- for standard input)', (o) => o.positional('name', { type: 'string' }).positional('file', { type: 'string' }), (a) =>
          act(async () => {
            const r = await rpc<{ secret: { id: string } }>(tgt(g(a)), 'createSecret', { spec: { annotations: { name: a.name as string, labels: {} }, data: readData(a.file as string) } });
            process.stdout.write(`${r.secret.id}\n`);
          }),
        )
        .command('ls', 'List secrets', { quiet: { alias: 'q', type: 'boolean' } }, (a) =>
          act(async () => {
            const r = await rpc<{ secrets: Secret[] }>(tgt(g(a)), 'listSecrets', { filters: noFilters });
            print(g(a), r.secrets, ['ID', 'NAME'], (s: Secret) => [s.id, s.spec?.annotations?.name ?? '']);
          }),
        )
        .command('rm <secret..>', 'Remove secrets', {}, (a) =>
          act(async () => {
            for (const id of a.secret as string[]) {
              await rpc(tgt(g(a)), 'removeSecret', { id });
              process.stdout.write(`${id}\n`);
            }
          }),
        )
        .demandCommand(1),
    )
    .command('network <command>', 'Manage networks', (c) =>
      c
        .command('create <name>', 'Create a network', (o) => o.option('driver', { type: 'string', default: 'overlay' }).option('subnet', { type: 'string' }), (a) =>
          act(async () => {
            const spec = { annotations: { name: a.name as string, labels: {} }, driver: a.driver, driverOptions: {}, ipam: a.subnet ? [{ subnet: a.subnet, gateway: '', range: '' }] : [], attachable: false, internal: false, ingress: false, mtu: 0 };
            const r = await rpc<{ network: { id: string } }>(tgt(g(a)), 'createNetwork', { spec });
            process.stdout.write(`${r.network.id}\n`);
          }),
        )
        .command('ls', 'List networks', { quiet: { alias: 'q', type: 'boolean' } }, (a) =>
          act(async () => {
            const r = await rpc<{ networks: Network[] }>(tgt(g(a)), 'listNetworks', { filters: noFilters });
            print(g(a), r.networks, ['ID', 'NAME', 'DRIVER'], (n: Network) => [n.id, n.spec?.annotations?.name ?? '', n.spec?.driver ?? '']);
          }),
        )
        .command('rm <network..>', 'Remove networks', {}, (a) =>
          act(async () => {
            for (const id of a.network as string[]) {
              await rpc(tgt(g(a)), 'removeNetwork', { id });
              process.stdout.write(`${id}\n`);
            }
          }),
        )
        .demandCommand(1),
    );
}
