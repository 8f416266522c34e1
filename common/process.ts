// Vocabulary of a container's process shared by swarmctl, the control API and the executor:
// resource limit names (Docker's --ulimit), stop signals, and which kernel parameters a container
// may set (Docker's --sysctl rule).
import { constants as osConstants } from 'node:os';

/** The resource limits a container may set (Docker's --ulimit names, setrlimit(2)). */
export const ULIMIT_NAMES: readonly string[] = ['as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'];

/** A stop signal as the runtime takes it: SIGNAME (SIGTERM, SIGRTMIN+3) or a number 1-64. */
export function isSignal(text: string): boolean {
  if (/^[0-9]+$/.test(text)) return Number(text) >= 1 && Number(text) <= 64;
  return text in osConstants.signals || /^SIGRT(MIN\+([1-9]|1[0-5])|MAX-([1-9]|1[0-5])|MIN|MAX)$/.test(text);
}

/** The IPC namespace's kernel parameters (Docker's list); net.* and fs.mqueue.* go by prefix. */
const IPC_SYSCTLS = ['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced'];

/**
 * Why a container may not set kernel parameter `key`, or undefined when it may: only parameters
 * that belong to the container's own namespaces (network: net.*; IPC: fs.mqueue.*, the kernel.msg*,
 * sem and shm* ones) are allowed: any other would change the whole host.
 */
export function sysctlProblem(key: string): string | undefined {
  if (!/^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$/.test(key)) return `"${key}" is not a kernel parameter name (e.g. net.ipv4.ip_forward)`;
  if (key.startsWith('net.') || key.startsWith('fs.mqueue.') || IPC_SYSCTLS.includes(key)) return undefined;
  return `"${key}" is not namespaced: it would change the whole host (allowed: net.*, fs.mqueue.*, ${IPC_SYSCTLS.join(', ')})`;
}
