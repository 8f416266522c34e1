// Service discovery on a node over a fake proxy and load balancer: a container's table written
// when it is attached and again when the services change (only where it differs), the withdrawn
// backends' UDP flows flushed, the message acknowledged once every container has it; queries
// answered from its networks' names or forwarded to its upstream (a real UDP server here).
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import * as packet from 'dns-packet';
import { pino } from 'pino';
import { ServiceEndpoints } from '../../proto/gen/tswarm/dispatcher.js';
import type { DnsProxy, ProxyQuery } from '../network/dns-proxy.js';
import type { LbState, LoadBalancer } from '../network/service-lb.js';
import { ServiceDiscovery } from './discovery.js';

const log = pino({ level: 'silent' });

function fakes(): { proxy: DnsProxy; lb: LoadBalancer; applied: [string, LbState][]; flushed: string[]; answers: Map<number, Buffer | undefined> } {
  const applied: [string, LbState][] = [];
  const flushed: string[] = [];
  const answers = new Map<number, Buffer | undefined>();
  const proxy = {
    attach: (key: number) => Promise.resolve({ udpPort: 40000 + key, tcpPort: 41000 + key }),
    detach: () => Promise.resolve(),
    answer: (id: number, msg: Buffer | undefined) => answers.set(id, msg),
  } as unknown as DnsProxy;
  const lb = {
    apply: (netns: string, s: LbState) => Promise.resolve(void applied.push([netns, s])),
    flush: (netns: string, addrs: readonly string[], protocol?: string) => Promise.resolve(void flushed.push(`${netns} ${protocol ?? 'all'} ${addrs.join(',')}`)),
  } as unknown as LoadBalancer;
  return { proxy, lb, applied, flushed, answers };
}

const web = (backends: string[]): ServiceEndpoints =>
  ServiceEndpoints.fromPartial({ id: 'front:web', networkId: 'front', serviceId: 'web', name: 'web', vip: '10.0.0.2', backends: backends.map((address, i) => ({ taskId: `t${i}`, address, slot: i + 1, name: `web.${i + 1}.t${i}` })) });

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('ServiceDiscovery', () => {
  it('writes a container\'s table at attach and at each change that touches it, flushes withdrawn backends, and acknowledges each message', async () => {
    const f = fakes();
    const acks: number[] = [];
    const d = new ServiceDiscovery({ lb: f.lb, upstream: [], log });
    d.useProxy(f.proxy);
    d.onApplied = (seq) => acks.push(seq);
    d.setServices([web(['10.0.0.5', '10.0.0.6'])], 1);
    await d.idle();
    expect(acks).toEqual([1]);
    await d.attach({ id: 'c1', netns: '/proc/10/ns/net', networks: ['front'] });
    await d.attach({ id: 'c2', netns: '/proc/20/ns/net', networks: ['back'] });
    expect(f.applied).toEqual([
      ['/proc/10/ns/net', { dnsUdpPort: 40001, dnsTcpPort: 41001, vips: [{ vip: '10.0.0.2', backends: ['10.0.0.5', '10.0.0.6'] }] }],
      ['/proc/20/ns/net', { dnsUdpPort: 40002, dnsTcpPort: 41002, vips: [] }],
    ]);
    d.setServices([web(['10.0.0.6'])], 2);
    await d.idle();
    // Only c1's table (on front) changed; 10.0.0.5's UDP flows flushed at once there.
    expect(f.applied.slice(2)).toEqual([['/proc/10/ns/net', { dnsUdpPort: 40001, dnsTcpPort: 41001, vips: [{ vip: '10.0.0.2', backends: ['10.0.0.6'] }] }]]);
    expect(f.flushed).toEqual(['/proc/10/ns/net udp 10.0.0.5']);
    expect(acks).toEqual([1, 2]);
    // The same again: nothing written; acknowledged all the same.
    d.setServices([web(['10.0.0.6'])], 3);
    await d.idle();
    expect(f.applied).toHaveLength(3);
    expect(acks).toEqual([1, 2, 3]);
    // A new session starts its sequences again; nothing acknowledged until its message is in force.
    d.resetSequence();
    expect(d.applied).toBe(0);
    d.setServices([web(['10.0.0.6'])], 1);
    await d.idle();
    expect(d.applied).toBe(1);
    await d.detach('c1');
    d.setServices([web(['10.0.0.7'])], 2);
    await d.idle();
    expect(f.applied.filter(([ns]) => ns === '/proc/10/ns/net')).toHaveLength(2);
  });

  it('answers its names to a container on their network, and forwards others to the container\'s upstream', async () => {
    const f = fakes();
    const upstream = createSocket('udp4');
    upstream.on('message', (m, r) => {
      const q = packet.decode(m);
      upstream.send(packet.encode({ type: 'response', id: q.id ?? 0, questions: q.questions ?? [], answers: [{ type: 'A', name: q.questions![0]!.name, data: '10.66.0.7' }] }), r.port, r.address);
    });
    await new Promise<void>((resolve) => upstream.bind(0, '127.0.0.1', resolve));
    try {
      const d = new ServiceDiscovery({ lb: f.lb, upstream: ['192.0.2.1'], log });
      d.useProxy(f.proxy);
      d.setServices([web(['10.0.0.5'])], 1);
      await d.attach({ id: 'c1', netns: '/proc/10/ns/net', networks: ['front'], upstream: [`127.0.0.1:${upstream.address().port}`] });
      const ask = (id: number, name: string): void => d.onQuery({ id, key: 1, transport: 'udp', message: packet.encode({ type: 'query', id: 7, questions: [{ type: 'A', name }] }) } satisfies ProxyQuery);
      ask(1, 'web');
      expect((packet.decode(f.answers.get(1)!).answers![0] as { data: string }).data).toBe('10.0.0.2');
      ask(2, 'outside.lab');
      await until(() => f.answers.has(2));
      expect((packet.decode(f.answers.get(2)!).answers![0] as { data: string }).data).toBe('10.66.0.7');
      // A key no container holds (detached meanwhile): dropped.
      d.onQuery({ id: 3, key: 99, transport: 'udp', message: Buffer.alloc(12) });
      expect(f.answers.get(3)).toBeUndefined();
      expect(f.answers.has(3)).toBe(true);
    } finally {
      upstream.close();
    }
  });
});
