#include "container.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <json-c/json.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "devices.h"
#include "hooks.h"
#include "linux.h"
#include "spec.h"
#include "state.h"
#include "sync.h"

/* ---- the processes inside -------------------------------------------------------------------- */

static void __attribute__ ((noreturn))
run_init (int sync_fd, rt_init_ctx_t *ctx)
{
  rt_error_t err = { 0, NULL };
  char line[4096];
  ctx->sync_fd = sync_fd;
  if (rt_init_container (ctx, &err) < 0)
    {
      sync_send (sync_fd, SYNC_ERROR, 0, &err);
      _exit (1);
    }
  sync_send (sync_fd, SYNC_READY, 0, NULL);
  close (sync_fd);
  rt_exec_container (ctx, &err);
  /* After `start`: nobody listens on the sync socket any more, stderr is the container's. */
  rt_error_format (&err, line, sizeof line);
  dprintf (2, "swarm-runtime: %s\n", line);
  _exit (127);
}

/* The first child: joins and unshares the namespaces, then forks the init into the new PID
 * namespace (the "second fork"; CLONE_NEWPID only applies to children) and exits. */
static void __attribute__ ((noreturn))
run_first_child (int sync_fd, rt_init_ctx_t *ctx)
{
  rt_error_t err = { 0, NULL };
  pid_t pid;
  /* Join the cgroup first: the cgroup namespace unshared below is rooted where we are. */
  if (ctx->cgroup_path != NULL && rt_cgroup_enter (ctx->cgroup_path, ctx->cgroup_extra, &err) < 0)
    {
      sync_send (sync_fd, SYNC_ERROR, 0, &err);
      _exit (1);
    }
  if (rt_apply_limits (ctx->spec, &err) < 0 || rt_enter_namespaces (ctx->spec, sync_fd, &err) < 0)
    {
      sync_send (sync_fd, SYNC_ERROR, 0, &err);
      _exit (1);
    }
  if (!rt_needs_second_fork (ctx->spec))
    {
      sync_send (sync_fd, SYNC_PID, getpid (), NULL);
      run_init (sync_fd, ctx);
    }
  pid = fork ();
  if (pid < 0)
    {
      rt_make_error (&err, errno, "fork the container init");
      sync_send (sync_fd, SYNC_ERROR, 0, &err);
      _exit (1);
    }
  if (pid == 0)
    run_init (sync_fd, ctx);
  sync_send (sync_fd, SYNC_PID, pid, NULL);
  _exit (0);
}

/* ---- create ---------------------------------------------------------------------------------- */

static int
now_rfc3339 (char *buf, size_t len)
{
  struct timespec ts;
  struct tm tm;
  char base[32];
  if (clock_gettime (CLOCK_REALTIME, &ts) < 0 || gmtime_r (&ts.tv_sec, &tm) == NULL)
    return -1;
  strftime (base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf (buf, len, "%s.%09ldZ", base, ts.tv_nsec);
  return 0;
}

static int
write_pid_file (const char *path, pid_t pid, rt_error_t *err)
{
  cleanup_free char *tmp = NULL;
  cleanup_close int fd = -1;
  char buf[32];
  int len = snprintf (buf, sizeof buf, "%d", pid);
  if (asprintf (&tmp, "%s.tmp", path) < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return rt_make_error (err, errno, "open pid file `%s`", tmp);
  if (write (fd, buf, (size_t) len) != len)
    return rt_make_error (err, errno, "write pid file `%s`", tmp);
  if (rename (tmp, path) < 0)
    return rt_make_error (err, errno, "rename pid file `%s`", tmp);
  return 0;
}

static int
make_exec_fifo (const char *dir, const rt_spec_t *spec, rt_error_t *err)
{
  cleanup_free char *path = NULL;
  int fd;
  if (asprintf (&path, "%s/exec.fifo", dir) < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  if (mkfifo (path, 0600) < 0)
    return rt_make_error (err, errno, "mkfifo `%s`", path);
  /* The init opens it for writing after it became the container's user. */
  if (chmod (path, 0622) < 0)
    return rt_make_error (err, errno, "chmod `%s`", path);
  (void) spec;
  fd = open (path, O_PATH | O_CLOEXEC);
  if (fd < 0)
    return rt_make_error (err, errno, "open `%s`", path);
  return fd;
}

/* prestart and createRuntime, in the runtime's namespaces once the init asked (its mounts are
 * done, pivot_root is not): the state is "creating", with the init's host pid. */
static int
run_create_hooks (const rt_init_ctx_t *ctx, pid_t pid, rt_error_t *err)
{
  const rt_spec_t *spec = ctx->spec;
  cleanup_free char *state = NULL;
  if (spec->hooks[RT_HOOK_PRESTART].n == 0 && spec->hooks[RT_HOOK_CREATE_RUNTIME].n == 0)
    return 0;
  state = rt_hook_state (spec->oci_version, ctx->id, "creating", pid, ctx->bundle,
                         spec->annotations_json);
  if (state == NULL)
    return rt_make_error (err, ENOMEM, "hook state");
  if (rt_hooks_run (&spec->hooks[RT_HOOK_PRESTART], RT_HOOK_PRESTART, state, err) < 0
      || rt_hooks_run (&spec->hooks[RT_HOOK_CREATE_RUNTIME], RT_HOOK_CREATE_RUNTIME, state, err)
             < 0)
    return -1;
  return 0;
}

static int
write_id_map (pid_t pid, const char *file, const char *field, const rt_idmap_t *map, size_t n,
              rt_error_t *err)
{
  char path[64], buf[340 * 36];
  size_t len = 0, i;
  cleanup_close int fd = -1;
  for (i = 0; i < n && len < sizeof buf; i++)
    len += (size_t) snprintf (buf + len, sizeof buf - len, "%u %u %u\n", map[i].container_id,
                              map[i].host_id, map[i].size);
  snprintf (path, sizeof path, "/proc/%d/%s", pid, file);
  fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return rt_make_error (err, errno, "%s: open %s", field, path);
  /* The whole map in one write: the kernel takes one write per map file. */
  if (write (fd, buf, len) != (ssize_t) len)
    return rt_make_error (err, errno, "%s: write %s", field, path);
  return 0;
}

/* Child 1 made its user namespace: its maps, written from the host (root here may map any ids,
 * and setgroups stays allowed, so additionalGids work inside). */
static int
write_id_maps (const rt_spec_t *spec, pid_t pid, rt_error_t *err)
{
  if (write_id_map (pid, "uid_map", "linux.uidMappings", spec->uid_map, spec->n_uid_map, err) < 0)
    return -1;
  return write_id_map (pid, "gid_map", "linux.gidMappings", spec->gid_map, spec->n_gid_map, err);
}

/* A connected unix stream socket to PATH; WHAT names it in errors. */
static int
connect_unix (const char *path, const char *what, rt_error_t *err)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int sock;
  if (strlen (path) >= sizeof addr.sun_path)
    return rt_make_error (err, ENAMETOOLONG, "%s `%s`", what, path);
  memcpy (addr.sun_path, path, strlen (path) + 1);
  sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0)
    return rt_make_error (err, errno, "%s: socket", what);
  if (connect (sock, (struct sockaddr *) &addr, sizeof addr) < 0)
    {
      int e = errno;
      close (sock);
      return rt_make_error (err, e, "%s: connect to %s", what, path);
    }
  return sock;
}

/* SCMP_ACT_NOTIFY: the listener descriptor FD goes to the agent at linux.seccomp.listenerPath
 * with the container process state (runtime-spec "containerProcessState": fds ["seccompFd"],
 * the process's pid, listenerMetadata, the container's state), as runc sends it. */
static int
send_to_seccomp_agent (const rt_spec_t *spec, const char *id, const char *bundle, pid_t pid,
                       pid_t init_pid, const char *status, int fd, rt_error_t *err)
{
  const char *path = spec->seccomp.listener_path;
  cleanup_free char *state = rt_hook_state (spec->oci_version, id, status, init_pid, bundle,
                                            spec->annotations_json);
  cleanup_close int sock = -1;
  json_object *o, *fds, *st;
  const char *text;
  int ret = 0;
  if (state == NULL)
    return rt_make_error (err, ENOMEM, "seccomp agent state");
  sock = connect_unix (path, "linux.seccomp.listenerPath", err);
  if (sock < 0)
    return -1;
  o = json_object_new_object ();
  fds = json_object_new_array ();
  st = json_tokener_parse (state);
  json_object_object_add (o, "ociVersion", json_object_new_string (spec->oci_version));
  json_object_array_add (fds, json_object_new_string ("seccompFd"));
  json_object_object_add (o, "fds", fds);
  json_object_object_add (o, "pid", json_object_new_int64 (pid));
  if (spec->seccomp.listener_metadata != NULL && spec->seccomp.listener_metadata[0] != '\0')
    json_object_object_add (o, "metadata", json_object_new_string (spec->seccomp.listener_metadata));
  json_object_object_add (o, "state", st);
  text = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  if (send_with_fd (sock, text, strlen (text), fd) < 0)
    ret = rt_make_error (err, errno, "linux.seccomp.listenerPath: send the notify descriptor to %s", path);
  json_object_put (o);
  return ret;
}

/* Reads the messages of a successful create: the init's pid (from child 1, or from the init
 * itself without a PID namespace), "hooks" when the spec has some (from the init, answered once
 * the pid is known) and "ready" (from the init). They come from two processes, so the init's
 * may overtake the pid: take them in any order. *pid is set as soon as it is known, so that the
 * caller can kill the init on failure. */
static int
sync_pid_and_ready (int fd, const rt_init_ctx_t *ctx, pid_t *pid, rt_error_t *err)
{
  bool have_pid = false, ready = false, hooks_asked = false, hooks_done = false;
  cleanup_close int notify_fd = -1;
  sync_msg_t m;
  while (!have_pid || !ready)
    {
      int passed = -1;
      if (sync_recv_fd (fd, &m, &passed,
                        !have_pid                    ? "it reported its pid"
                        : hooks_asked && !hooks_done ? "it ran the hooks"
                                                     : "it was ready",
                        err)
          < 0)
        {
          if (passed >= 0)
            close (passed);
          return -1;
        }
      if (passed >= 0 && !(m.type == SYNC_SECCOMP && notify_fd == -1))
        {
          close (passed);
          passed = -1;
        }
      if (m.type == SYNC_SECCOMP && passed >= 0)
        notify_fd = passed;
      else if (m.type == SYNC_PID && !have_pid)
        {
          *pid = m.pid;
          have_pid = true;
        }
      else if (m.type == SYNC_READY && !ready)
        ready = true;
      else if (m.type == SYNC_HOOKS && !hooks_asked)
        hooks_asked = true;
      else if (m.type == SYNC_USERMAP)
        {
          if (write_id_maps (ctx->spec, m.pid, err) < 0)
            return -1;
          sync_send (fd, SYNC_CONTINUE, m.pid, NULL);
        }
      else
        return rt_make_error (err, 0, "unexpected message `%c` on the sync socket", m.type);
      if (hooks_asked && !hooks_done && have_pid)
        {
          if (run_create_hooks (ctx, *pid, err) < 0)
            return -1;
          sync_send (fd, SYNC_CONTINUE, *pid, NULL);
          hooks_done = true;
        }
      if (notify_fd >= 0 && have_pid)
        {
          if (send_to_seccomp_agent (ctx->spec, ctx->id, ctx->bundle, *pid, *pid, "creating",
                                     notify_fd, err)
              < 0)
            return -1;
          close (notify_fd);
          notify_fd = -2; /* sent: no second one */
          sync_send (fd, SYNC_CONTINUE, *pid, NULL);
        }
    }
  return 0;
}

/* Forks the first child and follows the sync protocol until the init is ready. */
static int
spawn_container (rt_init_ctx_t *ctx, pid_t *pid, rt_error_t *err)
{
  int sv[2];
  pid_t child;
  int status, ret;
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return rt_make_error (err, errno, "socketpair");
  child = fork ();
  if (child < 0)
    {
      close (sv[0]);
      close (sv[1]);
      return rt_make_error (err, errno, "fork");
    }
  if (child == 0)
    {
      close (sv[0]);
      run_first_child (sv[1], ctx);
    }
  close (sv[1]);
  ret = sync_pid_and_ready (sv[0], ctx, pid, err);
  close (sv[0]);
  /* Child 1 exits once it forked the init; without a PID namespace it is the init itself, which
   * stays (blocked on the fifo) unless it failed. */
  if (ret < 0 || *pid != child)
    {
      if (ret < 0 && *pid == child)
        kill (child, SIGKILL);
      while (waitpid (child, &status, 0) < 0 && errno == EINTR)
        ;
    }
  return ret;
}

static void
kill_and_reap (pid_t pid)
{
  int i;
  if (pid <= 0)
    return;
  kill (pid, SIGKILL);
  /* It is our child under `run` (subreaper); otherwise init's. Wait for it to go either way. */
  for (i = 0; i < 200; i++)
    {
      if (waitpid (pid, NULL, WNOHANG) == pid)
        return;
      if (!rt_pid_running (pid))
        return;
      usleep (5000);
    }
}

static int
create_in_state_dir (const rt_create_opts_t *opts, const rt_spec_t *spec, const char *bundle,
                     const char *rootfs, const char *cgroup_path, unsigned cgroup_extra,
                     bool *cgroup_made, pid_t *pid, rt_error_t *err)
{
  cleanup_free char *dir = rt_state_dir (opts->root, opts->id);
  cleanup_close int fifo_fd = -1;
  rt_init_ctx_t ctx = { .spec = spec,
                        .id = opts->id,
                        .bundle = bundle,
                        .sync_fd = -1,
                        .console_fd = -1,
                        .preserve_fds = opts->preserve_fds,
                        .rootfs = rootfs,
                        .fifo_fd = -1,
                        .cgroup_path = cgroup_path,
                        .cgroup_extra = cgroup_extra };
  rt_state_t st = { 0 };
  char created[64];
  int ret;

  if (dir == NULL)
    return rt_make_error (err, ENOMEM, "asprintf");
  fifo_fd = make_exec_fifo (dir, spec, err);
  if (fifo_fd < 0)
    return -1;
  ctx.fifo_fd = fifo_fd;
  /* From here on a failure removes the cgroup (also when it failed half-way). */
  if (rt_cgroup_create (cgroup_path, &spec->resources, cgroup_extra, cgroup_made, err) < 0)
    return -1;
  ret = rt_open_mount_fds (spec, &ctx.mount_fds, err);
  if (ret == 0 && opts->console_socket != NULL)
    {
      ctx.console_fd = connect_unix (opts->console_socket, "--console-socket", err);
      ret = ctx.console_fd < 0 ? -1 : 0;
    }
  if (ret == 0)
    ret = spawn_container (&ctx, pid, err);
  /* The init has its copies (or failed); ours go. */
  rt_close_mount_fds (spec, ctx.mount_fds);
  if (ctx.console_fd >= 0)
    close (ctx.console_fd);
  if (ret < 0)
    return -1;
  if (now_rfc3339 (created, sizeof created) < 0)
    return rt_make_error (err, errno, "clock_gettime");
  st.id = (char *) opts->id;
  st.bundle = (char *) bundle;
  st.oci_version = spec->oci_version;
  st.annotations_json = spec->annotations_json;
  st.created = created;
  st.pid = *pid;
  st.cgroup_path = (char *) cgroup_path;
  st.cgroup_extra = cgroup_extra;
  st.rootfs = (char *) rootfs;
  st.post_hooks_json = spec->post_hooks_json;
  if (rt_proc_start_time (*pid, &st.start_time) < 0)
    return rt_make_error (err, errno, "read /proc/%d/stat", *pid);
  if (rt_state_write (opts->root, &st, err) < 0)
    return -1;
  if (opts->pid_file != NULL && write_pid_file (opts->pid_file, *pid, err) < 0)
    return -1;
  return 0;
}

/* A terminal goes to --console-socket, and only there: this runtime does not keep a pty of its
 * own to copy from (runc does, for a `run` in the foreground). */
static int
check_terminal (bool terminal, const char *console_socket, const char *field, rt_error_t *err)
{
  if (terminal && console_socket == NULL)
    return rt_make_error (err, 0, "%s: needs --console-socket (swarm-runtime sends the pty's master "
                                  "there; it does not relay a terminal itself)",
                          field);
  if (!terminal && console_socket != NULL)
    return rt_make_error (err, 0, "--console-socket: %s is false", field);
  return 0;
}

int
rt_container_create (const rt_create_opts_t *opts, pid_t *pid, rt_error_t *err)
{
  cleanup_free char *bundle = NULL, *config = NULL, *rootfs = NULL, *cgroup_path = NULL;
  rt_spec_t *spec = NULL;
  rt_error_t ignored = { 0, NULL };
  bool cgroup_made = false;
  unsigned cgroup_extra;
  int ret;

  *pid = 0;
  if (rt_check_id (opts->id, err) < 0)
    return -1;
  bundle = realpath (opts->bundle ? opts->bundle : ".", NULL);
  if (bundle == NULL)
    return rt_make_error (err, errno, "bundle `%s`", opts->bundle ? opts->bundle : ".");
  if (asprintf (&config, "%s/config.json", bundle) < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  if (rt_spec_load (config, &spec, err) < 0)
    return -1;
  /* Relative paths in the spec (root.path, bind sources) are relative to the bundle. */
  if (chdir (bundle) < 0)
    {
      rt_spec_free (spec);
      return rt_make_error (err, errno, "chdir `%s`", bundle);
    }
  rootfs = realpath (spec->root_path, NULL);
  if (rootfs == NULL)
    {
      ret = rt_make_error (err, errno, "%s: root.path: `%s`", config, spec->root_path);
      rt_spec_free (spec);
      return ret;
    }
  if (!spec->ns[RT_NS_MOUNT].wanted || spec->ns[RT_NS_MOUNT].path != NULL)
    {
      rt_spec_free (spec);
      return rt_make_error (err, 0, "%s: linux.namespaces: a new mount namespace is required",
                            config);
    }
  if (check_terminal (spec->terminal, opts->console_socket, "process.terminal", err) < 0)
    {
      rt_spec_free (spec);
      return -1;
    }
  if (rt_cgroup_path (spec->cgroups_path, opts->id, &cgroup_path, err) < 0)
    {
      rt_wrap_error (err, "%s", config);
      rt_spec_free (spec);
      return -1;
    }
  if (rt_devices_add_defaults (spec, err) < 0)
    {
      rt_spec_free (spec);
      return -1;
    }
  if (rt_state_dir_create (opts->root, opts->id, err) < 0)
    {
      rt_spec_free (spec);
      return -1;
    }
  cgroup_extra = rt_cgroup_wanted (spec);
  ret = create_in_state_dir (opts, spec, bundle, rootfs, cgroup_path, cgroup_extra, &cgroup_made,
                             pid, err);
  if (ret < 0)
    {
      /* Nothing half-created remains: the init (if any), its cgroup and the state directory. */
      kill_and_reap (*pid);
      *pid = 0;
      if (cgroup_made)
        rt_cgroup_destroy (cgroup_path, cgroup_extra, &ignored);
      rt_error_release (&ignored);
      rt_state_dir_remove (opts->root, opts->id, &ignored);
      rt_error_release (&ignored);
    }
  rt_spec_free (spec);
  return ret;
}

/* ---- start, state, kill, delete ----------------------------------------------------------------- */

static int
load_state (const char *root, const char *id, rt_state_t **st, enum rt_status *status,
            rt_error_t *err)
{
  if (rt_state_read (root, id, st, err) < 0)
    return -1;
  *status = rt_state_status (root, *st);
  return 0;
}

/* poststart (by `start`) or poststop (by `delete`), from the hooks kept in state.json, in the
 * runtime's namespaces. */
static int
run_post_hooks (const rt_state_t *st, enum rt_hook_kind kind, const char *status, rt_error_t *err)
{
  rt_hook_list_t lists[RT_HOOK_KINDS];
  cleanup_free char *state = NULL;
  int ret;
  if (rt_hooks_from_json (st->post_hooks_json, lists, err) < 0)
    return -1;
  state = rt_hook_state (st->oci_version, st->id, status, st->pid, st->bundle,
                         st->annotations_json);
  if (state == NULL)
    ret = rt_make_error (err, ENOMEM, "hook state");
  else
    ret = rt_hooks_run (&lists[kind], kind, state, err);
  rt_hooks_release (lists);
  return ret;
}

/* Reads the byte the init writes once `start` opened the fifo; gives up if the init dies. */
static int
wait_exec_fifo (int fd, const rt_state_t *st, rt_error_t *err)
{
  struct pollfd p = { .fd = fd, .events = POLLIN };
  char byte;
  for (;;)
    {
      int n = poll (&p, 1, 100);
      if (n < 0 && errno != EINTR)
        return rt_make_error (err, errno, "poll the exec fifo");
      if (n > 0 && (p.revents & POLLIN))
        {
          ssize_t r = read (fd, &byte, 1);
          if (r == 1 && byte == '0')
            return 0;
          if (r == 1)
            {
              /* A startContainer hook failed: its message follows, written at once. */
              char msg[2048];
              ssize_t k = read (fd, msg, sizeof msg - 1);
              msg[k > 0 ? k : 0] = '\0';
              return rt_make_error (err, 0, "%c%s", byte, msg);
            }
          if (r < 0 && errno != EAGAIN && errno != EINTR)
            return rt_make_error (err, errno, "read the exec fifo");
        }
      if (!rt_state_alive (st))
        return rt_make_error (err, 0, "the container process exited before start");
    }
}

int
rt_container_start (const char *root, const char *id, rt_error_t *err)
{
  rt_state_t *st = NULL;
  enum rt_status status;
  cleanup_free char *dir = NULL, *fifo = NULL;
  cleanup_close int fd = -1;
  int ret;

  if (load_state (root, id, &st, &status, err) < 0)
    return -1;
  if (status != RT_STATUS_CREATED)
    {
      ret = rt_make_error (err, 0, "cannot start a container that is %s", rt_status_name (status));
      rt_state_free (st);
      return ret;
    }
  dir = rt_state_dir (root, id);
  if (dir == NULL || asprintf (&fifo, "%s/exec.fifo", dir) < 0)
    {
      rt_state_free (st);
      return rt_make_error (err, ENOMEM, "asprintf");
    }
  fd = open (fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    ret = rt_make_error (err, errno, "open `%s`", fifo);
  else
    ret = wait_exec_fifo (fd, st, err);
  if (ret == 0 && unlink (fifo) < 0)
    ret = rt_make_error (err, errno, "unlink `%s`", fifo);
  if (ret == 0 && st->post_hooks_json != NULL)
    ret = run_post_hooks (st, RT_HOOK_POSTSTART, "running", err);
  if (ret < 0 && st->post_hooks_json != NULL)
    /* A failed startContainer or poststart hook stops the container (runtime.md, lifecycle
     * steps 7 and 9); `delete` destroys it. */
    kill (st->pid, SIGKILL);
  rt_state_free (st);
  return ret;
}

int
rt_container_state (const char *root, const char *id, rt_error_t *err)
{
  rt_state_t *st = NULL;
  int ret;
  if (rt_state_read (root, id, &st, err) < 0)
    return -1;
  ret = rt_state_print (root, st, err);
  rt_state_free (st);
  return ret;
}

static const struct
{
  const char *name;
  int sig;
} signal_names[] = {
  { "HUP", SIGHUP },   { "INT", SIGINT },   { "QUIT", SIGQUIT }, { "ILL", SIGILL },
  { "TRAP", SIGTRAP }, { "ABRT", SIGABRT }, { "BUS", SIGBUS },   { "FPE", SIGFPE },
  { "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 },
  { "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "CHLD", SIGCHLD },
  { "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },
  { "TTOU", SIGTTOU }, { "URG", SIGURG },   { "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ },
  { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
  { "PWR", SIGPWR },   { "SYS", SIGSYS },
};

int
rt_parse_signal (const char *name)
{
  char *end;
  long n;
  size_t i;
  if (name[0] >= '0' && name[0] <= '9')
    {
      n = strtol (name, &end, 10);
      return (*end == '\0' && n > 0 && n < NSIG) ? (int) n : -1;
    }
  if (strncmp (name, "SIG", 3) == 0)
    name += 3;
  for (i = 0; i < sizeof (signal_names) / sizeof (signal_names[0]); i++)
    if (strcmp (signal_names[i].name, name) == 0)
      return signal_names[i].sig;
  return -1;
}

int
rt_container_kill (const char *root, const char *id, const char *signame, bool all,
                   rt_error_t *err)
{
  rt_state_t *st = NULL;
  enum rt_status status;
  int sig = rt_parse_signal (signame ? signame : "TERM");
  int ret = 0;
  if (sig < 0)
    return rt_make_error (err, 0, "unknown signal `%s`", signame);
  if (load_state (root, id, &st, &status, err) < 0)
    return -1;
  if (all && st->cgroup_path != NULL)
    ret = rt_cgroup_kill (st->cgroup_path, sig, err); /* stopped is fine: orphans may remain */
  else if (status == RT_STATUS_STOPPED)
    ret = rt_make_error (err, 0, "cannot kill a container that is stopped");
  else if (kill (st->pid, sig) < 0)
    ret = rt_make_error (err, errno, "kill %d", st->pid);
  rt_state_free (st);
  return ret;
}

static int
wait_gone (const rt_state_t *st, rt_error_t *err)
{
  int i;
  for (i = 0; i < 2000; i++)
    {
      waitpid (st->pid, NULL, WNOHANG); /* ours under `run` */
      if (!rt_state_alive (st))
        return 0;
      usleep (5000);
    }
  return rt_make_error (err, 0, "process %d did not exit after SIGKILL", st->pid);
}

int
rt_container_delete (const char *root, const char *id, bool force, rt_error_t *err)
{
  rt_state_t *st = NULL;
  enum rt_status status;
  int ret = 0;
  if (load_state (root, id, &st, &status, err) < 0)
    {
      /* A state directory without a readable state file (a crash mid-create) can be forced; with
       * --force, a container that does not exist is not an error (runc and crun exit 0). */
      cleanup_free char *dir = rt_state_dir (root, id);
      rt_error_t bad_id = { 0, NULL };
      if (!force || rt_check_id (id, &bad_id) < 0 || dir == NULL)
        {
          rt_error_release (&bad_id);
          return -1;
        }
      rt_error_release (err);
      if (access (dir, F_OK) == 0)
        return rt_state_dir_remove (root, id, err);
      return 0;
    }
  if (status != RT_STATUS_STOPPED)
    {
      if (!force)
        ret = rt_make_error (err, 0, "cannot delete a container that is %s (use --force)",
                             rt_status_name (status));
      else if (kill (st->pid, SIGKILL) < 0 && errno != ESRCH)
        ret = rt_make_error (err, errno, "kill %d", st->pid);
      else
        {
          /* A paused container: a v1 freezer holds even SIGKILL until it thaws (v2's lets it
           * through; thawing is harmless there). */
          if (status == RT_STATUS_PAUSED)
            {
              rt_error_t ignored = { 0, NULL };
              if (st->cgroup_path != NULL && rt_cgroup_kill (st->cgroup_path, SIGKILL, &ignored) == 0)
                rt_cgroup_freeze (st->cgroup_path, false, &ignored);
              rt_error_release (&ignored);
            }
          ret = wait_gone (st, err);
        }
    }
  /* Whatever is left in the cgroup (children of an init without a PID namespace) goes too. */
  if (ret == 0 && st->cgroup_path != NULL)
    ret = rt_cgroup_destroy (st->cgroup_path, st->cgroup_extra, err);
  if (ret == 0)
    ret = rt_state_dir_remove (root, id, err);
  if (ret == 0 && st->post_hooks_json != NULL)
    {
      /* runtime.md: a failing poststop hook is a warning; delete goes on. */
      rt_error_t hook_err = { 0, NULL };
      if (run_post_hooks (st, RT_HOOK_POSTSTOP, "stopped", &hook_err) < 0)
        {
          char line[2048];
          rt_error_format (&hook_err, line, sizeof line);
          fprintf (stderr, "swarm-runtime: delete %s: warning: %s\n", id, line);
          rt_error_release (&hook_err);
        }
    }
  rt_state_free (st);
  return ret;
}

int
rt_container_stats (const char *root, const char *id, rt_error_t *err)
{
  rt_state_t *st = NULL;
  int ret;
  if (rt_state_read (root, id, &st, err) < 0)
    return -1;
  if (st->cgroup_path == NULL)
    ret = rt_make_error (err, 0, "the container has no cgroup");
  else
    ret = rt_cgroup_print_stats (id, st->cgroup_path, err);
  rt_state_free (st);
  return ret;
}

/* ---- run --------------------------------------------------------------------------------------- */

static volatile sig_atomic_t forward_pid;

static void
forward_signal (int sig)
{
  if (forward_pid > 0)
    kill (forward_pid, sig);
}

static int
install_forwarding (rt_error_t *err)
{
  static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
  struct sigaction sa;
  size_t i;
  memset (&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset (&sa.sa_mask);
  for (i = 0; i < sizeof (sigs) / sizeof (sigs[0]); i++)
    if (sigaction (sigs[i], &sa, NULL) < 0)
      return rt_make_error (err, errno, "sigaction");
  return 0;
}

/* Waits for the init (our child: we are a subreaper), reaping any other orphan on the way. */
static int
wait_init (pid_t pid, int *exit_code, rt_error_t *err)
{
  for (;;)
    {
      int status;
      pid_t r = waitpid (-1, &status, 0);
      if (r < 0)
        {
          if (errno == EINTR)
            continue;
          return rt_make_error (err, errno, "waitpid %d", pid);
        }
      if (r != pid)
        continue;
      if (WIFEXITED (status))
        *exit_code = WEXITSTATUS (status);
      else if (WIFSIGNALED (status))
        *exit_code = 128 + WTERMSIG (status);
      else
        continue;
      return 0;
    }
}

int
rt_container_run (const rt_create_opts_t *opts, bool detach, int *exit_code, rt_error_t *err)
{
  rt_error_t ignored = { 0, NULL };
  pid_t pid;
  *exit_code = 0;
  /* The init is the grandchild; as a subreaper we can wait for it. */
  if (!detach && prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    return rt_make_error (err, errno, "prctl PR_SET_CHILD_SUBREAPER");
  if (rt_container_create (opts, &pid, err) < 0)
    return -1;
  if (!detach && install_forwarding (err) < 0)
    goto fail;
  forward_pid = pid;
  if (rt_container_start (opts->root, opts->id, err) < 0)
    goto fail;
  if (detach)
    return 0;
  if (wait_init (pid, exit_code, err) < 0)
    goto fail;
  forward_pid = 0;
  return rt_container_delete (opts->root, opts->id, true, err);

fail:
  forward_pid = 0;
  rt_container_delete (opts->root, opts->id, true, &ignored);
  rt_error_release (&ignored);
  return -1;
}

/* ---- exec -------------------------------------------------------------------------------------- */

static int
strv_append (char ***v, const char *s, rt_error_t *err)
{
  size_t n = 0;
  char **bigger;
  while (*v && (*v)[n])
    n++;
  bigger = realloc (*v, (n + 2) * sizeof (char *));
  if (bigger == NULL)
    return rt_make_error (err, errno, "realloc");
  *v = bigger;
  bigger[n] = strdup (s);
  bigger[n + 1] = NULL;
  if (bigger[n] == NULL)
    return rt_make_error (err, errno, "strdup");
  return 0;
}

static void
strv_free (char **v)
{
  size_t i;
  for (i = 0; v && v[i]; i++)
    free (v[i]);
  free (v);
}

/* "UID" or "UID:GID", decimal. */
static int
parse_user (const char *s, rt_spec_t *spec, rt_error_t *err)
{
  char *end;
  unsigned long uid, gid;
  errno = 0;
  uid = strtoul (s, &end, 10);
  if (end == s || errno != 0 || uid >= UINT32_MAX || (*end != '\0' && *end != ':'))
    return rt_make_error (err, 0, "--user: `%s` is not UID[:GID]", s);
  spec->uid = (uid_t) uid;
  if (*end == '\0')
    return 0;
  s = end + 1;
  gid = strtoul (s, &end, 10);
  if (end == s || errno != 0 || gid >= UINT32_MAX || *end != '\0')
    return rt_make_error (err, 0, "--user: `%s` is not UID[:GID]", s);
  spec->gid = (gid_t) gid;
  return 0;
}

/* The process to run: the container's config.json (read from the bundle, as runc does), its
 * process replaced by --process, then the command line's args, cwd, env and user. */
static int
exec_spec (const rt_exec_opts_t *o, const rt_state_t *st, rt_spec_t **out, rt_error_t *err)
{
  cleanup_free char *config = NULL;
  rt_spec_t *spec = NULL;
  size_t i;
  *out = NULL;
  if (asprintf (&config, "%s/config.json", st->bundle) < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  if (rt_spec_load (config, &spec, err) < 0)
    return -1;
  *out = spec;
  if (o->process_file != NULL && rt_spec_load_process (o->process_file, spec, err) < 0)
    return -1;
  if (o->args != NULL && o->args[0] != NULL)
    {
      strv_free (spec->args);
      spec->args = NULL;
      for (i = 0; o->args[i]; i++)
        if (strv_append (&spec->args, o->args[i], err) < 0)
          return -1;
    }
  else if (o->process_file == NULL)
    return rt_make_error (err, 0, "no command given (ID -- CMD [ARGS...], or --process FILE)");
  if (o->cwd != NULL)
    {
      if (o->cwd[0] != '/')
        return rt_make_error (err, 0, "--cwd: `%s` must be an absolute path", o->cwd);
      free (spec->cwd);
      spec->cwd = strdup (o->cwd);
      if (spec->cwd == NULL)
        return rt_make_error (err, errno, "strdup");
    }
  for (i = 0; i < o->n_env; i++)
    {
      if (strchr (o->env[i], '=') == NULL)
        return rt_make_error (err, 0, "--env: `%s` is not K=V", o->env[i]);
      if (strv_append (&spec->env, o->env[i], err) < 0)
        return -1;
    }
  if (o->user != NULL && parse_user (o->user, spec, err) < 0)
    return -1;
  if (o->tty)
    spec->terminal = true;
  /* --cap, as runc: into the bounding, effective, permitted and ambient sets (without
   * process.capabilities, the default set is what they are added to). */
  if (o->n_caps > 0 && !spec->caps.given)
    {
      spec->caps.given = true;
      spec->caps.bounding = spec->caps.effective = spec->caps.permitted = rt_caps_docker_default ();
    }
  for (i = 0; i < o->n_caps; i++)
    {
      int cap = rt_cap_from_name (o->caps[i]);
      if (cap < 0)
        return rt_make_error (err, 0, "--cap: unknown capability `%s`", o->caps[i]);
      spec->caps.bounding |= 1ULL << cap;
      spec->caps.effective |= 1ULL << cap;
      spec->caps.permitted |= 1ULL << cap;
      spec->caps.ambient |= 1ULL << cap;
    }
  return check_terminal (spec->terminal, o->console_socket, o->tty ? "--tty" : "process.terminal",
                         err);
}

/* The exec'd process: the process settings, then execve. Its end of the sync socket is
 * close-on-exec, so a successful execve is an EOF for `exec`. */
static void __attribute__ ((noreturn))
run_exec_process (int sync_fd, rt_init_ctx_t *ctx)
{
  rt_error_t err = { 0, NULL };
  ctx->sync_fd = sync_fd;
  if (rt_init_process (ctx, &err) == 0)
    rt_exec_process (ctx, &err);
  sync_send (sync_fd, SYNC_ERROR, 0, &err);
  _exit (127);
}

/* The first child of exec: joins the cgroups of the container's init (on the host's
 * /sys/fs/cgroup, so before its mount namespace), its namespaces, then forks the process into its
 * PID namespace. */
static void __attribute__ ((noreturn))
run_exec_child (int sync_fd, rt_init_ctx_t *ctx, pid_t init, int ns_fds[RT_NS_COUNT])
{
  rt_error_t err = { 0, NULL };
  pid_t pid;
  if (rt_cgroup_enter_as (init, &err) < 0 || rt_apply_limits (ctx->spec, &err) < 0
      || rt_join_namespaces (ns_fds, &err) < 0)
    {
      sync_send (sync_fd, SYNC_ERROR, 0, &err);
      _exit (1);
    }
  rt_close_namespaces (ns_fds);
  pid = fork ();
  if (pid < 0)
    {
      rt_make_error (&err, errno, "fork the process");
      sync_send (sync_fd, SYNC_ERROR, 0, &err);
      _exit (1);
    }
  if (pid == 0)
    run_exec_process (sync_fd, ctx);
  sync_send (sync_fd, SYNC_PID, pid, NULL);
  _exit (0);
}

/* Reads until EOF: the pid (from the first child) and, if a step failed, the error. EOF without
 * an error means the process has exec'd. */
static int
sync_exec (int fd, const rt_init_ctx_t *ctx, pid_t init, pid_t *pid, rt_error_t *err)
{
  sync_msg_t m;
  bool failed = false;
  cleanup_close int notify_fd = -1;
  for (;;)
    {
      int passed = -1;
      ssize_t n;
      /* The notify descriptor may come before the pid (two processes send): it waits. */
      if (notify_fd >= 0 && *pid > 0)
        {
          if (send_to_seccomp_agent (ctx->spec, ctx->id, ctx->bundle, *pid, init, "running",
                                     notify_fd, err)
              < 0)
            failed = true;
          else
            sync_send (fd, SYNC_CONTINUE, *pid, NULL);
          close (notify_fd);
          notify_fd = -1;
        }
      n = sync_read (fd, &m, &passed);
      if (n < 0)
        return rt_make_error (err, errno, "read the sync socket");
      if (n == 0)
        break;
      if (n != (ssize_t) sizeof m)
        {
          if (passed >= 0)
            close (passed);
          return rt_make_error (err, 0, "short message on the sync socket");
        }
      if (m.type == SYNC_PID)
        *pid = m.pid;
      else if (m.type == SYNC_ERROR && !failed)
        {
          failed = true;
          rt_make_error (err, m.status, "%s", m.text);
        }
      else if (m.type == SYNC_SECCOMP && passed >= 0 && !failed && notify_fd < 0)
        {
          notify_fd = passed;
          passed = -1;
        }
      if (passed >= 0)
        close (passed);
    }
  if (failed)
    return -1;
  if (*pid <= 0)
    return rt_make_error (err, 0, "the process exited before it reported its pid");
  return 0;
}

static int
spawn_exec (rt_init_ctx_t *ctx, pid_t init, int ns_fds[RT_NS_COUNT], pid_t *pid, rt_error_t *err)
{
  int sv[2], status, ret;
  pid_t child;
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return rt_make_error (err, errno, "socketpair");
  child = fork ();
  if (child < 0)
    {
      close (sv[0]);
      close (sv[1]);
      return rt_make_error (err, errno, "fork");
    }
  if (child == 0)
    {
      close (sv[0]);
      run_exec_child (sv[1], ctx, init, ns_fds);
    }
  close (sv[1]);
  ret = sync_exec (sv[0], ctx, init, pid, err);
  close (sv[0]);
  while (waitpid (child, &status, 0) < 0 && errno == EINTR)
    ;
  if (ret < 0 && *pid > 0)
    {
      kill_and_reap (*pid);
      *pid = 0;
    }
  return ret;
}

static int
exec_in (const rt_exec_opts_t *o, const rt_state_t *st, rt_spec_t *spec, int *exit_code,
         rt_error_t *err)
{
  rt_init_ctx_t ctx = { .spec = spec,
                        .id = o->id,
                        .bundle = st->bundle,
                        .sync_fd = -1,
                        .fifo_fd = -1,
                        .console_fd = -1,
                        .preserve_fds = o->preserve_fds };
  int ns_fds[RT_NS_COUNT];
  pid_t pid = 0;
  int ret;
  if (rt_open_container_namespaces (spec, st->pid, ns_fds, err) < 0)
    return -1;
  /* The descriptors are the init's unless its pid was reused meanwhile: check once more. */
  if (!rt_state_alive (st))
    {
      rt_close_namespaces (ns_fds);
      return rt_make_error (err, 0, "cannot exec in a container that is stopped");
    }
  if (!o->detach && prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    {
      rt_close_namespaces (ns_fds);
      return rt_make_error (err, errno, "prctl PR_SET_CHILD_SUBREAPER");
    }
  ret = 0;
  if (o->console_socket != NULL)
    {
      ctx.console_fd = connect_unix (o->console_socket, "--console-socket", err);
      ret = ctx.console_fd < 0 ? -1 : 0;
    }
  if (ret == 0)
    ret = spawn_exec (&ctx, st->pid, ns_fds, &pid, err);
  if (ctx.console_fd >= 0)
    close (ctx.console_fd);
  rt_close_namespaces (ns_fds);
  if (ret < 0)
    return -1;
  if (o->pid_file != NULL && write_pid_file (o->pid_file, pid, err) < 0)
    {
      kill_and_reap (pid);
      return -1;
    }
  if (o->detach)
    return 0;
  forward_pid = pid;
  if (install_forwarding (err) < 0 || wait_init (pid, exit_code, err) < 0)
    {
      forward_pid = 0;
      kill_and_reap (pid);
      return -1;
    }
  forward_pid = 0;
  return 0;
}

int
rt_container_exec (const rt_exec_opts_t *o, int *exit_code, rt_error_t *err)
{
  rt_state_t *st = NULL;
  rt_spec_t *spec = NULL;
  enum rt_status status;
  int ret;
  *exit_code = 0;
  if (load_state (o->root, o->id, &st, &status, err) < 0)
    return -1;
  if (status == RT_STATUS_STOPPED)
    ret = rt_make_error (err, 0, "cannot exec in a container that is stopped");
  else if (exec_spec (o, st, &spec, err) < 0)
    ret = -1;
  else
    ret = exec_in (o, st, spec, exit_code, err);
  rt_spec_free (spec);
  rt_state_free (st);
  return ret;
}

/* ---- ps ---------------------------------------------------------------------------------------- */

static bool
has_pid (const pid_t *pids, size_t n, long pid)
{
  size_t i;
  for (i = 0; i < n; i++)
    if (pids[i] == pid)
      return true;
  return false;
}

/* Runs ps(1) with ARGS (default -ef), output and errors into one buffer, as runc does. */
static int
run_ps (char **args, char **out, rt_error_t *err)
{
  const char *argv[64] = { "ps" };
  size_t n = 1, len = 0, cap = 0;
  int pipefd[2], status;
  pid_t child;
  char *buf = NULL;
  for (; args && *args && n < 63; args++)
    argv[n++] = *args;
  if (n == 1)
    argv[n++] = "-ef";
  argv[n] = NULL;
  if (pipe2 (pipefd, O_CLOEXEC) < 0)
    return rt_make_error (err, errno, "pipe");
  child = fork ();
  if (child < 0)
    {
      close (pipefd[0]);
      close (pipefd[1]);
      return rt_make_error (err, errno, "fork");
    }
  if (child == 0)
    {
      if (dup2 (pipefd[1], 1) < 0 || dup2 (pipefd[1], 2) < 0)
        _exit (127);
      execvp ("ps", (char *const *) argv);
      dprintf (2, "exec ps: %s\n", strerror (errno));
      _exit (127);
    }
  close (pipefd[1]);
  for (;;)
    {
      ssize_t r;
      if (len + 4096 + 1 > cap)
        {
          char *bigger = realloc (buf, cap = cap ? cap * 2 : 65536);
          if (bigger == NULL)
            break;
          buf = bigger;
        }
      r = read (pipefd[0], buf + len, cap - len - 1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      len += (size_t) r;
    }
  close (pipefd[0]);
  while (waitpid (child, &status, 0) < 0 && errno == EINTR)
    ;
  if (buf == NULL)
    return rt_make_error (err, ENOMEM, "read the output of ps");
  buf[len] = '\0';
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      char *nl = strchr (buf, '\n');
      if (nl)
        *nl = '\0';
      rt_make_error (err, 0, "ps failed: %s", buf);
      free (buf);
      return -1;
    }
  *out = buf;
  return 0;
}

/* runc's table: ps's header, then its lines whose PID column is one of the container's. */
static int
print_ps_table (const pid_t *pids, size_t n, char **ps_args, rt_error_t *err)
{
  cleanup_free char *text = NULL;
  char *line, *save = NULL, *header;
  int pid_col = -1, col = 0;
  cleanup_free char *hdr_copy = NULL;
  char *f, *fsave = NULL;
  if (run_ps (ps_args, &text, err) < 0)
    return -1;
  header = strtok_r (text, "\n", &save);
  if (header == NULL || (hdr_copy = strdup (header)) == NULL)
    return rt_make_error (err, 0, "ps printed nothing");
  for (f = strtok_r (hdr_copy, " \t", &fsave); f; f = strtok_r (NULL, " \t", &fsave), col++)
    if (strcmp (f, "PID") == 0)
      {
        pid_col = col;
        break;
      }
  if (pid_col < 0)
    return rt_make_error (err, 0, "no PID column in the output of ps");
  printf ("%s\n", header);
  while ((line = strtok_r (NULL, "\n", &save)) != NULL)
    {
      const char *p = line;
      char *end;
      long pid;
      for (col = 0; col < pid_col && *p; col++)
        {
          p += strspn (p, " \t");
          p += strcspn (p, " \t");
        }
      pid = strtol (p, &end, 10);
      if (end != p && has_pid (pids, n, pid))
        printf ("%s\n", line);
    }
  if (fflush (stdout) != 0)
    return rt_make_error (err, errno, "write stdout");
  return 0;
}

int
rt_container_ps (const char *root, const char *id, const char *format, char **ps_args,
                 rt_error_t *err)
{
  rt_state_t *st = NULL;
  cleanup_free pid_t *pids = NULL;
  size_t n = 0, i;
  int ret = 0;
  if (format != NULL && strcmp (format, "table") != 0 && strcmp (format, "json") != 0)
    return rt_make_error (err, 0, "--format: `%s` is not table or json", format);
  if (rt_state_read (root, id, &st, err) < 0)
    return -1;
  if (st->cgroup_path == NULL)
    ret = rt_make_error (err, 0, "the container has no cgroup");
  else
    ret = rt_cgroup_pids (st->cgroup_path, &pids, &n, err);
  rt_state_free (st);
  if (ret < 0)
    return -1;
  if (format != NULL && strcmp (format, "json") == 0)
    {
      printf ("[");
      for (i = 0; i < n; i++)
        printf ("%s%d", i ? "," : "", pids[i]);
      printf ("]\n");
      if (fflush (stdout) != 0)
        return rt_make_error (err, errno, "write stdout");
      return 0;
    }
  return print_ps_table (pids, n, ps_args, err);
}

/* ---- update ------------------------------------------------------------------------------------ */

/* runc's memory values (units.RAMInBytes): a number with an optional binary unit, "512m",
 * "1.5g", "100kb"; -1 is "unlimited". */
static int
parse_ram (const char *name, const char *v, int64_t *out, rt_error_t *err)
{
  static const char units[] = "kmgtp";
  char *end;
  double n;
  const char *u;
  if (strcmp (v, "-1") == 0)
    {
      *out = -1;
      return 0;
    }
  errno = 0;
  n = strtod (v, &end);
  if (end == v || errno != 0 || n < 0)
    return rt_make_error (err, 0, "--%s: `%s` is not a size", name, v);
  if (*end == ' ')
    end++;
  if (*end != '\0')
    {
      char c = (char) (*end | 0x20);
      u = strchr (units, c);
      if (u == NULL || c == '\0')
        return rt_make_error (err, 0, "--%s: `%s` is not a size", name, v);
      n *= (double) (1ULL << (10 * (u - units + 1)));
      end++;
      if ((*end | 0x20) == 'i')
        end++;
      if ((*end | 0x20) == 'b')
        end++;
      if (*end != '\0')
        return rt_make_error (err, 0, "--%s: `%s` is not a size", name, v);
    }
  *out = (int64_t) n;
  return 0;
}

static int
parse_num (const char *name, const char *v, bool is_signed, int64_t *out, rt_error_t *err)
{
  char *end;
  long long n;
  errno = 0;
  n = strtoll (v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || (!is_signed && n < 0))
    return rt_make_error (err, 0, "--%s: `%s` is not %s number", name, v,
                          is_signed ? "a" : "a non-negative");
  *out = n;
  return 0;
}

/* update's flags into R, as runc reads them: a value of 0 means "leave it". */
static int
update_from_flags (const rt_update_opts_t *o, rt_resources_t *r, rt_error_t *err)
{
  size_t i;
  for (i = 0; i < o->n_flags; i++)
    {
      const char *name = o->flags[i].name, *v = o->flags[i].value;
      int64_t n = 0;
      if (strcmp (name, "memory") == 0 || strcmp (name, "memory-swap") == 0
          || strcmp (name, "memory-reservation") == 0)
        {
          if (parse_ram (name, v, &n, err) < 0)
            return -1;
          if (n == 0)
            continue;
          if (name[6] == '\0')
            r->has_memory_limit = true, r->memory_limit = n;
          else if (name[7] == 's')
            r->has_memory_swap = true, r->memory_swap = n;
          else
            r->has_memory_reservation = true, r->memory_reservation = n;
        }
      else if (strcmp (name, "kernel-memory") == 0 || strcmp (name, "kernel-memory-tcp") == 0)
        return rt_make_error (err, 0, "--%s: kernel memory limits are deprecated and not applied",
                              name);
      else if (strcmp (name, "cpuset-cpus") == 0 || strcmp (name, "cpuset-mems") == 0)
        {
          char **field = name[7] == 'c' ? &r->cpuset_cpus : &r->cpuset_mems;
          if (v[0] == '\0')
            continue;
          free (*field);
          *field = strdup (v);
          if (*field == NULL)
            return rt_make_error (err, errno, "strdup");
        }
      else
        {
          bool is_signed = strcmp (name, "cpu-quota") == 0 || strcmp (name, "cpu-rt-runtime") == 0
                           || strcmp (name, "pids-limit") == 0;
          if (parse_num (name, v, is_signed, &n, err) < 0)
            return -1;
          if (n == 0)
            continue;
          if (strcmp (name, "cpu-quota") == 0)
            r->has_cpu_quota = true, r->cpu_quota = n;
          else if (strcmp (name, "cpu-period") == 0)
            r->has_cpu_period = true, r->cpu_period = (uint64_t) n;
          else if (strcmp (name, "cpu-share") == 0 || strcmp (name, "cpu-shares") == 0)
            r->has_cpu_shares = true, r->cpu_shares = (uint64_t) n;
          else if (strcmp (name, "cpu-rt-period") == 0)
            r->has_cpu_rt_period = true, r->cpu_rt_period = (uint64_t) n;
          else if (strcmp (name, "cpu-rt-runtime") == 0)
            r->has_cpu_rt_runtime = true, r->cpu_rt_runtime = n;
          else if (strcmp (name, "pids-limit") == 0)
            r->has_pids_limit = true, r->pids_limit = n;
          else if (strcmp (name, "blkio-weight") == 0)
            r->has_blkio = true, r->blkio_weight = (uint64_t) n;
        }
    }
  return 0;
}

int
rt_container_update (const char *root, const char *id, const rt_update_opts_t *o,
                     rt_error_t *err)
{
  rt_resources_t r;
  rt_state_t *st = NULL;
  enum rt_status status;
  unsigned extra;
  int ret = 0;
  memset (&r, 0, sizeof r);
  if (load_state (root, id, &st, &status, err) < 0)
    return -1;
  if (status == RT_STATUS_STOPPED)
    ret = rt_make_error (err, 0, "cannot update a container that is stopped");
  else if (st->cgroup_path == NULL)
    ret = rt_make_error (err, 0, "the container has no cgroup");
  else if (o->resources_file != NULL)
    ret = rt_resources_load (o->resources_file, &r, err);
  else
    ret = update_from_flags (o, &r, err);
  extra = st->cgroup_extra;
  if (ret == 0)
    ret = rt_cgroup_update (st->cgroup_path, &r, &extra, err);
  /* A hierarchy joined for this update is removed with the others at delete. */
  if (extra != st->cgroup_extra)
    {
      rt_error_t ignored = { 0, NULL };
      st->cgroup_extra = extra;
      if (rt_state_write (root, st, ret == 0 ? err : &ignored) < 0)
        ret = -1;
      rt_error_release (&ignored);
    }
  rt_resources_release (&r);
  rt_state_free (st);
  return ret;
}

/* ---- pause and resume --------------------------------------------------------------------------- */

int
rt_container_pause (const char *root, const char *id, bool freeze, rt_error_t *err)
{
  rt_state_t *st = NULL;
  enum rt_status status;
  int ret;
  if (load_state (root, id, &st, &status, err) < 0)
    return -1;
  if (st->cgroup_path == NULL)
    ret = rt_make_error (err, 0, "the container has no cgroup");
  else if (freeze && status != RT_STATUS_RUNNING && status != RT_STATUS_CREATED)
    ret = rt_make_error (err, 0, "cannot pause a container that is %s", rt_status_name (status));
  else if (!freeze && status != RT_STATUS_PAUSED)
    ret = rt_make_error (err, 0, "cannot resume a container that is %s", rt_status_name (status));
  else
    ret = rt_cgroup_freeze (st->cgroup_path, freeze, err);
  rt_state_free (st);
  return ret;
}

/* ---- list --------------------------------------------------------------------------------------- */

/* The user name of UID in the host's /etc/passwd (static glibc has no NSS), or "#UID". */
static void
owner_name (uid_t uid, char *buf, size_t len)
{
  cleanup_free char *line = NULL;
  size_t cap = 0;
  FILE *f = fopen ("/etc/passwd", "re");
  snprintf (buf, len, "#%u", (unsigned) uid);
  if (f == NULL)
    return;
  while (getline (&line, &cap, f) > 0)
    {
      char *name = line, *p = strchr (line, ':'), *end;
      if (p == NULL || (p = strchr (p + 1, ':')) == NULL)
        continue;
      if (strtoul (p + 1, &end, 10) == uid && *end == ':')
        {
          *strchr (line, ':') = '\0';
          snprintf (buf, len, "%s", name);
          break;
        }
    }
  fclose (f);
}

/* Go's RFC3339Nano: the fraction of a second without its trailing zeros. */
static void
rfc3339_nano (const char *created, char *buf, size_t len)
{
  char *dot, *z;
  snprintf (buf, len, "%s", created);
  dot = strchr (buf, '.');
  z = dot ? strchr (dot, 'Z') : NULL;
  if (dot == NULL || z == NULL)
    return;
  while (z > dot + 1 && z[-1] == '0')
    memmove (z - 1, z, strlen (z) + 1), z--;
  if (z == dot + 1)
    memmove (dot, z, strlen (z) + 1);
}

typedef struct
{
  rt_state_t *st;
  enum rt_status status;
  char owner[64];
  char created[64];
} list_entry_t;

static int
compare_entries (const void *a, const void *b)
{
  return strcmp (((const list_entry_t *) a)->st->id, ((const list_entry_t *) b)->st->id);
}

static int
print_list (list_entry_t *e, size_t n, const char *format, bool quiet, rt_error_t *err)
{
  size_t i, k;
  if (quiet)
    {
      for (i = 0; i < n; i++)
        printf ("%s\n", e[i].st->id);
    }
  else if (format != NULL && strcmp (format, "json") == 0)
    {
      /* runc's encoder: a nil list is "null". */
      json_object *arr = n > 0 ? json_object_new_array () : NULL;
      for (i = 0; i < n; i++)
        {
          json_object *o = json_object_new_object (), *ann;
          json_object_object_add (o, "ociVersion", json_object_new_string (e[i].st->oci_version));
          json_object_object_add (o, "id", json_object_new_string (e[i].st->id));
          json_object_object_add (o, "pid", json_object_new_int64 (e[i].status == RT_STATUS_STOPPED ? 0 : e[i].st->pid));
          json_object_object_add (o, "status", json_object_new_string (rt_status_name (e[i].status)));
          json_object_object_add (o, "bundle", json_object_new_string (e[i].st->bundle));
          json_object_object_add (o, "rootfs", json_object_new_string (e[i].st->rootfs ? e[i].st->rootfs : ""));
          json_object_object_add (o, "created", json_object_new_string (e[i].created));
          ann = json_tokener_parse (e[i].st->annotations_json);
          if (ann != NULL && json_object_object_length (ann) > 0)
            json_object_object_add (o, "annotations", ann);
          else
            json_object_put (ann);
          json_object_object_add (o, "owner", json_object_new_string (e[i].owner));
          json_object_array_add (arr, o);
        }
      printf ("%s\n", arr ? json_object_to_json_string_ext (arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : "null");
      json_object_put (arr);
    }
  else
    {
      /* Go's tabwriter as runc sets it up: each column as wide as its widest cell plus 3, at
       * least 12; the last column unpadded. */
      static const char *const header[6] = { "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER" };
      size_t width[5];
      char pid[24];
      for (k = 0; k < 5; k++)
        width[k] = strlen (header[k]);
      for (i = 0; i < n; i++)
        {
          const char *cells[5] = { e[i].st->id, pid, rt_status_name (e[i].status), e[i].st->bundle, e[i].created };
          snprintf (pid, sizeof pid, "%d", e[i].status == RT_STATUS_STOPPED ? 0 : e[i].st->pid);
          for (k = 0; k < 5; k++)
            if (strlen (cells[k]) > width[k])
              width[k] = strlen (cells[k]);
        }
      for (k = 0; k < 5; k++)
        width[k] = width[k] + 3 < 12 ? 12 : width[k] + 3;
      for (k = 0; k < 5; k++)
        printf ("%-*s", (int) width[k], header[k]);
      printf ("%s\n", header[5]);
      for (i = 0; i < n; i++)
        {
          snprintf (pid, sizeof pid, "%d", e[i].status == RT_STATUS_STOPPED ? 0 : e[i].st->pid);
          const char *cells[5] = { e[i].st->id, pid, rt_status_name (e[i].status), e[i].st->bundle, e[i].created };
          for (k = 0; k < 5; k++)
            printf ("%-*s", (int) width[k], cells[k]);
          printf ("%s\n", e[i].owner);
        }
    }
  if (fflush (stdout) != 0)
    return rt_make_error (err, errno, "write stdout");
  return 0;
}

int
rt_container_list (const char *root, const char *format, bool quiet, rt_error_t *err)
{
  list_entry_t *entries = NULL;
  size_t n = 0, cap = 0, i;
  struct dirent *de;
  int ret = 0;
  DIR *d;
  if (format != NULL && strcmp (format, "table") != 0 && strcmp (format, "json") != 0)
    return rt_make_error (err, 0, "--format: `%s` is not table or json", format);
  d = opendir (root);
  if (d == NULL && errno != ENOENT)
    return rt_make_error (err, errno, "opendir %s", root);
  while (d != NULL && (de = readdir (d)) != NULL)
    {
      rt_error_t skip = { 0, NULL };
      struct stat sb;
      rt_state_t *st;
      if (de->d_name[0] == '.' || fstatat (dirfd (d), de->d_name, &sb, 0) < 0
          || !S_ISDIR (sb.st_mode))
        continue;
      /* runc: a directory whose state cannot be read is reported and skipped. */
      if (rt_state_read (root, de->d_name, &st, &skip) < 0)
        {
          char line[1024];
          rt_error_format (&skip, line, sizeof line);
          fprintf (stderr, "swarm-runtime: list: %s: %s\n", de->d_name, line);
          rt_error_release (&skip);
          continue;
        }
      if (n == cap)
        {
          list_entry_t *bigger = realloc (entries, (cap = cap ? cap * 2 : 16) * sizeof *entries);
          if (bigger == NULL)
            {
              rt_state_free (st);
              ret = rt_make_error (err, errno, "realloc");
              break;
            }
          entries = bigger;
        }
      entries[n].st = st;
      entries[n].status = rt_state_status (root, st);
      owner_name (sb.st_uid, entries[n].owner, sizeof entries[n].owner);
      rfc3339_nano (st->created, entries[n].created, sizeof entries[n].created);
      n++;
    }
  if (d != NULL)
    closedir (d);
  if (ret == 0)
    {
      if (n > 1)
        qsort (entries, n, sizeof *entries, compare_entries);
      ret = print_list (entries, n, format, quiet, err);
    }
  for (i = 0; i < n; i++)
    rt_state_free (entries[i].st);
  free (entries);
  return ret;
}
