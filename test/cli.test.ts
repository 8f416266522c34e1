// The two programs as a user meets them: --help, --version, usage errors and exit codes.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dist, REPO } from './util/dist.js';

const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

function run(program: 'swarmd' | 'swarmctl', args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [dist(`cli/${program}.js`), ...args], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.each(['swarmd', 'swarmctl'] as const)('%s', (program) => {
  it('prints its version', () => {
    const r = run(program, ['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  });

  it('prints help that names its options', () => {
    const r = run(program, ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(program);
    expect(r.stdout).toContain(program === 'swarmd' ? '--data-dir' : '--socket');
  });

  it('refuses an unknown flag with exit code 2 and names it', () => {
    const r = run(program, program === 'swarmctl' ? ['version', '--bogus-flag'] : ['--bogus-flag']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: Unknown argument: bogus-flag\n/);
  });
});

describe('swarmctl', () => {
  it('needs a command', () => {
    const r = run('swarmctl', []);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('name a command');
  });

  // The bundle (scripts/bundle-cli.mjs) measures printable ASCII without string-width: its help
  // text must be the modules' to the byte.
  it('lays out help alike from the bundle and from the modules', () => {
    expect(existsSync(dist('cli/swarmctl.bundle.cjs'))).toBe(true);
    for (const args of [['--help'], ['service', 'create', '--help'], ['service', 'scale', '--help']]) {
      const bundled = run('swarmctl', args);
      const modules = run('swarmctl', args, { SWARMCTL_MODULES: '1' });
      expect(bundled.stdout + bundled.stderr, args.join(' ')).toBe(modules.stdout + modules.stderr);
      expect(bundled.code).toBe(modules.code);
    }
  });

  it('refuses --with-registry-auth without a usable credential with exit 2, naming the file and the key, before calling a manager', () => {
    const dir = mkdtempSync(join(tmpdir(), 'swarmctl-'));
    try {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: {}, credsStore: 'desktop' }));
      const args = ['--socket', join(dir, 'none.sock'), 'service', 'create', '--detach', '--name', 'x', '--image', '10.0.0.1:5000/app:t', '--with-registry-auth'];
      const r = run('swarmctl', args, { DOCKER_CONFIG: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`swarmctl: --with-registry-auth: ${join(dir, 'config.json')}: "credsStore": "desktop" keeps credentials in the helper docker-credential-desktop; credential helpers are not supported: put the credential in auths["10.0.0.1:5000"] (docker login with no helper configured writes it there)\n`);
      const mode = run('swarmctl', [...args.slice(0, -1), '--resolve-image', 'sometimes']);
      expect(mode.code).toBe(2);
      expect(mode.stderr).toMatch(/resolve-image.*sometimes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says which socket it could not reach, and exits 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'swarmctl-'));
    try {
      const r = run('swarmctl', ['--socket', join(dir, 'none.sock'), 'version']);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`Client version  ${version}`);
      expect(r.stderr).toContain(`cannot reach swarmd at unix:${join(dir, 'none.sock')}: no such socket`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('swarmd', () => {
  it('refuses a malformed --listen-addr, naming the flag', () => {
    const r = run('swarmd', ['--listen-addr', 'nonsense']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--listen-addr: "nonsense" must be host:port');
  });

  it('refuses a corrupt node-id file, naming the path, and leaves it as it was', () => {
    const dir = mkdtempSync(join(tmpdir(), 'swarmd-'));
    try {
      const path = join(dir, 'node-id');
      writeFileSync(path, 'garbage\n');
      const r = run('swarmd', ['--data-dir', dir, '--socket', join(dir, 's.sock')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${path}: not a node id`);
      expect(readFileSync(path, 'utf8')).toBe('garbage\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
