// The embedded DNS's names and answers, over real DNS messages (dns-packet both ways).
import { describe, expect, it } from 'vitest';
import * as packet from 'dns-packet';
import { buildNames, decide, servfail, TASK_TTL, VIP_TTL, type ServiceNames } from './dns-names.js';

const db: ServiceNames = {
  networkId: 'front',
  name: 'db',
  vip: '10.0.0.2',
  aliases: ['database'],
  backends: [
    { address: '10.0.0.5', name: 'db.1.aaa', hostname: 'db-one' },
    { address: '10.0.0.6', name: 'db.2.bbb', hostname: '' },
  ],
};
const rr: ServiceNames = { networkId: 'front', name: 'rr', vip: '', aliases: [], backends: [{ address: '10.0.0.7', name: 'rr.1.ccc', hostname: '' }, { address: '10.0.0.8', name: 'rr.2.ddd', hostname: '' }] };
const hidden: ServiceNames = { networkId: 'back', name: 'hidden', vip: '10.1.0.2', aliases: [], backends: [] };
const tables = buildNames([db, rr, hidden]);

const query = (name: string, type: packet.RecordType = 'A', extra: Partial<packet.Packet> = {}): Buffer =>
  packet.encode({ type: 'query', id: 4242, flags: packet.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }], ...extra });

function ask(name: string, type: packet.RecordType = 'A', networks = ['front'], transport: 'udp' | 'tcp' = 'udp'): packet.DecodedPacket | 'forward' | 'drop' {
  const d = decide(query(name, type), networks, tables, transport, () => 0);
  return d.kind === 'answer' ? packet.decode(d.message) : d.kind;
}

const addrs = (p: ReturnType<typeof ask>): string[] => (typeof p === 'string' ? [] : (p.answers ?? []).map((a) => String((a as { data: unknown }).data)).sort());

describe('embedded DNS names', () => {
  it('answers a service name with its VIP, an alias too, and tasks.NAME with every task', () => {
    const a = ask('db') as packet.DecodedPacket;
    expect(a.id).toBe(4242);
    expect([a.flag_qr, a.flag_aa, a.flag_rd, a.flag_ra, a.flag_tc]).toEqual([true, true, true, true, false]);
    expect(addrs(a)).toEqual(['10.0.0.2']);
    expect((a.answers![0] as { ttl: number }).ttl).toBe(VIP_TTL);
    expect(addrs(ask('DataBase.'))).toEqual(['10.0.0.2']);
    const tasks = ask('tasks.db') as packet.DecodedPacket;
    expect(addrs(tasks)).toEqual(['10.0.0.5', '10.0.0.6']);
    expect((tasks.answers![0] as { ttl: number }).ttl).toBe(TASK_TTL);
    expect(addrs(ask('tasks.database'))).toEqual(['10.0.0.5', '10.0.0.6']);
  });

  it('answers a dnsrr service with its tasks, shuffled; task names and hostnames with their address', () => {
    expect(addrs(ask('rr'))).toEqual(['10.0.0.7', '10.0.0.8']);
    const orders = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const d = decide(query('rr'), ['front'], tables, 'udp');
      if (d.kind === 'answer') orders.add((packet.decode(d.message).answers ?? []).map((x) => String((x as { data: unknown }).data)).join());
    }
    expect(orders.size).toBe(2);
    expect(addrs(ask('db.2.bbb'))).toEqual(['10.0.0.6']);
    expect(addrs(ask('db-one'))).toEqual(['10.0.0.5']);
  });

  it('scopes names to the asker\'s networks, the first of them that knows a name answering', () => {
    expect(ask('hidden')).toBe('forward');
    expect(addrs(ask('hidden', 'A', ['back']))).toEqual(['10.1.0.2']);
    const both = buildNames([db, { ...hidden, name: 'db' }]);
    const d = (nets: string[]): string[] => {
      const r = decide(query('db'), nets, both, 'udp');
      return r.kind === 'answer' ? addrs(packet.decode(r.message)) : [];
    };
    expect(d(['back', 'front'])).toEqual(['10.1.0.2']);
    expect(d(['front', 'back'])).toEqual(['10.0.0.2']);
  });

  it('answers AAAA (and other types) of a known name empty, not refused; forwards unknown names', () => {
    const aaaa = ask('db', 'AAAA') as packet.DecodedPacket;
    expect(aaaa.flags! & 0xf).toBe(0);
    expect(aaaa.answers).toEqual([]);
    expect((ask('db', 'MX') as packet.DecodedPacket).answers).toEqual([]);
    expect(ask('example.lab')).toBe('forward');
    expect(ask('example.lab', 'AAAA')).toBe('forward');
  });

  it('answers the reverse of a task address with its name, of a VIP with the service\'s', () => {
    expect((ask('5.0.0.10.in-addr.arpa', 'PTR') as packet.DecodedPacket).answers?.[0]).toMatchObject({ type: 'PTR', data: 'db.1.aaa' });
    expect((ask('2.0.0.10.in-addr.arpa', 'PTR') as packet.DecodedPacket).answers?.[0]).toMatchObject({ type: 'PTR', data: 'db' });
    expect(ask('9.0.0.10.in-addr.arpa', 'PTR')).toBe('forward');
  });

  it('cuts a UDP answer to 512 bytes (or the EDNS size) with TC set; TCP gets it whole', () => {
    const many: ServiceNames = { networkId: 'big', name: 'many', vip: '', aliases: [], backends: Array.from({ length: 100 }, (_, i) => ({ address: `10.9.0.${i + 2}`, name: `many.${i + 1}.t${i}`, hostname: '' })) };
    const t = buildNames([many]);
    const udp = decide(query('tasks.many'), ['big'], t, 'udp');
    expect(udp.kind).toBe('answer');
    const cut = packet.decode((udp as { message: Buffer }).message);
    expect((udp as { message: Buffer }).message.length).toBeLessThanOrEqual(512);
    expect(cut.flag_tc).toBe(true);
    expect(cut.answers!.length).toBeGreaterThan(10);
    expect(cut.answers!.length).toBeLessThan(100);
    const edns = decide(query('tasks.many', 'A', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] }), ['big'], t, 'udp');
    expect(packet.decode((edns as { message: Buffer }).message).answers).toHaveLength(100);
    const tcp = decide(query('tasks.many'), ['big'], t, 'tcp');
    expect(packet.decode((tcp as { message: Buffer }).message)).toMatchObject({ flag_tc: false });
    expect(packet.decode((tcp as { message: Buffer }).message).answers).toHaveLength(100);
  });

  it('drops what is not a query, answers FORMERR to several questions, and makes SERVFAIL for the forwarder', () => {
    expect(decide(Buffer.from('nonsense'), ['front'], tables, 'udp').kind).toBe('drop');
    expect(decide(packet.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'db' }] }), ['front'], tables, 'udp').kind).toBe('drop');
    const two = decide(packet.encode({ type: 'query', id: 7, questions: [{ type: 'A', name: 'db' }, { type: 'A', name: 'rr' }] }), ['front'], tables, 'udp');
    expect(packet.decode((two as { message: Buffer }).message).flags! & 0xf).toBe(1);
    const fail = packet.decode(servfail(query('example.lab'))!);
    expect([fail.id, fail.flags! & 0xf, fail.questions?.[0]?.name]).toEqual([4242, 2, 'example.lab']);
    expect(servfail(Buffer.from('x'))).toBeUndefined();
  });
});
