#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

char *
rt_hook_state (const char *oci_version, const char *id, const char *status, pid_t pid,
               const char *bundle, const char *annotations_json)
{
  json_object *o = json_object_new_object (), *ann;
  char *out;
  if (o == NULL)
    return NULL;
  json_object_object_add (o, "ociVersion", json_object_new_string (oci_version));
  json_object_object_add (o, "id", json_object_new_string (id));
  json_object_object_add (o, "status", json_object_new_string (status));
  if (pid > 0)
    json_object_object_add (o, "pid", json_object_new_int64 (pid));
  json_object_object_add (o, "bundle", json_object_new_string (bundle));
  ann = json_tokener_parse (annotations_json ? annotations_json : "{}");
  json_object_object_add (o, "annotations", ann ? ann : json_object_new_object ());
  out = strdup (json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN
                                                       | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (o);
  return out;
}

/* The state as the hook's stdin: a memfd, so that a state of any size never blocks us before
 * the hook reads it (a pipe would, past 64 KiB). */
static int
state_fd (const char *state, rt_error_t *err)
{
  size_t len = strlen (state);
  int fd = (int) syscall (SYS_memfd_create, "hook-state", MFD_CLOEXEC);
  if (fd < 0)
    return rt_make_error (err, errno, "memfd_create");
  if (write (fd, state, len) != (ssize_t) len || lseek (fd, 0, SEEK_SET) < 0)
    {
      int e = errno;
      close (fd);
      return rt_make_error (err, e, "write the state for a hook");
    }
  return fd;
}

static void __attribute__ ((noreturn))
exec_hook (const rt_hook_t *h, int in, int out)
{
  char *argv0[] = { h->path, NULL };
  sigset_t none;
  if (dup2 (in, 0) < 0 || dup2 (out, 1) < 0 || dup2 (out, 2) < 0)
    _exit (127);
  syscall (SYS_close_range, 3U, ~0U, 0U);
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  execve (h->path, h->args && h->args[0] ? h->args : argv0, h->env ? h->env : environ);
  dprintf (2, "exec %s: %s", h->path, strerror (errno));
  _exit (127);
}

static long long
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The hook's output (stdout and stderr), its last bytes kept. */
typedef struct
{
  char buf[1024];
  size_t len;
} output_t;

static void
keep_output (output_t *o, const char *data, size_t n)
{
  if (n >= sizeof o->buf - 1)
    {
      data += n - (sizeof o->buf - 1);
      n = sizeof o->buf - 1;
    }
  if (o->len + n > sizeof o->buf - 1)
    {
      size_t drop = o->len + n - (sizeof o->buf - 1);
      memmove (o->buf, o->buf + drop, o->len - drop);
      o->len -= drop;
    }
  memcpy (o->buf + o->len, data, n);
  o->len += n;
  o->buf[o->len] = '\0';
}

/* Reads what is there without blocking; false at EOF. */
static bool
drain (int fd, output_t *o)
{
  char chunk[4096];
  for (;;)
    {
      ssize_t n = read (fd, chunk, sizeof chunk);
      if (n > 0)
        keep_output (o, chunk, (size_t) n);
      else
        return !(n == 0 || (errno != EAGAIN && errno != EINTR));
      if (n < (ssize_t) sizeof chunk)
        return true;
    }
}

/* One line of the output for an error message: newlines become "; ". */
static const char *
output_line (output_t *o)
{
  size_t i;
  while (o->len > 0 && (o->buf[o->len - 1] == '\n' || o->buf[o->len - 1] == ' '))
    o->buf[--o->len] = '\0';
  for (i = 0; i < o->len; i++)
    if (o->buf[i] == '\n')
      o->buf[i] = ';';
  return o->buf;
}

/* Waits for PID (its pidfd PIDFD) while reading its output from OUT, up to TIMEOUT seconds (0:
 * none). *STATUS is its wait status; returns 1 if it ran past the timeout (it is then killed). */
static int
wait_hook (pid_t pid, int pidfd, int out, int timeout, output_t *o, int *status, rt_error_t *err)
{
  long long deadline = timeout > 0 ? now_ms () + (long long) timeout * 1000 : 0;
  bool open_out = true;
  for (;;)
    {
      struct pollfd p[2] = { { .fd = pidfd, .events = POLLIN }, { .fd = open_out ? out : -1, .events = POLLIN } };
      int wait_ms = -1, n;
      if (deadline != 0)
        {
          long long left = deadline - now_ms ();
          if (left <= 0)
            {
              kill (pid, SIGKILL);
              while (waitpid (pid, status, 0) < 0 && errno == EINTR)
                ;
              return 1;
            }
          wait_ms = (int) left;
        }
      n = poll (p, 2, wait_ms);
      if (n < 0 && errno != EINTR)
        return rt_make_error (err, errno, "poll");
      if (n > 0 && (p[1].revents & (POLLIN | POLLHUP)))
        open_out = drain (out, o);
      if (n > 0 && (p[0].revents & POLLIN))
        {
          while (waitpid (pid, status, 0) < 0)
            if (errno != EINTR)
              return rt_make_error (err, errno, "waitpid %d", pid);
          /* What it wrote before it exited; a child of the hook may hold the pipe: no wait. */
          if (open_out)
            drain (out, o);
          return 0;
        }
    }
}

static int
run_hook (const rt_hook_t *h, const char *kind, size_t i, const char *state, rt_error_t *err)
{
  cleanup_close int in = -1, pidfd = -1, rd = -1, wr = -1;
  int pipefd[2], status = 0, ret;
  output_t o = { .len = 0 };
  pid_t pid;
  in = state_fd (state, err);
  if (in < 0)
    return rt_wrap_error (err, "%s hook %zu (%s)", kind, i, h->path);
  if (pipe2 (pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
    return rt_make_error (err, errno, "%s hook %zu (%s): pipe", kind, i, h->path);
  rd = pipefd[0];
  wr = pipefd[1];
  pid = fork ();
  if (pid < 0)
    return rt_make_error (err, errno, "%s hook %zu (%s): fork", kind, i, h->path);
  if (pid == 0)
    {
      /* The hook writes blocking; only our end is non-blocking. */
      fcntl (wr, F_SETFL, 0);
      exec_hook (h, in, wr);
    }
  close (wr);
  wr = -1;
  pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
  if (pidfd < 0)
    {
      int e = errno;
      kill (pid, SIGKILL);
      waitpid (pid, NULL, 0);
      return rt_make_error (err, e, "%s hook %zu (%s): pidfd_open", kind, i, h->path);
    }
  ret = wait_hook (pid, pidfd, rd, h->timeout, &o, &status, err);
  if (ret < 0)
    return rt_wrap_error (err, "%s hook %zu (%s)", kind, i, h->path);
  if (ret == 1)
    return rt_make_error (err, 0, "%s hook %zu (%s): ran past its timeout of %d s%s%s", kind, i,
                          h->path, h->timeout, o.len ? ": " : "", output_line (&o));
  if (WIFSIGNALED (status))
    return rt_make_error (err, 0, "%s hook %zu (%s): killed by signal %d%s%s", kind, i, h->path,
                          WTERMSIG (status), o.len ? ": " : "", output_line (&o));
  if (WEXITSTATUS (status) != 0)
    return rt_make_error (err, 0, "%s hook %zu (%s): exit status %d%s%s", kind, i, h->path,
                          WEXITSTATUS (status), o.len ? ": " : "", output_line (&o));
  return 0;
}

int
rt_hooks_run (const rt_hook_list_t *list, enum rt_hook_kind kind, const char *state,
              rt_error_t *err)
{
  size_t i;
  for (i = 0; i < list->n; i++)
    if (run_hook (&list->v[i], rt_hook_kind_name (kind), i, state, err) < 0)
      return -1;
  return 0;
}
