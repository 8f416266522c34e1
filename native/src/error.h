/* Errors, in the manner of crun: a fallible function takes `rt_error_t *err`, returns a negative
 * int on failure and fills `err` with the errno and a message naming the step and the path. The
 * caller either handles it or returns the negative value; main prints it as one line. */
#ifndef SWARM_ERROR_H
#define SWARM_ERROR_H

#include <stddef.h>

typedef struct
{
  int status; /* errno of the failing call, 0 if none */
  char *msg;  /* heap string, NULL when no error */
} rt_error_t;

#define UNLIKELY(x) __builtin_expect (!!(x), 0)

/* Fills err (if not already filled) and returns -1. */
int rt_make_error (rt_error_t *err, int status, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
/* Prefixes an existing error's message with more context; returns -1. */
int rt_wrap_error (rt_error_t *err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/* "msg: strerror(status)" into buf. */
void rt_error_format (const rt_error_t *err, char *buf, size_t len);
void rt_error_release (rt_error_t *err);

/* Cleanup attributes: early returns do not leak. */
void rt_cleanup_freep (void *p);
void rt_cleanup_closep (int *fd);
#define cleanup_free __attribute__ ((cleanup (rt_cleanup_freep)))
#define cleanup_close __attribute__ ((cleanup (rt_cleanup_closep)))

#endif
