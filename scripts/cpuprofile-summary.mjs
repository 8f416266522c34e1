#!/usr/bin/env node
// Summarises a V8 CPU profile (node --cpu-prof): the functions with the most self time, and the
// most inclusive time (self plus everything they called), in milliseconds, with the share of the
// busy time (all samples but the idle and GC pseudo-nodes' parents).
//   node scripts/cpuprofile-summary.mjs FILE.cpuprofile [--top 30] [--match REGEX]
// --match keeps only the functions whose "name file:line" matches (e.g. --match 'forward|certs').
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--') && !/^\d+$/.test(a));
if (!file) {
  process.stderr.write('usage: node scripts/cpuprofile-summary.mjs FILE.cpuprofile [--top N] [--match REGEX]\n');
  process.exit(2);
}
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : dflt;
};
const top = Number(opt('--top', '30'));
const match = opt('--match', undefined);
const re = match ? new RegExp(match) : undefined;

const prof = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Time per sample: the deltas (µs) attributed to the sample they lead to.
const selfUs = new Map();
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
}

const label = (n) => {
  const f = n.callFrame;
  const where = f.url ? `${f.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};

let totalUs = 0;
let idleUs = 0;
const self = new Map();
const incl = new Map();
for (const [id, us] of selfUs) {
  const n = nodes.get(id);
  totalUs += us;
  const name = n.callFrame.functionName;
  if (name === '(idle)' || name === '(program)') idleUs += name === '(idle)' ? us : 0;
  const key = label(n);
  self.set(key, (self.get(key) ?? 0) + us);
  // Inclusive: each function on the stack once (recursion is not counted twice).
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = label(nodes.get(cur));
    if (seen.has(k)) continue;
    seen.add(k);
    incl.set(k, (incl.get(k) ?? 0) + us);
  }
}
const busyUs = totalUs - idleUs;
const ms = (us) => (us / 1000).toFixed(1).padStart(9);
const pct = (us) => `${((100 * us) / busyUs).toFixed(1).padStart(5)}%`;
const show = (title, m) => {
  process.stdout.write(`\n${title}\n`);
  const rows = [...m].filter(([k]) => !re || re.test(k)).sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [k, us] of rows) process.stdout.write(`${ms(us)} ms ${pct(us)}  ${k}\n`);
};
process.stdout.write(`${file}: ${(totalUs / 1e6).toFixed(2)} s sampled, ${(busyUs / 1e6).toFixed(2)} s busy (not idle)\n`);
show('self time (ms, share of busy)', self);
show('inclusive time (ms, share of busy)', incl);
