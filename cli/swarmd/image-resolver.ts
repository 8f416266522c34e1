// The manager's ImageResolver (manager/controlapi/image-pinning.ts) over the worker's registry
// client: swarmd wires the two sides here, as the manager does not import worker/. A tag is asked
// of its registry as the node's agent would pull it (the same `--default-registry`, plain HTTP for
// an IP address or localhost), with the service's credential when it is for that registry.
import type { RegistryAuth } from '../../proto/gen/tswarm/types.js';
import { sameRegistry } from '../../common/image-reference.js';
import type { ImageResolver } from '../../manager/controlapi/image-pinning.js';
import { RegistryClient } from '../../worker/image/distribution.js';
import { parseImageRef, registryClientAuth } from '../../worker/agent/reference.js';

export interface RegistryImageResolverOptions {
  /** Registry for names without one (swarmd --default-registry); empty: Docker Hub. */
  defaultRegistry: string;
  /** How long one resolution may take in all (default 10 s): a create or update waits for it. */
  timeoutMs?: number;
}

export class RegistryImageResolver implements ImageResolver {
  constructor(private readonly opts: RegistryImageResolverOptions) {}

  async digestOf(image: string, auth: RegistryAuth | undefined): Promise<string> {
    const ref = parseImageRef(image, this.opts.defaultRegistry);
    const useAuth = auth !== undefined && sameRegistry(auth.serverAddress, ref.host);
    const timeoutMs = this.opts.timeoutMs ?? 10_000;
    // Two attempts, each bounded: a registry that is down costs the caller seconds, not minutes.
    const client = new RegistryClient({ url: ref.registry, attempts: 2, backoffMs: 200, idleTimeoutMs: Math.floor(timeoutMs / 2), ...(useAuth ? registryClientAuth(auth) : {}) });
    // The digest of what the tag names, an index included (each node then picks its platform).
    return (await client.getManifest(ref.repository, ref.reference)).digest;
  }
}
