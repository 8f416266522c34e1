/* `features` (runtime-spec features.md, as runc prints it: what this build really supports) and
 * `spec` (a starter config.json, as `runc spec` writes it). */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container.h"
#include "linux.h"
#include "spec.h"

#ifndef SWARM_RUNTIME_VERSION
#define SWARM_RUNTIME_VERSION "0.0.0"
#endif
#define OCI_VERSION_MAX "1.2.0"

static json_object *
strings (const char *const *v, size_t n)
{
  json_object *a = json_object_new_array ();
  size_t i;
  for (i = 0; i < n; i++)
    json_object_array_add (a, json_object_new_string (v[i]));
  return a;
}

static int
compare_strings (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static json_object *
seccomp_features (void)
{
  static const char *const actions[] = {
    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP",
  };
  static const char *const operators[] = {
    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
    "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE",
  };
  static const char *const archs[] = {
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",   "SCMP_ARCH_MIPS",        "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",     "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE",     "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",   "SCMP_ARCH_X32",   "SCMP_ARCH_X86",         "SCMP_ARCH_X86_64",
  };
  static const char *const known_flags[] = {
    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
  };
  /* WAIT_KILLABLE_RECV needs libseccomp 2.6: known, not supported. */
  static const char *const supported_flags[] = {
    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG",
  };
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "enabled", json_object_new_boolean (1));
  json_object_object_add (o, "actions", strings (actions, sizeof actions / sizeof actions[0]));
  json_object_object_add (o, "operators", strings (operators, sizeof operators / sizeof operators[0]));
  json_object_object_add (o, "archs", strings (archs, sizeof archs / sizeof archs[0]));
  json_object_object_add (o, "knownFlags", strings (known_flags, 4));
  json_object_object_add (o, "supportedFlags", strings (supported_flags, 3));
  return o;
}

static json_object *
enabled (bool yes)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "enabled", json_object_new_boolean (yes));
  return o;
}

int
rt_print_features (rt_error_t *err)
{
  static const char *const hooks[] = { "prestart",       "createRuntime", "createContainer",
                                       "startContainer", "poststart",     "poststop" };
  static const char *const namespaces[] = { "cgroup", "ipc", "mount", "network", "pid", "user", "uts" };
  const char *options[128], *caps[64];
  size_t n_options = rt_mount_option_names (options, 128), n_caps = 0;
  const struct scmp_version *v = seccomp_version ();
  json_object *o = json_object_new_object (), *linux_obj = json_object_new_object (),
              *cgroup = json_object_new_object (), *ann = json_object_new_object (),
              *ext = json_object_new_object ();
  char buf[64];
  int ret = 0;
  while (n_caps < 64 && rt_cap_name ((int) n_caps) != NULL)
    {
      caps[n_caps] = rt_cap_name ((int) n_caps);
      n_caps++;
    }
  qsort (options, n_options, sizeof options[0], compare_strings);
  json_object_object_add (o, "ociVersionMin", json_object_new_string ("1.0.0"));
  json_object_object_add (o, "ociVersionMax", json_object_new_string (OCI_VERSION_MAX));
  json_object_object_add (o, "hooks", strings (hooks, 6));
  json_object_object_add (o, "mountOptions", strings (options, n_options));
  json_object_object_add (linux_obj, "namespaces", strings (namespaces, 7));
  json_object_object_add (linux_obj, "capabilities", strings (caps, n_caps));
  json_object_object_add (cgroup, "v1", json_object_new_boolean (1));
  json_object_object_add (cgroup, "v2", json_object_new_boolean (1));
  json_object_object_add (cgroup, "systemd", json_object_new_boolean (0));
  json_object_object_add (cgroup, "systemdUser", json_object_new_boolean (0));
  json_object_object_add (cgroup, "rdma", json_object_new_boolean (0));
  json_object_object_add (linux_obj, "cgroup", cgroup);
  json_object_object_add (linux_obj, "seccomp", seccomp_features ());
  json_object_object_add (linux_obj, "apparmor", enabled (false));
  json_object_object_add (linux_obj, "selinux", enabled (false));
  json_object_object_add (linux_obj, "intelRdt", enabled (false));
  json_object_object_add (ext, "idmap", enabled (true));
  json_object_object_add (linux_obj, "mountExtensions", ext);
  json_object_object_add (o, "linux", linux_obj);
  snprintf (buf, sizeof buf, "%u.%u.%u", v->major, v->minor, v->micro);
  json_object_object_add (ann, "io.github.seccomp.libseccomp.version", json_object_new_string (buf));
  json_object_object_add (ann, "org.tswarm.swarm-runtime.version",
                          json_object_new_string (SWARM_RUNTIME_VERSION));
  json_object_object_add (o, "annotations", ann);
  if (printf ("%s\n", json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY
                                                          | JSON_C_TO_STRING_SPACED
                                                          | JSON_C_TO_STRING_NOSLASHESCAPE))
      < 0)
    ret = rt_make_error (err, errno, "write stdout");
  json_object_put (o);
  return ret;
}

/* ---- spec --------------------------------------------------------------------------------------- */

static json_object *
mount (const char *dest, const char *type, const char *source, const char *const *opts, size_t n)
{
  json_object *m = json_object_new_object ();
  json_object_object_add (m, "destination", json_object_new_string (dest));
  json_object_object_add (m, "type", json_object_new_string (type));
  json_object_object_add (m, "source", json_object_new_string (source));
  if (n > 0)
    json_object_object_add (m, "options", strings (opts, n));
  return m;
}

#define MOUNT(d, t, s, ...)                                                                       \
  mount (d, t, s, (const char *const[]){ __VA_ARGS__ },                                           \
         sizeof ((const char *const[]){ __VA_ARGS__ }) / sizeof (const char *))

/* `runc spec`'s starter config, field for field. */
static json_object *
default_spec (void)
{
  static const char *const caps[] = { "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" };
  static const char *const env[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                     "TERM=xterm" };
  static const char *const masked[] = { "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                        "/proc/sched_debug", "/sys/firmware", "/proc/scsi" };
  static const char *const readonly[] = { "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                          "/proc/sysrq-trigger" };
  static const char *const ns[] = { "pid", "network", "ipc", "uts", "mount" };
  json_object *o = json_object_new_object (), *process = json_object_new_object (),
              *user = json_object_new_object (), *capo = json_object_new_object (),
              *rl = json_object_new_object (), *rls = json_object_new_array (),
              *root = json_object_new_object (), *mounts = json_object_new_array (),
              *linux_obj = json_object_new_object (), *res = json_object_new_object (),
              *dev = json_object_new_object (), *devs = json_object_new_array (),
              *nss = json_object_new_array (), *args = json_object_new_array ();
  size_t i;
  static const char *const sets[] = { "bounding", "effective", "permitted", "ambient" };
  json_object_object_add (o, "ociVersion", json_object_new_string (OCI_VERSION_MAX));
  json_object_object_add (process, "terminal", json_object_new_boolean (1));
  json_object_object_add (user, "uid", json_object_new_int (0));
  json_object_object_add (user, "gid", json_object_new_int (0));
  json_object_object_add (process, "user", user);
  json_object_array_add (args, json_object_new_string ("sh"));
  json_object_object_add (process, "args", args);
  json_object_object_add (process, "env", strings (env, 2));
  json_object_object_add (process, "cwd", json_object_new_string ("/"));
  for (i = 0; i < 4; i++)
    json_object_object_add (capo, sets[i], strings (caps, 3));
  json_object_object_add (process, "capabilities", capo);
  json_object_object_add (rl, "type", json_object_new_string ("RLIMIT_NOFILE"));
  json_object_object_add (rl, "hard", json_object_new_int (1024));
  json_object_object_add (rl, "soft", json_object_new_int (1024));
  json_object_array_add (rls, rl);
  json_object_object_add (process, "rlimits", rls);
  json_object_object_add (process, "noNewPrivileges", json_object_new_boolean (1));
  json_object_object_add (o, "process", process);
  json_object_object_add (root, "path", json_object_new_string ("rootfs"));
  json_object_object_add (root, "readonly", json_object_new_boolean (1));
  json_object_object_add (o, "root", root);
  json_object_object_add (o, "hostname", json_object_new_string ("swarm"));
  json_object_array_add (mounts, mount ("/proc", "proc", "proc", NULL, 0));
  json_object_array_add (mounts, MOUNT ("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime",
                                        "mode=755", "size=65536k"));
  json_object_array_add (mounts, MOUNT ("/dev/pts", "devpts", "devpts", "nosuid", "noexec",
                                        "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"));
  json_object_array_add (mounts, MOUNT ("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev",
                                        "mode=1777", "size=65536k"));
  json_object_array_add (mounts, MOUNT ("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec",
                                        "nodev"));
  json_object_array_add (mounts, MOUNT ("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"));
  json_object_array_add (mounts, MOUNT ("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec",
                                        "nodev", "relatime", "ro"));
  json_object_object_add (o, "mounts", mounts);
  json_object_object_add (dev, "allow", json_object_new_boolean (0));
  json_object_object_add (dev, "access", json_object_new_string ("rwm"));
  json_object_array_add (devs, dev);
  json_object_object_add (res, "devices", devs);
  json_object_object_add (linux_obj, "resources", res);
  for (i = 0; i < 5; i++)
    {
      json_object *n = json_object_new_object ();
      json_object_object_add (n, "type", json_object_new_string (ns[i]));
      json_object_array_add (nss, n);
    }
  json_object_object_add (linux_obj, "namespaces", nss);
  json_object_object_add (linux_obj, "maskedPaths", strings (masked, 10));
  json_object_object_add (linux_obj, "readonlyPaths", strings (readonly, 5));
  json_object_object_add (o, "linux", linux_obj);
  return o;
}

int
rt_write_default_spec (const char *bundle, bool rootless, rt_error_t *err)
{
  cleanup_free char *path = NULL;
  cleanup_close int fd = -1;
  json_object *o;
  const char *text;
  size_t len;
  int ret = 0;
  if (rootless)
    return rt_make_error (err, 0, "--rootless: rootless containers are not supported (swarm-runtime "
                                  "runs as root: cgroups, mounts and the device nodes need it)");
  if (asprintf (&path, "%s/config.json", bundle ? bundle : ".") < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0)
    return rt_make_error (err, errno == EEXIST ? 0 : errno, "%s%s", path,
                          errno == EEXIST ? " exists: remove it first" : "");
  o = default_spec ();
  text = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
                                                | JSON_C_TO_STRING_NOSLASHESCAPE);
  len = strlen (text);
  if (write (fd, text, len) != (ssize_t) len || write (fd, "\n", 1) != 1)
    ret = rt_make_error (err, errno, "write %s", path);
  json_object_put (o);
  if (ret < 0)
    unlink (path);
  return ret;
}
