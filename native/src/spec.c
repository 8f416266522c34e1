#include "spec.h"

#include <seccomp.h>

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const cap_names[] = {
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
  "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
  "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};

static const char *const ns_names[RT_NS_COUNT] = {
  [RT_NS_MOUNT] = "mount", [RT_NS_UTS] = "uts", [RT_NS_IPC] = "ipc", [RT_NS_PID] = "pid",
  [RT_NS_NETWORK] = "network", [RT_NS_CGROUP] = "cgroup", [RT_NS_USER] = "user",
};

static const struct
{
  const char *name;
  int resource;
} rlimit_names[] = {
  { "RLIMIT_AS", RLIMIT_AS },         { "RLIMIT_CORE", RLIMIT_CORE },
  { "RLIMIT_CPU", RLIMIT_CPU },       { "RLIMIT_DATA", RLIMIT_DATA },
  { "RLIMIT_FSIZE", RLIMIT_FSIZE },   { "RLIMIT_LOCKS", RLIMIT_LOCKS },
  { "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK }, { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
  { "RLIMIT_NICE", RLIMIT_NICE },     { "RLIMIT_NOFILE", RLIMIT_NOFILE },
  { "RLIMIT_NPROC", RLIMIT_NPROC },   { "RLIMIT_RSS", RLIMIT_RSS },
  { "RLIMIT_RTPRIO", RLIMIT_RTPRIO }, { "RLIMIT_RTTIME", RLIMIT_RTTIME },
  { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING }, { "RLIMIT_STACK", RLIMIT_STACK },
};

const char *
rt_ns_name (enum rt_ns_type t)
{
  return ns_names[t];
}

const char *
rt_cap_name (int cap)
{
  if (cap < 0 || (size_t) cap >= sizeof (cap_names) / sizeof (cap_names[0]))
    return NULL;
  return cap_names[cap];
}

int
rt_cap_from_name (const char *name)
{
  size_t i;
  for (i = 0; i < sizeof (cap_names) / sizeof (cap_names[0]); i++)
    if (strcmp (cap_names[i], name) == 0)
      return (int) i;
  return -1;
}

uint64_t
rt_caps_docker_default (void)
{
  static const char *const names[] = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
  };
  uint64_t mask = 0;
  size_t i;
  for (i = 0; i < sizeof (names) / sizeof (names[0]); i++)
    mask |= 1ULL << rt_cap_from_name (names[i]);
  return mask;
}

/* The parse context: the file name for messages. */
typedef struct
{
  const char *file;
  rt_error_t *err;
  const char *pfx; /* "process." in config.json, "" in an exec --process file */
  const char *rpfx; /* "linux.resources." in config.json, "" in an update --resources file */
} ctx_t;

/* A process field's name in a local buffer (each function using it declares `char fb[96]`). */
#define PF(name) pfield (c, fb, sizeof fb, "%s", name)

/* The name of a process field: "process.NAME" in config.json, "NAME" in a --process file. */
static const char *
pfield (ctx_t *c, char *buf, size_t len, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static const char *
pfield (ctx_t *c, char *buf, size_t len, const char *fmt, ...)
{
  va_list ap;
  int n = snprintf (buf, len, "%s", c->pfx);
  va_start (ap, fmt);
  if (n >= 0 && (size_t) n < len)
    vsnprintf (buf + n, len - (size_t) n, fmt, ap);
  va_end (ap);
  return buf;
}

/* A linux.resources field's name: "linux.resources.NAME" in config.json, "NAME" in an update
 * file. */
static const char *
rfield (ctx_t *c, char *buf, size_t len, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static const char *
rfield (ctx_t *c, char *buf, size_t len, const char *fmt, ...)
{
  va_list ap;
  int n = snprintf (buf, len, "%s", c->rpfx);
  va_start (ap, fmt);
  if (n >= 0 && (size_t) n < len)
    vsnprintf (buf + n, len - (size_t) n, fmt, ap);
  va_end (ap);
  return buf;
}

#define RF(...) rfield (c, fb, sizeof fb, __VA_ARGS__)

static int
field_error (ctx_t *c, const char *field, const char *problem)
{
  return rt_make_error (c->err, 0, "%s: %s: %s", c->file, field, problem);
}

static json_object *
get (json_object *obj, const char *key)
{
  json_object *v = NULL;
  if (obj == NULL || !json_object_is_type (obj, json_type_object))
    return NULL;
  if (!json_object_object_get_ex (obj, key, &v))
    return NULL;
  return v;
}

/* An optional object: NULL if absent; error if present and not an object. */
static int
get_object (ctx_t *c, json_object *obj, const char *key, const char *field, json_object **out)
{
  json_object *v = get (obj, key);
  *out = NULL;
  if (v == NULL || json_object_is_type (v, json_type_null))
    return 0;
  if (!json_object_is_type (v, json_type_object))
    return field_error (c, field, "must be an object");
  *out = v;
  return 0;
}

static int
get_string (ctx_t *c, json_object *obj, const char *key, const char *field, bool required,
            char **out)
{
  json_object *v = get (obj, key);
  *out = NULL;
  if (v == NULL)
    return required ? field_error (c, field, "missing required field") : 0;
  if (!json_object_is_type (v, json_type_string))
    return field_error (c, field, "must be a string");
  *out = strdup (json_object_get_string (v));
  if (*out == NULL)
    return rt_make_error (c->err, errno, "strdup");
  return 0;
}

static int
get_bool (ctx_t *c, json_object *obj, const char *key, const char *field, bool *out)
{
  json_object *v = get (obj, key);
  if (v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_boolean))
    return field_error (c, field, "must be a boolean");
  *out = json_object_get_boolean (v);
  return 0;
}

static int
get_uint (ctx_t *c, json_object *obj, const char *key, const char *field, bool required,
          uint64_t max, bool *present, uint64_t *out)
{
  json_object *v = get (obj, key);
  int64_t n;
  if (present)
    *present = false;
  if (v == NULL)
    return required ? field_error (c, field, "missing required field") : 0;
  if (!json_object_is_type (v, json_type_int))
    return field_error (c, field, "must be an integer");
  n = json_object_get_int64 (v);
  if (n < 0 || (uint64_t) n > max)
    {
      /* json-c clamps big values to INT64_MAX; accept them as "unlimited" for rlimits. */
      if (n < 0 || max != UINT64_MAX)
        return field_error (c, field, "out of range");
    }
  *out = json_object_get_uint64 (v);
  if (present)
    *present = true;
  return 0;
}

static void
free_strv (char **v)
{
  size_t i;
  if (v == NULL)
    return;
  for (i = 0; v[i]; i++)
    free (v[i]);
  free (v);
}

/* An array of strings into a NULL-terminated vector. */
static int
get_strv (ctx_t *c, json_object *obj, const char *key, const char *field, bool required,
          char ***out, size_t *count)
{
  json_object *v = get (obj, key);
  size_t n, i;
  char **r;
  *out = NULL;
  if (count)
    *count = 0;
  if (v == NULL || json_object_is_type (v, json_type_null))
    return required ? field_error (c, field, "missing required field") : 0;
  if (!json_object_is_type (v, json_type_array))
    return field_error (c, field, "must be an array of strings");
  n = json_object_array_length (v);
  r = calloc (n + 1, sizeof (char *));
  if (r == NULL)
    return rt_make_error (c->err, errno, "calloc");
  for (i = 0; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (v, i);
      if (e == NULL || !json_object_is_type (e, json_type_string))
        {
          free_strv (r);
          return rt_make_error (c->err, 0, "%s: %s[%zu]: must be a string", c->file, field, i);
        }
      r[i] = strdup (json_object_get_string (e));
      if (r[i] == NULL)
        {
          free_strv (r);
          return rt_make_error (c->err, errno, "strdup");
        }
    }
  *out = r;
  if (count)
    *count = n;
  return 0;
}

static int
parse_root (ctx_t *c, json_object *top, rt_spec_t *s)
{
  json_object *root;
  if (get_object (c, top, "root", "root", &root) < 0)
    return -1;
  if (root == NULL)
    return field_error (c, "root", "missing required field");
  if (get_string (c, root, "path", "root.path", true, &s->root_path) < 0)
    return -1;
  return get_bool (c, root, "readonly", "root.readonly", &s->root_readonly);
}

static int
parse_caps (ctx_t *c, json_object *process, rt_caps_t *caps)
{
  static const char *const sets[] = { "bounding", "effective", "inheritable", "permitted",
                                      "ambient" };
  uint64_t *masks[] = { &caps->bounding, &caps->effective, &caps->inheritable, &caps->permitted,
                        &caps->ambient };
  json_object *obj;
  char fb[96];
  size_t i, j;
  if (get_object (c, process, "capabilities", PF ("capabilities"), &obj) < 0)
    return -1;
  if (obj == NULL)
    return 0;
  caps->given = true;
  for (i = 0; i < 5; i++)
    {
      char field[64];
      char **names = NULL;
      pfield (c, field, sizeof field, "capabilities.%s", sets[i]);
      if (get_strv (c, obj, sets[i], field, false, &names, NULL) < 0)
        return -1;
      for (j = 0; names && names[j]; j++)
        {
          int cap = rt_cap_from_name (names[j]);
          if (cap < 0)
            {
              rt_make_error (c->err, 0, "%s: %s[%zu]: unknown capability `%s`", c->file, field,
                             j, names[j]);
              free_strv (names);
              return -1;
            }
          *masks[i] |= 1ULL << cap;
        }
      free_strv (names);
    }
  return 0;
}

static int
parse_rlimits (ctx_t *c, json_object *process, rt_spec_t *s)
{
  json_object *arr = get (process, "rlimits");
  char fb[96];
  size_t n, i, k;
  if (arr == NULL || json_object_is_type (arr, json_type_null))
    return 0;
  if (!json_object_is_type (arr, json_type_array))
    return field_error (c, PF ("rlimits"), "must be an array");
  n = json_object_array_length (arr);
  s->rlimits = calloc (n + 1, sizeof (rt_rlimit_t));
  if (s->rlimits == NULL)
    return rt_make_error (c->err, errno, "calloc");
  for (i = 0; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (arr, i);
      char field[64];
      cleanup_free char *type = NULL;
      int resource = -1;
      pfield (c, field, sizeof field, "rlimits[%zu].type", i);
      if (get_string (c, e, "type", field, true, &type) < 0)
        return -1;
      for (k = 0; k < sizeof (rlimit_names) / sizeof (rlimit_names[0]); k++)
        if (strcmp (rlimit_names[k].name, type) == 0)
          resource = rlimit_names[k].resource;
      if (resource < 0)
        return rt_make_error (c->err, 0, "%s: %s: unknown rlimit `%s`", c->file, field, type);
      s->rlimits[i].resource = resource;
      pfield (c, field, sizeof field, "rlimits[%zu].soft", i);
      if (get_uint (c, e, "soft", field, true, UINT64_MAX, NULL, &s->rlimits[i].soft) < 0)
        return -1;
      pfield (c, field, sizeof field, "rlimits[%zu].hard", i);
      if (get_uint (c, e, "hard", field, true, UINT64_MAX, NULL, &s->rlimits[i].hard) < 0)
        return -1;
    }
  s->n_rlimits = n;
  return 0;
}

static int
parse_user (ctx_t *c, json_object *process, rt_spec_t *s)
{
  json_object *user, *gids;
  char fb[96];
  uint64_t v;
  bool present;
  size_t i, n;
  if (get_object (c, process, "user", PF ("user"), &user) < 0)
    return -1;
  if (user == NULL)
    return field_error (c, PF ("user"), "missing required field");
  if (get_uint (c, user, "uid", PF ("user.uid"), true, UINT32_MAX - 1, NULL, &v) < 0)
    return -1;
  s->uid = (uid_t) v;
  if (get_uint (c, user, "gid", PF ("user.gid"), true, UINT32_MAX - 1, NULL, &v) < 0)
    return -1;
  s->gid = (gid_t) v;
  if (get_uint (c, user, "umask", PF ("user.umask"), false, 0777, &present, &v) < 0)
    return -1;
  s->has_umask = present;
  s->umask = (mode_t) v;
  gids = get (user, "additionalGids");
  if (gids == NULL || json_object_is_type (gids, json_type_null))
    return 0;
  if (!json_object_is_type (gids, json_type_array))
    return field_error (c, PF ("user.additionalGids"), "must be an array of integers");
  n = json_object_array_length (gids);
  s->additional_gids = calloc (n + 1, sizeof (gid_t));
  if (s->additional_gids == NULL)
    return rt_make_error (c->err, errno, "calloc");
  for (i = 0; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (gids, i);
      if (e == NULL || !json_object_is_type (e, json_type_int) || json_object_get_int64 (e) < 0
          || json_object_get_int64 (e) >= UINT32_MAX)
        return rt_make_error (c->err, 0, "%s: %suser.additionalGids[%zu]: must be a gid", c->file,
                              c->pfx, i);
      s->additional_gids[i] = (gid_t) json_object_get_int64 (e);
    }
  s->n_additional_gids = n;
  return 0;
}

/* process.ioPriority: {class, priority} as ioprio_set(2) takes it, (class << 13) | priority. */
static int
parse_ioprio (ctx_t *c, json_object *process, rt_spec_t *s)
{
  static const char *const classes[] = { "IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE" };
  json_object *obj;
  cleanup_free char *class = NULL;
  char fb[96];
  uint64_t prio;
  int k;
  s->ioprio = -1;
  if (get_object (c, process, "ioPriority", PF ("ioPriority"), &obj) < 0)
    return -1;
  if (obj == NULL)
    return 0;
  if (get_string (c, obj, "class", PF ("ioPriority.class"), true, &class) < 0
      || get_uint (c, obj, "priority", PF ("ioPriority.priority"), true, 7, NULL, &prio) < 0)
    return -1;
  for (k = 0; k < 3; k++)
    if (strcmp (classes[k], class) == 0)
      {
        s->ioprio = ((k + 1) << 13) | (int) prio;
        return 0;
      }
  return rt_make_error (c->err, 0, "%s: %s: unknown class `%s`", c->file, PF ("ioPriority.class"),
                        class);
}

/* Process fields this runtime does not apply, refused rather than ignored: the LSM labels (no
 * AppArmor or SELinux here, and runc fails on them as well), the scheduler and the CPU affinity
 * of exec'd processes. An empty label counts as absent. */
static int
refuse_process_fields (ctx_t *c, json_object *process)
{
  static const struct
  {
    const char *key, *why;
  } fields[] = {
    { "apparmorProfile", "AppArmor is not supported" },
    { "selinuxLabel", "SELinux is not supported" },
    { "scheduler", "not supported (sched_setattr is not applied)" },
    { "execCPUAffinity", "not supported" },
  };
  size_t k;
  char fb[96];
  for (k = 0; k < sizeof (fields) / sizeof (fields[0]); k++)
    {
      json_object *v = get (process, fields[k].key);
      if (v == NULL || json_object_is_type (v, json_type_null)
          || (json_object_is_type (v, json_type_string) && json_object_get_string_len (v) == 0))
        continue;
      return field_error (c, PF (fields[k].key), fields[k].why);
    }
  return 0;
}

/* The fields of a process object (config.json's "process", or an exec --process file). */
static int
parse_process_object (ctx_t *c, json_object *process, rt_spec_t *s)
{
  json_object *oom;
  char fb[96];
  if (get_strv (c, process, "args", PF ("args"), true, &s->args, NULL) < 0)
    return -1;
  if (s->args[0] == NULL)
    return field_error (c, PF ("args"), "must not be empty");
  if (get_strv (c, process, "env", PF ("env"), false, &s->env, NULL) < 0)
    return -1;
  if (get_string (c, process, "cwd", PF ("cwd"), true, &s->cwd) < 0)
    return -1;
  if (s->cwd[0] != '/')
    return field_error (c, PF ("cwd"), "must be an absolute path");
  if (parse_user (c, process, s) < 0 || parse_rlimits (c, process, s) < 0
      || parse_caps (c, process, &s->caps) < 0)
    return -1;
  if (get_bool (c, process, "noNewPrivileges", PF ("noNewPrivileges"), &s->no_new_privileges)
      < 0)
    return -1;
  if (get_bool (c, process, "terminal", PF ("terminal"), &s->terminal) < 0)
    return -1;
  if (parse_ioprio (c, process, s) < 0 || refuse_process_fields (c, process) < 0)
    return -1;
  {
    json_object *size;
    uint64_t v;
    if (get_object (c, process, "consoleSize", PF ("consoleSize"), &size) < 0)
      return -1;
    if (size != NULL)
      {
        if (get_uint (c, size, "height", PF ("consoleSize.height"), true, 65535, NULL, &v) < 0)
          return -1;
        s->console_height = (unsigned) v;
        if (get_uint (c, size, "width", PF ("consoleSize.width"), true, 65535, NULL, &v) < 0)
          return -1;
        s->console_width = (unsigned) v;
      }
  }
  oom = get (process, "oomScoreAdj");
  if (oom != NULL)
    {
      if (!json_object_is_type (oom, json_type_int) || json_object_get_int (oom) < -1000
          || json_object_get_int (oom) > 1000)
        return field_error (c, PF ("oomScoreAdj"), "must be an integer in [-1000, 1000]");
      s->has_oom_score_adj = true;
      s->oom_score_adj = json_object_get_int (oom);
    }
  return 0;
}

static int
parse_process (ctx_t *c, json_object *top, rt_spec_t *s)
{
  json_object *process;
  if (get_object (c, top, "process", "process", &process) < 0)
    return -1;
  if (process == NULL)
    return field_error (c, "process", "missing required field");
  return parse_process_object (c, process, s);
}

/* uidMappings/gidMappings: [{containerID, hostID, size}]. The kernel takes at most 340 lines. */
static int
parse_idmap (ctx_t *c, json_object *obj, const char *key, const char *field, rt_idmap_t **out,
             size_t *count)
{
  json_object *arr = get (obj, key);
  size_t n, i;
  *out = NULL;
  *count = 0;
  if (arr == NULL || json_object_is_type (arr, json_type_null))
    return 0;
  if (!json_object_is_type (arr, json_type_array))
    return field_error (c, field, "must be an array");
  n = json_object_array_length (arr);
  if (n > 340)
    return field_error (c, field, "more than 340 lines (the kernel's limit)");
  *out = calloc (n + 1, sizeof (rt_idmap_t));
  if (*out == NULL)
    return rt_make_error (c->err, errno, "calloc");
  for (i = 0; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (arr, i);
      char f[128];
      uint64_t v;
      *count = i + 1;
      if (e == NULL || !json_object_is_type (e, json_type_object))
        return rt_make_error (c->err, 0, "%s: %s[%zu]: must be an object", c->file, field, i);
      snprintf (f, sizeof f, "%s[%zu].containerID", field, i);
      if (get_uint (c, e, "containerID", f, true, UINT32_MAX - 1, NULL, &v) < 0)
        return -1;
      (*out)[i].container_id = (uint32_t) v;
      snprintf (f, sizeof f, "%s[%zu].hostID", field, i);
      if (get_uint (c, e, "hostID", f, true, UINT32_MAX - 1, NULL, &v) < 0)
        return -1;
      (*out)[i].host_id = (uint32_t) v;
      snprintf (f, sizeof f, "%s[%zu].size", field, i);
      if (get_uint (c, e, "size", f, true, UINT32_MAX, NULL, &v) < 0)
        return -1;
      if (v == 0)
        return field_error (c, f, "must be greater than zero");
      (*out)[i].size = (uint32_t) v;
    }
  return 0;
}

static int
parse_mounts (ctx_t *c, json_object *top, rt_spec_t *s)
{
  json_object *arr = get (top, "mounts");
  size_t n, i;
  if (arr == NULL || json_object_is_type (arr, json_type_null))
    return 0;
  if (!json_object_is_type (arr, json_type_array))
    return field_error (c, "mounts", "must be an array");
  n = json_object_array_length (arr);
  s->mounts = calloc (n + 1, sizeof (rt_mount_t));
  if (s->mounts == NULL)
    return rt_make_error (c->err, errno, "calloc");
  for (i = 0; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (arr, i);
      rt_mount_t *m = &s->mounts[i];
      s->n_mounts = i + 1;
      char field[64];
      if (e == NULL || !json_object_is_type (e, json_type_object))
        return rt_make_error (c->err, 0, "%s: mounts[%zu]: must be an object", c->file, i);
      snprintf (field, sizeof field, "mounts[%zu].destination", i);
      if (get_string (c, e, "destination", field, true, &m->destination) < 0)
        return -1;
      if (m->destination[0] != '/')
        return field_error (c, field, "must be an absolute path");
      snprintf (field, sizeof field, "mounts[%zu].type", i);
      if (get_string (c, e, "type", field, false, &m->type) < 0)
        return -1;
      snprintf (field, sizeof field, "mounts[%zu].source", i);
      if (get_string (c, e, "source", field, false, &m->source) < 0)
        return -1;
      snprintf (field, sizeof field, "mounts[%zu].options", i);
      if (get_strv (c, e, "options", field, false, &m->options, &m->n_options) < 0)
        return -1;
      snprintf (field, sizeof field, "mounts[%zu].uidMappings", i);
      if (parse_idmap (c, e, "uidMappings", field, &m->uid_map, &m->n_uid_map) < 0)
        return -1;
      snprintf (field, sizeof field, "mounts[%zu].gidMappings", i);
      if (parse_idmap (c, e, "gidMappings", field, &m->gid_map, &m->n_gid_map) < 0)
        return -1;
      if ((m->n_uid_map == 0) != (m->n_gid_map == 0))
        return rt_make_error (c->err, 0, "%s: mounts[%zu]: uidMappings and gidMappings go together",
                              c->file, i);
    }
  return 0;
}

static int
parse_namespaces (ctx_t *c, json_object *linux_obj, rt_spec_t *s)
{
  json_object *arr = get (linux_obj, "namespaces");
  size_t n, i;
  int t;
  if (arr == NULL || json_object_is_type (arr, json_type_null))
    return 0;
  if (!json_object_is_type (arr, json_type_array))
    return field_error (c, "linux.namespaces", "must be an array");
  n = json_object_array_length (arr);
  for (i = 0; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (arr, i);
      char field[64];
      cleanup_free char *type = NULL;
      char *path = NULL;
      snprintf (field, sizeof field, "linux.namespaces[%zu].type", i);
      if (get_string (c, e, "type", field, true, &type) < 0)
        return -1;
      for (t = 0; t < RT_NS_COUNT; t++)
        if (strcmp (ns_names[t], type) == 0)
          break;
      if (t == RT_NS_COUNT)
        return rt_make_error (c->err, 0, "%s: %s: unknown namespace type `%s`", c->file, field,
                              type);
      if (s->ns[t].wanted)
        return rt_make_error (c->err, 0, "%s: %s: namespace `%s` listed twice", c->file, field,
                              type);
      snprintf (field, sizeof field, "linux.namespaces[%zu].path", i);
      if (get_string (c, e, "path", field, false, &path) < 0)
        return -1;
      s->ns[t].wanted = true;
      s->ns[t].path = path;
    }
  return 0;
}

/* ---- linux.devices and linux.resources.devices -------------------------------------------- */

static int
parse_device (ctx_t *c, json_object *e, size_t i, rt_device_t *d)
{
  char field[64];
  cleanup_free char *type = NULL;
  uint64_t v;
  bool present;
  if (e == NULL || !json_object_is_type (e, json_type_object))
    return rt_make_error (c->err, 0, "%s: linux.devices[%zu]: must be an object", c->file, i);
  snprintf (field, sizeof field, "linux.devices[%zu].path", i);
  if (get_string (c, e, "path", field, true, &d->path) < 0)
    return -1;
  if (d->path[0] != '/')
    return field_error (c, field, "must be an absolute path");
  snprintf (field, sizeof field, "linux.devices[%zu].type", i);
  if (get_string (c, e, "type", field, true, &type) < 0)
    return -1;
  if (strcmp (type, "c") != 0 && strcmp (type, "u") != 0 && strcmp (type, "b") != 0
      && strcmp (type, "p") != 0)
    return rt_make_error (c->err, 0, "%s: %s: unknown device type `%s` (c, u, b or p)", c->file,
                          field, type);
  d->type = type[0] == 'u' ? 'c' : type[0];
  snprintf (field, sizeof field, "linux.devices[%zu].major", i);
  if (get_uint (c, e, "major", field, d->type != 'p', 0xfff, NULL, &v) < 0)
    return -1;
  d->major = (uint32_t) v;
  snprintf (field, sizeof field, "linux.devices[%zu].minor", i);
  if (get_uint (c, e, "minor", field, d->type != 'p', 0xfffff, NULL, &v) < 0)
    return -1;
  d->minor = (uint32_t) v;
  snprintf (field, sizeof field, "linux.devices[%zu].fileMode", i);
  if (get_uint (c, e, "fileMode", field, false, 07777 | 0170000, &present, &v) < 0)
    return -1;
  d->mode = present ? (mode_t) (v & 07777) : 0666;
  snprintf (field, sizeof field, "linux.devices[%zu].uid", i);
  v = 0;
  if (get_uint (c, e, "uid", field, false, UINT32_MAX - 1, NULL, &v) < 0)
    return -1;
  d->uid = (uid_t) v;
  v = 0;
  snprintf (field, sizeof field, "linux.devices[%zu].gid", i);
  if (get_uint (c, e, "gid", field, false, UINT32_MAX - 1, NULL, &v) < 0)
    return -1;
  d->gid = (gid_t) v;
  return 0;
}

static int
parse_devices (ctx_t *c, json_object *linux_obj, rt_spec_t *s)
{
  json_object *arr = get (linux_obj, "devices");
  size_t n, i;
  if (arr == NULL || json_object_is_type (arr, json_type_null))
    return 0;
  if (!json_object_is_type (arr, json_type_array))
    return field_error (c, "linux.devices", "must be an array");
  n = json_object_array_length (arr);
  s->devices = calloc (n + 1, sizeof (rt_device_t));
  if (s->devices == NULL)
    return rt_make_error (c->err, errno, "calloc");
  for (i = 0; i < n; i++)
    {
      s->n_devices = i + 1;
      if (parse_device (c, json_object_array_get_idx (arr, i), i, &s->devices[i]) < 0)
        return -1;
    }
  return 0;
}

/* A device number of a cgroup rule: absent or null (or -1) means any. */
static int
get_device_number (ctx_t *c, json_object *e, const char *key, const char *field, int64_t *out)
{
  json_object *v = get (e, key);
  *out = -1;
  if (v == NULL || json_object_is_type (v, json_type_null))
    return 0;
  if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < -1
      || json_object_get_int64 (v) > UINT32_MAX)
    return field_error (c, field, "must be a device number or -1");
  *out = json_object_get_int64 (v);
  return 0;
}

static int
parse_device_rule (ctx_t *c, json_object *e, size_t i, rt_device_rule_t *r)
{
  char field[64];
  cleanup_free char *type = NULL, *access = NULL;
  const char *p;
  if (e == NULL || !json_object_is_type (e, json_type_object))
    return rt_make_error (c->err, 0, "%s: %sdevices[%zu]: must be an object", c->file, c->rpfx,
                          i);
  rfield (c, field, sizeof field, "devices[%zu].allow", i);
  if (get (e, "allow") == NULL)
    return field_error (c, field, "missing required field");
  if (get_bool (c, e, "allow", field, &r->allow) < 0)
    return -1;
  rfield (c, field, sizeof field, "devices[%zu].type", i);
  if (get_string (c, e, "type", field, false, &type) < 0)
    return -1;
  if (type != NULL && strcmp (type, "a") != 0 && strcmp (type, "c") != 0
      && strcmp (type, "b") != 0)
    return rt_make_error (c->err, 0, "%s: %s: unknown type `%s` (a, c or b)", c->file, field,
                          type);
  r->type = type ? type[0] : 'a';
  rfield (c, field, sizeof field, "devices[%zu].major", i);
  if (get_device_number (c, e, "major", field, &r->major) < 0)
    return -1;
  rfield (c, field, sizeof field, "devices[%zu].minor", i);
  if (get_device_number (c, e, "minor", field, &r->minor) < 0)
    return -1;
  rfield (c, field, sizeof field, "devices[%zu].access", i);
  if (get_string (c, e, "access", field, false, &access) < 0)
    return -1;
  /* runc refuses an empty access; "rwm" is every access. */
  if (access == NULL || access[0] == '\0')
    return field_error (c, field, "must not be empty");
  for (p = access; *p; p++)
    {
      unsigned bit = *p == 'r' ? RT_DEV_READ : *p == 'w' ? RT_DEV_WRITE : *p == 'm' ? RT_DEV_MKNOD : 0;
      if (bit == 0)
        return rt_make_error (c->err, 0, "%s: %s: `%s` is not a combination of r, w and m",
                              c->file, field, access);
      r->access |= bit;
    }
  return 0;
}

static int
parse_device_rules (ctx_t *c, json_object *res, rt_resources_t *r)
{
  json_object *arr = get (res, "devices");
  size_t n, i;
  if (arr == NULL || json_object_is_type (arr, json_type_null))
    return 0;
  if (!json_object_is_type (arr, json_type_array))
    {
      char fb[128];
      return field_error (c, RF ("devices"), "must be an array");
    }
  n = json_object_array_length (arr);
  r->devices = calloc (n + 1, sizeof (rt_device_rule_t));
  if (r->devices == NULL)
    return rt_make_error (c->err, errno, "calloc");
  for (i = 0; i < n; i++)
    {
      r->n_devices = i + 1;
      if (parse_device_rule (c, json_object_array_get_idx (arr, i), i, &r->devices[i]) < 0)
        return -1;
    }
  return 0;
}

/* A signed integer field; *present tells whether it was given. */
static int
get_int (ctx_t *c, json_object *obj, const char *key, const char *field, bool *present,
         int64_t *out)
{
  json_object *v = get (obj, key);
  *present = false;
  if (v == NULL || json_object_is_type (v, json_type_null))
    return 0;
  if (!json_object_is_type (v, json_type_int))
    return field_error (c, field, "must be an integer");
  *out = json_object_get_int64 (v);
  *present = true;
  return 0;
}


/* Fields of linux.resources this runtime does not apply: refused, so that nothing is accepted
 * and then ignored. */
static int
refuse_present (ctx_t *c, json_object *obj, const char *key, const char *name, const char *why)
{
  json_object *v = get (obj, key);
  char fb[128];
  if (v == NULL || json_object_is_type (v, json_type_null))
    return 0;
  return field_error (c, RF ("%s", name), why);
}

static int
parse_memory (ctx_t *c, json_object *mem, rt_resources_t *r)
{
  char fb[128];
  bool present;
  if (mem == NULL)
    return 0;
  if (get_int (c, mem, "limit", RF ("memory.limit"), &r->has_memory_limit, &r->memory_limit) < 0)
    return -1;
  if (r->has_memory_limit && r->memory_limit < -1)
    return field_error (c, RF ("memory.limit"), "out of range");
  if (get_int (c, mem, "reservation", RF ("memory.reservation"), &r->has_memory_reservation,
               &r->memory_reservation)
      < 0)
    return -1;
  if (r->has_memory_reservation && r->memory_reservation < -1)
    return field_error (c, RF ("memory.reservation"), "out of range");
  if (get_int (c, mem, "swap", RF ("memory.swap"), &r->has_memory_swap, &r->memory_swap) < 0)
    return -1;
  if (r->has_memory_swap && r->memory_swap < -1)
    return field_error (c, RF ("memory.swap"), "out of range");
  if (r->has_memory_swap && r->memory_swap == 0)
    r->has_memory_swap = false; /* 0 means "not set", as in runc */
  if (get_uint (c, mem, "swappiness", RF ("memory.swappiness"), false, UINT64_MAX,
                &r->has_swappiness, &r->swappiness)
      < 0)
    return -1;
  /* runc: -1 (as a uint64, 2^64-1) means "not set"; otherwise 0..100. */
  if (r->has_swappiness && r->swappiness == UINT64_MAX)
    r->has_swappiness = false;
  if (r->has_swappiness && r->swappiness > 100)
    return field_error (c, RF ("memory.swappiness"), "out of range (0..100)");
  present = false;
  if (get_bool (c, mem, "disableOOMKiller", RF ("memory.disableOOMKiller"), &present) < 0)
    return -1;
  r->disable_oom_killer = present;
  if (refuse_present (c, mem, "kernel", "memory.kernel",
                      "kernel memory limits are deprecated and not applied (runc ignores them)")
          < 0
      || refuse_present (c, mem, "kernelTCP", "memory.kernelTCP",
                         "kernel memory limits are deprecated and not applied (runc ignores them)")
             < 0)
    return -1;
  return 0;
}

static int
parse_cpu (ctx_t *c, json_object *cpu, rt_resources_t *r)
{
  char fb[128];
  if (cpu == NULL)
    return 0;
  if (get_int (c, cpu, "quota", RF ("cpu.quota"), &r->has_cpu_quota, &r->cpu_quota) < 0)
    return -1;
  if (get_uint (c, cpu, "period", RF ("cpu.period"), false, 1000000, &r->has_cpu_period,
                &r->cpu_period)
      < 0)
    return -1;
  if (r->has_cpu_period && r->cpu_period == 0)
    r->has_cpu_period = false; /* 0 means "not set" */
  if (get_uint (c, cpu, "shares", RF ("cpu.shares"), false, 262144, &r->has_cpu_shares,
                &r->cpu_shares)
      < 0)
    return -1;
  if (r->has_cpu_shares && r->cpu_shares == 0)
    r->has_cpu_shares = false; /* 0 means "not set", as in runc */
  if (get_int (c, cpu, "realtimeRuntime", RF ("cpu.realtimeRuntime"), &r->has_cpu_rt_runtime,
               &r->cpu_rt_runtime)
      < 0)
    return -1;
  if (get_uint (c, cpu, "realtimePeriod", RF ("cpu.realtimePeriod"), false, UINT32_MAX,
                &r->has_cpu_rt_period, &r->cpu_rt_period)
      < 0)
    return -1;
  if (get_int (c, cpu, "idle", RF ("cpu.idle"), &r->has_cpu_idle, &r->cpu_idle) < 0)
    return -1;
  if (r->has_cpu_idle && r->cpu_idle != 0 && r->cpu_idle != 1)
    return field_error (c, RF ("cpu.idle"), "must be 0 or 1");
  if (get_uint (c, cpu, "burst", RF ("cpu.burst"), false, UINT32_MAX, &r->has_cpu_burst,
                &r->cpu_burst)
      < 0)
    return -1;
  if (get_string (c, cpu, "cpus", RF ("cpu.cpus"), false, &r->cpuset_cpus) < 0
      || get_string (c, cpu, "mems", RF ("cpu.mems"), false, &r->cpuset_mems) < 0)
    return -1;
  /* An empty string means "not set" (runc). */
  if (r->cpuset_cpus != NULL && r->cpuset_cpus[0] == '\0')
    {
      free (r->cpuset_cpus);
      r->cpuset_cpus = NULL;
    }
  if (r->cpuset_mems != NULL && r->cpuset_mems[0] == '\0')
    {
      free (r->cpuset_mems);
      r->cpuset_mems = NULL;
    }
  return 0;
}

/* weightDevice[] or a throttle list: {major, minor, ...}. */
static int
parse_blkio_devices (ctx_t *c, json_object *blkio, const char *key, bool throttle,
                     rt_blkio_device_t **out, size_t *count)
{
  json_object *arr = get (blkio, key);
  char fb[128];
  size_t n, i;
  if (arr == NULL || json_object_is_type (arr, json_type_null))
    return 0;
  if (!json_object_is_type (arr, json_type_array))
    return field_error (c, RF ("blockIO.%s", key), "must be an array");
  n = json_object_array_length (arr);
  *out = calloc (n + 1, sizeof (rt_blkio_device_t));
  if (*out == NULL)
    return rt_make_error (c->err, errno, "calloc");
  for (i = 0; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (arr, i);
      rt_blkio_device_t *d = &(*out)[i];
      uint64_t v;
      *count = i + 1;
      if (e == NULL || !json_object_is_type (e, json_type_object))
        return field_error (c, RF ("blockIO.%s[%zu]", key, i), "must be an object");
      if (get_uint (c, e, "major", RF ("blockIO.%s[%zu].major", key, i), true, 0xfff, NULL, &v)
          < 0)
        return -1;
      d->major = (int64_t) v;
      if (get_uint (c, e, "minor", RF ("blockIO.%s[%zu].minor", key, i), true, 0xfffff, NULL, &v)
          < 0)
        return -1;
      d->minor = (int64_t) v;
      if (throttle)
        {
          if (get_uint (c, e, "rate", RF ("blockIO.%s[%zu].rate", key, i), true, UINT64_MAX,
                        NULL, &d->rate)
              < 0)
            return -1;
          continue;
        }
      if (get_uint (c, e, "weight", RF ("blockIO.%s[%zu].weight", key, i), false, 1000, NULL,
                    &d->weight)
              < 0
          || get_uint (c, e, "leafWeight", RF ("blockIO.%s[%zu].leafWeight", key, i), false,
                       1000, NULL, &d->leaf_weight)
                 < 0)
        return -1;
    }
  return 0;
}

static int
parse_blkio (ctx_t *c, json_object *blkio, rt_resources_t *r)
{
  static const char *const throttles[RT_THROTTLE_KINDS] = {
    [RT_THROTTLE_READ_BPS] = "throttleReadBpsDevice",
    [RT_THROTTLE_WRITE_BPS] = "throttleWriteBpsDevice",
    [RT_THROTTLE_READ_IOPS] = "throttleReadIOPSDevice",
    [RT_THROTTLE_WRITE_IOPS] = "throttleWriteIOPSDevice",
  };
  char fb[128];
  int t;
  if (blkio == NULL)
    return 0;
  r->has_blkio = true;
  if (get_uint (c, blkio, "weight", RF ("blockIO.weight"), false, 1000, NULL, &r->blkio_weight)
          < 0
      || get_uint (c, blkio, "leafWeight", RF ("blockIO.leafWeight"), false, 1000, NULL,
                   &r->blkio_leaf_weight)
             < 0)
    return -1;
  if (parse_blkio_devices (c, blkio, "weightDevice", false, &r->blkio_weight_devices,
                           &r->n_blkio_weight_devices)
      < 0)
    return -1;
  for (t = 0; t < RT_THROTTLE_KINDS; t++)
    if (parse_blkio_devices (c, blkio, throttles[t], true, &r->throttle[t], &r->n_throttle[t]) < 0)
      return -1;
  return 0;
}

static int
parse_hugepages (ctx_t *c, json_object *res, rt_resources_t *r)
{
  json_object *arr = get (res, "hugepageLimits");
  char fb[128];
  size_t n, i;
  if (arr == NULL || json_object_is_type (arr, json_type_null))
    return 0;
  if (!json_object_is_type (arr, json_type_array))
    return field_error (c, RF ("hugepageLimits"), "must be an array");
  n = json_object_array_length (arr);
  r->hugepages = calloc (n + 1, sizeof (rt_hugepage_limit_t));
  if (r->hugepages == NULL)
    return rt_make_error (c->err, errno, "calloc");
  for (i = 0; i < n; i++)
    {
      json_object *e = json_object_array_get_idx (arr, i);
      rt_hugepage_limit_t *h = &r->hugepages[i];
      const char *p;
      r->n_hugepages = i + 1;
      if (get_string (c, e, "pageSize", RF ("hugepageLimits[%zu].pageSize", i), true,
                      &h->page_size)
              < 0
          || get_uint (c, e, "limit", RF ("hugepageLimits[%zu].limit", i), true, UINT64_MAX, NULL,
                       &h->limit)
                 < 0)
        return -1;
      /* It becomes part of a file name: digits and a unit only. */
      for (p = h->page_size; *p >= '0' && *p <= '9'; p++)
        ;
      if (p == h->page_size || (strcmp (p, "KB") != 0 && strcmp (p, "MB") != 0
                                && strcmp (p, "GB") != 0))
        return field_error (c, RF ("hugepageLimits[%zu].pageSize", i),
                            "must be a size such as 2MB or 1GB");
    }
  return 0;
}

static int
parse_unified (ctx_t *c, json_object *res, rt_resources_t *r)
{
  json_object *obj;
  char fb[128];
  size_t n = 0;
  if (get_object (c, res, "unified", RF ("unified"), &obj) < 0)
    return -1;
  if (obj == NULL)
    return 0;
  r->unified = calloc ((size_t) json_object_object_length (obj) + 1, sizeof (rt_key_value_t));
  if (r->unified == NULL)
    return rt_make_error (c->err, errno, "calloc");
  json_object_object_foreach (obj, key, val)
    {
      /* A file of the container's own cgroup directory: no path, no cgroup.* core files but
       * the few runc allows. */
      if (!json_object_is_type (val, json_type_string))
        return field_error (c, RF ("unified.%s", key), "must be a string");
      if (key[0] == '\0' || key[0] == '.' || strchr (key, '/') != NULL || strchr (key, '.') == NULL
          || (strncmp (key, "cgroup.", 7) == 0 && strcmp (key, "cgroup.freeze") != 0
              && strcmp (key, "cgroup.type") != 0))
        return field_error (c, RF ("unified.%s", key), "is not a controller's file");
      r->unified[n].key = strdup (key);
      r->unified[n].value = strdup (json_object_get_string (val));
      r->n_unified = ++n;
      if (r->unified[n - 1].key == NULL || r->unified[n - 1].value == NULL)
        return rt_make_error (c->err, errno, "strdup");
    }
  return 0;
}

/* An OCI LinuxResources object. */
static int
parse_resources_object (ctx_t *c, json_object *res, rt_resources_t *r)
{
  json_object *mem, *cpu, *pids, *blkio;
  char fb[128];
  if (get_object (c, res, "memory", RF ("memory"), &mem) < 0
      || get_object (c, res, "cpu", RF ("cpu"), &cpu) < 0
      || get_object (c, res, "pids", RF ("pids"), &pids) < 0
      || get_object (c, res, "blockIO", RF ("blockIO"), &blkio) < 0)
    return -1;
  if (parse_memory (c, mem, r) < 0 || parse_cpu (c, cpu, r) < 0 || parse_blkio (c, blkio, r) < 0)
    return -1;
  if (get_int (c, pids, "limit", RF ("pids.limit"), &r->has_pids_limit, &r->pids_limit) < 0)
    return -1;
  if (parse_hugepages (c, res, r) < 0 || parse_unified (c, res, r) < 0)
    return -1;
  if (refuse_present (c, res, "network", "network",
                      "net_cls and net_prio are not supported (this runtime does not join them)")
          < 0
      || refuse_present (c, res, "rdma", "rdma", "the rdma controller is not supported") < 0)
    return -1;
  return parse_device_rules (c, res, r);
}

static int
parse_resources (ctx_t *c, json_object *linux_obj, rt_spec_t *s)
{
  json_object *res;
  if (get_object (c, linux_obj, "resources", "linux.resources", &res) < 0)
    return -1;
  if (res == NULL)
    return 0;
  return parse_resources_object (c, res, &s->resources);
}

/* ---- linux.seccomp ------------------------------------------------------------------------- */

static int
parse_action (ctx_t *c, json_object *obj, const char *key, const char *field,
              const char *ret_key, const char *ret_field, uint32_t *out)
{
  cleanup_free char *name = NULL;
  const char *why;
  uint64_t ret = 0;
  bool has_ret = false;
  if (get_string (c, obj, key, field, true, &name) < 0)
    return -1;
  if (get_uint (c, obj, ret_key, ret_field, false, 0xffff, &has_ret, &ret) < 0)
    return -1;
  if (rt_seccomp_action (name, has_ret, (uint32_t) ret, out, &why) < 0)
    return rt_make_error (c->err, 0, "%s: %s: %s `%s`", c->file, field, why, name);
  return 0;
}

static int
parse_seccomp_arg (ctx_t *c, json_object *e, size_t i, size_t k, rt_seccomp_arg_t *a)
{
  char field[96];
  cleanup_free char *op = NULL;
  uint64_t v;
  if (e == NULL || !json_object_is_type (e, json_type_object))
    return rt_make_error (c->err, 0, "%s: linux.seccomp.syscalls[%zu].args[%zu]: must be an object",
                          c->file, i, k);
  snprintf (field, sizeof field, "linux.seccomp.syscalls[%zu].args[%zu].index", i, k);
  if (get_uint (c, e, "index", field, true, 5, NULL, &v) < 0)
    return -1;
  a->index = (unsigned) v;
  snprintf (field, sizeof field, "linux.seccomp.syscalls[%zu].args[%zu].value", i, k);
  if (get_uint (c, e, "value", field, true, UINT64_MAX, NULL, &a->value) < 0)
    return -1;
  snprintf (field, sizeof field, "linux.seccomp.syscalls[%zu].args[%zu].valueTwo", i, k);
  if (get_uint (c, e, "valueTwo", field, false, UINT64_MAX, NULL, &a->value_two) < 0)
    return -1;
  snprintf (field, sizeof field, "linux.seccomp.syscalls[%zu].args[%zu].op", i, k);
  if (get_string (c, e, "op", field, true, &op) < 0)
    return -1;
  a->op = rt_seccomp_op (op);
  if (a->op < 0)
    return rt_make_error (c->err, 0, "%s: %s: unknown operator `%s`", c->file, field, op);
  return 0;
}

static int
parse_seccomp_rule (ctx_t *c, json_object *e, size_t i, rt_seccomp_rule_t *r)
{
  char field[96], ret_field[96];
  json_object *args;
  size_t k, n;
  if (e == NULL || !json_object_is_type (e, json_type_object))
    return rt_make_error (c->err, 0, "%s: linux.seccomp.syscalls[%zu]: must be an object", c->file,
                          i);
  snprintf (field, sizeof field, "linux.seccomp.syscalls[%zu].names", i);
  if (get_strv (c, e, "names", field, true, &r->names, &n) < 0)
    return -1;
  if (n == 0)
    return field_error (c, field, "must not be empty");
  snprintf (field, sizeof field, "linux.seccomp.syscalls[%zu].action", i);
  snprintf (ret_field, sizeof ret_field, "linux.seccomp.syscalls[%zu].errnoRet", i);
  if (parse_action (c, e, "action", field, "errnoRet", ret_field, &r->action) < 0)
    return -1;
  args = get (e, "args");
  if (args == NULL || json_object_is_type (args, json_type_null))
    return 0;
  snprintf (field, sizeof field, "linux.seccomp.syscalls[%zu].args", i);
  if (!json_object_is_type (args, json_type_array))
    return field_error (c, field, "must be an array");
  n = json_object_array_length (args);
  r->args = calloc (n + 1, sizeof (rt_seccomp_arg_t));
  if (r->args == NULL)
    return rt_make_error (c->err, errno, "calloc");
  for (k = 0; k < n; k++)
    {
      if (parse_seccomp_arg (c, json_object_array_get_idx (args, k), i, k, &r->args[k]) < 0)
        return -1;
      r->n_args = k + 1;
    }
  return 0;
}

/* SCMP_ACT_NOTIFY needs an agent to send the listener descriptor to; runc refuses it as the
 * default action too (the runtime's own syscalls after the load would wait on the agent). */
static int
check_notify (ctx_t *c, rt_seccomp_t *sc)
{
  if (sc->default_action == SCMP_ACT_NOTIFY)
    return field_error (c, "linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action");
  if (sc->notify && (sc->listener_path == NULL || sc->listener_path[0] == '\0'))
    return field_error (c, "linux.seccomp.listenerPath", "needed by SCMP_ACT_NOTIFY");
  return 0;
}

static int
parse_seccomp_flags (ctx_t *c, json_object *obj, rt_seccomp_t *sc)
{
  cleanup_free char **flags = NULL;
  size_t i;
  if (get_strv (c, obj, "flags", "linux.seccomp.flags", false, &flags, NULL) < 0)
    return -1;
  for (i = 0; flags && flags[i]; i++)
    {
      const char *why;
      unsigned f;
      if (rt_seccomp_flag (flags[i], &f, &why) < 0)
        rt_make_error (c->err, 0, "%s: linux.seccomp.flags[%zu]: %s `%s`", c->file, i, why,
                       flags[i]);
      else
        sc->flags |= f;
    }
  for (i = 0; flags && flags[i]; i++)
    free (flags[i]);
  return c->err->msg != NULL ? -1 : 0;
}

/* linux.seccomp: defaultAction, defaultErrnoRet, architectures, syscalls, flags, listenerPath
 * and listenerMetadata. */
static int
parse_seccomp (ctx_t *c, json_object *linux_obj, rt_seccomp_t *sc)
{
  json_object *obj, *calls;
  size_t i, n;
  if (get_object (c, linux_obj, "seccomp", "linux.seccomp", &obj) < 0)
    return -1;
  if (obj == NULL)
    return 0;
  sc->given = true;
  if (parse_action (c, obj, "defaultAction", "linux.seccomp.defaultAction", "defaultErrnoRet",
                    "linux.seccomp.defaultErrnoRet", &sc->default_action)
      < 0)
    return -1;
  if (get_strv (c, obj, "architectures", "linux.seccomp.architectures", false,
                &sc->architectures, NULL)
      < 0)
    return -1;
  if (get_string (c, obj, "listenerPath", "linux.seccomp.listenerPath", false,
                  &sc->listener_path)
          < 0
      || get_string (c, obj, "listenerMetadata", "linux.seccomp.listenerMetadata", false,
                     &sc->listener_metadata)
             < 0)
    return -1;
  if (parse_seccomp_flags (c, obj, sc) < 0)
    return -1;
  calls = get (obj, "syscalls");
  if (calls == NULL || json_object_is_type (calls, json_type_null))
    return 0;
  if (!json_object_is_type (calls, json_type_array))
    return field_error (c, "linux.seccomp.syscalls", "must be an array");
  n = json_object_array_length (calls);
  sc->rules = calloc (n + 1, sizeof (rt_seccomp_rule_t));
  if (sc->rules == NULL)
    return rt_make_error (c->err, errno, "calloc");
  for (i = 0; i < n; i++)
    {
      sc->n_rules = i + 1;
      if (parse_seccomp_rule (c, json_object_array_get_idx (calls, i), i, &sc->rules[i]) < 0)
        return -1;
      if (sc->rules[i].action == SCMP_ACT_NOTIFY)
        sc->notify = true;
    }
  return check_notify (c, sc);
}

/* ---- linux.sysctl ------------------------------------------------------------------------- */

static int
parse_sysctl (ctx_t *c, json_object *linux_obj, rt_spec_t *s)
{
  json_object *obj;
  size_t n = 0;
  if (get_object (c, linux_obj, "sysctl", "linux.sysctl", &obj) < 0)
    return -1;
  if (obj == NULL)
    return 0;
  s->sysctls = calloc ((size_t) json_object_object_length (obj) + 1, sizeof (rt_sysctl_t));
  if (s->sysctls == NULL)
    return rt_make_error (c->err, errno, "calloc");
  json_object_object_foreach (obj, key, val)
    {
      if (!json_object_is_type (val, json_type_string))
        return rt_make_error (c->err, 0, "%s: linux.sysctl: `%s`: the value must be a string",
                              c->file, key);
      s->sysctls[n].key = strdup (key);
      s->sysctls[n].value = strdup (json_object_get_string (val));
      s->n_sysctls = ++n;
      if (s->sysctls[n - 1].key == NULL || s->sysctls[n - 1].value == NULL)
        return rt_make_error (c->err, errno, "strdup");
    }
  return 0;
}

/* KEY in its dotted form: a key written with slashes ("net/ipv4/conf/eth0.100/forwarding") has
 * its slashes and dots swapped, as runc reads it. */
static void
sysctl_dotted (const char *key, char *out, size_t len)
{
  bool slashes = strchr (key, '/') != NULL;
  size_t i;
  for (i = 0; key[i] != '\0' && i + 1 < len; i++)
    out[i] = !slashes ? key[i] : key[i] == '/' ? '.' : key[i] == '.' ? '/' : key[i];
  out[i] = '\0';
}

/* True when PATH is the network namespace this runtime runs in ("the host's", for runc). */
static bool
is_current_netns (const char *path)
{
  struct stat a, b;
  return stat ("/proc/self/ns/net", &a) == 0 && stat (path, &b) == 0 && a.st_dev == b.st_dev
         && a.st_ino == b.st_ino;
}

/* runc's rule: a sysctl is only written when the container has its own instance of it. IPC
 * keys need an ipc namespace, net.* a network namespace other than the runtime's, and of the
 * uts keys only kernel.domainname (kernel.hostname is the `hostname` field's). The rest is the
 * host's, and refused. Keys may not climb out of /proc/sys. */
static int
check_sysctls (ctx_t *c, const rt_spec_t *s)
{
  static const char *const ipc_keys[] = { "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni",
                                          "kernel.sem",    "kernel.shmall", "kernel.shmmax",
                                          "kernel.shmmni", "kernel.shm_rmid_forced" };
  size_t i, k;
  for (i = 0; i < s->n_sysctls; i++)
    {
      const char *key = s->sysctls[i].key;
      char dotted[256];
      bool ipc = false;
      const char *why = NULL;
      sysctl_dotted (key, dotted, sizeof dotted);
      for (k = 0; k < sizeof (ipc_keys) / sizeof (ipc_keys[0]); k++)
        ipc = ipc || strcmp (dotted, ipc_keys[k]) == 0;
      if (key[0] == '\0' || key[0] == '/' || key[0] == '.' || strstr (key, "..") != NULL
          || strstr (key, "//") != NULL)
        why = "is not a sysctl name";
      else if (ipc || strncmp (dotted, "fs.mqueue.", 10) == 0)
        why = s->ns[RT_NS_IPC].wanted ? NULL : "needs an ipc namespace";
      else if (strncmp (dotted, "net.", 4) == 0)
        why = !s->ns[RT_NS_NETWORK].wanted ? "needs a network namespace"
              : s->ns[RT_NS_NETWORK].path != NULL && is_current_netns (s->ns[RT_NS_NETWORK].path)
                  ? "is not allowed in the host's network namespace"
                  : NULL;
      else if (strcmp (dotted, "kernel.domainname") == 0)
        why = s->ns[RT_NS_UTS].wanted ? NULL : "needs a uts namespace";
      else if (strcmp (dotted, "kernel.hostname") == 0)
        why = "conflicts with the hostname field";
      else
        why = "is not namespaced (it would change the host)";
      if (why != NULL)
        return rt_make_error (c->err, 0, "%s: linux.sysctl: `%s` %s", c->file, key, why);
    }
  return 0;
}

/* linux.personality: the LINUX or LINUX32 execution domain; the spec defines no flags yet. */
static int
parse_personality (ctx_t *c, json_object *linux_obj, rt_spec_t *s)
{
  json_object *obj;
  cleanup_free char *domain = NULL;
  cleanup_free char **flags = NULL;
  size_t n = 0;
  if (get_object (c, linux_obj, "personality", "linux.personality", &obj) < 0)
    return -1;
  if (obj == NULL)
    return 0;
  if (get_string (c, obj, "domain", "linux.personality.domain", true, &domain) < 0)
    return -1;
  if (strcmp (domain, "LINUX") == 0)
    s->personality = 0x0000; /* PER_LINUX */
  else if (strcmp (domain, "LINUX32") == 0)
    s->personality = 0x0008; /* PER_LINUX32 */
  else
    return rt_make_error (c->err, 0, "%s: linux.personality.domain: unknown domain `%s`", c->file,
                          domain);
  if (get_strv (c, obj, "flags", "linux.personality.flags", false, &flags, &n) < 0)
    return -1;
  if (n > 0)
    {
      int ret = rt_make_error (c->err, 0, "%s: linux.personality.flags[0]: unknown flag `%s`",
                               c->file, flags[0]);
      size_t i;
      for (i = 0; i < n; i++)
        free (flags[i]);
      return ret;
    }
  s->has_personality = true;
  return 0;
}

/* linux fields this runtime does not apply: refused, naming them. */
static int
refuse_linux_fields (ctx_t *c, json_object *linux_obj)
{
  static const struct
  {
    const char *key, *why;
  } fields[] = {
    { "mountLabel", "SELinux is not supported" },
    { "intelRdt", "Intel RDT (resctrl) is not supported" },
    { "timeOffsets", "time namespaces are not supported" },
    { "netDevices", "moving network devices into the container is not supported" },
    { "memoryPolicy", "not supported (set_mempolicy is not applied)" },
  };
  size_t k;
  for (k = 0; k < sizeof (fields) / sizeof (fields[0]); k++)
    {
      json_object *v = get (linux_obj, fields[k].key);
      char field[64];
      if (v == NULL || json_object_is_type (v, json_type_null)
          || (json_object_is_type (v, json_type_string) && json_object_get_string_len (v) == 0))
        continue;
      snprintf (field, sizeof field, "linux.%s", fields[k].key);
      return field_error (c, field, fields[k].why);
    }
  return 0;
}

static int
parse_linux (ctx_t *c, json_object *top, rt_spec_t *s)
{
  json_object *linux_obj;
  if (get_object (c, top, "linux", "linux", &linux_obj) < 0)
    return -1;
  if (linux_obj == NULL)
    return 0;
  if (get_string (c, linux_obj, "cgroupsPath", "linux.cgroupsPath", false, &s->cgroups_path) < 0
      || parse_resources (c, linux_obj, s) < 0)
    return -1;
  if (parse_namespaces (c, linux_obj, s) < 0 || parse_seccomp (c, linux_obj, &s->seccomp) < 0)
    return -1;
  if (parse_idmap (c, linux_obj, "uidMappings", "linux.uidMappings", &s->uid_map, &s->n_uid_map)
          < 0
      || parse_idmap (c, linux_obj, "gidMappings", "linux.gidMappings", &s->gid_map,
                      &s->n_gid_map)
             < 0)
    return -1;
  /* runc's rules: mappings only with a user namespace; a new one needs both maps (a joined one
   * has its own). */
  if ((s->n_uid_map > 0 || s->n_gid_map > 0) && !s->ns[RT_NS_USER].wanted)
    return field_error (c, "linux.uidMappings", "given without a user namespace");
  if (s->ns[RT_NS_USER].wanted && s->ns[RT_NS_USER].path == NULL
      && (s->n_uid_map == 0 || s->n_gid_map == 0))
    return field_error (c, s->n_uid_map == 0 ? "linux.uidMappings" : "linux.gidMappings",
                        "a new user namespace needs uid and gid mappings");
  if (s->ns[RT_NS_USER].path != NULL && (s->n_uid_map > 0 || s->n_gid_map > 0))
    return field_error (c, "linux.uidMappings", "given for a user namespace that is joined");
  if (parse_sysctl (c, linux_obj, s) < 0 || check_sysctls (c, s) < 0
      || parse_devices (c, linux_obj, s) < 0 || parse_personality (c, linux_obj, s) < 0
      || refuse_linux_fields (c, linux_obj) < 0)
    return -1;
  if (get_strv (c, linux_obj, "maskedPaths", "linux.maskedPaths", false, &s->masked_paths, NULL)
      < 0)
    return -1;
  if (get_strv (c, linux_obj, "readonlyPaths", "linux.readonlyPaths", false, &s->readonly_paths,
                NULL)
      < 0)
    return -1;
  if (get_string (c, linux_obj, "rootfsPropagation", "linux.rootfsPropagation", false,
                  &s->rootfs_propagation)
      < 0)
    return -1;
  if (s->rootfs_propagation)
    {
      static const char *const ok[] = { "private", "rprivate", "slave", "rslave",
                                        "shared", "rshared", "unbindable", "runbindable" };
      size_t i;
      for (i = 0; i < sizeof (ok) / sizeof (ok[0]); i++)
        if (strcmp (ok[i], s->rootfs_propagation) == 0)
          return 0;
      return field_error (c, "linux.rootfsPropagation", "unknown propagation");
    }
  return 0;
}

/* ---- hooks ------------------------------------------------------------------------------- */

static const char *const hook_names[RT_HOOK_KINDS] = {
  [RT_HOOK_PRESTART] = "prestart",
  [RT_HOOK_CREATE_RUNTIME] = "createRuntime",
  [RT_HOOK_CREATE_CONTAINER] = "createContainer",
  [RT_HOOK_START_CONTAINER] = "startContainer",
  [RT_HOOK_POSTSTART] = "poststart",
  [RT_HOOK_POSTSTOP] = "poststop",
};

const char *
rt_hook_kind_name (enum rt_hook_kind k)
{
  return hook_names[k];
}

static int
parse_hook (ctx_t *c, json_object *e, const char *kind, size_t i, rt_hook_t *h)
{
  char field[96];
  uint64_t v = 0;
  bool present;
  if (e == NULL || !json_object_is_type (e, json_type_object))
    return rt_make_error (c->err, 0, "%s: hooks.%s[%zu]: must be an object", c->file, kind, i);
  snprintf (field, sizeof field, "hooks.%s[%zu].path", kind, i);
  if (get_string (c, e, "path", field, true, &h->path) < 0)
    return -1;
  if (h->path[0] != '/')
    return field_error (c, field, "must be an absolute path");
  snprintf (field, sizeof field, "hooks.%s[%zu].args", kind, i);
  if (get_strv (c, e, "args", field, false, &h->args, NULL) < 0)
    return -1;
  snprintf (field, sizeof field, "hooks.%s[%zu].env", kind, i);
  if (get_strv (c, e, "env", field, false, &h->env, NULL) < 0)
    return -1;
  snprintf (field, sizeof field, "hooks.%s[%zu].timeout", kind, i);
  if (get_uint (c, e, "timeout", field, false, 86400 * 365, &present, &v) < 0)
    return -1;
  if (present && v == 0)
    return field_error (c, field, "must be greater than zero");
  h->timeout = (int) v;
  return 0;
}

static int
parse_hooks_object (ctx_t *c, json_object *hooks, rt_hook_list_t lists[RT_HOOK_KINDS])
{
  int k;
  for (k = 0; k < RT_HOOK_KINDS; k++)
    {
      json_object *arr = get (hooks, hook_names[k]);
      char field[64];
      size_t n, i;
      if (arr == NULL || json_object_is_type (arr, json_type_null))
        continue;
      snprintf (field, sizeof field, "hooks.%s", hook_names[k]);
      if (!json_object_is_type (arr, json_type_array))
        return field_error (c, field, "must be an array");
      n = json_object_array_length (arr);
      lists[k].v = calloc (n + 1, sizeof (rt_hook_t));
      if (lists[k].v == NULL)
        return rt_make_error (c->err, errno, "calloc");
      for (i = 0; i < n; i++)
        {
          lists[k].n = i + 1;
          if (parse_hook (c, json_object_array_get_idx (arr, i), hook_names[k], i, &lists[k].v[i])
              < 0)
            return -1;
        }
    }
  return 0;
}

/* hooks; poststart and poststop are also kept as JSON, for state.json: `start` and `delete` run
 * them without the bundle. */
static int
parse_hooks (ctx_t *c, json_object *top, rt_spec_t *s)
{
  json_object *hooks, *post = NULL;
  if (get_object (c, top, "hooks", "hooks", &hooks) < 0)
    return -1;
  if (hooks == NULL)
    return 0;
  if (parse_hooks_object (c, hooks, s->hooks) < 0)
    return -1;
  if (s->hooks[RT_HOOK_POSTSTART].n == 0 && s->hooks[RT_HOOK_POSTSTOP].n == 0)
    return 0;
  post = json_object_new_object ();
  if (post == NULL)
    return rt_make_error (c->err, ENOMEM, "json_object_new_object");
  if (s->hooks[RT_HOOK_POSTSTART].n > 0)
    json_object_object_add (post, "poststart", json_object_get (get (hooks, "poststart")));
  if (s->hooks[RT_HOOK_POSTSTOP].n > 0)
    json_object_object_add (post, "poststop", json_object_get (get (hooks, "poststop")));
  s->post_hooks_json = strdup (json_object_to_json_string_ext (post, JSON_C_TO_STRING_PLAIN));
  json_object_put (post);
  if (s->post_hooks_json == NULL)
    return rt_make_error (c->err, errno, "strdup");
  return 0;
}

int
rt_hooks_from_json (const char *json, rt_hook_list_t lists[RT_HOOK_KINDS], rt_error_t *err)
{
  ctx_t c = { .file = "state.json", .err = err, .pfx = "", .rpfx = "" };
  json_object *o = json_tokener_parse (json);
  int ret;
  memset (lists, 0, RT_HOOK_KINDS * sizeof lists[0]);
  if (o == NULL || !json_object_is_type (o, json_type_object))
    {
      json_object_put (o);
      return rt_make_error (err, 0, "state.json: hooks: malformed");
    }
  ret = parse_hooks_object (&c, o, lists);
  json_object_put (o);
  if (ret < 0)
    rt_hooks_release (lists);
  return ret;
}

void
rt_hooks_release (rt_hook_list_t lists[RT_HOOK_KINDS])
{
  size_t i;
  int k;
  for (k = 0; k < RT_HOOK_KINDS; k++)
    {
      for (i = 0; i < lists[k].n; i++)
        {
          free (lists[k].v[i].path);
          free_strv (lists[k].v[i].args);
          free_strv (lists[k].v[i].env);
        }
      free (lists[k].v);
      lists[k].v = NULL;
      lists[k].n = 0;
    }
}

static int
parse_annotations (ctx_t *c, json_object *top, rt_spec_t *s)
{
  json_object *a;
  if (get_object (c, top, "annotations", "annotations", &a) < 0)
    return -1;
  s->annotations_json = strdup (a ? json_object_to_json_string_ext (a, JSON_C_TO_STRING_PLAIN)
                                  : "{}");
  if (s->annotations_json == NULL)
    return rt_make_error (c->err, errno, "strdup");
  return 0;
}

static int
parse_top (ctx_t *c, json_object *top, rt_spec_t *s)
{
  if (!json_object_is_type (top, json_type_object))
    return rt_make_error (c->err, 0, "%s: the top level must be an object", c->file);
  if (get_string (c, top, "ociVersion", "ociVersion", true, &s->oci_version) < 0)
    return -1;
  if (strncmp (s->oci_version, "1.", 2) != 0)
    return field_error (c, "ociVersion", "unsupported version (want 1.x)");
  if (parse_root (c, top, s) < 0 || parse_process (c, top, s) < 0)
    return -1;
  if (get_string (c, top, "hostname", "hostname", false, &s->hostname) < 0
      || get_string (c, top, "domainname", "domainname", false, &s->domainname) < 0)
    return -1;
  if (parse_mounts (c, top, s) < 0 || parse_linux (c, top, s) < 0
      || parse_annotations (c, top, s) < 0 || parse_hooks (c, top, s) < 0)
    return -1;
  return 0;
}

/* Reads and parses FILE; a syntax error names the file and json-c's description. */
static int
parse_file (const char *file, json_object **out, rt_error_t *err)
{
  cleanup_free char *text = NULL;
  struct json_tokener *tok;
  *out = NULL;
  enum json_tokener_error jerr;
  size_t len = 0;
  FILE *f;
  /* "-" is stdin, read from descriptor 0 (a socket cannot be reopened through /dev/stdin). */
  if (strcmp (file, "-") == 0)
    {
      int fd = fcntl (0, F_DUPFD_CLOEXEC, 3);
      f = fd < 0 ? NULL : fdopen (fd, "r");
      if (f == NULL && fd >= 0)
        close (fd);
    }
  else
    f = fopen (file, "re");
  if (f == NULL)
    return rt_make_error (err, errno, "open %s", file);
  if (getdelim (&text, &len, '\0', f) < 0 && (!feof (f) || (text = strdup ("")) == NULL))
    {
      int e = errno;
      fclose (f);
      return rt_make_error (err, e, "read %s", file);
    }
  fclose (f);
  tok = json_tokener_new ();
  if (tok == NULL)
    return rt_make_error (err, ENOMEM, "json_tokener_new");
  *out = json_tokener_parse_ex (tok, text, (int) strlen (text));
  jerr = json_tokener_get_error (tok);
  if (*out != NULL && jerr == json_tokener_success)
    {
      /* Only white space may follow the top-level value. */
      const char *rest = text + json_tokener_get_parse_end (tok);
      while (*rest == ' ' || *rest == '\n' || *rest == '\t' || *rest == '\r')
        rest++;
      if (*rest != '\0')
        jerr = json_tokener_error_parse_unexpected;
    }
  json_tokener_free (tok);
  if (jerr == json_tokener_continue || (*out == NULL && jerr == json_tokener_success))
    return rt_make_error (err, 0, "%s: malformed JSON: unexpected end of file", file);
  if (jerr != json_tokener_success)
    {
      json_object_put (*out);
      *out = NULL;
      return rt_make_error (err, 0, "%s: malformed JSON: %s", file, json_tokener_error_desc (jerr));
    }
  return 0;
}

int
rt_spec_load (const char *file, rt_spec_t **out, rt_error_t *err)
{
  ctx_t c = { .file = file, .err = err, .pfx = "process.", .rpfx = "linux.resources." };
  json_object *top = NULL;
  rt_spec_t *s;
  int ret;

  *out = NULL;
  if (parse_file (file, &top, err) < 0)
    return -1;
  s = calloc (1, sizeof *s);
  if (s == NULL)
    {
      json_object_put (top);
      return rt_make_error (err, errno, "calloc");
    }
  ret = parse_top (&c, top, s);
  json_object_put (top);
  if (ret < 0)
    {
      rt_spec_free (s);
      return ret;
    }
  *out = s;
  return 0;
}

/* Forgets the process fields of S (before a --process file replaces them). */
static void
clear_process (rt_spec_t *s)
{
  free_strv (s->args);
  free_strv (s->env);
  free (s->cwd);
  free (s->additional_gids);
  free (s->rlimits);
  s->args = s->env = NULL;
  s->cwd = NULL;
  s->additional_gids = NULL;
  s->n_additional_gids = 0;
  s->rlimits = NULL;
  s->n_rlimits = 0;
  s->uid = 0;
  s->gid = 0;
  s->has_umask = false;
  s->no_new_privileges = false;
  s->terminal = false;
  s->ioprio = -1;
  s->console_height = s->console_width = 0;
  s->has_oom_score_adj = false;
  memset (&s->caps, 0, sizeof s->caps);
}

int
rt_spec_load_process (const char *file, rt_spec_t *spec, rt_error_t *err)
{
  ctx_t c = { .file = file, .err = err, .pfx = "", .rpfx = "linux.resources." };
  json_object *top = NULL;
  int ret;
  if (parse_file (file, &top, err) < 0)
    return -1;
  clear_process (spec);
  if (!json_object_is_type (top, json_type_object))
    ret = rt_make_error (err, 0, "%s: the top level must be an object", file);
  else
    ret = parse_process_object (&c, top, spec);
  json_object_put (top);
  return ret;
}

void
rt_resources_release (rt_resources_t *r)
{
  size_t i;
  int t;
  free (r->cpuset_cpus);
  free (r->cpuset_mems);
  free (r->blkio_weight_devices);
  for (t = 0; t < RT_THROTTLE_KINDS; t++)
    free (r->throttle[t]);
  for (i = 0; i < r->n_hugepages; i++)
    free (r->hugepages[i].page_size);
  free (r->hugepages);
  for (i = 0; i < r->n_unified; i++)
    {
      free (r->unified[i].key);
      free (r->unified[i].value);
    }
  free (r->unified);
  free (r->devices);
  memset (r, 0, sizeof *r);
}

int
rt_resources_load (const char *file, rt_resources_t *out, rt_error_t *err)
{
  ctx_t c = { .file = file, .err = err, .pfx = "", .rpfx = "" };
  json_object *top = NULL;
  int ret;
  memset (out, 0, sizeof *out);
  if (parse_file (file, &top, err) < 0)
    return -1;
  if (!json_object_is_type (top, json_type_object))
    ret = rt_make_error (err, 0, "%s: the top level must be an object", file);
  else
    ret = parse_resources_object (&c, top, out);
  json_object_put (top);
  if (ret < 0)
    rt_resources_release (out);
  return ret;
}

void
rt_spec_free (rt_spec_t *s)
{
  size_t i;
  if (s == NULL)
    return;
  free (s->oci_version);
  free (s->root_path);
  free_strv (s->args);
  free_strv (s->env);
  free (s->cwd);
  free (s->additional_gids);
  free (s->rlimits);
  free (s->hostname);
  free (s->domainname);
  for (i = 0; i < s->n_mounts; i++)
    {
      free (s->mounts[i].destination);
      free (s->mounts[i].type);
      free (s->mounts[i].source);
      free_strv (s->mounts[i].options);
      free (s->mounts[i].uid_map);
      free (s->mounts[i].gid_map);
    }
  free (s->mounts);
  for (i = 0; i < RT_NS_COUNT; i++)
    free (s->ns[i].path);
  free (s->uid_map);
  free (s->gid_map);
  free_strv (s->masked_paths);
  free_strv (s->readonly_paths);
  free (s->rootfs_propagation);
  for (i = 0; i < s->n_sysctls; i++)
    {
      free (s->sysctls[i].key);
      free (s->sysctls[i].value);
    }
  free (s->sysctls);
  for (i = 0; i < s->n_devices; i++)
    free (s->devices[i].path);
  free (s->devices);
  rt_resources_release (&s->resources);
  free (s->cgroups_path);
  free (s->annotations_json);
  rt_hooks_release (s->hooks);
  free (s->post_hooks_json);
  rt_seccomp_release (&s->seccomp);
  free (s);
}
