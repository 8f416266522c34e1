/* swarm-dnsproxy: the sockets of the embedded DNS server (127.0.0.11, as Docker's) inside the
 * containers' network namespaces. swarmd answers the queries, but Node cannot open a socket in
 * another network namespace; this process enters a namespace with setns(2), opens the sockets
 * there and returns to its own. A socket keeps the namespace it was made in, so one process serves
 * every container of the node. Single-threaded: one epoll loop.
 *
 * Frames on stdin (from swarmd) and on stdout (to swarmd), integers big-endian:
 *   u32 length (of what follows: 5 to 70000) · u8 type · u32 id · payload (length - 5 bytes)
 *   1 ATTACH   id: an endpoint key; payload: the path of a network namespace (whose lo is brought
 *              up if it is down: 127.0.0.11 is only there when it is up). Answer 2 ATTACHED
 *              (u16 udp port · u16 tcp port) or 3 ERROR (u32 errno · a message naming the step and
 *              the path), with the same id. A key already attached is detached first.
 *   4 DETACH   id: a key; no payload. Closes its sockets and connections; answer 5 DETACHED (also
 *              for a key that was not attached).
 *   6 QUERY    to swarmd. id: a query id, unique among the outstanding ones; payload: u32 key ·
 *              u8 transport (0 udp, 1 tcp) · the DNS message.
 *   7 ANSWER   id: a query id; payload: the DNS message to send back, empty to drop the query.
 *              An unknown or expired id is ignored.
 *   8 STATS    id: anything; no payload. Answer 9 STATS: u64 queries (received from clients) ·
 *              u64 dropped (of those, not passed on: too many outstanding, output full) ·
 *              u32 endpoints · u32 outstanding.
 * A malformed frame on stdin is fatal (exit 2); EOF on stdin ends the process (exit 0). Failing to
 * return to our own namespace is fatal (exit 3): every later socket would be made in the wrong one.
 *
 * UDP: one datagram is one query. TCP (RFC 7766): messages with a 2-byte length, several per
 * connection, answered in any order; a connection idle 10 s is closed, and an endpoint keeps at most
 * 64 (the oldest is closed for a new one). Queries unanswered after 5 s are forgotten.
 *
 * stdout is a pipe to swarmd: output is buffered and written when it can be, so that a slow reader
 * never blocks the loop. While the buffer holds 4 MiB, new queries are dropped and stdin is not
 * read (its answers would add to the buffer). Errors go to stderr, one line each. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

enum
{
  T_ATTACH = 1,
  T_ATTACHED = 2,
  T_ERROR = 3,
  T_DETACH = 4,
  T_DETACHED = 5,
  T_QUERY = 6,
  T_ANSWER = 7,
  T_STATS = 8,
  T_STATS_ANSWER = 9,
};

#define FRAME_HEAD 9u         /* u32 length · u8 type · u32 id */
#define MAX_FRAME 70000u      /* the largest length field */
#define MAX_MESSAGE 65535u    /* a DNS message: TCP's 2-byte length */
#define QUERY_SLOTS_BITS 12   /* 4096 outstanding queries */
#define QUERY_SLOTS (1u << QUERY_SLOTS_BITS)
#define QUERY_TTL_MS 5000
#define CONN_IDLE_MS 10000
#define SWEEP_MS 1000         /* how often idle connections are looked for */
#define MAX_CONNS 64          /* per endpoint */
#define OUT_CAP (4u << 20)    /* stdout's buffer */
#define CONN_OUT_CAP (256u << 10) /* a TCP client that does not read its answers is closed */
#define BATCH 64              /* datagrams or connections taken per wake-up, for fairness */
#define DNS_ADDR 0x7f00000bu  /* 127.0.0.11 */

typedef struct
{
  uint8_t *data;
  size_t off, len, cap; /* data[off, len) is unconsumed */
} buf_t;

/* What epoll reports: data.ptr is a watch_t, whose kind says what owner is. */
enum watch_kind
{
  W_STDIN,
  W_STDOUT,
  W_UDP,
  W_LISTEN,
  W_CONN,
};

typedef struct
{
  enum watch_kind kind;
  void *owner;
} watch_t;

typedef struct endpoint endpoint_t;

typedef struct conn
{
  int fd;
  bool dead;       /* closed; freed at the end of the loop's turn (events may still name it) */
  bool read_done;  /* the client shut down its side: closed once its answers are written */
  bool want_out;   /* EPOLLOUT is set */
  endpoint_t *ep;
  struct conn *prev, *next; /* the endpoint's connections, oldest first */
  struct conn *grave;
  watch_t w;
  buf_t in, out;
  int64_t last_ms;    /* last byte read or written */
  unsigned nqueries;  /* outstanding */
} conn_t;

struct endpoint
{
  uint32_t key;
  int udp, tcp;
  bool dead;
  uint16_t udp_port, tcp_port;
  watch_t wu, wt;
  conn_t *oldest, *newest;
  unsigned nconns;
  unsigned nqueries; /* outstanding, TCP ones included */
  endpoint_t *next, *grave;
};

typedef struct
{
  uint32_t id;     /* 0: free */
  endpoint_t *ep;
  conn_t *conn;    /* NULL for UDP */
  struct sockaddr_in peer;
  int64_t deadline_ms;
  int older, newer; /* the outstanding queries in order of arrival (so of deadline); -1 ends */
} query_t;

static int epfd = -1;
static int home_netns = -1; /* our own network namespace, opened at startup */
static int reserve_fd = -1; /* given up to accept (and close) a connection when out of descriptors */
static watch_t w_stdin = { W_STDIN, NULL }, w_stdout = { W_STDOUT, NULL };
static bool stdin_watched, stdout_watched;
static buf_t in_buf, out_buf;
static endpoint_t *endpoints, *endpoint_graves;
static conn_t *conn_graves;
static unsigned nendpoints, nconns_total;
static query_t queries[QUERY_SLOTS];
static int q_free[QUERY_SLOTS];
static unsigned q_nfree, q_count;
static int q_oldest = -1, q_newest = -1;
static uint32_t q_gen;
static uint64_t stat_queries, stat_dropped;
static int64_t now_ms, next_sweep_ms;
static uint8_t packet[MAX_MESSAGE + 1];

/* One line on stderr, prefixed with the program's name. */
static void
vsay (const char *fmt, va_list ap)
{
  fputs ("swarm-dnsproxy: ", stderr);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
}

static void __attribute__ ((noreturn, format (printf, 2, 3)))
fatal (int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsay (fmt, ap);
  va_end (ap);
  exit (code);
}

static void __attribute__ ((format (printf, 1, 2)))
warn (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vsay (fmt, ap);
  va_end (ap);
}

static int64_t
clock_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t
get32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static uint8_t *
put16 (uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t) (v >> 8), p[1] = (uint8_t) v;
  return p + 2;
}

static uint8_t *
put32 (uint8_t *p, uint32_t v)
{
  return put16 (put16 (p, (uint16_t) (v >> 16)), (uint16_t) v);
}

static uint8_t *
put64 (uint8_t *p, uint64_t v)
{
  return put32 (put32 (p, (uint32_t) (v >> 32)), (uint32_t) v);
}

/* Room for `more` bytes after data[len]; moves the unconsumed bytes to the front first. */
static void
buf_reserve (buf_t *b, size_t more)
{
  if (b->off > 0 && b->len + more > b->cap)
    {
      memmove (b->data, b->data + b->off, b->len - b->off);
      b->len -= b->off, b->off = 0;
    }
  if (b->len + more > b->cap)
    {
      size_t cap = b->cap ? b->cap : 512;
      uint8_t *p;
      while (cap < b->len + more)
        cap *= 2;
      p = realloc (b->data, cap);
      if (p == NULL)
        fatal (1, "out of memory (%zu bytes)", cap);
      b->data = p, b->cap = cap;
    }
}

static size_t
buf_pending (const buf_t *b)
{
  return b->len - b->off;
}

static void
buf_consume (buf_t *b, size_t n)
{
  b->off += n;
  if (b->off == b->len)
    b->off = b->len = 0;
}

static void
buf_release (buf_t *b)
{
  free (b->data);
  *b = (buf_t) { 0 };
}

static void
watch (int op, int fd, uint32_t events, watch_t *w)
{
  struct epoll_event ev = { .events = events, .data.ptr = w };
  if (epoll_ctl (epfd, op, fd, &ev) < 0)
    fatal (1, "epoll_ctl %d on fd %d: %s", op, fd, strerror (errno));
}

/* ---- stdout: frames to swarmd ---- */

/* Appends a frame's head for a payload of `len` bytes and returns where the payload goes. */
static uint8_t *
frame_start (uint8_t type, uint32_t id, size_t len)
{
  uint8_t *p;
  buf_reserve (&out_buf, FRAME_HEAD + len);
  p = out_buf.data + out_buf.len;
  p = put32 (p, (uint32_t) (5 + len));
  *p++ = type;
  p = put32 (p, id);
  out_buf.len += FRAME_HEAD + len;
  return p;
}

static void
send_frame (uint8_t type, uint32_t id, const void *payload, size_t len)
{
  uint8_t *p = frame_start (type, id, len);
  if (len > 0)
    memcpy (p, payload, len);
}

static void
send_error (uint32_t id, const rt_error_t *err)
{
  char msg[1024];
  uint8_t *p;
  size_t n;
  rt_error_format (err, msg, sizeof msg);
  n = strlen (msg);
  p = frame_start (T_ERROR, id, 4 + n);
  p = put32 (p, (uint32_t) err->status);
  memcpy (p, msg, n);
}

/* Writes what stdout takes without blocking; watches for room when it takes less. */
static void
flush_out (void)
{
  while (buf_pending (&out_buf) > 0)
    {
      ssize_t n = write (1, out_buf.data + out_buf.off, buf_pending (&out_buf));
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n < 0)
        fatal (1, "write stdout: %s", strerror (errno));
      buf_consume (&out_buf, (size_t) n);
    }
  if ((buf_pending (&out_buf) > 0) != stdout_watched)
    {
      stdout_watched = !stdout_watched;
      watch (stdout_watched ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, 1, EPOLLOUT, &w_stdout);
    }
}

/* stdin is read only while the output buffer has room (see the top of the file). Removed rather
 * than left with no events: epoll reports a hang-up even then, and the loop would spin on it. */
static void
pace_stdin (void)
{
  bool want = buf_pending (&out_buf) < OUT_CAP;
  if (want != stdin_watched)
    {
      stdin_watched = want;
      watch (want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, 0, EPOLLIN, &w_stdin);
    }
}

/* ---- outstanding queries ---- */

static void
query_free (int slot)
{
  query_t *q = &queries[slot];
  if (q->older >= 0)
    queries[q->older].newer = q->newer;
  else
    q_oldest = q->newer;
  if (q->newer >= 0)
    queries[q->newer].older = q->older;
  else
    q_newest = q->older;
  q->ep->nqueries--;
  if (q->conn != NULL)
    q->conn->nqueries--;
  *q = (query_t) { .older = -1, .newer = -1 };
  q_free[q_nfree++] = slot;
  q_count--;
}

static query_t *
query_find (uint32_t id)
{
  query_t *q = &queries[id & (QUERY_SLOTS - 1)];
  return id != 0 && q->id == id ? q : NULL;
}

/* Forgets the queries of an endpoint or of a connection that is closing (their answers have
 * nowhere to go). */
static void
queries_forget (const endpoint_t *ep, const conn_t *c)
{
  for (unsigned i = 0; i < QUERY_SLOTS && ((c != NULL && c->nqueries > 0) || (c == NULL && ep->nqueries > 0)); i++)
    if (queries[i].id != 0 && (c != NULL ? queries[i].conn == c : queries[i].ep == ep))
      query_free ((int) i);
}

static void conn_maybe_finish (conn_t *c);

static void
queries_expire (void)
{
  while (q_oldest >= 0 && queries[q_oldest].deadline_ms <= now_ms)
    {
      conn_t *c = queries[q_oldest].conn;
      query_free (q_oldest);
      if (c != NULL)
        conn_maybe_finish (c);
    }
}

/* Passes a client's message on to swarmd as a QUERY, or drops it (see the top of the file). */
static void
query_forward (endpoint_t *ep, conn_t *c, const struct sockaddr_in *peer, const uint8_t *msg, size_t len)
{
  int slot;
  query_t *q;
  uint8_t *p;
  stat_queries++;
  if (q_nfree == 0 || buf_pending (&out_buf) + FRAME_HEAD + 5 + len > OUT_CAP)
    {
      stat_dropped++;
      return;
    }
  slot = q_free[--q_nfree];
  q = &queries[slot];
  if (++q_gen >= (1u << (32 - QUERY_SLOTS_BITS)))
    q_gen = 1;
  *q = (query_t) { .id = q_gen << QUERY_SLOTS_BITS | (uint32_t) slot, .ep = ep, .conn = c, .deadline_ms = now_ms + QUERY_TTL_MS, .older = q_newest, .newer = -1 };
  if (peer != NULL)
    q->peer = *peer;
  if (q_newest >= 0)
    queries[q_newest].newer = slot;
  else
    q_oldest = slot;
  q_newest = slot;
  q_count++;
  ep->nqueries++;
  if (c != NULL)
    c->nqueries++;
  p = frame_start (T_QUERY, q->id, 5 + len);
  p = put32 (p, ep->key);
  *p++ = c != NULL ? 1 : 0;
  memcpy (p, msg, len);
}

/* ---- TCP connections ---- */

static void
conn_close (conn_t *c)
{
  endpoint_t *ep = c->ep;
  if (c->dead)
    return;
  queries_forget (ep, c);
  close (c->fd);
  c->fd = -1;
  c->dead = true;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    ep->oldest = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  else
    ep->newest = c->prev;
  ep->nconns--;
  nconns_total--;
  c->grave = conn_graves;
  conn_graves = c;
}

static void
conn_set_out (conn_t *c, bool want)
{
  if (c->want_out == want)
    return;
  c->want_out = want;
  watch (EPOLL_CTL_MOD, c->fd, (c->read_done ? 0 : EPOLLIN) | (want ? EPOLLOUT : 0), &c->w);
}

/* A connection whose client shut down its side closes once nothing is owed to it. */
static void
conn_maybe_finish (conn_t *c)
{
  if (!c->dead && c->read_done && c->nqueries == 0 && buf_pending (&c->out) == 0)
    conn_close (c);
}

static void
conn_flush (conn_t *c)
{
  while (buf_pending (&c->out) > 0)
    {
      ssize_t n = send (c->fd, c->out.data + c->out.off, buf_pending (&c->out), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && errno == EAGAIN)
        break;
      if (n < 0)
        {
          conn_close (c); /* the client is gone */
          return;
        }
      buf_consume (&c->out, (size_t) n);
      c->last_ms = now_ms;
    }
  if (buf_pending (&c->out) > CONN_OUT_CAP)
    {
      conn_close (c);
      return;
    }
  conn_set_out (c, buf_pending (&c->out) > 0);
  conn_maybe_finish (c);
}

static void
conn_answer (conn_t *c, const uint8_t *msg, size_t len)
{
  buf_reserve (&c->out, 2 + len);
  put16 (c->out.data + c->out.len, (uint16_t) len);
  memcpy (c->out.data + c->out.len + 2, msg, len);
  c->out.len += 2 + len;
  conn_flush (c);
}

/* Reads what the client sent and passes on each whole message. */
static void
conn_read (conn_t *c)
{
  ssize_t n;
  buf_reserve (&c->in, 4096);
  n = read (c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n < 0)
    {
      conn_close (c);
      return;
    }
  if (n == 0)
    {
      c->read_done = true;
      watch (EPOLL_CTL_MOD, c->fd, c->want_out ? EPOLLOUT : 0, &c->w);
      conn_maybe_finish (c);
      return;
    }
  c->in.len += (size_t) n;
  c->last_ms = now_ms;
  while (buf_pending (&c->in) >= 2)
    {
      const uint8_t *p = c->in.data + c->in.off;
      size_t len = (size_t) p[0] << 8 | p[1];
      if (len == 0)
        {
          conn_close (c); /* not DNS */
          return;
        }
      if (buf_pending (&c->in) < 2 + len)
        {
          buf_reserve (&c->in, 2 + len - buf_pending (&c->in));
          break;
        }
      query_forward (c->ep, c, NULL, p + 2, len);
      buf_consume (&c->in, 2 + len);
    }
}

static void
conn_events (conn_t *c, uint32_t events)
{
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
    {
      if (c->read_done)
        conn_close (c); /* only a hang-up or an error can be reported now */
      else
        conn_read (c);
    }
  if (!c->dead && (events & EPOLLOUT))
    conn_flush (c);
}

static void
conn_add (endpoint_t *ep, int fd)
{
  conn_t *c = calloc (1, sizeof *c);
  if (c == NULL)
    fatal (1, "out of memory");
  c->fd = fd, c->ep = ep, c->last_ms = now_ms;
  c->w = (watch_t) { W_CONN, c };
  c->prev = ep->newest;
  if (ep->newest != NULL)
    ep->newest->next = c;
  else
    ep->oldest = c;
  ep->newest = c;
  ep->nconns++;
  nconns_total++;
  watch (EPOLL_CTL_ADD, fd, EPOLLIN, &c->w);
}

/* Out of descriptors: accepts the connection with the one kept in reserve and closes it, else the
 * listening socket stays readable and the loop spins. */
static void
accept_shed (int listener)
{
  int fd;
  close (reserve_fd);
  fd = accept4 (listener, NULL, NULL, SOCK_CLOEXEC);
  if (fd >= 0)
    close (fd);
  reserve_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  warn ("accept: out of file descriptors: closed a connection");
}

static void
listener_events (endpoint_t *ep)
{
  for (int i = 0; i < BATCH && !ep->dead; i++)
    {
      int fd = accept4 (ep->tcp, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
        continue;
      if (fd < 0 && (errno == EMFILE || errno == ENFILE) && reserve_fd >= 0)
        {
          accept_shed (ep->tcp);
          return;
        }
      if (fd < 0)
        {
          if (errno != EAGAIN)
            warn ("accept on endpoint %u: %s", ep->key, strerror (errno));
          return;
        }
      if (ep->nconns >= MAX_CONNS)
        conn_close (ep->oldest);
      conn_add (ep, fd);
    }
}

/* ---- UDP ---- */

static void
udp_events (endpoint_t *ep)
{
  for (int i = 0; i < BATCH && !ep->dead; i++)
    {
      struct sockaddr_in peer;
      struct iovec iov = { .iov_base = packet, .iov_len = sizeof packet };
      struct msghdr mh = { .msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = &iov, .msg_iovlen = 1 };
      ssize_t n = recvmsg (ep->udp, &mh, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          if (errno != EAGAIN)
            warn ("recvmsg on endpoint %u: %s", ep->key, strerror (errno));
          return;
        }
      if (n == 0 || (mh.msg_flags & MSG_TRUNC) || mh.msg_namelen != sizeof peer)
        continue;
      query_forward (ep, NULL, &peer, packet, (size_t) n);
    }
}

/* ---- endpoints ---- */

static endpoint_t **
endpoint_find (uint32_t key)
{
  endpoint_t **pp;
  for (pp = &endpoints; *pp != NULL; pp = &(*pp)->next)
    if ((*pp)->key == key)
      return pp;
  return NULL;
}

static void
endpoint_close (endpoint_t **pp)
{
  endpoint_t *ep = *pp;
  while (ep->oldest != NULL)
    conn_close (ep->oldest);
  queries_forget (ep, NULL);
  close (ep->udp);
  close (ep->tcp);
  ep->udp = ep->tcp = -1;
  ep->dead = true;
  *pp = ep->next;
  nendpoints--;
  ep->grave = endpoint_graves;
  endpoint_graves = ep;
}

/* Back to our own namespace when the block that entered another one ends, on every path. */
static void
netns_return (bool *entered)
{
  int saved = errno;
  if (*entered && setns (home_netns, CLONE_NEWNET) < 0)
    fatal (3, "setns back to the own network namespace: %s", strerror (errno));
  errno = saved;
}
#define cleanup_netns_return __attribute__ ((cleanup (netns_return)))

/* Brings lo up in the current namespace if it is down: 127.0.0.11 is only there when it is up. */
static int
lo_up (const char *path, rt_error_t *err)
{
  struct ifreq ifr = { 0 };
  cleanup_close int s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return rt_make_error (err, errno, "socket to bring lo up in %s", path);
  strcpy (ifr.ifr_name, "lo");
  if (ioctl (s, SIOCGIFFLAGS, &ifr) < 0)
    return rt_make_error (err, errno, "SIOCGIFFLAGS lo in %s", path);
  if (ifr.ifr_flags & IFF_UP)
    return 0;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl (s, SIOCSIFFLAGS, &ifr) < 0)
    return rt_make_error (err, errno, "SIOCSIFFLAGS lo up in %s", path);
  return 0;
}

/* A socket of `type` bound to 127.0.0.11:port (0: any) in the current namespace; its port in *bound. */
static int
bound_socket (int type, uint16_t port, const char *path, uint16_t *bound, rt_error_t *err)
{
  const char *what = type == SOCK_DGRAM ? "udp" : "tcp";
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons (port), .sin_addr.s_addr = htonl (DNS_ADDR) };
  socklen_t len = sizeof sa;
  int one = 1, fd;
  cleanup_close int s = socket (AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0)
    return rt_make_error (err, errno, "socket %s in %s", what, path);
  if (type == SOCK_STREAM && setsockopt (s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
    return rt_make_error (err, errno, "SO_REUSEADDR in %s", path);
  if (bind (s, (struct sockaddr *) &sa, sizeof sa) < 0)
    return rt_make_error (err, errno, "bind %s 127.0.0.11:%u in %s", what, port, path);
  if (type == SOCK_STREAM && listen (s, SOMAXCONN) < 0)
    return rt_make_error (err, errno, "listen tcp 127.0.0.11:%u in %s", port, path);
  if (getsockname (s, (struct sockaddr *) &sa, &len) < 0)
    return rt_make_error (err, errno, "getsockname %s in %s", what, path);
  *bound = ntohs (sa.sin_port);
  fd = s, s = -1;
  return fd;
}

/* The UDP socket, then the TCP one on the same port if it is free; in the current namespace. lo
 * is brought up first rather than when bind fails with EADDRNOTAVAIL: in a new namespace whose lo
 * was never up there is no local routing table yet, and the kernel then takes any address for a
 * broadcast one, so the bind succeeds, but nothing reaches the socket. */
static int
open_sockets (endpoint_t *ep, const char *path, rt_error_t *err)
{
  if (lo_up (path, err) < 0)
    return -1;
  ep->udp = bound_socket (SOCK_DGRAM, 0, path, &ep->udp_port, err);
  if (ep->udp < 0)
    return -1;
  ep->tcp = bound_socket (SOCK_STREAM, ep->udp_port, path, &ep->tcp_port, err);
  if (ep->tcp < 0)
    {
      rt_error_release (err);
      ep->tcp = bound_socket (SOCK_STREAM, 0, path, &ep->tcp_port, err);
    }
  return ep->tcp < 0 ? -1 : 0;
}

/* Opens ep's sockets inside the namespace at path. */
static int
endpoint_open (endpoint_t *ep, const char *path, rt_error_t *err)
{
  cleanup_close int ns = open (path, O_RDONLY | O_CLOEXEC);
  cleanup_netns_return bool entered = false;
  if (ns < 0)
    return rt_make_error (err, errno, "open %s", path);
  if (setns (ns, CLONE_NEWNET) < 0)
    return rt_make_error (err, errno, "setns %s", path);
  entered = true;
  return open_sockets (ep, path, err);
}

/* A new endpoint with its sockets open in the namespace whose path is the payload, and watched. */
static endpoint_t *
endpoint_new (uint32_t key, const uint8_t *payload, size_t len, rt_error_t *err)
{
  cleanup_free char *path = NULL;
  endpoint_t *ep;
  if (len == 0 || memchr (payload, '\0', len) != NULL)
    {
      rt_make_error (err, EINVAL, "attach %u: the namespace's path is empty or holds a NUL", key);
      return NULL;
    }
  path = strndup ((const char *) payload, len);
  ep = calloc (1, sizeof *ep);
  if (path == NULL || ep == NULL)
    fatal (1, "out of memory");
  *ep = (endpoint_t) { .key = key, .udp = -1, .tcp = -1 };
  if (endpoint_open (ep, path, err) < 0)
    {
      if (ep->udp >= 0)
        close (ep->udp);
      free (ep);
      return NULL;
    }
  ep->wu = (watch_t) { W_UDP, ep };
  ep->wt = (watch_t) { W_LISTEN, ep };
  watch (EPOLL_CTL_ADD, ep->udp, EPOLLIN, &ep->wu);
  watch (EPOLL_CTL_ADD, ep->tcp, EPOLLIN, &ep->wt);
  ep->next = endpoints;
  endpoints = ep;
  nendpoints++;
  return ep;
}

static void
handle_attach (uint32_t key, const uint8_t *payload, size_t len)
{
  rt_error_t err = { 0, NULL };
  endpoint_t **old = endpoint_find (key), *ep;
  uint8_t ports[4];
  if (old != NULL)
    endpoint_close (old); /* replaced: the old sockets go first */
  ep = endpoint_new (key, payload, len, &err);
  if (ep == NULL)
    {
      send_error (key, &err);
      rt_error_release (&err);
      return;
    }
  put16 (put16 (ports, ep->udp_port), ep->tcp_port);
  send_frame (T_ATTACHED, key, ports, sizeof ports);
}

static void
udp_answer (const query_t *q, const uint8_t *msg, size_t len)
{
  if (sendto (q->ep->udp, msg, len, 0, (const struct sockaddr *) &q->peer, sizeof q->peer) < 0 && errno != EAGAIN && errno != ECONNREFUSED)
    warn ("sendto on endpoint %u: %s", q->ep->key, strerror (errno));
}

static void
handle_answer (uint32_t id, const uint8_t *msg, size_t len)
{
  query_t *q = query_find (id);
  conn_t *c;
  if (q == NULL)
    return; /* unknown or expired */
  c = q->conn;
  if (len > MAX_MESSAGE)
    warn ("answer %u: a message of %zu bytes (at most %u): dropped", id, len, MAX_MESSAGE);
  else if (len > 0 && c != NULL)
    conn_answer (c, msg, len);
  else if (len > 0)
    udp_answer (q, msg, len);
  if (query_find (id) != NULL) /* conn_answer may have closed the connection, and so forgot it */
    query_free ((int) (id & (QUERY_SLOTS - 1)));
  if (c != NULL)
    conn_maybe_finish (c);
}

static void
handle_stats (uint32_t id)
{
  uint8_t *p = frame_start (T_STATS_ANSWER, id, 24);
  p = put64 (p, stat_queries);
  p = put64 (p, stat_dropped);
  p = put32 (p, nendpoints);
  put32 (p, q_count);
}

static void
handle_frame (uint8_t type, uint32_t id, const uint8_t *payload, size_t len)
{
  switch (type)
    {
    case T_ATTACH:
      handle_attach (id, payload, len);
      break;
    case T_DETACH:
    case T_STATS:
      if (len != 0)
        fatal (2, "protocol: a frame of type %u with a payload of %zu bytes (must be empty)", type, len);
      if (type == T_STATS)
        handle_stats (id);
      else
        {
          endpoint_t **pp = endpoint_find (id);
          if (pp != NULL)
            endpoint_close (pp);
          send_frame (T_DETACHED, id, NULL, 0);
        }
      break;
    case T_ANSWER:
      handle_answer (id, payload, len);
      break;
    default:
      fatal (2, "protocol: a frame of type %u (expected 1 attach, 4 detach, 7 answer or 8 stats)", type);
    }
}

/* Reads what swarmd sent and handles each whole frame; false at EOF. */
static bool
stdin_read (void)
{
  ssize_t n;
  buf_reserve (&in_buf, 65536);
  n = read (0, in_buf.data + in_buf.len, in_buf.cap - in_buf.len);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return true;
  if (n < 0)
    fatal (1, "read stdin: %s", strerror (errno));
  if (n == 0)
    {
      if (buf_pending (&in_buf) > 0)
        fatal (2, "protocol: EOF within a frame (%zu bytes of it)", buf_pending (&in_buf));
      return false;
    }
  in_buf.len += (size_t) n;
  while (buf_pending (&in_buf) >= 4)
    {
      const uint8_t *p = in_buf.data + in_buf.off;
      uint32_t len = get32 (p);
      if (len < 5 || len > MAX_FRAME)
        fatal (2, "protocol: a frame of length %u (must be 5 to %u)", len, MAX_FRAME);
      if (buf_pending (&in_buf) < 4 + (size_t) len)
        break;
      handle_frame (p[4], get32 (p + 5), p + FRAME_HEAD, len - 5);
      buf_consume (&in_buf, 4 + (size_t) len);
    }
  return true;
}

/* ---- the loop ---- */

static void
sweep_idle (void)
{
  if (now_ms < next_sweep_ms)
    return;
  next_sweep_ms = now_ms + SWEEP_MS;
  for (endpoint_t *ep = endpoints; ep != NULL; ep = ep->next)
    for (conn_t *c = ep->oldest, *next; c != NULL; c = next)
      {
        next = c->next;
        if (now_ms - c->last_ms >= CONN_IDLE_MS)
          conn_close (c);
      }
}

/* Frees what closed during the turn, once no event of it can be looked at any more. */
static void
bury (void)
{
  while (conn_graves != NULL)
    {
      conn_t *c = conn_graves;
      conn_graves = c->grave;
      buf_release (&c->in);
      buf_release (&c->out);
      free (c);
    }
  while (endpoint_graves != NULL)
    {
      endpoint_t *ep = endpoint_graves;
      endpoint_graves = ep->grave;
      free (ep);
    }
}

/* Until the oldest query expires or idle connections are next looked for; -1: nothing to wait for. */
static int
next_timeout (void)
{
  int64_t t = -1;
  if (q_oldest >= 0)
    t = queries[q_oldest].deadline_ms;
  if (nconns_total > 0 && (t < 0 || next_sweep_ms < t))
    t = next_sweep_ms;
  if (t < 0)
    return -1;
  return t <= now_ms ? 0 : (int) (t - now_ms);
}

static void
dispatch (const struct epoll_event *ev, bool *running)
{
  watch_t *w = ev->data.ptr;
  switch (w->kind)
    {
    case W_STDIN:
      if (stdin_watched)
        *running = stdin_read ();
      break;
    case W_STDOUT:
      flush_out ();
      break;
    case W_UDP:
      if (!((endpoint_t *) w->owner)->dead)
        udp_events (w->owner);
      break;
    case W_LISTEN:
      if (!((endpoint_t *) w->owner)->dead)
        listener_events (w->owner);
      break;
    case W_CONN:
      if (!((conn_t *) w->owner)->dead)
        conn_events (w->owner, ev->events);
      break;
    }
}

static void
loop (void)
{
  struct epoll_event evs[64];
  bool running = true;
  while (running)
    {
      int n;
      pace_stdin ();
      n = epoll_wait (epfd, evs, 64, next_timeout ());
      if (n < 0 && errno != EINTR)
        fatal (1, "epoll_wait: %s", strerror (errno));
      now_ms = clock_ms ();
      for (int i = 0; i < n && running; i++)
        dispatch (&evs[i], &running);
      queries_expire ();
      sweep_idle ();
      bury ();
      if (running)
        flush_out ();
    }
}

static void
set_nonblocking (int fd, const char *name)
{
  int flags = fcntl (fd, F_GETFL);
  if (flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0)
    fatal (1, "make %s non-blocking: %s", name, strerror (errno));
}

int
main (int argc, char **argv)
{
  (void) argv;
  if (argc != 1)
    {
      fprintf (stderr, "usage: swarm-dnsproxy (frames on stdin and stdout; see src/dnsproxy.c)\n");
      return 2;
    }
  if (signal (SIGPIPE, SIG_IGN) == SIG_ERR)
    fatal (1, "ignore SIGPIPE: %s", strerror (errno));
  home_netns = open ("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home_netns < 0)
    fatal (1, "open /proc/self/ns/net: %s", strerror (errno));
  reserve_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  epfd = epoll_create1 (EPOLL_CLOEXEC);
  if (reserve_fd < 0 || epfd < 0)
    fatal (1, "startup: %s", strerror (errno));
  set_nonblocking (0, "stdin");
  set_nonblocking (1, "stdout");
  for (unsigned i = 0; i < QUERY_SLOTS; i++)
    {
      queries[i] = (query_t) { .older = -1, .newer = -1 };
      q_free[i] = (int) (QUERY_SLOTS - 1 - i);
    }
  q_nfree = QUERY_SLOTS;
  now_ms = clock_ms ();
  next_sweep_ms = now_ms + SWEEP_MS;
  loop ();
  while (endpoints != NULL)
    endpoint_close (&endpoints);
  bury ();
  return 0;
}
