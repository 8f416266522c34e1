// The like-for-like anchor of the control API benchmark: a three-member etcd (Debian's etcd-server,
// default timing) on the same three lab hosts as the managers, mutual TLS between members and
// from the client (ECDSA P-256 certificates from a CA made here with openssl, as the cluster CA
// issues ours), fsync on, driven by a load generator in a lab host (etcd-client.ts) that writes
// 1 KiB values to the etcd leader. What it leaves out of the loopback anchor's figure: the lab's
// veth hops and the TLS that the control API pays on every hop.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab, LabHost } from '../../test/lab/lab.js';
import { dist } from '../../test/util/dist.js';
import { runLabClient } from './lab-client.js';
import { sleep, type LoadResult } from './load.js';
import { cpuMillisOf } from './raft.js';

const CLIENT_PORT = 2379;
const PEER_PORT = 2380;
const loadClient = dist('bench/lib/etcd-client.js');

/** openssl, failing with its own message. */
function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, a certificate per member (server and client use, its lab address and loopback), a client certificate. */
function makeCerts(dir: string, members: { name: string; address: string }[]): void {
  mkdirSync(dir, { recursive: true });
  const key = (name: string): void => openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`], dir);
  key('ca');
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=tswarm-bench-etcd-ca', '-days', '2', '-out', 'ca.crt'], dir);
  const issue = (name: string, cn: string, ext: string): void => {
    key(name);
    openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`], dir);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
  };
  for (const m of members) issue(m.name, m.name, `subjectAltName=IP:${m.address},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`);
  issue('client', 'bench-client', 'extendedKeyUsage=clientAuth\n');
}

export class EtcdLab {
  private readonly certDir: string;
  private readonly members: { name: string; host: LabHost }[];
  private leaderEndpoint: string | undefined;

  private constructor(
    private readonly lab: Lab,
    root: string,
  ) {
    this.certDir = join(root, 'etcd-certs');
    this.members = lab.hosts.slice(0, 3).map((host, i) => ({ name: `e${i + 1}`, host }));
    makeCerts(
      this.certDir,
      this.members.map((m) => ({ name: m.name, address: m.host.address })),
    );
    const url = (h: LabHost, port: number): string => `https://${h.address}:${port}`;
    const initial = this.members.map((m) => `${m.name}=${url(m.host, PEER_PORT)}`).join(',');
    for (const m of this.members) {
      const c = (f: string): string => join(this.certDir, f);
      m.host.start('etcd', 'etcd', [
        '--name', m.name, '--data-dir', join(root, `etcd-${m.name}`),
        '--listen-client-urls', url(m.host, CLIENT_PORT), '--advertise-client-urls', url(m.host, CLIENT_PORT),
        '--listen-peer-urls', url(m.host, PEER_PORT), '--initial-advertise-peer-urls', url(m.host, PEER_PORT),
        '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', 'tswarm-bench-lab',
        '--cert-file', c(`${m.name}.crt`), '--key-file', c(`${m.name}.key`), '--trusted-ca-file', c('ca.crt'), '--client-cert-auth',
        '--peer-cert-file', c(`${m.name}.crt`), '--peer-key-file', c(`${m.name}.key`), '--peer-trusted-ca-file', c('ca.crt'), '--peer-client-cert-auth',
        '--log-level', 'error',
      ]);
    }
  }

  /** Starts the members on the lab's first three hosts; their files go under `root`. */
  static async create(lab: Lab, root: string): Promise<EtcdLab> {
    const e = new EtcdLab(lab, root);
    await e.leader();
    return e;
  }

  private endpoints(): string {
    return this.members.map((m) => `https://${m.host.address}:${CLIENT_PORT}`).join(',');
  }

  /** The leader member's client URL (asked again after a run that failed). */
  async leader(): Promise<string> {
    if (this.leaderEndpoint) return this.leaderEndpoint;
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const lines = await runLabClient(this.lab.hosts[0]!, [loadClient, '--leader', '--endpoints', this.endpoints(), '--cert-dir', this.certDir], 20_000);
        const endpoint = lines.find((j) => j.type === 'leader')?.endpoint;
        if (typeof endpoint === 'string') return (this.leaderEndpoint = endpoint);
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`the lab's etcd has no leader after 30 s: ${(err as Error).message}`);
      }
      await sleep(500);
    }
  }

  /** `clients` writers for `seconds`, from a host other than the leader's, to the leader. */
  readonly run = async (clients: number, seconds: number, prefix: string): Promise<LoadResult> => {
    const leader = await this.leader();
    const from = this.members.find((m) => !leader.includes(`//${m.host.address}:`))!.host;
    const args = [loadClient, '--endpoint', leader, '--cert-dir', this.certDir, '--clients', String(clients), '--seconds', String(seconds), '--prefix', prefix];
    try {
      const res = (await runLabClient(from, args, seconds * 1000 + 60_000)).find((j) => j.type === 'result');
      if (!res) throw new Error(`the etcd load generator on ${from.name} printed no result`);
      return res as unknown as LoadResult;
    } catch (err) {
      this.leaderEndpoint = undefined;
      throw err;
    }
  };

  cpuMillis(): number {
    return cpuMillisOf(this.members.map((m) => ({ pid: m.host.processes.get('etcd')?.pid })));
  }

  /** Stops the members (the lab's teardown would too). */
  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => m.host.processes.get('etcd')?.stop(5_000) ?? Promise.resolve()));
  }
}
