#!/usr/bin/env node
// swarmd: the tswarm daemon. Today it keeps the node's identity and serves NodeInfo on the local
// control socket (and optionally TCP); the manager role (init/join) and the worker agent arrive
// with the control-plane and orchestration issues.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { createLogger, LOG_FORMATS, LOG_LEVELS } from '../common/logger.js';
import { VERSION } from '../common/version.js';
import { Daemon, type ManagerSettings } from './swarmd/daemon.js';
import { DEFAULT_SOCKET_PATH } from './swarmctl/defaults.js';
import { failUsage, reportFatal } from './util.js';

export const DEFAULT_DATA_DIR = '/var/lib/tswarm';
export const DEFAULT_SOCKET = DEFAULT_SOCKET_PATH;

interface RunArgs {
  'data-dir': string;
  socket: string;
  'listen-addr': string | undefined;
  'log-level': (typeof LOG_LEVELS)[number];
  'log-format': (typeof LOG_FORMATS)[number];
}

async function run(argv: RunArgs, manager: ManagerSettings | undefined): Promise<void> {
  const daemon = new Daemon({
    dataDir: argv['data-dir'],
    socket: argv.socket,
    listenAddr: argv['listen-addr'],
    manager,
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
  .option('log-level', { choices: LOG_LEVELS, default: 'info' as const })
  .option('log-format', { choices: LOG_FORMATS, default: 'auto' as const, describe: 'auto: text on a terminal, JSON otherwise' })
  .check((argv) => {
    const addr = argv['listen-addr'];
    if (addr !== undefined && !/^[^\s]+:\d{1,5}$/.test(addr)) throw new Error(`--listen-addr: "${addr}" must be host:port`);
    return true;
  })
  .command(
    '$0',
    'Run the daemon (a manager resumes the cluster kept in its data directory)',
    () => {},
    (argv) => run(argv, undefined),
  )
  .command(
    'init',
    'Create a new cluster with this node as its first manager, and run',
    (y) =>
      y
        .option('advertise-addr', { type: 'string', demandOption: true, describe: 'Address other nodes reach this manager at: IP or IP:PORT (port 4242 by default)' })
        .check((a) => {
          if (!/^[^\s:]+(:\d{1,5})?$/.test(a['advertise-addr'])) throw new Error(`--advertise-addr: "${a['advertise-addr']}" must be an address, optionally with :PORT`);
          return true;
        }),
    (argv) => {
      const advertise = argv['advertise-addr'].includes(':') ? argv['advertise-addr'] : `${argv['advertise-addr']}:4242`;
      return run({ ...argv, 'listen-addr': undefined }, { init: true, advertiseAddr: advertise, listenAddr: argv['listen-addr'] ?? advertise });
    },
  )
  .help()
  .parseAsync();
