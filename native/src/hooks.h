/* Running the OCI hooks (config.md "POSIX-platform Hooks"): each hook is forked and exec'd with
 * the container's state JSON on stdin, its args and env (the caller's environment when the spec
 * gives none, as runc), and killed after its timeout. A hook fails when it cannot be run, exits
 * with a status other than 0, dies of a signal, or outlives its timeout; its output (stdout and
 * stderr, the last 1 KiB) goes into the error. */
#ifndef SWARM_HOOKS_H
#define SWARM_HOOKS_H

#include <sys/types.h>

#include "error.h"
#include "spec.h"

/* The state (runtime.md "State") as JSON, in a heap string: ociVersion, id, status, pid (left out
 * when 0), bundle, annotations. NULL on ENOMEM. */
char *rt_hook_state (const char *oci_version, const char *id, const char *status, pid_t pid,
                     const char *bundle, const char *annotations_json);

/* Runs the hooks of KIND in order with STATE on stdin; the first failure stops it and is the
 * error ("KIND hook N (PATH): ..."). */
int rt_hooks_run (const rt_hook_list_t *list, enum rt_hook_kind kind, const char *state,
                  rt_error_t *err);

#endif
