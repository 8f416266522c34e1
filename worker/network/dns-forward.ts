// The embedded DNS's way to the outside: a query none of the cluster's names answers goes to the
// upstream resolvers (the container's --dns, or the node's), from swarmd's own network namespace,
// over the transport the container used; the first answer is passed through as it came. Each
// server is given its share of the deadline in turn; none answering is SERVFAIL (the caller's).
import { createSocket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';

export interface Upstream {
  host: string;
  port: number;
}

/** `IP` or `IP:PORT` (IPv4) or `[IPv6]:PORT`; port 53 by default. Undefined when it is not an address. */
export function parseUpstream(s: string): Upstream | undefined {
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(s);
  if (v6) return isIPv6(v6[1]!) ? { host: v6[1]!, port: Number(v6[2] ?? 53) } : undefined;
  if (isIPv6(s)) return { host: s, port: 53 };
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d+))?$/.exec(s);
  if (!v4) return undefined;
  const port = Number(v4[2] ?? 53);
  return port >= 1 && port <= 65535 ? { host: v4[1]!, port } : undefined;
}

function udpOnce(query: Buffer, up: Upstream, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = createSocket(isIPv6(up.host) ? 'udp6' : 'udp4');
    const id = query.readUInt16BE(0);
    const done = (answer: Buffer | undefined): void => {
      clearTimeout(timer);
      sock.close();
      resolve(answer);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    sock.on('error', () => done(undefined));
    sock.on('message', (msg, from) => {
      // Only the server asked, and only the answer to this query (its id).
      if (from.address === up.host && from.port === up.port && msg.length >= 2 && msg.readUInt16BE(0) === id) done(msg);
    });
    sock.send(query, up.port, up.host);
  });
}

function tcpOnce(query: Buffer, up: Upstream, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = connect({ host: up.host, port: up.port });
    let buf = Buffer.alloc(0);
    const done = (answer: Buffer | undefined): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    sock.on('error', () => done(undefined));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
  });
}

/** The first upstream's answer, each tried in turn with its share of `deadlineMs`; undefined: none answered. */
export async function forward(query: Buffer, upstreams: readonly Upstream[], transport: 'udp' | 'tcp', deadlineMs = 4000): Promise<Buffer | undefined> {
  if (query.length < 12 || upstreams.length === 0) return undefined;
  const each = Math.max(200, Math.floor(deadlineMs / upstreams.length));
  for (const up of upstreams) {
    const answer = await (transport === 'udp' ? udpOnce(query, up, each) : tcpOnce(query, up, each));
    if (answer) return answer;
  }
  return undefined;
}
