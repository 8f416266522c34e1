/* linux.resources.devices: the device cgroup. The rules are reduced the way the v1 devices
 * controller reduces them (a default plus exceptions), then written to devices.allow/deny (v1)
 * or compiled into a BPF_PROG_TYPE_CGROUP_DEVICE program (cgroup v2), so that both enforce the
 * same decisions. */
#ifndef SWARM_DEVICES_H
#define SWARM_DEVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "spec.h"

#define RT_DEVICES_MAX_EXCEPTIONS 256

/* What the v1 controller keeps: a default and the exceptions to it (types 'c' and 'b' only). */
typedef struct
{
  bool allow_default;
  size_t n;
  rt_device_rule_t ex[RT_DEVICES_MAX_EXCEPTIONS];
} rt_devices_state_t;

/* Appends runc's default rules (mknod of anything; null, zero, full, random, urandom, tty, the
 * ptys, ptmx, tun) to linux.resources.devices when it has rules, leaving out the node whose path
 * a linux.devices entry takes over (runc's order and reading). */
int rt_devices_add_defaults (rt_spec_t *spec, rt_error_t *err);

/* Applies RULES in order from a deny-all start, as runc's emulator of the v1 controller does.
 * Errors name the rule's index. */
int rt_devices_reduce (const rt_device_rule_t *rules, size_t n, rt_devices_state_t *out,
                       rt_error_t *err);

/* Writes the reduced state to DIR's devices.deny/devices.allow (v1). */
int rt_devices_write_v1 (const char *dir, const rt_devices_state_t *st, rt_error_t *err);

/* Loads a BPF_CGROUP_DEVICE program deciding as ST does and attaches it to the cgroup v2
 * directory DIR (BPF_F_ALLOW_MULTI). */
int rt_devices_attach_bpf (const char *dir, const rt_devices_state_t *st, rt_error_t *err);

#endif
