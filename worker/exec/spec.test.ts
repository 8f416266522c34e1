// config.json from an image config and a container spec (pure; no root needed), and the log reader.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CorruptFileError, InvalidArgumentError } from '../../common/errors.js';
import type { ImageRecord } from '../image/store.js';
import type { ContainerSpec } from './executor.js';
import { readLog } from './logs.js';
import { oneLine } from './runtime.js';
import { buildConfig, checkSpec, DEFAULT_CAPABILITIES, DEFAULT_PATH, mergeEnv, ociMount, processArgs, resolveUser } from './spec.js';

const image: ImageRecord = {
  reference: 'reg:5000/library/app:1',
  manifestDigest: 'sha256:m',
  manifestMediaType: 'application/vnd.oci.image.manifest.v1+json',
  configDigest: 'sha256:c',
  config: {
    architecture: 'amd64',
    os: 'linux',
    config: { Entrypoint: ['/bin/app'], Cmd: ['--serve'], Env: ['PATH=/bin', 'MODE=image'], WorkingDir: '/srv', User: 'app' },
    rootfs: { type: 'layers', diff_ids: [] },
  },
  layers: [],
};
const PASSWD = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n';
const GROUP = 'root:x:0:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:other\n';

function config(spec: Partial<ContainerSpec>): ReturnType<typeof buildConfig> {
  return buildConfig({ spec: { id: 'c1', image, ...spec }, rootfs: '/r/merged', passwd: PASSWD, group: GROUP, cgroupsPath: '/tswarm/c1', volumeDir: (n) => `/state/volumes/${n}/_data` });
}

describe('container config', () => {
  it("follows Docker's Entrypoint and Cmd rules", () => {
    expect(processArgs(image.config, {})).toEqual(['/bin/app', '--serve']);
    expect(processArgs(image.config, { args: ['--check'] })).toEqual(['/bin/app', '--check']);
    expect(processArgs(image.config, { command: ['/bin/sh'] })).toEqual(['/bin/sh']);
    expect(processArgs(image.config, { command: ['/bin/sh'], args: ['-c', 'true'] })).toEqual(['/bin/sh', '-c', 'true']);
    expect(() => processArgs({ ...image.config, config: {} }, {})).toThrow(/^command: the image has no Entrypoint or Cmd/);
  });

  it('merges the environment: image, then spec, PATH defaulted, HOSTNAME set', () => {
    expect(mergeEnv(['PATH=/bin', 'A=1'], ['A=2', 'B=3'], 'h')).toEqual(['HOSTNAME=h', 'PATH=/bin', 'A=2', 'B=3']);
    expect(mergeEnv([], [], 'h')).toEqual(['HOSTNAME=h', DEFAULT_PATH]);
  });

  it('resolves users and groups against the image files', () => {
    expect(resolveUser(undefined, PASSWD, GROUP)).toEqual({ uid: 0, gid: 0 });
    expect(resolveUser('app', PASSWD, GROUP)).toEqual({ uid: 1000, gid: 1000, additionalGids: [10] });
    expect(resolveUser('1000', PASSWD, GROUP)).toEqual({ uid: 1000, gid: 1000, additionalGids: [10] });
    expect(resolveUser('4242', PASSWD, GROUP)).toEqual({ uid: 4242, gid: 0 });
    expect(resolveUser('app:audio', PASSWD, GROUP)).toEqual({ uid: 1000, gid: 29, additionalGids: [10] });
    expect(resolveUser('5:6', '', '')).toEqual({ uid: 5, gid: 6 });
    expect(() => resolveUser('ghost', PASSWD, GROUP)).toThrow(/^user: no user "ghost"/);
    expect(() => resolveUser('app:ghosts', PASSWD, GROUP)).toThrow(/^user: no group "ghosts"/);
  });

  it('builds config.json: process, capabilities, limits, namespaces, mounts', () => {
    const c = config({ env: ['MODE=spec'], hostname: 'web-1', limits: { memoryBytes: 1 << 26, nanoCpus: 1_500_000_000, pids: 64 }, mounts: [{ type: 'tmpfs', target: '/dev/shm', sizeBytes: 1024 }] });
    expect(c.root).toEqual({ path: '/r/merged', readonly: false });
    expect(c.process).toMatchObject({ args: ['/bin/app', '--serve'], cwd: '/srv', user: { uid: 1000, gid: 1000, additionalGids: [10] }, terminal: false });
    expect(c.process.env).toEqual(['HOSTNAME=web-1', 'PATH=/bin', 'MODE=spec']);
    expect([...c.process.capabilities.bounding].sort()).toEqual([...DEFAULT_CAPABILITIES].sort());
    expect(c.hostname).toBe('web-1');
    expect(c.linux.resources).toEqual({ memory: { limit: 1 << 26 }, cpu: { quota: 150_000, period: 100_000 }, pids: { limit: 64 }, devices: [{ allow: false, access: 'rwm' }] });
    expect(c.linux.cgroupsPath).toBe('/tswarm/c1');
    expect(c.linux.namespaces.map((n) => n.type)).toEqual(['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup']);
    // the spec's /dev/shm replaces the standard one
    expect(c.mounts.map((m) => m.destination)).toEqual(['/proc', '/dev', '/dev/pts', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/dev/shm']);
    expect(c.mounts[6]).toEqual({ destination: '/dev/shm', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', 'size=1024', 'mode=1777'] });
    expect(c.annotations).toEqual({ 'io.tswarm.image': image.reference });
    expect(c.linux.seccomp).toBeUndefined();
  });

  it('turns binds and volumes into bind mounts', () => {
    const vol = (n: string): string => `/v/${n}`;
    expect(ociMount({ type: 'bind', source: '/data', target: '/d', readOnly: true }, vol)).toEqual({ destination: '/d', type: 'bind', source: '/data', options: ['rbind', 'rprivate', 'ro'] });
    expect(ociMount({ type: 'volume', source: 'db', target: '/var/lib/db' }, vol)).toEqual({ destination: '/var/lib/db', type: 'bind', source: '/v/db', options: ['rbind', 'rprivate'] });
  });

  it('refuses bad specs naming the field', () => {
    const bad = (spec: Partial<ContainerSpec>): unknown => {
      try {
        checkSpec({ id: 'c1', image, ...spec });
      } catch (err) {
        expect(err).toBeInstanceOf(InvalidArgumentError);
        return (err as InvalidArgumentError).field;
      }
      return undefined;
    };
    expect(bad({ id: '-x' })).toBe('id');
    expect(bad({ command: [] })).toBe('command');
    expect(bad({ env: ['NOEQUALS'] })).toBe('env[0]');
    expect(bad({ hostname: 'under_score' })).toBe('hostname');
    expect(bad({ dir: 'rel' })).toBe('dir');
    expect(bad({ user: 'a:b:c' })).toBe('user');
    expect(bad({ limits: { pids: 0 } })).toBe('limits.pids');
    expect(bad({ limits: { nanoCpus: 1.5 } })).toBe('limits.nanoCpus');
    expect(bad({ network: 'host' as 'none' })).toBe('network');
    expect(bad({ mounts: [{ type: 'bind', source: 'rel', target: '/x' }] })).toBe('mounts[0].source');
    expect(bad({ mounts: [{ type: 'tmpfs', target: 'x' }] })).toBe('mounts[0].target');
    expect(bad({ mounts: [{ type: 'tmpfs', target: '/' }] })).toBe('mounts[0].target');
    expect(bad({ mounts: [{ type: 'tmpfs', target: '/a' }, { type: 'tmpfs', target: '/a/' }] })).toBe('mounts[1].target');
    expect(bad({ mounts: [{ type: 'volume', source: 'a/b', target: '/a' }] })).toBe('mounts[0].source');
    expect(bad({ mounts: [{ type: 'nfs', target: '/a' } as never] })).toBe('mounts[0].type');
    expect(bad({})).toBeUndefined();
  });
});

describe('runtime errors', () => {
  it("keeps the runtime's last line, and logfmt's msg unquoted", () => {
    expect(oneLine('swarm-runtime: create c1: exec x: not found\n', 'fallback')).toBe('swarm-runtime: create c1: exec x: not found');
    expect(oneLine('time="2026-11-22T21:03:32Z" level=error msg="runc create failed: exec: \\"x\\": not found"\n', 'f')).toBe('runc create failed: exec: "x": not found');
    expect(oneLine('\n', 'exited with 1')).toBe('exited with 1');
  });
});

describe('readLog', () => {
  it('reads all or the last N records, waits for a line being written, and names a corrupt one', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tswarm-log-'));
    try {
      const file = path.join(dir, 'log.json');
      const rec = (log: string, stream = 'stdout'): string => `${JSON.stringify({ log, stream, time: '2026-11-22T21:00:00.000000001Z' })}\n`;
      await writeFile(file, rec('a\n') + rec('b\n', 'stderr') + rec('c\n') + '{"log":"partial');
      const all = async (opts: { tail?: number }): Promise<string[]> => {
        const out: string[] = [];
        for await (const e of readLog(file, { ...opts, finished: () => Promise.resolve(true) })) out.push(`${e.stream}:${e.log}`);
        return out;
      };
      expect(await all({})).toEqual(['stdout:a\n', 'stderr:b\n', 'stdout:c\n']);
      expect(await all({ tail: 2 })).toEqual(['stderr:b\n', 'stdout:c\n']);
      expect(await all({ tail: 0 })).toEqual([]);
      expect(await all({ tail: 10 })).toHaveLength(3);
      await writeFile(file, rec('a\n') + 'not json\n');
      await expect(all({})).rejects.toThrow(CorruptFileError);
      await expect(all({})).rejects.toThrow(/log\.json at offset \d+: not JSON/);
      expect(await (async () => {
        const out = [];
        for await (const e of readLog(path.join(dir, 'missing'), { finished: () => Promise.resolve(true) })) out.push(e);
        return out;
      })()).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('follows a growing log until the writer is finished', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tswarm-log-'));
    try {
      const file = path.join(dir, 'log.json');
      let done = false;
      const rec = (log: string): string => `${JSON.stringify({ log, stream: 'stdout', time: '2026-11-22T21:00:00.000000001Z' })}\n`;
      await writeFile(file, rec('1\n'));
      setTimeout(() => void writeFile(file, rec('1\n') + rec('2\n')).then(() => (done = true)), 100);
      const out: string[] = [];
      for await (const e of readLog(file, { follow: true, pollMs: 10, finished: () => Promise.resolve(done) })) out.push(e.log);
      expect(out).toEqual(['1\n', '2\n']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
