// TaskSpec → executor spec (a pure function): the log driver's mapping.
import { describe, expect, it } from 'vitest';
import { DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_FILES } from '../../common/log-driver.js';
import { Task } from '../../proto/gen/tswarm/objects.js';
import type { ImageRecord } from '../image/store.js';
import { containerSpec, TaskSpecError } from './container-spec.js';

const image: ImageRecord = {
  reference: 'reg:5000/library/busybox:latest',
  manifestDigest: 'sha256:m',
  manifestMediaType: 'application/vnd.oci.image.manifest.v1+json',
  configDigest: 'sha256:c',
  config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: [] } },
  layers: [],
};

const task = (logDriver?: { name: string; options: Record<string, string> }): Task =>
  Task.fromPartial({ id: 'k3v8ex0q1l7mabcdefghijklm', serviceId: 's1', slot: 1, nodeId: 'n1', spec: { container: { image: image.reference }, ...(logDriver ? { logDriver } : {}) } });

const spec = (t: Task): ReturnType<typeof containerSpec> => containerSpec(t, image, { network: 'none', fileMounts: [] });

describe('containerSpec: the log driver', () => {
  it('gives a task without a log driver the default bound (json-file, 3 × 10 MiB)', () => {
    expect(spec(task()).log).toEqual({ driver: 'json-file', maxSizeBytes: DEFAULT_LOG_MAX_BYTES, maxFiles: DEFAULT_LOG_MAX_FILES });
    expect(spec(task({ name: '', options: {} })).log).toEqual({ driver: 'json-file', maxSizeBytes: 10 * 1024 * 1024, maxFiles: 3 });
  });

  it("maps json-file's max-size and max-file, and none", () => {
    expect(spec(task({ name: 'json-file', options: { 'max-size': '1m', 'max-file': '5' } })).log).toEqual({ driver: 'json-file', maxSizeBytes: 1024 * 1024, maxFiles: 5 });
    expect(spec(task({ name: '', options: { 'max-size': '512k' } })).log).toEqual({ driver: 'json-file', maxSizeBytes: 512 * 1024, maxFiles: 3 });
    expect(spec(task({ name: 'none', options: {} })).log).toEqual({ driver: 'none' });
  });

  it('refuses a driver or an option the node cannot honour, naming the spec field', () => {
    const refusal = (d: { name: string; options: Record<string, string> }): { field: string; problem: string } => {
      try {
        spec(task(d));
      } catch (err) {
        expect(err).toBeInstanceOf(TaskSpecError);
        return { field: (err as TaskSpecError).field, problem: (err as TaskSpecError).problem };
      }
      throw new Error('not refused');
    };
    expect(refusal({ name: 'syslog', options: {} })).toEqual({ field: 'spec.task.logDriver.name', problem: expect.stringMatching(/not a log driver tswarm has/) as unknown });
    expect(refusal({ name: '', options: { 'max-size': '-1' } }).field).toBe('spec.task.logDriver.options.max-size');
    expect(refusal({ name: 'json-file', options: { 'max-file': '0' } }).field).toBe('spec.task.logDriver.options.max-file');
    expect(refusal({ name: 'none', options: { 'max-size': '1m' } }).field).toBe('spec.task.logDriver.options.max-size');
  });
});
