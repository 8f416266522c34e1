/* What runs inside the new namespaces: joining and unsharing them, the root filesystem, and the
 * process settings applied before execve. */
#ifndef SWARM_LINUX_H
#define SWARM_LINUX_H

#include "error.h"
#include "spec.h"

typedef struct
{
  const rt_spec_t *spec;
  const char *rootfs; /* absolute path of the root filesystem */
  int fifo_fd;        /* O_PATH descriptor of <state>/exec.fifo */
  const char *cgroup_path; /* joined before the namespaces are unshared; NULL: none */
  char *exec_path;    /* process.args[0] resolved in the container, filled by rt_init_container */
} rt_init_ctx_t;

/* True when the container gets its own PID namespace (new or joined): the caller must fork once
 * more after rt_enter_namespaces so that the child lives in it. */
bool rt_needs_second_fork (const rt_spec_t *spec);

/* setns into the namespaces given by path, then unshare the new ones. */
int rt_enter_namespaces (const rt_spec_t *spec, rt_error_t *err);

/* Everything up to execve: root filesystem, hostname, rlimits, oom_score_adj, user, capabilities,
 * no_new_privs, cwd. Runs in the container's init process. */
int rt_init_container (rt_init_ctx_t *ctx, rt_error_t *err);

/* Blocks on the exec fifo until `start`, then execve. Only returns on failure. */
int rt_exec_container (rt_init_ctx_t *ctx, rt_error_t *err);

#endif
