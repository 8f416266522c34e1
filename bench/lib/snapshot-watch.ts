// The Raft snapshots managers take, seen from outside: each writes `<term>-<index>.snap` files
// into `<data-dir>/raft/snap` and keeps the newest two (manager/raft/storage/snapshots.ts), so a
// poll every half second sees every one unless three are taken within it. The file's mtime is when
// it was written. A snapshot encodes the whole store on the leader's event loop: the benchmarks
// print them beside the leader's lag.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const SNAP_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export interface SeenSnapshot {
  host: string;
  index: number;
  /** When the file was written (epoch ms). */
  at: number;
}

export class SnapshotWatch {
  private readonly seen = new Map<string, SeenSnapshot>();
  private readonly timer: NodeJS.Timeout;

  /** `dirs`: each manager's snapshot directory, by host name. */
  constructor(private readonly dirs: ReadonlyMap<string, string>) {
    this.poll();
    this.timer = setInterval(() => this.poll(), 500);
    this.timer.unref();
  }

  poll(): void {
    for (const [host, dir] of this.dirs) {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue; // not made yet
      }
      for (const name of names) {
        const m = SNAP_RE.exec(name);
        if (!m || this.seen.has(`${host}/${name}`)) continue;
        try {
          this.seen.set(`${host}/${name}`, { host, index: parseInt(m[2]!, 16), at: statSync(join(dir, name)).mtimeMs });
        } catch {
          // pruned between the listing and the stat
        }
      }
    }
  }

  /** The snapshots `host` wrote in [from, to], oldest first. */
  during(host: string, from: number, to: number): SeenSnapshot[] {
    this.poll();
    return [...this.seen.values()].filter((s) => s.host === host && s.at >= from && s.at <= to).sort((a, b) => a.index - b.index);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
