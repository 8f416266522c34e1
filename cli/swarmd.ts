#!/usr/bin/env node
// swarmd: the tswarm daemon. `swarmd init` makes a new cluster, `swarmd join` enters one (as worker
// or manager, as the token says), and plain `swarmd` resumes whatever the data directory holds.
// The worker agent arrives with the orchestration issue.
import { parseUpstream } from '../worker/network/dns-forward.js';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { createLogger, LOG_FORMATS, LOG_LEVELS } from '../common/logger.js';
import { VERSION } from '../common/version.js';
import { Daemon, type InitSettings, type JoinSettings } from './swarmd/daemon.js';
import { DEFAULT_SOCKET_PATH } from './swarmctl/defaults.js';
import { failUsage, reportFatal } from './util.js';
import { parseIPv4 } from '../common/ipv4.js';
import { checkAddressPoolSpec, DEFAULT_ADDRESS_POOL, DEFAULT_SUBNET_SIZE } from '../manager/allocator/networks.js';

export const DEFAULT_DATA_DIR = '/var/lib/tswarm';
export const DEFAULT_SOCKET = DEFAULT_SOCKET_PATH;

interface RunArgs {
  agent: boolean;
  runtime: string;
  'default-registry': string | undefined;
  bridge: string | undefined;
  'data-path-addr': string | undefined;
  dns: string[] | undefined;
  'data-dir': string;
  socket: string;
  'listen-addr': string | undefined;
  'log-level': (typeof LOG_LEVELS)[number];
  'log-format': (typeof LOG_FORMATS)[number];
}

async function run(argv: RunArgs, how: { init?: InitSettings; join?: JoinSettings } = {}): Promise<void> {
  const daemon = new Daemon({
    dataDir: argv['data-dir'],
    socket: argv.socket,
    listenAddr: argv['listen-addr'],
    ...how,
    agent: argv.agent ? { runtime: argv.runtime, defaultRegistry: argv['default-registry'] ?? '', bridge: argv.bridge, dataPathAddr: argv['data-path-addr'], dns: argv.dns } : undefined,
    defaultRegistry: argv['default-registry'] ?? '',
    logger: (node) => createLogger({ node, component: 'swarmd', level: argv['log-level'], format: argv['log-format'] }),
  });
  try {
    await daemon.start();
  } catch (err) {
    reportFatal('swarmd', err);
  }
  const stop = (): void => {
    daemon.stop().then(
      () => process.exit(0),
      (err: unknown) => reportFatal('swarmd', err),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/** The default port of the TCP listener: 4242 (Docker Swarm's 2377 stays free for Docker). */
function withPort(addr: string): string {
  return addr.includes(':') ? addr : `${addr}:4242`;
}

await yargs(hideBin(process.argv))
  .scriptName('swarmd')
  .usage('$0 [options]\n\nRuns the tswarm daemon on this host.')
  .version(VERSION)
  .strict()
  .parserConfiguration({ 'camel-case-expansion': false })
  .fail(failUsage)
  .option('data-dir', { type: 'string', default: DEFAULT_DATA_DIR, describe: 'Directory for the node identity and state' })
  .option('socket', { type: 'string', default: DEFAULT_SOCKET, describe: 'Local control socket (unix, root only)' })
  .option('listen-addr', { type: 'string', describe: 'Serve on this TCP address (host:port); a manager serves Raft and its API there (default: the advertise address)' })
  .option('agent', { type: 'boolean', default: true, describe: 'Run tasks on this node (--no-agent: only manage)' })
  .option('runtime', { choices: ['swarm-runtime', 'runc', 'crun'], default: 'swarm-runtime', describe: 'The OCI runtime that runs containers' })
  .option('default-registry', { type: 'string', describe: 'Registry for images named without one (e.g. busybox), in place of Docker Hub: for the tasks\' pulls and the pinning of service images to digests' })
  .option('bridge', { type: 'string', describe: 'Give containers a bridge network: NAME:SUBNET, e.g. tsw0:172.31.0.0/16 (default: only lo)' })
  .option('data-path-addr', { type: 'string', describe: 'Address this node\'s overlay (VXLAN) traffic leaves from and arrives at: an IPv4 address of this host (default: the advertise address)' })
  .option('dns', { type: 'string', array: true, nargs: 1, describe: 'A resolver (IP or IP:PORT, repeatable) the containers\' embedded DNS forwards names it does not know to (default: the nameservers of the host\'s /etc/resolv.conf)' })
  .option('log-level', { choices: LOG_LEVELS, default: 'info' as const })
  .option('log-format', { choices: LOG_FORMATS, default: 'auto' as const, describe: 'auto: text on a terminal, JSON otherwise' })
  .check((argv) => {
    const addr = argv['listen-addr'];
    if (addr !== undefined && !/^[^\s]+:\d{1,5}$/.test(addr)) throw new Error(`--listen-addr: "${addr}" must be host:port`);
    if (argv.bridge !== undefined && !/^[A-Za-z0-9_.-]{1,15}:\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(argv.bridge)) throw new Error(`--bridge: "${argv.bridge}" must be NAME:SUBNET, e.g. tsw0:172.31.0.0/16`);
    if (argv['default-registry'] !== undefined && !/^https?:\/\/[^\s/]+\/?$/.test(argv['default-registry'])) throw new Error(`--default-registry: "${argv['default-registry']}" must be http(s)://HOST[:PORT]`);
    if (argv['data-path-addr'] !== undefined && parseIPv4(argv['data-path-addr']) === undefined) throw new Error(`--data-path-addr: "${argv['data-path-addr']}" must be an IPv4 address`);
    for (const d of argv.dns ?? []) if (parseUpstream(d) === undefined) throw new Error(`--dns: "${d}" must be an IP address, IP:PORT or [IPv6]:PORT`);
    return true;
  })
  .command(
    '$0',
    'Run the daemon (a manager resumes the cluster kept in its data directory)',
    () => {},
    (argv) => run(argv),
  )
  .command(
    'init',
    'Create a new cluster with this node as its first manager, and run',
    (y) =>
      y
        .option('advertise-addr', { type: 'string', describe: 'Address other nodes reach this manager at: IP or IP:PORT (port 4242 by default)' })
        .option('store', { type: 'string', describe: 'Keep the cluster store in an external etcd: etcd://HOST:PORT[,HOST:PORT...][/PREFIX] (default: the embedded Raft)' })
        .option('force-new-cluster', { type: 'boolean', default: false, describe: 'After losing the quorum for good: rebuild a one-manager cluster from this manager\'s data directory, keeping its services' })
        .option('default-addr-pool', { type: 'string', array: true, describe: 'Pools overlay networks\' subnets are allocated from, CIDR (repeatable; default 10.0.0.0/8)' })
        .option('default-addr-pool-mask-length', { type: 'number', describe: 'The prefix length of each subnet allocated from the pools (default 24)' })
        .option('data-path-port', { type: 'number', describe: 'The UDP port of the overlays\' VXLAN traffic, on every node (default 4789)' })
        .check((a) => {
          const addr = a['advertise-addr'];
          if (addr === undefined && !a['force-new-cluster']) throw new Error('--advertise-addr: required (the address other nodes reach this manager at)');
          if (addr !== undefined && !/^[^\s:]+(:\d{1,5})?$/.test(addr)) throw new Error(`--advertise-addr: "${addr}" must be an address, optionally with :PORT`);
          if (a.store !== undefined && !/^etcd:\/\/[^/\s]+(\/\S*)?$/.test(a.store)) throw new Error(`--store: "${a.store}" must be etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`);
          if (a.store !== undefined && a['force-new-cluster']) throw new Error('--store: not with --force-new-cluster (an etcd-backed cluster recovers through etcd)');
          const port = a['data-path-port'];
          if (port !== undefined && !(Number.isInteger(port) && port >= 1024 && port <= 49151)) throw new Error(`--data-path-port: ${port} must be a port from 1024 to 49151`);
          const pools = a['default-addr-pool'];
          const mask = a['default-addr-pool-mask-length'];
          if (pools !== undefined || mask !== undefined) {
            try {
              checkAddressPoolSpec({ pools: pools ?? DEFAULT_ADDRESS_POOL, subnetSize: mask ?? DEFAULT_SUBNET_SIZE });
            } catch (err) {
              throw new Error((err as Error).message);
            }
          }
          return true;
        }),
    (argv) => {
      const advertise = argv['advertise-addr'] === undefined ? '' : withPort(argv['advertise-addr']);
      const listen = argv['listen-addr'] ?? advertise;
      const pools = argv['default-addr-pool'];
      const mask = argv['default-addr-pool-mask-length'];
      const addressPool = pools !== undefined || mask !== undefined ? { pools: pools ?? DEFAULT_ADDRESS_POOL, subnetSize: mask ?? DEFAULT_SUBNET_SIZE } : undefined;
      return run(
        { ...argv, 'listen-addr': undefined },
        { init: { advertiseAddr: advertise, listenAddr: listen, forceNewCluster: argv['force-new-cluster'], store: argv.store, addressPool, dataPathPort: argv['data-path-port'] } },
      );
    },
  )
  .command(
    'join <manager>',
    'Join an existing cluster, as a worker or a manager as the token says, and run',
    (y) =>
      y
        .positional('manager', { type: 'string', demandOption: true, describe: 'Address of a manager: IP or IP:PORT (port 4242 by default)' })
        .option('token', { type: 'string', demandOption: true, describe: 'The join token (swarmctl cluster join-token worker|manager on a manager)' })
        .option('advertise-addr', { type: 'string', demandOption: true, describe: 'Address other nodes reach this node at: IP or IP:PORT (port 4242 by default)' })
        .check((a) => {
          for (const [flag, v] of [['manager', a.manager], ['--advertise-addr', a['advertise-addr']]] as const) {
            if (!/^[^\s:]+(:\d{1,5})?$/.test(v)) throw new Error(`${flag}: "${v}" must be an address, optionally with :PORT`);
          }
          if (!/^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/.test(a.token.trim())) throw new Error('--token: is not a join token (SWMTKN-1-<50 characters>-<25 characters>)');
          return true;
        }),
    (argv) => {
      const advertise = withPort(argv['advertise-addr']);
      return run(
        { ...argv, 'listen-addr': undefined },
        { join: { token: argv.token.trim(), remoteAddr: withPort(argv.manager), advertiseAddr: advertise, listenAddr: argv['listen-addr'] ?? advertise } },
      );
    },
  )
  .help()
  .parseAsync();
