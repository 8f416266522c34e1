#!/usr/bin/env node
// swarmd: the tswarm daemon. Today it keeps the node's identity and serves NodeInfo on the local
// control socket (and optionally TCP); the manager role (init/join) and the worker agent arrive
// with the control-plane and orchestration issues.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { createLogger, LOG_FORMATS, LOG_LEVELS } from '../common/logger.js';
import { VERSION } from '../common/version.js';
import { Daemon } from './swarmd/daemon.js';
import { DEFAULT_SOCKET_PATH } from './swarmctl/defaults.js';
import { failUsage, reportFatal } from './util.js';

export const DEFAULT_DATA_DIR = '/var/lib/tswarm';
export const DEFAULT_SOCKET = DEFAULT_SOCKET_PATH;

await yargs(hideBin(process.argv))
  .scriptName('swarmd')
  .usage('$0 [options]\n\nRuns the tswarm daemon on this host.')
  .version(VERSION)
  .strict()
  .parserConfiguration({ 'camel-case-expansion': false })
  .fail(failUsage)
  .option('data-dir', { type: 'string', default: DEFAULT_DATA_DIR, describe: 'Directory for the node identity and state' })
  .option('socket', { type: 'string', default: DEFAULT_SOCKET, describe: 'Local control socket (unix, root only)' })
  .option('listen-addr', { type: 'string', describe: 'Also serve on this TCP address (host:port)' })
  .option('log-level', { choices: LOG_LEVELS, default: 'info' as const })
  .option('log-format', { choices: LOG_FORMATS, default: 'auto' as const, describe: 'auto: text on a terminal, JSON otherwise' })
  .check((argv) => {
    const addr = argv['listen-addr'];
    if (addr !== undefined && !/^[^\s]+:\d{1,5}$/.test(addr)) throw new Error(`--listen-addr: "${addr}" must be host:port`);
    return true;
  })
  .command(
    '$0',
    'Run the daemon',
    () => {},
    async (argv) => {
      const daemon = new Daemon({
        dataDir: argv['data-dir'],
        socket: argv.socket,
        listenAddr: argv['listen-addr'],
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
    },
  )
  .help()
  .parseAsync();
