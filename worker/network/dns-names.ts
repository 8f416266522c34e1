// The names of the embedded DNS (127.0.0.11 in every container on an overlay network), and its
// answers. Pure: the services the dispatcher sent (ServiceEndpoints items) in, a table per network
// out; a query and the asker's networks in, an answer or "forward" out. The shell is
// worker/agent/discovery.ts; the sockets are swarm-dnsproxy's (worker/network/dns-proxy.ts).
//
// On a network, as Docker's embedded DNS:
//   NAME, and each network alias of the service   its VIP (endpoint mode vip), or every serving
//                                                 task's address, shuffled (dnsrr)
//   tasks.NAME                                    every serving task's address, shuffled
//   NAME.SLOT.TASKID (a task's name), its hostname  that task's address
//   the reverse (PTR) of those addresses           the task's name, or the service's for a VIP
// A name answers only on the networks the asker shares with it: the asker's networks are tried in
// its order, the first that knows the name answers. A known name asked for another type (AAAA
// above all) gets an empty NOERROR answer, so that a resolver does not go on to search domains or
// to the upstream. Anything else is the upstream's (forward).
//
// TTLs: 600 s for a VIP (it lives as long as the service, as Docker's); 0 for task addresses,
// which change with every scale or update and must not outlive them in a client's cache.
import * as packet from 'dns-packet';

/** What a name answers on one network. */
interface NameRecord {
  addrs: string[];
  /** Shuffled in each answer (dnsrr names, tasks.NAME). */
  shuffle: boolean;
  ttl: number;
}

/** One network's names (lower case, no trailing dot) and reverse names. */
export interface NetworkNames {
  names: Map<string, NameRecord>;
  /** in-addr.arpa name → the name it points to. */
  reverse: Map<string, string>;
}

/** The parts of a ServiceEndpoints item the names are made of (the proto type fits). */
export interface ServiceNames {
  networkId: string;
  name: string;
  /** Empty: dnsrr (or no VIP yet, which answers as dnsrr does). */
  vip: string;
  aliases: readonly string[];
  backends: readonly { address: string; name: string; hostname: string }[];
}

export const VIP_TTL = 600;
export const TASK_TTL = 0;

function canonical(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function reverseName(addr: string): string {
  return `${addr.split('.').reverse().join('.')}.in-addr.arpa`;
}

/** The table of each network. Later items do not override a name an earlier one holds on a network. */
export function buildNames(items: Iterable<ServiceNames>): Map<string, NetworkNames> {
  const out = new Map<string, NetworkNames>();
  for (const s of items) {
    const net = out.get(s.networkId) ?? { names: new Map<string, NameRecord>(), reverse: new Map<string, string>() };
    out.set(s.networkId, net);
    const add = (name: string, r: NameRecord): void => {
      const key = canonical(name);
      if (key && !net.names.has(key)) net.names.set(key, r);
    };
    const tasks = s.backends.map((b) => b.address);
    const service: NameRecord = s.vip ? { addrs: [s.vip], shuffle: false, ttl: VIP_TTL } : { addrs: tasks, shuffle: true, ttl: TASK_TTL };
    add(s.name, service);
    for (const a of s.aliases) add(a, service);
    add(`tasks.${s.name}`, { addrs: tasks, shuffle: true, ttl: TASK_TTL });
    for (const a of s.aliases) add(`tasks.${a}`, { addrs: tasks, shuffle: true, ttl: TASK_TTL });
    for (const b of s.backends) {
      add(b.name, { addrs: [b.address], shuffle: false, ttl: TASK_TTL });
      if (b.hostname) add(b.hostname, { addrs: [b.address], shuffle: false, ttl: TASK_TTL });
      net.reverse.set(reverseName(b.address), b.name);
    }
    if (s.vip) net.reverse.set(reverseName(s.vip), s.name);
  }
  return out;
}

export type Decision = { kind: 'answer'; message: Buffer } | { kind: 'forward' } | { kind: 'drop' };

/** RFC 1035's limit for a UDP answer without EDNS. */
const UDP_PLAIN_MAX = 512;
const RCODE_FORMERR = 1;

function shuffled<T>(xs: readonly T[], random: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * The embedded DNS's decision for a query from a container on `networks` (in its order): an
 * answer from the tables, or forward (a name none of them knows), or drop (not a DNS query at
 * all). An answer over UDP is cut to what the asker takes (512 bytes, or its EDNS size) with the
 * TC flag set, so that it asks again over TCP.
 */
export function decide(query: Buffer, networks: readonly string[], tables: ReadonlyMap<string, NetworkNames>, transport: 'udp' | 'tcp', random: () => number = Math.random): Decision {
  let q: packet.DecodedPacket;
  try {
    q = packet.decode(query);
  } catch {
    return { kind: 'drop' };
  }
  if (q.type !== 'query') return { kind: 'drop' };
  const question = q.questions?.[0];
  const rd = q.flags !== undefined && (q.flags & packet.RECURSION_DESIRED) !== 0 ? packet.RECURSION_DESIRED : 0;
  if (!question || (q.questions?.length ?? 0) > 1) return { kind: 'answer', message: packet.encode({ type: 'response', id: q.id ?? 0, flags: rd | RCODE_FORMERR, questions: q.questions ?? [] }) };
  const name = canonical(question.name);
  let answers: packet.Answer[] | undefined;
  for (const id of networks) {
    const net = tables.get(id);
    if (!net) continue;
    if (question.type === 'PTR') {
      const target = net.reverse.get(name);
      if (target !== undefined) answers = [{ type: 'PTR', name: question.name, ttl: TASK_TTL, data: target }];
    } else {
      const r = net.names.get(name);
      if (r) {
        const addrs = r.shuffle ? shuffled(r.addrs, random) : r.addrs;
        answers = question.type === 'A' && (question.class ?? 'IN') === 'IN' ? addrs.map((a) => ({ type: 'A' as const, name: question.name, ttl: r.ttl, data: a })) : [];
      }
    }
    if (answers) break;
  }
  if (!answers) return { kind: 'forward' };
  const response: packet.Packet = { type: 'response', id: q.id ?? 0, flags: packet.AUTHORITATIVE_ANSWER | packet.RECURSION_AVAILABLE | rd, questions: [question], answers };
  if (transport === 'udp') {
    const opt = q.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    const max = Math.max(UDP_PLAIN_MAX, opt?.udpPayloadSize ?? 0);
    if (packet.encodingLength(response) > max) {
      response.flags = (response.flags ?? 0) | packet.TRUNCATED_RESPONSE;
      while (answers.length > 0 && packet.encodingLength(response) > max) answers.pop();
    }
  }
  return { kind: 'answer', message: packet.encode(response) };
}

/** A SERVFAIL answer to a query (the upstream did not answer in time, or there is none). */
export function servfail(query: Buffer): Buffer | undefined {
  try {
    const q = packet.decode(query);
    const rd = q.flags !== undefined && (q.flags & packet.RECURSION_DESIRED) !== 0 ? packet.RECURSION_DESIRED : 0;
    return packet.encode({ type: 'response', id: q.id ?? 0, flags: packet.RECURSION_AVAILABLE | rd | 2, questions: q.questions ?? [] });
  } catch {
    return undefined;
  }
}
