// Linux capabilities as Docker names them, shared by swarmctl, the control API and the executor.
// The names are the kernel's (capabilities(7), up to 5.9), with the CAP_ prefix.

export const CAPABILITIES: readonly string[] = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'LINUX_IMMUTABLE', 'NET_BIND_SERVICE',
  'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN',
  'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE',
  'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE',
].map((c) => `CAP_${c}`);

/** Docker's default set (moby oci/caps), what a container has without --cap-add/--cap-drop. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** NET_ADMIN, net_admin or CAP_NET_ADMIN → CAP_NET_ADMIN; all → ALL; undefined for an unknown name. */
export function normalizeCapability(text: string): string | undefined {
  const up = text.toUpperCase();
  if (up === 'ALL') return 'ALL';
  const cap = up.startsWith('CAP_') ? up : `CAP_${up}`;
  return CAPABILITIES.includes(cap) ? cap : undefined;
}

/**
 * The container's capability set, as Docker computes it (TweakCapabilities): ALL added gives
 * every capability but the dropped ones; ALL dropped gives just the added ones; otherwise the
 * default set minus the dropped, plus the added. Names must be normalized; the result is sorted
 * in the kernel's order.
 */
export function capabilitySet(add: readonly string[] = [], drop: readonly string[] = []): string[] {
  let caps: Set<string>;
  if (add.includes('ALL')) caps = new Set(CAPABILITIES.filter((c) => !drop.includes(c)));
  else if (drop.includes('ALL')) caps = new Set(add);
  else caps = new Set([...DEFAULT_CAPABILITIES.filter((c) => !drop.includes(c)), ...add]);
  return CAPABILITIES.filter((c) => caps.has(c));
}
