// The routing mesh's host table: every published port on every local address, DNAT'd to the
// tasks at their target port; nft accepts it in a real namespace.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { MeshTable, meshRuleset } from './mesh.js';

const root = process.getuid?.() === 0;

describe('routing mesh table', () => {
  it('DNATs each published port on a local address to its tasks, in prerouting and for the node\'s own clients', () => {
    const text = meshRuleset([
      { protocol: 'tcp', published: 8080, target: 80, backends: ['10.0.0.5', '10.0.0.6'] },
      { protocol: 'udp', published: 5353, target: 53, backends: ['10.0.0.7'] },
      { protocol: 'tcp', published: 9000, target: 90, backends: [] },
    ]);
    const rule = 'fib daddr type local tcp dport 8080 dnat to numgen random mod 2 map { 0 : 10.0.0.5, 1 : 10.0.0.6 } : 80';
    expect(text.split(rule)).toHaveLength(3); // in both chains
    expect(text).toContain('fib daddr type local udp dport 5353 dnat to numgen random mod 1 map { 0 : 10.0.0.7 } : 53');
    expect(text).not.toContain('9000');
    expect(text).not.toMatch(/snat|masquerade/);
  });

  it.skipIf(!root)('is accepted by nft and replaced whole', async () => {
    const ns = `tswmesh${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      const mesh = new MeshTable((argv, input) => Promise.resolve(execFileSync('ip', ['netns', 'exec', ns, ...argv], { input, encoding: 'utf8' })));
      await mesh.apply([{ protocol: 'tcp', published: 8080, target: 80, backends: ['10.0.0.5'] }]);
      await mesh.apply([{ protocol: 'tcp', published: 8081, target: 80, backends: ['10.0.0.6'] }]);
      const listed = execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'], { encoding: 'utf8' });
      expect(listed).toContain('tcp dport 8081');
      expect(listed).not.toContain('8080');
      await mesh.remove();
      expect(execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'], { encoding: 'utf8' })).not.toContain('tswarm-mesh');
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
    }
  });
});
