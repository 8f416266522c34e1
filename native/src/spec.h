/* The parts of an OCI config.json (runtime-spec config.md / config-linux.md) this runtime acts
 * on. Unknown fields are ignored; a malformed file or a missing required field is an error that
 * names the field and the file. */
#ifndef SWARM_SPEC_H
#define SWARM_SPEC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "seccomp.h"

#define RT_NS_COUNT 7

enum rt_ns_type
{
  RT_NS_MOUNT,
  RT_NS_UTS,
  RT_NS_IPC,
  RT_NS_PID,
  RT_NS_NETWORK,
  RT_NS_CGROUP,
  RT_NS_USER,
};

typedef struct
{
  bool wanted;  /* listed in linux.namespaces */
  char *path;   /* join this one (setns) instead of making a new one */
} rt_namespace_t;

typedef struct
{
  char *destination;
  char *type;
  char *source;
  char **options;
  size_t n_options;
} rt_mount_t;

typedef struct
{
  int resource; /* RLIMIT_* */
  uint64_t soft, hard;
} rt_rlimit_t;

/* One linux.sysctl entry: the key as written (dots or slashes) and its value. */
typedef struct
{
  char *key;
  char *value;
} rt_sysctl_t;

/* Capability sets as bit masks over 64 capabilities. */
typedef struct
{
  bool given; /* process.capabilities was present */
  uint64_t bounding, effective, inheritable, permitted, ambient;
} rt_caps_t;

/* linux.resources, the parts applied to cgroups. has_* says the field was given. */
typedef struct
{
  bool has_memory_limit;
  int64_t memory_limit; /* bytes; -1 = unlimited */
  bool has_cpu_quota;
  int64_t cpu_quota; /* usec per period; -1 = unlimited */
  bool has_cpu_period;
  uint64_t cpu_period; /* usec */
  bool has_cpu_shares;
  uint64_t cpu_shares; /* v1 shares, 2..262144 */
  bool has_pids_limit;
  int64_t pids_limit; /* <= 0 = unlimited */
} rt_resources_t;

typedef struct
{
  char *oci_version;
  char *root_path; /* as written; relative to the bundle */
  bool root_readonly;

  char **args;
  char **env;
  char *cwd;
  uid_t uid;
  gid_t gid;
  gid_t *additional_gids;
  size_t n_additional_gids;
  bool has_umask;
  mode_t umask;
  rt_rlimit_t *rlimits;
  size_t n_rlimits;
  bool no_new_privileges;
  bool has_oom_score_adj;
  int oom_score_adj;
  rt_caps_t caps;

  char *hostname;
  char *domainname;
  rt_mount_t *mounts;
  size_t n_mounts;
  rt_namespace_t ns[RT_NS_COUNT];
  char **masked_paths;
  char **readonly_paths;
  char *rootfs_propagation;
  rt_sysctl_t *sysctls; /* linux.sysctl, checked against the namespaces */
  size_t n_sysctls;
  char *cgroups_path; /* linux.cgroupsPath as written, NULL if absent */
  rt_resources_t resources;
  char *annotations_json; /* the annotations object as JSON text, "{}" if none */
  rt_seccomp_t seccomp;   /* linux.seccomp */
} rt_spec_t;

/* Loads and checks FILE. */
int rt_spec_load (const char *file, rt_spec_t **out, rt_error_t *err);
void rt_spec_free (rt_spec_t *spec);
/* Replaces SPEC's process fields with those of FILE, an OCI process object (exec --process);
 * errors name the field without the "process." prefix. */
int rt_spec_load_process (const char *file, rt_spec_t *spec, rt_error_t *err);

/* Capability name (with the CAP_ prefix) to number, or -1. */
int rt_cap_from_name (const char *name);
/* Docker's default capability set, as a mask. */
uint64_t rt_caps_docker_default (void);
const char *rt_ns_name (enum rt_ns_type t);

#endif
