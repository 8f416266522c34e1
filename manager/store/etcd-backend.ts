// The manager's store kept in an external etcd cluster (`swarmd init --store etcd://…`): the
// log is EtcdLog, leadership is an etcd election on a lease whose value is the leader's advertise
// address, so that followers know where to forward leader-only calls (see manager/forward.ts).
import { Etcd3, type ElectionObserver } from 'etcd3';
import { InvalidArgumentError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { MemoryStore } from './memory.js';
import { EtcdLeadership, EtcdLog } from './etcd.js';

export interface EtcdStoreUrl {
  endpoints: string[];
  prefix: string;
}

/** `etcd://host:port[,host:port...][/prefix]`; the prefix defaults to /tswarm. */
export function parseEtcdUrl(url: string): EtcdStoreUrl {
  const m = /^etcd:\/\/([^/]+)(\/[A-Za-z0-9._/-]*)?$/.exec(url);
  if (!m) throw new InvalidArgumentError('--store', `"${url}" must be etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`);
  const endpoints = m[1]!.split(',');
  for (const e of endpoints) if (!/^[^\s:,]+:\d{1,5}$/.test(e)) throw new InvalidArgumentError('--store', `"${e}" must be HOST:PORT`);
  const prefix = (m[2] ?? '/tswarm').replace(/\/+$/, '') || '/tswarm';
  return { endpoints: endpoints.map((e) => `http://${e}`), prefix };
}

export class EtcdBackend {
  readonly client: Etcd3;
  readonly log: EtcdLog;
  private readonly leadership: EtcdLeadership;
  private readonly electionName: string;
  private observer: ElectionObserver | undefined;
  isLeader = false;
  leaderAddr: string | undefined;
  private stopped = false;

  constructor(
    url: string,
    store: MemoryStore,
    private readonly advertiseAddr: string,
    private readonly logger: Logger,
  ) {
    const { endpoints, prefix } = parseEtcdUrl(url);
    this.client = new Etcd3({ hosts: endpoints, dialTimeout: 3_000 });
    this.log = new EtcdLog(this.client, store, { prefix, snapshotEvery: 1_000 });
    this.electionName = `${prefix}/leader`;
    this.leadership = new EtcdLeadership(this.client, advertiseAddr, 3, this.electionName);
  }

  /** Follows the log, watches who leads, and campaigns. */
  async start(): Promise<void> {
    await this.log.start();
    const election = this.client.election(this.electionName, 3);
    this.observer = await election.observe();
    this.leaderAddr = this.observer.leader();
    this.observer.on('change', (addr: string | undefined) => {
      this.leaderAddr = addr;
      this.isLeader = addr === this.advertiseAddr;
      this.logger.info({ leader: addr }, 'etcd: leader changed');
    });
    this.campaignLoop();
  }

  private campaignLoop(): void {
    if (this.stopped) return;
    this.leadership.campaign().then(
      () => {
        this.isLeader = true;
        this.leaderAddr = this.advertiseAddr;
      },
      (err: unknown) => {
        this.isLeader = false;
        this.logger.warn({ err: (err as Error).message }, 'etcd: campaign failed; trying again');
        setTimeout(() => this.campaignLoop(), 1_000);
      },
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.leadership.resign().catch(() => undefined);
    await this.observer?.cancel().catch(() => undefined);
    await this.log.stop();
    this.client.close();
  }
}
