// Paired runs: every side of a comparison runs the same load in alternating rounds, the order
// reversed every other round, after an untimed warm-up of each. This machine's speed drifts from
// minute to minute (the hypervisor's steal comes and goes): alternating puts every side under the
// same drift, and each run prints the machine's busy and steal shares so a slowed run shows.
import { cpuCounters, cpuSince, fmt, type LoadResult } from './load.js';

export interface Side {
  name: string;
  /** One run of `clients` concurrent writers for `seconds`. */
  run: (clients: number, seconds: number) => Promise<LoadResult>;
}

export interface Rounds {
  /** Even: every side goes first equally often. */
  rounds: number;
  seconds: number;
  warmUpSeconds: number;
}

/** One run, printed with the machine's busy and steal shares during it. */
export async function measured(label: string, run: () => Promise<LoadResult>): Promise<LoadResult> {
  const before = cpuCounters();
  const r = await run();
  const cpu = cpuSince(before);
  console.log(`  ${label.padEnd(36)} ${fmt(r)}  machine busy ${(cpu.busy * 100).toFixed(0)}%, steal ${(cpu.steal * 100).toFixed(1)}%`);
  return r;
}

/**
 * The runs of `clients` writers on every side, by side then round (ABBA order), after a warm-up
 * run of each side. The warm-up matters: a fresh Node process runs these loads about a third
 * slower until V8 has optimised the hot paths, and the etcd3 client warms up the same way.
 */
export async function alternate(clients: number, sides: readonly Side[], r: Rounds): Promise<LoadResult[][]> {
  if (r.rounds > 0 && r.warmUpSeconds > 0) for (const side of sides) await side.run(clients, r.warmUpSeconds);
  const runs = sides.map(() => [] as LoadResult[]);
  for (let round = 0; round < r.rounds; round++) {
    const order = round % 2 === 0 ? sides.map((_, i) => i) : sides.map((_, i) => i).reverse();
    for (const i of order) runs[i]!.push(await measured(`${sides[i]!.name}, round ${round + 1}`, () => sides[i]!.run(clients, r.seconds)));
  }
  return runs;
}
