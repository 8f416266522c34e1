#include "seccomp.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>

struct rt_seccomp_filter
{
  scmp_filter_ctx ctx;
};

/* ---- names --------------------------------------------------------------------------------- */

int
rt_seccomp_action (const char *name, bool has_errno_ret, uint32_t errno_ret, uint32_t *out,
                   const char **why)
{
  static const struct
  {
    const char *name;
    uint32_t action;
  } simple[] = {
    { "SCMP_ACT_KILL", SCMP_ACT_KILL },
    { "SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD },
    { "SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS },
    { "SCMP_ACT_TRAP", SCMP_ACT_TRAP },
    { "SCMP_ACT_ALLOW", SCMP_ACT_ALLOW },
    { "SCMP_ACT_LOG", SCMP_ACT_LOG },
  };
  uint32_t ret = has_errno_ret ? errno_ret : EPERM;
  size_t i;
  *why = NULL;
  if (strcmp (name, "SCMP_ACT_ERRNO") == 0)
    {
      *out = SCMP_ACT_ERRNO (ret);
      return 0;
    }
  if (strcmp (name, "SCMP_ACT_TRACE") == 0)
    {
      *out = SCMP_ACT_TRACE (ret);
      return 0;
    }
  if (strcmp (name, "SCMP_ACT_NOTIFY") == 0)
    {
      if (has_errno_ret)
        {
          *why = "errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE";
          return -1;
        }
      *out = SCMP_ACT_NOTIFY;
      return 0;
    }
  for (i = 0; i < sizeof (simple) / sizeof (simple[0]); i++)
    if (strcmp (simple[i].name, name) == 0)
      {
        if (has_errno_ret)
          {
            *why = "errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE";
            return -1;
          }
        *out = simple[i].action;
        return 0;
      }
  *why = "unknown action";
  return -1;
}

int
rt_seccomp_flag (const char *name, unsigned *out, const char **why)
{
  *why = NULL;
  if (strcmp (name, "SECCOMP_FILTER_FLAG_TSYNC") == 0)
    *out = RT_SECCOMP_FLAG_TSYNC;
  else if (strcmp (name, "SECCOMP_FILTER_FLAG_LOG") == 0)
    *out = RT_SECCOMP_FLAG_LOG;
  else if (strcmp (name, "SECCOMP_FILTER_FLAG_SPEC_ALLOW") == 0)
    *out = RT_SECCOMP_FLAG_SPEC_ALLOW;
  else
    {
      *why = strcmp (name, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") == 0
                 ? "not supported (libseccomp 2.5 has no attribute for it)"
                 : "unknown flag";
      return -1;
    }
  return 0;
}

int
rt_seccomp_op (const char *name)
{
  static const struct
  {
    const char *name;
    int op;
  } ops[] = {
    { "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT },
    { "SCMP_CMP_LE", SCMP_CMP_LE }, { "SCMP_CMP_EQ", SCMP_CMP_EQ },
    { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
    { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
  };
  size_t i;
  for (i = 0; i < sizeof (ops) / sizeof (ops[0]); i++)
    if (strcmp (ops[i].name, name) == 0)
      return ops[i].op;
  return -1;
}

static void
free_strv (char **v)
{
  size_t i;
  for (i = 0; v && v[i]; i++)
    free (v[i]);
  free (v);
}

void
rt_seccomp_release (rt_seccomp_t *s)
{
  size_t i;
  free_strv (s->architectures);
  free (s->listener_path);
  free (s->listener_metadata);
  for (i = 0; i < s->n_rules; i++)
    {
      free_strv (s->rules[i].names);
      free (s->rules[i].args);
    }
  free (s->rules);
  memset (s, 0, sizeof *s);
}

/* ---- building the filter ------------------------------------------------------------------- */

/* "SCMP_ARCH_X86_64" is libseccomp's "x86_64". An architecture this libseccomp does not know is
 * skipped, like an unknown syscall; the native one is always in the filter. */
static int
add_arch (scmp_filter_ctx ctx, const char *name, rt_error_t *err)
{
  char lower[64];
  const char *p = strncmp (name, "SCMP_ARCH_", 10) == 0 ? name + 10 : name;
  size_t i;
  uint32_t arch;
  int ret;
  for (i = 0; p[i] != '\0' && i < sizeof lower - 1; i++)
    lower[i] = (char) tolower ((unsigned char) p[i]);
  lower[i] = '\0';
  arch = seccomp_arch_resolve_name (lower);
  if (arch == 0)
    return 0;
  ret = seccomp_arch_add (ctx, arch);
  if (ret < 0 && ret != -EEXIST)
    return rt_make_error (err, -ret, "seccomp: add architecture %s", name);
  return 0;
}

/* libseccomp refuses two comparisons of the same argument in one rule; such a list means "any of
 * these" (runc's reading), so it becomes one rule per comparison. */
static bool
repeats_an_index (const rt_seccomp_rule_t *r)
{
  size_t i, j;
  for (i = 0; i < r->n_args; i++)
    for (j = i + 1; j < r->n_args; j++)
      if (r->args[i].index == r->args[j].index)
        return true;
  return false;
}

static int
add_rule (scmp_filter_ctx ctx, const rt_seccomp_t *p, size_t i, rt_error_t *err)
{
  const rt_seccomp_rule_t *r = &p->rules[i];
  struct scmp_arg_cmp conds[6];
  bool split = repeats_an_index (r);
  size_t k, n;
  int ret;
  /* A rule that does what the default does changes nothing (and libseccomp refuses it). */
  if (r->action == p->default_action)
    return 0;
  if (r->n_args > 6 && !split)
    return rt_make_error (err, EINVAL, "seccomp: linux.seccomp.syscalls[%zu].args: too many", i);
  for (n = 0; r->names && r->names[n]; n++)
    {
      int nr = seccomp_syscall_resolve_name (r->names[n]);
      if (nr == __NR_SCMP_ERROR)
        continue; /* unknown here (an older libseccomp or another architecture): skipped */
      if (split)
        {
          for (k = 0; k < r->n_args; k++)
            {
              struct scmp_arg_cmp c = { r->args[k].index, (enum scmp_compare) r->args[k].op,
                                        r->args[k].value, r->args[k].value_two };
              ret = seccomp_rule_add_array (ctx, r->action, nr, 1, &c);
              if (ret < 0)
                return rt_make_error (err, -ret, "seccomp: linux.seccomp.syscalls[%zu]: add %s",
                                      i, r->names[n]);
            }
          continue;
        }
      for (k = 0; k < r->n_args; k++)
        {
          conds[k].arg = r->args[k].index;
          conds[k].op = (enum scmp_compare) r->args[k].op;
          conds[k].datum_a = r->args[k].value;
          conds[k].datum_b = r->args[k].value_two;
        }
      ret = seccomp_rule_add_array (ctx, r->action, nr, (unsigned) r->n_args, conds);
      if (ret < 0)
        return rt_make_error (err, -ret, "seccomp: linux.seccomp.syscalls[%zu]: add %s", i,
                              r->names[n]);
    }
  return 0;
}

int
rt_seccomp_build (const rt_seccomp_t *profile, rt_seccomp_filter_t **out, rt_error_t *err)
{
  rt_seccomp_filter_t *f;
  size_t i;
  int ret;
  *out = NULL;
  f = calloc (1, sizeof *f);
  if (f == NULL)
    return rt_make_error (err, errno, "calloc");
  f->ctx = seccomp_init (profile->default_action);
  if (f->ctx == NULL)
    {
      free (f);
      return rt_make_error (err, EINVAL, "seccomp: linux.seccomp.defaultAction: seccomp_init");
    }
  /* libseccomp would set no_new_privs on load; process.noNewPrivileges decides that. */
  ret = seccomp_attr_set (f->ctx, SCMP_FLTATR_CTL_NNP, 0);
  if (ret < 0)
    {
      rt_seccomp_free (f);
      return rt_make_error (err, -ret, "seccomp: clear the no_new_privs attribute");
    }
  {
    /* linux.seccomp.flags: the kernel's SECCOMP_FILTER_FLAG_* through libseccomp's attributes. */
    static const struct
    {
      unsigned flag;
      enum scmp_filter_attr attr;
    } attrs[] = {
      { RT_SECCOMP_FLAG_TSYNC, SCMP_FLTATR_CTL_TSYNC },
      { RT_SECCOMP_FLAG_LOG, SCMP_FLTATR_CTL_LOG },
      { RT_SECCOMP_FLAG_SPEC_ALLOW, SCMP_FLTATR_CTL_SSB },
    };
    size_t k;
    for (k = 0; k < sizeof (attrs) / sizeof (attrs[0]); k++)
      if ((profile->flags & attrs[k].flag)
          && (ret = seccomp_attr_set (f->ctx, attrs[k].attr, 1)) < 0)
        {
          rt_seccomp_free (f);
          return rt_make_error (err, -ret, "seccomp: linux.seccomp.flags: set the filter attribute");
        }
  }
  for (i = 0; profile->architectures && profile->architectures[i]; i++)
    if (add_arch (f->ctx, profile->architectures[i], err) < 0)
      {
        rt_seccomp_free (f);
        return -1;
      }
  for (i = 0; i < profile->n_rules; i++)
    if (add_rule (f->ctx, profile, i, err) < 0)
      {
        rt_seccomp_free (f);
        return -1;
      }
  *out = f;
  return 0;
}

int
rt_seccomp_load (rt_seccomp_filter_t *f, int *notify_fd, rt_error_t *err)
{
  int ret = seccomp_load (f->ctx);
  if (notify_fd != NULL)
    *notify_fd = -1;
  if (ret < 0)
    return rt_make_error (err, -ret, "seccomp: load the filter");
  if (notify_fd != NULL)
    {
      /* libseccomp keeps the listener descriptor of a loaded filter with SCMP_ACT_NOTIFY rules;
       * it is ours once the context is released (the caller frees the filter). */
      ret = seccomp_notify_fd (f->ctx);
      if (ret >= 0)
        {
          *notify_fd = fcntl (ret, F_DUPFD_CLOEXEC, 3);
          if (*notify_fd < 0)
            return rt_make_error (err, errno, "seccomp: dup the notify descriptor");
        }
    }
  return 0;
}

void
rt_seccomp_free (rt_seccomp_filter_t *f)
{
  if (f == NULL)
    return;
  seccomp_release (f->ctx);
  free (f);
}
