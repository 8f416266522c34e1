/* The state directory: <root>/<id>/ holds `state.json` (what `state` prints, plus the init's
 * start time to detect pid reuse) and, between create and start, `exec.fifo`. */
#ifndef SWARM_STATE_H
#define SWARM_STATE_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

#define RT_DEFAULT_ROOT "/run/swarm-runtime"

typedef struct
{
  char *id;
  char *bundle;
  char *oci_version;
  char *annotations_json;
  char *created; /* RFC 3339 */
  pid_t pid;
  unsigned long long start_time; /* /proc/PID/stat field 22 */
  char *cgroup_path;             /* relative to each hierarchy's root; NULL: none (old state) */
  unsigned cgroup_extra;         /* RT_CGROUP_* hierarchies joined beyond the base set */
  char *post_hooks_json;         /* {"poststart":[...],"poststop":[...]}; NULL: none */
  char *rootfs;                  /* the root filesystem's absolute path (list) */
} rt_state_t;

enum rt_status
{
  RT_STATUS_CREATED,
  RT_STATUS_RUNNING,
  RT_STATUS_PAUSED,
  RT_STATUS_STOPPED,
};

const char *rt_status_name (enum rt_status s);

/* Container ids: [A-Za-z0-9_.-]+, no leading dot, at most 128 characters. */
int rt_check_id (const char *id, rt_error_t *err);

/* <root>/<id> into a heap string. */
char *rt_state_dir (const char *root, const char *id);

/* mkdir -p of the root and mkdir of <root>/<id>; EEXIST means the id is taken. */
int rt_state_dir_create (const char *root, const char *id, rt_error_t *err);
/* Removes the state directory and what it holds. */
int rt_state_dir_remove (const char *root, const char *id, rt_error_t *err);

int rt_state_write (const char *root, const rt_state_t *st, rt_error_t *err);
int rt_state_read (const char *root, const char *id, rt_state_t **out, rt_error_t *err);
void rt_state_free (rt_state_t *st);

/* Field 22 of /proc/PID/stat; -1 (errno set) if the process is gone. */
int rt_proc_start_time (pid_t pid, unsigned long long *out);
/* True while PID exists and is not a zombie. */
bool rt_pid_running (pid_t pid);
/* True while the recorded process still runs (same pid and start time, not a zombie). */
bool rt_state_alive (const rt_state_t *st);
/* created / running / paused / stopped, from the process, the exec fifo and the cgroup's
 * freezer. */
enum rt_status rt_state_status (const char *root, const rt_state_t *st);

/* Prints the OCI state JSON on stdout. */
int rt_state_print (const char *root, const rt_state_t *st, rt_error_t *err);

#endif
