/* What runs inside the new namespaces: joining and unsharing them, the root filesystem, and the
 * process settings applied before execve. */
#ifndef SWARM_LINUX_H
#define SWARM_LINUX_H

#include <sys/types.h>

#include "error.h"
#include "seccomp.h"
#include "spec.h"

typedef struct
{
  const rt_spec_t *spec;
  const char *id;
  const char *bundle;
  int sync_fd;        /* the init's end of the sync socket (hooks: SYNC_HOOKS) */
  pid_t host_pid;     /* the init's pid as the host sees it, once create told it (hooks) */
  const char *rootfs; /* absolute path of the root filesystem */
  int fifo_fd;        /* O_PATH descriptor of <state>/exec.fifo */
  const char *cgroup_path; /* joined before the namespaces are unshared; NULL: none */
  unsigned cgroup_extra;   /* RT_CGROUP_* hierarchies joined beyond the base set */
  char *exec_path;    /* process.args[0] resolved in the container, filled by rt_init_process */
  rt_seccomp_filter_t *seccomp; /* built by rt_init_process, loaded (and freed) before exec */
  bool cwd_done;      /* the process is in process.cwd already (chdir'ed as root) */
  int *mount_fds;     /* per spec mount: an idmapped tree to move there, or -1; NULL: none */
  int console_fd;     /* process.terminal: connected to --console-socket; -1: none */
  bool console_done;  /* the pty is set up (the init does it before the root goes read-only) */
  int preserve_fds;   /* descriptors 3..3+N-1 reach the container process */
} rt_init_ctx_t;

/* True when the init must learn its host pid from create mid-way (SYNC_HOOKS): a prestart,
 * createRuntime, createContainer or startContainer hook. */
bool rt_needs_hook_sync (const rt_spec_t *spec);

/* Idmapped bind mounts (mounts[].uidMappings, idmap, ridmap), made by create on the host where
 * mount_setattr(MOUNT_ATTR_IDMAP) is allowed: one detached tree per such mount, moved into place
 * by the init. *OUT (NULL when there are none) holds -1 for the other mounts; on failure what was
 * opened stays in *OUT for rt_close_mount_fds. */
int rt_open_mount_fds (const rt_spec_t *spec, int **out, rt_error_t *err);
void rt_close_mount_fds (const rt_spec_t *spec, int *fds);

/* The mount options this runtime knows (mount flags, recursive ones, propagation, bind, rbind,
 * tmpcopyup, idmap, ridmap), for `features`: up to MAX into OUT; returns how many. */
size_t rt_mount_option_names (const char **out, size_t max);

/* True when the container gets its own PID namespace (new or joined): the caller must fork once
 * more after rt_enter_namespaces so that the child lives in it. */
bool rt_needs_second_fork (const rt_spec_t *spec);

/* setns into the namespaces given by path, then the user namespace (joined, or new: SYNC_USERMAP
 * asks create on SYNC_FD to write the maps), then unshare the new ones. */
int rt_enter_namespaces (const rt_spec_t *spec, int sync_fd, rt_error_t *err);

/* process.rlimits and process.oomScoreAdj on the calling process, before it enters the
 * container's namespaces (from a user namespace, raising a hard limit or lowering the score
 * would be refused); the container's processes inherit them. */
int rt_apply_limits (const rt_spec_t *spec, rt_error_t *err);

/* Everything up to execve: root filesystem, hostname, then rt_init_process. Runs in the
 * container's init process. */
int rt_init_container (rt_init_ctx_t *ctx, rt_error_t *err);

/* The process settings, for the init and for `exec`: signals reset, env,
 * args[0] resolved, no_new_privs, seccomp (built; loaded here without no_new_privs), user,
 * capabilities, cwd, umask, descriptors close-on-exec. */
int rt_init_process (rt_init_ctx_t *ctx, rt_error_t *err);

/* Blocks on the exec fifo until `start`, then rt_exec_process. Only returns on failure. */
int rt_exec_container (rt_init_ctx_t *ctx, rt_error_t *err);

/* Loads the seccomp filter if it is still pending, then execve. Only returns on failure. */
int rt_exec_process (rt_init_ctx_t *ctx, rt_error_t *err);

/* exec: opens /proc/PID/ns/<type> for each namespace the spec lists (fds[t] = -1 otherwise), so
 * that they can be joined once PID has been checked again. */
int rt_open_container_namespaces (const rt_spec_t *spec, pid_t pid, int fds[RT_NS_COUNT],
                                  rt_error_t *err);
void rt_close_namespaces (int fds[RT_NS_COUNT]);
/* setns into each open descriptor, the mount namespace last. */
int rt_join_namespaces (int fds[RT_NS_COUNT], rt_error_t *err);

#endif
