// Image pinning (Docker's --resolve-image) and a service's registry credential, as the control
// API handles them at create and update:
//
// - The manager asks the image's registry for the digest its tag names now and stores the image
//   as `name:tag@sha256:…`, so that every task of the service runs the same image however the
//   tag moves afterwards. A reference that already has a digest is kept as it is.
// - ALWAYS (the default) resolves at every create and update; CHANGED only when the image differs
//   from the service's present one (and at create); NEVER keeps the reference as given. A
//   rollback restores the previous spec as it was, never resolved again.
// - A resolution that fails (the registry unreachable or refusing, no such tag) does not fail the
//   call: the reference stays unpinned and the answer carries Docker's warning.
//
// The registry is reached through an ImageResolver that swarmd injects (cli/swarmd): the manager
// does not import worker/, and a ControlApi without one (unit tests) never resolves.
import { ResolveImage } from '../../proto/gen/tswarm/control.js';
import type { RegistryAuth } from '../../proto/gen/tswarm/types.js';
import { InvalidArgumentError } from '../../common/errors.js';
import { hasDigest, pinnedReference } from '../../common/image-reference.js';

/** Asks a registry what an image's tag names now. */
export interface ImageResolver {
  /**
   * The digest of the manifest (or index) that `image`'s tag names in its registry now, asked
   * with `auth` when given (and when it is for that registry). Rejects when the registry cannot
   * be reached, refuses, or has no such tag; bounded in time.
   */
  digestOf(image: string, auth: RegistryAuth | undefined): Promise<string>;
}

/** What a call asks of pinning. */
export interface PinRequest {
  mode: ResolveImage;
  image: string;
  /** The service's image before this update; undefined at create. */
  previous: string | undefined;
  /** A rollback restores the previous spec as it was. */
  rollback: boolean;
}

/** Whether the registry is asked: never for NEVER, a rollback, or a reference with a digest already; for CHANGED only when the image changed. */
export function shouldResolve(r: PinRequest): boolean {
  if (r.rollback || hasDigest(r.image)) return false;
  switch (r.mode) {
    case ResolveImage.RESOLVE_IMAGE_NEVER:
      return false;
    case ResolveImage.RESOLVE_IMAGE_CHANGED:
      return r.previous === undefined || r.previous !== r.image;
    case ResolveImage.RESOLVE_IMAGE_ALWAYS:
      return true;
    default:
      throw new InvalidArgumentError('resolveImage', `${String(r.mode)} is not one of ALWAYS, CHANGED, NEVER`);
  }
}

/** Docker's warning when the digest could not be recorded, with the reason after it. */
export function digestWarning(image: string, reason: string): string {
  return (
    `image ${image} could not be accessed on a registry to record its digest. Each node will access ${image} independently, ` +
    `possibly leading to different nodes running different versions of the image. (${reason})`
  );
}

/** The image to store and the warnings for the caller: pinned when resolved, as given otherwise. */
export async function pinImage(resolver: ImageResolver | undefined, r: PinRequest, auth: RegistryAuth | undefined): Promise<{ image: string; warnings: string[] }> {
  if (resolver === undefined || !shouldResolve(r)) return { image: r.image, warnings: [] };
  let digest: string;
  try {
    digest = await resolver.digestOf(r.image, auth);
  } catch (err) {
    return { image: r.image, warnings: [digestWarning(r.image, err instanceof Error ? err.message : String(err))] };
  }
  return { image: pinnedReference(r.image, digest), warnings: [] };
}

const MAX_FIELD = 16 << 10;

/** A credential as a request carries it: a registry, and a user name (with its password) or an identity token. */
export function validateRegistryAuth(a: RegistryAuth, field = 'registryAuth'): void {
  if (!a.serverAddress || /\s/.test(a.serverAddress)) throw new InvalidArgumentError(`${field}.serverAddress`, a.serverAddress ? `"${a.serverAddress}" must not contain spaces` : 'is required (the registry the credential is for)');
  if (!a.username && !a.identityToken) throw new InvalidArgumentError(field, 'needs a username (with its password) or an identity token');
  for (const k of ['serverAddress', 'username', 'password', 'identityToken'] as const) {
    if (a[k].length > MAX_FIELD) throw new InvalidArgumentError(`${field}.${k}`, `is longer than ${MAX_FIELD} characters`);
  }
}
