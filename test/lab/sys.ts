// Small synchronous helpers around the system tools the lab drives (ip, nft, kill).
// Synchronous on purpose: teardown must also work from 'exit' and signal handlers, where the
// event loop no longer runs.
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** A system command failed; carries the command line and its stderr. */
export class LabCommandError extends Error {
  constructor(
    readonly command: string,
    readonly status: number | null,
    readonly stderr: string,
  ) {
    super(`lab: \`${command}\` failed (exit ${status ?? 'signal'}): ${stderr.trim() || 'no output'}`);
    this.name = 'LabCommandError';
  }
}

/** Runs a command to completion and returns its stdout; throws LabCommandError on a non-zero exit. */
export function run(cmd: string, args: readonly string[], input?: string): string {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new LabCommandError([cmd, ...args].join(' '), null, r.error.message);
  if (r.status !== 0) throw new LabCommandError([cmd, ...args].join(' '), r.status, r.stderr);
  return r.stdout;
}

/** Like run, but failures are ignored: for teardown steps whose object may already be gone. */
export function tryRun(cmd: string, args: readonly string[], input?: string): boolean {
  try {
    execFileSync(cmd, args, { input, stdio: ['pipe', 'ignore', 'ignore'], timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

/** Blocks the thread for ms milliseconds (teardown only). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * The start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or undefined
 * if there is no such process or it is a zombie. Pairs with the pid to detect pid reuse.
 */
export function processStartTime(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  const start = Number(fields[19]);
  return Number.isFinite(start) ? start : undefined;
}

export function isAlive(pid: number): boolean {
  return processStartTime(pid) !== undefined;
}

/** SIGKILLs the pids and waits (up to timeoutMs) until none of them is alive. */
export function killAndWait(pids: Iterable<number>, timeoutMs = 5_000): void {
  const left = new Set<number>();
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
      left.add(pid);
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (left.size > 0 && Date.now() < deadline) {
    for (const pid of left) if (!isAlive(pid)) left.delete(pid);
    if (left.size > 0) sleepSync(10);
  }
}

/** The inode of one of a process's namespaces (e.g. 'net', 'mnt'), or undefined. */
export function namespaceOf(pid: number | 'self', kind: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

/** Every live pid whose namespace of the given kind is one of `namespaces` (inode strings). */
export function pidsInNamespaces(kind: string, namespaces: ReadonlySet<string>): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const ns = namespaceOf(pid, kind);
    if (ns !== undefined && namespaces.has(ns)) pids.push(pid);
  }
  return pids;
}
