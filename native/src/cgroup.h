/* cgroups: v2 (unified), v1 and hybrid (v1 controllers plus a v2 tree at /sys/fs/cgroup/unified).
 * A container's cgroup is one path (linux.cgroupsPath, default /swarm-runtime/<id>) that exists in
 * every hierarchy we use. Errors name the step and the cgroup file. */
#ifndef SWARM_CGROUP_H
#define SWARM_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "spec.h"

#define RT_CGROUP_ROOT "/sys/fs/cgroup"

enum rt_cgroup_mode
{
  RT_CGROUP_V1,     /* v1 controllers only */
  RT_CGROUP_HYBRID, /* v1 controllers + an empty v2 tree at /sys/fs/cgroup/unified */
  RT_CGROUP_V2,     /* /sys/fs/cgroup is cgroup2 */
};

/* Hierarchies joined beyond the base set (v1: pids, memory, cpu, cpuacct, and the unified tree
 * on a hybrid host, freezer on a pure v1 one), only when the spec needs them: each one costs a
 * directory made, joined and removed per container. On v2 they name the controllers to enable. */
#define RT_CGROUP_CPUSET (1u << 0)
#define RT_CGROUP_BLKIO (1u << 1)
#define RT_CGROUP_DEVICES (1u << 2)
#define RT_CGROUP_HUGETLB (1u << 3)
/* Every v1 hierarchy mounted on the host (named ones too): the container's cgroup mount shows
 * each of them rooted at its own cgroup, as under runc. */
#define RT_CGROUP_ALL (1u << 4)

enum rt_cgroup_mode rt_cgroup_mode (void);

/* The hierarchies SPEC needs beyond the base set (RT_CGROUP_*). */
unsigned rt_cgroup_wanted (const rt_spec_t *spec);
const char *rt_cgroup_mode_name (enum rt_cgroup_mode m);

/* linux.cgroupsPath (or /swarm-runtime/<id>) normalised to "/a/b"; refuses `..` and systemd's
 * "slice:prefix:name" form. */
int rt_cgroup_path (const char *spec_path, const char *id, char **out, rt_error_t *err);

/* Refuses a cgroup that already holds processes (EBUSY, nothing changed). Then mkdir in each
 * hierarchy of the base set and of EXTRA (v2: enabling the controllers in the parents), then
 * writes the limits of linux.resources. *MADE: directories may exist (remove them on failure). */
int rt_cgroup_create (const char *path, const rt_resources_t *r, unsigned extra, bool *made,
                      rt_error_t *err);
/* Writes the limits R gives to an existing cgroup (update); a hierarchy R needs that is not in
 * *EXTRA is made and joined by every process of the container first (*EXTRA grows). */
int rt_cgroup_update (const char *path, const rt_resources_t *r, unsigned *extra,
                      rt_error_t *err);
/* Moves the calling process into the cgroup in each hierarchy. */
int rt_cgroup_enter (const char *path, unsigned extra, rt_error_t *err);
/* Moves the calling process into the cgroups of process PID, in every hierarchy mounted under
 * /sys/fs/cgroup (exec: the same cgroups as the container's init). */
int rt_cgroup_enter_as (pid_t pid, rt_error_t *err);
/* The processes listed in the cgroup (cgroup.procs of the first hierarchy), in its order; *OUT
 * is heap memory, NULL when there are none. */
int rt_cgroup_pids (const char *path, pid_t **out, size_t *count, rt_error_t *err);
/* Sends SIG to every process listed in the cgroup. */
int rt_cgroup_kill (const char *path, int sig, rt_error_t *err);
/* Kills what is left (cgroup.kill on v2 when present), waits until empty, removes the
 * directories. Missing directories are not an error. */
int rt_cgroup_destroy (const char *path, unsigned extra, rt_error_t *err);
/* Freezes (pause) or thaws (resume) every process of the cgroup: cgroup.freeze of the v2
 * directory (the unified tree on a hybrid host), freezer.state on pure v1. Waits until frozen. */
int rt_cgroup_freeze (const char *path, bool frozen, rt_error_t *err);
/* True while the cgroup is frozen. */
bool rt_cgroup_frozen (const char *path);
/* Prints {"memory":{"usage","limit","oomKill"},"cpu":{"usageUsec"},"pids":{"current","limit"}}
 * merged into an object with ID and the path, on stdout. */
int rt_cgroup_print_stats (const char *id, const char *path, rt_error_t *err);

#endif
