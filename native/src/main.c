/* swarm-runtime: tswarm's OCI runtime (command table).
 *
 * The command line follows the OCI runtime-tools command-line-interface: global options, then
 *   create <id> [--bundle DIR] [--pid-file FILE]   start <id>   state <id>
 *   kill [--all] <id> [SIGNAL]   delete [--force] <id>
 *   run <id> [--bundle DIR] [--pid-file F] [--detach]   stats <id> (cgroup usage as JSON)
 *   exec [--process F] [--detach] [--pid-file F] [--cwd D] [--env K=V]... [--user UID[:GID]]
 *        <id> [--] CMD [ARGS...]
 *   ps [--format table|json] <id> [--] [PS ARGS...]
 * Errors are printed as one line, "swarm-runtime: COMMAND ID: what failed: why", exit code 1;
 * bad usage exits 2. */
#include <errno.h>
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
  bool force, detach, all;
  /* exec and ps */
  const char *process_file, *cwd, *user, *format;
  char **env; /* --env values (argv pointers), n_env of them */
  size_t n_env;
  char **rest; /* after the id: exec's command, ps's arguments to ps(1) */
} cli_t;

static int
usage (const char *problem)
{
  if (problem)
    fprintf (stderr, "swarm-runtime: %s\n", problem);
  fprintf (stderr, "usage: swarm-runtime [--root DIR] COMMAND [OPTIONS] ID\n"
                   "commands: create, start, state, kill, delete, run, exec, ps, stats; --version\n");
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

static int
cmd_create (cli_t *cli, rt_error_t *err)
{
  rt_create_opts_t o = { cli->root, cli->id, cli->bundle, cli->pid_file };
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
  rt_create_opts_t o = { cli->root, cli->id, cli->bundle, cli->pid_file };
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
    .user = cli->user,
    .pid_file = cli->pid_file,
    .detach = cli->detach,
  };
  return rt_container_exec (&o, &exit_code_of_run, err);
}

static int
cmd_ps (cli_t *cli, rt_error_t *err)
{
  return rt_container_ps (cli->root, cli->id, cli->format, cli->rest, err);
}

static const struct
{
  const char *name;
  int (*fn) (cli_t *, rt_error_t *);
  bool takes_signal;
  bool takes_rest; /* everything after the id is the command's (exec) or ps's (ps) */
} commands[] = {
  { "create", cmd_create, false, false }, { "start", cmd_start, false, false },
  { "state", cmd_state, false, false },   { "kill", cmd_kill, true, false },
  { "delete", cmd_delete, false, false }, { "run", cmd_run, false, false },
  { "stats", cmd_stats, false, false },   { "exec", cmd_exec, false, true },
  { "ps", cmd_ps, false, true },
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

/* exec's and ps's own options. */
static bool
exec_ps_option (int argc, char **argv, int *i, cli_t *cli)
{
  const char *v;
  if (strcmp (cli->command, "exec") == 0)
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
    }
  if (strcmp (cli->command, "ps") == 0)
    return option_value (argc, argv, i, "--format", &cli->format);
  return false;
}

/* Command options and positional arguments, in any order; for exec and ps, everything after the
 * id (a leading "--" dropped) belongs to the command or to ps. */
static int
parse_command (int argc, char **argv, int i, cli_t *cli, bool takes_signal, bool takes_rest)
{
  const char *ignored;
  for (; i < argc; i++)
    {
      const char *a = argv[i];
      if (takes_rest && cli->id != NULL)
        {
          if (strcmp (a, "--") == 0)
            i++;
          cli->rest = argv + i;
          break;
        }
      if (exec_ps_option (argc, argv, &i, cli))
        continue;
      if (option_value (argc, argv, &i, "--bundle", &cli->bundle)
          || option_value (argc, argv, &i, "-b", &cli->bundle)
          || option_value (argc, argv, &i, "--pid-file", &cli->pid_file)
          || option_value (argc, argv, &i, "--console-socket", &ignored))
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
        {
          char msg[256];
          snprintf (msg, sizeof msg, "%s: unknown option `%s`", cli->command, a);
          return usage (msg);
        }
      else if (cli->id == NULL)
        cli->id = a;
      else if (takes_signal && cli->signal == NULL)
        cli->signal = a;
      else
        {
          char msg[256];
          snprintf (msg, sizeof msg, "%s: unexpected argument `%s`", cli->command, a);
          return usage (msg);
        }
    }
  if (cli->id == NULL)
    {
      char msg[128];
      snprintf (msg, sizeof msg, "%s: missing container id", cli->command);
      return usage (msg);
    }
  return 0;
}

/* --root and --pid-file are relative to where we were started; they must survive the chdir into
 * the bundle. */
static char *
absolute_root (const char *root)
{
  char cwd[4096];
  char *out = NULL;
  if (root[0] == '/')
    return strdup (root);
  if (getcwd (cwd, sizeof cwd) == NULL || asprintf (&out, "%s/%s", cwd, root) < 0)
    return NULL;
  return out;
}

int
main (int argc, char **argv)
{
  cli_t cli = { .root = RT_DEFAULT_ROOT };
  rt_error_t err = { 0, NULL };
  const char *ignored;
  char *root, *pid_file = NULL;
  cleanup_free char **env = NULL; /* exec --env */
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
  if (env == NULL)
    {
      fprintf (stderr, "swarm-runtime: %s: %s\n", cli.command, strerror (errno));
      return 1;
    }
  ret = parse_command (argc, argv, i + 1, &cli, commands[c].takes_signal, commands[c].takes_rest);
  if (ret != 0)
    return ret;
  root = absolute_root (cli.root);
  if (root == NULL)
    {
      fprintf (stderr, "swarm-runtime: %s: --root: %s\n", cli.command, strerror (errno));
      return 1;
    }
  cli.root = root;
  if (cli.pid_file != NULL)
    {
      pid_file = absolute_root (cli.pid_file);
      if (pid_file == NULL)
        {
          fprintf (stderr, "swarm-runtime: %s: --pid-file: %s\n", cli.command, strerror (errno));
          free (root);
          return 1;
        }
      cli.pid_file = pid_file;
    }
  ret = report (&cli, commands[c].fn (&cli, &err), &err);
  free (root);
  free (pid_file);
  if (ret == 0 && (strcmp (cli.command, "run") == 0 || strcmp (cli.command, "exec") == 0))
    return exit_code_of_run;
  return ret;
}
