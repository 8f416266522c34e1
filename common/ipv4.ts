// IPv4 addresses and prefixes as both roles read them: the manager allocates overlay subnets and
// addresses, the worker programs them. Addresses are unsigned 32-bit numbers; a prefix is its
// first address and its length. Parsing errors name the field (InvalidArgumentError).
import { InvalidArgumentError } from './errors.js';

export interface Prefix {
  /** The first address (host bits zero). */
  base: number;
  /** 0 to 32. */
  length: number;
}

/** Parses a dotted quad; undefined when it is not one. */
export function parseIPv4(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (m === null) return undefined;
  const octets = m.slice(1).map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  return octets.reduce((acc, o) => acc * 256 + o, 0);
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** A dotted quad for `field`, or an InvalidArgumentError naming it. */
export function ipv4(field: string, s: string): number {
  const n = parseIPv4(s);
  if (n === undefined) throw new InvalidArgumentError(field, `must be an IPv4 address a.b.c.d, got ${JSON.stringify(s)}`);
  return n;
}

export function maskOf(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

/** The number of addresses of a prefix. */
export function sizeOf(p: Prefix): number {
  return 2 ** (32 - p.length);
}

export function formatPrefix(p: Prefix): string {
  return `${formatIPv4(p.base)}/${p.length}`;
}

/**
 * Parses `a.b.c.d/len` for `field`: the length within [min, max], the host bits zero (the error
 * names the canonical form).
 */
export function parsePrefix(field: string, cidr: string, { min = 0, max = 32 } = {}): Prefix {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr);
  const addr = m === null ? undefined : parseIPv4(m[1]!);
  if (m === null || addr === undefined) throw new InvalidArgumentError(field, `must be an IPv4 subnet a.b.c.d/len, got ${JSON.stringify(cidr)}`);
  const length = Number(m[2]);
  if (length < min || length > max) throw new InvalidArgumentError(field, `prefix length must be ${min} to ${max}, got /${length}`);
  const base = (addr & maskOf(length)) >>> 0;
  if (base !== addr) throw new InvalidArgumentError(field, `host bits must be zero: ${cidr} (did you mean ${formatIPv4(base)}/${length}?)`);
  return { base, length };
}

export function contains(p: Prefix, address: number): boolean {
  return address >= p.base && address < p.base + sizeOf(p);
}

/** Whether one prefix contains the other (two prefixes overlap only so). */
export function overlaps(a: Prefix, b: Prefix): boolean {
  return contains(a, b.base) || contains(b, a.base);
}

/** Whether `inner` lies wholly inside `outer`. */
export function within(inner: Prefix, outer: Prefix): boolean {
  return inner.length >= outer.length && contains(outer, inner.base);
}

/**
 * An endpoint's MAC from its IPv4 address: 02:42 and the address's four bytes (Docker's rule), so
 * that a reused address keeps its MAC and any node derives it without being told.
 */
export function macOf(address: string): string {
  const n = parseIPv4(address);
  if (n === undefined) throw new InvalidArgumentError('address', `must be an IPv4 address a.b.c.d, got ${JSON.stringify(address)}`);
  return ['02', '42', ...[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
