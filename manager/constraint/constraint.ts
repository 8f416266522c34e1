// Placement constraints: "node.role==manager", "node.labels.zone!=a", "node.platform.os==linux".
// Parsed once when a spec is validated (errors name the constraint and the rule), and matched by
// the scheduler against nodes. Values compare case-insensitively except label values, as in Swarm.
import type { Node } from '../../proto/gen/tswarm/objects.js';
import { NodeRole } from '../../proto/gen/tswarm/types.js';
import { InvalidArgumentError } from '../../common/errors.js';

export type ConstraintKey =
  | { kind: 'id' }
  | { kind: 'hostname' }
  | { kind: 'role' }
  | { kind: 'platform.os' }
  | { kind: 'platform.arch' }
  | { kind: 'label'; label: string };

export interface Constraint {
  key: ConstraintKey;
  op: '==' | '!=';
  value: string;
  /** The constraint as written. */
  text: string;
}

const LABEL_RE = /^[A-Za-z0-9_.-]+$/;

/** Parses one constraint; `field` names it in errors (e.g. "spec.task.placement.constraints[0]"). */
export function parseConstraint(text: string, field: string): Constraint {
  const m = /^\s*([^=!\s]+)\s*(==|!=)\s*(.*?)\s*$/.exec(text);
  if (!m) throw new InvalidArgumentError(field, `"${text}" is not a constraint: use KEY==VALUE or KEY!=VALUE, e.g. node.role==manager`);
  const [, rawKey, op, value] = m as unknown as [string, string, '==' | '!=', string];
  if (value === '') throw new InvalidArgumentError(field, `"${text}": the value after ${op} is empty`);
  if (/[=!]/.test(value)) throw new InvalidArgumentError(field, `"${text}": the value must not contain '=' or '!'`);
  const k = rawKey.toLowerCase();
  let key: ConstraintKey;
  if (k === 'node.id') key = { kind: 'id' };
  else if (k === 'node.hostname') key = { kind: 'hostname' };
  else if (k === 'node.role') {
    if (!['manager', 'worker'].includes(value.toLowerCase())) throw new InvalidArgumentError(field, `"${text}": node.role is manager or worker`);
    key = { kind: 'role' };
  } else if (k === 'node.platform.os') key = { kind: 'platform.os' };
  else if (k === 'node.platform.arch') key = { kind: 'platform.arch' };
  else if (k.startsWith('node.labels.')) {
    const label = rawKey.slice('node.labels.'.length);
    if (!LABEL_RE.test(label)) throw new InvalidArgumentError(field, `"${text}": label name "${label}" may hold only letters, digits, '.', '_' and '-'`);
    key = { kind: 'label', label };
  } else {
    throw new InvalidArgumentError(field, `"${text}": unknown key "${rawKey}" (use node.id, node.hostname, node.role, node.platform.os, node.platform.arch or node.labels.NAME)`);
  }
  return { key, op, value, text };
}

export function parseConstraints(texts: readonly string[], field: string): Constraint[] {
  return texts.map((t, i) => parseConstraint(t, `${field}[${i}]`));
}

function nodeValue(node: Node, key: ConstraintKey): string | undefined {
  switch (key.kind) {
    case 'id':
      return node.id;
    case 'hostname':
      return node.description?.hostname;
    case 'role':
      return node.role === NodeRole.NODE_ROLE_MANAGER ? 'manager' : 'worker';
    case 'platform.os':
      return node.description?.platform?.os;
    case 'platform.arch':
      return node.description?.platform?.architecture;
    case 'label':
      return node.spec?.annotations?.labels[key.label];
  }
}

/** Whether the node satisfies the constraint. A missing label never equals, and always differs. */
export function matches(c: Constraint, node: Node): boolean {
  const actual = nodeValue(node, c.key);
  const equal = actual !== undefined && (c.key.kind === 'label' ? actual === c.value : actual.toLowerCase() === c.value.toLowerCase());
  return c.op === '==' ? equal : !equal;
}

export function matchesAll(cs: readonly Constraint[], node: Node): boolean {
  return cs.every((c) => matches(c, node));
}
