/* The OCI lifecycle: create, start, state, kill, delete, run. */
#ifndef SWARM_CONTAINER_H
#define SWARM_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

typedef struct
{
  const char *root;     /* state directory root (--root) */
  const char *id;
  const char *bundle;   /* NULL means the current directory */
  const char *pid_file; /* NULL for none */
  const char *console_socket; /* process.terminal: where the pty's master goes; NULL: none */
  int preserve_fds;     /* descriptors 3..3+N-1 stay open in the container process */
} rt_create_opts_t;

int rt_container_create (const rt_create_opts_t *opts, pid_t *pid, rt_error_t *err);
int rt_container_start (const char *root, const char *id, rt_error_t *err);
int rt_container_state (const char *root, const char *id, rt_error_t *err);
/* ALL: every process in the container's cgroup (runc's --all), not only the init. */
int rt_container_kill (const char *root, const char *id, const char *signal, bool all,
                       rt_error_t *err);
/* Prints the cgroup's usage as JSON (memory, cpu, pids). */
int rt_container_stats (const char *root, const char *id, rt_error_t *err);
int rt_container_delete (const char *root, const char *id, bool force, rt_error_t *err);
/* create + start + wait; *exit_code is the container's exit status (128+N after signal N). */
int rt_container_run (const rt_create_opts_t *opts, bool detach, int *exit_code,
                      rt_error_t *err);

typedef struct
{
  const char *root;
  const char *id;
  const char *process_file; /* --process: an OCI process object replacing the spec's */
  char **args;              /* the command (NULL-terminated); NULL or empty: the process file's */
  const char *cwd;          /* --cwd */
  char **env;               /* --env K=V, appended to the process's env */
  size_t n_env;
  char **caps;              /* --cap CAP: added to the bounding, effective, permitted, ambient sets */
  size_t n_caps;
  const char *user;         /* --user UID[:GID] */
  const char *pid_file;
  const char *console_socket;
  int preserve_fds;
  bool tty;                 /* --tty: process.terminal */
  bool detach;
} rt_exec_opts_t;

/* Runs a process in the container's namespaces and cgroup with the settings of its config.json's
 * process (or --process); without detach waits, *exit_code as with run. */
int rt_container_exec (const rt_exec_opts_t *opts, int *exit_code, rt_error_t *err);
/* FORMAT "json": the container's host pids as a JSON array; "table" (or NULL): the lines of
 * `ps PS_ARGS` (default -ef) whose PID is the container's, as runc ps. */
int rt_container_ps (const char *root, const char *id, const char *format, char **ps_args,
                     rt_error_t *err);

/* One update flag as runc names it ("memory", "cpu-quota", ...) and its value. */
typedef struct
{
  const char *name;
  const char *value;
} rt_update_flag_t;

typedef struct
{
  const char *resources_file; /* --resources FILE ("-": stdin); the flags are ignored then, as runc */
  rt_update_flag_t *flags;
  size_t n_flags;
} rt_update_opts_t;

/* Writes new limits to the cgroup of a created, running or paused container. */
int rt_container_update (const char *root, const char *id, const rt_update_opts_t *o,
                         rt_error_t *err);
/* pause (FREEZE) or resume a running container. */
int rt_container_pause (const char *root, const char *id, bool freeze, rt_error_t *err);
/* The containers under ROOT, as runc's list: a table (FORMAT "table" or NULL), JSON, or the ids
 * alone (QUIET). */
int rt_container_list (const char *root, const char *format, bool quiet, rt_error_t *err);
/* What this runtime supports, as runc's `features` JSON. */
int rt_print_features (rt_error_t *err);
/* A default config.json in BUNDLE (NULL: the current directory), as `runc spec`. */
int rt_write_default_spec (const char *bundle, bool rootless, rt_error_t *err);

/* "TERM", "SIGTERM" or "15"; -1 if unknown. */
int rt_parse_signal (const char *name);

#endif
