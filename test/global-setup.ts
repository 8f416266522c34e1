// Runs once around the whole suite: removes labs left by earlier runs whose owner died (kill -9,
// a crashed worker), before the tests start and after they end.
import { removeRuntimeCgroupParents, sweepStaleLabs } from './lab/lab.js';

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
