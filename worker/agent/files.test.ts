// The config file writer on a real directory (root: the files are chowned).
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ConfigReference } from '../../proto/gen/tswarm/types.js';
import { ConfigFileError, configTarget, writeConfigFiles } from './files.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'tswarm-configs-'));
  dirs.push(d);
  return d;
}

const ref = (configId: string, configName: string, file?: Partial<NonNullable<ConfigReference['file']>>): ConfigReference => ({
  configId,
  configName,
  file: { name: configName, uid: 0, gid: 0, mode: 0, ...file },
});

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error('the config file tests need root (chown)');
});

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('config targets', () => {
  it.each([
    ['app.conf', '/app.conf'],
    ['/etc/app/app.conf', '/etc/app/app.conf'],
    ['etc/app.conf', '/etc/app.conf'],
    ['/etc//app.conf', '/etc/app.conf'],
    ['/devices.conf', '/devices.conf'],
  ])('puts %s at %s', (name, target) => {
    expect(configTarget('c', name)).toBe(target);
  });

  it.each([
    ['', /^config c: the target is empty$/],
    ['../etc/passwd', /^config c: target "\.\.\/etc\/passwd" must not contain '\.\.'$/],
    ['/etc/../../x', /must not contain '\.\.'/],
    ['/', /^config c: target "\/" must name a file, not a directory$/],
    ['/etc/app/', /must name a file, not a directory$/],
    ['/proc/sys/kernel/x', /^config c: target "\/proc\/sys\/kernel\/x" must not be in \/proc$/],
    ['sys/x', /must not be in \/sys$/],
    ['/dev', /must not be in \/dev$/],
  ])('refuses %j', (name, message) => {
    expect(() => configTarget('c', name)).toThrow(ConfigFileError);
    expect(() => configTarget('c', name)).toThrow(message);
  });
});

describe('writing config files', () => {
  it('writes each config with its mode, uid and gid, and mounts it read-only at its target', () => {
    const dir = join(tmp(), 'task1');
    const data = new Map([
      ['id1', Buffer.from('listen 80\n')],
      ['id2', Buffer.from('{"a":1}')],
    ]);
    const mounts = writeConfigFiles(dir, [ref('id1', 'web', { name: '/etc/app/app.conf', mode: 0o440, uid: 1000, gid: 2000 }), ref('id2', 'settings'), ref('id1', 'web', { name: 'web.conf' })], data);
    expect(mounts).toEqual([
      { type: 'bind', source: join(dir, '0'), target: '/etc/app/app.conf', readOnly: true },
      { type: 'bind', source: join(dir, '1'), target: '/settings', readOnly: true },
      { type: 'bind', source: join(dir, '2'), target: '/web.conf', readOnly: true },
    ]);
    expect(readFileSync(join(dir, '0'), 'utf8')).toBe('listen 80\n');
    expect(readFileSync(join(dir, '1'), 'utf8')).toBe('{"a":1}');
    const st = statSync(join(dir, '0'));
    expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o440, 1000, 2000]);
    expect(statSync(join(dir, '1')).mode & 0o7777).toBe(0o444); // Docker's default
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('refuses a config not delivered, a bad target and two configs at one target, before writing anything', () => {
    const dir = join(tmp(), 'task2');
    const data = new Map([['id1', Buffer.from('x')]]);
    expect(() => writeConfigFiles(dir, [ref('id1', 'a'), ref('nope', 'missing')], data)).toThrow(/^config missing: was not delivered to this node$/);
    expect(() => writeConfigFiles(dir, [ref('id1', 'a', { name: '/proc/x' })], data)).toThrow(/^config a: target "\/proc\/x" must not be in \/proc$/);
    expect(() => writeConfigFiles(dir, [ref('id1', 'a', { name: '/a' }), ref('id1', 'b', { name: 'a' })], data)).toThrow(/^config b: target \/a is also the target of config a$/);
    expect(() => statSync(dir)).toThrow(/ENOENT/);
  });
});
