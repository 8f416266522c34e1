/* swarm-runtime: tswarm's OCI runtime (command table).
 *
 * The OCI runtime command line (create, start, state, kill, delete, run, exec, ps) is being built
 * in the executor issue; until then this binary answers --version and refuses every other command
 * with a clear message, so that nothing mistakes it for a working runtime. */
#include <stdio.h>
#include <string.h>

#ifndef SWARM_RUNTIME_VERSION
#define SWARM_RUNTIME_VERSION "0.0.0"
#endif

#define OCI_SPEC_VERSION "1.2.0"

static int
print_version (void)
{
  if (printf ("swarm-runtime version %s\nspec: %s\n", SWARM_RUNTIME_VERSION, OCI_SPEC_VERSION) < 0)
    return 1;
  return 0;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    {
      fprintf (stderr, "usage: swarm-runtime --version | COMMAND [ARGS...]\n");
      return 2;
    }
  if (strcmp (argv[1], "--version") == 0 || strcmp (argv[1], "-v") == 0)
    return print_version ();
  fprintf (stderr, "swarm-runtime: command `%s` is not available in this build yet\n", argv[1]);
  return 1;
}
