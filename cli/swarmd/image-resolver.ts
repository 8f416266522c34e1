// The manager's ImageResolver (manager/controlapi/image-pinning.ts) over the worker's registry
// client: swarmd wires the two sides here, as the manager does not import worker/. A tag is asked
// of its registry as the node's agent would pull it (the same `--default-registry`, plain HTTP for
// an IP address or localhost), with the service's credential when it is for that registry.
import type { RegistryAuth } from '../../proto/gen/tswarm/types.js';
import { TswarmError } from '../../common/errors.js';
import { sameRegistry } from '../../common/image-reference.js';
import type { ImageResolver } from '../../manager/controlapi/image-pinning.js';
import { RegistryClient } from '../../worker/image/distribution.js';
import { parseImageRef, registryClientAuth } from '../../worker/agent/reference.js';

export interface RegistryImageResolverOptions {
  /** Registry for names without one (swarmd --default-registry); empty: Docker Hub. */
  defaultRegistry: string;
  /**
   * How long one resolution may take in all, auth included (default 5 s): the create or update
   * waits for it, within swarmctl's 10 s deadline for the call; past it, the call goes ahead
   * unpinned with a warning.
   */
  timeoutMs?: number;
}

export class ResolveTimeoutError extends TswarmError {}

export class RegistryImageResolver implements ImageResolver {
  constructor(private readonly opts: RegistryImageResolverOptions) {}

  async digestOf(image: string, auth: RegistryAuth | undefined): Promise<string> {
    const ref = parseImageRef(image, this.opts.defaultRegistry);
    const useAuth = auth !== undefined && sameRegistry(auth.serverAddress, ref.host);
    const timeoutMs = this.opts.timeoutMs ?? 5_000;
    const client = new RegistryClient({ url: ref.registry, attempts: 2, backoffMs: 200, idleTimeoutMs: timeoutMs, ...(useAuth ? registryClientAuth(auth) : {}) });
    // The digest of what the tag names, an index included (each node then picks its platform).
    const asked = client.getManifest(ref.repository, ref.reference).then((m) => m.digest);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ResolveTimeoutError(`registry ${ref.host} did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([asked, late]);
    } finally {
      clearTimeout(timer);
      asked.catch(() => undefined); // a late failure after the timeout is not news
    }
  }
}
