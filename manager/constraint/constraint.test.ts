import { describe, expect, it } from 'vitest';
import type { Node } from '../../proto/gen/tswarm/objects.js';
import { NodeRole } from '../../proto/gen/tswarm/types.js';
import { matchesAll, parseConstraint, parseConstraints } from './constraint.js';

const node = (over: Partial<Node> = {}): Node => ({
  id: 'n1',
  role: NodeRole.NODE_ROLE_WORKER,
  attachments: [],
  peerPaths: [],
  spec: { annotations: { name: '', labels: { zone: 'a', 'disk.type': 'ssd' } }, desiredRole: NodeRole.NODE_ROLE_WORKER, availability: 0 as never },
  description: { hostname: 'Worker-1', platform: { os: 'linux', architecture: 'amd64' }, engineVersion: '', dataPathAddr: '', hostPrefixes: [] },
  ...over,
});

describe('constraints', () => {
  it('matches ids, hostnames, roles, platforms and labels with == and !=', () => {
    const cs = parseConstraints(['node.role==worker', 'node.hostname==worker-1', 'node.platform.os==linux', 'node.platform.arch!=arm64', 'node.labels.zone==a', 'node.labels.disk.type!=hdd', 'node.id!=n2'], 'c');
    expect(matchesAll(cs, node())).toBe(true);
    expect(matchesAll(parseConstraints(['node.labels.zone==A'], 'c'), node())).toBe(false); // label values are exact
    expect(matchesAll(parseConstraints(['node.role==manager'], 'c'), node())).toBe(false);
    expect(matchesAll(parseConstraints(['node.labels.rack!=1'], 'c'), node())).toBe(true); // missing label differs
    expect(matchesAll(parseConstraints(['node.labels.rack==1'], 'c'), node())).toBe(false);
  });

  it.each([
    ['node.role=manager', /not a constraint/],
    ['node.role==boss', /manager or worker/],
    ['node.labels.zone==', /empty/],
    ['engine.labels.x==1', /unknown key/],
    ['node.labels.a b==1', /not a constraint|label name/],
  ])('refuses %s with the rule', (text, rule) => {
    expect(() => parseConstraint(text, 'spec.task.placement.constraints[0]')).toThrow(rule);
  });
});
