#include "sync.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void
fill (sync_msg_t *m, char type, pid_t pid, const rt_error_t *err)
{
  memset (m, 0, sizeof *m);
  m->type = type;
  m->pid = pid;
  if (err != NULL)
    {
      m->status = err->status;
      snprintf (m->text, sizeof m->text, "%s", err->msg ? err->msg : "error");
    }
}

void
sync_send (int fd, char type, pid_t pid, const rt_error_t *err)
{
  sync_msg_t m;
  fill (&m, type, pid, err);
  if (send (fd, &m, sizeof m, MSG_NOSIGNAL) < 0)
    return;
}

int
sync_send_fd (int sock, char type, int fd, rt_error_t *err)
{
  sync_msg_t m;
  fill (&m, type, 0, NULL);
  if (send_with_fd (sock, &m, sizeof m, fd) < 0)
    return rt_make_error (err, errno, "send a descriptor on the sync socket");
  return 0;
}

ssize_t
sync_read (int sock, sync_msg_t *m, int *fd)
{
  struct iovec iov = { .iov_base = m, .iov_len = sizeof *m };
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof u.buf };
  struct cmsghdr *c;
  ssize_t n;
  if (fd != NULL)
    *fd = -1;
  do
    n = recvmsg (sock, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -1;
  for (c = CMSG_FIRSTHDR (&mh); c != NULL; c = CMSG_NXTHDR (&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      {
        int got;
        memcpy (&got, CMSG_DATA (c), sizeof got);
        if (fd != NULL)
          *fd = got;
        else
          close (got);
      }
  return n;
}

int
sync_recv_fd (int sock, sync_msg_t *m, int *fd, const char *waiting_for, rt_error_t *err)
{
  ssize_t n = sync_read (sock, m, fd);
  if (n < 0)
    return rt_make_error (err, errno, "read the sync socket");
  if (n == 0)
    return rt_make_error (err, 0, "the container process exited before %s", waiting_for);
  if (n != (ssize_t) sizeof *m)
    return rt_make_error (err, 0, "short message on the sync socket");
  if (m->type == SYNC_ERROR)
    return rt_make_error (err, m->status, "%s", m->text);
  return 0;
}

int
send_with_fd (int sock, const void *payload, size_t len, int fd)
{
  struct iovec iov = { .iov_base = (void *) payload, .iov_len = len };
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
  struct cmsghdr *c;
  memset (&u, 0, sizeof u);
  mh.msg_control = u.buf;
  mh.msg_controllen = sizeof u.buf;
  c = CMSG_FIRSTHDR (&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN (sizeof (int));
  memcpy (CMSG_DATA (c), &fd, sizeof (int));
  return sendmsg (sock, &mh, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

int
sync_recv (int fd, sync_msg_t *m, const char *waiting_for, rt_error_t *err)
{
  return sync_recv_fd (fd, m, NULL, waiting_for, err);
}
