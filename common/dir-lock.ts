// An exclusive lock on a state directory, held for the life of the process: two swarmds (or two
// executors) on one directory would both write its files and adopt its containers.
//
// Node has no flock(2). The lock is an abstract unix socket named after the directory's device
// and inode: binding it is atomic, a second bind fails with EADDRINUSE, and the kernel releases
// it when the process dies, however it dies; so no stale lock is ever left. Abstract sockets are
// per network namespace, so the holder also writes `<dir>/lock` (its pid and start time): a
// process in another namespace finds a live holder there and refuses too. The file goes when the
// lock is released or the process exits; one left by a process killed with -9 names a dead pid
// and counts for nothing.
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { TswarmError } from './errors.js';

/** The directory is held by another live process. */
export class DirectoryLockedError extends TswarmError {
  constructor(
    readonly dir: string,
    readonly holderPid: number | undefined,
    readonly what: string,
  ) {
    super(`${dir} is in use by another ${what}${holderPid ? ` (pid ${holderPid})` : ''}; stop it first, or use another directory`);
  }
}

/** Field 22 of /proc/PID/stat (start time in clock ticks), or undefined when the process is gone. */
function startTime(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** The live process the lock file names (not this one), if any. */
function liveHolder(file: string): number | undefined {
  let holder: { pid?: unknown; startTime?: unknown };
  try {
    holder = JSON.parse(readFileSync(file, 'utf8')) as typeof holder;
  } catch {
    return undefined; // absent or torn: nobody holds it through the file
  }
  if (typeof holder.pid !== 'number' || holder.pid === process.pid) return undefined;
  return startTime(holder.pid) === holder.startTime ? holder.pid : undefined;
}

export class DirLock {
  private readonly onExit = (): void => this.removeFile();

  private constructor(
    readonly dir: string,
    private readonly server: Server,
  ) {
    process.once('exit', this.onExit);
  }

  /** Takes the lock on `dir` (which must exist), or throws DirectoryLockedError; `what` names the holder kind in the message ("swarmd"). */
  static async acquire(dir: string, what: string): Promise<DirLock> {
    const st = statSync(dir);
    const file = join(dir, 'lock');
    const server = createServer();
    const name = `\0tswarm-lock:${st.dev}:${st.ino}`;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(name, () => resolve());
      });
    } catch (err) {
      server.close();
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new DirectoryLockedError(dir, liveHolder(file), what);
      throw err;
    }
    // Held in this namespace; one in another namespace shows in the file.
    const other = liveHolder(file);
    if (other !== undefined) {
      server.close();
      throw new DirectoryLockedError(dir, other, what);
    }
    writeFileSync(`${file}.${process.pid}.tmp`, `${JSON.stringify({ pid: process.pid, startTime: startTime(process.pid) })}\n`);
    renameSync(`${file}.${process.pid}.tmp`, file);
    server.unref(); // the lock must not keep the process alive
    return new DirLock(dir, server);
  }

  /** Lets the lock go (the process's end does too). */
  release(): void {
    process.removeListener('exit', this.onExit);
    this.removeFile();
    this.server.close();
  }

  /** Removes `<dir>/lock` if it still names this process. */
  private removeFile(): void {
    const file = join(this.dir, 'lock');
    try {
      if ((JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown }).pid === process.pid) rmSync(file, { force: true });
    } catch {
      // gone or unreadable: nothing of ours to remove
    }
  }
}
