/* rtnetlink requests for the bridge driver (see netlink.h). Each request asks for an
 * acknowledgement and waits for it, so every step's errno is known and named. A socket for
 * another network namespace is made by entering that namespace, opening the socket and coming
 * back: a netlink socket stays bound to the namespace it was made in. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netlink.h"

/* A request: the messages made here are a few hundred bytes at most. */
typedef union
{
  struct nlmsghdr h;
  char buf[1024];
} nl_msg_t;

static uint32_t nl_seq;

static void
nl_init (nl_msg_t *m, uint16_t type, uint16_t flags, const void *hdr, size_t len)
{
  memset (m, 0, sizeof *m);
  m->h.nlmsg_len = NLMSG_LENGTH (len);
  m->h.nlmsg_type = type;
  m->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  memcpy (NLMSG_DATA (&m->h), hdr, len);
}

/* Appends `len` bytes at the (aligned) end of the message. The shapes are fixed and their strings
 * bounded (interface names, checked before): running out of room is a bug, not an input error. */
static void *
nl_append (nl_msg_t *m, const void *data, size_t len)
{
  size_t off = NLMSG_ALIGN (m->h.nlmsg_len);
  char *p = m->buf + off;
  if (off + NLMSG_ALIGN (len) > sizeof *m)
    abort ();
  if (len > 0)
    memcpy (p, data, len);
  m->h.nlmsg_len = (uint32_t) (off + NLMSG_ALIGN (len));
  return p;
}

static struct rtattr *
nl_attr (nl_msg_t *m, unsigned short type, const void *data, size_t len)
{
  size_t off = NLMSG_ALIGN (m->h.nlmsg_len);
  struct rtattr *a = (struct rtattr *) (m->buf + off);
  if (off + RTA_SPACE (len) > sizeof *m)
    abort ();
  a->rta_type = type;
  a->rta_len = (unsigned short) RTA_LENGTH (len);
  if (len > 0)
    memcpy (RTA_DATA (a), data, len);
  m->h.nlmsg_len = (uint32_t) (off + RTA_SPACE (len));
  return a;
}

static void
nl_str (nl_msg_t *m, unsigned short type, const char *s)
{
  nl_attr (m, type, s, strlen (s) + 1);
}

static void
nl_u32 (nl_msg_t *m, unsigned short type, uint32_t v)
{
  nl_attr (m, type, &v, sizeof v);
}

/* A nested attribute: open it, add its members, close it. */
static struct rtattr *
nl_nest (nl_msg_t *m, unsigned short type)
{
  return nl_attr (m, type, NULL, 0);
}

static void
nl_nest_end (nl_msg_t *m, struct rtattr *nest)
{
  nest->rta_len = (unsigned short) (m->buf + m->h.nlmsg_len - (char *) nest);
}

/* Sends the request and reads until its acknowledgement: 0, or -errno as the kernel answered.
 * `index`, when given, receives the interface index of an RTM_NEWLINK answer (RTM_GETLINK). */
static int
nl_request (int fd, nl_msg_t *m, int *index)
{
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  char buf[8192] __attribute__ ((aligned (NLMSG_ALIGNTO)));
  m->h.nlmsg_seq = ++nl_seq;
  if (sendto (fd, &m->h, m->h.nlmsg_len, 0, (struct sockaddr *) &kernel, sizeof kernel) < 0)
    return -errno;
  for (;;)
    {
      ssize_t n = recv (fd, buf, sizeof buf, 0);
      int len;
      struct nlmsghdr *h;
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return -errno;
      len = (int) n;
      for (h = (struct nlmsghdr *) buf; NLMSG_OK (h, len); h = NLMSG_NEXT (h, len))
        {
          if (h->nlmsg_seq != m->h.nlmsg_seq)
            continue;
          if (h->nlmsg_type == NLMSG_ERROR)
            return ((struct nlmsgerr *) NLMSG_DATA (h))->error;
          if (h->nlmsg_type == RTM_NEWLINK && index != NULL)
            *index = ((struct ifinfomsg *) NLMSG_DATA (h))->ifi_index;
        }
    }
}

/* A netlink socket in `netns` (NULL: ours), or -1 with err filled. */
static int
nl_socket (const char *netns, rt_error_t *err)
{
  cleanup_close int self = -1, target = -1;
  int fd, saved;
  if (netns == NULL)
    {
      fd = socket (AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
      return fd < 0 ? rt_make_error (err, errno, "netlink socket") : fd;
    }
  self = open ("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0)
    return rt_make_error (err, errno, "open /proc/self/ns/net");
  target = open (netns, O_RDONLY | O_CLOEXEC);
  if (target < 0)
    return rt_make_error (err, errno, "open %s", netns);
  if (setns (target, CLONE_NEWNET) < 0)
    return rt_make_error (err, errno, "setns %s", netns);
  fd = socket (AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  saved = errno;
  if (setns (self, CLONE_NEWNET) < 0)
    {
      /* Every later command would run in the wrong namespace: the server must not go on. */
      fprintf (stderr, "swarm-spawn: cannot return to its own network namespace from %s: %s\n", netns, strerror (errno));
      _exit (1);
    }
  return fd < 0 ? rt_make_error (err, saved, "netlink socket in %s", netns) : fd;
}

static int
check_ifname (const char *what, const char *name, rt_error_t *err)
{
  size_t len = strlen (name);
  if (len == 0 || len >= IFNAMSIZ)
    return rt_make_error (err, 0, "%s `%s`: an interface name has 1 to %d bytes", what, name, IFNAMSIZ - 1);
  return 0;
}

/* The index of interface `name` on socket fd (whose namespace `where` names). */
static int
link_index (int fd, const char *name, const char *where, int *index, rt_error_t *err)
{
  struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
  nl_msg_t m;
  int rc;
  nl_init (&m, RTM_GETLINK, 0, &ifi, sizeof ifi);
  nl_str (&m, IFLA_IFNAME, name);
  *index = 0;
  rc = nl_request (fd, &m, index);
  if (rc == 0 && *index <= 0)
    rc = -ENODEV;
  return rc < 0 ? rt_make_error (err, -rc, "device %s in %s", name, where) : 0;
}

static int
link_up (int fd, int index, const char *name, const char *where, rt_error_t *err)
{
  struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
  nl_msg_t m;
  int rc;
  nl_init (&m, RTM_NEWLINK, 0, &ifi, sizeof ifi);
  rc = nl_request (fd, &m, NULL);
  return rc < 0 ? rt_make_error (err, -rc, "set %s up in %s", name, where) : 0;
}

static int
parse_inputs (const nl_veth_t *v, unsigned char mac[6], struct in_addr *addr, struct in_addr *gw, rt_error_t *err)
{
  char tail;
  if (check_ifname ("bridge", v->bridge, err) < 0 || check_ifname ("host end", v->host_name, err) < 0
      || check_ifname ("container end", v->peer_name, err) < 0)
    return -1;
  if (sscanf (v->mac, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx%c", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5], &tail) != 6)
    return rt_make_error (err, 0, "mac `%s`: not six hexadecimal bytes separated by colons", v->mac);
  if (inet_pton (AF_INET, v->address, addr) != 1)
    return rt_make_error (err, 0, "address `%s`: not an IPv4 address", v->address);
  if (inet_pton (AF_INET, v->gateway, gw) != 1)
    return rt_make_error (err, 0, "gateway `%s`: not an IPv4 address", v->gateway);
  if (v->prefix_len < 1 || v->prefix_len > 32)
    return rt_make_error (err, 0, "prefix length %u: must be 1 to 32", v->prefix_len);
  return 0;
}

/* The pair, its host end up and enslaved to the bridge, its other end made in the container's
 * namespace (moving a device between namespaces afterwards would cost an RCU grace period). */
static int
add_pair (int host, int bridge, int peer_ns, const nl_veth_t *v, const unsigned char mac[6], rt_error_t *err)
{
  struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
  struct ifinfomsg peer_ifi = { .ifi_family = AF_UNSPEC };
  struct rtattr *info, *data, *peer;
  nl_msg_t m;
  int rc;
  nl_init (&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
  nl_str (&m, IFLA_IFNAME, v->host_name);
  if (v->mtu > 0)
    nl_u32 (&m, IFLA_MTU, v->mtu);
  nl_u32 (&m, IFLA_MASTER, (uint32_t) bridge);
  info = nl_nest (&m, IFLA_LINKINFO);
  nl_str (&m, IFLA_INFO_KIND, "veth");
  data = nl_nest (&m, IFLA_INFO_DATA);
  peer = nl_nest (&m, VETH_INFO_PEER);
  nl_append (&m, &peer_ifi, sizeof peer_ifi);
  nl_str (&m, IFLA_IFNAME, v->peer_name);
  nl_attr (&m, IFLA_ADDRESS, mac, 6);
  if (v->mtu > 0)
    nl_u32 (&m, IFLA_MTU, v->mtu);
  nl_u32 (&m, IFLA_NET_NS_FD, (uint32_t) peer_ns);
  nl_nest_end (&m, peer);
  nl_nest_end (&m, data);
  nl_nest_end (&m, info);
  rc = nl_request (host, &m, NULL);
  if (rc < 0)
    return rt_make_error (err, -rc, "link add %s (veth, peer %s in %s) on bridge %s", v->host_name, v->peer_name, v->peer_netns, v->bridge);
  return 0;
}

/* Hairpin mode on the host end's bridge port (a container reaching itself through the host). */
static int
set_hairpin (int host, const nl_veth_t *v, const char *where, rt_error_t *err)
{
  struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
  struct rtattr *info, *slave;
  uint8_t on = 1;
  nl_msg_t m;
  int rc;
  if (link_index (host, v->host_name, where, &ifi.ifi_index, err) < 0)
    return -1;
  nl_init (&m, RTM_NEWLINK, 0, &ifi, sizeof ifi);
  info = nl_nest (&m, IFLA_LINKINFO);
  nl_str (&m, IFLA_INFO_SLAVE_KIND, "bridge");
  slave = nl_nest (&m, IFLA_INFO_SLAVE_DATA);
  nl_attr (&m, IFLA_BRPORT_MODE, &on, sizeof on);
  nl_nest_end (&m, slave);
  nl_nest_end (&m, info);
  rc = nl_request (host, &m, NULL);
  return rc < 0 ? rt_make_error (err, -rc, "hairpin on %s", v->host_name) : 0;
}

/* The container's side: address, its end and lo up, default route. */
static int
configure_peer (int peer, const nl_veth_t *v, struct in_addr addr, struct in_addr gw, rt_error_t *err)
{
  int index = 0, lo = 0, rc;
  nl_msg_t m;
  if (link_index (peer, v->peer_name, v->peer_netns, &index, err) < 0 || link_index (peer, "lo", v->peer_netns, &lo, err) < 0)
    return -1;
  {
    struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_prefixlen = (unsigned char) v->prefix_len, .ifa_scope = RT_SCOPE_UNIVERSE, .ifa_index = (unsigned) index };
    nl_init (&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
    nl_attr (&m, IFA_LOCAL, &addr, sizeof addr);
    nl_attr (&m, IFA_ADDRESS, &addr, sizeof addr);
    rc = nl_request (peer, &m, NULL);
    if (rc < 0)
      return rt_make_error (err, -rc, "address %s/%u on %s in %s", v->address, v->prefix_len, v->peer_name, v->peer_netns);
  }
  if (link_up (peer, index, v->peer_name, v->peer_netns, err) < 0 || link_up (peer, lo, "lo", v->peer_netns, err) < 0)
    return -1;
  {
    struct rtmsg rt = { .rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT, .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST };
    nl_init (&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof rt);
    nl_attr (&m, RTA_GATEWAY, &gw, sizeof gw);
    nl_u32 (&m, RTA_OIF, (uint32_t) index);
    rc = nl_request (peer, &m, NULL);
    if (rc < 0)
      return rt_make_error (err, -rc, "default route via %s dev %s in %s", v->gateway, v->peer_name, v->peer_netns);
  }
  return 0;
}

int
nl_veth_attach (const nl_veth_t *v, rt_error_t *err)
{
  cleanup_close int host = -1, peer = -1, peer_ns = -1;
  const char *where = v->host_netns != NULL ? v->host_netns : "the host's namespace";
  unsigned char mac[6];
  struct in_addr addr, gw;
  int bridge = 0;
  if (parse_inputs (v, mac, &addr, &gw, err) < 0)
    return -1;
  peer_ns = open (v->peer_netns, O_RDONLY | O_CLOEXEC);
  if (peer_ns < 0)
    return rt_make_error (err, errno, "open %s", v->peer_netns);
  host = nl_socket (v->host_netns, err);
  if (host < 0)
    return -1;
  peer = nl_socket (v->peer_netns, err);
  if (peer < 0)
    return -1;
  if (link_index (host, v->bridge, where, &bridge, err) < 0 || add_pair (host, bridge, peer_ns, v, mac, err) < 0)
    return -1;
  if (v->hairpin && set_hairpin (host, v, where, err) < 0)
    return -1;
  return configure_peer (peer, v, addr, gw, err);
}

int
nl_link_delete (const char *netns, const char *name, rt_error_t *err)
{
  cleanup_close int fd = -1;
  struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
  nl_msg_t m;
  int rc;
  if (check_ifname ("device", name, err) < 0)
    return -1;
  fd = nl_socket (netns, err);
  if (fd < 0)
    return -1;
  nl_init (&m, RTM_DELLINK, 0, &ifi, sizeof ifi);
  nl_str (&m, IFLA_IFNAME, name);
  rc = nl_request (fd, &m, NULL);
  if (rc < 0 && rc != -ENODEV)
    return rt_make_error (err, -rc, "link del %s in %s", name, netns != NULL ? netns : "the host's namespace");
  return 0;
}
