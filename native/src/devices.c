#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* runc's AllowedDevices (libcontainer/specconv), in its order; `path` names the node a
 * linux.devices entry may take over, dropping its rule. */
static const struct
{
  const char *path;
  rt_device_rule_t rule;
} default_rules[] = {
  { NULL, { true, 'c', -1, -1, RT_DEV_MKNOD } },
  { NULL, { true, 'b', -1, -1, RT_DEV_MKNOD } },
  { "/dev/null", { true, 'c', 1, 3, RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD } },
  { "/dev/random", { true, 'c', 1, 8, RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD } },
  { "/dev/full", { true, 'c', 1, 7, RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD } },
  { "/dev/tty", { true, 'c', 5, 0, RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD } },
  { "/dev/zero", { true, 'c', 1, 5, RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD } },
  { "/dev/urandom", { true, 'c', 1, 9, RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD } },
  { NULL, { true, 'c', 136, -1, RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD } }, /* /dev/pts/N */
  { NULL, { true, 'c', 5, 2, RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD } },    /* /dev/ptmx */
  { NULL, { true, 'c', 10, 200, RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD } }, /* /dev/net/tun */
};
#define N_DEFAULT_RULES (sizeof (default_rules) / sizeof (default_rules[0]))

static bool
taken_over (const rt_spec_t *spec, const char *path)
{
  size_t i;
  for (i = 0; path != NULL && i < spec->n_devices; i++)
    if (strcmp (spec->devices[i].path, path) == 0)
      return true;
  return false;
}

int
rt_devices_add_defaults (rt_spec_t *spec, rt_error_t *err)
{
  rt_resources_t *r = &spec->resources;
  rt_device_rule_t *bigger;
  size_t i;
  if (r->n_devices == 0)
    return 0;
  bigger = realloc (r->devices, (r->n_devices + N_DEFAULT_RULES) * sizeof (rt_device_rule_t));
  if (bigger == NULL)
    return rt_make_error (err, errno, "realloc");
  r->devices = bigger;
  for (i = 0; i < N_DEFAULT_RULES; i++)
    if (!taken_over (spec, default_rules[i].path))
      r->devices[r->n_devices++] = default_rules[i].rule;
  return 0;
}

/* ---- the v1 controller's reduction ------------------------------------------------------- */

static bool
same_device (const rt_device_rule_t *a, const rt_device_rule_t *b)
{
  return a->type == b->type && a->major == b->major && a->minor == b->minor;
}

/* dev_exception_add: an exception for the same device gains the access bits. */
static int
exception_add (rt_devices_state_t *st, const rt_device_rule_t *r, rt_error_t *err)
{
  size_t i;
  for (i = 0; i < st->n; i++)
    if (same_device (&st->ex[i], r))
      {
        st->ex[i].access |= r->access;
        return 0;
      }
  if (st->n == RT_DEVICES_MAX_EXCEPTIONS)
    return rt_make_error (err, E2BIG, "linux.resources.devices: more than %d distinct rules",
                          RT_DEVICES_MAX_EXCEPTIONS);
  st->ex[st->n] = *r;
  st->ex[st->n].allow = !st->allow_default;
  st->n++;
  return 0;
}

/* dev_exception_rm: an exception for the same device loses the access bits, and goes when it
 * has none left. Removing access that a wildcard exception of the same type grants (a deny of
 * c 1:3 under an allowed c *:*) would be ignored by the v1 controller; runc refuses it rather
 * than leave a false sense of security, and so do we. */
static int
exception_rm (rt_devices_state_t *st, const rt_device_rule_t *r, rt_error_t *err)
{
  size_t i = 0;
  for (i = 0; i < st->n; i++)
    {
      const rt_device_rule_t *w = &st->ex[i];
      bool wider = w->type == r->type && (w->major == -1 || w->major == r->major)
                   && (w->minor == -1 || w->minor == r->minor) && !same_device (w, r);
      if (wider && (w->access & r->access) != 0)
        return rt_make_error (err, 0, "cannot take access away from a wildcard rule that grants it "
                                      "(the devices cgroup would ignore it)");
    }
  i = 0;
  while (i < st->n)
    {
      if (same_device (&st->ex[i], r))
        {
          st->ex[i].access &= ~r->access;
          if (st->ex[i].access == 0)
            {
              memmove (&st->ex[i], &st->ex[i + 1], (st->n - i - 1) * sizeof st->ex[0]);
              st->n--;
              continue;
            }
        }
      i++;
    }
  return 0;
}

/* runc's emulator of devcgroup_update_access, from a deny-all start (a list of allowed devices,
 * runc's "white-list" default): "a" resets the default and drops the exceptions; a rule that
 * agrees with the default removes access from an exception, one that disagrees adds one. */
int
rt_devices_reduce (const rt_device_rule_t *rules, size_t n, rt_devices_state_t *st,
                   rt_error_t *err)
{
  size_t i;
  st->allow_default = false;
  st->n = 0;
  for (i = 0; i < n; i++)
    {
      const rt_device_rule_t *r = &rules[i];
      int ret = 0;
      if (r->type == 'a')
        {
          st->allow_default = r->allow;
          st->n = 0;
        }
      else if (r->allow == st->allow_default)
        ret = exception_rm (st, r, err);
      else
        ret = exception_add (st, r, err);
      if (ret < 0)
        return rt_wrap_error (err, "linux.resources.devices[%zu]", i);
    }
  return 0;
}

/* ---- v1: devices.allow and devices.deny -------------------------------------------------- */

static void
format_rule (const rt_device_rule_t *r, char *buf, size_t len)
{
  char major[24] = "*", minor[24] = "*", access[4];
  size_t k = 0;
  if (r->major >= 0)
    snprintf (major, sizeof major, "%lld", (long long) r->major);
  if (r->minor >= 0)
    snprintf (minor, sizeof minor, "%lld", (long long) r->minor);
  if (r->access & RT_DEV_READ)
    access[k++] = 'r';
  if (r->access & RT_DEV_WRITE)
    access[k++] = 'w';
  if (r->access & RT_DEV_MKNOD)
    access[k++] = 'm';
  access[k] = '\0';
  snprintf (buf, len, "%c %s:%s %s", r->type, major, minor, access);
}

static int
write_rule (int fd, const char *file, const char *rule, rt_error_t *err)
{
  size_t len = strlen (rule);
  if (write (fd, rule, len) != (ssize_t) len)
    return rt_make_error (err, errno, "set the device rules: write `%s` to %s", rule, file);
  return 0;
}

static int
open_rules_file (const char *dir, const char *name, char **path, rt_error_t *err)
{
  int fd;
  if (asprintf (path, "%s/%s", dir, name) < 0)
    return rt_make_error (err, ENOMEM, "asprintf");
  fd = open (*path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return rt_make_error (err, errno, "set the device rules: open %s", *path);
  return fd;
}

int
rt_devices_write_v1 (const char *dir, const rt_devices_state_t *st, rt_error_t *err)
{
  cleanup_free char *allow_path = NULL, *deny_path = NULL;
  cleanup_close int allow_fd = -1, deny_fd = -1;
  size_t i;
  /* Each write is one rule; the file stays open for all of them. */
  allow_fd = open_rules_file (dir, "devices.allow", &allow_path, err);
  if (allow_fd < 0)
    return -1;
  deny_fd = open_rules_file (dir, "devices.deny", &deny_path, err);
  if (deny_fd < 0)
    return -1;
  if (st->allow_default ? write_rule (allow_fd, allow_path, "a", err) < 0
                        : write_rule (deny_fd, deny_path, "a", err) < 0)
    return -1;
  for (i = 0; i < st->n; i++)
    {
      char rule[80];
      format_rule (&st->ex[i], rule, sizeof rule);
      if (st->allow_default ? write_rule (deny_fd, deny_path, rule, err) < 0
                            : write_rule (allow_fd, allow_path, rule, err) < 0)
        return -1;
    }
  return 0;
}

/* ---- v2: a BPF_PROG_TYPE_CGROUP_DEVICE program ------------------------------------------- */

/* The program reads struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; } (r1)
 * where access_type is (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*, and returns 1 to allow.
 * Registers: r3 the type, r4 the access, r5 the major, r6 the minor, r7 scratch. Each exception
 * is one block that jumps to the next on the first mismatch and returns its verdict when all
 * checks pass; the last block returns the default. The checks are the v1 controller's: with a
 * deny default an exception must grant every requested access (match_exception), with an allow
 * default any overlap denies (match_exception_partial). */

static struct bpf_insn
insn (uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
  struct bpf_insn i = { .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
  return i;
}

#define LDX_W(dst, off) insn (BPF_LDX | BPF_MEM | BPF_W, dst, 1, off, 0)
#define MOV32_REG(dst, src) insn (BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
#define AND32_IMM(dst, imm) insn (BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, imm)
#define RSH32_IMM(dst, imm) insn (BPF_ALU | BPF_RSH | BPF_K, dst, 0, 0, imm)
#define MOV64_IMM(dst, imm) insn (BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
#define JNE_IMM(dst, imm) insn (BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, imm)
#define JEQ_IMM(dst, imm) insn (BPF_JMP | BPF_JEQ | BPF_K, dst, 0, 0, imm)
#define EXIT() insn (BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* The access bits as BPF_DEVCG_ACC_* (they are the same values as RT_DEV_*). */
_Static_assert (RT_DEV_MKNOD == BPF_DEVCG_ACC_MKNOD && RT_DEV_READ == BPF_DEVCG_ACC_READ
                    && RT_DEV_WRITE == BPF_DEVCG_ACC_WRITE,
                "RT_DEV_* are the BPF access bits");

static size_t
emit_exception (struct bpf_insn *p, const rt_device_rule_t *e, bool allow_default)
{
  size_t n = 0, jumps[8], k, nj = 0;
  p[n++] = JNE_IMM (3, e->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
  jumps[nj++] = n - 1;
  if (!allow_default && e->access != (RT_DEV_READ | RT_DEV_WRITE | RT_DEV_MKNOD))
    {
      /* Requested access outside the exception's: no match. */
      p[n++] = MOV32_REG (7, 4);
      p[n++] = AND32_IMM (7, (int32_t) (~e->access & 7u));
      p[n++] = JNE_IMM (7, 0);
      jumps[nj++] = n - 1;
    }
  else if (allow_default)
    {
      /* No requested access in common with the exception: no match. */
      p[n++] = MOV32_REG (7, 4);
      p[n++] = AND32_IMM (7, (int32_t) e->access);
      p[n++] = JEQ_IMM (7, 0);
      jumps[nj++] = n - 1;
    }
  if (e->major >= 0)
    {
      p[n++] = JNE_IMM (5, (int32_t) e->major);
      jumps[nj++] = n - 1;
    }
  if (e->minor >= 0)
    {
      p[n++] = JNE_IMM (6, (int32_t) e->minor);
      jumps[nj++] = n - 1;
    }
  p[n++] = MOV64_IMM (0, allow_default ? 0 : 1);
  p[n++] = EXIT ();
  for (k = 0; k < nj; k++)
    p[jumps[k]].off = (int16_t) (n - jumps[k] - 1);
  return n;
}

static int
bpf_call (int cmd, union bpf_attr *attr)
{
  return (int) syscall (SYS_bpf, cmd, attr, sizeof *attr);
}

int
rt_devices_attach_bpf (const char *dir, const rt_devices_state_t *st, rt_error_t *err)
{
  /* 7 instructions of prologue and epilogue, at most 9 per exception. */
  struct bpf_insn prog[7 + 9 * RT_DEVICES_MAX_EXCEPTIONS];
  cleanup_close int prog_fd = -1, dir_fd = -1;
  union bpf_attr attr;
  char log[4096] = "";
  size_t n = 0, i;

  prog[n++] = LDX_W (2, 0); /* access_type */
  prog[n++] = MOV32_REG (3, 2);
  prog[n++] = AND32_IMM (3, 0xffff);
  prog[n++] = MOV32_REG (4, 2);
  prog[n++] = RSH32_IMM (4, 16);
  prog[n++] = LDX_W (5, 4); /* major */
  prog[n++] = LDX_W (6, 8); /* minor */
  for (i = 0; i < st->n; i++)
    n += emit_exception (prog + n, &st->ex[i], st->allow_default);
  prog[n++] = MOV64_IMM (0, st->allow_default ? 1 : 0);
  prog[n++] = EXIT ();

  memset (&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = (uint64_t) (uintptr_t) prog;
  attr.insn_cnt = (uint32_t) n;
  attr.license = (uint64_t) (uintptr_t) "GPL";
  prog_fd = bpf_call (BPF_PROG_LOAD, &attr);
  if (prog_fd < 0)
    {
      /* Again with the verifier's log, which says why (a log buffer is only accepted with a log
       * level, and costs the verifier time: not on the first try). */
      int e = errno, again;
      attr.log_buf = (uint64_t) (uintptr_t) log;
      attr.log_size = sizeof log;
      attr.log_level = 1;
      again = bpf_call (BPF_PROG_LOAD, &attr);
      if (again >= 0)
        close (again);
      log[strcspn (log, "\n")] = '\0';
      return rt_make_error (err, e, "set the device rules: load the BPF program%s%s%s",
                            log[0] ? " (" : "", log, log[0] ? ")" : "");
    }
  dir_fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0)
    return rt_make_error (err, errno, "set the device rules: open %s", dir);
  memset (&attr, 0, sizeof attr);
  attr.target_fd = (uint32_t) dir_fd;
  attr.attach_bpf_fd = (uint32_t) prog_fd;
  attr.attach_type = BPF_CGROUP_DEVICE;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (bpf_call (BPF_PROG_ATTACH, &attr) < 0)
    return rt_make_error (err, errno, "set the device rules: attach the BPF program to %s", dir);
  /* The cgroup holds the program now; it goes with the cgroup. */
  return 0;
}
