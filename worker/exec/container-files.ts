// The files Docker writes for every container, bind-mounted over the image's: /etc/hostname,
// /etc/hosts (localhost, the --host lines, the container's own name and address) and
// /etc/resolv.conf (the host's resolvers, loopback ones dropped, or what --dns* gave). Pure: the
// executor reads the host's resolv.conf and writes the results (runtime.ts).

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

/** The nameserver, search (or domain) and options lines of a resolv.conf; the rest is dropped. */
export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...values] = line.split(/\s+/);
    if (key === 'nameserver' && values[0]) out.nameservers.push(values[0]);
    else if (key === 'search' || key === 'domain') out.search = values;
    else if (key === 'options') out.options.push(...values);
  }
  return out;
}

/** 127.0.0.0/8 and ::1 (and their zone forms): a resolver on the host's loopback is not the container's. */
export function isLoopback(address: string): boolean {
  const a = address.replace(/%.*$/, '');
  return /^127\./.test(a) || a === '::1' || a === '0:0:0:0:0:0:0:1';
}

/**
 * The container's resolv.conf: the host's, loopback nameservers dropped, each part replaced by
 * the spec's when given (Docker's --dns, --dns-search, --dns-option). With no nameserver left,
 * none is written (the container's resolver then tries its own loopback); Docker falls back to
 * public resolvers there, which a cluster on a private network must not send to.
 */
export function resolvConf(host: ResolvConf, dns: Partial<ResolvConf> = {}): string {
  const nameservers = dns.nameservers?.length ? dns.nameservers : host.nameservers.filter((n) => !isLoopback(n));
  const search = dns.search?.length ? dns.search : host.search;
  const options = dns.options?.length ? dns.options : host.options;
  const lines = ['# written by tswarm: the host\'s resolvers (loopback ones dropped) or --dns, --dns-search, --dns-option'];
  for (const n of nameservers) lines.push(`nameserver ${n}`);
  if (search.length > 0) lines.push(`search ${search.join(' ')}`);
  if (options.length > 0) lines.push(`options ${options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The resolv.conf of a container on an overlay network: the embedded DNS (127.0.0.11) only, as
 * Docker writes it; the resolvers (the spec's --dns, or the host's) are its upstreams instead
 * (worker/agent/discovery.ts). ndots:0 first, so that a bare service name is asked as it is
 * before any search domain; the spec's options (or else the host's) after it.
 */
export function embeddedResolvConf(host: ResolvConf, dns: Partial<ResolvConf> = {}): string {
  const search = dns.search?.length ? dns.search : host.search;
  const options = ['ndots:0', ...(dns.options?.length ? dns.options : host.options).filter((o) => !o.startsWith('ndots:'))];
  if (dns.options?.some((o) => o.startsWith('ndots:'))) options.splice(0, 1, ...dns.options.filter((o) => o.startsWith('ndots:')));
  const lines = ['# written by tswarm: the embedded DNS (service names; other names go to --dns or the host\'s resolvers)', 'nameserver 127.0.0.11'];
  if (search.length > 0) lines.push(`search ${search.join(' ')}`);
  lines.push(`options ${options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/**
 * The container's /etc/hosts: Docker's localhost lines, the extra lines ("IP NAME [ALIAS...]"),
 * then the container's own address with its host name, when it has one on a network.
 */
export function hostsFile(hostname: string, extra: readonly string[], address?: string): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    ...extra.map((l) => l.trim().split(/\s+/).join('\t')),
  ];
  if (address !== undefined) lines.push(`${address}\t${hostname}`);
  return `${lines.join('\n')}\n`;
}
