// The logging convention: pino, JSON lines by default, readable text on a terminal. Every line
// carries `node` (the node id) and `component` (raft, dispatcher, agent, ...); a component makes
// its logger with `log.child({ component: 'raft' })`.
import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_FORMATS = ['auto', 'json', 'text'] as const;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export interface LogOptions {
  /** The node id, or a placeholder such as "-" before the node has one. */
  node: string;
  component: string;
  level?: string;
  /** auto: text when the destination is a terminal, JSON otherwise. */
  format?: LogFormat;
  /** Where lines go; default standard error (file descriptor 2). */
  destination?: DestinationStream & { isTTY?: boolean };
}

export function createLogger(options: LogOptions): Logger {
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true });
  const isTTY = options.destination ? options.destination.isTTY === true : process.stderr.isTTY === true;
  const format = options.format ?? 'auto';
  const text = format === 'text' || (format === 'auto' && isTTY);
  const base = { node: options.node, component: options.component };
  const opts = { level: options.level ?? 'info', base, timestamp: pino.stdTimeFunctions.isoTime };
  if (!text) return pino(opts, destination);
  const stream = pretty({
    destination,
    sync: true,
    colorize: isTTY,
    ignore: 'node,component',
    messageFormat: '{node} {component}: {msg}',
    translateTime: 'SYS:HH:MM:ss.l',
  });
  return pino(opts, stream);
}
