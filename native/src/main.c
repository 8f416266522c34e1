/* swarm-runtime: tswarm's OCI runtime (command table).
 *
 * The command line follows the OCI runtime-tools command-line-interface and runc's: global
 * options, then
 *   create <id> [--bundle DIR] [--pid-file F] [--console-socket S] [--preserve-fds N]
 *   start <id>   state <id>   kill [--all] <id> [SIGNAL]   delete [--force] <id>
 *   run <id> [--bundle DIR] [--pid-file F] [--detach] [--console-socket S] [--preserve-fds N]
 *   exec [--process F] [--detach] [--pid-file F] [--cwd D] [--env K=V]... [--user UID[:GID]]
 *        [--cap CAP]... [--tty] [--console-socket S] [--preserve-fds N] <id> [--] CMD [ARGS...]
 *   ps [--format table|json] <id> [--] [PS ARGS...]   stats <id> (cgroup usage as JSON)
 *   update [--resources FILE|-] [--memory N] ... <id>   pause <id>   resume <id>
 *   list [--format table|json] [--quiet]   features   spec [--bundle DIR] [--rootless]
 * Errors are printed as one line, "swarm-runtime: COMMAND ID: what failed: why", exit code 1;
 * bad usage exits 2. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container.h"
#include "error.h"
#include "state.h"

#ifndef SWARM_RUNTIME_VERSION
#define SWARM_RUNTIME_VERSION "0.0.0"
#endif

#define OCI_SPEC_VERSION "1.2.0"

typedef struct
{
  const char *root;
  const char *command;
  const char *id;
  const char *bundle;
  const char *pid_file;
  const char *signal;
  const char *console_socket;
  int preserve_fds;
  bool force, detach, all, tty, quiet, rootless;
  /* exec and ps */
  const char *process_file, *cwd, *user, *format;
  char **env; /* --env values (argv pointers), n_env of them */
  size_t n_env;
  char **caps; /* exec --cap values, n_caps of them */
  size_t n_caps;
  char **rest; /* after the id: exec's command, ps's arguments to ps(1) */
  rt_update_opts_t update;
} cli_t;

static int
usage (const char *problem)
{
  if (problem)
    fprintf (stderr, "swarm-runtime: %s\n", problem);
  fprintf (stderr, "usage: swarm-runtime [--root DIR] COMMAND [OPTIONS] [ID]\n"
                   "commands: create, start, state, kill, delete, run, exec, ps, stats, update, "
                   "pause, resume, list, features, spec; --version\n");
  return 2;
}

static int
print_version (void)
{
  if (printf ("swarm-runtime version %s\nspec: %s\n", SWARM_RUNTIME_VERSION, OCI_SPEC_VERSION) < 0)
    return 1;
  return 0;
}

static int
report (const cli_t *cli, int ret, rt_error_t *err)
{
  char line[4096];
  if (ret >= 0)
    return 0;
  rt_error_format (err, line, sizeof line);
  fprintf (stderr, "swarm-runtime: %s %s: %s\n", cli->command, cli->id ? cli->id : "", line);
  rt_error_release (err);
  return 1;
}

static rt_create_opts_t
create_opts (const cli_t *cli)
{
  rt_create_opts_t o = {
    .root = cli->root,
    .id = cli->id,
    .bundle = cli->bundle,
    .pid_file = cli->pid_file,
    .console_socket = cli->console_socket,
    .preserve_fds = cli->preserve_fds,
  };
  return o;
}

static int
cmd_create (cli_t *cli, rt_error_t *err)
{
  rt_create_opts_t o = create_opts (cli);
  pid_t pid;
  return rt_container_create (&o, &pid, err);
}

static int
cmd_start (cli_t *cli, rt_error_t *err)
{
  return rt_container_start (cli->root, cli->id, err);
}

static int
cmd_state (cli_t *cli, rt_error_t *err)
{
  return rt_container_state (cli->root, cli->id, err);
}

static int
cmd_kill (cli_t *cli, rt_error_t *err)
{
  return rt_container_kill (cli->root, cli->id, cli->signal, cli->all, err);
}

static int
cmd_delete (cli_t *cli, rt_error_t *err)
{
  return rt_container_delete (cli->root, cli->id, cli->force, err);
}

static int
cmd_stats (cli_t *cli, rt_error_t *err)
{
  return rt_container_stats (cli->root, cli->id, err);
}

static int exit_code_of_run;

static int
cmd_run (cli_t *cli, rt_error_t *err)
{
  rt_create_opts_t o = create_opts (cli);
  return rt_container_run (&o, cli->detach, &exit_code_of_run, err);
}

static int
cmd_exec (cli_t *cli, rt_error_t *err)
{
  rt_exec_opts_t o = {
    .root = cli->root,
    .id = cli->id,
    .process_file = cli->process_file,
    .args = cli->rest,
    .cwd = cli->cwd,
    .env = cli->env,
    .n_env = cli->n_env,
    .caps = cli->caps,
    .n_caps = cli->n_caps,
    .user = cli->user,
    .pid_file = cli->pid_file,
    .console_socket = cli->console_socket,
    .preserve_fds = cli->preserve_fds,
    .tty = cli->tty,
    .detach = cli->detach,
  };
  return rt_container_exec (&o, &exit_code_of_run, err);
}

static int
cmd_ps (cli_t *cli, rt_error_t *err)
{
  return rt_container_ps (cli->root, cli->id, cli->format, cli->rest, err);
}

static int
cmd_update (cli_t *cli, rt_error_t *err)
{
  return rt_container_update (cli->root, cli->id, &cli->update, err);
}

static int
cmd_pause (cli_t *cli, rt_error_t *err)
{
  return rt_container_pause (cli->root, cli->id, true, err);
}

static int
cmd_resume (cli_t *cli, rt_error_t *err)
{
  return rt_container_pause (cli->root, cli->id, false, err);
}

static int
cmd_list (cli_t *cli, rt_error_t *err)
{
  return rt_container_list (cli->root, cli->format, cli->quiet, err);
}

static int
cmd_features (cli_t *cli, rt_error_t *err)
{
  (void) cli;
  return rt_print_features (err);
}

static int
cmd_spec (cli_t *cli, rt_error_t *err)
{
  return rt_write_default_spec (cli->bundle, cli->rootless, err);
}

enum
{
  TAKES_SIGNAL = 1, /* a second positional argument: the signal (kill) */
  TAKES_REST = 2,   /* everything after the id is the command's (exec) or ps's (ps) */
  NO_ID = 4,        /* no container id (list, features, spec) */
};

static const struct
{
  const char *name;
  int (*fn) (cli_t *, rt_error_t *);
  int flags;
} commands[] = {
  { "create", cmd_create, 0 },      { "start", cmd_start, 0 },
  { "state", cmd_state, 0 },        { "kill", cmd_kill, TAKES_SIGNAL },
  { "delete", cmd_delete, 0 },      { "run", cmd_run, 0 },
  { "stats", cmd_stats, 0 },        { "exec", cmd_exec, TAKES_REST },
  { "ps", cmd_ps, TAKES_REST },     { "update", cmd_update, 0 },
  { "pause", cmd_pause, 0 },        { "resume", cmd_resume, 0 },
  { "list", cmd_list, NO_ID },      { "features", cmd_features, NO_ID },
  { "spec", cmd_spec, NO_ID },
};

/* "--opt VALUE" or "--opt=VALUE"; advances *i past the value. */
static bool
option_value (int argc, char **argv, int *i, const char *name, const char **out)
{
  size_t len = strlen (name);
  if (strncmp (argv[*i], name, len) != 0)
    return false;
  if (argv[*i][len] == '=')
    {
      *out = argv[*i] + len + 1;
      return true;
    }
  if (argv[*i][len] != '\0' || *i + 1 >= argc)
    return false;
  *out = argv[++*i];
  return true;
}

static bool
is (const cli_t *cli, const char *command)
{
  return strcmp (cli->command, command) == 0;
}

/* update's options, as runc names them (--cpu-share is runc's; --cpu-shares is accepted too). */
static bool
update_option (int argc, char **argv, int *i, cli_t *cli)
{
  static const char *const names[] = {
    "--memory",        "--memory-swap",  "--memory-reservation", "--kernel-memory",
    "--kernel-memory-tcp", "--cpu-quota", "--cpu-period",        "--cpu-share",
    "--cpu-shares",    "--cpu-rt-period", "--cpu-rt-runtime",    "--pids-limit",
    "--cpuset-cpus",   "--cpuset-mems",  "--blkio-weight",
  };
  const char *v;
  size_t k;
  if (option_value (argc, argv, i, "--resources", &cli->update.resources_file)
      || option_value (argc, argv, i, "-r", &cli->update.resources_file))
    return true;
  for (k = 0; k < sizeof (names) / sizeof (names[0]); k++)
    if (option_value (argc, argv, i, names[k], &v))
      {
        rt_update_flag_t *f = &cli->update.flags[cli->update.n_flags++];
        f->name = names[k] + 2;
        f->value = v;
        return true;
      }
  return false;
}

/* The options of exec, ps, list, update and spec. */
static bool
command_option (int argc, char **argv, int *i, cli_t *cli)
{
  const char *v;
  if (is (cli, "exec"))
    {
      if (option_value (argc, argv, i, "--process", &cli->process_file)
          || option_value (argc, argv, i, "-p", &cli->process_file)
          || option_value (argc, argv, i, "--cwd", &cli->cwd)
          || option_value (argc, argv, i, "--user", &cli->user)
          || option_value (argc, argv, i, "-u", &cli->user))
        return true;
      if (option_value (argc, argv, i, "--env", &v) || option_value (argc, argv, i, "-e", &v))
        {
          cli->env[cli->n_env++] = (char *) v;
          return true;
        }
      if (option_value (argc, argv, i, "--cap", &v) || option_value (argc, argv, i, "-c", &v))
        {
          cli->caps[cli->n_caps++] = (char *) v;
          return true;
        }
      if (strcmp (argv[*i], "--tty") == 0 || strcmp (argv[*i], "-t") == 0)
        {
          cli->tty = true;
          return true;
        }
    }
  if (is (cli, "ps") || is (cli, "list"))
    {
      if (option_value (argc, argv, i, "--format", &cli->format)
          || option_value (argc, argv, i, "-f", &cli->format))
        return true;
    }
  if (is (cli, "list") && (strcmp (argv[*i], "--quiet") == 0 || strcmp (argv[*i], "-q") == 0))
    {
      cli->quiet = true;
      return true;
    }
  if (is (cli, "update"))
    return update_option (argc, argv, i, cli);
  if (is (cli, "spec") && strcmp (argv[*i], "--rootless") == 0)
    {
      cli->rootless = true;
      return true;
    }
  return false;
}

/* "COMMAND: BEFORE`ARG`AFTER" (ARG quoted when given). */
static int
bad_usage (const cli_t *cli, const char *before, const char *arg, const char *after)
{
  char msg[512];
  snprintf (msg, sizeof msg, "%s: %s%s%s%s%s", cli->command, before, arg ? "`" : "", arg ? arg : "",
            arg ? "`" : "", after);
  return usage (msg);
}

/* --preserve-fds N: a count of descriptors from 3 on. */
static int
parse_preserve_fds (const cli_t *cli, const char *v, int *out)
{
  char *end;
  long n;
  errno = 0;
  n = strtol (v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || n < 0 || n > 1024)
    return bad_usage (cli, "--preserve-fds: ", v, " is not a count of descriptors");
  *out = (int) n;
  return 0;
}

/* Command options and positional arguments, in any order; for exec and ps, everything after the
 * id (a leading "--" dropped) belongs to the command or to ps. */
static int
parse_command (int argc, char **argv, int i, cli_t *cli, int flags)
{
  const char *ignored, *v;
  for (; i < argc; i++)
    {
      const char *a = argv[i];
      if ((flags & TAKES_REST) && cli->id != NULL)
        {
          if (strcmp (a, "--") == 0)
            i++;
          cli->rest = argv + i;
          break;
        }
      if (command_option (argc, argv, &i, cli))
        continue;
      if (option_value (argc, argv, &i, "--preserve-fds", &v))
        {
          if (parse_preserve_fds (cli, v, &cli->preserve_fds) != 0)
            return 2;
          continue;
        }
      if (option_value (argc, argv, &i, "--bundle", &cli->bundle)
          || option_value (argc, argv, &i, "-b", &cli->bundle)
          || option_value (argc, argv, &i, "--pid-file", &cli->pid_file)
          || option_value (argc, argv, &i, "--console-socket", &cli->console_socket))
        continue;
      if (option_value (argc, argv, &i, "--criu", &ignored))
        continue;
      if (strcmp (a, "--force") == 0 || strcmp (a, "-f") == 0)
        cli->force = true;
      else if (strcmp (a, "--detach") == 0 || strcmp (a, "-d") == 0)
        cli->detach = true;
      else if (strcmp (a, "--all") == 0 || strcmp (a, "-a") == 0)
        cli->all = true;
      else if (strcmp (a, "--no-pivot") == 0)
        continue;
      else if (a[0] == '-' && a[1] != '\0')
        return bad_usage (cli, "unknown option ", a, "");
      else if (cli->id == NULL && !(flags & NO_ID))
        cli->id = a;
      else if ((flags & TAKES_SIGNAL) && cli->signal == NULL)
        cli->signal = a;
      else
        return bad_usage (cli, "unexpected argument ", a, "");
    }
  if (cli->id == NULL && !(flags & NO_ID))
    return bad_usage (cli, "missing container id", NULL, "");
  return 0;
}

/* --preserve-fds N: a descriptor among 3..3+N-1 the caller left closed is filled with
 * /dev/null, so that none of the runtime's own (sockets, the fifo) lands there and reaches the
 * container. */
static int
fill_preserved (int n)
{
  int fd;
  for (fd = 3; fd < 3 + n; fd++)
    if (fcntl (fd, F_GETFD) < 0)
      {
        int null = open ("/dev/null", O_RDWR);
        if (null < 0)
          return -1;
        if (null != fd && (dup2 (null, fd) < 0 || close (null) < 0))
          return -1;
      }
  return 0;
}

/* --root, --pid-file and --console-socket are relative to where we were started; they must
 * survive the chdir into the bundle. */
static char *
absolute (const char *path)
{
  char cwd[PATH_MAX];
  char *out = NULL;
  if (path[0] == '/')
    return strdup (path);
  if (getcwd (cwd, sizeof cwd) == NULL || asprintf (&out, "%s/%s", cwd, path) < 0)
    return NULL;
  return out;
}

/* Makes *PATH absolute (a heap string in *OWNED); false on ENOMEM. */
static bool
make_absolute (const char **path, char **owned)
{
  if (*path == NULL)
    return true;
  *owned = absolute (*path);
  if (*owned == NULL)
    return false;
  *path = *owned;
  return true;
}

int
main (int argc, char **argv)
{
  cli_t cli = { .root = RT_DEFAULT_ROOT };
  rt_error_t err = { 0, NULL };
  const char *ignored;
  cleanup_free char *root = NULL, *pid_file = NULL, *console_socket = NULL;
  cleanup_free char **env = NULL, **caps = NULL;
  cleanup_free rt_update_flag_t *update_flags = NULL;
  size_t c;
  int i, ret;

  for (i = 1; i < argc && argv[i][0] == '-'; i++)
    {
      if (strcmp (argv[i], "--version") == 0 || strcmp (argv[i], "-v") == 0)
        return print_version ();
      if (option_value (argc, argv, &i, "--root", &cli.root)
          || option_value (argc, argv, &i, "--log", &ignored)
          || option_value (argc, argv, &i, "--log-format", &ignored)
          || option_value (argc, argv, &i, "--cgroup-manager", &ignored))
        continue;
      if (strcmp (argv[i], "--debug") == 0 || strcmp (argv[i], "--systemd-cgroup") == 0)
        continue;
      char msg[256];
      snprintf (msg, sizeof msg, "unknown global option `%s`", argv[i]);
      return usage (msg);
    }
  if (i >= argc)
    return usage (NULL);
  cli.command = argv[i];
  for (c = 0; c < sizeof (commands) / sizeof (commands[0]); c++)
    if (strcmp (commands[c].name, cli.command) == 0)
      break;
  if (c == sizeof (commands) / sizeof (commands[0]))
    {
      char msg[256];
      snprintf (msg, sizeof msg, "unknown command `%s`", cli.command);
      return usage (msg);
    }
  cli.env = env = calloc ((size_t) argc, sizeof (char *));
  cli.caps = caps = calloc ((size_t) argc, sizeof (char *));
  cli.update.flags = update_flags = calloc ((size_t) argc, sizeof (rt_update_flag_t));
  if (env == NULL || caps == NULL || update_flags == NULL)
    {
      fprintf (stderr, "swarm-runtime: %s: %s\n", cli.command, strerror (errno));
      return 1;
    }
  ret = parse_command (argc, argv, i + 1, &cli, commands[c].flags);
  if (ret != 0)
    return ret;
  if (!make_absolute (&cli.root, &root) || !make_absolute (&cli.pid_file, &pid_file)
      || !make_absolute (&cli.console_socket, &console_socket)
      || fill_preserved (cli.preserve_fds) < 0)
    {
      fprintf (stderr, "swarm-runtime: %s: %s\n", cli.command, strerror (errno));
      return 1;
    }
  ret = report (&cli, commands[c].fn (&cli, &err), &err);
  if (ret == 0 && (strcmp (cli.command, "run") == 0 || strcmp (cli.command, "exec") == 0))
    return exit_code_of_run;
  return ret;
}
