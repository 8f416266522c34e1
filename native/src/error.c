#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *
vformat (const char *fmt, va_list ap)
{
  char *s = NULL;
  if (vasprintf (&s, fmt, ap) < 0)
    return NULL;
  return s;
}

int
rt_make_error (rt_error_t *err, int status, const char *fmt, ...)
{
  va_list ap;
  if (err->msg != NULL)
    return -1;
  va_start (ap, fmt);
  err->msg = vformat (fmt, ap);
  va_end (ap);
  err->status = status;
  return -1;
}

int
rt_wrap_error (rt_error_t *err, const char *fmt, ...)
{
  va_list ap;
  char *prefix, *joined = NULL;
  va_start (ap, fmt);
  prefix = vformat (fmt, ap);
  va_end (ap);
  if (prefix == NULL)
    return -1;
  if (asprintf (&joined, "%s: %s", prefix, err->msg ? err->msg : "error") < 0)
    joined = NULL;
  free (prefix);
  if (joined != NULL)
    {
      free (err->msg);
      err->msg = joined;
    }
  return -1;
}

void
rt_error_format (const rt_error_t *err, char *buf, size_t len)
{
  const char *msg = err->msg ? err->msg : "unknown error";
  if (err->status != 0)
    snprintf (buf, len, "%s: %s", msg, strerror (err->status));
  else
    snprintf (buf, len, "%s", msg);
}

void
rt_error_release (rt_error_t *err)
{
  free (err->msg);
  err->msg = NULL;
  err->status = 0;
}

void
rt_cleanup_freep (void *p)
{
  void **pp = (void **) p;
  free (*pp);
}

void
rt_cleanup_closep (int *fd)
{
  if (*fd >= 0)
    {
      int saved = errno;
      close (*fd);
      errno = saved;
    }
}
