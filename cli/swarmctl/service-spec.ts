// swarmctl's service flags, as Docker names them, and the pure functions that turn them into a
// ServiceSpec: `buildServiceSpec(flags, refs)` for `service create` and `updateServiceSpec(spec,
// flags, refs)` for `service update` (only the fields the user gave change). No I/O here: the
// shell (resources.ts) looks up the secrets and configs named by `referencedObjects(flags)` and
// hands them in. A bad value throws one FlagError naming the flag and the rule (exit code 2); what
// only the cluster can judge (a constraint's syntax, a reservation above the limit, ...) is left to
// the control API's validation (manager/controlapi/validate.ts), which names the spec field.
import type { Options } from 'yargs';
import type { ContainerSpec, ServiceSpec, TaskSpec } from '../../proto/gen/tswarm/specs.js';
import {
  EndpointSpec_ResolutionMode, Mount_Type, PortConfig_Protocol, PortConfig_PublishMode, RestartPolicy_Condition, UpdateConfig_FailureAction, UpdateConfig_Order,
  type FileTarget, type HealthConfig, type Mount, type PortConfig, type Resources, type UpdateConfig,
} from '../../proto/gen/tswarm/types.js';
import { InvalidArgumentError } from '../../common/errors.js';
import { normalizeCapability } from '../../common/capabilities.js';
import { isSignal, sysctlProblem, ULIMIT_NAMES } from '../../common/process.js';
import { dnsOptionProblem, isHostName } from '../../common/dns.js';
import { logConfig, LogDriverError } from '../../common/log-driver.js';
import { isIP } from 'node:net';

/** Bad usage of one flag: `field` is the flag (`--limit-memory`), `rule` says what it must be. */
export class FlagError extends InvalidArgumentError {}

function bad(flag: string, rule: string): never {
  throw new FlagError(flag, rule);
}

// ------------------------------------------------------------------------------------ the flags

const str = (describe: string, alias?: string): Options => ({ type: 'string', describe, ...(alias ? { alias } : {}) });
/** A repeatable flag: one value each time (nargs), so that what follows is not taken too (`--env-add A=1 web`). */
const list = (describe: string, alias?: string): Options => ({ type: 'string', array: true, nargs: 1, describe, ...(alias ? { alias } : {}) });
/** The command's arguments: every word up to the next flag. */
const words = (describe: string): Options => ({ type: 'string', array: true, describe });
const bool = (describe: string): Options => ({ type: 'boolean', describe });

/** The flags that set one value, the same for create and update. No defaults: absent = not given. */
const scalarOptions = {
  replicas: str('Number of tasks (replicated), or of completions (replicated-job)'),
  'max-concurrent': str('Job tasks run at once (replicated-job; default: --replicas)'),
  'replicas-max-per-node': str('Most tasks of this service on one node (0: unlimited)'),
  'reserve-cpu': str('CPUs reserved on the node, e.g. 0.5'),
  'reserve-memory': str('Memory reserved on the node, e.g. 64M, 1G'),
  'limit-cpu': str('Most CPUs the task may use, e.g. 1.5'),
  'limit-memory': str('Most memory the task may use, e.g. 512M'),
  'limit-pids': str('Most processes in the task (0: unlimited)'),
  'restart-condition': str('Restart when: none, on-failure, any (default any; on-failure for jobs)'),
  'restart-delay': str('Delay between restarts (default 5s)'),
  'restart-max-attempts': str('Restarts before giving up (0: unlimited)'),
  'restart-window': str('Window the attempts are counted in (0: unbounded)'),
  'update-parallelism': str('Tasks updated at once (0: all; default 1)'),
  'update-delay': str('Delay between update batches (default 0s)'),
  'update-failure-action': str('On update failure: pause, continue, rollback (default pause)'),
  'update-monitor': str('How long a new task is watched for failure (default 5s)'),
  'update-max-failure-ratio': str('Failure rate tolerated during an update, 0 to 1 (default 0)'),
  'update-order': str('stop-first or start-first (default stop-first)'),
  'rollback-parallelism': str('Tasks rolled back at once (0: all; default 1)'),
  'rollback-delay': str('Delay between rollback batches (default 0s)'),
  'rollback-failure-action': str('On rollback failure: pause, continue (default pause)'),
  'rollback-monitor': str('How long a rolled-back task is watched for failure (default 5s)'),
  'rollback-max-failure-ratio': str('Failure rate tolerated during a rollback, 0 to 1 (default 0)'),
  'rollback-order': str('stop-first or start-first (default stop-first)'),
  hostname: str('Container hostname'),
  'endpoint-mode': str('How clients find the service on its networks: vip (its name answers a virtual IP, balanced over its tasks; the default) or dnsrr (its name answers the tasks\' addresses)'),
  user: str('USER, UID, USER:GROUP or UID:GID', 'u'),
  workdir: str('Working directory in the container', 'w'),
  entrypoint: str("Replaces the image's ENTRYPOINT (split into words as a shell would)"),
  'stop-grace-period': str('Time between the stop signal and SIGKILL (default 10s)'),
  'stop-signal': str("Signal that stops the container (default: the image's, else SIGTERM)"),
  init: bool('Run an init as PID 1 that forwards signals and reaps processes'),
  'read-only': bool("Mount the container's root filesystem read-only"),
  tty: { type: 'boolean', alias: 't', describe: "A terminal as the container's standard input and output" },
  'no-new-privileges': bool('setuid programs and file capabilities grant nothing (no_new_privs)'),
  // yargs reads --no-X as X=false (boolean negation), so --no-new-privileges arrives as this.
  'new-privileges': { type: 'boolean', hidden: true },
  'oom-score-adj': str("The container's OOM score adjustment, -1000 to 1000"),
  'shm-size': str('Size of /dev/shm, e.g. 128M (default 64M)'),
  'log-driver': str('Where the output goes: json-file (default, bounded) or none'),
  isolation: str('Isolation technology: only "default" (process isolation on Linux)'),
  'health-cmd': str('Command run in the container to check its health (sh -c)'),
  'health-interval': str('Time between checks (default 30s)'),
  'health-timeout': str('Longest a check may take (default 30s)'),
  'health-retries': str('Failures in a row that make the task unhealthy (default 3)'),
  'health-start-period': str('Failures in this first period do not count'),
  'health-start-interval': str('Time between checks during the start period'),
  'no-healthcheck': bool('Disable any healthcheck'),
  // yargs reads --no-X as X=false (boolean negation), so --no-healthcheck arrives as this.
  healthcheck: { type: 'boolean', hidden: true },
} as const satisfies Record<string, Options>;

/** `service create` flags (besides --detach and --timeout, which are the shell's). */
export const createOptions = {
  name: { type: 'string', demandOption: true, describe: 'Service name' },
  image: { type: 'string', demandOption: true, describe: 'Image reference' },
  mode: str('replicated, global, replicated-job or global-job (default replicated)'),
  ...scalarOptions,
  env: list('Environment variable KEY=VALUE', 'e'),
  label: list('Service label KEY=VALUE', 'l'),
  'container-label': list('Container label KEY=VALUE'),
  constraint: list('Placement constraint, e.g. node.labels.zone==east'),
  'placement-pref': list('Placement preference: spread=node.labels.NAME'),
  mount: list('type=bind|volume|tmpfs,source=..,target=..[,readonly][,tmpfs-size=64M][,tmpfs-mode=1777]'),
  secret: list('A secret as a file in /run/secrets: NAME, or source=NAME[,target=FILE][,mode=0400][,uid=N][,gid=N]'),
  config: list('A config as a file (default /NAME): NAME, or source=NAME[,target=PATH][,mode=0444][,uid=N][,gid=N]'),
  publish: list('published=8080,target=80[,protocol=tcp|udp|sctp][,mode=ingress|host], or 8080:80[/udp]: ingress (the default) answers on every node (the routing mesh), host only where a task runs', 'p'),
  network: list('Network to attach: NAME, or name=NAME[,alias=A]'),
  'cap-add': list('Add Linux capabilities (NET_ADMIN or CAP_NET_ADMIN, ALL)'),
  'cap-drop': list('Drop Linux capabilities'),
  ulimit: list('NAME=SOFT[:HARD], e.g. nofile=1024:2048'),
  group: list('Supplementary group of the user'),
  sysctl: list('Namespaced kernel parameter KEY=VALUE (net.*, fs.mqueue.*, kernel.shm*, kernel.msg*, kernel.sem)'),
  dns: list('Nameserver of the container (replaces the host\'s)'),
  'dns-search': list('DNS search domain of the container'),
  'dns-option': list('Resolver option of the container, e.g. ndots:2'),
  // `--host NAME:IP` after the command (as docker service create; see hostEntryFlags).
  'host-entry': list('An /etc/hosts entry NAME:IP (given as --host after the command)'),
  'log-opt': list('Log driver option KEY=VALUE (json-file: max-size, max-file)'),
  args: words('Command arguments (or give them after --: service create ... -- httpd -f -p 80)'),
} as const satisfies Record<string, Options>;

/** `service update` flags (besides --detach, --timeout and --rollback). */
export const updateOptions = {
  image: str('Image reference'),
  args: words('Command arguments (replace the current ones)'),
  force: bool('Roll the tasks out again even if nothing changed'),
  ...scalarOptions,
  'env-add': list('Add or replace an environment variable KEY=VALUE'),
  'env-rm': list('Remove an environment variable by its KEY'),
  'label-add': list('Add or replace a service label KEY=VALUE'),
  'label-rm': list('Remove a service label by its KEY'),
  'container-label-add': list('Add or replace a container label KEY=VALUE'),
  'container-label-rm': list('Remove a container label by its KEY'),
  'constraint-add': list('Add a placement constraint'),
  'constraint-rm': list('Remove a placement constraint (as written)'),
  'placement-pref-add': list('Add a placement preference: spread=node.labels.NAME'),
  'placement-pref-rm': list('Remove a placement preference: spread=node.labels.NAME'),
  'mount-add': list('Add or replace (by target) a mount, as --mount'),
  'mount-rm': list('Remove a mount by its target path'),
  'secret-add': list('Add or replace (by file) a secret, as --secret'),
  'secret-rm': list('Remove a secret by its name'),
  'config-add': list('Add or replace (by file) a config, as --config'),
  'config-rm': list('Remove a config by its name'),
  'publish-add': list('Add or replace a published port, as --publish'),
  'publish-rm': list('Remove a published port by its target: PORT[/PROTOCOL]'),
  'network-add': list('Attach a network, as --network'),
  'network-rm': list('Detach a network by its name'),
  'cap-add': list('Add Linux capabilities (also taken off the dropped ones)'),
  'cap-drop': list('Drop Linux capabilities (also taken off the added ones)'),
  'ulimit-add': list('Add or replace a ulimit NAME=SOFT[:HARD]'),
  'ulimit-rm': list('Remove a ulimit by its NAME'),
  'group-add': list('Add a supplementary group'),
  'group-rm': list('Remove a supplementary group'),
  'sysctl-add': list('Add or replace a kernel parameter KEY=VALUE'),
  'sysctl-rm': list('Remove a kernel parameter by its KEY'),
  'dns-add': list('Add a nameserver'),
  'dns-rm': list('Remove a nameserver'),
  'dns-search-add': list('Add a DNS search domain'),
  'dns-search-rm': list('Remove a DNS search domain'),
  'dns-option-add': list('Add a resolver option'),
  'dns-option-rm': list('Remove a resolver option'),
  'host-add': list('Add an /etc/hosts entry NAME:IP'),
  'host-rm': list('Remove an /etc/hosts entry NAME:IP (or NAME: every entry of it)'),
  'log-opt': list('Log driver options KEY=VALUE (with --log-driver; they replace the present ones)'),
} as const satisfies Record<string, Options>;

type FlagName = keyof typeof createOptions | keyof typeof updateOptions;

/** Parsed command line as yargs hands it over (only the flags given are present). */
export type Flags = Partial<Record<FlagName | '--', unknown>>;

/** The objects a spec refers to by id and name, found by the shell for `referencedObjects`. */
export interface Refs {
  secrets: Map<string, { id: string; name: string }>;
  configs: Map<string, { id: string; name: string }>;
  /** The networks --network-rm names (a service's spec holds network ids). */
  networks: Map<string, { id: string; name: string }>;
}

/** The last value given for a flag (pflag's rule: a repeated scalar flag takes the last one). */
function one(f: Flags, k: FlagName): string | undefined {
  const v = f[k];
  if (v === undefined) return undefined;
  return String(Array.isArray(v) ? v[v.length - 1] : v);
}

function many(f: Flags, k: FlagName | '--'): string[] {
  const v = f[k];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

function flagSet(f: Flags, k: FlagName): boolean | undefined {
  const v = f[k];
  return v === undefined ? undefined : Boolean(Array.isArray(v) ? v[v.length - 1] : v);
}

const given = (f: Flags, ks: readonly FlagName[]): boolean => ks.some((k) => f[k] !== undefined);

// ------------------------------------------------------------------------------------ values

/** A Go-style duration (300ms, 5s, 2m, 2160h, 1h30m, 0) in milliseconds. */
export function durationMs(text: string, flag: string): number {
  if (text === '0') return 0;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) bad(flag, `"${text}" is not a duration (e.g. 500ms, 5s, 2m, 2160h)`);
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * units[p[2]!]!, 0));
}

/** A whole number, 0 or more. */
export function count(text: string, flag: string): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(n)) bad(flag, `"${text}" must be a whole number, 0 or more`);
  return n;
}

/** A decimal number of CPUs (0.5, 2) as nano CPUs, Docker's unit. */
export function nanoCpus(text: string, flag: string): number {
  if (!/^([0-9]+(\.[0-9]*)?|\.[0-9]+)$/.test(text)) bad(flag, `"${text}" must be a number of CPUs, e.g. 0.5 or 2`);
  return Math.round(Number(text) * 1e9);
}

/**
 * A size in bytes as Docker reads it (RAMInBytes): a number with an optional binary unit
 * b, k, m, g, t, p (any case, optionally followed by "i" and/or "b"): 512k, 64M, 1.5g, 64MiB.
 */
export function sizeBytes(text: string, flag: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(text);
  if (!m) bad(flag, `"${text}" must be a size in bytes, e.g. 512k, 64M, 1G`);
  const power = m[2] ? 'kmgtp'.indexOf(m[2].toLowerCase()) + 1 : 0;
  const n = Math.round(Number(m[1]) * 1024 ** power);
  if (!Number.isSafeInteger(n)) bad(flag, `"${text}" is too large`);
  return n;
}

function ratio(text: string, flag: string): number {
  const n = Number(text);
  if (!/^([0-9]+(\.[0-9]*)?|\.[0-9]+)$/.test(text) || n > 1) bad(flag, `"${text}" must be a number from 0 to 1, e.g. 0.2`);
  return n;
}

function choice<T extends string>(text: string, flag: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(text)) bad(flag, `"${text}" must be one of ${choices.join(', ')}`);
  return text as T;
}

function octal(text: string, flag: string): number {
  if (!/^[0-7]{1,4}$/.test(text)) bad(flag, `"${text}" must be a file mode in octal, e.g. 0400`);
  return parseInt(text, 8);
}

/** Splits a command line into words as a POSIX shell would (quotes and backslashes; no expansion). */
export function shellWords(text: string, flag: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    const next = text[i + 1];
    if (quote === "'") {
      if (ch === "'") quote = undefined;
      else word += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = undefined;
      else if (ch === '\\' && next !== undefined && '"\\$`'.includes(next)) {
        word += next;
        i++;
      } else word += ch;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      inWord = true;
      if (ch === "'" || ch === '"') quote = ch;
      else if (ch === '\\' && next !== undefined) {
        word += next;
        i++;
      } else word += ch;
    }
  }
  if (quote) bad(flag, `"${text}" has an unterminated ${quote} quote`);
  if (inWord) words.push(word);
  return words;
}

/** `a=1,b,c=x` (Docker's CSV options); a key without "=" maps to "". Keys must be among `known`. */
function keyValues(text: string, flag: string, known: readonly string[]): Map<string, string> {
  const kv = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const k = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (!k) bad(flag, `"${text}" must be KEY=VALUE pairs separated by commas`);
    if (!known.includes(k)) bad(flag, `unknown key "${k}" in "${text}" (${known.join(', ')})`);
    if (kv.has(k)) bad(flag, `"${k}" is given twice in "${text}"`);
    kv.set(k, eq < 0 ? '' : part.slice(eq + 1));
  }
  return kv;
}

function boolValue(text: string, flag: string, key: string): boolean {
  if (['', 'true', '1'].includes(text)) return true;
  if (['false', '0'].includes(text)) return false;
  return bad(flag, `${key}=${text} must be true or false`);
}

/** KEY=VALUE items (labels); a lone KEY means an empty value. */
function labelsFrom(items: string[], flag: string, into: Record<string, string> = {}): Record<string, string> {
  for (const l of items) {
    const i = l.indexOf('=');
    const k = i < 0 ? l : l.slice(0, i);
    if (!k) bad(flag, `"${l}" must be KEY=VALUE`);
    into[k] = i < 0 ? '' : l.slice(i + 1);
  }
  return into;
}

const envKey = (e: string): string => e.split('=')[0]!;

function envItem(e: string, flag: string): string {
  if (!envKey(e)) bad(flag, `"${e}" must be KEY=VALUE or KEY`);
  return e;
}

/** Docker's --mount: `type=bind|volume|tmpfs` (default volume), source/src, target/dst/destination, readonly/ro, tmpfs-size, tmpfs-mode. */
export function parseMount(text: string, flag: string): Mount {
  const kv = keyValues(text, flag, ['type', 'source', 'src', 'target', 'dst', 'destination', 'readonly', 'ro', 'tmpfs-size', 'tmpfs-mode']);
  const type = choice(kv.get('type') ?? 'volume', flag, ['bind', 'volume', 'tmpfs'] as const);
  const pick = (...ks: string[]): string | undefined => {
    const present = ks.filter((k) => kv.has(k));
    if (present.length > 1) bad(flag, `${present.join(' and ')} mean the same; give one`);
    return present[0] === undefined ? undefined : kv.get(present[0]);
  };
  const source = pick('source', 'src') ?? '';
  const target = pick('target', 'dst', 'destination');
  const ro = pick('readonly', 'ro');
  if (!target) bad(flag, `"${text}" needs target=PATH (the path in the container)`);
  if (!target.startsWith('/')) bad(flag, `target "${target}" must be an absolute path`);
  if (type === 'tmpfs' && source) bad(flag, 'a tmpfs mount takes no source');
  if (type === 'bind' && !source.startsWith('/')) bad(flag, `a bind mount needs source=/ABSOLUTE/HOST/PATH${source ? ` (not "${source}")` : ''}`);
  if (type === 'volume' && !source) bad(flag, 'a volume mount needs source=NAME (anonymous volumes are not supported)');
  if (type !== 'tmpfs' && (kv.has('tmpfs-size') || kv.has('tmpfs-mode'))) bad(flag, 'tmpfs-size and tmpfs-mode are for type=tmpfs only');
  const size = kv.get('tmpfs-size');
  const mode = kv.get('tmpfs-mode');
  return {
    type: type === 'bind' ? Mount_Type.TYPE_BIND : type === 'volume' ? Mount_Type.TYPE_VOLUME : Mount_Type.TYPE_TMPFS,
    source,
    target,
    readOnly: ro === undefined ? false : boolValue(ro, flag, 'readonly'),
    tmpfsSizeBytes: size === undefined ? 0 : sizeBytes(size, `${flag} tmpfs-size`),
    tmpfsMode: mode === undefined ? 0 : octal(mode, `${flag} tmpfs-mode`),
  };
}

/**
 * Docker's --publish in its long form `published=8080,target=80,protocol=tcp,mode=host`. The
 * short form `8080:80` and mode=ingress (Docker's default) go through a routing mesh tswarm does
 * not have yet: they are refused with the long form to use instead.
 */
export function parsePort(text: string, flag: string): PortConfig {
  const protocolOf = (p: string): PortConfig_Protocol => (p === 'udp' ? PortConfig_Protocol.PROTOCOL_UDP : p === 'sctp' ? PortConfig_Protocol.PROTOCOL_SCTP : PortConfig_Protocol.PROTOCOL_TCP);
  if (!text.includes('=')) {
    // Docker's short form, [PUBLISHED:]TARGET[/PROTOCOL], in ingress mode (no PUBLISHED: one is picked).
    const m = /^(?:([0-9]+):)?([0-9]+)(?:\/(tcp|udp|sctp))?$/.exec(text);
    if (!m) bad(flag, `"${text}" must be [PUBLISHED:]TARGET[/PROTOCOL] or published=P,target=T[,protocol=tcp|udp|sctp][,mode=ingress|host]`);
    const [published, target] = [Number(m[1] ?? 0), Number(m[2])];
    if (published > 65535 || target < 1 || target > 65535) bad(flag, `"${text}": ports are 1-65535`);
    return { name: '', protocol: protocolOf(m[3] ?? 'tcp'), targetPort: target, publishedPort: published, publishMode: PortConfig_PublishMode.PUBLISH_MODE_INGRESS };
  }
  const kv = keyValues(text, flag, ['published', 'target', 'protocol', 'mode']);
  const mode = choice(kv.get('mode') ?? 'ingress', `${flag} mode`, ['host', 'ingress'] as const);
  const port = (k: string, min: number): number => {
    const v = kv.get(k) ?? '';
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || n < min || n > 65535) bad(flag, `${k}=${v} must be a port number (${min}-65535)`);
    return n;
  };
  if (!kv.has('target')) bad(flag, `"${text}" needs target=PORT (the container's port)`);
  // Picking a free port on each node is not done: a host-mode port names its published port. In
  // ingress mode the managers pick one from 30000-32767.
  if (!kv.has('published') && mode === 'host') bad(flag, `"${text}" needs published=PORT (the port on the node)`);
  const protocol = choice(kv.get('protocol') ?? 'tcp', `${flag} protocol`, ['tcp', 'udp', 'sctp'] as const);
  return {
    name: '',
    protocol: protocolOf(protocol),
    targetPort: port('target', 1),
    publishedPort: kv.has('published') ? port('published', 1) : 0,
    publishMode: mode === 'host' ? PortConfig_PublishMode.PUBLISH_MODE_HOST : PortConfig_PublishMode.PUBLISH_MODE_INGRESS,
  };
}

/** `NAME` or `source=NAME,target=FILE,mode=0400,uid=N,gid=N` (Docker's --secret and --config). */
export function parseFileReference(text: string, flag: string, defaultTarget: (name: string) => string): { source: string; file: FileTarget; targetGiven: boolean } {
  if (!text.includes('=')) {
    if (!text || text.includes(',')) bad(flag, `"${text}" must be NAME or source=NAME[,target=..][,mode=..][,uid=..][,gid=..]`);
    return { source: text, file: { name: defaultTarget(text), uid: 0, gid: 0, mode: 0o444 }, targetGiven: false };
  }
  const kv = keyValues(text, flag, ['source', 'src', 'target', 'mode', 'uid', 'gid']);
  const source = kv.get('source') ?? kv.get('src');
  if (!source) bad(flag, `"${text}" needs source=NAME`);
  const id = (k: string): number => (kv.has(k) ? count(kv.get(k)!, `${flag} ${k}`) : 0);
  const target = kv.get('target');
  if (target === '') bad(flag, 'target= must not be empty');
  const file = { name: target ?? defaultTarget(source), uid: id('uid'), gid: id('gid'), mode: kv.has('mode') ? octal(kv.get('mode')!, `${flag} mode`) : 0o444 };
  return { source, file, targetGiven: target !== undefined };
}

const secretTarget = (name: string): string => name;
/** Docker's default target for a config is /NAME. */
const configTarget = (name: string): string => `/${name}`;

function parsePreference(text: string, flag: string): { spreadDescriptor: string } {
  const m = /^spread=(node\.labels\.[A-Za-z0-9_.-]+)$/.exec(text);
  if (!m) bad(flag, `"${text}" must be spread=node.labels.NAME (the only strategy)`);
  return { spreadDescriptor: m[1]! };
}

function parseNetwork(text: string, flag: string): { target: string; aliases: string[] } {
  if (!text.includes('=')) {
    if (!text) bad(flag, 'names no network');
    return { target: text, aliases: [] };
  }
  const aliases: string[] = [];
  let target = '';
  for (const part of text.split(',')) {
    const [k, v = ''] = [part.slice(0, part.indexOf('=')), part.slice(part.indexOf('=') + 1)];
    if (k === 'name' || k === 'target') target = v;
    else if (k === 'alias') aliases.push(v);
    else bad(flag, `unknown key "${part.includes('=') ? k : part}" in "${text}" (name, alias)`);
  }
  if (!target) bad(flag, `"${text}" needs name=NETWORK`);
  return { target, aliases };
}

/** NET_ADMIN, cap_net_admin or CAP_NET_ADMIN → CAP_NET_ADMIN; ALL stays ALL. */
export function capability(text: string, flag: string): string {
  return normalizeCapability(text) ?? bad(flag, `"${text}" is not a Linux capability (e.g. NET_ADMIN, SYS_TIME, ALL)`);
}

/** `nofile=1024:2048` or `nproc=512` (soft = hard). */
export function parseUlimit(text: string, flag: string): { name: string; soft: number; hard: number } {
  const m = /^([a-z]+)=([0-9]+)(?::([0-9]+))?$/.exec(text);
  if (!m) bad(flag, `"${text}" must be NAME=SOFT[:HARD], e.g. nofile=1024:2048`);
  if (!ULIMIT_NAMES.includes(m[1]!)) bad(flag, `"${m[1]}" is not a ulimit (${ULIMIT_NAMES.join(', ')})`);
  const soft = Number(m[2]);
  const hard = m[3] === undefined ? soft : Number(m[3]);
  if (soft > hard) bad(flag, `"${text}": the soft limit ${soft} is above the hard limit ${hard}`);
  return { name: m[1]!, soft, hard };
}

/** SIGTERM, TERM, term → SIGTERM; numbers stay numbers. */
export function signal(text: string, flag: string): string {
  const up = text.toUpperCase();
  const sig = /^[0-9]+$/.test(up) || up.startsWith('SIG') ? up : `SIG${up}`;
  if (!isSignal(sig)) bad(flag, `"${text}" is not a signal (e.g. SIGTERM, SIGUSR1, 15)`);
  return sig;
}

// ------------------------------------------------------------------------------------ defaults

/** Docker's (SwarmKit's) update and rollback defaults, used when a first --update-* or --rollback-* flag makes the config. */
const defaultUpdateConfig = (): UpdateConfig => ({
  parallelism: 1, delayMs: 0, failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_PAUSE, monitorMs: 5000, maxFailureRatio: 0, order: UpdateConfig_Order.ORDER_STOP_FIRST,
});

const isJob = (s: ServiceSpec): boolean => s.mode?.$case === 'replicatedJob' || s.mode?.$case === 'globalJob';

function emptyContainer(image: string): ContainerSpec {
  return {
    image, labels: {}, command: [], args: [], hostname: '', env: [], dir: '', user: '', groups: [], mounts: [], stopGracePeriodMs: 10_000, stopSignal: '',
    secrets: [], configs: [], capabilityAdd: [], capabilityDrop: [], ulimits: [], readOnly: false, tty: false, init: false, oomScoreAdj: 0,
    sysctls: {}, noNewPrivileges: false, shmSizeBytes: 0, hosts: [],
  };
}

// ------------------------------------------------------------------------------------ create

const MODES = ['replicated', 'global', 'replicated-job', 'global-job'] as const;

/** The secrets, configs and removed networks the flags name (by name or id), for the shell to look up. */
export function referencedObjects(f: Flags): { secrets: string[]; configs: string[]; networks: string[] } {
  const sources = (ks: FlagName[], dflt: (n: string) => string): string[] => ks.flatMap((k) => many(f, k).map((t) => parseFileReference(t, `--${k}`, dflt).source));
  return { secrets: [...new Set(sources(['secret', 'secret-add'], secretTarget))], configs: [...new Set(sources(['config', 'config-add'], configTarget))], networks: [...new Set(many(f, 'network-rm'))] };
}

/** Stand-ins for the objects `referencedObjects` names, to check every flag before any look-up. */
export function unresolvedRefs(f: Flags): Refs {
  const { secrets, configs, networks } = referencedObjects(f);
  const stand = (names: string[]): Map<string, { id: string; name: string }> => new Map(names.map((n) => [n, { id: n, name: n }]));
  return { secrets: stand(secrets), configs: stand(configs), networks: stand(networks) };
}

/** `service create`: the spec the flags describe, with Docker's defaults for what they leave out. */
export function buildServiceSpec(f: Flags, refs: Refs): ServiceSpec {
  const name = one(f, 'name') ?? bad('--name', 'is required');
  const image = one(f, 'image') ?? bad('--image', 'is required');
  const mode = choice(one(f, 'mode') ?? 'replicated', '--mode', MODES);
  const replicas = one(f, 'replicas');
  const maxConcurrent = one(f, 'max-concurrent');
  if (replicas !== undefined && (mode === 'global' || mode === 'global-job')) bad('--replicas', `a ${mode} service runs one task per node; drop --replicas or use --mode replicated`);
  if (maxConcurrent !== undefined && mode !== 'replicated-job') bad('--max-concurrent', 'is for --mode replicated-job only');
  const n = replicas === undefined ? 1 : count(replicas, '--replicas');
  const spec: ServiceSpec = {
    annotations: { name, labels: labelsFrom(many(f, 'label'), '--label') },
    mode:
      mode === 'replicated' ? { $case: 'replicated', replicated: { replicas: n } }
      : mode === 'global' ? { $case: 'global', global: {} }
      : mode === 'global-job' ? { $case: 'globalJob', globalJob: {} }
      // Docker's default for max-concurrent is the number of completions.
      : { $case: 'replicatedJob', replicatedJob: { totalCompletions: n, maxConcurrent: maxConcurrent === undefined ? n : count(maxConcurrent, '--max-concurrent') } },
    task: { container: emptyContainer(image), networks: [], forceUpdate: 0 },
  };
  const c = spec.task!.container!;
  c.args = f.args !== undefined ? many(f, 'args') : many(f, '--');
  c.env = many(f, 'env').map((e) => envItem(e, '--env'));
  c.labels = labelsFrom(many(f, 'container-label'), '--container-label');
  c.groups = many(f, 'group');
  applyScalars(spec, f, true);
  applyLists(spec, f, refs, {
    constraint: 'constraint', pref: 'placement-pref', mount: 'mount', secret: 'secret', config: 'config', publish: 'publish', network: 'network', ulimit: 'ulimit',
    sysctl: 'sysctl', dns: 'dns', dnsSearch: 'dns-search', dnsOption: 'dns-option', host: 'host-entry',
  });
  return spec;
}

// ------------------------------------------------------------------------------------ update

const UPDATE_FLAGS: readonly FlagName[] = ['update-parallelism', 'update-delay', 'update-failure-action', 'update-monitor', 'update-max-failure-ratio', 'update-order'];
const ROLLBACK_FLAGS: readonly FlagName[] = ['rollback-parallelism', 'rollback-delay', 'rollback-failure-action', 'rollback-monitor', 'rollback-max-failure-ratio', 'rollback-order'];
const RESTART_FLAGS: readonly FlagName[] = ['restart-condition', 'restart-delay', 'restart-max-attempts', 'restart-window'];
const HEALTH_FLAGS: readonly FlagName[] = ['health-cmd', 'health-interval', 'health-timeout', 'health-retries', 'health-start-period', 'health-start-interval'];

/** Every flag that changes the spec (for `--rollback`, which takes none of them). */
export const SPEC_UPDATE_FLAGS: readonly FlagName[] = Object.keys(updateOptions) as FlagName[];

/**
 * `service update`: a copy of `spec` with the flags' changes; what no flag names stays as it was.
 * A -rm of something the service does not have is an error (not silently nothing).
 */
export function updateServiceSpec(current: ServiceSpec, f: Flags, refs: Refs, service = current.annotations?.name ?? 'the service'): ServiceSpec {
  const spec = structuredClone(current);
  spec.task ??= { networks: [], forceUpdate: 0 };
  const c = (spec.task.container ??= emptyContainer(''));
  if (many(f, '--').length) bad('--', 'service update takes new arguments as --args W...');
  const replicas = one(f, 'replicas');
  if (replicas !== undefined) setReplicas(spec, count(replicas, '--replicas'), service, '--replicas');
  const maxConcurrent = one(f, 'max-concurrent');
  if (maxConcurrent !== undefined) {
    if (spec.mode?.$case !== 'replicatedJob') bad('--max-concurrent', `is for replicated jobs; service ${service} is ${spec.mode?.$case ?? 'without a mode'}`);
    spec.mode.replicatedJob.maxConcurrent = count(maxConcurrent, '--max-concurrent');
  }
  const image = one(f, 'image');
  if (image !== undefined) c.image = image || bad('--image', 'must not be empty');
  if (f.args !== undefined) c.args = many(f, 'args');
  if (flagSet(f, 'force')) spec.task.forceUpdate += 1;

  spec.annotations = { name: spec.annotations?.name ?? '', labels: removeKeys(labelsFrom(many(f, 'label-add'), '--label-add', { ...(spec.annotations?.labels ?? {}) }), many(f, 'label-rm'), '--label-rm', 'label', service) };
  c.labels = removeKeys(labelsFrom(many(f, 'container-label-add'), '--container-label-add', { ...c.labels }), many(f, 'container-label-rm'), '--container-label-rm', 'container label', service);
  for (const k of many(f, 'env-rm')) {
    if (!c.env.some((e) => envKey(e) === k)) bad('--env-rm', `service ${service} has no environment variable "${k}"`);
    c.env = c.env.filter((e) => envKey(e) !== k);
  }
  for (const e of many(f, 'env-add')) c.env = [...c.env.filter((x) => envKey(x) !== envKey(envItem(e, '--env-add'))), e];
  for (const gr of many(f, 'group-rm')) {
    if (!c.groups.includes(gr)) bad('--group-rm', `service ${service} has no group "${gr}"`);
    c.groups = c.groups.filter((x) => x !== gr);
  }
  for (const gr of many(f, 'group-add')) if (!c.groups.includes(gr)) c.groups.push(gr);

  const p = spec.task.placement;
  for (const con of many(f, 'constraint-rm')) {
    if (!p?.constraints.includes(con)) bad('--constraint-rm', `service ${service} has no constraint "${con}"`);
    p.constraints = p.constraints.filter((x) => x !== con);
  }
  for (const text of many(f, 'placement-pref-rm')) {
    const pref = parsePreference(text, '--placement-pref-rm');
    if (!p?.preferences.some((x) => x.spreadDescriptor === pref.spreadDescriptor)) bad('--placement-pref-rm', `service ${service} has no placement preference "${text}"`);
    p.preferences = p.preferences.filter((x) => x.spreadDescriptor !== pref.spreadDescriptor);
  }
  for (const target of many(f, 'mount-rm')) {
    if (!c.mounts.some((m) => m.target === target)) bad('--mount-rm', `service ${service} has no mount at "${target}"`);
    c.mounts = c.mounts.filter((m) => m.target !== target);
  }
  for (const ref of many(f, 'secret-rm')) {
    if (!c.secrets.some((s) => s.secretName === ref || s.secretId === ref)) bad('--secret-rm', `service ${service} has no secret "${ref}"`);
    c.secrets = c.secrets.filter((s) => s.secretName !== ref && s.secretId !== ref);
  }
  for (const ref of many(f, 'config-rm')) {
    if (!c.configs.some((s) => s.configName === ref || s.configId === ref)) bad('--config-rm', `service ${service} has no config "${ref}"`);
    c.configs = c.configs.filter((s) => s.configName !== ref && s.configId !== ref);
  }
  for (const text of many(f, 'publish-rm')) {
    const m = /^([0-9]+)(?:\/(tcp|udp|sctp))?$/.exec(text);
    if (!m) bad('--publish-rm', `"${text}" must be TARGET-PORT[/tcp|udp|sctp]`);
    const protocol = protocolOf(m[2] ?? 'tcp');
    const ports = spec.endpoint?.ports ?? [];
    const match = (x: PortConfig): boolean => x.targetPort === Number(m[1]) && x.protocol === protocol;
    if (!ports.some(match)) bad('--publish-rm', `service ${service} publishes no port with target ${text}`);
    spec.endpoint!.ports = ports.filter((x) => !match(x));
  }
  for (const net of many(f, 'network-rm')) {
    // The spec names networks by id (the manager stores them so); the flag by name or id.
    const id = refs.networks.get(net)?.id ?? net;
    const attached = (n: { target: string }): boolean => n.target === id || n.target === net;
    if (!spec.task.networks.some(attached)) bad('--network-rm', `service ${service} is not attached to network "${net}"`);
    spec.task.networks = spec.task.networks.filter((n) => !attached(n));
  }
  for (const key of many(f, 'sysctl-rm')) {
    if (!(key in c.sysctls)) bad('--sysctl-rm', `service ${service} sets no kernel parameter "${key}"`);
    const rest = { ...c.sysctls };
    delete rest[key];
    c.sysctls = rest;
  }
  for (const [flag, part] of [['dns-rm', 'nameservers'], ['dns-search-rm', 'search'], ['dns-option-rm', 'options']] as const) {
    for (const v of many(f, flag)) {
      if (!c.dnsConfig?.[part].includes(v)) bad(`--${flag}`, `service ${service} has no ${flag === 'dns-rm' ? 'nameserver' : flag === 'dns-search-rm' ? 'search domain' : 'resolver option'} "${v}"`);
      c.dnsConfig[part] = c.dnsConfig[part].filter((x) => x !== v);
    }
  }
  for (const text of many(f, 'host-rm')) {
    // NAME:IP removes that entry; NAME alone every entry of the name.
    const match = text.includes(':') ? ((h: string): boolean => h === parseHostEntry(text, '--host-rm')) : (h: string): boolean => h.split(/\s+/).slice(1).includes(text);
    if (!c.hosts.some(match)) bad('--host-rm', `service ${service} has no /etc/hosts entry "${text}"`);
    c.hosts = c.hosts.filter((h) => !match(h));
  }
  for (const name of many(f, 'ulimit-rm')) {
    if (!c.ulimits.some((u) => u.name === name)) bad('--ulimit-rm', `service ${service} sets no ulimit "${name}"`);
    c.ulimits = c.ulimits.filter((u) => u.name !== name);
  }
  applyScalars(spec, f, false);
  applyLists(spec, f, refs, {
    constraint: 'constraint-add', pref: 'placement-pref-add', mount: 'mount-add', secret: 'secret-add', config: 'config-add', publish: 'publish-add', network: 'network-add', ulimit: 'ulimit-add',
    sysctl: 'sysctl-add', dns: 'dns-add', dnsSearch: 'dns-search-add', dnsOption: 'dns-option-add', host: 'host-add',
  });
  return spec;
}

function removeKeys(labels: Record<string, string>, keys: string[], flag: string, what: string, service: string): Record<string, string> {
  for (const k of keys) {
    if (!(k in labels)) bad(flag, `service ${service} has no ${what} "${k}"`);
    delete labels[k];
  }
  return labels;
}

function protocolOf(p: string): PortConfig_Protocol {
  return p === 'udp' ? PortConfig_Protocol.PROTOCOL_UDP : p === 'sctp' ? PortConfig_Protocol.PROTOCOL_SCTP : PortConfig_Protocol.PROTOCOL_TCP;
}

/** Sets a replicated service's replicas or a replicated job's completions; other modes have no count. */
export function setReplicas(spec: ServiceSpec, n: number, service: string, flag: string): void {
  if (spec.mode?.$case === 'replicated') spec.mode.replicated.replicas = n;
  else if (spec.mode?.$case === 'replicatedJob') spec.mode.replicatedJob.totalCompletions = n;
  else bad(flag, `service ${service} is ${spec.mode?.$case ?? 'without a mode'}; only replicated services and jobs take a replica count`);
}

// ------------------------------------------------------------------------------------ shared

/** The single-value flags, for create (`creating`: health flags need --health-cmd) and update alike. */
function applyScalars(spec: ServiceSpec, f: Flags, creating: boolean): void {
  const task = spec.task!;
  const c = task.container!;
  const set = <T>(k: FlagName, parse: (text: string, flag: string) => T, apply: (v: T) => void): void => {
    const v = one(f, k);
    if (v !== undefined) apply(parse(v, `--${k}`));
  };
  const text = (v: string): string => v;
  set('hostname', text, (v) => (c.hostname = v));
  set('endpoint-mode', (v, flag) => choice(v, flag, ['vip', 'dnsrr'] as const), (v) => {
    const ep = (spec.endpoint ??= { mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP, ports: [] });
    ep.mode = v === 'dnsrr' ? EndpointSpec_ResolutionMode.RESOLUTION_MODE_DNSRR : EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP;
  });
  set('user', (v, flag) => (v === '' || /^[^:\s]+(:[^:\s]+)?$/.test(v) ? v : bad(flag, `"${v}" must be USER, UID, USER:GROUP or UID:GID`)), (v) => (c.user = v));
  set('workdir', (v, flag) => (v === '' || v.startsWith('/') ? v : bad(flag, `"${v}" must be an absolute path`)), (v) => (c.dir = v));
  set('entrypoint', shellWords, (v) => (c.command = v));
  set('stop-grace-period', durationMs, (v) => (c.stopGracePeriodMs = v));
  set('stop-signal', signal, (v) => (c.stopSignal = v));
  const init = flagSet(f, 'init');
  if (init !== undefined) c.init = init;
  const ro = flagSet(f, 'read-only');
  if (ro !== undefined) c.readOnly = ro;
  const tty = flagSet(f, 'tty');
  if (tty !== undefined) c.tty = tty;
  const nnp = flagSet(f, 'no-new-privileges') ?? (f['new-privileges'] === undefined ? undefined : !flagSet(f, 'new-privileges'));
  if (nnp !== undefined) c.noNewPrivileges = nnp;
  set('oom-score-adj', (v, flag) => (/^-?[0-9]+$/.test(v) && Math.abs(Number(v)) <= 1000 ? Number(v) : bad(flag, `"${v}" must be a whole number from -1000 to 1000`)), (v) => (c.oomScoreAdj = v));
  set('shm-size', sizeBytes, (v) => (c.shmSizeBytes = v));
  // Docker's "default" (process isolation, the only one on Linux) is what every task gets.
  set('isolation', (v, flag) => (v === 'default' ? v : bad(flag, `"${v}" is not supported: Linux containers have process isolation only ("default"); hyperv and process are Windows isolation modes`)), () => undefined);
  applyLogDriver(task, f);

  // Healthcheck: --no-healthcheck, or --health-cmd with its settings. tswarm does not run an
  // image's HEALTHCHECK, so settings without a command (here or already in the spec) are refused.
  const health = HEALTH_FLAGS.filter((k) => f[k] !== undefined);
  if (flagSet(f, 'no-healthcheck') || flagSet(f, 'healthcheck') === false) {
    if (health.length) bad('--no-healthcheck', `conflicts with --${health[0]}`);
    c.healthcheck = { test: ['NONE'], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 0, startIntervalMs: 0 };
  } else if (health.length) {
    const cmd = one(f, 'health-cmd');
    const hasCmd = !creating && ['CMD', 'CMD-SHELL'].includes(c.healthcheck?.test[0] ?? '');
    if (cmd === undefined && !hasCmd) bad(`--${health[0]}`, `needs --health-cmd${creating ? '' : ' (the service has no healthcheck command)'}; tswarm does not run the image's HEALTHCHECK`);
    const h: HealthConfig = (!creating && c.healthcheck) || { test: [], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 0, startIntervalMs: 0 };
    if (cmd !== undefined) h.test = cmd ? ['CMD-SHELL', cmd] : bad('--health-cmd', 'must not be empty');
    set('health-interval', durationMs, (v) => (h.intervalMs = v));
    set('health-timeout', durationMs, (v) => (h.timeoutMs = v));
    set('health-retries', count, (v) => (h.retries = v));
    set('health-start-period', durationMs, (v) => (h.startPeriodMs = v));
    set('health-start-interval', durationMs, (v) => (h.startIntervalMs = v));
    c.healthcheck = h;
  }

  // Resources: only the fields given; a zero clears a limit or reservation.
  const res = (which: 'limits' | 'reservations'): Resources => ((task.resources ??= {})[which] ??= { nanoCpus: 0, memoryBytes: 0, pids: 0 });
  set('reserve-cpu', nanoCpus, (v) => (res('reservations').nanoCpus = v));
  set('reserve-memory', sizeBytes, (v) => (res('reservations').memoryBytes = v));
  set('limit-cpu', nanoCpus, (v) => (res('limits').nanoCpus = v));
  set('limit-memory', sizeBytes, (v) => (res('limits').memoryBytes = v));
  set('limit-pids', count, (v) => (res('limits').pids = v));

  if (given(f, RESTART_FLAGS)) {
    // Docker's defaults: any, 5s, unlimited attempts, unbounded window; jobs restart on failure only.
    const r = (task.restart ??= { condition: isJob(spec) ? RestartPolicy_Condition.CONDITION_ON_FAILURE : RestartPolicy_Condition.CONDITION_ANY, delayMs: 5000, maxAttempts: 0, windowMs: 0 });
    set('restart-condition', (v, flag) => choice(v, flag, ['none', 'on-failure', 'any'] as const), (v) => (r.condition = v === 'none' ? RestartPolicy_Condition.CONDITION_NONE : v === 'on-failure' ? RestartPolicy_Condition.CONDITION_ON_FAILURE : RestartPolicy_Condition.CONDITION_ANY));
    set('restart-delay', durationMs, (v) => (r.delayMs = v));
    set('restart-max-attempts', count, (v) => (r.maxAttempts = v));
    set('restart-window', durationMs, (v) => (r.windowMs = v));
  }

  for (const [which, flags] of [['update', UPDATE_FLAGS], ['rollback', ROLLBACK_FLAGS]] as const) {
    if (!given(f, flags)) continue;
    if (isJob(spec)) bad(`--${flags.find((k) => f[k] !== undefined)}`, 'jobs run to completion and take no update or rollback settings');
    const u = (spec[which] ??= defaultUpdateConfig());
    const actions = which === 'update' ? (['pause', 'continue', 'rollback'] as const) : (['pause', 'continue'] as const);
    set(`${which}-parallelism`, count, (v) => (u.parallelism = v));
    set(`${which}-delay`, durationMs, (v) => (u.delayMs = v));
    set(`${which}-failure-action`, (v, flag) => choice<string>(v, flag, actions), (v) => (u.failureAction = v === 'continue' ? UpdateConfig_FailureAction.FAILURE_ACTION_CONTINUE : v === 'rollback' ? UpdateConfig_FailureAction.FAILURE_ACTION_ROLLBACK : UpdateConfig_FailureAction.FAILURE_ACTION_PAUSE));
    set(`${which}-monitor`, durationMs, (v) => (u.monitorMs = v));
    set(`${which}-max-failure-ratio`, ratio, (v) => (u.maxFailureRatio = v));
    set(`${which}-order`, (v, flag) => choice(v, flag, ['stop-first', 'start-first'] as const), (v) => (u.order = v === 'start-first' ? UpdateConfig_Order.ORDER_START_FIRST : UpdateConfig_Order.ORDER_STOP_FIRST));
  }

  set('replicas-max-per-node', count, (v) => {
    if (spec.mode?.$case === 'global' || spec.mode?.$case === 'globalJob') bad('--replicas-max-per-node', 'is for replicated services and jobs; a global service runs one task per node');
    placement(task).maxReplicasPerNode = v;
  });
}

/**
 * --log-driver and --log-opt: the options go with the driver given, or with the task's present
 * driver (json-file by default) when only options are given; given options replace the present
 * ones, and a new driver starts without them.
 */
function applyLogDriver(task: TaskSpec, f: Flags): void {
  const name = one(f, 'log-driver');
  if (name === undefined && f['log-opt'] === undefined) return;
  const given: Record<string, string> = {};
  for (const item of many(f, 'log-opt')) {
    const eq = item.indexOf('=');
    if (eq <= 0) bad('--log-opt', `"${item}" must be KEY=VALUE, e.g. max-size=10m`);
    given[item.slice(0, eq)] = item.slice(eq + 1);
  }
  const present = task.logDriver ?? { name: '', options: {} };
  const driver = name ?? present.name;
  const options = f['log-opt'] !== undefined ? given : driver === present.name ? { ...present.options } : {};
  try {
    logConfig(driver, options);
  } catch (err) {
    if (!(err instanceof LogDriverError)) throw err;
    if (err.field === 'name') bad('--log-driver', err.rule);
    bad('--log-opt', `${err.field.replace(/^options\./, '')}: ${err.rule}`);
  }
  task.logDriver = { name: driver, options };
}

function placement(task: TaskSpec): NonNullable<TaskSpec['placement']> {
  return (task.placement ??= { constraints: [], preferences: [], platforms: [], maxReplicasPerNode: 0 });
}

/** The list flags that add (create's plain flags, update's -add ones): `names` says which flag is which. */
function applyLists(
  spec: ServiceSpec,
  f: Flags,
  refs: Refs,
  names: Record<'constraint' | 'pref' | 'mount' | 'secret' | 'config' | 'publish' | 'network' | 'ulimit' | 'sysctl' | 'dns' | 'dnsSearch' | 'dnsOption' | 'host', FlagName>,
): void {
  const task = spec.task!;
  const c = task.container!;
  for (const con of many(f, names.constraint)) {
    if (!con.trim()) bad(`--${names.constraint}`, 'must not be empty');
    if (!placement(task).constraints.includes(con)) placement(task).constraints.push(con);
  }
  for (const text of many(f, names.pref)) {
    const pref = parsePreference(text, `--${names.pref}`);
    if (!placement(task).preferences.some((x) => x.spreadDescriptor === pref.spreadDescriptor)) placement(task).preferences.push(pref);
  }
  const mountTargets = new Set<string>();
  for (const text of many(f, names.mount)) {
    const m = parseMount(text, `--${names.mount}`);
    if (mountTargets.has(m.target)) bad(`--${names.mount}`, `two mounts at "${m.target}"`);
    mountTargets.add(m.target);
    c.mounts = [...c.mounts.filter((x) => x.target !== m.target), m];
  }
  const fileRefs = <R extends { file?: FileTarget | undefined }>(flag: FlagName, dflt: (n: string) => string, objects: Map<string, { id: string; name: string }>, current: R[], make: (o: { id: string; name: string }, file: FileTarget) => R): R[] => {
    let out = current;
    const files = new Set<string>();
    for (const text of many(f, flag)) {
      const ref = parseFileReference(text, `--${flag}`, dflt);
      const o = objects.get(ref.source) ?? bad(`--${flag}`, `"${ref.source}" was not looked up`);
      // The default target comes from the object's name, also when it was named by id.
      const file = ref.targetGiven ? ref.file : { ...ref.file, name: dflt(o.name) };
      if (files.has(file.name)) bad(`--${flag}`, `two of them have the target "${file.name}"`);
      files.add(file.name);
      out = [...out.filter((x) => x.file?.name !== file.name), make(o, file)];
    }
    return out;
  };
  c.secrets = fileRefs(names.secret, secretTarget, refs.secrets, c.secrets, (o, file) => ({ secretId: o.id, secretName: o.name, file }));
  c.configs = fileRefs(names.config, configTarget, refs.configs, c.configs, (o, file) => ({ configId: o.id, configName: o.name, file }));
  const published = many(f, names.publish).map((t) => parsePort(t, `--${names.publish}`));
  if (published.length) {
    const ep = (spec.endpoint ??= { mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP, ports: [] });
    published.forEach((port, i) => {
      // A port's key, as Docker's: the published port and protocol; one left for the managers to
      // pick (0) is told apart by its target.
      const same = (x: PortConfig): boolean => x.protocol === port.protocol && x.publishedPort === port.publishedPort && (port.publishedPort !== 0 || x.targetPort === port.targetPort);
      if (published.slice(0, i).some(same)) bad(`--${names.publish}`, `port ${port.publishedPort || `for target ${port.targetPort}`} is given twice`);
      ep.ports = [...ep.ports.filter((x) => !same(x)), port];
    });
  }
  for (const text of many(f, names.network)) {
    const attachment = parseNetwork(text, `--${names.network}`);
    if (spec.task!.networks.some((n) => n.target === attachment.target)) bad(`--${names.network}`, `network "${attachment.target}" is attached already`);
    spec.task!.networks.push(attachment);
  }
  for (const cap of many(f, 'cap-add').map((x) => capability(x, '--cap-add'))) {
    if (!c.capabilityAdd.includes(cap)) c.capabilityAdd.push(cap);
    c.capabilityDrop = c.capabilityDrop.filter((x) => x !== cap);
  }
  for (const cap of many(f, 'cap-drop').map((x) => capability(x, '--cap-drop'))) {
    if (!c.capabilityDrop.includes(cap)) c.capabilityDrop.push(cap);
    c.capabilityAdd = c.capabilityAdd.filter((x) => x !== cap);
  }
  for (const text of many(f, names.ulimit)) {
    const u = parseUlimit(text, `--${names.ulimit}`);
    c.ulimits = [...c.ulimits.filter((x) => x.name !== u.name), u];
  }
  for (const text of many(f, names.sysctl)) {
    const [k, v] = parseSysctl(text, `--${names.sysctl}`);
    c.sysctls = { ...c.sysctls, [k]: v };
  }
  const dns = (): NonNullable<ContainerSpec['dnsConfig']> => (c.dnsConfig ??= { nameservers: [], search: [], options: [] });
  for (const text of many(f, names.dns)) {
    if (isIP(text) === 0) bad(`--${names.dns}`, `"${text}" is not an IP address`);
    if (!dns().nameservers.includes(text)) dns().nameservers.push(text);
  }
  for (const text of many(f, names.dnsSearch)) {
    if (!isHostName(text)) bad(`--${names.dnsSearch}`, `"${text}" is not a domain name`);
    if (!dns().search.includes(text)) dns().search.push(text);
  }
  for (const text of many(f, names.dnsOption)) {
    const problem = dnsOptionProblem(text);
    if (problem !== undefined) bad(`--${names.dnsOption}`, problem);
    if (!dns().options.includes(text)) dns().options.push(text);
  }
  for (const text of many(f, names.host)) {
    const line = parseHostEntry(text, names.host === 'host-entry' ? '--host' : `--${names.host}`);
    if (!c.hosts.includes(line)) c.hosts.push(line);
  }
}

/** `KEY=VALUE` of a namespaced kernel parameter. */
function parseSysctl(text: string, flag: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0 || eq === text.length - 1) bad(flag, `"${text}" must be KEY=VALUE, e.g. net.ipv4.ip_forward=1`);
  const key = text.slice(0, eq);
  const problem = sysctlProblem(key);
  if (problem !== undefined) bad(flag, problem);
  return [key, text.slice(eq + 1)];
}

/** Docker's `--host NAME:IP` (split at the first colon, so that an IPv6 address can follow) as the spec's "IP NAME". */
export function parseHostEntry(text: string, flag: string): string {
  const colon = text.indexOf(':');
  const name = text.slice(0, colon);
  const ip = text.slice(colon + 1);
  if (colon <= 0 || !isHostName(name) || isIP(ip) === 0) bad(flag, `"${text}" must be NAME:IP, e.g. db:10.0.0.5`);
  return `${ip} ${name}`;
}

/**
 * The arguments with `--host` after `service create|update` renamed `--host-entry`: there it is
 * an /etc/hosts entry (docker service create --host NAME:IP), and before the command the manager
 * to reach (swarmctl --host IP:PORT, as docker's global -H).
 */
export function hostEntryFlags(args: readonly string[]): string[] {
  const out = [...args];
  const at = out.indexOf('service');
  if (at < 0 || (out[at + 1] !== 'create' && out[at + 1] !== 'update')) return out;
  for (let i = at + 2; i < out.length && out[i] !== '--'; i++) {
    if (out[i] === '--host') out[i] = '--host-entry';
    else if (out[i]!.startsWith('--host=')) out[i] = `--host-entry=${out[i]!.slice('--host='.length)}`;
  }
  return out;
}
