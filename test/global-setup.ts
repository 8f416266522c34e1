// Runs once around the whole suite: removes labs left by earlier runs whose owner died (kill -9,
// a crashed worker), before the tests start and after they end.
import { readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { sweepStaleLabs } from './lab/lab.js';

/**
 * swarm-runtime leaves its parent cgroup (/swarm-runtime, and the executor's /tswarm) in place
 * after a container's delete, as runc does; the suite made them, so it removes them once they are
 * empty (rmdir refuses a cgroup that is in use).
 */
function removeRuntimeCgroupParents(): void {
  let controllers: string[];
  try {
    controllers = readdirSync('/sys/fs/cgroup');
  } catch {
    return;
  }
  const parents = ['swarm-runtime', 'tswarm'];
  for (const dir of parents.flatMap((p) => [join('/sys/fs/cgroup', p), ...controllers.map((c) => join('/sys/fs/cgroup', c, p))])) {
    try {
      rmdirSync(dir);
    } catch {
      // absent, or still in use: leave it
    }
  }
}

function sweep(): void {
  if (process.getuid?.() !== 0) return; // the lab tests themselves report the missing privilege
  const swept = sweepStaleLabs();
  if (swept.length > 0) console.log(`lab: removed stale labs ${swept.join(', ')}`);
}

export function setup(): void {
  sweep();
}

export function teardown(): void {
  sweep();
  if (process.getuid?.() === 0) removeRuntimeCgroupParents();
}
