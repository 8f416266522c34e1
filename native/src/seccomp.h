/* linux.seccomp (runtime-spec config-linux.md "Seccomp") with libseccomp: the names in the spec
 * are checked when config.json is read (an unknown action or operator is an error naming the
 * field); the filter is built in the container process, where unknown syscall names are skipped
 * as runc does, and loaded last, just before execve. */
#ifndef SWARM_SECCOMP_H
#define SWARM_SECCOMP_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef struct
{
  unsigned index; /* syscall argument 0..5 */
  uint64_t value, value_two;
  int op; /* enum scmp_compare */
} rt_seccomp_arg_t;

typedef struct
{
  char **names;    /* NULL-terminated */
  uint32_t action; /* libseccomp action, errno included */
  rt_seccomp_arg_t *args;
  size_t n_args;
} rt_seccomp_rule_t;

/* linux.seccomp.flags, as libseccomp filter attributes. */
#define RT_SECCOMP_FLAG_TSYNC (1u << 0)
#define RT_SECCOMP_FLAG_LOG (1u << 1)
#define RT_SECCOMP_FLAG_SPEC_ALLOW (1u << 2)

typedef struct
{
  bool given;              /* linux.seccomp was present */
  bool notify;             /* some action is SCMP_ACT_NOTIFY */
  unsigned flags;          /* RT_SECCOMP_FLAG_* */
  char *listener_path;     /* the agent's unix socket for the notify descriptor */
  char *listener_metadata; /* passed to it as it is */
  uint32_t default_action; /* libseccomp action, errno included */
  char **architectures;    /* "SCMP_ARCH_X86_64", ...; NULL-terminated, may be NULL */
  rt_seccomp_rule_t *rules;
  size_t n_rules;
} rt_seccomp_t;

/* "SCMP_ACT_ERRNO" and the like into a libseccomp action. ERRNO_RET (when HAS_ERRNO_RET) is the
 * errno of SCMP_ACT_ERRNO and SCMP_ACT_TRACE (EPERM if not given). Returns -1 with a short reason
 * in *WHY for an unknown action, an unsupported one, or an errnoRet on another action. */
int rt_seccomp_action (const char *name, bool has_errno_ret, uint32_t errno_ret, uint32_t *out,
                       const char **why);
/* "SECCOMP_FILTER_FLAG_LOG" and the like into RT_SECCOMP_FLAG_*; -1 with *WHY if unknown or
 * not supported here. */
int rt_seccomp_flag (const char *name, unsigned *out, const char **why);

/* "SCMP_CMP_EQ" and the like into an enum scmp_compare; -1 if unknown. */
int rt_seccomp_op (const char *name);

void rt_seccomp_release (rt_seccomp_t *s);

typedef struct rt_seccomp_filter rt_seccomp_filter_t;

/* Compiles PROFILE (architectures, default action, rules) without loading it. The filter does not
 * set no_new_privs itself: that is process.noNewPrivileges' business. */
int rt_seccomp_build (const rt_seccomp_t *profile, rt_seccomp_filter_t **out, rt_error_t *err);
/* Installs the filter in the calling process (needs no_new_privs or CAP_SYS_ADMIN). With a
 * SCMP_ACT_NOTIFY rule, *NOTIFY_FD (when not NULL) gets the listener descriptor (-1 without). */
int rt_seccomp_load (rt_seccomp_filter_t *f, int *notify_fd, rt_error_t *err);
void rt_seccomp_free (rt_seccomp_filter_t *f);

#endif
