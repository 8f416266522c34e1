#include "state.h"

#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OCI_VERSION "1.2.0"

const char *
rt_status_name (enum rt_status s)
{
  switch (s)
    {
    case RT_STATUS_CREATED:
      return "created";
    case RT_STATUS_RUNNING:
      return "running";
    case RT_STATUS_PAUSED:
      return "paused";
    case RT_STATUS_STOPPED:
    default:
      return "stopped";
    }
}

int
rt_check_id (const char *id, rt_error_t *err)
{
  size_t i, n = strlen (id);
  if (n == 0 || n > 128 || id[0] == '.')
    return rt_make_error (err, 0, "invalid container id `%s`", id);
  for (i = 0; i < n; i++)
    {
      char ch = id[i];
      if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')
            || ch == '_' || ch == '-' || ch == '.'))
        return rt_make_error (err, 0, "invalid container id `%s`", id);
    }
  return 0;
}

char *
rt_state_dir (const char *root, const char *id)
{
  char *p = NULL;
  if (asprintf (&p, "%s/%s", root, id) < 0)
    return NULL;
  return p;
}

static int
mkdir_p (const char *path, mode_t mode, rt_error_t *err)
{
  cleanup_free char *copy = strdup (path);
  char *p;
  if (copy == NULL)
    return rt_make_error (err, errno, "strdup");
  for (p = copy + 1; *p; p++)
    if (*p == '/')
      {
        *p = '\0';
        if (mkdir (copy, mode) < 0 && errno != EEXIST)
          return rt_make_error (err, errno, "mkdir `%s`", copy);
        *p = '/';
      }
  if (mkdir (copy, mode) < 0 && errno != EEXIST)
    return rt_make_error (err, errno, "mkdir `%s`", copy);
  return 0;
}

int
rt_state_dir_create (const char *root, const char *id, rt_error_t *err)
{
  cleanup_free char *dir = rt_state_dir (root, id);
  if (dir == NULL)
    return rt_make_error (err, errno, "asprintf");
  if (mkdir_p (root, 0700, err) < 0)
    return -1;
  if (mkdir (dir, 0700) < 0)
    {
      if (errno == EEXIST)
        return rt_make_error (err, 0, "container `%s` already exists", id);
      return rt_make_error (err, errno, "mkdir `%s`", dir);
    }
  return 0;
}

int
rt_state_dir_remove (const char *root, const char *id, rt_error_t *err)
{
  cleanup_free char *dir = rt_state_dir (root, id);
  DIR *d;
  struct dirent *de;
  int dfd;
  if (dir == NULL)
    return rt_make_error (err, errno, "asprintf");
  d = opendir (dir);
  if (d == NULL)
    {
      if (errno == ENOENT)
        return 0;
      return rt_make_error (err, errno, "opendir `%s`", dir);
    }
  dfd = dirfd (d);
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (unlinkat (dfd, de->d_name, 0) < 0 && errno != ENOENT)
        {
          int e = errno;
          closedir (d);
          return rt_make_error (err, e, "unlink `%s/%s`", dir, de->d_name);
        }
    }
  closedir (d);
  if (rmdir (dir) < 0 && errno != ENOENT)
    return rt_make_error (err, errno, "rmdir `%s`", dir);
  return 0;
}

int
rt_state_write (const char *root, const rt_state_t *st, rt_error_t *err)
{
  cleanup_free char *dir = rt_state_dir (root, st->id);
  cleanup_free char *tmp = NULL, *path = NULL;
  json_object *o = json_object_new_object ();
  json_object *ann;
  const char *text;
  int fd, ret = 0;
  size_t len;

  if (dir == NULL || o == NULL || asprintf (&tmp, "%s/state.json.tmp", dir) < 0
      || asprintf (&path, "%s/state.json", dir) < 0)
    {
      json_object_put (o);
      return rt_make_error (err, ENOMEM, "state of `%s`", st->id);
    }
  json_object_object_add (o, "ociVersion", json_object_new_string (st->oci_version));
  json_object_object_add (o, "id", json_object_new_string (st->id));
  json_object_object_add (o, "pid", json_object_new_int64 (st->pid));
  json_object_object_add (o, "bundle", json_object_new_string (st->bundle));
  json_object_object_add (o, "created", json_object_new_string (st->created));
  json_object_object_add (o, "startTime", json_object_new_uint64 (st->start_time));
  if (st->cgroup_path != NULL)
    json_object_object_add (o, "cgroupPath", json_object_new_string (st->cgroup_path));
  if (st->cgroup_extra != 0)
    json_object_object_add (o, "cgroupExtra", json_object_new_int64 (st->cgroup_extra));
  if (st->rootfs != NULL)
    json_object_object_add (o, "rootfs", json_object_new_string (st->rootfs));
  if (st->post_hooks_json != NULL)
    {
      json_object *hooks = json_tokener_parse (st->post_hooks_json);
      if (hooks != NULL)
        json_object_object_add (o, "hooks", hooks);
    }
  ann = json_tokener_parse (st->annotations_json ? st->annotations_json : "{}");
  json_object_object_add (o, "annotations", ann ? ann : json_object_new_object ());
  text = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  len = strlen (text);

  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    ret = rt_make_error (err, errno, "open `%s`", tmp);
  else
    {
      if (write (fd, text, len) != (ssize_t) len)
        ret = rt_make_error (err, errno ? errno : EIO, "write `%s`", tmp);
      if (close (fd) < 0 && ret == 0)
        ret = rt_make_error (err, errno, "close `%s`", tmp);
      if (ret == 0 && rename (tmp, path) < 0)
        ret = rt_make_error (err, errno, "rename `%s`", tmp);
      if (ret < 0)
        unlink (tmp);
    }
  json_object_put (o);
  return ret;
}

static char *
dup_field (json_object *o, const char *key)
{
  json_object *v;
  if (!json_object_object_get_ex (o, key, &v) || !json_object_is_type (v, json_type_string))
    return NULL;
  return strdup (json_object_get_string (v));
}

int
rt_state_read (const char *root, const char *id, rt_state_t **out, rt_error_t *err)
{
  cleanup_free char *dir = rt_state_dir (root, id);
  cleanup_free char *path = NULL;
  json_object *o, *v;
  rt_state_t *st;

  *out = NULL;
  if (rt_check_id (id, err) < 0)
    return -1;
  if (dir == NULL || asprintf (&path, "%s/state.json", dir) < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  if (access (dir, F_OK) < 0)
    return rt_make_error (err, 0, "container `%s` does not exist", id);
  o = json_object_from_file (path);
  if (o == NULL)
    return rt_make_error (err, 0, "%s: unreadable state file", path);
  st = calloc (1, sizeof *st);
  if (st == NULL)
    {
      json_object_put (o);
      return rt_make_error (err, errno, "calloc");
    }
  st->id = strdup (id);
  st->bundle = dup_field (o, "bundle");
  st->oci_version = dup_field (o, "ociVersion");
  st->created = dup_field (o, "created");
  st->annotations_json
      = strdup (json_object_object_get_ex (o, "annotations", &v)
                    ? json_object_to_json_string_ext (v, JSON_C_TO_STRING_PLAIN)
                    : "{}");
  if (json_object_object_get_ex (o, "pid", &v))
    st->pid = (pid_t) json_object_get_int64 (v);
  if (json_object_object_get_ex (o, "startTime", &v))
    st->start_time = json_object_get_uint64 (v);
  st->cgroup_path = dup_field (o, "cgroupPath");
  if (json_object_object_get_ex (o, "cgroupExtra", &v))
    st->cgroup_extra = (unsigned) json_object_get_int64 (v);
  st->rootfs = dup_field (o, "rootfs");
  if (json_object_object_get_ex (o, "hooks", &v))
    st->post_hooks_json = strdup (json_object_to_json_string_ext (v, JSON_C_TO_STRING_PLAIN));
  json_object_put (o);
  if (st->id == NULL || st->bundle == NULL || st->oci_version == NULL || st->created == NULL
      || st->annotations_json == NULL || st->pid <= 0)
    {
      rt_state_free (st);
      return rt_make_error (err, 0, "%s: incomplete state file", path);
    }
  *out = st;
  return 0;
}

void
rt_state_free (rt_state_t *st)
{
  if (st == NULL)
    return;
  free (st->id);
  free (st->bundle);
  free (st->oci_version);
  free (st->annotations_json);
  free (st->cgroup_path);
  free (st->post_hooks_json);
  free (st->rootfs);
  free (st->created);
  free (st);
}

/* Reads /proc/PID/stat; the state letter and field 22. The command name (field 2) may hold
 * spaces and parentheses, so parsing starts after the last ')'. */
static int
read_proc_stat (pid_t pid, char *state, unsigned long long *start_time)
{
  char path[64], buf[1024];
  char *p;
  ssize_t n;
  int fd, field;
  snprintf (path, sizeof path, "/proc/%d/stat", pid);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  p = strrchr (buf, ')');
  if (p == NULL || p[1] != ' ')
    {
      errno = EINVAL;
      return -1;
    }
  p += 2; /* field 3, the state */
  *state = *p;
  for (field = 3; field < 22 && p; field++)
    {
      p = strchr (p, ' ');
      if (p)
        p++;
    }
  if (p == NULL)
    {
      errno = EINVAL;
      return -1;
    }
  *start_time = strtoull (p, NULL, 10);
  return 0;
}

int
rt_proc_start_time (pid_t pid, unsigned long long *out)
{
  char state;
  return read_proc_stat (pid, &state, out);
}

bool
rt_pid_running (pid_t pid)
{
  unsigned long long t;
  char state;
  if (read_proc_stat (pid, &state, &t) < 0)
    return false;
  return state != 'Z' && state != 'X';
}

bool
rt_state_alive (const rt_state_t *st)
{
  unsigned long long t;
  char state;
  if (read_proc_stat (st->pid, &state, &t) < 0)
    return false;
  return t == st->start_time && state != 'Z' && state != 'X';
}

enum rt_status
rt_state_status (const char *root, const rt_state_t *st)
{
  cleanup_free char *dir = rt_state_dir (root, st->id);
  char fifo[4096];
  if (!rt_state_alive (st))
    return RT_STATUS_STOPPED;
  snprintf (fifo, sizeof fifo, "%s/exec.fifo", dir ? dir : "");
  /* A created container can be paused too (runc): the freezer comes first. */
  if (st->cgroup_path != NULL && rt_cgroup_frozen (st->cgroup_path))
    return RT_STATUS_PAUSED;
  if (access (fifo, F_OK) == 0)
    return RT_STATUS_CREATED;
  return RT_STATUS_RUNNING;
}

int
rt_state_print (const char *root, const rt_state_t *st, rt_error_t *err)
{
  enum rt_status status = rt_state_status (root, st);
  json_object *o = json_object_new_object ();
  json_object *ann;
  if (o == NULL)
    return rt_make_error (err, ENOMEM, "json");
  json_object_object_add (o, "ociVersion", json_object_new_string (st->oci_version));
  json_object_object_add (o, "id", json_object_new_string (st->id));
  json_object_object_add (o, "status", json_object_new_string (rt_status_name (status)));
  json_object_object_add (o, "pid", json_object_new_int64 (status == RT_STATUS_STOPPED ? 0
                                                                                         : st->pid));
  json_object_object_add (o, "bundle", json_object_new_string (st->bundle));
  json_object_object_add (o, "created", json_object_new_string (st->created));
  ann = json_tokener_parse (st->annotations_json);
  json_object_object_add (o, "annotations", ann ? ann : json_object_new_object ());
  if (printf ("%s\n", json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY
                                                           | JSON_C_TO_STRING_NOSLASHESCAPE))
      < 0)
    {
      json_object_put (o);
      return rt_make_error (err, errno, "write state");
    }
  json_object_put (o);
  return 0;
}
