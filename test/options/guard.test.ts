// The guard that keeps "an option accepted is an option in force" true: the fields of TaskSpec
// (ContainerSpec included, nested messages followed), and of the rest of ServiceSpec, are read
// from the .proto files themselves,
// and each must have an entry in fields.ts: an effect probed from inside a container, a named
// test elsewhere that exists, or a refusal the control API really makes. A field added to the
// proto without one fails here.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema, type DescriptorProto } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { ContainerSpec, type ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import { InvalidArgumentError } from '../../common/errors.js';
import { validateServiceSpec } from '../../manager/controlapi/validate.js';
import { REPO } from '../util/dist.js';
import { FIELDS, SERVICE_FIELDS, type Coverage } from './fields.js';

/** The leaf fields under `root` (json names joined by dots; maps, scalars and empty messages are leaves), but those under `skip`. */
function leafFields(root: string, skip: string[] = []): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'tswarm-guard-'));
  try {
    const out = join(dir, 'set.pb');
    const r = spawnSync('protoc', ['--include_imports', `--descriptor_set_out=${out}`, '-I', join(REPO, 'proto'), join(REPO, 'proto/tswarm/specs.proto')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`protoc failed: ${r.stderr || r.error?.message}`);
    const set = fromBinary(FileDescriptorSetSchema, readFileSync(out));
    const messages = new Map<string, DescriptorProto>();
    const add = (prefix: string, m: DescriptorProto): void => {
      messages.set(`${prefix}.${m.name}`, m);
      for (const n of m.nestedType) add(`${prefix}.${m.name}`, n);
    };
    for (const f of set.file) for (const m of f.messageType) add(`.${f.package}`, m);
    const leaves: string[] = [];
    const walk = (type: string, path: string): void => {
      for (const f of messages.get(type)!.field) {
        const p = path ? `${path}.${f.jsonName}` : f.jsonName;
        if (skip.includes(p)) continue;
        const nested = messages.get(f.typeName);
        if (nested && !nested.options?.mapEntry && nested.field.length > 0) walk(f.typeName, p);
        else leaves.push(p);
      }
    };
    walk(root, '');
    return leaves;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function validSpec(): ServiceSpec {
  return {
    annotations: { name: 'guard', labels: {} },
    mode: { $case: 'replicated', replicated: { replicas: 1 } },
    task: { container: ContainerSpec.fromPartial({ image: 'busybox' }), networks: [], forceUpdate: 0 },
  };
}

const tables: [string, string, string[], Record<string, Coverage>, string][] = [
  ['TaskSpec', '.tswarm.v1.TaskSpec', [], FIELDS, 'spec.task.'],
  ['ServiceSpec (outside its TaskSpec)', '.tswarm.v1.ServiceSpec', ['task'], SERVICE_FIELDS, 'spec.'],
];

describe.each(tables)('every %s field is in force or refused', (_name, root, skip, table, prefix) => {
  const leaves = leafFields(root, skip);

  it('has an entry in test/options/fields.ts for each field, and none for a field that is gone', () => {
    expect(leaves.length).toBeGreaterThan(20);
    const missing = leaves.filter((f) => !(f in table));
    expect(missing, 'fields with neither an effect test nor a refusal: add them to test/options/fields.ts').toEqual([]);
    expect(Object.keys(table).filter((f) => !leaves.includes(f)), 'entries for fields the proto does not have').toEqual([]);
  });

  it.each(Object.entries(table).filter(([, c]) => 'test' in c))('%s: its effect test exists', (_field, c) => {
    const { file, name } = (c as { test: { file: string; name: string } }).test;
    const source = readFileSync(join(REPO, file), 'utf8');
    const quoted = [`'${name.replace(/'/g, "\\'")}'`, `"${name}"`, `\`${name}\``];
    expect(quoted.some((q) => source.includes(`it(${q}`)), `${file} has no test named ${JSON.stringify(name)}`).toBe(true);
  });

  it.each(Object.entries(table).filter(([, c]) => 'refused' in c))('%s: the control API refuses it, naming the field', (field, c) => {
    const spec = validSpec();
    expect(() => validateServiceSpec(spec)).not.toThrow();
    (c as { refused: (s: ServiceSpec) => void }).refused(spec);
    let err: unknown;
    try {
      validateServiceSpec(spec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    // The error names the field (or the message holding it).
    const top = `${prefix}${field.split('.').slice(0, -1).join('.')}`.replace(/\.$/, '');
    expect((err as InvalidArgumentError).field.startsWith(top), (err as Error).message).toBe(true);
  });
});
