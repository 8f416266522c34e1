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

/* One line of a uid or gid map: container ids [container_id, container_id + size) are host ids
 * [host_id, ...). */
typedef struct
{
  uint32_t container_id, host_id, size;
} rt_idmap_t;

typedef struct
{
  char *destination;
  char *type;
  char *source;
  char **options;
  size_t n_options;
  rt_idmap_t *uid_map; /* mounts[].uidMappings (an idmapped mount); NULL: none */
  size_t n_uid_map;
  rt_idmap_t *gid_map;
  size_t n_gid_map;
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

/* One linux.devices entry: a node made in the container. */
typedef struct
{
  char *path;
  char type;     /* 'c' (also for "u"), 'b' or 'p' */
  uint32_t major, minor;
  mode_t mode;   /* permission bits; 0666 when fileMode is absent (runc) */
  uid_t uid;
  gid_t gid;
} rt_device_t;

/* One linux.resources.devices rule. */
typedef struct
{
  bool allow;
  char type;      /* 'a', 'c' or 'b' */
  int64_t major;  /* -1: any */
  int64_t minor;  /* -1: any */
  unsigned access; /* RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD */
} rt_device_rule_t;

#define RT_DEV_MKNOD 1u
#define RT_DEV_READ 2u
#define RT_DEV_WRITE 4u

/* hooks (config.md "POSIX-platform Hooks"), in the order of the lifecycle. */
enum rt_hook_kind
{
  RT_HOOK_PRESTART,
  RT_HOOK_CREATE_RUNTIME,
  RT_HOOK_CREATE_CONTAINER,
  RT_HOOK_START_CONTAINER,
  RT_HOOK_POSTSTART,
  RT_HOOK_POSTSTOP,
  RT_HOOK_KINDS,
};

typedef struct
{
  char *path;     /* absolute */
  char **args;    /* NULL-terminated; NULL: { path } */
  char **env;     /* NULL-terminated; NULL: the runtime's environment, as runc */
  int timeout;    /* seconds; 0: none */
} rt_hook_t;

typedef struct
{
  rt_hook_t *v;
  size_t n;
} rt_hook_list_t;

/* Capability sets as bit masks over 64 capabilities. */
typedef struct
{
  bool given; /* process.capabilities was present */
  uint64_t bounding, effective, inheritable, permitted, ambient;
} rt_caps_t;

/* blockIO's per-device entries: weightDevice (weight, leafWeight; 0 = absent) and the throttle
 * lists (rate). */
typedef struct
{
  int64_t major, minor;
  uint64_t weight, leaf_weight;
  uint64_t rate;
} rt_blkio_device_t;

enum rt_throttle
{
  RT_THROTTLE_READ_BPS,
  RT_THROTTLE_WRITE_BPS,
  RT_THROTTLE_READ_IOPS,
  RT_THROTTLE_WRITE_IOPS,
  RT_THROTTLE_KINDS,
};

typedef struct
{
  char *page_size; /* "2MB", "1GB", as the cgroup file names have it */
  uint64_t limit;
} rt_hugepage_limit_t;

typedef struct
{
  char *key;
  char *value;
} rt_key_value_t;

/* linux.resources, the parts applied to cgroups. has_* says the field was given. */
typedef struct
{
  bool has_memory_limit;
  int64_t memory_limit; /* bytes; -1 = unlimited */
  bool has_memory_reservation;
  int64_t memory_reservation; /* soft limit; -1 = none */
  bool has_memory_swap;
  int64_t memory_swap; /* memory + swap (v1's memsw); -1 = unlimited */
  bool has_swappiness;
  uint64_t swappiness; /* 0..100 */
  bool disable_oom_killer;
  bool has_cpu_quota;
  int64_t cpu_quota; /* usec per period; -1 = unlimited */
  bool has_cpu_period;
  uint64_t cpu_period; /* usec */
  bool has_cpu_shares;
  uint64_t cpu_shares; /* v1 shares, 2..262144 */
  bool has_cpu_rt_runtime;
  int64_t cpu_rt_runtime; /* usec */
  bool has_cpu_rt_period;
  uint64_t cpu_rt_period; /* usec */
  bool has_cpu_idle;
  int64_t cpu_idle; /* 0 or 1 */
  bool has_cpu_burst;
  uint64_t cpu_burst; /* usec */
  char *cpuset_cpus; /* NULL: not given */
  char *cpuset_mems;
  bool has_pids_limit;
  int64_t pids_limit; /* <= 0 = unlimited */
  bool has_blkio;     /* blockIO was given */
  uint64_t blkio_weight; /* 0: not given */
  uint64_t blkio_leaf_weight;
  rt_blkio_device_t *blkio_weight_devices;
  size_t n_blkio_weight_devices;
  rt_blkio_device_t *throttle[RT_THROTTLE_KINDS];
  size_t n_throttle[RT_THROTTLE_KINDS];
  rt_hugepage_limit_t *hugepages;
  size_t n_hugepages;
  rt_key_value_t *unified; /* linux.resources.unified: cgroup v2 file → value */
  size_t n_unified;
  rt_device_rule_t *devices; /* linux.resources.devices, in order */
  size_t n_devices;
} rt_resources_t;

typedef struct
{
  char *oci_version;
  char *root_path; /* as written; relative to the bundle */
  bool root_readonly;

  char **args;
  char **env;
  char *cwd;
  bool terminal;             /* process.terminal: a pty sent to --console-socket */
  int ioprio;                /* process.ioPriority as ioprio_set's value; -1: not given */
  unsigned console_height, console_width; /* process.consoleSize; 0: not given */
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
  bool has_personality;      /* linux.personality */
  unsigned long personality; /* PER_LINUX or PER_LINUX32 */
  rt_mount_t *mounts;
  size_t n_mounts;
  rt_namespace_t ns[RT_NS_COUNT];
  rt_idmap_t *uid_map; /* linux.uidMappings (a new user namespace) */
  size_t n_uid_map;
  rt_idmap_t *gid_map; /* linux.gidMappings */
  size_t n_gid_map;
  char **masked_paths;
  char **readonly_paths;
  char *rootfs_propagation;
  rt_device_t *devices; /* linux.devices */
  size_t n_devices;
  rt_sysctl_t *sysctls; /* linux.sysctl, checked against the namespaces */
  size_t n_sysctls;
  char *cgroups_path; /* linux.cgroupsPath as written, NULL if absent */
  rt_resources_t resources;
  char *annotations_json; /* the annotations object as JSON text, "{}" if none */
  rt_hook_list_t hooks[RT_HOOK_KINDS];
  char *post_hooks_json; /* {"poststart":[...],"poststop":[...]} for state.json; NULL: none */
  rt_seccomp_t seccomp;   /* linux.seccomp */
} rt_spec_t;

/* Loads and checks FILE. */
int rt_spec_load (const char *file, rt_spec_t **out, rt_error_t *err);
void rt_spec_free (rt_spec_t *spec);
/* Reads FILE, an OCI LinuxResources object (update --resources; "-" is stdin), into *OUT;
 * errors name the field as in the file. */
int rt_resources_load (const char *file, rt_resources_t *out, rt_error_t *err);
void rt_resources_release (rt_resources_t *r);

/* Replaces SPEC's process fields with those of FILE, an OCI process object (exec --process);
 * errors name the field without the "process." prefix. */
int rt_spec_load_process (const char *file, rt_spec_t *spec, rt_error_t *err);

/* The poststart and poststop hooks kept in state.json (post_hooks_json) into LISTS. */
int rt_hooks_from_json (const char *json, rt_hook_list_t lists[RT_HOOK_KINDS], rt_error_t *err);
void rt_hooks_release (rt_hook_list_t lists[RT_HOOK_KINDS]);
const char *rt_hook_kind_name (enum rt_hook_kind k);

/* Capability number to name (CAP_...), NULL past the last one known here. */
const char *rt_cap_name (int cap);
/* Capability name (with the CAP_ prefix) to number, or -1. */
int rt_cap_from_name (const char *name);
/* Docker's default capability set, as a mask. */
uint64_t rt_caps_docker_default (void);
const char *rt_ns_name (enum rt_ns_type t);

#endif
