/* swarm-init: a small init for containers (`--init`), in the manner of tini (Docker's
 * docker-init).
 *
 *   swarm-init [--] COMMAND [ARGS...]
 *
 * It runs as the container's PID 1 and:
 *   - runs COMMAND as its child, in a process group of its own (the terminal's foreground group,
 *     when stdin is one), with the signal mask and dispositions it was given;
 *   - forwards every signal it receives (but SIGCHLD and the synchronous ones) to that child, so
 *     that a stop signal reaches the program instead of dying with PID 1, which ignores the
 *     signals it has no handler for;
 *   - reaps every zombie re-parented to it (orphaned grandchildren), so none piles up;
 *   - exits with the child's status once the child has exited: its exit code, or 128+N when
 *     signal N killed it.
 *
 * It writes nothing but its own errors ("swarm-init: what: why"), exit code 127 when COMMAND
 * cannot be run, 2 for bad usage. Signals are taken with sigtimedwait, not handlers: nothing runs
 * asynchronously. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_EXEC_FAILED 127
#define EXIT_USAGE 2

/* Synchronous signals (a fault of the process itself) and the terminal's job-control stops
 * stay as they are: blocking them would make a fault loop, forwarding them means nothing. */
static const int unblocked_signals[] = { SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS, SIGTTIN, SIGTTOU };

static void
fail (const char *what)
{
  fprintf (stderr, "swarm-init: %s: %s\n", what, strerror (errno));
}

/* The set of signals PID 1 takes over: all of them but the unblocked ones. */
static int
taken_signals (sigset_t *set)
{
  size_t i;
  if (sigfillset (set) < 0)
    return -1;
  for (i = 0; i < sizeof (unblocked_signals) / sizeof (unblocked_signals[0]); i++)
    if (sigdelset (set, unblocked_signals[i]) < 0)
      return -1;
  return 0;
}

/* In the child: its own process group, in the terminal's foreground if there is one, the
 * caller's signal mask back, then exec. Only returns on failure. */
static void __attribute__ ((noreturn))
run_child (char **argv, const sigset_t *saved_mask)
{
  struct sigaction ignore = { .sa_handler = SIG_IGN }, old;
  if (setpgid (0, 0) < 0)
    {
      fail ("setpgid");
      _exit (EXIT_EXEC_FAILED);
    }
  /* tcsetpgrp from what is now a background group raises SIGTTOU: ignored for the call. */
  if (isatty (STDIN_FILENO) && sigaction (SIGTTOU, &ignore, &old) == 0)
    {
      if (tcsetpgrp (STDIN_FILENO, getpgrp ()) < 0 && errno != ENOTTY && errno != ENXIO)
        fail ("tcsetpgrp");
      sigaction (SIGTTOU, &old, NULL);
    }
  if (sigprocmask (SIG_SETMASK, saved_mask, NULL) < 0)
    {
      fail ("sigprocmask");
      _exit (EXIT_EXEC_FAILED);
    }
  execvp (argv[0], argv);
  fprintf (stderr, "swarm-init: exec %s: %s\n", argv[0], strerror (errno));
  _exit (EXIT_EXEC_FAILED);
}

/* Reaps every exited child; sets *status when CHILD is among them. Returns -1 on a waitpid
 * error other than "no children left". */
static int
reap (pid_t child, bool *child_done, int *status)
{
  for (;;)
    {
      int st;
      pid_t pid = waitpid (-1, &st, WNOHANG);
      if (pid == 0)
        return 0;
      if (pid < 0)
        {
          if (errno == ECHILD)
            return 0;
          if (errno == EINTR)
            continue;
          fail ("waitpid");
          return -1;
        }
      if (pid == child)
        {
          *child_done = true;
          *status = st;
        }
    }
}

static int
exit_code (int status)
{
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  if (WIFSIGNALED (status))
    return 128 + WTERMSIG (status);
  return 1;
}

int
main (int argc, char **argv)
{
  sigset_t taken, saved;
  pid_t child;
  bool child_done = false;
  int status = 0;
  int first = 1;

  if (first < argc && strcmp (argv[first], "--") == 0)
    first++;
  if (first >= argc)
    {
      fprintf (stderr, "usage: swarm-init [--] COMMAND [ARGS...]\n");
      return EXIT_USAGE;
    }
  if (taken_signals (&taken) < 0 || sigprocmask (SIG_BLOCK, &taken, &saved) < 0)
    {
      fail ("sigprocmask");
      return EXIT_EXEC_FAILED;
    }
  child = fork ();
  if (child < 0)
    {
      fail ("fork");
      return EXIT_EXEC_FAILED;
    }
  if (child == 0)
    run_child (argv + first, &saved);

  while (!child_done)
    {
      /* A timeout, so that a SIGCHLD merged with another while both were pending cannot leave
       * a zombie unreaped for long. */
      struct timespec wait_for = { .tv_sec = 1, .tv_nsec = 0 };
      siginfo_t info;
      int sig = sigtimedwait (&taken, &info, &wait_for);
      if (sig < 0 && errno != EAGAIN && errno != EINTR)
        {
          fail ("sigtimedwait");
          return EXIT_EXEC_FAILED;
        }
      if (sig > 0 && sig != SIGCHLD && kill (child, sig) < 0 && errno != ESRCH)
        fail ("kill");
      if (reap (child, &child_done, &status) < 0)
        return EXIT_EXEC_FAILED;
    }
  return exit_code (status);
}
