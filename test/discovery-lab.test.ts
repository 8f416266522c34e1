// Service discovery end to end on a lab cluster (one manager, which runs the clients; two workers):
// the embedded DNS in real containers answers service names with VIPs, `tasks.NAME` with every
// task, aliases, dnsrr services with their tasks, nothing across networks, and outside names
// through an upstream resolver that the test runs on a lab host (Debian's dnsmasq, answering a
// name of its own: nothing leaves the lab). Then, under a steady loop of requests through a VIP,
// a scale-down, a start-first rolling update and a drain lose no request; a task killed -9 loses
// only what was in flight towards it.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LabCluster, RUNTIME, until, type TaskJson } from './lab/cluster.js';
import type { LabProcess } from './lab/lab.js';

type Attached = TaskJson & { networks?: { networkId: string; addresses: string[] }[] };
interface ServiceJson {
  id: string;
  endpoint?: { virtualIps?: { networkId: string; addr: string }[] };
}

/** A shell command that GETs / from the web server (busybox's httpd) at HOST:8080 (this busybox's wget crashes). */
const GET = (host: string): string => `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${host} 8080 | tr -d '\\r'`;

/** An address the upstream resolver (dnsmasq on m1) answers for a name of its own. */
const OUTSIDE = { name: 'outside.lab', addr: '10.66.0.7' };

describe('service discovery and VIP load balancing across lab hosts', () => {
  let c: LabCluster;
  let dnsmasq: LabProcess | undefined;
  let frontId = '';
  let client: Attached;

  const hostOf = async (t: TaskJson): Promise<string> => (await c.hostOf(t.nodeId))!;
  const inside = async (t: TaskJson, sh: string): Promise<{ code: number | null; stdout: string; stderr: string }> => c.host(await hostOf(t)).exec(RUNTIME, ['exec', t.id, 'sh', '-c', sh]);
  const addressOn = (t: Attached, networkId: string): string => t.networks!.find((a) => a.networkId === networkId)!.addresses[0]!.split('/')[0]!;
  /** The addresses busybox's nslookup printed for the name (after the server's own lines). */
  const lookup = async (name: string): Promise<{ code: number | null; addrs: string[]; out: string }> => {
    const r = await inside(client, `nslookup ${name}`);
    const answer = r.stdout.split(/\nName:\s*/).slice(1).join('\n');
    const addrs = [...answer.matchAll(/Address(?: \d+)?:\s*([\d.]+)/g)].map((m) => m[1]!);
    return { code: r.code, addrs: [...new Set(addrs)].sort(), out: r.stdout + r.stderr };
  };
  const vipOf = async (service: string): Promise<string | undefined> => {
    const s = JSON.parse(await c.ok('m1', 'service', 'inspect', service)) as ServiceJson;
    return s.endpoint?.virtualIps?.find((v) => v.networkId === frontId)?.addr.split('/')[0];
  };

  beforeAll(async () => {
    c = await LabCluster.create({ managers: 1, workers: 2, drainManagers: false, spares: ['x'], swarmdArgs: (lab) => ['--dns', lab.host('m1').address] });
    const m1 = c.host('m1');
    dnsmasq = m1.start('dnsmasq', 'dnsmasq', ['--keep-in-foreground', '--no-resolv', '--no-hosts', '--bind-interfaces', `--listen-address=${m1.address}`, '--port=53', `--address=/${OUTSIDE.name}/${OUTSIDE.addr}`, '--pid-file=', '--user=root', '--log-facility=-']);
    await c.ok('m1', 'network', 'create', '--driver', 'overlay', 'front');
    await c.ok('m1', 'network', 'create', '--driver', 'overlay', 'back');
    frontId = (JSON.parse(await c.ok('m1', 'network', 'inspect', 'front')) as { id: string }).id;
    const web = 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www';
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'db', '--replicas', '2', '--image', c.image, '--constraint', 'node.role==worker', '--network', 'name=front,alias=database', '--', 'sh', '-c', web);
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'rr', '--replicas', '2', '--endpoint-mode', 'dnsrr', '--image', c.image, '--constraint', 'node.role==worker', '--network', 'front', '--', 'sleep', '100000');
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'hidden', '--image', c.image, '--constraint', 'node.role==worker', '--network', 'back', '--', 'sleep', '100000');
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'client', '--image', c.image, '--constraint', 'node.role==manager', '--network', 'front', '--', 'sleep', '100000');
    client = ((await c.converged('client', 1, 90_000)) as Attached[])[0]!;
  }, 180_000);

  afterAll(async () => {
    await dnsmasq?.kill9();
    await c?.destroy();
  });

  it('answers service names, tasks.NAME, aliases, dnsrr names and outside names, scoped to the asker\'s networks', async () => {
    const db = (await c.converged('db', 2, 90_000)) as Attached[];
    const rr = (await c.converged('rr', 2, 90_000)) as Attached[];
    await c.converged('hidden', 1, 90_000);
    const vip = await vipOf('db');
    expect(vip).toMatch(/^10\.0\.0\.\d+$/);
    expect(await vipOf('rr')).toBeUndefined();
    expect((await inside(client, 'cat /etc/resolv.conf')).stdout).toMatch(/^nameserver 127\.0\.0\.11$/m);
    const dbAddrs = db.map((t) => addressOn(t, frontId)).sort();
    const rrAddrs = rr.map((t) => addressOn(t, frontId)).sort();
    await until('db resolves to its VIP', async () => ((await lookup('db')).addrs.join() === vip ? true : undefined), 20_000);
    expect((await lookup('database')).addrs).toEqual([vip]);
    expect((await lookup('tasks.db')).addrs).toEqual(dbAddrs);
    expect((await lookup('rr')).addrs).toEqual(rrAddrs);
    const named = await lookup(`db.${db[0]!.slot}.${db[0]!.id}`);
    expect(named.addrs).toEqual([addressOn(db[0]!, frontId)]);
    // Another network's service is not known here (the upstream does not know it either).
    const hidden = await lookup('hidden');
    expect(hidden.addrs, hidden.out).toEqual([]);
    expect((await lookup(OUTSIDE.name)).addrs).toEqual([OUTSIDE.addr]);
    // Through the VIP, to both tasks (numgen random: 40 requests miss one with odds 2^-39).
    const seen = new Set<string>();
    const r = await inside(client, `for i in $(seq 40); do ${GET('db')}; done`);
    for (const line of r.stdout.split('\n').filter((l) => /^[0-9a-z]{12}$/.test(l.trim()))) seen.add(line.trim());
    const debug = async (): Promise<string> => {
      const h = c.host(await hostOf(client));
      const { pid } = JSON.parse((await h.exec(RUNTIME, ['state', client.id])).stdout) as { pid: number };
      const nft = await h.exec('nsenter', ['-t', String(pid), '-n', '--', 'nft', 'list', 'ruleset']);
      const ip = await inside(client, 'ip addr; ip route; ' + GET('db') + '; ' + GET(addressOn(db[0]!, frontId)));
      return `${r.stderr}\n${nft.stdout}${nft.stderr}\n${ip.stdout}${ip.stderr}`;
    };
    expect(seen, seen.size === 0 ? await debug() : '').toEqual(new Set(db.map((t) => t.id.slice(0, 12))));
  }, 150_000);

  it('loses no request through the VIP to a scale-down, a start-first update or a drain; a kill -9 loses only what was in flight', async () => {
    // A steady loop of requests from the client through the VIP, each line "ok" or "fail".
    const host = c.host(await hostOf(client));
    const loop = host.start('requests', RUNTIME, ['exec', client.id, 'sh', '-c', `while true; do r=$( (${GET('db')}) 2>&1 | tail -n 1); case "$r" in [0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z][0-9a-z]) echo ok;; *) echo "fail $(date +%s) $r";; esac; sleep 0.02; done`]);
    const counts = (): { ok: number; fail: number } => {
      const out = readFileSync(loop.logPath, 'utf8');
      return { ok: (out.match(/^ok$/gm) ?? []).length, fail: (out.match(/^fail\b/gm) ?? []).length };
    };
    const step = async (what: string, action: () => Promise<void>): Promise<{ ok: number; fail: number }> => {
      const before = counts();
      await action();
      // Some more requests after it settled.
      const settled = counts().ok;
      await until(`${what}: requests flow again`, () => Promise.resolve(counts().ok > settled + 20 ? true : undefined), 30_000);
      const after = counts();
      return { ok: after.ok - before.ok, fail: after.fail - before.fail };
    };
    try {
      await until('requests flow', () => Promise.resolve(counts().ok > 20 ? true : undefined), 30_000);
      await c.ok('m1', 'service', 'scale', 'db=6');
      await c.converged('db', 6, 90_000);
      const down = await step('scale 6 → 2', async () => {
        await c.ok('m1', 'service', 'scale', 'db=2');
        await c.converged('db', 2, 90_000);
      });
      // What failed, and what the nodes warned of meanwhile (for a failure's post-mortem).
      const failures = (): string => {
        const lines = readFileSync(loop.logPath, 'utf8').split('\n').filter((l) => l.startsWith('fail')).slice(0, 20);
        const warned = [...c.swarmds.values()].flatMap((p) => readFileSync(p.logPath, 'utf8').split('\n').filter((l) => /"level":(40|50)/.test(l) && /discovery|dispatcher|network/.test(l)));
        return [...lines, ...warned.slice(-20)].join('\n');
      };
      expect(down.fail, `${JSON.stringify(down)}\n${failures()}`).toBe(0);
      const update = await step('start-first update', async () => {
        await c.ok('m1', 'service', 'update', '--update-order', 'start-first', '--env-add', 'V=2', 'db');
        await until('db updated', async () => {
          const ts = await c.tasks('db');
          const live = ts.filter((t) => t.desiredState === 'TASK_STATE_RUNNING' && t.status?.state === 'TASK_STATE_RUNNING');
          return live.length === 2 && live.every((t) => t.spec?.container?.env?.includes('V=2')) && ts.filter((t) => t.status?.state === 'TASK_STATE_RUNNING').length === 2 ? true : undefined;
        }, 90_000);
      });
      expect(update.fail, `${JSON.stringify(update)}\n${failures()}`).toBe(0);
      const drain = await step('drain w1', async () => {
        await c.ok('m1', 'node', 'update', 'w1', '--availability', 'drain');
        await until('db off w1', async () => {
          const ts = (await c.tasks('db')).filter((t) => t.status?.state === 'TASK_STATE_RUNNING');
          const w1 = c.nodeIds.get('w1');
          return ts.length === 2 && ts.every((t) => t.nodeId !== w1) ? true : undefined;
        }, 90_000);
      });
      expect(drain.fail, `${JSON.stringify(drain)}\n${failures()}`).toBe(0);
      await c.ok('m1', 'node', 'update', 'w1', '--availability', 'active');
      const [victim] = (await c.tasks('db')).filter((t) => t.status?.state === 'TASK_STATE_RUNNING');
      const killed = await step('kill -9', async () => {
        const h = c.host(await hostOf(victim!));
        const { pid } = JSON.parse((await h.exec(RUNTIME, ['state', victim!.id])).stdout) as { pid: number };
        await h.exec('kill', ['-9', String(pid)]);
        await c.converged('db', 2, 90_000);
      });
      // Reported, not bounded tightly: the requests in flight to the task killed fail.
      expect(killed.fail).toBeLessThanOrEqual(10);
      // No node's service tables were left behind the store (swarmctl node inspect's `discovery`).
      const nodes = JSON.parse(await c.ok('m1', 'node', 'ls', '--format', 'json')) as { description?: { hostname?: string }; discovery?: { behind?: boolean } }[];
      expect(nodes.filter((n) => n.discovery?.behind).map((n) => n.description?.hostname)).toEqual([]);
      console.log(`requests through the VIP: scale-down ${JSON.stringify(down)}, update ${JSON.stringify(update)}, drain ${JSON.stringify(drain)}, kill -9 ${JSON.stringify(killed)}`);
    } finally {
      await loop.kill9();
    }
  }, 400_000);

  it('makes a task with a healthcheck a backend only once a check passed', async () => {
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'checked', '--image', c.image, '--constraint', 'node.role==worker', '--network', 'front', '--health-cmd', 'test -f /tmp/ok', '--health-interval', '300ms', '--health-retries', '1000', '--', 'sleep', '100000');
    const t = (await until('the task starting', async () => (await c.tasks('checked')).find((x) => x.status?.state === 'TASK_STATE_STARTING'), 60_000)) as Attached;
    const h = c.host(await hostOf(t));
    await until('its container running', async () => ((await h.exec(RUNTIME, ['state', t.id])).stdout.includes('"running"') ? true : undefined), 30_000);
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await c.tasks('checked')).find((x) => x.id === t.id)?.status?.state).toBe('TASK_STATE_STARTING');
    expect((await lookup('tasks.checked')).addrs).toEqual([]);
    const touched = await h.exec(RUNTIME, ['exec', t.id, 'sh', '-c', ': > /tmp/ok']);
    expect(touched.code, touched.stderr).toBe(0);
    const [running] = (await c.converged('checked', 1, 30_000).catch(async (err: Error) => {
      const logs = readFileSync(c.swarmds.get(await hostOf(t))!.logPath, 'utf8').split('\n').filter((l) => l.includes(t.id)).slice(-10).join('\n');
      throw new Error(`${err.message}\n${logs}`);
    })) as Attached[];
    expect(running!.id).toBe(t.id);
    await until('tasks.checked answers', async () => ((await lookup('tasks.checked')).addrs.join() === addressOn(running!, frontId) ? true : undefined), 10_000);
    await c.ok('m1', 'service', 'rm', 'checked');
  }, 120_000);

  it('answers a published port on every node, one without the task included, and the task sees the client\'s own address', async () => {
    // The server answers GET /cgi-bin/ip with the address the request came from (busybox httpd's CGI).
    const cgi = "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www";
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'pub', '--publish', 'published=8080,target=80', '--image', c.image, '--constraint', 'node.hostname==w2', '--', 'sh', '-c', cgi);
    await c.converged('pub', 1, 90_000);
    const x = c.host('x');
    // A client on a lab host outside the cluster: host x's Node, GET through NODE:8080.
    const get = `const s = require('net').connect(8080, process.argv[1], () => s.write('GET /cgi-bin/ip HTTP/1.0\\r\\n\\r\\n')); let b = ''; s.on('data', (d) => (b += d)); s.on('end', () => { console.log(b.trim().split('\\n').pop().trim()); process.exit(0); }); s.on('error', (e) => { console.log('error ' + e.message); process.exit(1); }); setTimeout(() => { console.log('timeout'); process.exit(1); }, 3000);`;
    for (const node of ['m1', 'w1', 'w2']) {
      const addr = c.host(node).address;
      const answer = await until(`${node}:8080 answers`, async () => {
        const r = await x.exec(process.execPath, ['-e', get, addr]);
        return r.code === 0 ? r.stdout.trim() : undefined;
      }, 30_000);
      // busybox httpd gives the address in its IPv4-mapped IPv6 form.
      expect(answer.replace(/^\[::ffff:(.*)\]$/, '$1'), `through ${node}`).toBe(x.address);
    }
    // A port picked from 30000-32767 when none is named, shown by inspect.
    await c.ok('m1', 'service', 'create', '--detach', '--name', 'auto', '--publish', 'target=80', '--image', c.image, '--constraint', 'node.hostname==w1', '--', 'sh', '-c', cgi);
    const auto = JSON.parse(await c.ok('m1', 'service', 'inspect', 'auto')) as { endpoint?: { ports?: { publishedPort: number; publishMode: string }[] } };
    const picked = auto.endpoint?.ports?.[0]?.publishedPort ?? 0;
    expect(picked).toBeGreaterThanOrEqual(30000);
    expect(picked).toBeLessThanOrEqual(32767);
    // Bad input: a port another service publishes, a port out of range.
    const taken = await c.ctl('m1', 'service', 'create', '--name', 'y', '--publish', 'published=8080,target=81', '--image', c.image, '--', 'true');
    expect(taken.code).not.toBe(0);
    expect(taken.stderr.trim().split('\n')).toHaveLength(1);
    expect(taken.stderr).toMatch(/spec\.endpoint\.ports\[0\]\.publishedPort: port 8080\/tcp is already published by service pub/);
    const range = await c.ctl('m1', 'service', 'create', '--name', 'y', '--publish', 'published=70000,target=80', '--image', c.image, '--', 'true');
    expect(range.code).not.toBe(0);
    expect(range.stderr).toMatch(/published=70000 must be a port number \(1-65535\)/);
  }, 150_000);

  it('refuses an endpoint mode with a typo and a bad alias, naming them', async () => {
    const typo = await c.ctl('m1', 'service', 'create', '--name', 'x', '--endpoint-mode', 'dnsr', '--image', c.image, '--', 'true');
    expect(typo.code).not.toBe(0);
    expect(typo.stderr.trim().split('\n')).toHaveLength(1);
    expect(typo.stderr).toMatch(/--endpoint-mode: "dnsr" must be one of vip, dnsrr/);
    const alias = await c.ctl('m1', 'service', 'create', '--name', 'x', '--network', 'name=front,alias=-bad', '--image', c.image, '--', 'true');
    expect(alias.code).not.toBe(0);
    expect(alias.stderr).toMatch(/aliases\[0\]: "-bad" is not a DNS name/);
  }, 60_000);
});
