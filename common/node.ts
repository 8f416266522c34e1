// What a node says about itself (both roles): its hostname, platform and engine version.
import { arch, hostname, platform } from 'node:os';
import type { NodeDescription, Platform } from '../proto/gen/tswarm/types.js';
import { VERSION } from './version.js';

/** This host's platform in OCI terms (amd64, not Node's x64). */
export function hostPlatformOf(): Platform {
  return { os: platform(), architecture: arch() === 'x64' ? 'amd64' : arch() };
}

/** `network`: where its overlay traffic goes and what its addresses and routes cover (the worker finds them). */
export function nodeDescription(network: { dataPathAddr: string; hostPrefixes: string[] } = { dataPathAddr: '', hostPrefixes: [] }): NodeDescription {
  return { hostname: hostname(), platform: hostPlatformOf(), engineVersion: VERSION, ...network };
}
