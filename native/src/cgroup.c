/* cgroups for v1, hybrid and v2 hosts, with one small table of operations per layout (the crun
 * way). Every hierarchy directory is RT_CGROUP_ROOT/<hierarchy>/<path> on v1 and
 * RT_CGROUP_ROOT/<path> on v2. */
#include "cgroup.h"

#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* The v1 hierarchies every container joins, in order. The first one present holds the process
 * list (pids has every process). "unified" is the v2 tree of a hybrid host (no controllers there
 * but hugetlb here; its cgroup.freeze pauses the container). */
static const char *const v1_base[] = { "pids", "memory", "cpu", "cpuacct", "unified" };
#define N_V1_BASE (sizeof (v1_base) / sizeof (v1_base[0]))
/* The ones joined on demand, by RT_CGROUP_* bit. */
static const struct
{
  unsigned bit;
  const char *name;
} v1_extra[] = {
  { RT_CGROUP_CPUSET, "cpuset" },
  { RT_CGROUP_BLKIO, "blkio" },
  { RT_CGROUP_DEVICES, "devices" },
  { RT_CGROUP_HUGETLB, "hugetlb" },
};
#define N_V1_EXTRA (sizeof (v1_extra) / sizeof (v1_extra[0]))
#define MAX_HIERARCHIES 24

/* The layout does not change while a command runs: it is detected once per process. */
enum rt_cgroup_mode
rt_cgroup_mode (void)
{
  static int cached = -1;
  struct statfs sf;
  struct stat st;
  if (cached >= 0)
    return (enum rt_cgroup_mode) cached;
  if (statfs (RT_CGROUP_ROOT, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
    cached = RT_CGROUP_V2;
  else if (statfs (RT_CGROUP_ROOT "/unified", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC
           && stat (RT_CGROUP_ROOT "/unified", &st) == 0)
    cached = RT_CGROUP_HYBRID;
  else
    cached = RT_CGROUP_V1;
  return (enum rt_cgroup_mode) cached;
}

const char *
rt_cgroup_mode_name (enum rt_cgroup_mode m)
{
  return m == RT_CGROUP_V2 ? "v2" : m == RT_CGROUP_HYBRID ? "hybrid" : "v1";
}

int
rt_cgroup_path (const char *spec_path, const char *id, char **out, rt_error_t *err)
{
  const char *p;
  char *s, *w;
  *out = NULL;
  if (spec_path == NULL || spec_path[0] == '\0')
    {
      if (asprintf (out, "/swarm-runtime/%s", id) < 0)
        return rt_make_error (err, ENOMEM, "asprintf");
      return 0;
    }
  if (strchr (spec_path, ':') != NULL)
    return rt_make_error (err, 0, "linux.cgroupsPath `%s`: the systemd form is not supported",
                          spec_path);
  s = malloc (strlen (spec_path) + 2);
  if (s == NULL)
    return rt_make_error (err, ENOMEM, "malloc");
  /* Collapse slashes; refuse "." and ".." components. */
  w = s;
  for (p = spec_path; *p;)
    {
      size_t n;
      while (*p == '/')
        p++;
      n = strcspn (p, "/");
      if (n == 0)
        break;
      if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
        {
          free (s);
          return rt_make_error (err, 0, "linux.cgroupsPath `%s`: `.` and `..` are refused",
                                spec_path);
        }
      *w++ = '/';
      memcpy (w, p, n);
      w += n;
      p += n;
    }
  *w = '\0';
  if (w == s)
    {
      free (s);
      return rt_make_error (err, 0, "linux.cgroupsPath `%s`: the root cgroup is refused",
                            spec_path);
    }
  *out = s;
  return 0;
}

/* ---- small file helpers ----------------------------------------------------------------------- */

static int
write_file (const char *dir, const char *file, const char *value, const char *step,
            rt_error_t *err)
{
  cleanup_free char *path = NULL;
  cleanup_close int fd = -1;
  size_t len = strlen (value);
  if (asprintf (&path, "%s/%s", dir, file) < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return rt_make_error (err, errno, "%s: open %s", step, path);
  if (write (fd, value, len) != (ssize_t) len)
    return rt_make_error (err, errno, "%s: write `%s` to %s", step, value, path);
  return 0;
}

/* pids.max has the same format on v1 and v2: a count, or "max" for no limit (0 or less). */
static int
write_pids_max (const char *dir, int64_t limit, rt_error_t *err)
{
  char buf[32];

  if (limit > 0)
    snprintf (buf, sizeof buf, "%" PRId64, limit);
  else
    snprintf (buf, sizeof buf, "max");
  return write_file (dir, "pids.max", buf, "set the pids limit", err);
}

/* The whole (small) file into a heap string; NULL with errno set on failure. */
static char *
read_file (const char *dir, const char *file)
{
  cleanup_free char *path = NULL;
  char *buf = NULL;
  size_t len = 0;
  FILE *f;
  if (asprintf (&path, "%s/%s", dir, file) < 0)
    return NULL;
  f = fopen (path, "re");
  if (f == NULL)
    return NULL;
  if (getdelim (&buf, &len, '\0', f) < 0)
    {
      free (buf);
      buf = strdup ("");
    }
  fclose (f);
  return buf;
}

/* A number file ("max" reads as -1); -2 if unreadable. */
static int64_t
read_number (const char *dir, const char *file)
{
  cleanup_free char *s = read_file (dir, file);
  if (s == NULL)
    return -2;
  if (strncmp (s, "max", 3) == 0)
    return -1;
  return strtoll (s, NULL, 10);
}

/* "key value" lines (memory.events, cpu.stat, memory.oom_control); -2 if absent. */
static int64_t
read_keyed (const char *dir, const char *file, const char *key)
{
  cleanup_free char *s = read_file (dir, file);
  size_t klen = strlen (key);
  char *line;
  if (s == NULL)
    return -2;
  for (line = s; line && *line; line = strchr (line, '\n') ? strchr (line, '\n') + 1 : NULL)
    if (strncmp (line, key, klen) == 0 && line[klen] == ' ')
      return strtoll (line + klen + 1, NULL, 10);
  return -2;
}

/* mkdir -p, from the leaf up: the parents (/sys/fs/cgroup/<h>/swarm-runtime) exist but for the
 * first container, so one mkdir per hierarchy is the usual cost. */
static int
mkdir_p (char *path, rt_error_t *err)
{
  char *slash;
  int ret;
  if (mkdir (path, 0755) == 0 || errno == EEXIST)
    return 0;
  if (errno != ENOENT || (slash = strrchr (path, '/')) == NULL || slash == path)
    return rt_make_error (err, errno, "create the cgroup: mkdir %s", path);
  *slash = '\0';
  ret = mkdir_p (path, err);
  *slash = '/';
  if (ret < 0)
    return -1;
  if (mkdir (path, 0755) < 0 && errno != EEXIST)
    return rt_make_error (err, errno, "create the cgroup: mkdir %s", path);
  return 0;
}

/* ---- the directories of a cgroup in each layout ------------------------------------------------ */

typedef struct
{
  size_t n;
  char *dir[MAX_HIERARCHIES];
  char *name[MAX_HIERARCHIES]; /* hierarchy ("" on v2) */
  char *v2;                    /* the v2 directory (v2, or the unified tree of a hybrid host) */
} dirs_t;

static void
dirs_free (dirs_t *d)
{
  size_t i;
  for (i = 0; i < d->n; i++)
    {
      free (d->dir[i]);
      free (d->name[i]);
    }
  d->n = 0;
  d->v2 = NULL;
}

static bool
has_name (const dirs_t *d, const char *name)
{
  size_t i;
  for (i = 0; i < d->n; i++)
    if (strcmp (d->name[i], name) == 0)
      return true;
  return false;
}

/* Whether /sys/fs/cgroup/NAME is a directory (a symlink such as cpu -> cpu,cpuacct is its
 * co-mounted target's), remembered per process for the names of the fixed sets: create, the
 * first child and delete each look at them. */
static bool
hierarchy_mounted (const char *name)
{
  static struct
  {
    char name[32];
    bool mounted;
  } seen[MAX_HIERARCHIES];
  static size_t n_seen;
  char root[256];
  struct stat st;
  bool mounted;
  size_t i;
  for (i = 0; i < n_seen; i++)
    if (strcmp (seen[i].name, name) == 0)
      return seen[i].mounted;
  snprintf (root, sizeof root, "%s/%s", RT_CGROUP_ROOT, name);
  mounted = lstat (root, &st) == 0 && S_ISDIR (st.st_mode);
  if (n_seen < MAX_HIERARCHIES && strlen (name) < sizeof seen[0].name)
    {
      snprintf (seen[n_seen].name, sizeof seen[n_seen].name, "%s", name);
      seen[n_seen++].mounted = mounted;
    }
  return mounted;
}

/* Adds hierarchy NAME when it is mounted on this host (a directory under /sys/fs/cgroup; a
 * symlink such as cpu -> cpu,cpuacct is its co-mounted target's). */
static int
add_hierarchy (dirs_t *d, const char *name, const char *path, rt_error_t *err)
{
  char root[256];
  if (has_name (d, name) || !hierarchy_mounted (name))
    return 0;
  snprintf (root, sizeof root, "%s/%s", RT_CGROUP_ROOT, name);
  if (d->n == MAX_HIERARCHIES)
    return rt_make_error (err, E2BIG, "more than %d cgroup hierarchies", MAX_HIERARCHIES);
  d->name[d->n] = strdup (name);
  if (d->name[d->n] == NULL || asprintf (&d->dir[d->n], "%s%s", root, path) < 0)
    {
      free (d->name[d->n]);
      return rt_make_error (err, ENOMEM, "asprintf");
    }
  if (strcmp (name, "unified") == 0)
    d->v2 = d->dir[d->n];
  d->n++;
  return 0;
}

/* Every hierarchy mounted under /sys/fs/cgroup (RT_CGROUP_ALL). */
static int
add_all_hierarchies (dirs_t *d, const char *path, rt_error_t *err)
{
  DIR *dir = opendir (RT_CGROUP_ROOT);
  struct dirent *de;
  int ret = 0;
  if (dir == NULL)
    return rt_make_error (err, errno, "opendir %s", RT_CGROUP_ROOT);
  while (ret == 0 && (de = readdir (dir)) != NULL)
    if (de->d_name[0] != '.' && de->d_type == DT_DIR)
      ret = add_hierarchy (d, de->d_name, path, err);
  closedir (dir);
  return ret;
}

/* The hierarchies of the base set and of EXTRA present on this host. */
static int
cgroup_dirs (enum rt_cgroup_mode mode, const char *path, unsigned extra, dirs_t *d,
             rt_error_t *err)
{
  size_t i;
  memset (d, 0, sizeof *d);
  if (mode == RT_CGROUP_V2)
    {
      d->name[0] = strdup ("");
      if (d->name[0] == NULL || asprintf (&d->dir[0], "%s%s", RT_CGROUP_ROOT, path) < 0)
        {
          free (d->name[0]);
          return rt_make_error (err, ENOMEM, "asprintf");
        }
      d->v2 = d->dir[0];
      d->n = 1;
      return 0;
    }
  for (i = 0; i < N_V1_BASE; i++)
    if (add_hierarchy (d, v1_base[i], path, err) < 0)
      goto fail;
  /* Pure v1 has no cgroup.freeze: the freezer hierarchy is the only way to pause. */
  if (mode == RT_CGROUP_V1 && add_hierarchy (d, "freezer", path, err) < 0)
    goto fail;
  for (i = 0; i < N_V1_EXTRA; i++)
    if ((extra & v1_extra[i].bit) && add_hierarchy (d, v1_extra[i].name, path, err) < 0)
      goto fail;
  if ((extra & RT_CGROUP_ALL) && add_all_hierarchies (d, path, err) < 0)
    goto fail;
  if (d->n == 0)
    return rt_make_error (err, ENOENT, "find the cgroup hierarchies under %s", RT_CGROUP_ROOT);
  return 0;
fail:
  dirs_free (d);
  return -1;
}

static const char *
dir_of (const dirs_t *d, const char *name)
{
  size_t i;
  for (i = 0; i < d->n; i++)
    if (strcmp (d->name[i], name) == 0)
      return d->dir[i];
  return NULL;
}

/* Where a v1 limit goes; a missing controller is an error only when its limit is asked for. */
static int
need_dir (const dirs_t *d, const char *name, const char *what, const char **out, rt_error_t *err)
{
  *out = dir_of (d, name);
  if (*out == NULL)
    return rt_make_error (err, ENOENT, "set %s: %s/%s", what, RT_CGROUP_ROOT, name);
  return 0;
}

unsigned
rt_cgroup_wanted (const rt_spec_t *spec)
{
  const rt_resources_t *r = &spec->resources;
  unsigned m = 0;
  size_t i;
  if (r->cpuset_cpus != NULL || r->cpuset_mems != NULL)
    m |= RT_CGROUP_CPUSET;
  if (r->has_blkio)
    m |= RT_CGROUP_BLKIO;
  if (r->n_devices > 0)
    m |= RT_CGROUP_DEVICES;
  if (r->n_hugepages > 0)
    m |= RT_CGROUP_HUGETLB;
  for (i = 0; i < spec->n_mounts; i++)
    if (spec->mounts[i].type != NULL
        && (strcmp (spec->mounts[i].type, "cgroup") == 0
            || strcmp (spec->mounts[i].type, "cgroup2") == 0))
      m |= RT_CGROUP_ALL;
  return m;
}

/* ---- the operations per layout ---------------------------------------------------------------- */

typedef struct
{
  int (*apply) (const dirs_t *d, const rt_resources_t *r, rt_error_t *err);
  void (*stats) (const dirs_t *d, json_object *o);
} cgroup_ops_t;

static int
write_i64 (const char *dir, const char *file, int64_t v, const char *step, rt_error_t *err)
{
  char buf[32];
  snprintf (buf, sizeof buf, "%" PRId64, v);
  return write_file (dir, file, buf, step, err);
}

/* v1 memory.limit_in_bytes and memory.memsw.limit_in_bytes: the kernel wants memsw >= limit at
 * every step, so the order depends on the current limit (runc's setMemoryAndSwap). A limit of -1
 * without a swap value also lifts memsw, when the kernel has swap accounting. */
static int
v1_memory_and_swap (const char *dir, const rt_resources_t *r, rt_error_t *err)
{
  bool has_swap = r->has_memory_swap;
  int64_t swap = r->memory_swap;
  cleanup_free char *memsw = NULL;
  if (r->has_memory_limit && r->memory_limit == -1 && !has_swap)
    {
      if (asprintf (&memsw, "%s/memory.memsw.limit_in_bytes", dir) < 0)
        return rt_make_error (err, ENOMEM, "asprintf");
      if (access (memsw, F_OK) == 0)
        {
          has_swap = true;
          swap = -1;
        }
    }
  if (r->has_memory_limit && has_swap)
    {
      int64_t cur = read_number (dir, "memory.limit_in_bytes");
      if (swap == -1 || (cur >= 0 && cur < swap))
        return write_i64 (dir, "memory.memsw.limit_in_bytes", swap, "set the swap limit", err) < 0
                       || write_i64 (dir, "memory.limit_in_bytes", r->memory_limit,
                                     "set the memory limit", err)
                              < 0
                   ? -1
                   : 0;
    }
  if (r->has_memory_limit
      && write_i64 (dir, "memory.limit_in_bytes", r->memory_limit, "set the memory limit", err) < 0)
    return -1;
  if (has_swap && write_i64 (dir, "memory.memsw.limit_in_bytes", swap, "set the swap limit", err) < 0)
    return -1;
  return 0;
}

static bool
wants_memory (const rt_resources_t *r)
{
  return r->has_memory_limit || r->has_memory_swap || r->has_memory_reservation
         || r->has_swappiness || r->disable_oom_killer;
}

static int
v1_memory (const dirs_t *d, const rt_resources_t *r, rt_error_t *err)
{
  const char *dir;
  if (!wants_memory (r))
    return 0;
  if (need_dir (d, "memory", "the memory limits", &dir, err) < 0)
    return -1;
  if (v1_memory_and_swap (dir, r, err) < 0)
    return -1;
  if (r->has_memory_reservation
      && write_i64 (dir, "memory.soft_limit_in_bytes", r->memory_reservation,
                    "set the memory reservation", err)
             < 0)
    return -1;
  if (r->disable_oom_killer
      && write_file (dir, "memory.oom_control", "1", "disable the OOM killer", err) < 0)
    return -1;
  if (r->has_swappiness
      && write_i64 (dir, "memory.swappiness", (int64_t) r->swappiness, "set the swappiness", err)
             < 0)
    return -1;
  return 0;
}

static int
v1_cpu (const dirs_t *d, const rt_resources_t *r, rt_error_t *err)
{
  const char *dir;
  if (!(r->has_cpu_period || r->has_cpu_quota || r->has_cpu_shares || r->has_cpu_rt_period
        || r->has_cpu_rt_runtime || r->has_cpu_idle || r->has_cpu_burst))
    return 0;
  if (need_dir (d, "cpu", "the cpu limits", &dir, err) < 0)
    return -1;
  /* The period first: a quota is checked against it. */
  if (r->has_cpu_period
      && write_i64 (dir, "cpu.cfs_period_us", (int64_t) r->cpu_period, "set the cpu period", err)
             < 0)
    return -1;
  if (r->has_cpu_quota
      && write_i64 (dir, "cpu.cfs_quota_us", r->cpu_quota > 0 ? r->cpu_quota : -1,
                    "set the cpu quota", err)
             < 0)
    return -1;
  if (r->has_cpu_burst
      && write_i64 (dir, "cpu.cfs_burst_us", (int64_t) r->cpu_burst, "set the cpu burst", err) < 0)
    return -1;
  if (r->has_cpu_shares
      && write_i64 (dir, "cpu.shares", (int64_t) r->cpu_shares, "set the cpu shares", err) < 0)
    return -1;
  /* The realtime period before the runtime, as runc: the runtime must fit in it. */
  if (r->has_cpu_rt_period
      && write_i64 (dir, "cpu.rt_period_us", (int64_t) r->cpu_rt_period,
                    "set the realtime period", err)
             < 0)
    return -1;
  if (r->has_cpu_rt_runtime
      && write_i64 (dir, "cpu.rt_runtime_us", r->cpu_rt_runtime, "set the realtime runtime", err)
             < 0)
    return -1;
  if (r->has_cpu_idle && write_i64 (dir, "cpu.idle", r->cpu_idle, "set cpu.idle", err) < 0)
    return -1;
  return 0;
}

static bool
cpuset_empty (const char *s)
{
  return s == NULL || s[0] == '\0' || s[0] == '\n';
}

/* A new v1 cpuset cgroup has empty cpus and mems, and a process cannot join it until they are
 * set: each level made for us takes its parent's (runc's cpusetCopyIfNeeded). */
static int
v1_cpuset_fill (const char *leaf, rt_error_t *err)
{
  cleanup_free char *dir = strdup (leaf);
  const char *root_end;
  char *p;
  if (dir == NULL)
    return rt_make_error (err, errno, "strdup");
  root_end = dir + strlen (RT_CGROUP_ROOT "/cpuset");
  for (p = (char *) root_end + 1;; p++)
    if (*p == '/' || *p == '\0')
      {
        static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };
        char save = *p, *slash;
        size_t k;
        *p = '\0';
        slash = strrchr (dir, '/');
        for (k = 0; k < 2; k++)
          {
            cleanup_free char *mine = read_file (dir, files[k]), *parents = NULL;
            if (!cpuset_empty (mine))
              continue;
            *slash = '\0';
            parents = read_file (dir, files[k]);
            *slash = '/';
            if (parents == NULL)
              return rt_make_error (err, errno, "set the cpuset: read the parent of %s/%s", dir,
                                    files[k]);
            parents[strcspn (parents, "\n")] = '\0';
            if (write_file (dir, files[k], parents, "set the cpuset", err) < 0)
              return -1;
          }
        *p = save;
        if (save == '\0')
          return 0;
      }
}

static int
write_cpuset (const char *dir, const rt_resources_t *r, rt_error_t *err)
{
  if (r->cpuset_cpus != NULL
      && write_file (dir, "cpuset.cpus", r->cpuset_cpus, "set the cpuset", err) < 0)
    return -1;
  if (r->cpuset_mems != NULL
      && write_file (dir, "cpuset.mems", r->cpuset_mems, "set the cpuset", err) < 0)
    return -1;
  return 0;
}

static int
v1_cpuset (const dirs_t *d, const rt_resources_t *r, rt_error_t *err)
{
  const char *dir = dir_of (d, "cpuset");
  /* Joined for a cgroup mount too: it must be fillable then. */
  if (dir != NULL && v1_cpuset_fill (dir, err) < 0)
    return -1;
  if (r->cpuset_cpus == NULL && r->cpuset_mems == NULL)
    return 0;
  if (need_dir (d, "cpuset", "the cpuset", &dir, err) < 0)
    return -1;
  return write_cpuset (dir, r, err);
}

static int
v1_pids (const dirs_t *d, const rt_resources_t *r, rt_error_t *err)
{
  const char *dir;
  if (!r->has_pids_limit)
    return 0;
  if (need_dir (d, "pids", "the pids limit", &dir, err) < 0)
    return -1;
  return write_pids_max (dir, r->pids_limit, err);
}

/* A device line of a blkio/io file: "MAJOR:MINOR VALUE". */
static int
write_device_value (const char *dir, const char *file, const rt_blkio_device_t *dev,
                    const char *value, const char *step, rt_error_t *err)
{
  char buf[96];
  snprintf (buf, sizeof buf, "%" PRId64 ":%" PRId64 " %s", dev->major, dev->minor, value);
  return write_file (dir, file, buf, step, err);
}

static bool
file_exists (const char *dir, const char *file)
{
  char path[PATH_MAX];
  snprintf (path, sizeof path, "%s/%s", dir, file);
  return access (path, F_OK) == 0;
}

static const char *const v1_throttle_files[RT_THROTTLE_KINDS] = {
  [RT_THROTTLE_READ_BPS] = "blkio.throttle.read_bps_device",
  [RT_THROTTLE_WRITE_BPS] = "blkio.throttle.write_bps_device",
  [RT_THROTTLE_READ_IOPS] = "blkio.throttle.read_iops_device",
  [RT_THROTTLE_WRITE_IOPS] = "blkio.throttle.write_iops_device",
};

/* v1 blkio. Weights exist only under an I/O scheduler that has them: blkio.bfq.weight (BFQ) is
 * preferred, as runc does, else blkio.weight (CFQ, gone since Linux 5.0); without either the
 * weight is refused, naming the file. */
static int
v1_blkio (const dirs_t *d, const rt_resources_t *r, rt_error_t *err)
{
  const char *dir, *weight_file, *weight_device_file;
  size_t i;
  int t;
  char buf[32];
  if (!r->has_blkio)
    return 0;
  if (need_dir (d, "blkio", "the block I/O limits", &dir, err) < 0)
    return -1;
  if (file_exists (dir, "blkio.bfq.weight"))
    {
      weight_file = "blkio.bfq.weight";
      weight_device_file = "blkio.bfq.weight_device";
    }
  else
    {
      weight_file = "blkio.weight";
      weight_device_file = "blkio.weight_device";
    }
  if (r->blkio_weight != 0
      && write_i64 (dir, weight_file, (int64_t) r->blkio_weight, "set the blkio weight", err) < 0)
    return -1;
  if (r->blkio_leaf_weight != 0
      && write_i64 (dir, "blkio.leaf_weight", (int64_t) r->blkio_leaf_weight,
                    "set the blkio leaf weight", err)
             < 0)
    return -1;
  for (i = 0; i < r->n_blkio_weight_devices; i++)
    {
      const rt_blkio_device_t *dev = &r->blkio_weight_devices[i];
      if (dev->weight != 0)
        {
          snprintf (buf, sizeof buf, "%" PRIu64, dev->weight);
          if (write_device_value (dir, weight_device_file, dev, buf, "set a device weight", err) < 0)
            return -1;
        }
      if (dev->leaf_weight != 0)
        {
          snprintf (buf, sizeof buf, "%" PRIu64, dev->leaf_weight);
          if (write_device_value (dir, "blkio.leaf_weight_device", dev, buf,
                                  "set a device leaf weight", err)
              < 0)
            return -1;
        }
    }
  for (t = 0; t < RT_THROTTLE_KINDS; t++)
    for (i = 0; i < r->n_throttle[t]; i++)
      {
        snprintf (buf, sizeof buf, "%" PRIu64, r->throttle[t][i].rate);
        if (write_device_value (dir, v1_throttle_files[t], &r->throttle[t][i], buf,
                                "set an I/O throttle", err)
            < 0)
          return -1;
      }
  return 0;
}

/* hugetlb.<size>.limit_in_bytes (v1) or hugetlb.<size>.max (v2). A hybrid host whose hugetlb
 * controller is not a v1 hierarchy has it in the unified tree (this machine does). */
static int
apply_hugetlb (const dirs_t *d, const rt_resources_t *r, rt_error_t *err)
{
  const char *dir = dir_of (d, "hugetlb");
  bool v2 = dir == NULL;
  size_t i;
  if (r->n_hugepages == 0)
    return 0;
  if (v2)
    dir = d->v2;
  if (dir == NULL)
    return rt_make_error (err, ENOENT, "set the hugepage limits: no hugetlb controller under %s",
                          RT_CGROUP_ROOT);
  for (i = 0; i < r->n_hugepages; i++)
    {
      char file[64];
      snprintf (file, sizeof file, "hugetlb.%s.%s", r->hugepages[i].page_size,
                v2 ? "max" : "limit_in_bytes");
      if (write_i64 (dir, file, (int64_t) r->hugepages[i].limit, "set a hugepage limit", err) < 0)
        return -1;
    }
  return 0;
}

/* The device rules: v1's devices hierarchy when joined, and a BPF program on the v2 directory
 * (pure v2, or the unified tree of a hybrid host: the kernel checks both, and both say the
 * same). */
static int
apply_devices (const dirs_t *d, const rt_resources_t *r, rt_error_t *err)
{
  rt_devices_state_t *st;
  const char *v1 = dir_of (d, "devices");
  int ret = 0;
  if (r->n_devices == 0)
    return 0;
  st = malloc (sizeof *st);
  if (st == NULL)
    return rt_make_error (err, errno, "malloc");
  if (rt_devices_reduce (r->devices, r->n_devices, st, err) < 0)
    ret = -1;
  else if (v1 != NULL && rt_devices_write_v1 (v1, st, err) < 0)
    ret = -1;
  else if (d->v2 != NULL && rt_devices_attach_bpf (d->v2, st, err) < 0)
    ret = -1;
  free (st);
  return ret;
}

static int
v1_apply (const dirs_t *d, const rt_resources_t *r, rt_error_t *err)
{
  if (r->n_unified > 0)
    return rt_make_error (err, 0, "linux.resources.unified: needs cgroup v2 (this host is %s)",
                          rt_cgroup_mode_name (rt_cgroup_mode ()));
  if (v1_cpuset (d, r, err) < 0 || apply_devices (d, r, err) < 0 || v1_memory (d, r, err) < 0
      || v1_cpu (d, r, err) < 0 || v1_pids (d, r, err) < 0 || v1_blkio (d, r, err) < 0
      || apply_hugetlb (d, r, err) < 0)
    return -1;
  return 0;
}

static void
add_int (json_object *o, const char *key, int64_t v)
{
  /* -2: unreadable; -1: "max" (no limit). Both become null. */
  json_object_object_add (o, key, v >= 0 ? json_object_new_int64 (v) : NULL);
}

static void
v1_stats (const dirs_t *d, json_object *o)
{
  json_object *mem = json_object_new_object (), *cpu = json_object_new_object (),
              *pids = json_object_new_object ();
  const char *m = dir_of (d, "memory"), *a = dir_of (d, "cpuacct"), *p = dir_of (d, "pids");
  int64_t usage = a ? read_number (a, "cpuacct.usage") : -2;
  int64_t limit = m ? read_number (m, "memory.limit_in_bytes") : -2;
  add_int (mem, "usage", m ? read_number (m, "memory.usage_in_bytes") : -2);
  /* v1 reports "no limit" as a huge page-rounded number. */
  add_int (mem, "limit", limit >= (INT64_MAX & ~(int64_t) 4095) ? -1 : limit);
  add_int (mem, "oomKill", m ? read_keyed (m, "memory.oom_control", "oom_kill") : -2);
  add_int (mem, "failcnt", m ? read_number (m, "memory.failcnt") : -2);
  add_int (cpu, "usageUsec", usage >= 0 ? usage / 1000 : usage);
  add_int (pids, "current", p ? read_number (p, "pids.current") : -2);
  add_int (pids, "limit", p ? read_number (p, "pids.max") : -2);
  json_object_object_add (o, "memory", mem);
  json_object_object_add (o, "cpu", cpu);
  json_object_object_add (o, "pids", pids);
}

static void
v2_stats (const dirs_t *d, json_object *o)
{
  json_object *mem = json_object_new_object (), *cpu = json_object_new_object (),
              *pids = json_object_new_object ();
  const char *dir = d->dir[0];
  add_int (mem, "usage", read_number (dir, "memory.current"));
  add_int (mem, "limit", read_number (dir, "memory.max"));
  add_int (mem, "oomKill", read_keyed (dir, "memory.events", "oom_kill"));
  add_int (cpu, "usageUsec", read_keyed (dir, "cpu.stat", "usage_usec"));
  add_int (pids, "current", read_number (dir, "pids.current"));
  add_int (pids, "limit", read_number (dir, "pids.max"));
  json_object_object_add (o, "memory", mem);
  json_object_object_add (o, "cpu", cpu);
  json_object_object_add (o, "pids", pids);
}


/* runc's ConvertMemorySwapToCgroupV2Value: the spec's swap is memory+swap, v2's swap.max the
 * swap alone. */
static int
v2_swap_value (const rt_resources_t *r, char *buf, size_t len, rt_error_t *err)
{
  int64_t limit = r->has_memory_limit ? r->memory_limit : 0;
  if (r->memory_swap == -1)
    return snprintf (buf, len, "max"), 0;
  if (limit <= 0)
    return rt_make_error (err, 0, "linux.resources.memory.swap: needs a memory limit on cgroup v2");
  if (r->memory_swap < limit)
    return rt_make_error (err, 0, "linux.resources.memory.swap: must be at least the memory limit");
  snprintf (buf, len, "%" PRId64, r->memory_swap - limit);
  return 0;
}

static void
num_or_max (int64_t v, char *buf, size_t len)
{
  if (v >= 0)
    snprintf (buf, len, "%" PRId64, v);
  else
    snprintf (buf, len, "max");
}

static int
v2_memory (const char *dir, const rt_resources_t *r, rt_error_t *err)
{
  char buf[64];
  if (r->has_swappiness)
    return rt_make_error (err, 0, "linux.resources.memory.swappiness: cgroup v2 has no per-cgroup swappiness");
  if (r->disable_oom_killer)
    return rt_make_error (err, 0, "linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer");
  /* Swap first (runc's order); a limit of -1 without a swap value lifts the swap too. */
  if (r->has_memory_swap || (r->has_memory_limit && r->memory_limit == -1))
    {
      if (!r->has_memory_swap)
        snprintf (buf, sizeof buf, "max");
      else if (v2_swap_value (r, buf, sizeof buf, err) < 0)
        return -1;
      if (write_file (dir, "memory.swap.max", buf, "set the swap limit", err) < 0)
        return -1;
    }
  if (r->has_memory_limit)
    {
      num_or_max (r->memory_limit, buf, sizeof buf);
      if (write_file (dir, "memory.max", buf, "set the memory limit", err) < 0)
        return -1;
    }
  if (r->has_memory_reservation)
    {
      num_or_max (r->memory_reservation, buf, sizeof buf);
      if (write_file (dir, "memory.low", buf, "set the memory reservation", err) < 0)
        return -1;
    }
  return 0;
}

static int
v2_cpu (const char *dir, const rt_resources_t *r, rt_error_t *err)
{
  char buf[64];
  if (r->has_cpu_rt_period || r->has_cpu_rt_runtime)
    return rt_make_error (err, 0, "linux.resources.cpu.realtime*: cgroup v2 has no realtime limits");
  if (r->has_cpu_quota || r->has_cpu_period)
    {
      /* Without a period, the kernel keeps the one it has. */
      int n = r->has_cpu_quota && r->cpu_quota > 0
                  ? snprintf (buf, sizeof buf, "%" PRId64, r->cpu_quota)
                  : snprintf (buf, sizeof buf, "max");
      if (r->has_cpu_period)
        snprintf (buf + n, sizeof buf - (size_t) n, " %" PRIu64, r->cpu_period);
      if (write_file (dir, "cpu.max", buf, "set the cpu quota", err) < 0)
        return -1;
    }
  if (r->has_cpu_burst
      && write_i64 (dir, "cpu.max.burst", (int64_t) r->cpu_burst, "set the cpu burst", err) < 0)
    return -1;
  if (r->has_cpu_shares)
    {
      /* runc's conversion: shares [2, 262144] to weight [1, 10000]. */
      uint64_t shares = r->cpu_shares < 2 ? 2 : r->cpu_shares;
      if (write_i64 (dir, "cpu.weight", (int64_t) (1 + ((shares - 2) * 9999) / 262142),
                     "set the cpu weight", err)
          < 0)
        return -1;
    }
  if (r->has_cpu_idle && write_i64 (dir, "cpu.idle", r->cpu_idle, "set cpu.idle", err) < 0)
    return -1;
  return 0;
}

static const char *const v2_throttle_keys[RT_THROTTLE_KINDS] = {
  [RT_THROTTLE_READ_BPS] = "rbps",
  [RT_THROTTLE_WRITE_BPS] = "wbps",
  [RT_THROTTLE_READ_IOPS] = "riops",
  [RT_THROTTLE_WRITE_IOPS] = "wiops",
};

/* v2 io: io.bfq.weight takes blkio's 10..1000 as it is; io.weight wants 1..10000 (runc's
 * conversion). io.max gets one "MAJ:MIN key=value" line per throttle entry. */
static int
v2_io (const char *dir, const rt_resources_t *r, rt_error_t *err)
{
  bool bfq = file_exists (dir, "io.bfq.weight");
  const char *file = bfq ? "io.bfq.weight" : "io.weight";
  char buf[64];
  size_t i;
  int t;
  if (!r->has_blkio)
    return 0;
  if (r->blkio_leaf_weight != 0)
    return rt_make_error (err, 0, "linux.resources.blockIO.leafWeight: cgroup v2 has no leaf weights");
  if (r->blkio_weight != 0)
    {
      uint64_t w = bfq ? r->blkio_weight : 1 + (r->blkio_weight - 10) * 9999 / 990;
      snprintf (buf, sizeof buf, "%s%" PRIu64, bfq ? "" : "default ", w);
      if (write_file (dir, file, buf, "set the io weight", err) < 0)
        return -1;
    }
  for (i = 0; i < r->n_blkio_weight_devices; i++)
    {
      const rt_blkio_device_t *dev = &r->blkio_weight_devices[i];
      if (dev->leaf_weight != 0)
        return rt_make_error (err, 0, "linux.resources.blockIO.weightDevice[%zu].leafWeight: cgroup v2 has no leaf weights", i);
      if (dev->weight == 0)
        continue;
      snprintf (buf, sizeof buf, "%" PRIu64, bfq ? dev->weight : 1 + (dev->weight - 10) * 9999 / 990);
      if (write_device_value (dir, file, dev, buf, "set a device weight", err) < 0)
        return -1;
    }
  for (t = 0; t < RT_THROTTLE_KINDS; t++)
    for (i = 0; i < r->n_throttle[t]; i++)
      {
        snprintf (buf, sizeof buf, "%s=%" PRIu64, v2_throttle_keys[t], r->throttle[t][i].rate);
        if (write_device_value (dir, "io.max", &r->throttle[t][i], buf, "set an I/O throttle", err) < 0)
          return -1;
      }
  return 0;
}

static int
v2_apply (const dirs_t *d, const rt_resources_t *r, rt_error_t *err)
{
  const char *dir = d->dir[0];
  size_t i;
  if (v2_memory (dir, r, err) < 0 || v2_cpu (dir, r, err) < 0)
    return -1;
  if (write_cpuset (dir, r, err) < 0)
    return -1;
  if (r->has_pids_limit && write_pids_max (dir, r->pids_limit, err) < 0)
    return -1;
  if (v2_io (dir, r, err) < 0 || apply_hugetlb (d, r, err) < 0 || apply_devices (d, r, err) < 0)
    return -1;
  for (i = 0; i < r->n_unified; i++)
    if (write_file (dir, r->unified[i].key, r->unified[i].value, "linux.resources.unified", err) < 0)
      return -1;
  return 0;
}

static const cgroup_ops_t v1_ops = { v1_apply, v1_stats };
static const cgroup_ops_t v2_ops = { v2_apply, v2_stats };

static const cgroup_ops_t *
ops_for (enum rt_cgroup_mode m)
{
  return m == RT_CGROUP_V2 ? &v2_ops : &v1_ops;
}

/* ---- making the directories ------------------------------------------------------------------- */

/* v2: "+ctrl" into cgroup.subtree_control of every parent of the leaf DIR below ROOT, from the
 * top down. A controller the host lacks is skipped; its limit then fails on the missing file. */
static void
enable_controllers (const char *root, const char *dir, const char *const *ctrls, size_t n)
{
  cleanup_free char *copy = strdup (dir);
  rt_error_t ignored = { 0, NULL };
  char *p, *last;
  size_t i;
  if (copy == NULL)
    return;
  last = strrchr (copy, '/'); /* the leaf's separator */
  for (p = copy + strlen (root); p != NULL; p = strchr (p + 1, '/'))
    {
      char save = *p;
      *p = '\0';
      for (i = 0; i < n; i++)
        {
          write_file (copy, "cgroup.subtree_control", ctrls[i], "enable", &ignored);
          rt_error_release (&ignored);
        }
      *p = save;
      if (p == last)
        break;
    }
}

/* The controllers a v2 cgroup of the container needs enabled in its parents. */
static size_t
v2_controllers (const rt_resources_t *r, unsigned extra, const char **out, size_t max)
{
  static const char *const base[] = { "+cpu", "+memory", "+pids" };
  size_t n = 0, i;
  for (i = 0; i < 3; i++)
    out[n++] = base[i];
  if (extra & RT_CGROUP_CPUSET)
    out[n++] = "+cpuset";
  if (extra & RT_CGROUP_BLKIO)
    out[n++] = "+io";
  if (extra & RT_CGROUP_HUGETLB)
    out[n++] = "+hugetlb";
  /* linux.resources.unified: the controller is the file name's prefix ("io.max": io). */
  for (i = 0; r != NULL && i < r->n_unified && n < max; i++)
    {
      static char names[32][40];
      size_t len = strcspn (r->unified[i].key, ".");
      if (i >= 32 || len >= sizeof names[0] - 1)
        continue;
      snprintf (names[i], sizeof names[i], "+%.*s", (int) len, r->unified[i].key);
      out[n++] = names[i];
    }
  return n;
}

/* mkdir -p of the v2 directory DIR (below ROOT), its controllers enabled in the parents first so
 * that the leaf gets their files. */
static int
make_v2_dir (const char *root, const char *dir, const char *const *ctrls, size_t n,
             rt_error_t *err)
{
  cleanup_free char *parent = strdup (dir);
  char *slash = parent ? strrchr (parent, '/') : NULL;
  if (parent == NULL)
    return rt_make_error (err, errno, "strdup");
  if (slash != NULL && slash > parent + strlen (root))
    {
      *slash = '\0';
      if (mkdir_p (parent, err) < 0)
        return -1;
    }
  if (n > 0)
    enable_controllers (root, dir, ctrls, n);
  return mkdir_p ((char *) dir, err);
}

static int signal_procs (const char *dir, int sig, int *n, rt_error_t *err);

/* Makes every directory of D. */
static int
make_dirs (enum rt_cgroup_mode mode, const dirs_t *d, const rt_resources_t *r, unsigned extra,
           rt_error_t *err)
{
  size_t i;
  if (mode == RT_CGROUP_V2)
    {
      const char *ctrls[48];
      size_t n = v2_controllers (r, extra, ctrls, 48);
      return make_v2_dir (RT_CGROUP_ROOT, d->dir[0], ctrls, n, err);
    }
  for (i = 0; i < d->n; i++)
    {
      /* The unified tree of a hybrid host: hugetlb, when it is not a v1 hierarchy, is there. */
      if (d->dir[i] == d->v2)
        {
          static const char *const hugetlb[] = { "+hugetlb" };
          bool want = (extra & RT_CGROUP_HUGETLB) && !has_name (d, "hugetlb");
          if (make_v2_dir (RT_CGROUP_ROOT "/unified", d->dir[i], hugetlb, want ? 1 : 0, err) < 0)
            return -1;
        }
      else if (mkdir_p (d->dir[i], err) < 0)
        return -1;
    }
  return 0;
}

int
rt_cgroup_create (const char *path, const rt_resources_t *r, unsigned extra, bool *made,
                  rt_error_t *err)
{
  enum rt_cgroup_mode mode = rt_cgroup_mode ();
  dirs_t d;
  size_t i;
  int ret = 0;
  *made = false;
  if (cgroup_dirs (mode, path, extra, &d, err) < 0)
    return -1;
  /* Never adopt (and later kill) someone else's processes. */
  for (i = 0; i < d.n; i++)
    {
      int n = 0;
      if (signal_procs (d.dir[i], 0, &n, err) < 0)
        ret = -1;
      else if (n > 0)
        ret = rt_make_error (err, EBUSY, "create the cgroup: %s/cgroup.procs is not empty",
                             d.dir[i]);
      if (ret < 0)
        {
          dirs_free (&d);
          return ret;
        }
    }
  *made = true; /* from here on, a failure leaves directories to remove */
  ret = make_dirs (mode, &d, r, extra, err);
  if (ret == 0)
    ret = ops_for (mode)->apply (&d, r, err);
  dirs_free (&d);
  return ret;
}

static unsigned
needed_by (const rt_resources_t *r)
{
  unsigned m = 0;
  if (r->cpuset_cpus != NULL || r->cpuset_mems != NULL)
    m |= RT_CGROUP_CPUSET;
  if (r->has_blkio)
    m |= RT_CGROUP_BLKIO;
  if (r->n_hugepages > 0)
    m |= RT_CGROUP_HUGETLB;
  return m;
}

/* Writes every pid of the container (the first hierarchy's list) into DIR: a hierarchy joined
 * after create. A process forked meanwhile may be missed; the next update catches it. */
static int
move_procs (const char *first, const char *dir, rt_error_t *err)
{
  cleanup_free char *s = read_file (first, "cgroup.procs");
  char *p, *end;
  if (s == NULL)
    return rt_make_error (err, errno, "read %s/cgroup.procs", first);
  for (p = s; *p; p = end)
    {
      long pid = strtol (p, &end, 10);
      char buf[24];
      if (end == p)
        break;
      snprintf (buf, sizeof buf, "%ld", pid);
      if (pid > 0 && write_file (dir, "cgroup.procs", buf, "join the cgroup", err) < 0)
        {
          if (err->status != ESRCH)
            return -1;
          rt_error_release (err); /* it exited meanwhile */
        }
    }
  return 0;
}

int
rt_cgroup_update (const char *path, const rt_resources_t *r, unsigned *extra, rt_error_t *err)
{
  enum rt_cgroup_mode mode = rt_cgroup_mode ();
  unsigned missing = needed_by (r) & ~*extra;
  dirs_t d;
  size_t i;
  int ret = 0;
  if (r->n_devices > 0)
    return rt_make_error (err, 0, "devices: the device rules cannot be updated");
  if (cgroup_dirs (mode, path, *extra | missing, &d, err) < 0)
    return -1;
  if (access (d.dir[0], F_OK) < 0)
    ret = rt_make_error (err, errno, "update the cgroup: %s", d.dir[0]);
  if (ret == 0 && missing != 0)
    {
      /* Recorded before anything is made, so that delete removes what a failure leaves. */
      *extra |= missing;
      if (mode == RT_CGROUP_V2)
        ret = make_dirs (mode, &d, r, *extra | missing, err);
      else
        {
          dirs_t added;
          ret = cgroup_dirs (mode, path, missing, &added, err);
          for (i = 0; ret == 0 && i < added.n; i++)
            if (access (added.dir[i], F_OK) < 0)
              {
                ret = mkdir_p (added.dir[i], err);
                if (ret == 0 && strcmp (added.name[i], "cpuset") == 0)
                  ret = v1_cpuset_fill (added.dir[i], err);
                if (ret == 0)
                  ret = move_procs (d.dir[0], added.dir[i], err);
              }
          if (ret == 0 || added.n > 0)
            dirs_free (&added);
        }
    }
  if (ret == 0)
    ret = ops_for (mode)->apply (&d, r, err);
  dirs_free (&d);
  return ret;
}

int
rt_cgroup_enter (const char *path, unsigned extra, rt_error_t *err)
{
  dirs_t d;
  size_t i;
  int ret = 0;
  if (cgroup_dirs (rt_cgroup_mode (), path, extra, &d, err) < 0)
    return -1;
  for (i = 0; ret == 0 && i < d.n; i++)
    ret = write_file (d.dir[i], "cgroup.procs", "0", "join the cgroup", err);
  dirs_free (&d);
  return ret;
}

int
rt_cgroup_pids (const char *path, pid_t **out, size_t *count, rt_error_t *err)
{
  cleanup_free char *s = NULL;
  pid_t *pids = NULL;
  size_t n = 0, cap = 0;
  char *p, *end;
  dirs_t d;
  *out = NULL;
  *count = 0;
  if (cgroup_dirs (rt_cgroup_mode (), path, 0, &d, err) < 0)
    return -1;
  /* The first hierarchy (pids on v1) lists every process of the container. */
  s = read_file (d.dir[0], "cgroup.procs");
  if (s == NULL)
    {
      int e = errno;
      rt_make_error (err, e, "read %s/cgroup.procs", d.dir[0]);
      dirs_free (&d);
      return -1;
    }
  dirs_free (&d);
  for (p = s; *p; p = end)
    {
      long pid = strtol (p, &end, 10);
      if (end == p)
        break;
      if (pid <= 0)
        continue;
      if (n == cap)
        {
          pid_t *bigger = realloc (pids, (cap = cap ? cap * 2 : 16) * sizeof (pid_t));
          if (bigger == NULL)
            {
              free (pids);
              return rt_make_error (err, errno, "realloc");
            }
          pids = bigger;
        }
      pids[n++] = (pid_t) pid;
    }
  *out = pids;
  *count = n;
  return 0;
}

/* The directory of one line of /proc/PID/cgroup ("N:controllers:path"), or NULL to skip it: the
 * v2 line on a v1-only host, a hierarchy not mounted under /sys/fs/cgroup by its name. */
static char *
cgroup_line_dir (enum rt_cgroup_mode mode, char *line)
{
  char *ctrls = strchr (line, ':'), *path, *dir = NULL;
  const char *mount;
  if (ctrls == NULL || (path = strchr (++ctrls, ':')) == NULL)
    return NULL;
  *path++ = '\0';
  if (*ctrls == '\0')
    mount = mode == RT_CGROUP_V2 ? "" : mode == RT_CGROUP_HYBRID ? "/unified" : NULL;
  else
    mount = NULL;
  if (*ctrls == '\0' && mount == NULL)
    return NULL;
  if (strncmp (ctrls, "name=", 5) == 0)
    ctrls += 5;
  if (asprintf (&dir, "%s%s%s%s%s", RT_CGROUP_ROOT, mount ? mount : "/", mount ? "" : ctrls,
                *path == '/' || *path == '\0' ? "" : "/", path)
      < 0)
    return NULL;
  return dir;
}

int
rt_cgroup_enter_as (pid_t pid, rt_error_t *err)
{
  enum rt_cgroup_mode mode = rt_cgroup_mode ();
  cleanup_free char *proc = NULL, *text = NULL;
  char *line, *save = NULL;
  if (asprintf (&proc, "/proc/%d", pid) < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  text = read_file (proc, "cgroup");
  if (text == NULL)
    return rt_make_error (err, errno, "read %s/cgroup", proc);
  for (line = strtok_r (text, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      cleanup_free char *dir = cgroup_line_dir (mode, line);
      if (dir == NULL || access (dir, F_OK) < 0)
        continue;
      if (write_file (dir, "cgroup.procs", "0", "join the cgroup", err) < 0)
        return -1;
    }
  return 0;
}

/* Signals every pid in DIR/cgroup.procs; *n counts them. ENOENT (no cgroup) counts as empty. */
static int
signal_procs (const char *dir, int sig, int *n, rt_error_t *err)
{
  cleanup_free char *s = read_file (dir, "cgroup.procs");
  char *p, *end;
  *n = 0;
  if (s == NULL)
    {
      if (errno == ENOENT)
        return 0;
      return rt_make_error (err, errno, "read %s/cgroup.procs", dir);
    }
  for (p = s; *p; p = end)
    {
      long pid = strtol (p, &end, 10);
      if (end == p)
        break;
      if (pid > 0)
        {
          (*n)++;
          if (kill ((pid_t) pid, sig) < 0 && errno != ESRCH)
            return rt_make_error (err, errno, "kill %ld (in %s/cgroup.procs)", pid, dir);
        }
    }
  return 0;
}

int
rt_cgroup_kill (const char *path, int sig, rt_error_t *err)
{
  dirs_t d;
  int n, ret;
  if (cgroup_dirs (rt_cgroup_mode (), path, 0, &d, err) < 0)
    return -1;
  /* The first hierarchy (pids on v1) lists every process of the container. */
  ret = signal_procs (d.dir[0], sig, &n, err);
  dirs_free (&d);
  return ret;
}

static int
empty_and_remove (const char *dir, bool use_kill_file, rt_error_t *err)
{
  int i, n;
  struct stat st;
  if (stat (dir, &st) < 0)
    return 0;
  if (use_kill_file)
    {
      cleanup_free char *kf = NULL;
      if (asprintf (&kf, "%s/cgroup.kill", dir) >= 0 && access (kf, F_OK) == 0
          && write_file (dir, "cgroup.kill", "1", "kill the cgroup", err) < 0)
        return -1;
    }
  for (i = 0; i < 1000; i++)
    {
      if (signal_procs (dir, SIGKILL, &n, err) < 0)
        return -1;
      /* Reap what was ours (`run` is a subreaper), so that zombies do not keep it busy. */
      while (waitpid (-1, NULL, WNOHANG) > 0)
        ;
      if (n == 0)
        {
          if (rmdir (dir) == 0 || errno == ENOENT)
            return 0;
          if (errno != EBUSY)
            return rt_make_error (err, errno, "remove the cgroup: rmdir %s", dir);
        }
      usleep (5000);
    }
  return rt_make_error (err, EBUSY, "remove the cgroup: rmdir %s", dir);
}

int
rt_cgroup_destroy (const char *path, unsigned extra, rt_error_t *err)
{
  enum rt_cgroup_mode mode = rt_cgroup_mode ();
  dirs_t d;
  size_t i;
  int ret = 0;
  if (cgroup_dirs (mode, path, extra, &d, err) < 0)
    return -1;
  for (i = 0; ret == 0 && i < d.n; i++)
    ret = empty_and_remove (d.dir[i], mode == RT_CGROUP_V2 || strcmp (d.name[i], "unified") == 0,
                            err);
  dirs_free (&d);
  return ret;
}

int
rt_cgroup_print_stats (const char *id, const char *path, rt_error_t *err)
{
  enum rt_cgroup_mode mode = rt_cgroup_mode ();
  json_object *o;
  dirs_t d;
  int ret = 0;
  if (cgroup_dirs (mode, path, 0, &d, err) < 0)
    return -1;
  if (access (d.dir[0], F_OK) < 0)
    {
      ret = rt_make_error (err, errno, "read the stats: %s", d.dir[0]);
      dirs_free (&d);
      return ret;
    }
  o = json_object_new_object ();
  json_object_object_add (o, "id", json_object_new_string (id));
  json_object_object_add (o, "cgroup", json_object_new_string (path));
  json_object_object_add (o, "cgroupMode", json_object_new_string (rt_cgroup_mode_name (mode)));
  ops_for (mode)->stats (&d, o);
  if (printf ("%s\n", json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN)) < 0)
    ret = rt_make_error (err, errno, "write the stats");
  json_object_put (o);
  dirs_free (&d);
  return ret;
}

/* ---- the freezer (pause, resume) ---------------------------------------------------------------- */

/* Where the container's freezer is: cgroup.freeze of its v2 directory (on a hybrid host the
 * unified tree's, which every container joins), else freezer.state of the v1 freezer hierarchy
 * (joined on pure v1 hosts). */
static char *
freezer_dir (const char *path, bool *v2)
{
  enum rt_cgroup_mode mode = rt_cgroup_mode ();
  char *dir = NULL;
  *v2 = mode != RT_CGROUP_V1;
  if (asprintf (&dir, "%s%s%s", RT_CGROUP_ROOT,
                mode == RT_CGROUP_V2 ? "" : mode == RT_CGROUP_HYBRID ? "/unified" : "/freezer", path)
      < 0)
    return NULL;
  return dir;
}

bool
rt_cgroup_frozen (const char *path)
{
  bool v2;
  cleanup_free char *dir = freezer_dir (path, &v2), *s = NULL;
  if (dir == NULL)
    return false;
  s = read_file (dir, v2 ? "cgroup.freeze" : "freezer.state");
  if (s == NULL)
    return false;
  return v2 ? s[0] == '1' : strncmp (s, "THAWED", 6) != 0;
}

int
rt_cgroup_freeze (const char *path, bool frozen, rt_error_t *err)
{
  bool v2;
  cleanup_free char *dir = freezer_dir (path, &v2);
  int i;
  if (dir == NULL)
    return rt_make_error (err, ENOMEM, "asprintf");
  if (write_file (dir, v2 ? "cgroup.freeze" : "freezer.state",
                  v2 ? (frozen ? "1" : "0") : (frozen ? "FROZEN" : "THAWED"),
                  frozen ? "freeze the cgroup" : "thaw the cgroup", err)
      < 0)
    return -1;
  /* The kernel freezes asynchronously: wait until every task is (v2: cgroup.events says
   * "frozen 1"; v1: the state is no longer FREEZING). */
  for (i = 0; i < 2000; i++)
    {
      cleanup_free char *s = read_file (dir, v2 ? "cgroup.events" : "freezer.state");
      bool done;
      if (s == NULL)
        return rt_make_error (err, errno, "read the freezer state of %s", dir);
      if (v2)
        {
          char *line = strstr (s, "frozen ");
          done = line != NULL && (line[7] == '1') == frozen;
        }
      else
        done = strncmp (s, frozen ? "FROZEN" : "THAWED", 6) == 0;
      if (done)
        return 0;
      usleep (i < 100 ? 1000 : 10000);
    }
  return rt_make_error (err, ETIMEDOUT, "%s the cgroup %s", frozen ? "freeze" : "thaw", dir);
}
