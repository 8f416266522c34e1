/* The sync channel between `create` (or `exec`) and the processes it forks: fixed-size packets on
 * a SOCK_SEQPACKET pair, so that EOF means the peer died. A packet may carry one descriptor
 * (SCM_RIGHTS). */
#ifndef SWARM_SYNC_H
#define SWARM_SYNC_H

#include <sys/types.h>

#include "error.h"

enum
{
  SYNC_PID = 'P',      /* the init's pid, as the host sees it */
  SYNC_READY = 'R',    /* the init is set up and blocks on the exec fifo */
  SYNC_ERROR = 'E',    /* a step failed; status and text follow */
  SYNC_HOOKS = 'H',    /* init → create: mounts done, run prestart/createRuntime, then reply */
  SYNC_CONTINUE = 'C', /* create → init: go on; pid is the init's host pid */
  SYNC_USERMAP = 'U',  /* child 1 → create: write my uid_map/gid_map (pid), then reply */
  SYNC_SECCOMP = 'S',  /* → create/exec: the seccomp notify descriptor rides along */
};

typedef struct
{
  char type;
  int status;
  pid_t pid;
  char text[2048];
} sync_msg_t;

/* Sends a message (ERR's status and text for SYNC_ERROR; FD >= 0 passed along). A gone peer is
 * not an error: it has cleaned up already. */
void sync_send (int fd, char type, pid_t pid, const rt_error_t *err);
int sync_send_fd (int sock, char type, int fd, rt_error_t *err);

/* Receives one message; EOF (the peer died) becomes an error naming WAITING_FOR, SYNC_ERROR the
 * peer's error. *FD (when not NULL) gets a passed descriptor, or -1. */
int sync_recv (int fd, sync_msg_t *m, const char *waiting_for, rt_error_t *err);
int sync_recv_fd (int sock, sync_msg_t *m, int *fd, const char *waiting_for, rt_error_t *err);
/* One packet as it comes: its length (0 at EOF), or -1 with errno. *FD as above. */
ssize_t sync_read (int sock, sync_msg_t *m, int *fd);

/* Sends PAYLOAD (LEN bytes) with descriptor FD on the stream socket SOCK (SCM_RIGHTS). */
int send_with_fd (int sock, const void *payload, size_t len, int fd);

#endif
