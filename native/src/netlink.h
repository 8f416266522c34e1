/* rtnetlink requests for the bridge driver's devices, made by swarm-spawn without running ip(8)
 * (three processes per container otherwise: ip on the host side, nsenter and ip in the
 * container's namespace). IPv4 only, as the bridge driver. */
#ifndef SWARM_NETLINK_H
#define SWARM_NETLINK_H

#include <stdbool.h>

#include "error.h"

typedef struct
{
  const char *host_netns; /* the bridge's namespace, a path; NULL: the caller's own */
  const char *bridge;     /* the bridge device there */
  const char *host_name;  /* the host end, made there and enslaved to the bridge */
  const char *peer_netns; /* the container's namespace, a path (/proc/PID/ns/net, /run/netns/NAME) */
  const char *peer_name;  /* the container's end, made directly in peer_netns */
  const char *mac;        /* the container end's MAC, aa:bb:cc:dd:ee:ff */
  unsigned mtu;           /* of both ends; 0: the kernel's default */
  const char *address;    /* the container's IPv4 address */
  unsigned prefix_len;
  const char *gateway; /* the default route's gateway, on the bridge */
  bool hairpin;        /* the host end's bridge port in hairpin mode */
} nl_veth_t;

/* Makes the veth pair (host end up on the bridge), then in the container's namespace: the address
 * on its end, its end and lo up, the default route via the gateway. On failure the host end may
 * be left (deleting it takes the peer along): the caller deletes it. */
int nl_veth_attach (const nl_veth_t *v, rt_error_t *err);

/* Deletes a device in a namespace (NULL: the caller's own); one that is not there is not an error
 * (a namespace that goes away takes its veth ends along, asynchronously). */
int nl_link_delete (const char *netns, const char *name, rt_error_t *err);

#endif
