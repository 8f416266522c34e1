// `swarmctl service logs SERVICE` and `swarmctl task logs TASK`: the containers' logs, streamed
// from the nodes through the leader's log broker (docs/logs.md). Each line is prefixed as Docker
// does, `service.slot.task@node | line` (a global service's task shows its node id for the slot);
// a container's stdout goes to stdout, its stderr to stderr. A node whose logs cannot be had is
// one warning line on stderr. Exit 0 when the stream ends (or, following, on Ctrl-C); 1 when
// nodes were unavailable and nothing at all could be shown, or the call failed; 2 for a bad flag.
import * as grpc from '@grpc/grpc-js';
import type { Argv } from 'yargs';
import { LogsClient, LogStream, type LogMessage, type LogsUnavailable, type SubscribeLogsMessage, type SubscribeLogsRequest } from '../../proto/gen/tswarm/logs.js';
import { InvalidArgumentError, TswarmError } from '../../common/errors.js';
import { EXIT_USAGE, reportFatal } from '../util.js';
import { targetFrom, withClient, type Target } from './client.js';

export class LogsCommandError extends TswarmError {}

export interface LogsFormat {
  timestamps: boolean;
  taskIds: boolean;
  /** Full task ids instead of their first 12 characters. */
  noTrunc: boolean;
}

/** `--tail`: "all" (undefined) or a whole number; anything else is refused naming the flag. */
export function parseTail(text: string | number | undefined): number | undefined {
  if (text === undefined || text === 'all') return undefined;
  const s = String(text);
  if (!/^\d+$/.test(s)) throw new InvalidArgumentError('--tail', `"${s}" must be a whole number, 0 or more, or "all"`);
  return Number(s);
}

/** The prefix of an entry's line, as Docker's `service logs` writes it. */
export function prefix(m: LogMessage, f: LogsFormat): string {
  const c = m.context;
  if (!c) return '';
  const slot = c.slot ? String(c.slot) : c.nodeId;
  const task = f.taskIds ? `.${f.noTrunc ? c.taskId : c.taskId.slice(0, 12)}` : '';
  return `${c.serviceName || c.serviceId}.${slot}${task}@${c.nodeName || c.nodeId}`;
}

/** One output line (with its newline) for an entry. */
export function formatLine(m: LogMessage, f: LogsFormat): string {
  const data = m.data.endsWith('\n') ? m.data : `${m.data}\n`;
  return `${prefix(m, f)} | ${f.timestamps ? `${m.time} ` : ''}${data}`;
}

/** The warning for a node whose logs cannot be had. */
export function formatUnavailable(u: LogsUnavailable): string {
  const n = u.taskIds.length;
  return `warning: node ${u.nodeName || u.nodeId} (${u.nodeId}) ${u.reason}: logs of ${n} task${n === 1 ? '' : 's'} unavailable\n`;
}

/**
 * `-f` means --format everywhere else in swarmctl, but --follow after `service logs` and `task
 * logs` (as `docker service logs -f`): rewrites it there, also inside grouped short flags
 * (`-ft`), before yargs parses the command line.
 */
export function followFlag(args: string[]): string[] {
  const at = args.findIndex((w, i) => w === 'logs' && (args[i - 1] === 'service' || args[i - 1] === 'task'));
  if (at < 0) return args;
  const out = args.slice(0, at + 1);
  for (let i = at + 1; i < args.length; i++) {
    const w = args[i]!;
    if (w === '--') {
      out.push(...args.slice(i));
      break;
    }
    if (/^-[a-zA-Z]+$/.test(w) && w.includes('f')) {
      const rest = w.slice(1).replaceAll('f', '');
      out.push('--follow', ...(rest ? [`-${rest}`] : []));
    } else out.push(w);
  }
  return out;
}

interface Outcome {
  lines: number;
  unavailable: LogsUnavailable[];
}

/**
 * Streams one subscription to stdout/stderr until it ends, or until SIGINT/SIGTERM (which cancel
 * it: a clean end). Rejects with the server's one-line reason.
 */
export function streamLogs(target: Target, req: SubscribeLogsRequest, f: LogsFormat): Promise<Outcome> {
  return withClient(LogsClient, target, (client) =>
    new Promise<Outcome>((resolve, reject) => {
      const out: Outcome = { lines: 0, unavailable: [] };
      const call = client.subscribeLogs(req);
      let interrupted = false;
      const onSignal = (): void => {
        interrupted = true;
        call.cancel();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const done = (err?: Error): void => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        if (err) reject(err);
        else resolve(out);
      };
      call.on('data', (m: SubscribeLogsMessage) => {
        for (const u of m.unavailable) {
          out.unavailable.push(u);
          process.stderr.write(formatUnavailable(u));
        }
        // One write per stream and message (a message carries up to a few hundred entries).
        let stdout = '';
        let stderr = '';
        for (const e of m.messages) {
          out.lines++;
          if (e.stream === LogStream.LOG_STREAM_STDERR) stderr += formatLine(e, f);
          else stdout += formatLine(e, f);
        }
        if (stderr) process.stderr.write(stderr);
        if (stdout && !process.stdout.write(stdout)) {
          call.pause();
          process.stdout.once('drain', () => call.resume());
        }
      });
      call.on('error', (err: grpc.ServiceError) => {
        if (interrupted && err.code === grpc.status.CANCELLED) done();
        else done(new LogsCommandError(err.details || err.message));
      });
      call.on('end', () => done());
    }),
  );
}

interface LogsArgs {
  socket: string;
  host?: string | undefined;
  'cert-dir'?: string | undefined;
  follow?: boolean;
  tail?: string;
  timestamps?: boolean;
  'task-ids'?: boolean;
  trunc?: boolean;
  [ref: string]: unknown;
}

/** Adds `logs <service|task>` to a yargs command group (`service` or `task`). */
export function logsCommand<T>(y: Argv<T>, kind: 'service' | 'task'): Argv<T> {
  return y.command(
    `logs <${kind}>`,
    kind === 'service' ? "Show a service's logs (every task's, prefixed service.slot.task@node)" : "Show a task's log",
    (o) =>
      o
        .positional(kind, { type: 'string', demandOption: true, describe: `The ${kind} (id, name or unique id prefix)` })
        .option('follow', { type: 'boolean', default: false, describe: '(-f) Keep streaming new lines, and those of tasks that start later, until Ctrl-C' })
        .option('tail', { type: 'string', default: 'all', describe: 'Lines to show from the end of each task\'s log ("all" or a number)' })
        .option('timestamps', { alias: 't', type: 'boolean', default: false, describe: "Show each line's time" })
        // yargs reads --no-X as X=false.
        .option('task-ids', { type: 'boolean', default: true, describe: 'Task ids in the prefixes (--no-task-ids: without)' })
        .option('trunc', { type: 'boolean', default: true, describe: 'Task ids cut to 12 characters (--no-trunc: whole)' }),
    async (a) => {
      const args = a as unknown as LogsArgs;
      try {
        const ref = String(args[kind]);
        const req: SubscribeLogsRequest = {
          selector: kind === 'service' ? { serviceIds: [ref], taskIds: [] } : { serviceIds: [], taskIds: [ref] },
          options: { follow: args.follow === true, tail: parseTail(args.tail) },
        };
        const r = await streamLogs(targetFrom(args), req, { timestamps: args.timestamps === true, taskIds: args['task-ids'] !== false, noTrunc: args.trunc === false });
        if (r.lines === 0 && r.unavailable.length > 0) {
          const nodes = r.unavailable.map((u) => u.nodeName || u.nodeId).join(', ');
          throw new LogsCommandError(`no logs of ${kind} ${ref} could be shown: node${r.unavailable.length === 1 ? '' : 's'} ${nodes} unavailable`);
        }
      } catch (err) {
        if (err instanceof InvalidArgumentError) {
          // A bad flag is bad usage (exit 2), as for the other commands.
          process.stderr.write(`swarmctl: ${err.message}\n`);
          process.exit(EXIT_USAGE);
        }
        reportFatal('swarmctl', err);
      }
    },
  );
}
