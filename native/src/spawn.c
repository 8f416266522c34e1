/* swarm-spawn: a fork server. The worker (Node) forks itself for every command it runs, which
 * costs time in proportion to its memory (page tables): about 3 ms at 50 MB and 25 ms at 500 MB,
 * on the event loop. This small process runs the commands instead, with posix_spawn (vfork
 * semantics), many at a time, and sends back their exit status and output.
 *
 * Requests on stdin, one after another:
 *   u32 length (little endian), then `length` bytes: ID \0 ARGC \0 ARG0 \0 ... ARGN \0 STDIN-BYTES
 * ARG0 is looked up in PATH. STDIN-BYTES (possibly none) are the command's stdin, then EOF.
 * Answers on stdout, in the order the commands finish:
 *   "ID CODE SIGNAL OUTLEN ERRLEN\n" then OUTLEN bytes of stdout and ERRLEN bytes of stderr
 * CODE is the exit status (-1 when killed by a signal or when the command could not be spawned),
 * SIGNAL the signal number (0 if none); a spawn failure puts its message in stderr.
 * EOF on stdin: the server exits once the commands running have finished.
 *
 * Built-in commands run in the server itself, without a process (an exec costs 0.6-0.9 ms here,
 * and a container's start took five: mount(8) for its root filesystem, ip(8) on the host's side,
 * nsenter(1) and ip(8) on the container's):
 *   swarm-spawn:mount TYPE SOURCE OPTIONS TARGET   mount(2) with no flags
 *   swarm-spawn:umount TARGET                      umount2(2) with no flags
 *   swarm-spawn:veth HOSTNS BRIDGE HOSTEND PEERNS PEEREND MAC MTU ADDRESS PREFIXLEN GATEWAY HAIRPIN
 *       a veth pair for a container (netlink.h: nl_veth_attach); MTU 0 is the kernel's default,
 *       HAIRPIN 0 or 1
 *   swarm-spawn:link-del NETNS NAME                deletes a device; none there is not an error
 * HOSTNS and NETNS are paths of network namespaces, or "-" for the server's own. They answer
 * CODE 0, or 1 with the failed step, its path or device and strerror on stderr; relative paths
 * resolve against the server's working directory (the caller's business: it passes absolute ones). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "netlink.h"

extern char **environ;

#define MAX_REQUEST (16u << 20)

typedef struct
{
  char *data;
  size_t len, cap;
} buf_t;

typedef struct job
{
  struct job *next;
  char *id;
  pid_t pid;
  int status;
  bool exited;
  bool builtin; /* ran in the server: `code` is its result */
  int code;
  int fd[3]; /* stdin (write end), stdout, stderr (read ends); -1 when closed */
  buf_t in, out, err;
  size_t in_off;
} job_t;

static job_t *jobs;
static buf_t requests; /* bytes read from stdin, not yet a whole request */

static int
buf_append (buf_t *b, const char *data, size_t len, rt_error_t *err)
{
  if (b->len + len > b->cap)
    {
      size_t cap = b->cap ? b->cap : 4096;
      char *p;
      while (cap < b->len + len)
        cap *= 2;
      p = realloc (b->data, cap);
      if (p == NULL)
        return rt_make_error (err, ENOMEM, "realloc");
      b->data = p, b->cap = cap;
    }
  if (len > 0)
    memcpy (b->data + b->len, data, len);
  b->len += len;
  return 0;
}

static int
write_all (int fd, const char *p, size_t len, rt_error_t *err)
{
  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return rt_make_error (err, errno, "write the answer");
      p += n, len -= (size_t) n;
    }
  return 0;
}

static void
job_free (job_t *j)
{
  int i;
  for (i = 0; i < 3; i++)
    if (j->fd[i] >= 0)
      close (j->fd[i]);
  free (j->id);
  free (j->in.data);
  free (j->out.data);
  free (j->err.data);
  free (j);
}

/* The answer of a finished job (exited, both pipes at EOF). */
static int
answer (job_t *j, rt_error_t *err)
{
  char head[256];
  int code = -1, sig = 0, n;
  if (j->builtin)
    code = j->code;
  else if (j->pid > 0 && WIFEXITED (j->status))
    code = WEXITSTATUS (j->status);
  else if (j->pid > 0 && WIFSIGNALED (j->status))
    sig = WTERMSIG (j->status);
  n = snprintf (head, sizeof head, "%s %d %d %zu %zu\n", j->id, code, sig, j->out.len, j->err.len);
  if (write_all (1, head, (size_t) n, err) < 0 || write_all (1, j->out.data ? j->out.data : "", j->out.len, err) < 0
      || write_all (1, j->err.data ? j->err.data : "", j->err.len, err) < 0)
    return -1;
  return 0;
}

static int
nonblocking_pipe (int p[2], rt_error_t *err)
{
  if (pipe2 (p, O_CLOEXEC | O_NONBLOCK) < 0)
    return rt_make_error (err, errno, "pipe");
  return 0;
}

/* Spawns argv with pipes for its stdio. A failure to spawn is the job's result, not an error of
 * the server: it is answered with code -1 and the reason on stderr. */
static int
job_spawn (job_t *j, char **argv, rt_error_t *err)
{
  int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 }, rc;
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none;
  if (nonblocking_pipe (in, err) < 0 || nonblocking_pipe (out, err) < 0 || nonblocking_pipe (errp, err) < 0)
    goto fail;
  /* The child's ends must block: only ours are non-blocking. */
  if (fcntl (in[0], F_SETFL, 0) < 0 || fcntl (out[1], F_SETFL, 0) < 0 || fcntl (errp[1], F_SETFL, 0) < 0)
    {
      rt_make_error (err, errno, "fcntl");
      goto fail;
    }
  if (posix_spawn_file_actions_init (&fa) != 0)
    {
      rt_make_error (err, ENOMEM, "posix_spawn_file_actions_init");
      goto fail;
    }
  posix_spawn_file_actions_adddup2 (&fa, in[0], 0);
  posix_spawn_file_actions_adddup2 (&fa, out[1], 1);
  posix_spawn_file_actions_adddup2 (&fa, errp[1], 2);
  posix_spawnattr_init (&attr);
  sigemptyset (&none);
  posix_spawnattr_setsigmask (&attr, &none);
  posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  {
    sigset_t all;
    sigfillset (&all);
    posix_spawnattr_setsigdefault (&attr, &all);
  }
  rc = posix_spawnp (&j->pid, argv[0], &fa, &attr, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  posix_spawnattr_destroy (&attr);
  close (in[0]), close (out[1]), close (errp[1]);
  j->fd[0] = in[1], j->fd[1] = out[0], j->fd[2] = errp[0];
  if (rc != 0)
    {
      char msg[512];
      int n = snprintf (msg, sizeof msg, "swarm-spawn: %s: %s\n", argv[0], strerror (rc));
      j->pid = -1;
      j->exited = true;
      close (j->fd[0]);
      j->fd[0] = -1;
      return buf_append (&j->err, msg, (size_t) n, err);
    }
  if (j->in.len == 0)
    {
      close (j->fd[0]);
      j->fd[0] = -1;
    }
  return 0;
fail:
  for (int i = 0; i < 2; i++)
    {
      if (in[i] >= 0)
        close (in[i]);
      if (out[i] >= 0)
        close (out[i]);
      if (errp[i] >= 0)
        close (errp[i]);
    }
  return -1;
}

/* "-" names the server's own network namespace. */
static const char *
netns_arg (const char *a)
{
  return strcmp (a, "-") == 0 ? NULL : a;
}

static int
unsigned_arg (const char *what, const char *a, unsigned min, unsigned max, unsigned *out, rt_error_t *err)
{
  char *end;
  unsigned long v;
  errno = 0;
  v = strtoul (a, &end, 10);
  if (errno != 0 || end == a || *end != '\0' || v < min || v > max)
    return rt_make_error (err, 0, "%s `%s`: must be a number from %u to %u", what, a, min, max);
  *out = (unsigned) v;
  return 0;
}

static int
builtin_veth (char **argv, rt_error_t *err)
{
  nl_veth_t v = { .host_netns = netns_arg (argv[1]), .bridge = argv[2], .host_name = argv[3], .peer_netns = argv[4], .peer_name = argv[5], .mac = argv[6], .address = argv[8], .gateway = argv[10] };
  if (unsigned_arg ("mtu", argv[7], 0, 65535, &v.mtu, err) < 0 || unsigned_arg ("prefix length", argv[9], 1, 32, &v.prefix_len, err) < 0)
    return -1;
  if (strcmp (argv[11], "0") != 0 && strcmp (argv[11], "1") != 0)
    return rt_make_error (err, 0, "hairpin `%s`: must be 0 or 1", argv[11]);
  v.hairpin = argv[11][0] == '1';
  return nl_veth_attach (&v, err);
}

/* Runs a built-in command (see the top of the file) as a finished job; false if argv is not one. */
static bool
job_builtin (job_t *j, long argc, char **argv, rt_error_t *err)
{
  rt_error_t e = { 0, NULL };
  int rc;
  if (strcmp (argv[0], "swarm-spawn:mount") == 0 && argc == 5)
    rc = mount (argv[2], argv[4], argv[1], 0, argv[3]) < 0 ? rt_make_error (&e, errno, "%s", argv[4]) : 0;
  else if (strcmp (argv[0], "swarm-spawn:umount") == 0 && argc == 2)
    rc = umount2 (argv[1], 0) < 0 ? rt_make_error (&e, errno, "%s", argv[1]) : 0;
  else if (strcmp (argv[0], "swarm-spawn:veth") == 0 && argc == 12)
    rc = builtin_veth (argv, &e);
  else if (strcmp (argv[0], "swarm-spawn:link-del") == 0 && argc == 3)
    rc = nl_link_delete (netns_arg (argv[1]), argv[2], &e);
  else if (strncmp (argv[0], "swarm-spawn:", 12) == 0)
    rc = rt_make_error (&e, 0, "%s: not a built-in command with %ld arguments", argv[0], argc - 1);
  else
    return false;
  j->builtin = true, j->exited = true, j->pid = -1;
  j->code = rc < 0 ? 1 : 0;
  if (rc < 0)
    {
      char msg[4096];
      size_t n;
      rt_error_format (&e, msg, sizeof msg - 1);
      n = strlen (msg);
      msg[n++] = '\n';
      rt_error_release (&e);
      if (buf_append (&j->err, msg, n, err) < 0)
        j->code = 1;
    }
  return true;
}

/* Parses one request (payload of `len` bytes) and starts its job. */
static int
start_request (const char *p, size_t len, rt_error_t *err)
{
  const char *end = p + len, *id, *s;
  cleanup_free char **argv = NULL;
  long argc, i;
  job_t *j;
  id = p;
  s = memchr (p, '\0', len);
  if (s == NULL)
    return rt_make_error (err, 0, "bad request: no id");
  p = s + 1;
  s = memchr (p, '\0', (size_t) (end - p));
  if (s == NULL || (argc = strtol (p, NULL, 10)) <= 0 || argc > 100000)
    return rt_make_error (err, 0, "bad request %s: argc", id);
  p = s + 1;
  argv = calloc ((size_t) argc + 1, sizeof *argv);
  if (argv == NULL)
    return rt_make_error (err, ENOMEM, "calloc");
  for (i = 0; i < argc; i++)
    {
      s = memchr (p, '\0', (size_t) (end - p));
      if (s == NULL)
        return rt_make_error (err, 0, "bad request %s: argv[%ld]", id, i);
      argv[i] = (char *) p;
      p = s + 1;
    }
  j = calloc (1, sizeof *j);
  if (j == NULL)
    return rt_make_error (err, ENOMEM, "calloc");
  j->fd[0] = j->fd[1] = j->fd[2] = -1;
  j->id = strdup (id);
  if (j->id == NULL || buf_append (&j->in, p, (size_t) (end - p), err) < 0 || (!job_builtin (j, argc, argv, err) && job_spawn (j, argv, err) < 0))
    {
      job_free (j);
      return rt_make_error (err, ENOMEM, "start request %s", id);
    }
  j->next = jobs;
  jobs = j;
  return 0;
}

/* Takes every whole request out of the buffer. */
static int
take_requests (rt_error_t *err)
{
  size_t off = 0;
  while (requests.len - off >= 4)
    {
      uint32_t len;
      memcpy (&len, requests.data + off, 4);
      if (len > MAX_REQUEST)
        return rt_make_error (err, 0, "request of %u bytes: too long", len);
      if (requests.len - off - 4 < len)
        break;
      if (start_request (requests.data + off + 4, len, err) < 0)
        return -1;
      off += 4 + len;
    }
  memmove (requests.data, requests.data + off, requests.len - off);
  requests.len -= off;
  return 0;
}

static void
reap (void)
{
  for (;;)
    {
      int status;
      job_t *j;
      pid_t p = waitpid (-1, &status, WNOHANG);
      if (p <= 0)
        return;
      for (j = jobs; j != NULL; j = j->next)
        if (j->pid == p)
          j->exited = true, j->status = status;
    }
}

/* Moves data for one job's descriptor that poll marked; closes it at EOF or error. */
static int
job_io (job_t *j, int which, rt_error_t *err)
{
  char chunk[65536];
  ssize_t n;
  if (which == 0)
    {
      n = write (j->fd[0], j->in.data + j->in_off, j->in.len - j->in_off);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
      if (n > 0)
        j->in_off += (size_t) n;
      if (n < 0 || j->in_off == j->in.len)
        {
          close (j->fd[0]); /* EPIPE: the command does not read its stdin; fine */
          j->fd[0] = -1;
        }
      return 0;
    }
  n = read (j->fd[which], chunk, sizeof chunk);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return 0;
  if (n <= 0)
    {
      close (j->fd[which]);
      j->fd[which] = -1;
      return 0;
    }
  return buf_append (which == 1 ? &j->out : &j->err, chunk, (size_t) n, err);
}

static int
loop (int sig_fd, rt_error_t *err)
{
  bool input_open = true;
  for (;;)
    {
      size_t njobs = 0, k = 0;
      job_t *j, **pp;
      cleanup_free struct pollfd *p = NULL;
      cleanup_free job_t **owner = NULL;
      cleanup_free int *which = NULL;
      /* Answer and drop the finished jobs. */
      for (pp = &jobs; (j = *pp) != NULL;)
        if (j->exited && j->fd[1] < 0 && j->fd[2] < 0)
          {
            *pp = j->next;
            if (answer (j, err) < 0)
              {
                job_free (j);
                return -1;
              }
            job_free (j);
          }
        else
          pp = &j->next, njobs++;
      if (!input_open && jobs == NULL)
        return 0;
      p = calloc (2 + 3 * njobs, sizeof *p);
      owner = calloc (2 + 3 * njobs, sizeof *owner);
      which = calloc (2 + 3 * njobs, sizeof *which);
      if (p == NULL || owner == NULL || which == NULL)
        return rt_make_error (err, ENOMEM, "calloc");
      p[k++] = (struct pollfd) { sig_fd, POLLIN, 0 };
      p[k++] = (struct pollfd) { input_open ? 0 : -1, POLLIN, 0 };
      for (j = jobs; j != NULL; j = j->next)
        for (int w = 0; w < 3; w++)
          if (j->fd[w] >= 0)
            {
              owner[k] = j, which[k] = w;
              p[k++] = (struct pollfd) { j->fd[w], w == 0 ? POLLOUT : POLLIN, 0 };
            }
      if (poll (p, k, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          return rt_make_error (err, errno, "poll");
        }
      if (p[0].revents & POLLIN)
        {
          struct signalfd_siginfo si;
          while (read (sig_fd, &si, sizeof si) > 0)
            ;
          reap ();
        }
      if (p[1].revents != 0)
        {
          char chunk[65536];
          ssize_t n = read (0, chunk, sizeof chunk);
          if (n < 0 && errno != EINTR && errno != EAGAIN)
            return rt_make_error (err, errno, "read requests");
          if (n == 0)
            input_open = false;
          if (n > 0 && (buf_append (&requests, chunk, (size_t) n, err) < 0 || take_requests (err) < 0))
            return -1;
        }
      for (size_t i = 2; i < k; i++)
        if (p[i].revents != 0 && job_io (owner[i], which[i], err) < 0)
          return -1;
    }
}

int
main (int argc, char **argv)
{
  rt_error_t err = { 0, NULL };
  cleanup_close int sig_fd = -1;
  sigset_t chld;
  char line[4096];
  (void) argv;
  if (argc != 1)
    {
      fprintf (stderr, "usage: swarm-spawn (requests on stdin; see src/spawn.c)\n");
      return 2;
    }
  sigemptyset (&chld);
  sigaddset (&chld, SIGCHLD);
  if (signal (SIGPIPE, SIG_IGN) == SIG_ERR || sigprocmask (SIG_BLOCK, &chld, NULL) < 0)
    {
      perror ("swarm-spawn: signals");
      return 1;
    }
  sig_fd = signalfd (-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sig_fd < 0)
    {
      perror ("swarm-spawn: signalfd");
      return 1;
    }
  if (loop (sig_fd, &err) < 0)
    {
      rt_error_format (&err, line, sizeof line);
      fprintf (stderr, "swarm-spawn: %s\n", line);
      rt_error_release (&err);
      return 1;
    }
  return 0;
}
