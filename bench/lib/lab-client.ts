// Runs a load generator (a Node script printing JSON lines) inside a lab host, where the lab's
// addresses are reachable: its lines are handed over as they come, and all of them at the end.
import { createInterface } from 'node:readline';
import type { LabHost } from '../../test/lab/lab.js';

export async function runLabClient(host: LabHost, args: string[], timeoutMs: number, onLine?: (j: Record<string, unknown>) => void): Promise<Record<string, unknown>[]> {
  const child = host.spawnInside(process.execPath, args, {}, ['ignore', 'pipe', 'pipe']);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const lines: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  for await (const line of createInterface({ input: child.stdout! })) {
    if (!line.startsWith('{')) continue;
    const j = JSON.parse(line) as Record<string, unknown>;
    lines.push(j);
    onLine?.(j);
  }
  const code = await exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${args[0] ?? 'the load generator'} on ${host.name} failed (${code ?? 'killed'}): ${stderr.trim()}`);
  return lines;
}
