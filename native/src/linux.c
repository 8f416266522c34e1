#include "linux.h"

#include "cgroup.h"
#include "hooks.h"
#include "seccomp.h"
#include "sync.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <termios.h>
#include <sys/wait.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static const int ns_clone_flags[RT_NS_COUNT] = {
  [RT_NS_MOUNT] = CLONE_NEWNS,     [RT_NS_UTS] = CLONE_NEWUTS,
  [RT_NS_IPC] = CLONE_NEWIPC,      [RT_NS_PID] = CLONE_NEWPID,
  [RT_NS_NETWORK] = CLONE_NEWNET,  [RT_NS_CGROUP] = CLONE_NEWCGROUP,
  [RT_NS_USER] = CLONE_NEWUSER,
};

/* ---- namespaces ---------------------------------------------------------------------------- */

bool
rt_needs_hook_sync (const rt_spec_t *spec)
{
  return spec->hooks[RT_HOOK_PRESTART].n > 0 || spec->hooks[RT_HOOK_CREATE_RUNTIME].n > 0
         || spec->hooks[RT_HOOK_CREATE_CONTAINER].n > 0
         || spec->hooks[RT_HOOK_START_CONTAINER].n > 0;
}

/* Runs the hooks of KIND in this process (the init: the container's namespaces) with the state
 * of a container that is STATUS. */
static int
run_init_hooks (rt_init_ctx_t *ctx, enum rt_hook_kind kind, const char *status, rt_error_t *err)
{
  const rt_spec_t *spec = ctx->spec;
  cleanup_free char *state = NULL;
  if (spec->hooks[kind].n == 0)
    return 0;
  state = rt_hook_state (spec->oci_version, ctx->id, status, ctx->host_pid, ctx->bundle,
                         spec->annotations_json);
  if (state == NULL)
    return rt_make_error (err, ENOMEM, "hook state");
  return rt_hooks_run (&spec->hooks[kind], kind, state, err);
}

/* Mounts done, before pivot_root: `create` runs prestart and createRuntime (in the runtime's
 * namespaces) and tells us our host pid; then the createContainer hooks run here, in the
 * container's namespaces, from the rootfs (runc's cwd for them), their paths still the host's. */
static int
hook_sync (rt_init_ctx_t *ctx, int rootfd, rt_error_t *err)
{
  sync_msg_t m;
  if (!rt_needs_hook_sync (ctx->spec))
    return 0;
  sync_send (ctx->sync_fd, SYNC_HOOKS, 0, NULL);
  if (sync_recv (ctx->sync_fd, &m, "it ran the hooks", err) < 0)
    return -1;
  if (m.type != SYNC_CONTINUE)
    return rt_make_error (err, 0, "unexpected message `%c` on the sync socket", m.type);
  ctx->host_pid = m.pid;
  if (fchdir (rootfd) < 0)
    return rt_make_error (err, errno, "chdir to the rootfs");
  return run_init_hooks (ctx, RT_HOOK_CREATE_CONTAINER, "creating", err);
}

bool
rt_needs_second_fork (const rt_spec_t *spec)
{
  return spec->ns[RT_NS_PID].wanted;
}

static int
join_namespace (enum rt_ns_type t, const char *path, rt_error_t *err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return rt_make_error (err, errno, "open %s namespace `%s`", rt_ns_name (t), path);
  if (setns (fd, ns_clone_flags[t]) < 0)
    return rt_make_error (err, errno, "setns %s namespace `%s`", rt_ns_name (t), path);
  return 0;
}

/* A new user namespace: create writes our uid_map and gid_map (from the host, where it may map
 * any ids), then we become root in it, so that the namespaces unshared next are owned by it and
 * the files the init makes belong to the container's root. */
static int
enter_new_userns (int sync_fd, rt_error_t *err)
{
  sync_msg_t m;
  if (unshare (CLONE_NEWUSER) < 0)
    return rt_make_error (err, errno, "unshare the user namespace");
  sync_send (sync_fd, SYNC_USERMAP, getpid (), NULL);
  if (sync_recv (sync_fd, &m, "it wrote the id maps", err) < 0)
    return -1;
  if (m.type != SYNC_CONTINUE)
    return rt_make_error (err, 0, "unexpected message `%c` on the sync socket", m.type);
  if (setresgid (0, 0, 0) < 0)
    return rt_make_error (err, errno, "linux.gidMappings: become gid 0 in the user namespace "
                                      "(container gid 0 must be mapped)");
  if (setresuid (0, 0, 0) < 0)
    return rt_make_error (err, errno, "linux.uidMappings: become uid 0 in the user namespace "
                                      "(container uid 0 must be mapped)");
  return 0;
}

int
rt_enter_namespaces (const rt_spec_t *spec, int sync_fd, rt_error_t *err)
{
  int t, flags = 0;
  /* Join first, while we are the host's root: a path may only be reachable from the current
   * mount namespace, and joining one owned by another user namespace needs our capabilities
   * there. The user namespace comes next (joined, or new with its maps), so that the namespaces
   * unshared last are owned by it. The cgroup namespace is unshared with those; the caller has
   * joined the container's cgroup already, so the namespace is rooted there. */
  for (t = 0; t < RT_NS_COUNT; t++)
    {
      if (!spec->ns[t].wanted || t == RT_NS_USER)
        continue;
      if (spec->ns[t].path != NULL)
        {
          if (join_namespace (t, spec->ns[t].path, err) < 0)
            return -1;
        }
      else
        flags |= ns_clone_flags[t];
    }
  if (spec->ns[RT_NS_USER].wanted)
    {
      if (spec->ns[RT_NS_USER].path != NULL)
        {
          if (join_namespace (RT_NS_USER, spec->ns[RT_NS_USER].path, err) < 0)
            return -1;
        }
      else if (enter_new_userns (sync_fd, err) < 0)
        return -1;
    }
  if (flags != 0 && unshare (flags) < 0)
    return rt_make_error (err, errno, "unshare namespaces (flags 0x%x)", (unsigned) flags);
  return 0;
}

/* ---- mount options ------------------------------------------------------------------------- */

typedef struct
{
  unsigned long flags;    /* for mount(2) */
  unsigned long clear;    /* flags an option asked to turn off */
  unsigned long propagation;
  bool bind, rec;
  bool copyup;            /* tmpcopyup */
  bool idmap, ridmap;     /* idmap, ridmap */
  uint64_t rec_set, rec_clr; /* "rro" and the like: mount_setattr(AT_RECURSIVE) attributes */
  const char *unknown;    /* the first option that is not a mount flag (filesystem data) */
  char data[1024];        /* options passed to the filesystem */
} mount_opts_t;

static const struct
{
  const char *name;
  bool clear;
  unsigned long flag;
} mount_flags[] = {
  { "ro", false, MS_RDONLY },          { "rw", true, MS_RDONLY },
  { "nosuid", false, MS_NOSUID },      { "suid", true, MS_NOSUID },
  { "nodev", false, MS_NODEV },        { "dev", true, MS_NODEV },
  { "noexec", false, MS_NOEXEC },      { "exec", true, MS_NOEXEC },
  { "sync", false, MS_SYNCHRONOUS },   { "async", true, MS_SYNCHRONOUS },
  { "dirsync", false, MS_DIRSYNC },    { "mand", false, MS_MANDLOCK },
  { "nomand", true, MS_MANDLOCK },     { "noatime", false, MS_NOATIME },
  { "atime", true, MS_NOATIME },       { "nodiratime", false, MS_NODIRATIME },
  { "diratime", true, MS_NODIRATIME }, { "relatime", false, MS_RELATIME },
  { "norelatime", true, MS_RELATIME }, { "strictatime", false, MS_STRICTATIME },
  { "nostrictatime", true, MS_STRICTATIME }, { "nosymfollow", false, MS_NOSYMFOLLOW },
  { "symfollow", true, MS_NOSYMFOLLOW }, { "lazytime", false, MS_LAZYTIME },
  { "nolazytime", true, MS_LAZYTIME }, { "iversion", false, MS_I_VERSION },
  { "noiversion", true, MS_I_VERSION }, { "silent", false, MS_SILENT },
  { "loud", true, MS_SILENT },         { "remount", false, MS_REMOUNT },
  { "defaults", false, 0 },
};

/* The recursive options of the runtime spec ("rro", "rnosuid", ...): mount_setattr attributes
 * set (or cleared) on the mount and every mount below it. The atime mode is one field: setting
 * one clears the others. */
static const struct
{
  const char *name;
  bool clear;
  uint64_t attr;
} rec_attrs[] = {
  { "rro", false, MOUNT_ATTR_RDONLY },          { "rrw", true, MOUNT_ATTR_RDONLY },
  { "rnosuid", false, MOUNT_ATTR_NOSUID },      { "rsuid", true, MOUNT_ATTR_NOSUID },
  { "rnodev", false, MOUNT_ATTR_NODEV },        { "rdev", true, MOUNT_ATTR_NODEV },
  { "rnoexec", false, MOUNT_ATTR_NOEXEC },      { "rexec", true, MOUNT_ATTR_NOEXEC },
  { "rnodiratime", false, MOUNT_ATTR_NODIRATIME }, { "rdiratime", true, MOUNT_ATTR_NODIRATIME },
  { "rnosymfollow", false, MOUNT_ATTR_NOSYMFOLLOW }, { "rsymfollow", true, MOUNT_ATTR_NOSYMFOLLOW },
  { "rrelatime", false, MOUNT_ATTR_RELATIME },  { "rnoatime", false, MOUNT_ATTR_NOATIME },
  { "rstrictatime", false, MOUNT_ATTR_STRICTATIME },
  { "rnorelatime", true, MOUNT_ATTR_RELATIME }, { "ratime", true, MOUNT_ATTR_NOATIME },
  { "rnostrictatime", true, MOUNT_ATTR_STRICTATIME },
};

static const struct
{
  const char *name;
  unsigned long flag;
} propagation_flags[] = {
  { "private", MS_PRIVATE },
  { "rprivate", MS_PRIVATE | MS_REC },
  { "slave", MS_SLAVE },
  { "rslave", MS_SLAVE | MS_REC },
  { "shared", MS_SHARED },
  { "rshared", MS_SHARED | MS_REC },
  { "unbindable", MS_UNBINDABLE },
  { "runbindable", MS_UNBINDABLE | MS_REC },
};

static unsigned long
propagation_flag (const char *name)
{
  size_t i;
  for (i = 0; i < sizeof (propagation_flags) / sizeof (propagation_flags[0]); i++)
    if (strcmp (propagation_flags[i].name, name) == 0)
      return propagation_flags[i].flag;
  return 0;
}

size_t
rt_mount_option_names (const char **out, size_t max)
{
  static const char *const extra[] = { "bind", "rbind", "tmpcopyup", "idmap", "ridmap" };
  size_t n = 0, k;
  for (k = 0; k < sizeof (mount_flags) / sizeof (mount_flags[0]) && n < max; k++)
    out[n++] = mount_flags[k].name;
  for (k = 0; k < sizeof (rec_attrs) / sizeof (rec_attrs[0]) && n < max; k++)
    out[n++] = rec_attrs[k].name;
  for (k = 0; k < sizeof (propagation_flags) / sizeof (propagation_flags[0]) && n < max; k++)
    out[n++] = propagation_flags[k].name;
  for (k = 0; k < sizeof (extra) / sizeof (extra[0]) && n < max; k++)
    out[n++] = extra[k];
  return n;
}

static void
append_data (mount_opts_t *o, const char *opt)
{
  size_t len = strlen (o->data);
  snprintf (o->data + len, sizeof o->data - len, "%s%s", len ? "," : "", opt);
}

static bool
rec_attr_option (const char *opt, mount_opts_t *o)
{
  size_t k;
  for (k = 0; k < sizeof (rec_attrs) / sizeof (rec_attrs[0]); k++)
    if (strcmp (rec_attrs[k].name, opt) == 0)
      {
        uint64_t a = rec_attrs[k].attr;
        bool atime = a == MOUNT_ATTR_RELATIME || a == MOUNT_ATTR_NOATIME
                     || a == MOUNT_ATTR_STRICTATIME;
        if (atime)
          {
            /* One of three values of the atime field: set it as a whole. */
            o->rec_clr |= MOUNT_ATTR__ATIME;
            o->rec_set &= ~(uint64_t) MOUNT_ATTR__ATIME;
            if (!rec_attrs[k].clear)
              o->rec_set |= a;
          }
        else if (rec_attrs[k].clear)
          {
            o->rec_clr |= a;
            o->rec_set &= ~a;
          }
        else
          {
            o->rec_set |= a;
            o->rec_clr &= ~a;
          }
        return true;
      }
  return false;
}

static void
parse_mount_options (char **options, size_t n, mount_opts_t *o)
{
  size_t i, k;
  memset (o, 0, sizeof *o);
  for (i = 0; i < n; i++)
    {
      const char *opt = options[i];
      bool known = false;
      if (strcmp (opt, "bind") == 0 || strcmp (opt, "rbind") == 0)
        {
          /* "rbind" wins over a "bind" next to it, in any order (runc ORs the flags). */
          o->bind = true;
          o->rec = o->rec || opt[0] == 'r';
          continue;
        }
      if (propagation_flag (opt) != 0)
        {
          o->propagation = propagation_flag (opt);
          continue;
        }
      if (strcmp (opt, "tmpcopyup") == 0 || strcmp (opt, "idmap") == 0
          || strcmp (opt, "ridmap") == 0)
        {
          o->copyup = o->copyup || opt[0] == 't';
          o->idmap = o->idmap || opt[0] == 'i';
          o->ridmap = o->ridmap || opt[0] == 'r';
          continue;
        }
      if (rec_attr_option (opt, o))
        continue;
      for (k = 0; k < sizeof (mount_flags) / sizeof (mount_flags[0]); k++)
        if (strcmp (mount_flags[k].name, opt) == 0)
          {
            known = true;
            if (mount_flags[k].clear)
              {
                o->flags &= ~mount_flags[k].flag;
                o->clear |= mount_flags[k].flag;
              }
            else
              o->flags |= mount_flags[k].flag;
          }
      if (!known)
        {
          if (o->unknown == NULL)
            o->unknown = opt;
          append_data (o, opt);
        }
    }
}

/* ---- paths inside the root filesystem ------------------------------------------------------ */

/* Resolves PATH as if ROOTFD were "/": symlinks, absolute or with "..", cannot leave it. */
static int
open_in_root (int rootfd, const char *path, int flags)
{
  struct open_how how = {
    .flags = (unsigned long long) (flags | O_CLOEXEC),
    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  while (*path == '/')
    path++;
  if (*path == '\0')
    path = ".";
  return (int) syscall (SYS_openat2, rootfd, path, &how, sizeof how);
}

/* DEST's component PREFIX (a prefix of DEST) is a symlink whose target does not exist yet:
 * rewrite DEST with the link's target in place of PREFIX (relative targets resolve against the
 * link's directory); the result is resolved again, still inside the root. */
static char *
follow_dangling (int parent, const char *name, const char *prefix, const char *rest)
{
  char target[PATH_MAX];
  char *out = NULL;
  ssize_t n = readlinkat (parent, name, target, sizeof target - 1);
  if (n < 0)
    return NULL;
  target[n] = '\0';
  if (target[0] == '/')
    {
      if (asprintf (&out, "%s%s%s", target, *rest ? "/" : "", rest) < 0)
        return NULL;
    }
  else
    {
      const char *dirend = strrchr (prefix, '/');
      int dirlen = dirend ? (int) (dirend - prefix) : 0;
      if (asprintf (&out, "%.*s/%s%s%s", dirlen, prefix, target, *rest ? "/" : "", rest) < 0)
        return NULL;
    }
  return out;
}

/* Creates component NAME in PARENT: a directory, or an empty file when IS_FILE. */
static int
create_component (int parent, const char *name, bool is_file)
{
  int r;
  if (!is_file)
    return mkdirat (parent, name, 0755);
  r = openat (parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (r >= 0)
    close (r);
  return r < 0 ? -1 : 0;
}

static int ensure_path_depth (int rootfd, const char *dest, bool is_file, int depth,
                              rt_error_t *err);

/* Creates the missing component COPY (a prefix of DEST, cut at its end) and returns its O_PATH
 * descriptor; a dangling symlink there is followed (inside the root) instead. */
static int
create_missing (int rootfd, char *copy, const char *rest, bool is_file, int depth,
                bool *redirected_out, rt_error_t *err)
{
  cleanup_close int parent = -1;
  char *name = strrchr (copy, '/');
  cleanup_free char *redirected = NULL;
  if (name != NULL)
    {
      *name = '\0';
      parent = open_in_root (rootfd, *copy ? copy : "/", O_PATH | O_DIRECTORY);
      *name = '/';
      name++;
    }
  else
    {
      parent = open_in_root (rootfd, "/", O_PATH | O_DIRECTORY);
      name = copy;
    }
  if (parent < 0)
    return rt_make_error (err, errno, "open the parent of %s in the rootfs", copy);
  if (create_component (parent, name, is_file) == 0)
    {
      int fd = open_in_root (rootfd, copy, O_PATH);
      if (fd < 0)
        return rt_make_error (err, errno, "create %s in the rootfs", copy);
      return fd;
    }
  if (errno != EEXIST)
    return rt_make_error (err, errno, "create %s in the rootfs", copy);
  /* EEXIST, yet it did not resolve: a dangling symlink. */
  if (depth >= 40)
    return rt_make_error (err, ELOOP, "create %s in the rootfs", copy);
  redirected = follow_dangling (parent, name, copy, rest);
  if (redirected == NULL)
    return rt_make_error (err, errno, "readlink %s in the rootfs", copy);
  *redirected_out = true;
  return ensure_path_depth (rootfd, redirected, is_file, depth + 1, err);
}

static int
ensure_path_depth (int rootfd, const char *dest, bool is_file, int depth, rt_error_t *err)
{
  cleanup_free char *copy = NULL;
  char *p, *slash;
  int fd = open_in_root (rootfd, dest, O_PATH);
  if (fd >= 0)
    return fd;
  if (errno != ENOENT)
    return rt_make_error (err, errno, "open %s in the rootfs", dest);
  copy = strdup (dest);
  if (copy == NULL)
    return rt_make_error (err, errno, "strdup");
  p = copy;
  for (;;)
    {
      bool last;
      while (*p == '/')
        p++;
      if (*p == '\0')
        return open_in_root (rootfd, dest, O_PATH);
      slash = strchr (p, '/');
      last = slash == NULL;
      if (slash)
        *slash = '\0';
      fd = open_in_root (rootfd, copy, O_PATH);
      if (fd < 0 && errno == ENOENT)
        {
          const char *rest = last ? "" : slash + 1;
          bool redirected = false;
          fd = create_missing (rootfd, copy, rest, last && is_file, depth, &redirected, err);
          if (fd < 0)
            return -1;
          /* After a redirect, fd is DEST itself. */
          if (last || redirected)
            return fd;
        }
      else if (fd < 0)
        return rt_make_error (err, errno, "open %s in the rootfs", copy);
      if (last)
        return fd;
      close (fd);
      *slash = '/';
      p = slash + 1;
    }
}

/* Opens DEST under the root, creating what is missing (directories, and the last component as a
 * file when IS_FILE). Returns an O_PATH descriptor. */
static int
ensure_path (int rootfd, const char *dest, bool is_file, rt_error_t *err)
{
  return ensure_path_depth (rootfd, dest, is_file, 0, err);
}

static void
fd_path (int fd, char *buf, size_t len)
{
  snprintf (buf, len, "/proc/self/fd/%d", fd);
}

/* ---- mounts -------------------------------------------------------------------------------- */

#define DEFAULT_MOUNT(d, t, s, n, ...)                                                          \
  { .destination = d, .type = t, .source = s, .options = (char *[]){ __VA_ARGS__ }, .n_options = n }

static const rt_mount_t default_mounts[] = {
  DEFAULT_MOUNT ("/proc", "proc", "proc", 0, NULL),
  DEFAULT_MOUNT ("/dev", "tmpfs", "tmpfs", 4, "nosuid", "strictatime", "mode=755", "size=65536k",
                 NULL),
  DEFAULT_MOUNT ("/dev/pts", "devpts", "devpts", 6, "nosuid", "noexec", "newinstance",
                 "ptmxmode=0666", "mode=0620", "gid=5", NULL),
  DEFAULT_MOUNT ("/dev/shm", "tmpfs", "shm", 5, "nosuid", "noexec", "nodev", "mode=1777",
                 "size=65536k", NULL),
  DEFAULT_MOUNT ("/dev/mqueue", "mqueue", "mqueue", 3, "nosuid", "noexec", "nodev", NULL),
  DEFAULT_MOUNT ("/sys", "sysfs", "sysfs", 4, "nosuid", "noexec", "nodev", "ro", NULL),
};
#define N_DEFAULT_MOUNTS (sizeof (default_mounts) / sizeof (default_mounts[0]))

static const rt_mount_t *
spec_mount_at (const rt_spec_t *spec, const char *dest)
{
  size_t i;
  for (i = 0; i < spec->n_mounts; i++)
    if (strcmp (spec->mounts[i].destination, dest) == 0)
      return &spec->mounts[i];
  return NULL;
}

static bool
is_default_destination (const char *dest)
{
  size_t i;
  for (i = 0; i < N_DEFAULT_MOUNTS; i++)
    if (strcmp (default_mounts[i].destination, dest) == 0)
      return true;
  return false;
}

/* mount(2) with the error convention: "mount SOURCE on DEST". */
static int
do_mount (const char *source, int target_fd, const char *dest, const char *type,
          unsigned long flags, const char *data, rt_error_t *err)
{
  char target[64];
  fd_path (target_fd, target, sizeof target);
  if (mount (source, target, type, flags, data) < 0)
    return rt_make_error (err, errno, "mount %s on %s", source ? source : "none", dest);
  return 0;
}

/* The init runs in a user namespace (new or joined): mounts it inherits carry locked flags. */
static bool in_userns;

static unsigned long statvfs_flags (const struct statvfs *sv);

/* Remounts the bind mount at DEST (opened afresh, so that the new mount is the one changed). In a
 * user namespace the flags the source mount has locked (nosuid, nodev, noexec, the atime mode)
 * must be kept, or the kernel refuses the remount; they are added, as runc does. */
static int
remount_bind (int rootfd, const char *dest, unsigned long flags, rt_error_t *err)
{
  cleanup_close int fd = open_in_root (rootfd, dest, O_PATH);
  struct statvfs sv;
  if (fd < 0)
    return rt_make_error (err, errno, "open %s in the rootfs", dest);
  if (in_userns && fstatvfs (fd, &sv) == 0)
    flags |= statvfs_flags (&sv);
  return do_mount (NULL, fd, dest, NULL, MS_BIND | MS_REMOUNT | flags, NULL, err);
}

static int
set_propagation (int rootfd, const char *dest, unsigned long propagation, rt_error_t *err)
{
  cleanup_close int fd = open_in_root (rootfd, dest, O_PATH);
  if (fd < 0)
    return rt_make_error (err, errno, "open %s in the rootfs", dest);
  return do_mount (NULL, fd, dest, NULL, propagation, NULL, err);
}

/* MOUNT_FD (>= 0): the source as a detached, idmapped tree create made (open_tree +
 * mount_setattr on the host); it is moved onto the destination instead of a bind. */
static int
mount_bind (int rootfd, const rt_mount_t *m, const mount_opts_t *o, int mount_fd,
            rt_error_t *err)
{
  cleanup_close int fd = -1;
  struct stat st;
  const char *src = m->source;
  if (src == NULL)
    return rt_make_error (err, 0, "bind mount on %s: missing source", m->destination);
  if (stat (src, &st) < 0)
    return rt_make_error (err, errno, "bind mount on %s: stat %s", m->destination, src);
  fd = ensure_path (rootfd, m->destination, !S_ISDIR (st.st_mode), err);
  if (fd < 0)
    return -1;
  if (mount_fd >= 0)
    {
      if (move_mount (mount_fd, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return rt_make_error (err, errno, "move the idmapped mount of %s onto %s", src,
                              m->destination);
    }
  else if (do_mount (src, fd, m->destination, NULL, MS_BIND | (o->rec ? MS_REC : 0), NULL, err)
           < 0)
    return -1;
  if ((o->flags & ~MS_REC) != 0
      && remount_bind (rootfd, m->destination, o->flags & ~MS_REC, err) < 0)
    return -1;
  return 0;
}

/* sysfs cannot be mounted without a network namespace of our own: bind the host's instead, as
 * runc does. */
static int
mount_sys_fallback (int rootfd, int fd, const rt_mount_t *m, const mount_opts_t *o,
                    rt_error_t *err)
{
  if (do_mount ("/sys", fd, m->destination, NULL, MS_BIND | MS_REC, NULL, err) < 0)
    return -1;
  return remount_bind (rootfd, m->destination, o->flags | MS_RDONLY, err);
}

/* A tmpfs over an existing directory gets that directory's mode unless the options give one
 * (runc: "mode=<the target's>" goes before the spec's data, so a later mode= wins). A target made
 * here keeps tmpfs' default (1777), as with runc. */
static int
tmpfs_mode_from_target (int rootfd, const char *dest, mount_opts_t *o, rt_error_t *err)
{
  cleanup_close int fd = -1;
  struct stat st;
  char data[sizeof o->data + 16];
  int n;
  if (strncmp (o->data, "mode=", 5) == 0 || strstr (o->data, ",mode=") != NULL)
    return 0;
  fd = open_in_root (rootfd, dest, O_PATH);
  if (fd < 0)
    return errno == ENOENT ? 0 : rt_make_error (err, errno, "open %s in the rootfs", dest);
  if (fstat (fd, &st) < 0)
    return rt_make_error (err, errno, "stat %s in the rootfs", dest);
  if (!S_ISDIR (st.st_mode))
    return 0;
  n = snprintf (data, sizeof data, "mode=%04o%s%s", (unsigned) (st.st_mode & 07777),
                o->data[0] ? "," : "", o->data);
  if (n < 0 || (size_t) n >= sizeof o->data)
    return rt_make_error (err, E2BIG, "the mount options of %s", dest);
  memcpy (o->data, data, (size_t) n + 1);
  return 0;
}

/* ---- cgroup mounts ----------------------------------------------------------------------- */

/* The line of /proc/self/cgroup ("N:controllers:path") that belongs to a v1 hierarchy whose
 * superblock options are SUPER ("rw,cpu,cpuacct", "rw,name=systemd"): the path, or NULL. */
static char *
own_cgroup (const char *cgroups, const char *super)
{
  cleanup_free char *copy = strdup (cgroups);
  char *line, *save = NULL;
  if (copy == NULL)
    return NULL;
  for (line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      char *ctrls = strchr (line, ':'), *path, *c, *csave = NULL;
      if (ctrls == NULL || (path = strchr (++ctrls, ':')) == NULL)
        continue;
      *path++ = '\0';
      for (c = strtok_r (ctrls, ",", &csave); c; c = strtok_r (NULL, ",", &csave))
        {
          const char *p = super;
          size_t len = strlen (c);
          for (; (p = strstr (p, c)) != NULL; p += len)
            if ((p == super || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
              return strdup (path);
        }
    }
  return NULL;
}

/* The whole (small) file PATH into a heap string, or NULL. */
static char *
slurp (const char *path)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = fopen (path, "re");
  if (f == NULL)
    return NULL;
  if (getdelim (&buf, &len, '\0', f) < 0)
    {
      free (buf);
      buf = NULL;
    }
  fclose (f);
  return buf;
}

/* One v1 hierarchy into DEST/NAME: with a cgroup namespace a fresh mount of the hierarchy (the
 * namespace roots it at the container's cgroup); without one a bind of the container's own
 * directory. The hierarchies are read-only when the spec's mount is. */
static int
mount_v1_hierarchy (int rootfd, const rt_mount_t *m, const mount_opts_t *o, bool cgroupns,
                    const char *mountpoint, const char *super, const char *cgroups,
                    rt_error_t *err)
{
  const char *name = strrchr (mountpoint, '/') + 1;
  cleanup_free char *dest = NULL, *own = NULL, *source = NULL;
  cleanup_close int fd = -1;
  if (asprintf (&dest, "%s/%s", m->destination, name) < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  fd = ensure_path (rootfd, dest, false, err);
  if (fd < 0)
    return -1;
  if (cgroupns)
    {
      const char *named = strstr (super, "name=");
      char data[256];
      unsigned long flags = MS_NOSUID | MS_NOEXEC | MS_NODEV | (o->flags & MS_RDONLY);
      if (named != NULL)
        snprintf (data, sizeof data, "%.*s", (int) strcspn (named, ","), named);
      else
        snprintf (data, sizeof data, "%s", name);
      return do_mount (named != NULL ? named + 5 : "cgroup", fd, dest, "cgroup", flags, data, err);
    }
  own = own_cgroup (cgroups, super);
  if (own == NULL)
    return rt_make_error (err, ENOENT, "mount the cgroups: no cgroup of %s in /proc/self/cgroup",
                          mountpoint);
  if (asprintf (&source, "%s%s", mountpoint, own) < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  if (do_mount (source, fd, dest, NULL, MS_BIND | MS_REC, NULL, err) < 0)
    return -1;
  return remount_bind (rootfd, dest, o->flags, err);
}

/* PATH is a line of LIST (lines ending in '\n'). */
static bool
already_listed (const char *list, const char *path)
{
  size_t len = strlen (path);
  const char *p;
  for (p = list; (p = strstr (p, path)) != NULL; p += len)
    if ((p == list || p[-1] == '\n') && p[len] == '\n')
      return true;
  return false;
}

/* runc's view of the cgroups on a v1 (or hybrid) host: a tmpfs (rw, mode 755, as runc leaves
 * it) holding every v1 hierarchy the host mounts (not the hybrid's unified tree, as runc), each
 * at the container's cgroup; co-mounted ones get their names as symlinks ("cpu" ->
 * "cpu,cpuacct"). The container joined every hierarchy for this (RT_CGROUP_ALL). */
static int
mount_cgroup_v1 (int rootfd, const rt_spec_t *spec, const rt_mount_t *m, const mount_opts_t *o,
                 rt_error_t *err)
{
  cleanup_free char *mountinfo = slurp ("/proc/self/mountinfo");
  cleanup_free char *cgroups = slurp ("/proc/self/cgroup");
  cleanup_close int fd = -1, dirfd = -1;
  char *line, *save = NULL, proc[64];
  char seen[4096] = ""; /* the mount points done, one per line */
  if (mountinfo == NULL || cgroups == NULL)
    return rt_make_error (err, errno, "mount the cgroups: read /proc/self/mountinfo");
  fd = ensure_path (rootfd, m->destination, false, err);
  if (fd < 0)
    return -1;
  if (do_mount ("tmpfs", fd, m->destination, "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV,
                "mode=755", err)
      < 0)
    return -1;
  for (line = strtok_r (mountinfo, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER */
      char *f[5], *p = line, *sep = strstr (line, " - "), *type, *super, *mark;
      size_t k;
      if (sep == NULL)
        continue;
      for (k = 0; k < 5; k++)
        f[k] = strsep (&p, " ");
      type = sep + 3;
      if (f[4] == NULL || strncmp (type, "cgroup ", 7) != 0
          || strncmp (f[4], RT_CGROUP_ROOT "/", sizeof RT_CGROUP_ROOT) != 0
          || strchr (f[4] + sizeof RT_CGROUP_ROOT, '/') != NULL)
        continue;
      /* A mount point can be listed twice: one mount moved over another, or /sys/fs/cgroup moved
       * onto a fresh sysfs with the old one's hierarchies still under it. Each once. */
      if (already_listed (seen, f[4]))
        continue;
      mark = seen + strlen (seen);
      if ((size_t) (mark - seen) + strlen (f[4]) + 2 < sizeof seen)
        snprintf (mark, sizeof seen - (size_t) (mark - seen), "%s\n", f[4]);
      super = strrchr (type, ' ') + 1;
      if (mount_v1_hierarchy (rootfd, m, o, spec->ns[RT_NS_CGROUP].wanted, f[4], super, cgroups,
                              err)
          < 0)
        return -1;
      if (strchr (f[4], ',') != NULL)
        {
          const char *name = strrchr (f[4], '/') + 1;
          cleanup_free char *parts = strdup (name);
          char *part, *psave = NULL;
          if (parts == NULL)
            return rt_make_error (err, errno, "strdup");
          if (dirfd < 0)
            {
              fd_path (fd, proc, sizeof proc);
              dirfd = open (proc, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
              if (dirfd < 0)
                return rt_make_error (err, errno, "open %s", m->destination);
            }
          for (part = strtok_r (parts, ",", &psave); part; part = strtok_r (NULL, ",", &psave))
            if (symlinkat (name, dirfd, part) < 0 && errno != EEXIST)
              return rt_make_error (err, errno, "symlink %s/%s", m->destination, part);
        }
    }
  return 0;
}

/* A cgroup v2 host: cgroup2 itself (a cgroup namespace roots it at the container's cgroup).
 * Where the kernel refuses (a user namespace without a cgroup namespace), a bind of the
 * container's directory, as runc does. */
static int
mount_cgroup_v2 (int rootfd, const rt_init_ctx_t *ctx, const rt_mount_t *m, const mount_opts_t *o,
                 rt_error_t *err)
{
  cleanup_close int fd = ensure_path (rootfd, m->destination, false, err);
  cleanup_free char *source = NULL;
  if (fd < 0)
    return -1;
  if (do_mount ("cgroup2", fd, m->destination, "cgroup2", o->flags, o->data[0] ? o->data : NULL,
                err)
      == 0)
    return 0;
  if (err->status != EPERM && err->status != EBUSY)
    return -1;
  rt_error_release (err);
  if (asprintf (&source, "%s%s", RT_CGROUP_ROOT,
                ctx->spec->ns[RT_NS_CGROUP].wanted && ctx->cgroup_path ? ctx->cgroup_path : "")
      < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  if (do_mount (source, fd, m->destination, NULL, MS_BIND | MS_REC, NULL, err) < 0)
    return -1;
  return remount_bind (rootfd, m->destination, o->flags, err);
}

/* ---- tmpcopyup ----------------------------------------------------------------------------- */

static int copy_tree (int from, int to, const char *where, int depth, rt_error_t *err);

static int
copy_file (int from, int to, const char *name, const struct stat *st, const char *where,
           rt_error_t *err)
{
  cleanup_close int in = openat (from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  cleanup_close int out = -1;
  off_t left = st->st_size;
  if (in < 0)
    return rt_make_error (err, errno, "tmpcopyup %s: open %s", where, name);
  out = openat (to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (out < 0)
    return rt_make_error (err, errno, "tmpcopyup %s: create %s", where, name);
  while (left > 0)
    {
      ssize_t n = sendfile (out, in, NULL, (size_t) left);
      if (n <= 0)
        return rt_make_error (err, n < 0 ? errno : EIO, "tmpcopyup %s: copy %s", where, name);
      left -= n;
    }
  return 0;
}

/* One entry of a directory into its copy: directories (recursively), files, symlinks and
 * device nodes, with their mode and owner. */
static int
copy_entry (int from, int to, const char *name, const char *where, int depth, rt_error_t *err)
{
  struct stat st;
  if (fstatat (from, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return rt_make_error (err, errno, "tmpcopyup %s: stat %s", where, name);
  if (S_ISDIR (st.st_mode))
    {
      cleanup_close int sub_from = -1, sub_to = -1;
      if (mkdirat (to, name, 0700) < 0)
        return rt_make_error (err, errno, "tmpcopyup %s: mkdir %s", where, name);
      sub_from = openat (from, name, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      sub_to = openat (to, name, O_DIRECTORY | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (sub_from < 0 || sub_to < 0)
        return rt_make_error (err, errno, "tmpcopyup %s: open %s", where, name);
      if (copy_tree (sub_from, sub_to, where, depth + 1, err) < 0)
        return -1;
    }
  else if (S_ISREG (st.st_mode))
    {
      if (copy_file (from, to, name, &st, where, err) < 0)
        return -1;
    }
  else if (S_ISLNK (st.st_mode))
    {
      char target[PATH_MAX];
      ssize_t n = readlinkat (from, name, target, sizeof target - 1);
      if (n < 0)
        return rt_make_error (err, errno, "tmpcopyup %s: readlink %s", where, name);
      target[n] = '\0';
      if (symlinkat (target, to, name) < 0)
        return rt_make_error (err, errno, "tmpcopyup %s: symlink %s", where, name);
    }
  else if (mknodat (to, name, st.st_mode, st.st_rdev) < 0)
    return rt_make_error (err, errno, "tmpcopyup %s: mknod %s", where, name);
  if (fchownat (to, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
    return rt_make_error (err, errno, "tmpcopyup %s: chown %s", where, name);
  if (!S_ISLNK (st.st_mode) && fchmodat (to, name, st.st_mode & 07777, 0) < 0)
    return rt_make_error (err, errno, "tmpcopyup %s: chmod %s", where, name);
  return 0;
}

static int
copy_tree (int from, int to, const char *where, int depth, rt_error_t *err)
{
  DIR *d;
  struct dirent *de;
  int dup_fd, ret = 0;
  if (depth > 64)
    return rt_make_error (err, ELOOP, "tmpcopyup %s: too deep", where);
  dup_fd = fcntl (from, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0)
    return rt_make_error (err, errno, "tmpcopyup %s: dup", where);
  d = fdopendir (dup_fd);
  if (d == NULL)
    {
      close (dup_fd);
      return rt_make_error (err, errno, "tmpcopyup %s: opendir", where);
    }
  while (ret == 0 && (errno = 0, de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      ret = copy_entry (from, to, de->d_name, where, depth, err);
  closedir (d);
  return ret;
}

/* tmpcopyup (runc's extension): what the directory held is copied into the tmpfs mounted over
 * it. FROM is the directory, opened before the mount hid it. */
static int
tmpfs_copyup (int rootfd, int from, const char *dest, rt_error_t *err)
{
  cleanup_close int to = open_in_root (rootfd, dest, O_DIRECTORY | O_RDONLY);
  if (to < 0)
    return rt_make_error (err, errno, "tmpcopyup %s: open the tmpfs", dest);
  return copy_tree (from, to, dest, 0, err);
}

/* The recursive options ("rro", ...), after the mount: mount_setattr(AT_RECURSIVE). */
static int
set_rec_attrs (int rootfd, const char *dest, const mount_opts_t *o, rt_error_t *err)
{
  cleanup_close int fd = -1;
  struct mount_attr attr = { .attr_set = o->rec_set, .attr_clr = o->rec_clr };
  if (o->rec_set == 0 && o->rec_clr == 0)
    return 0;
  fd = open_in_root (rootfd, dest, O_PATH);
  if (fd < 0)
    return rt_make_error (err, errno, "open %s in the rootfs", dest);
  if (mount_setattr (fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
    return rt_make_error (err, errno, "set the recursive mount options of %s", dest);
  return 0;
}

/* mounts[N] for an error message, or the destination for a default mount. */
static long
mount_index (const rt_spec_t *spec, const rt_mount_t *m)
{
  if (m >= spec->mounts && m < spec->mounts + spec->n_mounts)
    return (long) (m - spec->mounts);
  return -1;
}

static int
mount_one (int rootfd, const rt_init_ctx_t *ctx, const rt_mount_t *m, rt_error_t *err)
{
  mount_opts_t o;
  cleanup_close int fd = -1, copy_from = -1;
  const char *type = m->type ? m->type : "";
  long index = mount_index (ctx->spec, m);
  parse_mount_options (m->options, m->n_options, &o);
  if (strcmp (type, "bind") == 0)
    o.bind = true;
  /* A bind mount takes no filesystem data: an option that is not a mount flag would be
   * ignored by the kernel, so it is refused. */
  if (o.bind && o.unknown != NULL)
    return rt_make_error (err, 0, "mounts[%ld].options: `%s` is not an option of a bind mount",
                          index, o.unknown);
  if (o.copyup && (o.bind || strcmp (type, "tmpfs") != 0))
    return rt_make_error (err, 0, "mounts[%ld].options: tmpcopyup is for tmpfs mounts", index);
  if (strcmp (type, "cgroup") == 0)
    {
      if ((rt_cgroup_mode () == RT_CGROUP_V2 ? mount_cgroup_v2 (rootfd, ctx, m, &o, err)
                                             : mount_cgroup_v1 (rootfd, ctx->spec, m, &o, err))
          < 0)
        return -1;
    }
  else if (o.bind)
    {
      int mount_fd = index >= 0 && ctx->mount_fds != NULL ? ctx->mount_fds[index] : -1;
      if (mount_bind (rootfd, m, &o, mount_fd, err) < 0)
        return -1;
    }
  else
    {
      if (strcmp (type, "tmpfs") == 0 && tmpfs_mode_from_target (rootfd, m->destination, &o, err) < 0)
        return -1;
      fd = ensure_path (rootfd, m->destination, false, err);
      if (fd < 0)
        return -1;
      if (o.copyup)
        {
          char proc[64];
          fd_path (fd, proc, sizeof proc);
          copy_from = open (proc, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
          if (copy_from < 0)
            return rt_make_error (err, errno, "tmpcopyup %s: open", m->destination);
        }
      if (do_mount (m->source ? m->source : type, fd, m->destination, type, o.flags,
                    o.data[0] ? o.data : NULL, err)
          < 0)
        {
          if (err->status == EPERM && strcmp (type, "sysfs") == 0)
            {
              rt_error_release (err);
              if (mount_sys_fallback (rootfd, fd, m, &o, err) < 0)
                return -1;
            }
          else
            return -1;
        }
      if (copy_from >= 0 && tmpfs_copyup (rootfd, copy_from, m->destination, err) < 0)
        return -1;
    }
  if (set_rec_attrs (rootfd, m->destination, &o, err) < 0)
    return -1;
  if (o.propagation != 0 && set_propagation (rootfd, m->destination, o.propagation, err) < 0)
    return -1;
  return 0;
}

static int
mount_all (int rootfd, const rt_init_ctx_t *ctx, bool *dev_is_tmpfs, rt_error_t *err)
{
  const rt_spec_t *spec = ctx->spec;
  size_t i;
  const rt_mount_t *m;
  *dev_is_tmpfs = false;
  /* The standard filesystems first (the spec's own entry where it has one for the same
   * destination), then the spec's other mounts in their order. */
  for (i = 0; i < N_DEFAULT_MOUNTS; i++)
    {
      m = spec_mount_at (spec, default_mounts[i].destination);
      if (m == NULL)
        m = &default_mounts[i];
      if (strcmp (m->destination, "/dev") == 0)
        *dev_is_tmpfs = m->type && strcmp (m->type, "tmpfs") == 0;
      if (mount_one (rootfd, ctx, m, err) < 0)
        return -1;
    }
  for (i = 0; i < spec->n_mounts; i++)
    {
      m = &spec->mounts[i];
      if (is_default_destination (m->destination))
        continue;
      if (mount_one (rootfd, ctx, m, err) < 0)
        return -1;
    }
  return 0;
}

/* ---- idmapped mounts, made on the host by create ------------------------------------------ */

/* A user namespace holding MAP (uid and gid), for MOUNT_ATTR_IDMAP: a child unshares one and
 * waits while we write its maps and open it, then exits. */
static int
idmap_userns (const rt_idmap_t *uid, size_t n_uid, const rt_idmap_t *gid, size_t n_gid,
              const char *field, rt_error_t *err)
{
  int ready[2], hold[2], ns = -1, status;
  char byte = 0, path[64];
  pid_t child;
  if (pipe2 (ready, O_CLOEXEC) < 0)
    return rt_make_error (err, errno, "%s: pipe", field);
  if (pipe2 (hold, O_CLOEXEC) < 0)
    {
      close (ready[0]);
      close (ready[1]);
      return rt_make_error (err, errno, "%s: pipe", field);
    }
  child = fork ();
  if (child == 0)
    {
      close (ready[0]);
      close (hold[1]);
      if (unshare (CLONE_NEWUSER) < 0)
        _exit (1);
      if (write (ready[1], "1", 1) != 1)
        _exit (1);
      /* Until the parent closes its end. */
      if (read (hold[0], &byte, 1) < 0)
        _exit (1);
      _exit (0);
    }
  close (ready[1]);
  close (hold[0]);
  if (child < 0)
    {
      rt_make_error (err, errno, "%s: fork", field);
      goto out;
    }
  if (read (ready[0], &byte, 1) != 1)
    {
      rt_make_error (err, 0, "%s: the user namespace helper died", field);
      goto out;
    }
  {
    static const char *const files[] = { "uid_map", "gid_map" };
    const rt_idmap_t *maps[] = { uid, gid };
    size_t counts[] = { n_uid, n_gid }, k, i;
    for (k = 0; k < 2; k++)
      {
        char buf[340 * 36];
        size_t len = 0;
        cleanup_close int fd = -1;
        for (i = 0; i < counts[k]; i++)
          len += (size_t) snprintf (buf + len, sizeof buf - len, "%u %u %u\n",
                                    maps[k][i].container_id, maps[k][i].host_id, maps[k][i].size);
        snprintf (path, sizeof path, "/proc/%d/%s", child, files[k]);
        fd = open (path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write (fd, buf, len) != (ssize_t) len)
          {
            rt_make_error (err, errno, "%s: write %s", field, path);
            goto out;
          }
      }
  }
  snprintf (path, sizeof path, "/proc/%d/ns/user", child);
  ns = open (path, O_RDONLY | O_CLOEXEC);
  if (ns < 0)
    rt_make_error (err, errno, "%s: open %s", field, path);
out:
  close (ready[0]);
  close (hold[1]);
  if (child > 0)
    while (waitpid (child, &status, 0) < 0 && errno == EINTR)
      ;
  return ns;
}

/* One idmapped bind: a detached copy of the source tree (open_tree), its ids mapped through a
 * user namespace holding the mount's maps (or the container's). */
static int
open_idmapped (const rt_spec_t *spec, size_t i, const mount_opts_t *o, rt_error_t *err)
{
  const rt_mount_t *m = &spec->mounts[i];
  const rt_idmap_t *uid = m->uid_map, *gid = m->gid_map;
  size_t n_uid = m->n_uid_map, n_gid = m->n_gid_map;
  struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP };
  bool recursive = o->ridmap || (!o->idmap && o->rec);
  char field[64];
  cleanup_close int userns = -1;
  int fd;
  snprintf (field, sizeof field, "mounts[%zu]", i);
  if (!o->bind && (m->type == NULL || strcmp (m->type, "bind") != 0))
    return rt_make_error (err, 0, "%s: only bind mounts can be idmapped", field);
  if (m->source == NULL)
    return rt_make_error (err, 0, "%s: missing source", field);
  if (n_uid == 0)
    {
      /* idmap without maps: the container's own (the spec allows it; without a user namespace
       * there is nothing to map to). */
      if (spec->n_uid_map == 0)
        return rt_make_error (err, 0, "%s: idmap without uidMappings needs the container's user "
                                      "namespace mappings",
                              field);
      uid = spec->uid_map;
      n_uid = spec->n_uid_map;
      gid = spec->gid_map;
      n_gid = spec->n_gid_map;
    }
  userns = idmap_userns (uid, n_uid, gid, n_gid, field, err);
  if (userns < 0)
    return -1;
  attr.userns_fd = (uint64_t) userns;
  fd = open_tree (AT_FDCWD, m->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
                                           | (o->rec ? AT_RECURSIVE : 0));
  if (fd < 0)
    return rt_make_error (err, errno, "%s: open_tree %s", field, m->source);
  if (mount_setattr (fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr)
      < 0)
    {
      int e = errno;
      close (fd);
      return rt_make_error (err, e, "%s: idmap %s (mount_setattr MOUNT_ATTR_IDMAP)", field,
                            m->source);
    }
  return fd;
}

int
rt_open_mount_fds (const rt_spec_t *spec, int **out, rt_error_t *err)
{
  int *fds = NULL;
  size_t i;
  *out = NULL;
  for (i = 0; i < spec->n_mounts; i++)
    {
      const rt_mount_t *m = &spec->mounts[i];
      mount_opts_t o;
      parse_mount_options (m->options, m->n_options, &o);
      if (m->n_uid_map == 0 && !o.idmap && !o.ridmap)
        continue;
      if (fds == NULL)
        {
          size_t k;
          fds = malloc (spec->n_mounts * sizeof (int));
          if (fds == NULL)
            return rt_make_error (err, errno, "malloc");
          for (k = 0; k < spec->n_mounts; k++)
            fds[k] = -1;
          *out = fds;
        }
      fds[i] = open_idmapped (spec, i, &o, err);
      if (fds[i] < 0)
        return -1;
    }
  return 0;
}

void
rt_close_mount_fds (const rt_spec_t *spec, int *fds)
{
  size_t i;
  for (i = 0; fds != NULL && i < spec->n_mounts; i++)
    if (fds[i] >= 0)
      close (fds[i]);
  free (fds);
}

/* ---- /dev ---------------------------------------------------------------------------------- */

/* runc's default nodes (0666, root's), in its order (the order of the bind mounts in a user
 * namespace); a linux.devices entry with the same path takes over. */
static const rt_device_t default_devices[] = {
  { "/dev/null", 'c', 1, 3, 0666, 0, 0 }, { "/dev/random", 'c', 1, 8, 0666, 0, 0 },
  { "/dev/full", 'c', 1, 7, 0666, 0, 0 }, { "/dev/tty", 'c', 5, 0, 0666, 0, 0 },
  { "/dev/zero", 'c', 1, 5, 0666, 0, 0 }, { "/dev/urandom", 'c', 1, 9, 0666, 0, 0 },
};

static bool
spec_has_device (const rt_spec_t *spec, const char *path)
{
  size_t i;
  for (i = 0; i < spec->n_devices; i++)
    if (strcmp (spec->devices[i].path, path) == 0)
      return true;
  return false;
}

/* A device node the kernel does not let us make (in a user namespace, mknod is refused): the
 * host's node of the same path is bind-mounted over an empty file, as runc does. */
static int
bind_device (int rootfd, const rt_device_t *d, rt_error_t *err)
{
  cleanup_close int fd = ensure_path (rootfd, d->path, true, err);
  if (fd < 0)
    return -1;
  return do_mount (d->path, fd, d->path, NULL, MS_BIND, NULL, err);
}

/* The directory DIR as a real (not O_PATH) descriptor, made when missing. */
static int
device_dir (int rootfd, char *dir, rt_error_t *err)
{
  cleanup_close int path_fd = -1;
  char proc[64];
  int fd;
  path_fd = ensure_path (rootfd, dir[0] ? dir : "/", false, err);
  if (path_fd < 0)
    return -1;
  /* ensure_path gives O_PATH; mknodat needs a real directory descriptor. */
  fd_path (path_fd, proc, sizeof proc);
  fd = open (proc, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  return fd < 0 ? rt_make_error (err, errno, "open %s in the rootfs", dir) : fd;
}

static int
make_device (int rootfd, int devfd, const rt_device_t *d, bool bind, rt_error_t *err)
{
  cleanup_free char *dir = strdup (d->path);
  cleanup_close int own_dirfd = -1;
  int dirfd = devfd; /* the common case, /dev itself: no lookup */
  const char *name;
  char *slash;
  mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
  if (dir == NULL)
    return rt_make_error (err, errno, "strdup");
  if (bind)
    return bind_device (rootfd, d, err);
  slash = strrchr (dir, '/');
  *slash = '\0';
  name = slash + 1;
  if (*name == '\0')
    return rt_make_error (err, EINVAL, "linux.devices: `%s` has no file name", d->path);
  if (strcmp (dir, "/dev") != 0)
    {
      own_dirfd = device_dir (rootfd, dir, err);
      if (own_dirfd < 0)
        return -1;
      dirfd = own_dirfd;
    }
  if (mknodat (dirfd, name, type | d->mode, d->type == 'p' ? 0 : makedev (d->major, d->minor)) < 0)
    {
      if (errno == EEXIST)
        return 0; /* runc leaves a node that is there */
      if (errno == EPERM)
        return bind_device (rootfd, d, err);
      return rt_make_error (err, errno, "mknod %s", d->path);
    }
  /* mknod is subject to the umask: the mode is set again, then the owner. */
  if (fchmodat (dirfd, name, d->mode, 0) < 0)
    return rt_make_error (err, errno, "chmod %s", d->path);
  if ((d->uid != 0 || d->gid != 0) && fchownat (dirfd, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
    return rt_make_error (err, errno, "chown %s", d->path);
  return 0;
}

/* The default nodes and linux.devices, on the container's own /dev (runc: unless /dev is a bind
 * mount). In a user namespace every node is a bind mount of the host's. */
static int
create_devices (int rootfd, const rt_spec_t *spec, rt_error_t *err)
{
  static const struct
  {
    const char *target, *name;
  } links[] = {
    { "pts/ptmx", "ptmx" },        { "/proc/self/fd", "fd" },
    { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
    { "/proc/self/fd/2", "stderr" },
  };
  bool bind = spec->ns[RT_NS_USER].wanted;
  cleanup_close int devfd = open_in_root (rootfd, "/dev", O_DIRECTORY | O_RDONLY);
  size_t i;
  if (devfd < 0)
    return rt_make_error (err, errno, "open /dev in the rootfs");
  for (i = 0; i < sizeof (default_devices) / sizeof (default_devices[0]); i++)
    if (!spec_has_device (spec, default_devices[i].path)
        && make_device (rootfd, devfd, &default_devices[i], bind, err) < 0)
      return -1;
  for (i = 0; i < spec->n_devices; i++)
    if (make_device (rootfd, devfd, &spec->devices[i], bind, err) < 0)
      return -1;
  for (i = 0; i < sizeof (links) / sizeof (links[0]); i++)
    if (symlinkat (links[i].target, devfd, links[i].name) < 0 && errno != EEXIST)
      return rt_make_error (err, errno, "symlink /dev/%s", links[i].name);
  if (access ("/proc/kcore", F_OK) == 0 && symlinkat ("/proc/kcore", devfd, "core") < 0
      && errno != EEXIST)
    return rt_make_error (err, errno, "symlink /dev/core");
  return 0;
}

/* ---- after pivot_root: masked and read-only paths, read-only root ----------------------------- */

/* The mount flags a remount must keep: nosuid, nodev, noexec and, in a user namespace where the
 * kernel locks it too, the atime mode. */
static unsigned long
statvfs_flags (const struct statvfs *sv)
{
  unsigned long f = 0;
  if (sv->f_flag & ST_NOSUID)
    f |= MS_NOSUID;
  if (sv->f_flag & ST_NODEV)
    f |= MS_NODEV;
  if (sv->f_flag & ST_NOEXEC)
    f |= MS_NOEXEC;
  if (in_userns)
    {
      if (sv->f_flag & ST_NOATIME)
        f |= MS_NOATIME;
      if (sv->f_flag & ST_NODIRATIME)
        f |= MS_NODIRATIME;
      if (sv->f_flag & ST_RELATIME)
        f |= MS_RELATIME;
    }
  return f;
}

static unsigned long
locked_flags (const char *path)
{
  struct statvfs sv;
  if (statvfs (path, &sv) < 0)
    return 0;
  return statvfs_flags (&sv);
}

static int
mask_paths (char **paths, rt_error_t *err)
{
  size_t i;
  struct stat st;
  for (i = 0; paths && paths[i]; i++)
    {
      if (lstat (paths[i], &st) < 0)
        {
          if (errno == ENOENT)
            continue;
          return rt_make_error (err, errno, "mask %s: stat", paths[i]);
        }
      if (S_ISDIR (st.st_mode))
        {
          if (mount ("tmpfs", paths[i], "tmpfs", MS_RDONLY, NULL) < 0)
            return rt_make_error (err, errno, "mask %s: mount tmpfs", paths[i]);
        }
      else if (mount ("/dev/null", paths[i], NULL, MS_BIND, NULL) < 0)
        return rt_make_error (err, errno, "mask %s: bind /dev/null", paths[i]);
    }
  return 0;
}

static int
readonly_paths (char **paths, rt_error_t *err)
{
  size_t i;
  for (i = 0; paths && paths[i]; i++)
    {
      if (access (paths[i], F_OK) < 0)
        {
          if (errno == ENOENT)
            continue;
          return rt_make_error (err, errno, "read-only %s: access", paths[i]);
        }
      if (mount (paths[i], paths[i], NULL, MS_BIND | MS_REC, NULL) < 0)
        return rt_make_error (err, errno, "read-only %s: bind", paths[i]);
      if (mount (NULL, paths[i], NULL,
                 MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags (paths[i]), NULL)
          < 0)
        return rt_make_error (err, errno, "read-only %s: remount", paths[i]);
    }
  return 0;
}

static int
do_pivot_root (int rootfd, rt_error_t *err)
{
  if (fchdir (rootfd) < 0)
    return rt_make_error (err, errno, "chdir to the rootfs");
  if (syscall (SYS_pivot_root, ".", ".") < 0)
    return rt_make_error (err, errno, "pivot_root");
  /* The old root is now stacked on "."; make it a slave so that detaching it does not
   * propagate to the host, then detach it. */
  if (mount (NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
    return rt_make_error (err, errno, "make the old root rslave");
  if (umount2 (".", MNT_DETACH) < 0)
    return rt_make_error (err, errno, "umount2 the old root");
  if (chdir ("/") < 0)
    return rt_make_error (err, errno, "chdir /");
  return 0;
}

/* process.terminal, as runc: a pty from the container's own devpts (its /dev/ptmx), the master
 * sent to --console-socket (SCM_RIGHTS, with the name "/dev/ptmx"), the slave as stdin, stdout
 * and stderr (the controlling terminal once the process has its session, in rt_init_process),
 * and for the init bound over /dev/console. TIOCGPTPEER opens the slave through the master, not
 * by a path a container could replace. */
static int
setup_console (rt_init_ctx_t *ctx, bool mount_console, rt_error_t *err)
{
  const rt_spec_t *spec = ctx->spec;
  cleanup_close int master = -1, slave = -1;
  int unlock = 0, n, fd;
  char name[64];
  master = open ("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    return rt_make_error (err, errno, "process.terminal: open /dev/ptmx");
  if (ioctl (master, TIOCSPTLCK, &unlock) < 0 || ioctl (master, TIOCGPTN, &n) < 0)
    return rt_make_error (err, errno, "process.terminal: unlock the pty");
  snprintf (name, sizeof name, "/dev/pts/%d", n);
  slave = ioctl (master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    return rt_make_error (err, errno, "process.terminal: open %s", name);
  if (spec->console_height > 0 && spec->console_width > 0)
    {
      struct winsize ws = { .ws_row = (unsigned short) spec->console_height,
                            .ws_col = (unsigned short) spec->console_width };
      if (ioctl (master, TIOCSWINSZ, &ws) < 0)
        return rt_make_error (err, errno, "process.consoleSize: TIOCSWINSZ");
    }
  if (mount_console)
    {
      /* /dev/console: an empty file (0666, whatever the umask) with the slave bound on it. */
      mode_t old = umask (0);
      fd = open ("/dev/console", O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
      umask (old);
      if (fd < 0)
        return rt_make_error (err, errno, "process.terminal: create /dev/console");
      close (fd);
      if (mount (name, "/dev/console", NULL, MS_BIND, NULL) < 0)
        return rt_make_error (err, errno, "process.terminal: bind %s on /dev/console", name);
    }
  if (send_with_fd (ctx->console_fd, "/dev/ptmx", 9, master) < 0)
    return rt_make_error (err, errno, "--console-socket: send the pty's master");
  close (ctx->console_fd);
  ctx->console_fd = -1;
  for (fd = 0; fd < 3; fd++)
    if (dup2 (slave, fd) < 0)
      return rt_make_error (err, errno, "process.terminal: dup2 the pty onto %d", fd);
  ctx->console_done = true;
  return 0;
}

/* linux.sysctl, right after pivot_root: /proc/sys is the container's procfs (net.* of its network
 * namespace, kernel.shm* of its ipc namespace) and still writable (readonlyPaths come next). The
 * keys were checked against the namespaces with the spec; RESOLVE_BENEATH keeps each write under
 * /proc/sys. A dotted key becomes a path ("net.ipv4.ip_forward" → net/ipv4/ip_forward); a key
 * with slashes is a path already. */
static int
write_sysctls (const rt_spec_t *spec, rt_error_t *err)
{
  cleanup_close int dir = -1;
  size_t i;
  if (spec->n_sysctls == 0)
    return 0;
  dir = open ("/proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0)
    return rt_make_error (err, errno, "linux.sysctl: open /proc/sys");
  for (i = 0; i < spec->n_sysctls; i++)
    {
      const rt_sysctl_t *sc = &spec->sysctls[i];
      struct open_how how = { .flags = O_WRONLY | O_CLOEXEC,
                              .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
      cleanup_free char *path = strdup (sc->key);
      cleanup_close int fd = -1;
      size_t len = strlen (sc->value);
      char *p;
      if (path == NULL)
        return rt_make_error (err, errno, "strdup");
      if (strchr (path, '/') == NULL)
        for (p = path; *p; p++)
          if (*p == '.')
            *p = '/';
      fd = (int) syscall (SYS_openat2, dir, path, &how, sizeof how);
      if (fd < 0)
        return rt_make_error (err, errno, "linux.sysctl: `%s`: open /proc/sys/%s", sc->key, path);
      if (write (fd, sc->value, len) != (ssize_t) len)
        return rt_make_error (err, errno, "linux.sysctl: `%s`: write `%s` to /proc/sys/%s", sc->key,
                              sc->value, path);
    }
  return 0;
}

/* mkdir -p inside the container's root (after pivot_root: symlinks resolve inside it). */
static int
mkdir_in_container (const char *path, rt_error_t *err)
{
  cleanup_free char *copy = strdup (path);
  char *p;
  if (copy == NULL)
    return rt_make_error (err, errno, "strdup");
  for (p = copy + 1;; p++)
    if (*p == '/' || *p == '\0')
      {
        char save = *p;
        *p = '\0';
        if (mkdir (copy, 0755) < 0 && errno != EEXIST)
          return rt_make_error (err, errno, "create process.cwd: mkdir %s", copy);
        *p = save;
        if (save == '\0')
          return 0;
      }
}

/* process.cwd, entered as root right after pivot_root, and made (0755, owned by root) when it is
 * missing, as runc does; before the root is remounted read-only. When root cannot enter it (a
 * volume only the container's user may read), rt_init_process tries again after the user
 * change. */
static int
enter_cwd (rt_init_ctx_t *ctx, rt_error_t *err)
{
  const char *cwd = ctx->spec->cwd;
  if (chdir (cwd) == 0)
    {
      ctx->cwd_done = true;
      return 0;
    }
  if (errno != ENOENT)
    return 0;
  if (mkdir_in_container (cwd, err) < 0)
    return -1;
  if (chdir (cwd) < 0)
    return rt_make_error (err, errno, "chdir %s", cwd);
  ctx->cwd_done = true;
  return 0;
}

static int
setup_rootfs (rt_init_ctx_t *ctx, rt_error_t *err)
{
  const rt_spec_t *spec = ctx->spec;
  unsigned long root_prop = MS_PRIVATE | MS_REC;
  unsigned long final_prop = 0;
  cleanup_close int rootfd = -1;
  bool dev_is_tmpfs;

  if (spec->rootfs_propagation != NULL)
    {
      final_prop = propagation_flag (spec->rootfs_propagation);
      if (final_prop & (MS_SLAVE | MS_SHARED))
        root_prop = MS_SLAVE | MS_REC;
    }
  if (mount (NULL, "/", NULL, root_prop, NULL) < 0)
    return rt_make_error (err, errno, "make / %s", root_prop & MS_SLAVE ? "rslave" : "rprivate");
  if (mount (ctx->rootfs, ctx->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
    return rt_make_error (err, errno, "bind the rootfs %s", ctx->rootfs);
  rootfd = open (ctx->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0)
    return rt_make_error (err, errno, "open the rootfs %s", ctx->rootfs);
  if (mount_all (rootfd, ctx, &dev_is_tmpfs, err) < 0)
    return -1;
  if (dev_is_tmpfs && create_devices (rootfd, spec, err) < 0)
    return -1;
  if (hook_sync (ctx, rootfd, err) < 0)
    return -1;
  if (do_pivot_root (rootfd, err) < 0)
    return -1;
  if (enter_cwd (ctx, err) < 0)
    return -1;
  /* runc's order: the console after the mounts and pivot_root, before the read-only and masked
   * paths. */
  if (spec->terminal && setup_console (ctx, true, err) < 0)
    return -1;
  if (write_sysctls (spec, err) < 0)
    return -1;
  /* runc's order: read-only paths, then masked paths. */
  if (readonly_paths (spec->readonly_paths, err) < 0 || mask_paths (spec->masked_paths, err) < 0)
    return -1;
  if (spec->root_readonly
      && mount (NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags ("/"), NULL) < 0)
    return rt_make_error (err, errno, "remount / read-only");
  if (final_prop != 0 && mount (NULL, "/", NULL, final_prop, NULL) < 0)
    return rt_make_error (err, errno, "set the propagation of / to %s", spec->rootfs_propagation);
  return 0;
}

/* ---- process ------------------------------------------------------------------------------- */

static int
set_rlimits (const rt_spec_t *spec, rt_error_t *err)
{
  size_t i;
  for (i = 0; i < spec->n_rlimits; i++)
    {
      struct rlimit rl = { .rlim_cur = spec->rlimits[i].soft, .rlim_max = spec->rlimits[i].hard };
      if (setrlimit (spec->rlimits[i].resource, &rl) < 0)
        return rt_make_error (err, errno, "setrlimit process.rlimits[%zu]", i);
    }
  return 0;
}

static int
set_oom_score_adj (const rt_spec_t *spec, rt_error_t *err)
{
  cleanup_close int fd = -1;
  char buf[16];
  int len;
  if (!spec->has_oom_score_adj)
    return 0;
  fd = open ("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return rt_make_error (err, errno, "open /proc/self/oom_score_adj");
  len = snprintf (buf, sizeof buf, "%d", spec->oom_score_adj);
  if (write (fd, buf, (size_t) len) != len)
    return rt_make_error (err, errno, "write /proc/self/oom_score_adj");
  return 0;
}

int
rt_apply_limits (const rt_spec_t *spec, rt_error_t *err)
{
  if (set_rlimits (spec, err) < 0 || set_oom_score_adj (spec, err) < 0)
    return -1;
  return 0;
}

static int
last_cap (void)
{
  FILE *f = fopen ("/proc/sys/kernel/cap_last_cap", "re");
  int n = 40;
  if (f != NULL)
    {
      if (fscanf (f, "%d", &n) != 1)
        n = 40;
      fclose (f);
    }
  return n > 63 ? 63 : n;
}

static int
drop_bounding (uint64_t keep, int last, rt_error_t *err)
{
  int c;
  for (c = 0; c <= last; c++)
    if (!(keep & (1ULL << c)) && prctl (PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
      return rt_make_error (err, errno, "prctl PR_CAPBSET_DROP %d", c);
  return 0;
}

static int
capset_sets (const rt_caps_t *caps, uint64_t valid, rt_error_t *err)
{
  struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2];
  uint64_t e = caps->effective & valid, p = caps->permitted & valid, i = caps->inheritable & valid;
  data[0].effective = (uint32_t) e;
  data[1].effective = (uint32_t) (e >> 32);
  data[0].permitted = (uint32_t) p;
  data[1].permitted = (uint32_t) (p >> 32);
  data[0].inheritable = (uint32_t) i;
  data[1].inheritable = (uint32_t) (i >> 32);
  if (syscall (SYS_capset, &hdr, data) < 0)
    return rt_make_error (err, errno, "capset");
  return 0;
}

static int
set_ambient (uint64_t ambient, int last, rt_error_t *err)
{
  int c;
  if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
    return rt_make_error (err, errno, "prctl PR_CAP_AMBIENT_CLEAR_ALL");
  for (c = 0; c <= last; c++)
    /* The kernel refuses an ambient capability that is not both permitted and inheritable;
     * like runc, such a request is not an error. */
    if ((ambient & (1ULL << c)) && prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0
        && errno != EPERM)
      return rt_make_error (err, errno, "prctl PR_CAP_AMBIENT_RAISE %d", c);
  return 0;
}

/* runc's fixStdioPermissions: stdio the container's user does not own (the pipes or the file
 * the caller gave) is handed to that user, so that it can reopen /proc/self/fd/N or fchmod it;
 * only the owner changes, the group stays. /dev/null is left alone. EINVAL (an unmapped id in a
 * user namespace), EPERM (an owner not mapped there) and EROFS are skipped, as runc does. */
static int
chown_stdio (uid_t uid, rt_error_t *err)
{
  int fd;
  for (fd = 0; fd < 3; fd++)
    {
      struct stat st;
      if (fstat (fd, &st) < 0)
        {
          if (errno == EBADF)
            continue;
          return rt_make_error (err, errno, "fstat stdio descriptor %d", fd);
        }
      if (st.st_uid == uid || (S_ISCHR (st.st_mode) && st.st_rdev == makedev (1, 3)))
        continue;
      if (fchown (fd, uid, st.st_gid) < 0 && errno != EINVAL && errno != EPERM && errno != EROFS)
        return rt_make_error (err, errno, "chown stdio descriptor %d to %u", fd, (unsigned) uid);
    }
  return 0;
}

/* Bounding set, then user and groups (keeping the permitted set across setuid), then the
 * capability sets and the ambient set. */
static int
set_user_and_caps (const rt_spec_t *spec, rt_error_t *err)
{
  rt_caps_t caps = spec->caps;
  int last = last_cap ();
  uint64_t valid = last >= 63 ? ~0ULL : (1ULL << (last + 1)) - 1;
  if (!caps.given)
    {
      caps.bounding = caps.effective = caps.permitted = rt_caps_docker_default ();
      caps.inheritable = caps.ambient = 0;
    }
  if (drop_bounding (caps.bounding, last, err) < 0)
    return -1;
  if (prctl (PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    return rt_make_error (err, errno, "prctl PR_SET_KEEPCAPS");
  if (chown_stdio (spec->uid, err) < 0)
    return -1;
  if (setgroups (spec->n_additional_gids, spec->additional_gids) < 0)
    return rt_make_error (err, errno, "setgroups");
  if (setresgid (spec->gid, spec->gid, spec->gid) < 0)
    return rt_make_error (err, errno, "setresgid %u", (unsigned) spec->gid);
  if (setresuid (spec->uid, spec->uid, spec->uid) < 0)
    return rt_make_error (err, errno, "setresuid %u", (unsigned) spec->uid);
  if (prctl (PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
    return rt_make_error (err, errno, "prctl PR_SET_KEEPCAPS");
  if (capset_sets (&caps, valid, err) < 0)
    return -1;
  return set_ambient (caps.ambient & valid, last, err);
}

/* The home directory of UID in the container's /etc/passwd, or NULL (heap string). */
static char *
passwd_home (uid_t uid)
{
  cleanup_free char *line = NULL;
  char *home = NULL;
  size_t cap = 0;
  FILE *f = fopen ("/etc/passwd", "re");
  if (f == NULL)
    return NULL;
  while (home == NULL && getline (&line, &cap, f) > 0)
    {
      /* name:password:uid:gid:gecos:home:shell */
      char *fields[7], *p = line, *end;
      size_t n = 0;
      unsigned long id;
      line[strcspn (line, "\n")] = '\0';
      while (n < 7 && p != NULL)
        fields[n++] = strsep (&p, ":");
      if (n < 6 || fields[2][0] == '\0')
        continue;
      id = strtoul (fields[2], &end, 10);
      if (*end == '\0' && id == uid)
        home = strdup (fields[5]);
    }
  fclose (f);
  return home;
}

/* runc sets HOME when process.env lacks it: the user's entry in the container's /etc/passwd,
 * else "/". */
static int
set_home (uid_t uid, rt_error_t *err)
{
  cleanup_free char *home = passwd_home (uid);
  if (setenv ("HOME", home != NULL && home[0] != '\0' ? home : "/", 1) < 0)
    return rt_make_error (err, errno, "setenv HOME");
  return 0;
}

static int
set_env (const rt_spec_t *spec, rt_error_t *err)
{
  size_t i;
  if (clearenv () != 0)
    return rt_make_error (err, errno, "clearenv");
  for (i = 0; spec->env && spec->env[i]; i++)
    if (strchr (spec->env[i], '=') == NULL || putenv (spec->env[i]) != 0)
      return rt_make_error (err, errno, "process.env[%zu]: bad entry `%s`", i, spec->env[i]);
  if (getenv ("HOME") == NULL && set_home (spec->uid, err) < 0)
    return -1;
  return 0;
}

/* process.args[0] through the container's PATH, as execvp would, so that a missing executable
 * fails `create` rather than the first instruction after `start`. */
static int
resolve_executable (rt_init_ctx_t *ctx, rt_error_t *err)
{
  const char *arg0 = ctx->spec->args[0];
  const char *path = getenv ("PATH");
  cleanup_free char *copy = NULL;
  char *dir, *save = NULL;
  if (strchr (arg0, '/') != NULL)
    {
      if (access (arg0, X_OK) < 0)
        return rt_make_error (err, errno, "exec %s", arg0);
      ctx->exec_path = strdup (arg0);
      return ctx->exec_path ? 0 : rt_make_error (err, errno, "strdup");
    }
  copy = strdup (path ? path : "/usr/local/bin:/usr/bin:/bin");
  if (copy == NULL)
    return rt_make_error (err, errno, "strdup");
  for (dir = strtok_r (copy, ":", &save); dir; dir = strtok_r (NULL, ":", &save))
    {
      char *candidate = NULL;
      if (asprintf (&candidate, "%s/%s", dir, arg0) < 0)
        return rt_make_error (err, errno, "asprintf");
      if (access (candidate, X_OK) == 0)
        {
          ctx->exec_path = candidate;
          return 0;
        }
      free (candidate);
    }
  return rt_make_error (err, 0, "exec %s: executable file not found in $PATH", arg0);
}

static int
reset_signals (rt_error_t *err)
{
  sigset_t all;
  int s;
  for (s = 1; s < NSIG; s++)
    if (s != SIGKILL && s != SIGSTOP)
      signal (s, SIG_DFL);
  sigemptyset (&all);
  if (sigprocmask (SIG_SETMASK, &all, NULL) < 0)
    return rt_make_error (err, errno, "sigprocmask");
  return 0;
}

/* SCMP_ACT_NOTIFY: the listener descriptor goes to `create` (or `exec`) over the sync socket;
 * it forwards it to the agent at linux.seccomp.listenerPath, and we wait until it did. */
static int
send_notify_fd (rt_init_ctx_t *ctx, int fd, rt_error_t *err)
{
  sync_msg_t m;
  int ret = sync_send_fd (ctx->sync_fd, SYNC_SECCOMP, fd, err);
  close (fd);
  if (ret < 0)
    return -1;
  if (sync_recv (ctx->sync_fd, &m, "it passed on the seccomp notify descriptor", err) < 0)
    return -1;
  if (m.type != SYNC_CONTINUE)
    return rt_make_error (err, 0, "unexpected message `%c` on the sync socket", m.type);
  return 0;
}

static int
load_seccomp (rt_init_ctx_t *ctx, rt_error_t *err)
{
  int ret, notify_fd = -1;
  if (ctx->seccomp == NULL)
    return 0;
  ret = rt_seccomp_load (ctx->seccomp, ctx->spec->seccomp.notify ? &notify_fd : NULL, err);
  rt_seccomp_free (ctx->seccomp);
  ctx->seccomp = NULL;
  if (ret == 0 && notify_fd >= 0)
    ret = send_notify_fd (ctx, notify_fd, err);
  return ret;
}

/* linux.seccomp is compiled here, where an error still reaches `create` (or `exec`). It is loaded
 * as late as the kernel allows: right before execve with no_new_privs; without it, before the
 * capabilities are dropped, while CAP_SYS_ADMIN is still held (runc's order). A filter with
 * SCMP_ACT_NOTIFY is loaded before the process reports ready instead (at the end of
 * rt_init_process), so that its listener descriptor can still go out over the sync socket. */
static int
build_seccomp (rt_init_ctx_t *ctx, rt_error_t *err)
{
  const rt_spec_t *spec = ctx->spec;
  if (!spec->seccomp.given)
    return 0;
  if (rt_seccomp_build (&spec->seccomp, &ctx->seccomp, err) < 0)
    return -1;
  if (!spec->no_new_privileges)
    return load_seccomp (ctx, err);
  return 0;
}

int
rt_init_process (rt_init_ctx_t *ctx, rt_error_t *err)
{
  const rt_spec_t *spec = ctx->spec;
  if (reset_signals (err) < 0)
    return -1;
  /* Every container process leads a session of its own, as with runc: not the caller's process
   * group (which reads as 0 inside a PID namespace), and no controlling terminal of the host. */
  if (setsid () < 0)
    return rt_make_error (err, errno, "setsid");
  if (spec->terminal)
    {
      /* exec: the pty is made here, in the container's mount namespace. */
      if (!ctx->console_done && setup_console (ctx, false, err) < 0)
        return -1;
      if (ioctl (0, TIOCSCTTY, 0) < 0)
        return rt_make_error (err, errno, "process.terminal: make the pty the controlling terminal");
    }
  if (set_env (spec, err) < 0 || resolve_executable (ctx, err) < 0)
    return -1;
  /* linux.personality and process.ioPriority (an RT class needs the capabilities still held). */
  if (spec->has_personality && personality (spec->personality) < 0)
    return rt_make_error (err, errno, "linux.personality: personality");
  if (spec->ioprio >= 0 && syscall (SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, spec->ioprio) < 0)
    return rt_make_error (err, errno, "process.ioPriority: ioprio_set");
  if (spec->no_new_privileges && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return rt_make_error (err, errno, "prctl PR_SET_NO_NEW_PRIVS");
  if (build_seccomp (ctx, err) < 0)
    return -1;
  /* runc's order: cwd entered as root first; only a refusal (a directory the container's user
   * may enter, root not, e.g. over NFS) is tried again as the user. */
  if (!ctx->cwd_done)
    {
      if (chdir (spec->cwd) == 0)
        ctx->cwd_done = true;
      else if (errno != EACCES && errno != EPERM)
        return rt_make_error (err, errno, "chdir %s", spec->cwd);
    }
  if (set_user_and_caps (spec, err) < 0)
    return -1;
  if (!ctx->cwd_done && chdir (spec->cwd) < 0)
    return rt_make_error (err, errno, "chdir %s", spec->cwd);
  umask (spec->has_umask ? spec->umask : 022);
  /* No descriptor of ours may reach the container process; --preserve-fds N keeps the caller's
   * 3..3+N-1 (main made sure ours are above them). */
  if (syscall (SYS_close_range, 3U + (unsigned) ctx->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
    return rt_make_error (err, errno, "close_range");
  if (spec->seccomp.notify && load_seccomp (ctx, err) < 0)
    return -1;
  return 0;
}

/* A new network namespace has only `lo`, and it is down; runc brings it up, so that localhost
 * works in the container. lo has no other flag one may change, so IFF_UP alone is its whole new
 * set and no SIOCGIFFLAGS is needed. */
static int
bring_lo_up (rt_error_t *err)
{
  struct ifreq ifr;
  cleanup_close int fd = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return rt_make_error (err, errno, "bring lo up: socket");
  memset (&ifr, 0, sizeof ifr);
  memcpy (ifr.ifr_name, "lo", 3);
  ifr.ifr_flags = IFF_UP;
  if (ioctl (fd, SIOCSIFFLAGS, &ifr) < 0)
    return rt_make_error (err, errno, "bring lo up: SIOCSIFFLAGS");
  return 0;
}

static int
set_uts_names (const rt_spec_t *spec, rt_error_t *err)
{
  bool host = spec->hostname != NULL && spec->hostname[0] != '\0';
  bool domain = spec->domainname != NULL && spec->domainname[0] != '\0';
  if ((host || domain) && !spec->ns[RT_NS_UTS].wanted)
    return rt_make_error (err, 0, "%s: needs a uts namespace", host ? "hostname" : "domainname");
  if (host && sethostname (spec->hostname, strlen (spec->hostname)) < 0)
    return rt_make_error (err, errno, "sethostname %s", spec->hostname);
  if (domain && setdomainname (spec->domainname, strlen (spec->domainname)) < 0)
    return rt_make_error (err, errno, "setdomainname %s", spec->domainname);
  return 0;
}

int
rt_init_container (rt_init_ctx_t *ctx, rt_error_t *err)
{
  const rt_spec_t *spec = ctx->spec;
  in_userns = spec->ns[RT_NS_USER].wanted;
  if (spec->ns[RT_NS_NETWORK].wanted && spec->ns[RT_NS_NETWORK].path == NULL
      && bring_lo_up (err) < 0)
    return -1;
  if (spec->ns[RT_NS_MOUNT].wanted && spec->ns[RT_NS_MOUNT].path == NULL
      && setup_rootfs (ctx, err) < 0)
    return -1;
  if (set_uts_names (spec, err) < 0)
    return -1;
  return rt_init_process (ctx, err);
}

int
rt_exec_process (rt_init_ctx_t *ctx, rt_error_t *err)
{
  if (load_seccomp (ctx, err) < 0)
    return -1;
  execv (ctx->exec_path, ctx->spec->args);
  return rt_make_error (err, errno, "exec %s", ctx->exec_path);
}

int
rt_exec_container (rt_init_ctx_t *ctx, rt_error_t *err)
{
  char path[64];
  cleanup_close int fd = -1;
  fd_path (ctx->fifo_fd, path, sizeof path);
  /* Opening the fifo for writing blocks until `start` opens it for reading. */
  fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return rt_make_error (err, errno, "open the exec fifo");
  /* `start` is waiting: the startContainer hooks run now, and a failure goes to it through the
   * fifo instead of the "0" it waits for. */
  if (run_init_hooks (ctx, RT_HOOK_START_CONTAINER, "created", err) < 0)
    {
      char line[2048];
      rt_error_format (err, line, sizeof line);
      if (write (fd, line, strlen (line)) < 0)
        return -1;
      return -1;
    }
  if (write (fd, "0", 1) != 1)
    return rt_make_error (err, errno, "write the exec fifo");
  return rt_exec_process (ctx, err);
}

/* ---- exec: joining a running container ----------------------------------------------------- */

static const char *const proc_ns_names[RT_NS_COUNT] = {
  [RT_NS_MOUNT] = "mnt", [RT_NS_UTS] = "uts", [RT_NS_IPC] = "ipc", [RT_NS_PID] = "pid",
  [RT_NS_NETWORK] = "net", [RT_NS_CGROUP] = "cgroup", [RT_NS_USER] = "user",
};

int
rt_open_container_namespaces (const rt_spec_t *spec, pid_t pid, int fds[RT_NS_COUNT],
                              rt_error_t *err)
{
  int t;
  for (t = 0; t < RT_NS_COUNT; t++)
    fds[t] = -1;
  for (t = 0; t < RT_NS_COUNT; t++)
    {
      char path[64];
      if (!spec->ns[t].wanted)
        continue;
      snprintf (path, sizeof path, "/proc/%d/ns/%s", pid, proc_ns_names[t]);
      fds[t] = open (path, O_RDONLY | O_CLOEXEC);
      if (fds[t] < 0)
        {
          int e = errno;
          rt_close_namespaces (fds);
          return rt_make_error (err, e, "open %s", path);
        }
    }
  return 0;
}

void
rt_close_namespaces (int fds[RT_NS_COUNT])
{
  int t;
  for (t = 0; t < RT_NS_COUNT; t++)
    if (fds[t] >= 0)
      {
        close (fds[t]);
        fds[t] = -1;
      }
}

int
rt_join_namespaces (int fds[RT_NS_COUNT], rt_error_t *err)
{
  /* The mount namespace last: setns into it also moves our root and cwd into the container. */
  static const enum rt_ns_type order[] = { RT_NS_USER, RT_NS_IPC, RT_NS_UTS, RT_NS_NETWORK,
                                           RT_NS_PID, RT_NS_CGROUP, RT_NS_MOUNT };
  size_t i;
  for (i = 0; i < sizeof (order) / sizeof (order[0]); i++)
    {
      enum rt_ns_type t = order[i];
      if (fds[t] >= 0 && setns (fds[t], ns_clone_flags[t]) < 0)
        return rt_make_error (err, errno, "setns %s namespace", rt_ns_name (t));
    }
  return 0;
}
