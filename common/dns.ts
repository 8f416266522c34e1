// Names and addresses as /etc/hosts and /etc/resolv.conf take them, shared by swarmctl, the
// control API and the executor (Docker's --host, --dns, --dns-search, --dns-option).
import { isIP } from 'node:net';

/** A host name: labels of letters, digits and '-', separated by dots (underscores allowed, as Docker). */
export function isHostName(name: string): boolean {
  return name.length <= 253 && /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/.test(name);
}

/** What is wrong with an /etc/hosts line as the spec keeps it ("IP NAME [ALIAS...]"); undefined when nothing is. */
export function hostsLineProblem(line: string): string | undefined {
  const [ip, ...names] = line.trim().split(/\s+/);
  if (!ip || isIP(ip) === 0) return `"${line}" must start with an IP address`;
  if (names.length === 0) return `"${line}" names no host`;
  const bad = names.find((n) => !isHostName(n));
  if (bad !== undefined) return `"${bad}" is not a host name`;
  return undefined;
}

/** What is wrong with a resolv.conf option (ndots:2, rotate, timeout:1); undefined when nothing is. */
export function dnsOptionProblem(option: string): string | undefined {
  return /^[a-z][a-z0-9-]*(:[0-9]+)?$/.test(option) ? undefined : `"${option}" is not a resolver option (e.g. ndots:2, rotate, timeout:1)`;
}
