// swarmctl's resource commands over the control API: cluster, node, service, network, secret,
// config. Output: a table by default, --format json, -q for ids only. Exit codes: 0 success,
// 1 the operation failed (the message names the field or object), 2 bad usage.
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { ControlClient, ResolveImage, UpdateServiceRequest_Rollback, type ListFilters } from '../../proto/gen/tswarm/control.js';
import { TaskSpec } from '../../proto/gen/tswarm/specs.js';
import { NodeRole, ReachabilityState, UpdateStatus_UpdateState, NodeAvailability, nodeAvailabilityFromJSON, nodeAvailabilityToJSON, nodeRoleToJSON, NodeState, nodeStateToJSON, TaskState } from '../../proto/gen/tswarm/types.js';
import type { Cluster, Config, Network, Node, Secret, Service, Task } from '../../proto/gen/tswarm/objects.js';
import { TswarmError } from '../../common/errors.js';
import { stateName, stateRank } from '../../common/task-state.js';
import { EXIT_USAGE, reportFatal } from '../util.js';
import { callUnary, Connection, targetFrom, type Target } from './client.js';
import { logsCommand } from './logs.js';
import { imageRequestOptions, printWarnings, readRegistryAuth } from './registry-auth.js';
import { buildServiceSpec, createOptions, durationMs, FlagError, referencedObjects, setReplicas, SPEC_UPDATE_FLAGS, unresolvedRefs, updateOptions, updateServiceSpec, type Flags, type Refs } from './service-spec.js';

interface GlobalArgs {
  socket: string;
  host?: string | undefined;
  'cert-dir'?: string | undefined;
  format: 'table' | 'json';
  quiet?: boolean | undefined;
}

class CommandError extends TswarmError {}

/** The command's connections to the control API, one per target (a command has one), closed by act(). */
const connections = new Map<string, Connection<ControlClient>>();

/**
 * Calls one control API method over the command's one connection; a call that found no leader is
 * made again once one is elected (callUnary). A failure is an RpcError: its message names the
 * field or object, its code is the gRPC status.
 */
function rpc<Res>(target: Target, method: Exclude<keyof ControlClient, keyof grpc.Client>, req: unknown): Promise<Res> {
  let conn = connections.get(target.address);
  if (!conn) connections.set(target.address, (conn = new Connection(ControlClient, target)));
  return callUnary<ControlClient, Res>(conn, method, req);
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

function wholeNumber(n: number, flag: string): number {
  if (!Number.isInteger(n) || n < 0) throw new CommandError(`${flag}: ${n} must be a whole number, 0 or more`);
  return n;
}

function managerStatus(n: Node): string {
  const m = n.managerStatus;
  if (!m || n.role !== NodeRole.NODE_ROLE_MANAGER) return '';
  if (m.leader) return 'leader';
  return m.reachability === ReachabilityState.REACHABILITY_REACHABLE ? 'reachable' : m.reachability === ReachabilityState.REACHABILITY_UNREACHABLE ? 'unreachable' : 'joining';
}

/** node promote / demote: sets the desired role; the leader carries it out (see manager/membership.ts). */
async function setRoles(argv: GlobalArgs, refs: string[], role: NodeRole): Promise<void> {
  for (const ref of refs) {
    const { node } = await rpc<{ node: Node }>(targetFrom(argv), 'getNode', { id: ref });
    if (node.spec?.desiredRole === role) {
      process.stdout.write(`node ${node.id} is already a ${nodeRoleToJSON(role).replace('NODE_ROLE_', '').toLowerCase()}\n`);
      continue;
    }
    await rpc(targetFrom(argv), 'updateNode', { nodeId: node.id, version: node.meta?.version ?? 0, spec: { ...node.spec!, desiredRole: role } });
    process.stdout.write(`${node.id}\n`);
  }
}

/** Runs a command: a bad flag value is bad usage (exit 2), any other error a failure (exit 1); one line each. */
async function act(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
    closeConnections();
  } catch (err) {
    closeConnections();
    if (err instanceof FlagError) {
      process.stderr.write(`swarmctl: ${err.message}\n`);
      process.exit(EXIT_USAGE);
    }
    reportFatal('swarmctl', err);
  }
}

function closeConnections(): void {
  for (const c of connections.values()) c.close();
  connections.clear();
}

/** Finds the secrets and configs the flags name, by name, id or id prefix (an unknown one: "secret X not found"). */
async function lookUpReferences(target: Target, flags: Flags): Promise<Refs> {
  const names = referencedObjects(flags);
  const refs: Refs = { secrets: new Map(), configs: new Map(), networks: new Map() };
  for (const n of names.secrets) {
    const { secret } = await rpc<{ secret: Secret }>(target, 'getSecret', { id: n });
    refs.secrets.set(n, { id: secret.id, name: secret.spec?.annotations?.name ?? n });
  }
  for (const n of names.configs) {
    const { config } = await rpc<{ config: Config }>(target, 'getConfig', { id: n });
    refs.configs.set(n, { id: config.id, name: config.spec?.annotations?.name ?? n });
  }
  for (const n of names.networks) {
    const { network } = await rpc<{ network: Network }>(target, 'getNetwork', { id: n });
    refs.networks.set(n, { id: network.id, name: network.spec?.annotations?.name ?? n });
  }
  return refs;
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

/** `service create` and `update`: the registry credential and the pinning of the image (cli/swarmctl/registry-auth.ts). */
const registryOptions = {
  'with-registry-auth': { type: 'boolean', describe: "Send the credential for the image's registry from the Docker configuration ($DOCKER_CONFIG/config.json or ~/.docker/config.json) to the managers, for the nodes that pull it" },
  'resolve-image': { choices: ['always', 'changed', 'never'], default: 'always', describe: "Pin the image's tag to the digest its registry has now: always, only when the image changed, or never" },
} as const;

/** The global options, which yargs does not type inside nested command builders. */
const g = (a: unknown): GlobalArgs => a as GlobalArgs;

/** The command's target, made once (its certificates read once). */
const targets = new WeakMap<GlobalArgs, Target>();
const tgt = (a: GlobalArgs): Target => {
  let t = targets.get(a);
  if (!t) targets.set(a, (t = targetFrom(a)));
  return t;
};

export function registerResourceCommands(y: Argv<GlobalArgs>): Argv<GlobalArgs> {
  return y
    .command('cluster <command>', 'Inspect and change the cluster, and its join tokens', (c) =>
      c
        .command('inspect', 'Show the cluster object (root CA digest, settings)', {}, (a) =>
          act(async () => {
            const cl = await theCluster(tgt(g(a)));
            process.stdout.write(`${JSON.stringify(cl, jsonBuffers, 2)}\n`);
          }),
        )
        .command(
          'update',
          'Change the cluster settings',
          (o) =>
            o
              .option('task-history-limit', { type: 'number', describe: 'Finished tasks kept per slot' })
              .option('heartbeat-period', { type: 'string', describe: 'How often workers report (e.g. 1s, 500ms)' })
              .option('cert-expiry', { type: 'string', describe: 'Validity of node certificates (e.g. 2160h)' })
              .option('snapshot-interval', { type: 'number', describe: 'Log entries between Raft snapshots' }),
          (a) =>
            act(async () => {
              const cl = await theCluster(tgt(g(a)));
              const spec = { ...cl.spec! };
              if (a['task-history-limit'] !== undefined) spec.taskHistoryRetentionLimit = wholeNumber(a['task-history-limit'], '--task-history-limit');
              if (a['heartbeat-period'] !== undefined) spec.heartbeatPeriodMs = durationMs(a['heartbeat-period'], '--heartbeat-period');
              if (a['cert-expiry'] !== undefined) spec.nodeCertExpiryMs = durationMs(a['cert-expiry'], '--cert-expiry');
              if (a['snapshot-interval'] !== undefined) spec.snapshotIntervalEntries = wholeNumber(a['snapshot-interval'], '--snapshot-interval');
              await rpc(tgt(g(a)), 'updateCluster', { clusterId: cl.id, version: cl.meta?.version ?? 0, spec, rotateWorkerToken: false, rotateManagerToken: false });
              process.stdout.write(`${cl.id}\n`);
            }),
        )
        .command(
          'join-token <role>',
          'Show (or --rotate) the token to join as a worker or a manager',
          (o) => o.positional('role', { choices: ['worker', 'manager'] as const, demandOption: true }).option('rotate', { type: 'boolean', default: false }),
          (a) =>
            act(async () => {
              let cl = await theCluster(tgt(g(a)));
              if (a.rotate) {
                const r = await rpc<{ cluster: Cluster }>(tgt(g(a)), 'updateCluster', {
                  clusterId: cl.id, version: cl.meta?.version ?? 0, spec: cl.spec, rotateWorkerToken: a.role === 'worker', rotateManagerToken: a.role === 'manager',
                });
                cl = r.cluster;
              }
              const token = a.role === 'worker' ? cl.rootCa?.joinTokens?.worker : cl.rootCa?.joinTokens?.manager;
              if (!token) throw new CommandError('the cluster has no join tokens');
              if (g(a).quiet) {
                process.stdout.write(`${token}\n`);
                return;
              }
              const { nodes } = await rpc<{ nodes: Node[] }>(tgt(g(a)), 'listNodes', { filters: noFilters });
              const leader = nodes.find((n) => n.managerStatus?.leader)?.managerStatus?.addr ?? '<MANAGER-ADDRESS>';
              process.stdout.write(`To add a ${a.role} to this cluster, run on it:\n\n    swarmd join --token ${token} --advertise-addr <ITS-ADDRESS> ${leader}\n\n`);
            }),
        )
        .demandCommand(1),
    )
    .command('node <command>', 'Manage nodes', (c) =>
      c
        .command('ls', 'List nodes', { quiet: { alias: 'q', type: 'boolean' } }, (a) =>
          act(async () => {
            const r = await rpc<{ nodes: Node[] }>(tgt(g(a)), 'listNodes', { filters: noFilters });
            print(g(a), r.nodes, ['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'ROLE', 'MANAGER STATUS'], (n: Node) => [
              n.id,
              n.description?.hostname ?? '',
              nodeStateToJSON(n.status?.state ?? NodeState.NODE_STATE_UNKNOWN).replace('NODE_STATE_', '').toLowerCase(),
              nodeAvailabilityToJSON(n.spec?.availability ?? NodeAvailability.NODE_AVAILABILITY_ACTIVE).replace('NODE_AVAILABILITY_', '').toLowerCase(),
              nodeRoleToJSON(n.role).replace('NODE_ROLE_', '').toLowerCase(),
              managerStatus(n),
            ]);
          }),
        )
        .command('inspect <node>', 'Show a node (by id, hostname... or id prefix)', (o) => o.positional('node', { type: 'string', demandOption: true }), (a) =>
          act(async () => {
            const r = await rpc<{ node: Node }>(tgt(g(a)), 'getNode', { id: a.node });
            process.stdout.write(`${JSON.stringify(r.node, jsonBuffers, 2)}\n`);
          }),
        )
        .command(
          'update <node>',
          'Change a node: availability, labels',
          (o) =>
            o
              .positional('node', { type: 'string', demandOption: true })
              .option('availability', { choices: ['active', 'pause', 'drain'] as const })
              .option('label-add', { type: 'string', array: true, nargs: 1 })
              .option('label-rm', { type: 'string', array: true, nargs: 1 }),
          (a) =>
            act(async () => {
              const { node } = await rpc<{ node: Node }>(tgt(g(a)), 'getNode', { id: a.node });
              const labels = { ...(node.spec?.annotations?.labels ?? {}), ...parseLabels(a['label-add'], '--label-add') };
              for (const k of a['label-rm'] ?? []) {
                if (!(k in labels)) throw new CommandError(`--label-rm: node ${a.node} has no label "${k}"`);
                delete labels[k];
              }
              const availability = a.availability ? nodeAvailabilityFromJSON(`NODE_AVAILABILITY_${a.availability.toUpperCase()}`) : (node.spec?.availability ?? NodeAvailability.NODE_AVAILABILITY_ACTIVE);
              const spec = { ...node.spec!, annotations: { name: node.spec?.annotations?.name ?? '', labels }, availability };
              await rpc(tgt(g(a)), 'updateNode', { nodeId: node.id, version: node.meta?.version ?? 0, spec });
              process.stdout.write(`${node.id}\n`);
            }),
        )
        .command('promote <nodes..>', 'Make workers managers', (o) => o.positional('nodes', { type: 'string', array: true, demandOption: true }), (a) =>
          act(() => setRoles(g(a), a.nodes, NodeRole.NODE_ROLE_MANAGER)),
        )
        .command('demote <nodes..>', 'Make managers workers (refused if the managers left could not keep a quorum)', (o) => o.positional('nodes', { type: 'string', array: true, demandOption: true }), (a) =>
          act(() => setRoles(g(a), a.nodes, NodeRole.NODE_ROLE_WORKER)),
        )
        .command(
          'rm <nodes..>',
          'Remove nodes from the cluster (a manager must be demoted first)',
          (o) => o.positional('nodes', { type: 'string', array: true, demandOption: true }).option('force', { type: 'boolean', default: false, describe: 'Remove a node that is not down' }),
          (a) =>
            act(async () => {
              for (const ref of a.nodes) {
                const { node } = await rpc<{ node: Node }>(tgt(g(a)), 'getNode', { id: ref });
                await rpc(tgt(g(a)), 'removeNode', { nodeId: node.id, force: a.force });
                process.stdout.write(`${node.id}\n`);
              }
            }),
        )
        .demandCommand(1),
    )
    .command('task <command>', 'Inspect tasks', (c) =>
      logsCommand(c, 'task')
        .command('ls', 'List tasks', { quiet: { alias: 'q', type: 'boolean' } }, (a) =>
          act(async () => {
            const r = await rpc<{ tasks: Task[] }>(tgt(g(a)), 'listTasks', { filters: noFilters });
            printTasks(g(a), r.tasks);
          }),
        )
        .command('inspect <task>', 'Show a task', (o) => o.positional('task', { type: 'string', demandOption: true }), (a) =>
          act(async () => {
            const r = await rpc<{ task: Task }>(tgt(g(a)), 'getTask', { id: a.task });
            process.stdout.write(`${JSON.stringify(r.task, jsonBuffers, 2)}\n`);
          }),
        )
        .demandCommand(1),
    )
    .command('service <command>', 'Manage services', (c) =>
      logsCommand(c, 'service')
        .command(
          'create',
          'Create a service (flags as docker service create; see docs/swarmctl.md)',
          (o) =>
            o
              .options(createOptions)
              .options(registryOptions)
              .option('detach', { alias: 'd', type: 'boolean', default: false, describe: 'Return at once instead of waiting for the service to converge' })
              .option('timeout', { type: 'number', default: 120, describe: 'Seconds to wait for convergence' }),
          (a) =>
            act(async () => {
              const flags = a as Flags;
              const draft = buildServiceSpec(flags, unresolvedRefs(flags)); // every bad flag is a usage error before any call
              const image = imageRequestOptions(a, draft.task?.container?.image ?? '');
              const spec = buildServiceSpec(flags, await lookUpReferences(tgt(g(a)), flags));
              const r = await rpc<{ service: { id: string }; warnings: string[] }>(tgt(g(a)), 'createService', { spec, ...image });
              printWarnings(r.warnings);
              process.stdout.write(`${r.service.id}\n`);
              if (!a.detach) await waitConverged(g(a), r.service.id, a.timeout);
            }),
        )
        .command(
          'update <service>',
          'Change a service (a new spec version; only what the flags name) or roll it back',
          (o) =>
            o
              .positional('service', { type: 'string', demandOption: true })
              .options(updateOptions)
              .options(registryOptions)
              .option('rollback', { type: 'boolean', default: false, describe: 'Go back to the previous spec (no other change may be given)' })
              .option('detach', { alias: 'd', type: 'boolean', default: false, describe: 'Return at once instead of waiting for the service to converge' })
              .option('timeout', { type: 'number', default: 120, describe: 'Seconds to wait for convergence' }),
          (a) =>
            act(async () => {
              const flags = a as Flags;
              const changes = SPEC_UPDATE_FLAGS.filter((k) => flags[k] !== undefined).map((k) => (k === 'healthcheck' ? 'no-healthcheck' : k));
              if (a.rollback && changes.length) throw new FlagError('--rollback', `goes back to the previous spec and cannot be combined with --${changes.join(', --')}`);
              const { service } = await rpc<{ service: Service }>(tgt(g(a)), 'getService', { id: a.service });
              if (a.rollback) {
                // The previous spec comes back as it was (the manager does not resolve its image again).
                const registryAuth = a['with-registry-auth'] ? readRegistryAuth(service.previousSpec?.task?.container?.image || service.spec?.task?.container?.image || '') : undefined;
                await rpc(tgt(g(a)), 'updateService', { serviceId: service.id, version: service.meta?.version ?? 0, rollback: UpdateServiceRequest_Rollback.ROLLBACK_PREVIOUS, ...(registryAuth ? { registryAuth } : {}) });
                process.stdout.write(`${service.spec?.annotations?.name}\n`);
                if (!a.detach) await waitConverged(g(a), service.id, a.timeout);
                return;
              }
              // The references looked up first: a --network-rm by name is checked against the
              // service's networks, which its spec names by id.
              const spec = updateServiceSpec(service.spec!, flags, await lookUpReferences(tgt(g(a)), flags), a.service);
              const image = imageRequestOptions(a, spec.task?.container?.image ?? '');
              const r = await rpc<{ warnings: string[] }>(tgt(g(a)), 'updateService', { serviceId: service.id, version: service.meta?.version ?? 0, spec, rollback: UpdateServiceRequest_Rollback.ROLLBACK_NONE, ...image });
              printWarnings(r.warnings);
              process.stdout.write(`${service.spec?.annotations?.name}\n`);
              if (!a.detach) await waitConverged(g(a), service.id, a.timeout);
            }),
        )
        .command(
          'scale <pairs..>',
          'Set the number of replicas: NAME=N ...',
          (o) =>
            o
              .positional('pairs', { type: 'string', array: true, demandOption: true })
              .option('detach', { alias: 'd', type: 'boolean', default: false, describe: 'Return at once instead of waiting for the services to converge' })
              .option('timeout', { type: 'number', default: 120, describe: 'Seconds to wait for convergence' }),
          (a) =>
          act(async () => {
            const pairs = a.pairs.map((p) => {
              const m = /^([^=]+)=(\d+)$/.exec(p);
              if (!m) throw new FlagError('scale', `"${p}" must be SERVICE=REPLICAS, with REPLICAS a whole number`);
              return [m[1]!, Number(m[2])] as const;
            });
            for (const [name, n] of pairs) {
              const { service } = await rpc<{ service: Service }>(tgt(g(a)), 'getService', { id: name });
              const spec = structuredClone(service.spec!);
              setReplicas(spec, n, name, 'scale');
              // As docker service scale: the image is not resolved again.
              await rpc(tgt(g(a)), 'updateService', { serviceId: service.id, version: service.meta?.version ?? 0, spec, rollback: UpdateServiceRequest_Rollback.ROLLBACK_NONE, resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER });
              process.stdout.write(`${name} scaled to ${n}\n`);
              if (!a.detach) await waitConverged(g(a), service.id, a.timeout);
            }
          }),
        )
        .command('ps <service>', "List a service's tasks", (o) => o.positional('service', { type: 'string', demandOption: true }), (a) =>
          act(async () => {
            const { service } = await rpc<{ service: Service }>(tgt(g(a)), 'getService', { id: a.service });
            const r = await rpc<{ tasks: Task[] }>(tgt(g(a)), 'listTasks', { filters: { ...noFilters, serviceIds: [service.id] } });
            printTasks(g(a), r.tasks);
            if (g(a).format !== 'json' && !g(a).quiet) await printDiscoveryBehind(g(a));
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
    .command('secret <command>', 'Manage secrets', (c) => dataObjectCommands(c, 'secret'))
    .command('network <command>', 'Manage networks', (c) =>
      c
        .command(
          'create <name>',
          'Create an overlay network',
          (o) =>
            o
              .option('driver', { alias: 'd', type: 'string', default: 'overlay', describe: 'overlay (the only driver of cluster networks)' })
              .option('subnet', { type: 'string', describe: 'IPv4 subnet, CIDR (default: the next free one of the cluster\'s address pool)' })
              .option('gateway', { type: 'string', describe: 'The gateway address (default: the subnet\'s first)' })
              .option('ip-range', { type: 'string', describe: 'Allocate tasks\' addresses from this part of the subnet, CIDR' })
              .option('attachable', { type: 'boolean', default: false, describe: 'Standalone containers may join it' })
              .option('internal', { type: 'boolean', default: false, describe: 'No way out of the network' })
              // One value per flag (nargs), so that the network's name may follow: --opt a=b NAME.
              .option('opt', { alias: 'o', type: 'string', array: true, nargs: 1, describe: 'Driver option KEY=VALUE (com.docker.network.driver.mtu=N)' })
              .option('label', { type: 'string', array: true, nargs: 1, describe: 'KEY=VALUE (repeatable)' }),
          (a) =>
            act(async () => {
              const subnet = a.subnet ?? '';
              if (!subnet && (a.gateway || a['ip-range'])) throw new CommandError(`--${a.gateway ? 'gateway' : 'ip-range'}: needs --subnet`);
              const driverOptions = parseLabels(a.opt, '--opt');
              const spec = {
                annotations: { name: a.name as string, labels: parseLabels(a.label, '--label') },
                driver: a.driver,
                driverOptions,
                ipam: subnet ? [{ subnet, gateway: a.gateway ?? '', range: a['ip-range'] ?? '' }] : [],
                attachable: a.attachable,
                internal: a.internal,
                ingress: false,
                mtu: 0,
              };
              const r = await rpc<{ network: { id: string } }>(tgt(g(a)), 'createNetwork', { spec });
              process.stdout.write(`${r.network.id}\n`);
            }),
        )
        .command('ls', 'List networks', { quiet: { alias: 'q', type: 'boolean' } }, (a) =>
          act(async () => {
            const r = await rpc<{ networks: Network[] }>(tgt(g(a)), 'listNetworks', { filters: noFilters });
            print(g(a), r.networks, ['ID', 'NAME', 'DRIVER', 'SUBNET', 'VNI', 'SCOPE'], (n: Network) => [n.id, n.spec?.annotations?.name ?? '', n.spec?.driver ?? '', n.ipam[0]?.subnet ?? '', String(n.vni), 'swarm']);
          }),
        )
        .command('inspect <network>', 'Show a network', (o) => o.positional('network', { type: 'string', demandOption: true }), (a) =>
          act(async () => {
            const r = await rpc<{ network: Network }>(tgt(g(a)), 'getNetwork', { id: a.network });
            process.stdout.write(`${JSON.stringify(r.network, jsonBuffers, 2)}\n`);
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
    )
    .command('config <command>', 'Manage configs', (c) => dataObjectCommands(c, 'config'));
}

/**
 * Secrets and configs take the same commands: create NAME FILE|-, ls, inspect, rm. A secret's
 * data never comes back (the API returns it empty).
 */
function dataObjectCommands(c: Argv, kind: 'secret' | 'config'): Argv {
  const Kind = kind === 'secret' ? 'Secret' : 'Config';
  return c
    .command(`create <name> <file>`, `Create a ${kind} from a file (- for standard input)`, (o) => o.positional('name', { type: 'string' }).positional('file', { type: 'string' }), (a) =>
      act(async () => {
        const r = await rpc<Record<string, { id: string }>>(tgt(g(a)), `create${Kind}`, { spec: { annotations: { name: a.name as string, labels: {} }, data: readData(a.file as string) } });
        process.stdout.write(`${r[kind]!.id}\n`);
      }),
    )
    .command('ls', `List ${kind}s`, { quiet: { alias: 'q', type: 'boolean' } }, (a) =>
      act(async () => {
        const r = await rpc<Record<string, (Secret | Config)[]>>(tgt(g(a)), `list${Kind}s`, { filters: noFilters });
        print(g(a), r[`${kind}s`]!, ['ID', 'NAME'], (s: Secret | Config) => [s.id, s.spec?.annotations?.name ?? '']);
      }),
    )
    .command(`inspect <${kind}>`, `Show a ${kind}${kind === 'secret' ? ' (never its data)' : ''}`, (o) => o.positional(kind, { type: 'string', demandOption: true }), (a) =>
      act(async () => {
        const r = await rpc<Record<string, Secret | Config>>(tgt(g(a)), `get${Kind}`, { id: a[kind] });
        process.stdout.write(`${JSON.stringify(r[kind], jsonBuffers, 2)}\n`);
      }),
    )
    .command(`rm <${kind}..>`, `Remove ${kind}s`, {}, (a) =>
      act(async () => {
        for (const id of a[kind] as string[]) {
          await rpc(tgt(g(a)), `remove${Kind}`, { id });
          process.stdout.write(`${id}\n`);
        }
      }),
    )
    .demandCommand(1);
}

async function theCluster(target: Target): Promise<Cluster> {
  const r = await rpc<{ clusters: Cluster[] }>(target, 'listClusters', { filters: noFilters });
  const cl = r.clusters[0];
  if (!cl) throw new CommandError('this manager has no cluster object yet');
  return cl;
}

/**
 * Waits until the service has converged, printing each slot's progress as it changes (as
 * `docker service create` does): every slot of a replicated service (every task of a global one)
 * has a task of the current spec version RUNNING, and every task told to stop (scaled away,
 * replaced) on a node that is up has stopped. Failures are shown as they come; the orchestrator
 * retries them. Gives up after `timeoutS` with the state it saw (exit 1).
 */
async function waitConverged(argv: GlobalArgs, serviceId: string, timeoutS: number): Promise<void> {
  const started = Date.now();
  const shown = new Map<string, string>();
  let firstVersion: number | undefined;
  for (;;) {
    const { service } = await rpc<{ service: Service }>(tgt(argv), 'getService', { id: serviceId });
    const { tasks } = await rpc<{ tasks: Task[] }>(tgt(argv), 'listTasks', { filters: { ...noFilters, serviceIds: [serviceId] } });
    // The tasks meant to run now (a change of replicas alone keeps the running tasks' spec version).
    const current = tasks.filter((t) => t.desiredState === TaskState.TASK_STATE_RUNNING);
    const updating = [UpdateStatus_UpdateState.UPDATE_STATE_UPDATING, UpdateStatus_UpdateState.UPDATE_STATE_ROLLBACK_STARTED].includes(service.updateStatus?.state ?? UpdateStatus_UpdateState.UPDATE_STATE_UNKNOWN);
    const paused = [UpdateStatus_UpdateState.UPDATE_STATE_PAUSED, UpdateStatus_UpdateState.UPDATE_STATE_ROLLBACK_PAUSED].includes(service.updateStatus?.state ?? UpdateStatus_UpdateState.UPDATE_STATE_UNKNOWN);
    if (paused) throw new CommandError(`service ${service.spec?.annotations?.name}: ${service.updateStatus?.message || 'the update is paused'}`);
    // An update that failed and rolled back by itself (failure action rollback): shown, then an error once done.
    firstVersion ??= service.specVersion;
    const tagged = Number(/\(spec version (\d+)\)/.exec(service.updateStatus?.message ?? '')?.[1] ?? 0);
    const autoRollback = tagged > firstVersion && /update failed: /.test(service.updateStatus?.message ?? '');
    const rollbackState = service.updateStatus?.state;
    if (autoRollback && (rollbackState === UpdateStatus_UpdateState.UPDATE_STATE_ROLLBACK_STARTED || rollbackState === UpdateStatus_UpdateState.UPDATE_STATE_ROLLBACK_COMPLETED) && !shown.has('rollback')) {
      shown.set('rollback', '');
      process.stdout.write(`rollback: ${service.updateStatus?.message}\n`);
    }
    for (const t of current) {
      const key = t.slot ? `${t.slot}/${service.spec?.annotations?.name}` : `${t.nodeId}`;
      const state = stateName(t.status?.state);
      const why = t.status?.err || t.status?.pendingReason || '';
      const line = `${state}${why ? ` (${why})` : ''}`;
      if (shown.get(key) !== line) {
        shown.set(key, line);
        process.stdout.write(`${t.slot ? `slot ${t.slot}` : `node ${t.nodeId}`}: ${line}\n`);
      }
    }
    // Running tasks count once they run the service's present task spec (not the one before an update).
    const target = specKey(service.spec?.task);
    const running = current.filter((t) => t.status?.state === TaskState.TASK_STATE_RUNNING && specKey(t.spec) === target);
    const mode = service.spec?.mode;
    const want = mode?.$case === 'replicated' ? mode.replicated.replicas : undefined;
    const slots = new Set(running.map((t) => t.slot));
    // Tasks told to stop (a scale-down, a replaced task) count until they have stopped, except on
    // a node that is not up (its tasks are accounted for when it comes back or is removed).
    // (TaskState is a string enum: compare the wire numbers, which are in lifecycle order.)
    const n = stateRank;
    const stopping = tasks.filter(
      (t) => n(t.desiredState) > n(TaskState.TASK_STATE_RUNNING) && n(t.status?.state) >= n(TaskState.TASK_STATE_ASSIGNED) && n(t.status?.state) <= n(TaskState.TASK_STATE_RUNNING),
    );
    const upNodes = stopping.length === 0 ? new Set<string>() : await readyNodes(argv);
    const stillStopping = stopping.filter((t) => upNodes.has(t.nodeId)).length;
    // Exactly `want` (a scale-down right after the call may not have reached the orchestrator yet:
    // the surplus is still desired running then, and the wait must not end on it).
    const done = !updating && (want !== undefined ? slots.size === want && current.length === want && running.length === want : current.length > 0 && current.length === running.length);
    if ((done || (want === 0 && current.length === 0)) && stillStopping > 0 && shown.get('stopping') !== String(stillStopping)) {
      shown.set('stopping', String(stillStopping));
      process.stdout.write(`${stillStopping} task${stillStopping === 1 ? '' : 's'} stopping\n`);
    }
    if ((done || (want === 0 && current.length === 0)) && stillStopping === 0) {
      if (autoRollback && rollbackState === UpdateStatus_UpdateState.UPDATE_STATE_ROLLBACK_COMPLETED) {
        throw new CommandError(`service ${service.spec?.annotations?.name}: the update was rolled back: ${(service.updateStatus?.message ?? '').replace(/^.*?: update failed: /, '')}`);
      }
      process.stdout.write(`${service.spec?.annotations?.name}: converged (${running.length} running)\n`);
      return;
    }
    if (mode?.$case === 'replicatedJob' || mode?.$case === 'globalJob') return; // jobs run to completion; nothing to wait for here
    if (Date.now() - started > timeoutS * 1000) {
      throw new CommandError(`service ${service.spec?.annotations?.name} did not converge within ${timeoutS} s: ${running.length} of ${want ?? current.length} running (swarmctl service ps ${service.spec?.annotations?.name})`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The ids of the nodes that are up (READY). */
async function readyNodes(argv: GlobalArgs): Promise<Set<string>> {
  const { nodes } = await rpc<{ nodes: Node[] }>(tgt(argv), 'listNodes', { filters: noFilters });
  return new Set(nodes.filter((n) => n.status?.state === NodeState.NODE_STATE_READY).map((n) => n.id));
}

/** A task spec's encoding: equal encodings, same spec (as the orchestrator compares them). */
function specKey(spec: TaskSpec | undefined): string {
  return spec ? Buffer.from(TaskSpec.encode(spec).finish()).toString('base64') : '';
}

/**
 * A line per node whose service tables (DNS answers, VIP maps) are behind the store: its
 * containers may reach tasks that are gone, or miss new ones (it should never last).
 */
async function printDiscoveryBehind(argv: GlobalArgs): Promise<void> {
  const { nodes } = await rpc<{ nodes: Node[] }>(tgt(argv), 'listNodes', { filters: noFilters });
  for (const n of nodes) {
    const d = n.discovery;
    if (!d?.behind) continue;
    const since = new Date(Number(d.sinceUnixMs)).toISOString();
    process.stdout.write(`note: node ${n.description?.hostname || n.id}'s service tables are behind the store since ${since} (applied change ${d.appliedSequence} of ${d.sentSequence})\n`);
  }
}

function printTasks(argv: GlobalArgs, tasks: Task[]): void {
  print(argv, tasks, ['ID', 'SERVICE', 'SLOT', 'NODE', 'DESIRED', 'CURRENT', 'MESSAGE'], (t: Task) => [
    t.id,
    t.serviceAnnotations?.name ?? t.serviceId,
    String(t.slot),
    t.nodeId || '-',
    stateName(t.desiredState),
    stateName(t.status?.state),
    t.status?.pendingReason || t.status?.message || '',
  ]);
}
