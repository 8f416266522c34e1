// swarm-spawn, the fork server, through its client: status, output, stdin, signals, failures,
// many commands at once, large outputs (no root needed); the built-in mount and unmount (root).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandError, type VethRequest } from '../network/bridge.js';
import { nativeBinary } from './runtime.js';
import { Spawner } from './spawner.js';

const BIN = nativeBinary('swarm-spawn');

describe.skipIf(!existsSync(BIN))('Spawner (swarm-spawn)', () => {
  const s = new Spawner(BIN);
  afterAll(() => s.close());

  it('returns the exit status and both outputs, and feeds stdin', async () => {
    expect(await s.run(['sh', '-c', 'echo out; echo err >&2; exit 3'])).toEqual({ code: 3, signal: 0, stdout: 'out\n', stderr: 'err\n' });
    expect(await s.run(['cat'], 'line 1\nline 2\n')).toEqual({ code: 0, signal: 0, stdout: 'line 1\nline 2\n', stderr: '' });
    expect((await s.run(['true'], 'ignored input')).code).toBe(0); // a command that does not read its stdin
    expect((await s.run(['sh', '-c', 'read x || echo eof'])).stdout).toBe('eof\n'); // no input: EOF at once
    expect(await s.run(['printf', '%s', 'a b\0c'])).toMatchObject({ code: 0, stdout: 'a b' }); // argv are C strings
  });

  it('reports signals and programs that cannot be started', async () => {
    expect(await s.run(['sh', '-c', 'kill -TERM $$'])).toMatchObject({ code: null, signal: 15 });
    const missing = await s.run(['no-such-program-here', 'x']);
    expect(missing).toMatchObject({ code: null, signal: 0, stdout: '' });
    expect(missing.stderr).toBe('swarm-spawn: no-such-program-here: No such file or directory\n');
    await expect(s.runner(['sh', '-c', 'echo bad >&2; exit 1'])).rejects.toThrow(CommandError);
    await expect(s.runner(['sh', '-c', 'echo bad >&2; exit 1'])).rejects.toThrow(/`sh -c echo bad >&2; exit 1` failed: bad$/);
    expect(await s.runner(['echo', 'ok'])).toBe('ok\n');
  });

  it('runs many commands at once and answers each in full, large outputs and inputs included', async () => {
    const big = 'x'.repeat(300_000);
    const runs = Array.from({ length: 50 }, (_, i) => s.run(['sh', '-c', `sleep 0.0${i % 10}; echo ${i}`]));
    const results = await Promise.all([...runs, s.run(['cat'], big), s.run(['sh', '-c', 'head -c 1000000 /dev/zero | tr "\\0" y'])]);
    results.slice(0, 50).forEach((r, i) => expect(r).toEqual({ code: 0, signal: 0, stdout: `${i}\n`, stderr: '' }));
    expect(results[50]!.stdout).toBe(big);
    expect(results[51]!.stdout).toBe('y'.repeat(1_000_000));
  });

  it.skipIf(process.getuid?.() !== 0)('mounts and unmounts in the server itself, and reports a failure with the path and the reason', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tswarm-spawn-'));
    const target = path.join(dir, 'mnt');
    try {
      await s.run(['mkdir', target]);
      await s.mounter.mount('tmpfs', 'tswarm-spawn-test', 'size=1m,mode=0700', target);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).toContain(` ${target} `);
      writeFileSync(path.join(target, 'f'), 'x');
      await s.mounter.unmount(target);
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` ${target} `);
      expect(existsSync(path.join(target, 'f'))).toBe(false); // it was on the tmpfs
      await expect(s.mounter.unmount(target)).rejects.toThrow(`swarm-spawn:umount: ${target}: Invalid argument`);
      await expect(s.mounter.mount('tmpfs', 'x', '', path.join(dir, 'missing'))).rejects.toThrow(`${path.join(dir, 'missing')}: No such file or directory`);
      expect(await s.run(['swarm-spawn:nothing'])).toMatchObject({ code: 1, stderr: 'swarm-spawn:nothing: not a built-in command with 0 arguments\n' });
    } finally {
      await s.mounter.unmount(target).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // The veth built-in's devices are checked against ip(8)'s in worker/network/bridge.test.ts; here,
  // its refusals: each names the argument or the step, and the rule or the kernel's reason.
  it.skipIf(process.getuid?.() !== 0)('refuses bad veth and link-del arguments with the field and the rule', async () => {
    const base: VethRequest = { hostNetns: undefined, bridge: 'tswnobridge', hostEnd: 'tswv-x', containerNetns: '/proc/self/ns/net', ifname: 'eth9', mac: '02:42:0a:00:00:02', mtu: undefined, address: '10.0.0.2', prefixLength: 24, gateway: '10.0.0.1', hairpin: false };
    const veth = (over: Partial<VethRequest>): Promise<void> => s.links.addVeth({ ...base, ...over });
    await expect(veth({ mac: '02:42:zz:00:00:02' })).rejects.toThrow('swarm-spawn:veth: mac `02:42:zz:00:00:02`: not six hexadecimal bytes separated by colons');
    await expect(veth({ address: '10.0.0.300' })).rejects.toThrow('swarm-spawn:veth: address `10.0.0.300`: not an IPv4 address');
    await expect(veth({ prefixLength: 33 })).rejects.toThrow('swarm-spawn:veth: prefix length `33`: must be a number from 1 to 32');
    await expect(veth({ hostEnd: 'a-name-far-too-long' })).rejects.toThrow('swarm-spawn:veth: host end `a-name-far-too-long`: an interface name has 1 to 15 bytes');
    await expect(veth({ containerNetns: '/run/netns/tswarm-no-such-ns' })).rejects.toThrow('swarm-spawn:veth: open /run/netns/tswarm-no-such-ns: No such file or directory');
    await expect(veth({})).rejects.toThrow("swarm-spawn:veth: device tswnobridge in the host's namespace: No such device");
    expect(await s.run(['swarm-spawn:veth', '-', 'b', 'h', '/proc/self/ns/net', 'eth9', '02:42:0a:00:00:02', 'big', '10.0.0.2', '24', '10.0.0.1', '0'])).toMatchObject({
      code: 1,
      stderr: 'mtu `big`: must be a number from 0 to 65535\n',
    });
    await s.links.deleteLink(undefined, 'tswnothere0'); // none there: no error
    await expect(s.links.deleteLink('/run/netns/tswarm-no-such-ns', 'x')).rejects.toThrow('swarm-spawn:link-del: open /run/netns/tswarm-no-such-ns: No such file or directory');
  });
});
