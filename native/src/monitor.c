/* swarm-monitor: one small process per container, in the manner of conmon.
 *
 *   swarm-monitor --runtime PATH [--runtime-root DIR] --bundle DIR --id ID
 *                 (--log FILE [--log-max-size BYTES [--log-max-files N]] | --log-driver none)
 *                 --exit-file FILE [--pid-file FILE] [--ready-fd N] [--console-socket PATH]
 *
 * It detaches from its caller (fork, setsid), becomes a child subreaper, and runs
 * `RUNTIME [--root DIR] create --bundle DIR --pid-file FILE ID` with /dev/null as stdin and two
 * pipes of its own as stdout and stderr. The runtime hands those to the container's init, which
 * is re-parented to the monitor when the runtime exits. The monitor then reports readiness — one
 * line of JSON, {"monitorPid":M,"pid":P} or {"error":"the runtime's last line"} — on --ready-fd,
 * or, without it, the first process waits for that line, prints it and exits 0 (ready) or 1.
 * `start` is the caller's (so that it can set up the network between create and start).
 *
 * Afterwards it copies the container's output into the log file as JSON lines, Docker's json-file
 * format ({"log":"line\n","stream":"stdout","time":"RFC3339 with nanoseconds"}), rotating it as
 * Docker's json-file does with max-size and max-file (FILE.1 is the newest rotated file; see
 * log_rotate), or, with the none driver, reads the output and drops it. It reaps the init when it
 * exits, writes the exit status to the exit file atomically (a temporary file, fsync, rename) and
 * exits. Every error names the step and the path, with errno (src/error.h).
 *
 * With --console-socket (a container whose config.json asks for a terminal), the monitor listens
 * on that unix socket path while the runtime creates the container, receives the terminal's
 * master side there (SCM_RIGHTS, the OCI runtimes' console-socket protocol), and logs what the
 * container writes to its terminal as its stdout, as Docker does. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

/* Docker's json-file driver splits lines longer than 16 KiB into partial records. */
#define LINE_MAX_BYTES 16384
/* The longest record: every byte of a line escaped as \u00XX, and the fields around it. */
#define RECORD_MAX_BYTES (LINE_MAX_BYTES * 6 + 256)
/* Records are gathered here and written together: one write per read from the container, or
 * when this is full. A write per line cost 2 us of the monitor's CPU per line. */
#define LOG_BUF_BYTES (RECORD_MAX_BYTES + 65536)
/* --log-max-files at most (as TaskSpec's max-file, common/log-driver.ts): a rotation renames
 * every file. */
#define LOG_MAX_FILES 100
/* After the init exited, output still buffered or held by orphans is read for at most this long. */
#define DRAIN_MS 2000

typedef struct
{
  const char *runtime, *runtime_root, *bundle, *id, *log, *exit_file, *pid_file;
  const char *console_socket; /* NULL: the container's stdio are pipes */
  int ready_fd;          /* -1: the first process relays the ready line on its stdout */
  bool log_none;         /* --log-driver none: no log, the output is dropped */
  long long log_max_size; /* 0: the log is never rotated */
  int log_max_files;
} mon_opts_t;

/* The log: the live file, and what is gathered for it. */
typedef struct
{
  const char *path;     /* NULL: the none driver (output read and dropped) */
  long long max_size;   /* rotate before the live file would grow past it; 0: never */
  int max_files;        /* files kept, the live one included */
  int fd;
  long long size;       /* of the live file, what is in buf included */
  size_t len;           /* bytes in buf */
  char *buf;            /* LOG_BUF_BYTES */
} mon_log_t;

typedef struct
{
  const char *name; /* "stdout" or "stderr" */
  int fd;           /* read end of the container's pipe; -1 after EOF */
  size_t len;
  char buf[LINE_MAX_BYTES];
} mon_stream_t;

typedef struct
{
  pid_t pid;             /* the container's init */
  int status;            /* its wait status, valid once exited */
  bool exited;
  char oom_file[PATH_MAX]; /* memory.oom_control (v1) or memory.events (v2); "" if unknown */
  mon_log_t log;
  char *problem;         /* first error after readiness (the log could not be written...) */
} mon_state_t;

static int
usage (const char *problem)
{
  if (problem != NULL)
    fprintf (stderr, "swarm-monitor: %s\n", problem);
  fprintf (stderr, "usage: swarm-monitor --runtime PATH [--runtime-root DIR] --bundle DIR --id ID\n"
                   "                     (--log FILE [--log-max-size BYTES [--log-max-files N]] | --log-driver none)\n"
                   "                     --exit-file FILE [--pid-file FILE] [--ready-fd N] [--console-socket PATH]\n");
  return 2;
}

/* A whole decimal number from min to max, or -1. */
static int
parse_number (const char *v, long long min, long long max, long long *out)
{
  char *end;
  long long n;
  if (v == NULL || *v < '0' || *v > '9')
    return -1;
  errno = 0;
  n = strtoll (v, &end, 10);
  if (errno != 0 || *end != '\0' || n < min || n > max)
    return -1;
  *out = n;
  return 0;
}

/* The options that take a number or a word; 1 if `a` is none of them, 2 on bad usage. */
static int
parse_special (const char *a, const char *v, mon_opts_t *o)
{
  long long n;
  if (strcmp (a, "--ready-fd") == 0)
    {
      if (parse_number (v, 3, INT_MAX, &n) < 0)
        return usage ("--ready-fd: a descriptor number of 3 or more");
      o->ready_fd = (int) n;
    }
  else if (strcmp (a, "--log-max-size") == 0)
    {
      if (parse_number (v, 1, LLONG_MAX, &n) < 0)
        return usage ("--log-max-size: a number of bytes, 1 or more");
      o->log_max_size = n;
    }
  else if (strcmp (a, "--log-max-files") == 0)
    {
      if (parse_number (v, 1, LOG_MAX_FILES, &n) < 0)
        return usage ("--log-max-files: a whole number from 1 to 100");
      o->log_max_files = (int) n;
    }
  else if (strcmp (a, "--log-driver") == 0)
    {
      if (v == NULL || (strcmp (v, "json-file") != 0 && strcmp (v, "none") != 0))
        return usage ("--log-driver: json-file or none");
      o->log_none = strcmp (v, "none") == 0;
    }
  else
    return 1;
  return 0;
}

static int
parse_args (int argc, char **argv, mon_opts_t *o)
{
  int i;
  memset (o, 0, sizeof *o);
  o->ready_fd = -1;
  for (i = 1; i < argc; i++)
    {
      const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
      const char **slot = NULL;
      int ret;
      if (strcmp (a, "--runtime") == 0)
        slot = &o->runtime;
      else if (strcmp (a, "--runtime-root") == 0)
        slot = &o->runtime_root;
      else if (strcmp (a, "--bundle") == 0)
        slot = &o->bundle;
      else if (strcmp (a, "--id") == 0)
        slot = &o->id;
      else if (strcmp (a, "--log") == 0)
        slot = &o->log;
      else if (strcmp (a, "--exit-file") == 0)
        slot = &o->exit_file;
      else if (strcmp (a, "--pid-file") == 0)
        slot = &o->pid_file;
      else if (strcmp (a, "--console-socket") == 0)
        slot = &o->console_socket;
      else if ((ret = parse_special (a, v, o)) != 1)
        {
          if (ret != 0)
            return ret;
          i++;
          continue;
        }
      else
        return usage ("unknown option");
      if (v == NULL)
        return usage ("an option needs a value");
      *slot = v;
      i++;
    }
  if (o->runtime == NULL || o->bundle == NULL || o->id == NULL || o->exit_file == NULL)
    return usage ("--runtime, --bundle, --id and --exit-file are required");
  if (o->log_none && (o->log != NULL || o->log_max_size > 0 || o->log_max_files > 0))
    return usage ("--log-driver none writes no log: --log and --log-max-* are not taken");
  if (!o->log_none && o->log == NULL)
    return usage ("--log FILE is required (or --log-driver none)");
  if (o->log_max_files > 0 && o->log_max_size == 0)
    return usage ("--log-max-files needs --log-max-size");
  if (o->log_max_files == 0)
    o->log_max_files = 1; /* Docker's max-file default */
  return 0;
}

/* ---- JSON output ------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is not one. */
static size_t
utf8_len (const unsigned char *s, size_t n)
{
  size_t need, i;
  unsigned int cp;
  if (s[0] < 0x80)
    return 1;
  if ((s[0] & 0xe0) == 0xc0)
    need = 2, cp = s[0] & 0x1f;
  else if ((s[0] & 0xf0) == 0xe0)
    need = 3, cp = s[0] & 0x0f;
  else if ((s[0] & 0xf8) == 0xf0)
    need = 4, cp = s[0] & 0x07;
  else
    return 0;
  if (n < need)
    return 0;
  for (i = 1; i < need; i++)
    {
      if ((s[i] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i] & 0x3f);
    }
  if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff))
      || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return need;
}

/* Appends s as a JSON string body (no quotes) to out, which has room for 6 bytes per input
 * byte. Invalid UTF-8 becomes U+FFFD, as Go's encoding/json (and so Docker) writes it. */
static size_t
json_escape (char *out, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *) s;
  size_t i = 0, o = 0;
  while (i < n)
    {
      unsigned char c = u[i];
      size_t k;
      if (c == '"' || c == '\\')
        out[o++] = '\\', out[o++] = (char) c, i++;
      else if (c == '\n')
        out[o++] = '\\', out[o++] = 'n', i++;
      else if (c == '\r')
        out[o++] = '\\', out[o++] = 'r', i++;
      else if (c == '\t')
        out[o++] = '\\', out[o++] = 't', i++;
      else if (c < 0x20 || c == 0x7f)
        {
          memcpy (out + o, "\\u00", 4);
          out[o + 4] = hex[c >> 4];
          out[o + 5] = hex[c & 15];
          o += 6, i++;
        }
      else if ((k = utf8_len (u + i, n - i)) == 0)
        {
          memcpy (out + o, "\xef\xbf\xbd", 3);
          o += 3, i++;
        }
      else
        {
          memcpy (out + o, u + i, k);
          o += k, i += k;
        }
    }
  return o;
}

/* RFC 3339 in UTC with nanoseconds, e.g. 2026-11-22T21:00:38.123456789Z. */
static int
format_time (const struct timespec *ts, char *buf, size_t len, rt_error_t *err)
{
  struct tm tm;
  char date[32];
  if (gmtime_r (&ts->tv_sec, &tm) == NULL)
    return rt_make_error (err, errno, "gmtime_r");
  if (strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
    return rt_make_error (err, 0, "strftime");
  snprintf (buf, len, "%s.%09ldZ", date, ts->tv_nsec);
  return 0;
}

static int
now_rfc3339 (char *buf, size_t len, rt_error_t *err)
{
  struct timespec ts;
  if (clock_gettime (CLOCK_REALTIME, &ts) < 0)
    return rt_make_error (err, errno, "clock_gettime");
  return format_time (&ts, buf, len, err);
}

static int
write_all (int fd, const char *buf, size_t len, const char *what, rt_error_t *err)
{
  while (len > 0)
    {
      ssize_t n = write (fd, buf, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return rt_make_error (err, errno, "write %s", what);
      buf += n, len -= (size_t) n;
    }
  return 0;
}

/* ---- the log ----------------------------------------------------------------------------- */

/* PATH.N, the Nth newest rotated file. */
static int
rotated_name (char *out, size_t len, const char *path, int n, rt_error_t *err)
{
  int r = snprintf (out, len, "%s.%d", path, n);
  if (r < 0 || (size_t) r >= len)
    return rt_make_error (err, ENAMETOOLONG, "the log's rotated file %s.%d", path, n);
  return 0;
}

static int
log_open (mon_log_t *log, const mon_opts_t *o, rt_error_t *err)
{
  struct stat sb;
  log->fd = -1;
  log->path = o->log_none ? NULL : o->log;
  log->max_size = o->log_max_size;
  log->max_files = o->log_max_files;
  if (log->path == NULL)
    return 0;
  log->buf = malloc (LOG_BUF_BYTES);
  if (log->buf == NULL)
    return rt_make_error (err, ENOMEM, "the log's buffer");
  log->fd = open (log->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (log->fd < 0)
    return rt_make_error (err, errno, "open the log %s", log->path);
  if (fstat (log->fd, &sb) < 0)
    return rt_make_error (err, errno, "fstat the log %s", log->path);
  log->size = sb.st_size;
  return 0;
}

static void
log_close (mon_log_t *log)
{
  if (log->fd >= 0)
    close (log->fd);
  log->fd = -1;
  free (log->buf);
  log->buf = NULL;
}

/* Writes what is gathered. On an error it is dropped all the same (the next records still go
 * to the log, and the first error reaches the exit file). */
static int
log_flush (mon_log_t *log, rt_error_t *err)
{
  size_t len = log->len;
  log->len = 0;
  if (len == 0)
    return 0;
  return write_all (log->fd, log->buf, len, log->path, err);
}

/* Renames PATH.(N-2) ... PATH.1 one up and PATH to PATH.1, dropping PATH.(N-1): the order of
 * Docker's json-file rotation. The oldest goes first, so that at every instant the files present,
 * from the highest number down to PATH, are in the order they were written, without a gap in
 * their content (a reader can list them while this runs; worker/exec/logs.ts). With one file,
 * PATH is removed. A name missing is skipped (a rotation that failed half-way). */
static int
log_shift (const mon_log_t *log, rt_error_t *err)
{
  char from[PATH_MAX], to[PATH_MAX];
  int i;
  if (log->max_files == 1)
    {
      if (unlink (log->path) < 0 && errno != ENOENT)
        return rt_make_error (err, errno, "rotate the log: unlink %s", log->path);
      return 0;
    }
  if (rotated_name (to, sizeof to, log->path, log->max_files - 1, err) < 0)
    return -1;
  if (unlink (to) < 0 && errno != ENOENT)
    return rt_make_error (err, errno, "rotate the log: unlink %s", to);
  for (i = log->max_files - 1; i >= 1; i--)
    {
      if (i > 1 && rotated_name (from, sizeof from, log->path, i - 1, err) < 0)
        return -1;
      if (rotated_name (to, sizeof to, log->path, i, err) < 0)
        return -1;
      if (rename (i > 1 ? from : log->path, to) < 0 && errno != ENOENT)
        return rt_make_error (err, errno, "rotate the log: rename %s to %s", i > 1 ? from : log->path, to);
    }
  return 0;
}

/* Starts a new live file: what is gathered goes to the old one, which is then renamed away
 * (log_shift) and closed. The monitor writes nothing to a file after it was renamed: a reader
 * that sees PATH name another file may read the one it has open to its end (it is complete). If
 * the new file cannot be made, the old one (renamed) stays in use, and the next record tries
 * again. */
static int
log_rotate (mon_log_t *log, rt_error_t *err)
{
  int fd, ret = log_flush (log, err);
  if (log_shift (log, err) < 0)
    return -1;
  fd = open (log->path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0)
    return rt_make_error (err, errno, "rotate the log: open %s", log->path);
  if (close (log->fd) < 0)
    ret = rt_make_error (err, errno, "rotate the log: close the old %s", log->path);
  log->fd = fd;
  log->size = 0;
  return ret;
}

/* One record, {"log":"...","stream":"stdout","time":"..."}\n (`tail` is what follows the log
 * text: the stream and the time). It goes to the live file whole: when it would make the file
 * larger than max-size, the log is rotated first, so every file stays within max-size unless
 * it holds a single record longer than that. */
static int
log_append (mon_log_t *log, const char *data, size_t len, const char *tail, size_t tail_len, rt_error_t *err)
{
  size_t o;
  int ret = 0;
  char *rec;
  if (log->path == NULL)
    return 0;
  if (LOG_BUF_BYTES - log->len < len * 6 + 8 + tail_len)
    ret = log_flush (log, err);
  rec = log->buf + log->len;
  memcpy (rec, "{\"log\":\"", 8), o = 8;
  o += json_escape (rec + o, data, len);
  memcpy (rec + o, tail, tail_len), o += tail_len;
  if (log->max_size > 0 && log->size > 0 && log->size + (long long) o > log->max_size)
    {
      log->len = rec - log->buf; /* the records before this one, to the old file */
      if (log_rotate (log, err) < 0)
        ret = -1;
      memmove (log->buf, rec, o);
    }
  log->len += o;
  log->size += (long long) o;
  return ret;
}

/* Appends every complete line of s (and the rest too when flush, or when the buffer is full);
 * what was taken leaves the buffer, also when the log fails. */
static int
stream_emit (mon_stream_t *s, mon_log_t *log, const char *tail, size_t tail_len, bool flush, rt_error_t *err)
{
  size_t start = 0;
  const char *nl;
  int ret = 0;
  while ((nl = memchr (s->buf + start, '\n', s->len - start)) != NULL)
    {
      size_t end = (size_t) (nl - s->buf) + 1;
      if (log_append (log, s->buf + start, end - start, tail, tail_len, err) < 0)
        ret = -1;
      start = end;
    }
  if (start < s->len && (flush || (start == 0 && s->len == sizeof s->buf)))
    {
      if (log_append (log, s->buf + start, s->len - start, tail, tail_len, err) < 0)
        ret = -1;
      start = s->len;
    }
  memmove (s->buf, s->buf + start, s->len - start);
  s->len -= start;
  return ret;
}

/* What follows a record's text: ","stream":"stdout","time":"..."}\n, the time being now. */
static int
record_tail (const mon_stream_t *s, char *out, size_t len, size_t *tail_len, rt_error_t *err)
{
  char time[64];
  int n;
  if (now_rfc3339 (time, sizeof time, err) < 0)
    return -1;
  n = snprintf (out, len, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", s->name, time);
  if (n < 0 || (size_t) n >= len)
    return rt_make_error (err, 0, "a log record's time is too long: %s", time);
  *tail_len = (size_t) n;
  return 0;
}

/* Reads what the pipe has (non-blocking) and logs it; EOF flushes and closes the stream. With the
 * none driver, what is read is dropped. */
static int
stream_read (mon_stream_t *s, mon_log_t *log, rt_error_t *err)
{
  char tail[128];
  size_t tail_len = 0;
  for (;;)
    {
      ssize_t n;
      int saved;
      if (s->fd < 0)
        return log_flush (log, err);
      n = read (s->fd, s->buf + s->len, sizeof s->buf - s->len);
      saved = n < 0 ? errno : 0;
      if (saved == EINTR)
        continue;
      if (saved == EAGAIN)
        return log_flush (log, err);
      if (n > 0 && log->path == NULL)
        continue;
      if (record_tail (s, tail, sizeof tail, &tail_len, err) < 0)
        return -1;
      if (n <= 0)
        {
          int ret;
          /* A terminal's master reads EIO once no process holds the other side: its EOF. */
          if (saved == EIO)
            saved = 0;
          close (s->fd);
          s->fd = -1;
          ret = stream_emit (s, log, tail, tail_len, true, err);
          if (log_flush (log, err) < 0 || ret < 0)
            return -1;
          if (saved != 0)
            return rt_make_error (err, saved, "read the container's %s", s->name);
          return 0;
        }
      s->len += (size_t) n;
      if (stream_emit (s, log, tail, tail_len, false, err) < 0)
        return -1;
    }
}

/* ---- the exit file ----------------------------------------------------------------------- */

static int
fsync_dir_of (const char *path, rt_error_t *err)
{
  cleanup_free char *dir = strdup (path);
  cleanup_close int fd = -1;
  char *slash;
  if (dir == NULL)
    return rt_make_error (err, ENOMEM, "strdup");
  slash = strrchr (dir, '/');
  if (slash == dir)
    slash[1] = '\0';
  else if (slash != NULL)
    *slash = '\0';
  else
    strcpy (dir, ".");
  fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return rt_make_error (err, errno, "open %s", dir);
  if (fsync (fd) < 0)
    return rt_make_error (err, errno, "fsync %s", dir);
  return 0;
}

/* Writes text to path through path.tmp + fsync + rename: a reader sees all of it or nothing. */
static int
write_atomic (const char *path, const char *text, rt_error_t *err)
{
  cleanup_free char *tmp = NULL;
  cleanup_close int fd = -1;
  if (asprintf (&tmp, "%s.tmp", path) < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return rt_make_error (err, errno, "open %s", tmp);
  if (write_all (fd, text, strlen (text), tmp, err) < 0)
    goto fail;
  if (fsync (fd) < 0)
    {
      rt_make_error (err, errno, "fsync %s", tmp);
      goto fail;
    }
  if (rename (tmp, path) < 0)
    {
      rt_make_error (err, errno, "rename %s to %s", tmp, path);
      goto fail;
    }
  return fsync_dir_of (path, err);
fail:
  unlink (tmp);
  return -1;
}

/* The cgroup file that counts OOM kills of the container: v1's memory controller if the host has
 * it, else the v2 tree when it is the whole of /sys/fs/cgroup (not hybrid's empty unified tree). */
static void
find_oom_file (pid_t pid, char *out, size_t len)
{
  char path[64], line[PATH_MAX + 64];
  FILE *f;
  out[0] = '\0';
  snprintf (path, sizeof path, "/proc/%d/cgroup", pid);
  f = fopen (path, "re");
  if (f == NULL)
    return;
  while (fgets (line, sizeof line, f) != NULL)
    {
      char *ctrl = strchr (line, ':'), *cg;
      if (ctrl == NULL || (cg = strchr (ctrl + 1, ':')) == NULL)
        continue;
      *cg++ = '\0';
      cg[strcspn (cg, "\n")] = '\0';
      if (strcmp (ctrl + 1, "memory") == 0)
        {
          snprintf (out, len, "/sys/fs/cgroup/memory%s/memory.oom_control", cg);
          break;
        }
      if (ctrl[1] == '\0' && access ("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0)
        snprintf (out, len, "/sys/fs/cgroup%s%smemory.events", cg, strcmp (cg, "/") == 0 ? "" : "/");
    }
  fclose (f);
}

/* oom_kill from the file, or -1 when it cannot be read (best effort: the runtime may have
 * removed the cgroup already). */
static long
read_oom_kills (const char *file)
{
  char line[256];
  long n = -1;
  FILE *f;
  if (file[0] == '\0' || (f = fopen (file, "re")) == NULL)
    return -1;
  while (fgets (line, sizeof line, f) != NULL)
    if (sscanf (line, "oom_kill %ld", &n) == 1)
      break;
  fclose (f);
  return n;
}

static int
write_exit_file (const mon_opts_t *o, const mon_state_t *st, const char *create_error, rt_error_t *err)
{
  char time[64], sig[64] = "", *text = NULL;
  cleanup_free char *problem = NULL, *cerr = NULL;
  int code = -1, ret;
  long ooms = read_oom_kills (st->oom_file);
  if (now_rfc3339 (time, sizeof time, err) < 0)
    return -1;
  if (st->exited && WIFEXITED (st->status))
    code = WEXITSTATUS (st->status);
  else if (st->exited && WIFSIGNALED (st->status))
    {
      const char *abbrev = sigabbrev_np (WTERMSIG (st->status));
      code = 128 + WTERMSIG (st->status);
      snprintf (sig, sizeof sig, ",\"signal\":\"SIG%s\"", abbrev != NULL ? abbrev : "UNKNOWN");
    }
  if (st->problem != NULL)
    {
      problem = malloc (strlen (st->problem) * 6 + 32);
      if (problem == NULL)
        return rt_make_error (err, ENOMEM, "exit file");
      strcpy (problem, ",\"monitorError\":\"");
      problem[17 + json_escape (problem + 17, st->problem, strlen (st->problem))] = '\0';
      strcat (problem, "\"");
    }
  if (create_error != NULL)
    {
      cerr = malloc (strlen (create_error) * 6 + 32);
      if (cerr == NULL)
        return rt_make_error (err, ENOMEM, "exit file");
      strcpy (cerr, ",\"createError\":\"");
      cerr[16 + json_escape (cerr + 16, create_error, strlen (create_error))] = '\0';
      strcat (cerr, "\"");
    }
  if (asprintf (&text, "{\"exitCode\":%d%s,\"finishedAt\":\"%s\",\"oomKilled\":%s,\"pid\":%d%s%s}\n", code, sig, time,
                ooms > 0 ? "true" : "false", st->pid, problem ? problem : "", cerr ? cerr : "")
      < 0)
    return rt_make_error (err, ENOMEM, "exit file");
  ret = write_atomic (o->exit_file, text, err);
  free (text);
  return ret;
}

/* ---- readiness ---------------------------------------------------------------------------- */

static void
report_ready (int fd, pid_t pid, const char *error)
{
  char buf[8192];
  size_t n;
  rt_error_t ignored = { 0, NULL };
  if (fd < 0)
    return;
  if (error == NULL)
    n = (size_t) snprintf (buf, sizeof buf, "{\"monitorPid\":%d,\"pid\":%d}\n", getpid (), pid);
  else
    {
      size_t len = strnlen (error, (sizeof buf - 16) / 6);
      memcpy (buf, "{\"error\":\"", 10);
      n = 10 + json_escape (buf + 10, error, len);
      memcpy (buf + n, "\"}\n", 3);
      n += 3;
    }
  /* The caller may be gone (kill -9): EPIPE is ignored, the container carries on. */
  write_all (fd, buf, n, "the ready descriptor", &ignored);
  rt_error_release (&ignored);
  close (fd);
}

/* ---- running the runtime ------------------------------------------------------------------ */

static int
open_devnull_stdio (rt_error_t *err)
{
  int fd = open ("/dev/null", O_RDWR | O_CLOEXEC), i;
  if (fd < 0)
    return rt_make_error (err, errno, "open /dev/null");
  for (i = 0; i < 3; i++)
    if (dup2 (fd, i) < 0)
      {
        close (fd);
        return rt_make_error (err, errno, "dup2 /dev/null");
      }
  if (fd > 2)
    close (fd);
  return 0;
}

/* The runtime's child: stdin /dev/null, stdout and stderr the pipes, default signals. */
static void __attribute__ ((noreturn))
exec_runtime (const mon_opts_t *o, const char *pid_file, int out_w, int err_w)
{
  const char *argv[14];
  int n = 0, null_fd;
  sigset_t none;
  char msg[PATH_MAX + 64];
  sigemptyset (&none);
  if (sigprocmask (SIG_SETMASK, &none, NULL) < 0 || signal (SIGPIPE, SIG_DFL) == SIG_ERR)
    _exit (127);
  null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0 || dup2 (null_fd, 0) < 0 || dup2 (out_w, 1) < 0 || dup2 (err_w, 2) < 0)
    _exit (127);
  argv[n++] = o->runtime;
  if (o->runtime_root != NULL)
    argv[n++] = "--root", argv[n++] = o->runtime_root;
  argv[n++] = "create";
  argv[n++] = "--bundle", argv[n++] = o->bundle;
  argv[n++] = "--pid-file", argv[n++] = pid_file;
  if (o->console_socket != NULL)
    argv[n++] = "--console-socket", argv[n++] = o->console_socket;
  argv[n++] = o->id;
  argv[n] = NULL;
  execv (o->runtime, (char *const *) argv);
  n = snprintf (msg, sizeof msg, "swarm-monitor: exec %s: %s\n", o->runtime, strerror (errno));
  if (write (2, msg, (size_t) n) < 0)
    _exit (127);
  _exit (127);
}

static int
wait_for (pid_t pid, int *status, rt_error_t *err)
{
  for (;;)
    {
      if (waitpid (pid, status, 0) >= 0)
        return 0;
      if (errno != EINTR)
        return rt_make_error (err, errno, "waitpid %d", pid);
    }
}

/* runc and crun log errors in logfmt (time="..." level=error msg="..."): the msg value, unquoted. */
static bool
logfmt_msg (const char *line, char *out, size_t len)
{
  const char *p = strstr (line, "msg=\"");
  size_t o = 0;
  if (p == NULL || len == 0)
    return false;
  for (p += 5; *p != '\0' && *p != '"' && o + 1 < len; p++)
    {
      if (*p == '\\' && p[1] != '\0')
        p++;
      out[o++] = *p;
    }
  out[o] = '\0';
  return true;
}

/* The runtime's last non-empty output line (its one-line error), from what is in the pipes. */
static void
runtime_error_line (mon_stream_t *streams, int status, const char *runtime, char *out, size_t len)
{
  char text[2 * LINE_MAX_BYTES + 1];
  size_t n = 0, i;
  char *line = NULL, *save = NULL, *tok;
  for (i = 0; i < 2; i++)
    {
      ssize_t r;
      while (streams[i].fd >= 0 && n < sizeof text - 1 && (r = read (streams[i].fd, text + n, sizeof text - 1 - n)) > 0)
        n += (size_t) r;
    }
  text[n] = '\0';
  for (tok = strtok_r (text, "\n", &save); tok != NULL; tok = strtok_r (NULL, "\n", &save))
    if (tok[strspn (tok, " \t\r")] != '\0')
      line = tok;
  if (line != NULL && logfmt_msg (line, out, len))
    return;
  if (line != NULL)
    snprintf (out, len, "%s", line);
  else if (WIFEXITED (status))
    snprintf (out, len, "%s create exited with status %d", runtime, WEXITSTATUS (status));
  else
    snprintf (out, len, "%s create killed by signal %d", runtime, WTERMSIG (status));
}

static int
read_pid_file (const char *path, pid_t *pid, rt_error_t *err)
{
  char buf[32];
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  ssize_t n;
  long v;
  char *end;
  if (fd < 0)
    return rt_make_error (err, errno, "open %s", path);
  n = read (fd, buf, sizeof buf - 1);
  if (n < 0)
    return rt_make_error (err, errno, "read %s", path);
  buf[n] = '\0';
  errno = 0;
  v = strtol (buf, &end, 10);
  if (errno != 0 || end == buf || v <= 0 || v > INT_MAX)
    return rt_make_error (err, 0, "%s: not a pid: `%s`", path, buf);
  *pid = (pid_t) v;
  return 0;
}

/* ---- the terminal ------------------------------------------------------------------------ */

/* Listens on PATH (a stale socket file there is replaced). */
static int
console_listen (const char *path, rt_error_t *err)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd;
  if (strlen (path) >= sizeof addr.sun_path)
    return rt_make_error (err, ENAMETOOLONG, "console socket %s", path);
  strcpy (addr.sun_path, path);
  if (unlink (path) < 0 && errno != ENOENT)
    return rt_make_error (err, errno, "unlink %s", path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return rt_make_error (err, errno, "socket for %s", path);
  if (bind (fd, (struct sockaddr *) &addr, sizeof addr) < 0 || listen (fd, 1) < 0)
    {
      int e = errno;
      close (fd);
      return rt_make_error (err, e, "listen on %s", path);
    }
  return fd;
}

/* Receives one descriptor sent with SCM_RIGHTS on the connected socket CONN. */
static int
receive_fd (int conn, const char *path, rt_error_t *err)
{
  char byte[256];
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } control;
  struct iovec iov = { .iov_base = byte, .iov_len = sizeof byte };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
  struct cmsghdr *c;
  ssize_t n;
  int fd;
  do
    n = recvmsg (conn, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return rt_make_error (err, errno, "receive the terminal on %s", path);
  c = CMSG_FIRSTHDR (&msg);
  if (c == NULL || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN (sizeof (int)))
    return rt_make_error (err, 0, "%s: the runtime sent no terminal descriptor", path);
  memcpy (&fd, CMSG_DATA (c), sizeof fd);
  return fd;
}

/* Waits for the runtime (CHILD) to connect to LISTEN_FD and send the terminal's master, or to
 * exit without doing so; *status is set when it exited. Returns the master, or -1 (err set only
 * when something failed on our side). */
static int
accept_terminal (int listen_fd, const char *path, pid_t child, bool *exited, int *status, rt_error_t *err)
{
  for (;;)
    {
      struct pollfd p = { .fd = listen_fd, .events = POLLIN };
      int conn, fd, r = poll (&p, 1, 20);
      if (r < 0 && errno != EINTR)
        return rt_make_error (err, errno, "poll %s", path);
      if (r > 0)
        {
          conn = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);
          if (conn < 0)
            return rt_make_error (err, errno, "accept on %s", path);
          fd = receive_fd (conn, path, err);
          close (conn);
          return fd;
        }
      r = waitpid (child, status, WNOHANG);
      if (r < 0 && errno != EINTR)
        return rt_make_error (err, errno, "waitpid %d", child);
      if (r == child)
        {
          *exited = true;
          return -1;
        }
    }
}

/* Creates the container: returns 0 with st->pid set, or -1 with err holding the runtime's line. */
static int
create_container (const mon_opts_t *o, const char *pid_file, mon_stream_t *streams, mon_state_t *st, rt_error_t *err)
{
  int out[2], errp[2], status = 0;
  cleanup_close int listen_fd = -1;
  bool exited = false;
  pid_t child;
  char line[4096];
  if (o->console_socket != NULL && (listen_fd = console_listen (o->console_socket, err)) < 0)
    return -1;
  if (pipe2 (out, O_CLOEXEC) < 0)
    return rt_make_error (err, errno, "pipe for stdout");
  if (pipe2 (errp, O_CLOEXEC) < 0)
    {
      close (out[0]), close (out[1]);
      return rt_make_error (err, errno, "pipe for stderr");
    }
  streams[0].fd = out[0];
  streams[1].fd = errp[0];
  child = fork ();
  if (child < 0)
    {
      close (out[1]), close (errp[1]);
      return rt_make_error (err, errno, "fork");
    }
  if (child == 0)
    exec_runtime (o, pid_file, out[1], errp[1]);
  /* Only the container keeps the write ends: EOF once it (and what it forked) is gone. */
  close (out[1]);
  close (errp[1]);
  if (fcntl (out[0], F_SETFL, O_NONBLOCK) < 0 || fcntl (errp[0], F_SETFL, O_NONBLOCK) < 0)
    return rt_make_error (err, errno, "make the container's pipes non-blocking");
  if (listen_fd >= 0)
    {
      /* The terminal's output is the container's stdout; the pipe keeps only what the runtime
       * itself writes (its errors). */
      int master = accept_terminal (listen_fd, o->console_socket, child, &exited, &status, err);
      unlink (o->console_socket);
      if (master < 0 && err->msg != NULL)
        return -1;
      if (master >= 0)
        {
          close (streams[0].fd);
          streams[0].fd = master;
          if (fcntl (master, F_SETFL, O_NONBLOCK) < 0)
            return rt_make_error (err, errno, "make the terminal non-blocking");
        }
    }
  if (!exited && wait_for (child, &status, err) < 0)
    return -1;
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      runtime_error_line (streams, status, o->runtime, line, sizeof line);
      return rt_make_error (err, 0, "%s", line);
    }
  if (read_pid_file (pid_file, &st->pid, err) < 0)
    return rt_wrap_error (err, "%s create succeeded but its pid file is unreadable", o->runtime);
  find_oom_file (st->pid, st->oom_file, sizeof st->oom_file);
  return 0;
}

/* ---- the main loop ------------------------------------------------------------------------ */

static void
note_problem (mon_state_t *st, rt_error_t *err)
{
  char line[4096];
  rt_error_format (err, line, sizeof line);
  if (st->problem == NULL)
    st->problem = strdup (line);
  rt_error_release (err);
}

/* Reaps every child that has exited: the init (recorded), and orphans re-parented to us. */
static void
reap (mon_state_t *st)
{
  for (;;)
    {
      int status;
      pid_t p = waitpid (-1, &status, WNOHANG);
      if (p <= 0)
        return; /* 0: none ready; ECHILD: none left */
      if (p == st->pid)
        st->exited = true, st->status = status;
    }
}

static long long
monotonic_ms (void)
{
  struct timespec ts;
  if (clock_gettime (CLOCK_MONOTONIC, &ts) < 0)
    return 0;
  return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
supervise (int sig_fd, mon_stream_t *streams, mon_state_t *st)
{
  long long deadline = -1;
  rt_error_t err = { 0, NULL };
  reap (st); /* a SIGCHLD from before the signalfd existed is pending there anyway; be sure */
  for (;;)
    {
      struct pollfd p[3] = { { sig_fd, POLLIN, 0 }, { streams[0].fd, POLLIN, 0 }, { streams[1].fd, POLLIN, 0 } };
      int timeout = -1, i;
      if (st->exited && deadline < 0)
        deadline = monotonic_ms () + DRAIN_MS;
      if (st->exited && streams[0].fd < 0 && streams[1].fd < 0)
        return 0;
      if (deadline >= 0)
        {
          long long left = deadline - monotonic_ms ();
          if (left <= 0)
            return 0;
          timeout = (int) left;
        }
      if (poll (p, 3, timeout) < 0)
        {
          if (errno == EINTR)
            continue;
          rt_make_error (&err, errno, "poll");
          note_problem (st, &err);
          return -1;
        }
      if (p[0].revents & POLLIN)
        {
          struct signalfd_siginfo si;
          if (read (sig_fd, &si, sizeof si) < 0 && errno != EAGAIN && errno != EINTR)
            {
              rt_make_error (&err, errno, "read the signalfd");
              note_problem (st, &err);
            }
          reap (st);
        }
      for (i = 0; i < 2; i++)
        if (p[i + 1].revents != 0 && stream_read (&streams[i], &st->log, &err) < 0)
          note_problem (st, &err);
    }
}

/* Everything above 2 but keep is closed: the monitor holds nothing of its caller's. */
static int
close_other_fds (int keep, rt_error_t *err)
{
  if (keep < 0)
    {
      if (close_range (3, ~0U, 0) < 0)
        return rt_make_error (err, errno, "close_range");
      return 0;
    }
  if (keep > 3 && close_range (3, (unsigned int) keep - 1, 0) < 0)
    return rt_make_error (err, errno, "close_range");
  if (close_range ((unsigned int) keep + 1, ~0U, 0) < 0)
    return rt_make_error (err, errno, "close_range");
  return 0;
}

static void
close_streams (mon_stream_t *streams, mon_state_t *st)
{
  int i;
  for (i = 0; i < 2; i++)
    if (streams[i].fd >= 0)
      {
        close (streams[i].fd);
        streams[i].fd = -1;
      }
  log_close (&st->log);
  free (st->problem);
  st->problem = NULL;
}

/* The daemon: everything after the fork. Returns the process exit code. */
static int
monitor_main (const mon_opts_t *o, int ready_fd)
{
  mon_stream_t streams[2] = { { "stdout", -1, 0, { 0 } }, { "stderr", -1, 0, { 0 } } };
  mon_state_t st = { 0, 0, false, "", { NULL, 0, 0, -1, 0, 0, NULL }, NULL };
  rt_error_t err = { 0, NULL };
  cleanup_free char *default_pid_file = NULL;
  cleanup_close int sig_fd = -1;
  const char *pid_file = o->pid_file;
  char line[4096];
  sigset_t chld;
  int ret;

  if (pid_file == NULL)
    {
      if (asprintf (&default_pid_file, "%s.pid", o->exit_file) < 0)
        return 1;
      pid_file = default_pid_file;
    }
  if (setsid () < 0)
    rt_make_error (&err, errno, "setsid");
  else if (prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    rt_make_error (&err, errno, "prctl PR_SET_CHILD_SUBREAPER");
  else if (chdir ("/") < 0)
    rt_make_error (&err, errno, "chdir /");
  else if (fcntl (ready_fd, F_SETFD, FD_CLOEXEC) < 0)
    rt_make_error (&err, errno, "close-on-exec on the ready descriptor");
  else if (open_devnull_stdio (&err) == 0 && close_other_fds (ready_fd, &err) == 0)
    {
      sigemptyset (&chld);
      sigaddset (&chld, SIGCHLD);
      if (sigprocmask (SIG_BLOCK, &chld, NULL) < 0)
        rt_make_error (&err, errno, "block SIGCHLD");
      else if ((sig_fd = signalfd (-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
        rt_make_error (&err, errno, "signalfd");
      else if (log_open (&st.log, o, &err) == 0)
        create_container (o, pid_file, streams, &st, &err);
    }
  if (err.msg != NULL)
    {
      rt_error_t ignored = { 0, NULL };
      rt_error_format (&err, line, sizeof line);
      /* The exit file first: once the caller has the line, the record is complete. */
      write_exit_file (o, &st, line, &ignored);
      rt_error_release (&ignored);
      report_ready (ready_fd, 0, line);
      rt_error_release (&err);
      close_streams (streams, &st);
      return 1;
    }
  report_ready (ready_fd, st.pid, NULL);
  supervise (sig_fd, streams, &st);
  ret = write_exit_file (o, &st, NULL, &err);
  rt_error_release (&err);
  close_streams (streams, &st);
  return ret < 0 ? 1 : 0;
}

/* Without --ready-fd, the first process waits for the ready line and relays it. */
static int
relay_ready (int fd)
{
  char buf[8192];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof buf - 1 && ((r = read (fd, buf + n, sizeof buf - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
    if (r > 0)
      n += (size_t) r;
  buf[n] = '\0';
  if (n == 0)
    {
      fprintf (stderr, "swarm-monitor: the monitor exited before it was ready\n");
      return 1;
    }
  if (strncmp (buf, "{\"error\"", 8) == 0)
    {
      fputs (buf, stderr);
      return 1;
    }
  fputs (buf, stdout);
  return fflush (stdout) == 0 ? 0 : 1;
}

int
main (int argc, char **argv)
{
  mon_opts_t o;
  int relay[2] = { -1, -1 }, ready_fd;
  pid_t child;
  if (argc == 2 && strcmp (argv[1], "--version") == 0)
    return puts ("swarm-monitor") < 0;
  if (parse_args (argc, argv, &o) != 0)
    return 2;
  /* The caller may die at any time: its end of the ready pipe must not kill us. */
  if (signal (SIGPIPE, SIG_IGN) == SIG_ERR)
    {
      perror ("swarm-monitor: ignore SIGPIPE");
      return 1;
    }
  ready_fd = o.ready_fd;
  if (ready_fd >= 0 && fcntl (ready_fd, F_GETFD) < 0)
    {
      fprintf (stderr, "swarm-monitor: --ready-fd %d: %s\n", ready_fd, strerror (errno));
      return 2;
    }
  if (ready_fd < 0 && pipe2 (relay, O_CLOEXEC) < 0)
    {
      perror ("swarm-monitor: pipe");
      return 1;
    }
  child = fork ();
  if (child < 0)
    {
      perror ("swarm-monitor: fork");
      return 1;
    }
  if (child == 0)
    {
      if (relay[0] >= 0)
        {
          close (relay[0]);
          ready_fd = relay[1];
        }
      _exit (monitor_main (&o, ready_fd));
    }
  /* The first process: the daemon is not our caller's child, so the caller can die freely. */
  if (relay[0] < 0)
    return 0;
  close (relay[1]);
  return relay_ready (relay[0]);
}
