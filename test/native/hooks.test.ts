// OCI hooks under swarm-runtime and runc: each hook logs what it was given (its kind from argv,
// the state's status, id and bundle from stdin, an env variable, its mount namespace), and the
// two logs must tell the same story; then the failures the runtime spec describes.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { missingPrerequisites, Workspace, type Config, type Runtime } from './bundle.js';

const missing = missingPrerequisites();
if (missing.length > 0) console.warn(`native hooks tests skipped; missing: ${missing.join(', ')}`);

const KINDS = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
type Kind = (typeof KINDS)[number];

interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

/** A hook that appends one line to LOG: its kind, the state's status, id, bundle and pid, an env
 * variable, whether its mount namespace is the host's, and its cwd. */
function logHook(kind: Kind, log: string, sh = '/bin/sh'): Hook {
  const script = [
    'state=$(cat)',
    'field() { echo "$state" | sed -n "s/.*\\"$1\\":\\"\\{0,1\\}\\([^\\",}]*\\).*/\\1/p"; }',
    `if [ "$(readlink /proc/self/ns/mnt)" = "$HOST_MNT" ]; then ns=host; else ns=container; fi`,
    `echo "$0 status=$(field status) id=$(field id) bundle=$(field bundle) pid=$(field pid) var=$HOOKVAR ns=$ns" >> ${log}`,
  ].join('; ');
  return { path: sh, args: ['sh', '-c', script, kind], env: [`HOOKVAR=${kind}-env`, `HOST_MNT=${readlinkSync('/proc/self/ns/mnt')}`, 'PATH=/bin:/usr/bin'] };
}

describe.skipIf(missing.length > 0)('swarm-runtime hooks', () => {
  let ws: Workspace;

  beforeAll(() => {
    ws = new Workspace();
  });

  afterEach(() => {
    expect(ws.cleanup()).toEqual([]);
  });

  afterAll(() => {
    try {
      ws.cleanup();
      expect(ws.leftovers()).toEqual([]);
    } finally {
      ws.remove();
    }
  });

  function create(rt: Runtime, bundle: string, id: string): { status: number | null; stderr: string } {
    const log = join(ws.dir, `${id}.out`);
    const fd = openSync(log, 'w');
    try {
      const r = ws.exec(rt, ['create', '--bundle', bundle, id], { outFd: fd, detached: true });
      return { status: r.status, stderr: readFileSync(log, 'utf8') };
    } finally {
      closeSync(fd);
    }
  }

  it('runs every hook at its point of the lifecycle with the state on stdin, its args and env, like runc', () => {
    const lines: Record<string, string[]> = {};
    for (const rt of [ws.ours, ws.runc]) {
      const id = ws.id(rt);
      const logDir = join(ws.dir, `hooklog-${rt.name}`);
      mkdirSync(logDir);
      const log = join(logDir, 'log');
      writeFileSync(log, '');
      const bundle = ws.bundle(['sh', '-c', 'echo "process ran" >> /hooklog/log'], (c: Config) => {
        c.mounts.push({ destination: '/hooklog', type: 'bind', source: logDir, options: ['rbind', 'rw'] });
        c.hooks = Object.fromEntries(
          KINDS.map((k) => [k, [k === 'startContainer' ? logHook(k, '/hooklog/log', '/bin/sh') : logHook(k, log)]]),
        );
      });
      expect(create(rt, bundle, id), rt.name).toEqual({ status: 0, stderr: '' });
      const pid = ws.state(rt, id).pid;
      const afterCreate = readFileSync(log, 'utf8');
      // runc 1.1.5 runs poststart during create (after the init is set up), not during start as
      // the spec says: only ours is checked for the order.
      if (rt === ws.ours) expect(afterCreate.split('\n').filter(Boolean).map((l) => l.split(' ')[0])).toEqual(['prestart', 'createRuntime', 'createContainer']);
      expect(ws.exec(rt, ['start', id]).status).toBe(0);
      for (let i = 0; i < 200 && !readFileSync(log, 'utf8').includes('process ran'); i++) sleepMs(10);
      expect(ws.exec(rt, ['delete', '--force', id]).status).toBe(0);
      const text = readFileSync(log, 'utf8').replaceAll(id, '<id>').replaceAll(bundle, '<bundle>');
      // runc gives pid 1 (its own view) to createContainer and startContainer; ours is the host's.
      lines[rt.name] = text
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          if (rt === ws.ours && !l.startsWith('process') && !l.startsWith('poststop')) expect(l, l).toContain(` pid=${pid} `);
          return l.replace(/ pid=\d*/, '');
        });
    }
    // The process and the poststart hook both run once the fifo is read: their order is a race.
    const settle = (l: string[]) => [...l.slice(0, 4), ...l.slice(4, 6).sort(), ...l.slice(6)];
    // runc's early poststart sees a "created" container; ours, after start, a running one.
    const runc = lines.runc!.map((l) => l.replace('poststart status=created', 'poststart status=running'));
    expect([...lines['swarm-runtime']!].sort(), 'the same hooks saw the same states').toEqual(runc.sort());
    expect(settle(lines['swarm-runtime']!)).toEqual([
      'prestart status=creating id=<id> bundle=<bundle> var=prestart-env ns=host',
      'createRuntime status=creating id=<id> bundle=<bundle> var=createRuntime-env ns=host',
      'createContainer status=creating id=<id> bundle=<bundle> var=createContainer-env ns=container',
      'startContainer status=created id=<id> bundle=<bundle> var=startContainer-env ns=container',
      'poststart status=running id=<id> bundle=<bundle> var=poststart-env ns=host',
      'process ran',
      'poststop status=stopped id=<id> bundle=<bundle> var=poststop-env ns=host',
    ]);
  });

  it('fails create when a prestart, createRuntime or createContainer hook fails, naming it, and leaves nothing', () => {
    for (const kind of ['prestart', 'createRuntime', 'createContainer'] as const) {
      for (const rt of [ws.ours, ws.runc]) {
        const id = ws.id(rt);
        const bundle = ws.bundle(['true'], (c: Config) => {
          c.hooks = { [kind]: [{ path: '/bin/sh', args: ['sh', '-c', 'echo "no good" >&2; exit 3'] }] };
        });
        const r = create(rt, bundle, id);
        expect({ kind, rt: rt.name, status: r.status }).toEqual({ kind, rt: rt.name, status: 1 });
        if (rt === ws.ours) expect(r.stderr).toBe(`swarm-runtime: create ${id}: ${kind} hook 0 (/bin/sh): exit status 3: no good\n`);
        expect(existsSync(join(rt.root, id)), `${rt.name} ${kind}`).toBe(false);
      }
    }
    expect(ws.leftovers()).toEqual([]);
  });

  it('kills a hook past its timeout and fails create', () => {
    const id = ws.id(ws.ours);
    const bundle = ws.bundle(['true'], (c: Config) => {
      c.hooks = { createRuntime: [{ path: '/bin/sleep', args: ['sleep', '30'], timeout: 1 }] };
    });
    const t0 = Date.now();
    const r = create(ws.ours, bundle, id);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r).toEqual({ status: 1, stderr: `swarm-runtime: create ${id}: createRuntime hook 0 (/bin/sleep): ran past its timeout of 1 s\n` });
    expect(existsSync(join(ws.ours.root, id))).toBe(false);
    expect(ws.leftovers()).toEqual([]);
  });

  it('fails start and stops the container when a startContainer or poststart hook fails', () => {
    for (const kind of ['startContainer', 'poststart'] as const) {
      const id = ws.id(ws.ours);
      const bundle = ws.bundle(['sleep', '100'], (c: Config) => {
        c.hooks = { [kind]: [{ path: '/bin/sh', args: ['sh', '-c', 'echo broken; exit 4'] }] };
      });
      expect(create(ws.ours, bundle, id).status).toBe(0);
      const r = ws.exec(ws.ours, ['start', id]);
      expect([kind, r.status, r.stderr]).toEqual([kind, 1, `swarm-runtime: start ${id}: ${kind} hook 0 (/bin/sh): exit status 4: broken\n`]);
      for (let i = 0; i < 200 && ws.state(ws.ours, id).status !== 'stopped'; i++) sleepMs(10);
      expect(ws.state(ws.ours, id).status, kind).toBe('stopped');
      expect(ws.exec(ws.ours, ['delete', id]).status).toBe(0);
    }
  });

  it('warns about a failing poststop hook and deletes anyway (the spec; runc fails the delete)', () => {
    const id = ws.id(ws.ours);
    const bundle = ws.bundle(['true'], (c: Config) => {
      c.hooks = { poststop: [{ path: '/bin/sh', args: ['sh', '-c', 'exit 5'] }, { path: '/bin/true' }] };
    });
    expect(create(ws.ours, bundle, id).status).toBe(0);
    const r = ws.exec(ws.ours, ['delete', '--force', id]);
    expect([r.status, r.stderr]).toEqual([0, `swarm-runtime: delete ${id}: warning: poststop hook 0 (/bin/sh): exit status 5\n`]);
    expect(existsSync(join(ws.ours.root, id))).toBe(false);
  });

  it('refuses bad hook entries naming the field', () => {
    const cases: [Record<string, Hook[]>, string][] = [
      [{ prestart: [{ path: 'relative/hook' }] }, 'hooks.prestart[0].path: must be an absolute path'],
      [{ poststop: [{ path: '/bin/true', timeout: 0 }] }, 'hooks.poststop[0].timeout: must be greater than zero'],
    ];
    for (const [hooks, message] of cases) {
      const id = ws.id(ws.ours);
      const bundle = ws.bundle(['true'], (c: Config) => (c.hooks = hooks));
      const r = create(ws.ours, bundle, id);
      expect(r).toEqual({ status: 1, stderr: `swarm-runtime: create ${id}: ${bundle}/config.json: ${message}\n` });
    }
  });
});

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
