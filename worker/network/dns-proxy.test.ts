// swarm-dnsproxy and its driver. The frame parser alone (no root); then the proxy for real (root):
// "containers" are throwaway network namespaces (tswdns-<random>-N), each deleted in afterEach
// also on failure, with the client processes a test started. The clients are node scripts run in
// a namespace with `ip netns exec` (dig may be missing); the answers are made with dns-packet.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import dnsPacket from 'dns-packet';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nativeBinary } from '../exec/runtime.js';
import { DnsAttachError, DnsProxy, DnsProxyError, encodeFrame, FrameParser, FrameType, type ProxyQuery } from './dns-proxy.js';

const BIN = nativeBinary('swarm-dnsproxy');
const canRun = process.getuid?.() === 0 && existsSync(BIN) && spawnSync('ip', ['-V']).status === 0;

describe('FrameParser', () => {
  const frames = [encodeFrame(FrameType.query, 1, Buffer.from([0, 0, 0, 7, 0, 0xaa, 0xbb])), encodeFrame(FrameType.detached, 0xfffffffe), encodeFrame(FrameType.attached, 3, Buffer.from([0x12, 0x34, 0x12, 0x35]))];
  const stream = Buffer.concat(frames);
  const expected = [
    { type: FrameType.query, id: 1, payload: Buffer.from([0, 0, 0, 7, 0, 0xaa, 0xbb]) },
    { type: FrameType.detached, id: 0xfffffffe, payload: Buffer.alloc(0) },
    { type: FrameType.attached, id: 3, payload: Buffer.from([0x12, 0x34, 0x12, 0x35]) },
  ];

  it('takes several frames from one chunk', () => {
    const p = new FrameParser();
    expect(p.push(stream)).toEqual(expected);
    expect(p.pending).toBe(0);
  });

  it('puts together frames split at every byte, and in pieces of every size', () => {
    for (let size = 1; size <= stream.length; size++) {
      const p = new FrameParser();
      const got = [];
      for (let off = 0; off < stream.length; off += size) got.push(...p.push(stream.subarray(off, off + size)));
      expect(got).toEqual(expected);
      expect(p.pending).toBe(0);
    }
    for (let cut = 1; cut < stream.length; cut++) {
      const p = new FrameParser();
      const first = p.push(stream.subarray(0, cut));
      expect([...first, ...p.push(stream.subarray(cut))]).toEqual(expected);
    }
  });

  it('refuses lengths outside 5 to 70000', () => {
    expect(() => new FrameParser().push(Buffer.from([0, 0, 0, 4, 9, 0, 0, 0, 0]))).toThrow(DnsProxyError);
    expect(() => new FrameParser().push(Buffer.from([0, 1, 0x11, 0x71]))).toThrow(/a frame of length 70001/);
    expect(new FrameParser().push(Buffer.from([0, 1, 0x11, 0x70]))).toEqual([]); // 70000: waits for the rest
  });
});

describe('swarm-dnsproxy on its own', () => {
  it.skipIf(!existsSync(BIN))('exits 2 on a malformed frame and 0 at EOF', () => {
    const bad = spawnSync(BIN, [], { input: Buffer.from([0, 0, 0, 3, 1, 1, 1]), encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('swarm-dnsproxy: protocol: a frame of length 3 (must be 5 to 70000)\n');
    expect(spawnSync(BIN, [], { input: encodeFrame(99, 1) }).status).toBe(2);
    const ok = spawnSync(BIN, [], { input: Buffer.concat([encodeFrame(FrameType.stats, 5), encodeFrame(FrameType.detach, 9)]) });
    expect(ok.status).toBe(0);
    const f = new FrameParser().push(ok.stdout);
    expect(f.map((x) => [x.type, x.id])).toEqual([
      [FrameType.statsAnswer, 5],
      [FrameType.detached, 9],
    ]);
    expect(f[0]!.payload).toEqual(Buffer.alloc(24));
  });
});

// ---- for real ----

const namespaces: string[] = [];
const clients: ChildProcess[] = [];
const run = randomBytes(3).toString('hex');
let seq = 0;

function addNs(opts: { loUp?: boolean } = {}): { name: string; path: string } {
  const name = `tswdns-${run}-${++seq}`;
  namespaces.push(name);
  execFileSync('ip', ['netns', 'add', name]);
  if (opts.loUp) execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return { name, path: `/run/netns/${name}` };
}

function loFlags(ns: string): string[] {
  return (JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show', 'lo'], { encoding: 'utf8' })) as { flags: string[] }[])[0]!.flags;
}

// A DNS client in a namespace: sends the messages to 127.0.0.11:port (UDP: the first only; TCP: all
// in one write, each with its 2-byte length) and prints "answer HEX" per answer, in the order they
// come, then "timeout", "closed" or "error CODE" when it ends otherwise.
const CLIENT = `
const [mode, port, hexes, wait] = process.argv.slice(1);
const msgs = hexes.split(',').map((h) => Buffer.from(h, 'hex'));
const got = [];
const end = (how) => { process.stdout.write(JSON.stringify({ answers: got, end: how })); process.exit(0); };
setTimeout(() => end('timeout'), +wait);
if (mode === 'udp') {
  const s = require('dgram').createSocket('udp4');
  s.on('message', (m) => { got.push(m.toString('hex')); end('done'); });
  s.on('error', (e) => end('error ' + e.code));
  s.send(msgs[0], +port, '127.0.0.11');
} else {
  const c = require('net').connect(+port, '127.0.0.11');
  let buf = Buffer.alloc(0);
  c.on('connect', () => c.write(Buffer.concat(msgs.map((m) => { const h = Buffer.alloc(2); h.writeUInt16BE(m.length); return Buffer.concat([h, m]); }))));
  c.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      got.push(buf.subarray(2, 2 + buf.readUInt16BE(0)).toString('hex'));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
    }
    if (got.length === msgs.length) end('done');
  });
  c.on('error', (e) => end('error ' + e.code));
  c.on('close', () => end('closed'));
}`;

interface ClientResult {
  answers: Buffer[];
  end: string;
}

/** Runs the client in `ns` (asynchronously: the proxy's queries are answered by this process meanwhile). */
async function ask(ns: string, transport: 'udp' | 'tcp', port: number, msgs: Buffer[], waitMs = 3000): Promise<ClientResult> {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', CLIENT, transport, String(port), msgs.map((m) => m.toString('hex')).join(','), String(waitMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  clients.push(p);
  let out = '';
  let err = '';
  p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const code = await new Promise((resolve) => p.once('close', resolve));
  if (code !== 0) throw new Error(`client in ${ns} failed (${String(code)}): ${err}`);
  const r = JSON.parse(out) as { answers: string[]; end: string };
  return { answers: r.answers.map((h) => Buffer.from(h, 'hex')), end: r.end };
}

function query(name: string, id = 0x1234): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }] });
}

/** The canned answer to a query: its name at 10.<key>.<0 udp, 1 tcp>.<the query's id & 255>. */
function canned(q: ProxyQuery): Buffer {
  const m = dnsPacket.decode(q.message);
  const name = m.questions?.[0]?.name ?? '?';
  return dnsPacket.encode({
    type: 'response',
    id: m.id,
    flags: dnsPacket.AUTHORITATIVE_ANSWER,
    questions: m.questions,
    answers: [{ type: 'A', name, ttl: 600, class: 'IN', data: `10.${q.key & 255}.${q.transport === 'tcp' ? 1 : 0}.${(m.id ?? 0) & 255}` }],
  });
}

function addressIn(answer: Buffer): string {
  const a = dnsPacket.decode(answer).answers?.[0];
  return a?.type === 'A' ? a.data : '?';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!canRun)('swarm-dnsproxy in network namespaces (root)', () => {
  let proxy: DnsProxy;
  const seen: ProxyQuery[] = [];
  const answerAll = (q: ProxyQuery): void => proxy.answer(q.id, canned(q));
  let onQuery = answerAll; // what the test's "swarmd" does with a query; reset after each test

  beforeAll(async () => {
    proxy = await DnsProxy.start({
      onQuery: (q) => {
        seen.push({ ...q, message: Buffer.from(q.message) });
        onQuery(q);
      },
    });
  });

  afterEach(async () => {
    onQuery = answerAll;
    seen.length = 0;
    for (const c of clients.splice(0)) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const gone = new Promise((r) => c.once('close', r));
      c.kill('SIGKILL');
      await gone;
    }
    for (const ns of namespaces.splice(0)) spawnSync('ip', ['netns', 'delete', ns]);
  });

  afterAll(async () => {
    await proxy?.close();
  });

  it('relays a UDP query from inside a namespace (bringing its lo up) and delivers the answer as it is', async () => {
    const ns = addNs();
    expect(loFlags(ns.name)).not.toContain('UP');
    const before = await proxy.stats();
    const { udpPort, tcpPort } = await proxy.attach(41, ns.path);
    expect(udpPort).toBeGreaterThan(0);
    expect(tcpPort).toBeGreaterThan(0);
    expect(loFlags(ns.name)).toContain('UP');

    const q = query('web.svc', 0x0107);
    const r = await ask(ns.name, 'udp', udpPort, [q]);
    expect(r.end).toBe('done');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ key: 41, transport: 'udp', message: q });
    expect(r.answers).toEqual([canned(seen[0]!)]);
    expect(addressIn(r.answers[0]!)).toBe('10.41.0.7');
    const after = await proxy.stats();
    expect(after.queries - before.queries).toBe(1);
    expect(after.dropped - before.dropped).toBe(0);
    expect(after.outstanding).toBe(0);
    expect(after.endpoints).toBe(before.endpoints + 1);
    await proxy.detach(41);
  });

  it('works in a namespace whose lo is already up', async () => {
    const ns = addNs({ loUp: true });
    const { udpPort } = await proxy.attach(42, ns.path);
    const r = await ask(ns.name, 'udp', udpPort, [query('up.svc', 9)]);
    expect(r.answers.map(addressIn)).toEqual(['10.42.0.9']);
    await proxy.detach(42);
  });

  it('relays TCP: length-prefixed messages, several on one connection, answered in any order', async () => {
    const ns = addNs();
    const { tcpPort } = await proxy.attach(43, ns.path);
    const pending: ProxyQuery[] = [];
    onQuery = (q) => {
      pending.push(q);
      if (pending.length === 2) for (const p of pending.reverse()) proxy.answer(p.id, canned(p)); // the second first
    };
    const r = await ask(ns.name, 'tcp', tcpPort, [query('a.svc', 1), query('b.svc', 2)]);
    expect(r.end).toBe('done');
    expect(seen.map((q) => [q.key, q.transport])).toEqual([
      [43, 'tcp'],
      [43, 'tcp'],
    ]);
    expect(seen.map((q) => q.message)).toEqual([query('a.svc', 1), query('b.svc', 2)]);
    expect(r.answers.map(addressIn)).toEqual(['10.43.1.2', '10.43.1.1']);
    expect(r.answers[0]).toEqual(canned(seen[1]!));
    await proxy.detach(43);
  });

  it('tells two namespaces apart by their keys', async () => {
    const a = addNs();
    const b = addNs();
    const pa = await proxy.attach(51, a.path);
    const pb = await proxy.attach(52, b.path);
    const [ra, rb] = await Promise.all([ask(a.name, 'udp', pa.udpPort, [query('x.svc', 1)]), ask(b.name, 'udp', pb.udpPort, [query('x.svc', 2)])]);
    expect(ra.answers.map(addressIn)).toEqual(['10.51.0.1']);
    expect(rb.answers.map(addressIn)).toEqual(['10.52.0.2']);
    expect(seen.map((q) => q.key).sort()).toEqual([51, 52]);
    // The sockets are in their own namespaces: b has nothing on a's port (unless the kernel chose the same).
    if (pa.tcpPort !== pb.tcpPort) expect((await ask(b.name, 'tcp', pa.tcpPort, [query('x.svc')])).end).toBe('error ECONNREFUSED');
    await proxy.detach(51);
    await proxy.detach(52);
  });

  it('detach closes the sockets and the open connections; their queries are forgotten', async () => {
    const ns = addNs();
    const { udpPort, tcpPort } = await proxy.attach(61, ns.path);
    // A TCP query that is never answered: the endpoint is detached meanwhile, which closes the connection.
    let stale: ProxyQuery | undefined;
    onQuery = (q) => {
      stale = q;
      void proxy.detach(61);
    };
    expect((await ask(ns.name, 'tcp', tcpPort, [query('c.svc')])).end).toBe('closed');
    expect((await proxy.stats()).outstanding).toBe(0);
    proxy.answer(stale!.id, canned(stale!)); // ignored
    onQuery = answerAll;
    expect(await ask(ns.name, 'tcp', tcpPort, [query('c.svc')])).toEqual({ answers: [], end: 'error ECONNREFUSED' });
    expect(await ask(ns.name, 'udp', udpPort, [query('c.svc')], 700)).toEqual({ answers: [], end: 'timeout' });
    await proxy.detach(61); // again: fine
    await proxy.detach(999_999); // never attached: fine
  });

  it('an attach of a key already attached replaces its sockets', async () => {
    const ns = addNs();
    const first = await proxy.attach(71, ns.path);
    const before = (await proxy.stats()).endpoints;
    const second = await proxy.attach(71, ns.path);
    expect((await proxy.stats()).endpoints).toBe(before);
    expect((await ask(ns.name, 'udp', second.udpPort, [query('r.svc', 3)])).answers.map(addressIn)).toEqual(['10.71.0.3']);
    if (first.tcpPort !== second.tcpPort) expect((await ask(ns.name, 'tcp', first.tcpPort, [query('r.svc')])).end).toBe('error ECONNREFUSED');
    await proxy.detach(71);
  });

  it('reports a missing namespace with ENOENT and its path', async () => {
    const missing = `/run/netns/tswdns-${run}-missing`;
    const err = (await proxy.attach(81, missing).catch((e: unknown) => e)) as DnsAttachError;
    expect(err).toBeInstanceOf(DnsAttachError);
    expect(err).toMatchObject({ key: 81, netnsPath: missing, errno: 2, code: 'ENOENT', problem: `open ${missing}: No such file or directory` });
    expect(err.message).toContain(missing);
    // Not a namespace: setns refuses it.
    const notNs = await proxy.attach(82, '/dev/null').catch((e: unknown) => e);
    expect(notNs).toMatchObject({ code: 'EINVAL', problem: 'setns /dev/null: Invalid argument' });
    // And the proxy is still in its own namespace: a later attach works.
    const ns = addNs();
    const { udpPort } = await proxy.attach(83, ns.path);
    expect((await ask(ns.name, 'udp', udpPort, [query('ok.svc', 4)])).answers.map(addressIn)).toEqual(['10.83.0.4']);
    await proxy.detach(83);
  });

  it('an empty answer drops the query; stats count queries and the outstanding ones', async () => {
    const ns = addNs();
    const { udpPort, tcpPort } = await proxy.attach(91, ns.path);
    const before = await proxy.stats();
    onQuery = (q) => proxy.answer(q.id, undefined);
    expect(await ask(ns.name, 'udp', udpPort, [query('drop.svc')], 700)).toEqual({ answers: [], end: 'timeout' });
    onQuery = (q) => proxy.answer(q.id, Buffer.alloc(0));
    expect(await ask(ns.name, 'tcp', tcpPort, [query('drop.svc')], 700)).toEqual({ answers: [], end: 'timeout' });
    onQuery = () => undefined; // left outstanding
    await ask(ns.name, 'udp', udpPort, [query('later.svc')], 300);
    const s = await proxy.stats();
    expect(s.queries - before.queries).toBe(3);
    expect(s.dropped - before.dropped).toBe(0);
    expect(s.outstanding - before.outstanding).toBe(1);
    expect(s.endpoints).toBe(before.endpoints);
    await proxy.detach(91);
    expect((await proxy.stats()).outstanding).toBe(before.outstanding); // forgotten with the endpoint
  });

  it('keeps at most 4096 queries outstanding (the rest are counted as dropped), and forgets them after 5 s', async () => {
    const ns = addNs();
    const { udpPort } = await proxy.attach(95, ns.path);
    const before = await proxy.stats();
    const ids: number[] = [];
    onQuery = (q) => ids.push(q.id);
    // Datagrams in paced bursts (so that the socket's buffer seldom overflows), until more than
    // 4096 reached the proxy: a loaded machine may lose some in the kernel.
    const flood = `const s=require('dgram').createSocket('udp4');const m=Buffer.from('${query('flood.svc').toString('hex')}','hex');let n=0;
      const go=()=>{for(let i=0;i<50&&n<5000;i++,n++)s.send(m,${udpPort},'127.0.0.11');if(n<5000)setTimeout(go,2);else setTimeout(()=>process.exit(0),200);};go();`;
    let s = before;
    for (let round = 0; round < 5 && s.queries - before.queries <= 4096; round++) {
      const p = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', flood], { stdio: 'ignore' });
      clients.push(p);
      await new Promise((r) => p.once('close', r));
      await sleep(200);
      s = await proxy.stats();
    }
    const got = s.queries - before.queries;
    expect(got).toBeGreaterThan(4096);
    expect(ids).toHaveLength(4096);
    expect(new Set(ids).size).toBe(4096);
    expect(s.outstanding).toBe(4096);
    expect(s.dropped - before.dropped).toBe(got - 4096);
    for (const id of ids.slice(0, 10)) proxy.answer(id, undefined);
    expect((await proxy.stats()).outstanding).toBe(4086);
    await sleep(5_300);
    expect((await proxy.stats()).outstanding).toBe(0);
    proxy.answer(ids[100]!, Buffer.from('late')); // expired: ignored
    await proxy.detach(95);
  });
});

describe.skipIf(!existsSync(BIN))('DnsProxy when the process dies, cannot start or is closed', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tswdns-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('rejects the pending calls and later ones with the exit status and the last stderr line, and reports it once', async () => {
    const bin = path.join(dir, 'dies');
    writeFileSync(bin, '#!/bin/sh\nhead -c 1 >/dev/null\necho "first line" >&2\necho "it broke" >&2\nexit 7\n');
    chmodSync(bin, 0o755);
    const exits: DnsProxyError[] = [];
    const p = await DnsProxy.start({ bin, onQuery: () => undefined, onExit: (e) => exits.push(e) });
    const err = await p.attach(1, '/proc/self/ns/net').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DnsProxyError);
    expect((err as Error).message).toBe(`dns proxy: ${bin} exited unexpectedly with exit code 7: it broke`);
    await expect(p.attach(2, '/proc/self/ns/net')).rejects.toBe(err);
    await expect(p.stats()).rejects.toBe(err);
    p.answer(1, Buffer.from('x')); // nobody to send it to: ignored
    expect(exits).toEqual([err]);
    await p.close();
  });

  it('a binary that does not exist fails start', async () => {
    await expect(DnsProxy.start({ bin: path.join(dir, 'none'), onQuery: () => undefined })).rejects.toThrow(DnsProxyError);
  });

  it('close ends the proxy; calls after it reject', async () => {
    const p = await DnsProxy.start({ onQuery: () => undefined });
    expect(await p.stats()).toEqual({ queries: 0, dropped: 0, endpoints: 0, outstanding: 0 });
    await p.close();
    await expect(p.stats()).rejects.toThrow(/closed/);
  });
});
