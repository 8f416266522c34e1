/* cgroups for v1, hybrid and v2 hosts, with one small table of operations per layout (the crun
 * way). Every hierarchy directory is RT_CGROUP_ROOT/<hierarchy>/<path> on v1 and
 * RT_CGROUP_ROOT/<path> on v2. */
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* The v1 hierarchies a container joins, in order. The first one present holds the process list
 * (pids has every process). "unified" is the v2 tree of a hybrid host (no controllers there). */
static const char *const v1_hierarchies[] = { "pids", "memory", "cpu", "cpuacct", "unified" };
#define N_V1 (sizeof (v1_hierarchies) / sizeof (v1_hierarchies[0]))

enum rt_cgroup_mode
rt_cgroup_mode (void)
{
  struct statfs sf;
  struct stat st;
  if (statfs (RT_CGROUP_ROOT, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
    return RT_CGROUP_V2;
  if (statfs (RT_CGROUP_ROOT "/unified", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC
      && stat (RT_CGROUP_ROOT "/unified", &st) == 0)
    return RT_CGROUP_HYBRID;
  return RT_CGROUP_V1;
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

static int
mkdir_p (char *path, rt_error_t *err)
{
  char *p;
  for (p = path + 1; *p; p++)
    if (*p == '/')
      {
        *p = '\0';
        if (mkdir (path, 0755) < 0 && errno != EEXIST)
          {
            int e = errno;
            *p = '/';
            return rt_make_error (err, e, "create the cgroup: mkdir %s", path);
          }
        *p = '/';
      }
  if (mkdir (path, 0755) < 0 && errno != EEXIST)
    return rt_make_error (err, errno, "create the cgroup: mkdir %s", path);
  return 0;
}

/* ---- the directories of a cgroup in each layout ------------------------------------------------ */

typedef struct
{
  size_t n;
  char *dir[N_V1];
  const char *name[N_V1]; /* hierarchy ("" on v2) */
} dirs_t;

static void
dirs_free (dirs_t *d)
{
  size_t i;
  for (i = 0; i < d->n; i++)
    free (d->dir[i]);
  d->n = 0;
}

/* The hierarchies present on this host. */
static int
cgroup_dirs (enum rt_cgroup_mode mode, const char *path, dirs_t *d, rt_error_t *err)
{
  size_t i;
  struct stat st;
  d->n = 0;
  if (mode == RT_CGROUP_V2)
    {
      if (asprintf (&d->dir[0], "%s%s", RT_CGROUP_ROOT, path) < 0)
        return rt_make_error (err, ENOMEM, "asprintf");
      d->name[0] = "";
      d->n = 1;
      return 0;
    }
  for (i = 0; i < N_V1; i++)
    {
      char root[64];
      snprintf (root, sizeof root, "%s/%s", RT_CGROUP_ROOT, v1_hierarchies[i]);
      if (stat (root, &st) < 0 || !S_ISDIR (st.st_mode))
        continue;
      if (asprintf (&d->dir[d->n], "%s%s", root, path) < 0)
        {
          dirs_free (d);
          return rt_make_error (err, ENOMEM, "asprintf");
        }
      d->name[d->n++] = v1_hierarchies[i];
    }
  if (d->n == 0)
    return rt_make_error (err, ENOENT, "find the cgroup hierarchies under %s", RT_CGROUP_ROOT);
  return 0;
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

/* ---- the operations per layout ---------------------------------------------------------------- */

typedef struct
{
  int (*apply) (const dirs_t *d, const rt_resources_t *r, rt_error_t *err);
  void (*stats) (const dirs_t *d, json_object *o);
} cgroup_ops_t;

static int
v1_apply (const dirs_t *d, const rt_resources_t *r, rt_error_t *err)
{
  const char *dir;
  char buf[64];
  if (r->has_memory_limit)
    {
      if (need_dir (d, "memory", "the memory limit", &dir, err) < 0)
        return -1;
      snprintf (buf, sizeof buf, "%" PRId64, r->memory_limit);
      if (write_file (dir, "memory.limit_in_bytes", buf, "set the memory limit", err) < 0)
        return -1;
    }
  if (r->has_cpu_period || r->has_cpu_quota || r->has_cpu_shares)
    {
      if (need_dir (d, "cpu", "the cpu limits", &dir, err) < 0)
        return -1;
      /* The period first: a quota is checked against it. */
      if (r->has_cpu_period)
        {
          snprintf (buf, sizeof buf, "%" PRIu64, r->cpu_period);
          if (write_file (dir, "cpu.cfs_period_us", buf, "set the cpu period", err) < 0)
            return -1;
        }
      if (r->has_cpu_quota)
        {
          snprintf (buf, sizeof buf, "%" PRId64, r->cpu_quota > 0 ? r->cpu_quota : -1);
          if (write_file (dir, "cpu.cfs_quota_us", buf, "set the cpu quota", err) < 0)
            return -1;
        }
      if (r->has_cpu_shares)
        {
          snprintf (buf, sizeof buf, "%" PRIu64, r->cpu_shares);
          if (write_file (dir, "cpu.shares", buf, "set the cpu shares", err) < 0)
            return -1;
        }
    }
  if (r->has_pids_limit)
    {
      if (need_dir (d, "pids", "the pids limit", &dir, err) < 0)
        return -1;
      if (write_pids_max (dir, r->pids_limit, err) < 0)
        return -1;
    }
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

static int
v2_apply (const dirs_t *d, const rt_resources_t *r, rt_error_t *err)
{
  const char *dir = d->dir[0];
  char buf[64];
  if (r->has_memory_limit)
    {
      if (r->memory_limit >= 0)
        snprintf (buf, sizeof buf, "%" PRId64, r->memory_limit);
      else
        snprintf (buf, sizeof buf, "max");
      if (write_file (dir, "memory.max", buf, "set the memory limit", err) < 0)
        return -1;
    }
  if (r->has_cpu_quota || r->has_cpu_period)
    {
      char quota[32];
      if (r->has_cpu_quota && r->cpu_quota > 0)
        snprintf (quota, sizeof quota, "%" PRId64, r->cpu_quota);
      else
        snprintf (quota, sizeof quota, "max");
      snprintf (buf, sizeof buf, "%s %" PRIu64, quota, r->has_cpu_period ? r->cpu_period : 100000);
      if (write_file (dir, "cpu.max", buf, "set the cpu quota", err) < 0)
        return -1;
    }
  if (r->has_cpu_shares)
    {
      /* runc's conversion: shares [2, 262144] to weight [1, 10000]. */
      uint64_t shares = r->cpu_shares < 2 ? 2 : r->cpu_shares;
      snprintf (buf, sizeof buf, "%" PRIu64, 1 + ((shares - 2) * 9999) / 262142);
      if (write_file (dir, "cpu.weight", buf, "set the cpu weight", err) < 0)
        return -1;
    }
  if (r->has_pids_limit && write_pids_max (dir, r->pids_limit, err) < 0)
    return -1;
  return 0;
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

static const cgroup_ops_t v1_ops = { v1_apply, v1_stats };
static const cgroup_ops_t v2_ops = { v2_apply, v2_stats };

static const cgroup_ops_t *
ops_for (enum rt_cgroup_mode m)
{
  return m == RT_CGROUP_V2 ? &v2_ops : &v1_ops;
}

/* v2: enable the controllers we write to in every parent of the leaf. Controllers the host lacks
 * are skipped; writing their limit then fails on the missing file. */
static void
v2_enable_controllers (const char *path)
{
  static const char *const ctrls[] = { "+cpu", "+memory", "+pids" };
  cleanup_free char *dir = NULL;
  rt_error_t ignored = { 0, NULL };
  char *p, *last;
  size_t i;
  if (asprintf (&dir, "%s%s", RT_CGROUP_ROOT, path) < 0)
    return;
  last = strrchr (dir, '/'); /* the leaf's separator */
  /* From the root down to the leaf's parent. */
  for (p = dir + strlen (RT_CGROUP_ROOT); p != NULL; p = strchr (p + 1, '/'))
    {
      char save = *p;
      *p = '\0';
      for (i = 0; i < sizeof (ctrls) / sizeof (ctrls[0]); i++)
        {
          write_file (dir, "cgroup.subtree_control", ctrls[i], "enable", &ignored);
          rt_error_release (&ignored);
        }
      *p = save;
      if (p == last)
        break;
    }
}

/* ---- the public operations ------------------------------------------------------------------ */

static int signal_procs (const char *dir, int sig, int *n, rt_error_t *err);

int
rt_cgroup_create (const char *path, const rt_resources_t *r, bool *made, rt_error_t *err)
{
  enum rt_cgroup_mode mode = rt_cgroup_mode ();
  dirs_t d;
  size_t i;
  int ret = 0;
  *made = false;
  if (cgroup_dirs (mode, path, &d, err) < 0)
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
  if (mode == RT_CGROUP_V2)
    {
      /* Parents first, so that the leaf gets the controllers' files. */
      cleanup_free char *parent = strdup (d.dir[0]);
      char *slash = parent ? strrchr (parent, '/') : NULL;
      if (slash != NULL && slash > parent + strlen (RT_CGROUP_ROOT))
        {
          *slash = '\0';
          ret = mkdir_p (parent, err);
        }
      if (ret == 0)
        v2_enable_controllers (path);
    }
  for (i = 0; ret == 0 && i < d.n; i++)
    ret = mkdir_p (d.dir[i], err);
  if (ret == 0)
    ret = ops_for (mode)->apply (&d, r, err);
  dirs_free (&d);
  return ret;
}

int
rt_cgroup_enter (const char *path, rt_error_t *err)
{
  dirs_t d;
  size_t i;
  int ret = 0;
  if (cgroup_dirs (rt_cgroup_mode (), path, &d, err) < 0)
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
  if (cgroup_dirs (rt_cgroup_mode (), path, &d, err) < 0)
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
  if (cgroup_dirs (rt_cgroup_mode (), path, &d, err) < 0)
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
rt_cgroup_destroy (const char *path, rt_error_t *err)
{
  enum rt_cgroup_mode mode = rt_cgroup_mode ();
  dirs_t d;
  size_t i;
  int ret = 0;
  if (cgroup_dirs (mode, path, &d, err) < 0)
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
  if (cgroup_dirs (mode, path, &d, err) < 0)
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
