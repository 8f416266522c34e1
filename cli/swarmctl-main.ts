// swarmctl: the tswarm command line. It talks to a swarmd over the local control socket (root
// only) or, with --host, over TCP with a manager's certificate (mutual TLS). Started through
// cli/swarmctl.ts; no top-level await here, so that it can be bundled as CommonJS.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { VERSION } from '../common/version.js';
import { NodeInfoClient, type NodeInfoResponse } from '../proto/gen/tswarm/node.js';
import { nodeRoleToJSON } from '../proto/gen/tswarm/types.js';
import { targetFrom, unary, withClient } from './swarmctl/client.js';
import { DEFAULT_SOCKET_PATH } from './swarmctl/defaults.js';
import { failUsage, reportFatal } from './util.js';
import { registerResourceCommands } from './swarmctl/resources.js';
import { followFlag } from './swarmctl/logs.js';
import { hostEntryFlags } from './swarmctl/service-spec.js';

function roleName(role: NodeInfoResponse['role']): string {
  return nodeRoleToJSON(role).replace('NODE_ROLE_', '').toLowerCase();
}

function printVersion(server: NodeInfoResponse | undefined, format: string): void {
  if (format === 'json') {
    const out = { client: { version: VERSION }, server: server && { ...server, role: roleName(server.role) } };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  const rows: [string, string][] = [['Client version', VERSION]];
  if (server) {
    rows.push(
      ['Server version', server.version],
      ['Node ID', server.nodeId],
      ['Hostname', server.hostname],
      ['Role', roleName(server.role)],
      ['Platform', `${server.platform?.os ?? '?'}/${server.platform?.architecture ?? '?'}`],
      ['Listening on', server.listenAddrs.join(', ')],
    );
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
}

const cli = yargs(hostEntryFlags(followFlag(hideBin(process.argv))))
  .scriptName('swarmctl')
  .usage('$0 <command> [options]\n\nDrives a tswarm cluster.')
  .version(VERSION)
  .strict()
  .parserConfiguration({ 'camel-case-expansion': false, 'populate--': true })
  .fail(failUsage)
  .option('socket', {
    alias: 's',
    type: 'string',
    default: process.env.SWARM_SOCKET ?? DEFAULT_SOCKET_PATH,
    describe: 'swarmd control socket (env SWARM_SOCKET)',
  })
  .option('host', { alias: 'H', type: 'string', describe: 'Reach a manager over TCP (mutual TLS) at host:port instead of the socket' })
  .option('cert-dir', { type: 'string', default: process.env.SWARM_CERT_DIR, describe: 'With --host: directory with ca.crt, node.crt, node.key of a manager (env SWARM_CERT_DIR)' })
  .option('format', { alias: 'f', choices: ['table', 'json'] as const, default: 'table' as const, describe: 'Output format' })
  .option('quiet', { alias: 'q', type: 'boolean', describe: 'Print ids only (ls commands)' });

registerResourceCommands(cli)
  .command(
    'version',
    'Show the client version and the version and identity of the swarmd it talks to',
    () => {},
    async (argv) => {
      try {
        const server = await withClient(NodeInfoClient, targetFrom(argv), (c) => unary(c.info.bind(c), {}));
        printVersion(server, argv.format);
      } catch (err) {
        printVersion(undefined, argv.format);
        reportFatal('swarmctl', err);
      }
    },
  )
  .demandCommand(1, 'name a command (see --help)')
  .help()
  .parseAsync()
  .catch((err: unknown) => reportFatal('swarmctl', err));
