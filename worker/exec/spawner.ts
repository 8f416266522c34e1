// Running commands through swarm-spawn (native/src/spawn.c), a fork server: Node forks itself for
// every child_process.spawn, which costs the event loop time in proportion to the process's
// memory (3 ms at 50 MB, 25 ms at 500 MB here); swarm-spawn is small and uses posix_spawn. One
// server per Spawner, started on first use; it exits when this process closes its stdin (exits).
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { TswarmError } from '../../common/errors.js';
import type { Mounter } from '../image/rootfs.js';
import { CommandError, type CommandRunner, type LinkOps } from '../network/bridge.js';

export interface SpawnResult {
  /** The exit status; null when a signal ended the command or it could not be started. */
  code: number | null;
  /** The signal's number, 0 if none. */
  signal: number;
  stdout: string;
  stderr: string;
}

/** The fork server failed (not a command: the server itself). */
export class SpawnerError extends TswarmError {}

interface Pending {
  resolve: (r: SpawnResult) => void;
  reject: (err: Error) => void;
}

export class Spawner {
  private child: ChildProcessByStdio<Writable, Readable, null> | undefined;
  private readonly pending = new Map<string, Pending>();
  private buf: Buffer = Buffer.alloc(0);
  private seq = 0;

  constructor(readonly bin: string) {}

  /** Runs argv (argv[0] looked up in PATH), feeding `input` on stdin; resolves with its status and output. */
  run(argv: readonly string[], input = ''): Promise<SpawnResult> {
    if (argv.length === 0) return Promise.reject(new SpawnerError('spawn: an empty command'));
    const child = this.server();
    const id = String(++this.seq);
    const payload = Buffer.concat([Buffer.from([id, String(argv.length), ...argv].join('\0') + '\0'), Buffer.from(input)]);
    const head = Buffer.alloc(4);
    head.writeUInt32LE(payload.length);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ref(true);
      child.stdin.write(Buffer.concat([head, payload]));
    });
  }

  /** The same, as the network driver's CommandRunner: stdout, or a CommandError with stderr. */
  readonly runner: CommandRunner = async (argv, input) => {
    const r = await this.run(argv, input);
    if (r.code !== 0) throw new CommandError(argv, r.stderr.trim() || `exit ${r.code ?? `signal ${r.signal}`}`);
    return r.stdout;
  };

  /** The image store's mounts, as the server's built-in commands (no process; see spawn.c). */
  readonly mounter: Mounter = {
    mount: (fsType, source, options, target) => this.builtin(['swarm-spawn:mount', fsType, source, options, target]),
    unmount: (target) => this.builtin(['swarm-spawn:umount', target]),
  };

  /** The bridge driver's device work, as the server's netlink built-ins (no process; see spawn.c). */
  readonly links: LinkOps = {
    addVeth: (r) =>
      this.builtin([
        'swarm-spawn:veth',
        r.hostNetns ?? '-',
        r.bridge,
        r.hostEnd,
        r.containerNetns,
        r.ifname,
        r.mac,
        String(r.mtu ?? 0),
        r.address,
        String(r.prefixLength),
        r.gateway,
        r.hairpin ? '1' : '0',
      ]),
    deleteLink: (netns, name) => this.builtin(['swarm-spawn:link-del', netns ?? '-', name]),
  };

  private async builtin(argv: string[]): Promise<void> {
    const r = await this.run(argv);
    if (r.code !== 0) throw Object.assign(new SpawnerError(`${argv[0]}: ${r.stderr.trim() || `exit ${r.code ?? `signal ${r.signal}`}`}`), { stderr: r.stderr });
  }

  /** Stops the server (it finishes the commands running). */
  close(): void {
    this.child?.stdin.end();
    this.child = undefined;
  }

  private server(): ChildProcessByStdio<Writable, Readable, null> {
    if (this.child !== undefined) return this.child;
    const child = spawn(this.bin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child = child;
    child.stdout.on('data', (d: Buffer) => this.onData(d));
    const fail = (why: string): void => {
      if (this.child === child) this.child = undefined;
      for (const p of this.pending.values()) p.reject(new SpawnerError(`${this.bin}: ${why}`));
      this.pending.clear();
    };
    child.once('error', (err) => fail(err.message));
    child.once('exit', (code, signal) => fail(`exited with ${code ?? signal}`));
    child.stdin.on('error', () => undefined); // the exit handler reports it
    return child;
  }

  // While nothing is pending, the server must not keep this process alive.
  private ref(on: boolean): void {
    const c = this.child;
    if (c === undefined) return;
    const handles = [c, c.stdout, c.stdin] as unknown as { ref(): void; unref(): void }[];
    for (const h of handles) {
      if (on) h.ref();
      else h.unref();
    }
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    for (;;) {
      const nl = this.buf.indexOf(10);
      if (nl < 0) return;
      const [id, code, sig, outLen, errLen] = this.buf.subarray(0, nl).toString().split(' ');
      const out = Number(outLen);
      const err = Number(errLen);
      if (this.buf.length < nl + 1 + out + err) return;
      const stdout = this.buf.subarray(nl + 1, nl + 1 + out).toString('utf8');
      const stderr = this.buf.subarray(nl + 1 + out, nl + 1 + out + err).toString('utf8');
      this.buf = this.buf.subarray(nl + 1 + out + err);
      const p = this.pending.get(id ?? '');
      if (p === undefined) continue;
      this.pending.delete(id!);
      const c = Number(code);
      p.resolve({ code: c < 0 ? null : c, signal: Number(sig), stdout, stderr });
      if (this.pending.size === 0) this.ref(false);
    }
  }
}
