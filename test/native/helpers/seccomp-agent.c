/* A seccomp agent for test/native/seccomp.test.ts, built there with gcc.
 *   seccomp-agent SOCKET LOG CONNECTIONS
 * Listens on SOCKET; for each of CONNECTIONS connections it logs the container process state it
 * receives (one JSON line) and takes the notify descriptor passed with it (SCM_RIGHTS). Every
 * notification is answered with EXDEV and logged as "syscall NR". It exits once every descriptor
 * has no process left (POLLHUP), or after 20 s without events. */
#include <errno.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX 8

static int
take (int sock, FILE *log)
{
  char buf[65536];
  union
  {
    char b[CMSG_SPACE (sizeof (int))];
    struct cmsghdr h;
  } u;
  struct iovec iov = { buf, sizeof buf - 1 };
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b };
  int c = accept (sock, NULL, NULL), fd = -1;
  ssize_t n;
  if (c < 0)
    return -1;
  n = recvmsg (c, &mh, 0);
  close (c);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  for (struct cmsghdr *h = CMSG_FIRSTHDR (&mh); h; h = CMSG_NXTHDR (&mh, h))
    if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
      memcpy (&fd, CMSG_DATA (h), sizeof fd);
  fprintf (log, "%s\n", buf);
  fflush (log);
  return fd;
}

int
main (int argc, char **argv)
{
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  struct seccomp_notif_sizes sizes;
  struct pollfd p[MAX + 1];
  int expected, taken = 0, open_fds = 0, n = 1, sock;
  FILE *log;
  if (argc < 4)
    return 2;
  expected = atoi (argv[3]);
  log = fopen (argv[2], "w");
  sock = socket (AF_UNIX, SOCK_STREAM, 0);
  strncpy (a.sun_path, argv[1], sizeof a.sun_path - 1);
  if (log == NULL || bind (sock, (struct sockaddr *) &a, sizeof a) < 0 || listen (sock, MAX) < 0)
    return 1;
  if (syscall (SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
    return 1;
  struct seccomp_notif *req = calloc (1, sizes.seccomp_notif + sizeof *req);
  struct seccomp_notif_resp *resp = calloc (1, sizes.seccomp_notif_resp + sizeof *resp);
  p[0] = (struct pollfd){ sock, POLLIN, 0 };
  for (;;)
    {
      int i, r = poll (p, (nfds_t) n, 20000);
      if (r <= 0)
        break;
      if (p[0].revents & POLLIN)
        {
          int fd = take (sock, log);
          if (fd >= 0 && n <= MAX)
            {
              p[n++] = (struct pollfd){ fd, POLLIN, 0 };
              open_fds++;
            }
          if (++taken == expected)
            p[0].fd = -1;
        }
      for (i = 1; i < n; i++)
        {
          if (p[i].fd < 0 || p[i].revents == 0)
            continue;
          if (p[i].revents & POLLIN)
            {
              memset (req, 0, sizes.seccomp_notif);
              if (ioctl (p[i].fd, SECCOMP_IOCTL_NOTIF_RECV, req) == 0)
                {
                  fprintf (log, "syscall %d\n", req->data.nr);
                  fflush (log);
                  memset (resp, 0, sizes.seccomp_notif_resp);
                  resp->id = req->id;
                  resp->error = -EXDEV;
                  ioctl (p[i].fd, SECCOMP_IOCTL_NOTIF_SEND, resp);
                  continue;
                }
            }
          if (p[i].revents & (POLLHUP | POLLERR))
            {
              close (p[i].fd);
              p[i].fd = -1;
              open_fds--;
            }
        }
      if (taken == expected && open_fds == 0)
        break;
    }
  fprintf (log, "done\n");
  return 0;
}
