// Where a task's image is pulled from: the registry's URL, the repository and the tag or digest,
// from the reference as Docker reads it (common/image-reference.ts).
import type { RegistryAuth } from '../../proto/gen/tswarm/types.js';
import { DOCKER_HUB_REGISTRY, isDockerHub, parseImageReference } from '../../common/image-reference.js';
import type { RegistryClientOptions } from '../image/distribution.js';

type RegistryClientAuth = Pick<RegistryClientOptions, 'username' | 'password' | 'identityToken'>;

export interface ImageRef {
  /** The registry's base URL. */
  registry: string;
  /** The registry's host (and port), as a credential names it. */
  host: string;
  repository: string;
  /** What is pulled: the digest when the reference has one (`name:tag@sha256:…` too), else the tag (`latest` by default). */
  reference: string;
}

/**
 * A name without a registry goes to `defaultRegistry` (swarmd --default-registry) when one is set,
 * else to Docker Hub, as does `docker.io/NAME` (always Docker Hub); one-component names get
 * `library/` there. A registry given by IP address or `localhost` is spoken to over plain HTTP
 * (Docker's "insecure registry" on a private network); others over HTTPS.
 */
export function parseImageRef(image: string, defaultRegistry: string): ImageRef {
  const r = parseImageReference(image);
  const reference = r.digest ?? r.tag ?? 'latest';
  let registry: string;
  if (r.domain === undefined && defaultRegistry) registry = defaultRegistry.replace(/\/+$/, '');
  else {
    const host = r.domain === undefined || isDockerHub(r.domain) ? DOCKER_HUB_REGISTRY : r.domain;
    const plain = /^(\d{1,3}(\.\d{1,3}){3}|localhost|\[[0-9a-f:]+\])(:\d+)?$/i.test(host);
    registry = `${plain ? 'http' : 'https'}://${host}`;
  }
  return { registry, host: new URL(registry).host, repository: r.path, reference };
}

/** A credential as the registry client takes it: an identity token when there is one, else the user and password. */
export function registryClientAuth(auth: RegistryAuth): RegistryClientAuth {
  if (auth.identityToken) return { identityToken: auth.identityToken };
  return { username: auth.username, password: auth.password };
}
