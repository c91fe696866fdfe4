/*
 * The ringwire program's command line (cli.h): one table of options, each
 * with a setter that validates its value and writes one field of struct
 * rw_options (or the action). Nothing here prints or exits; every error names
 * the option first and says why, and main turns it into exit status 2. Value
 * syntax is values.c's; --listen names are resolved here, at parse time, so a
 * name that does not resolve is a configuration error (exit 2, the
 * resolver's reason in the message) and the server opens listeners for a
 * fixed list of addresses. The --help text is cli_help.c's.
 * long: one setter of a few lines per option (about 30) beside the table
 * that names them; split further, the table and its setters would drift.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "framing.h"
#include "rw_assert.h"
#include "uring_features.h"
#include "rw_limits.h"
#include "values.h"

/* One option occurrence being applied: its name as the user wrote it, and its value. */
struct opt_ctx {
    const char *name;
    const char *value;
    enum rw_cli_action *action; /* --help, --version, --probe write it */
    char *err;
    size_t err_bytes;
};

/* Write "NAME: why" into err; returns -EINVAL so setters can `return fail(...)`. */
__attribute__((format(printf, 2, 3))) static int fail(const struct opt_ctx *o, const char *fmt, ...)
{
    int used = snprintf(o->err, o->err_bytes, "%s: ", o->name);
    if (used >= 0 && (size_t)used < o->err_bytes) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(o->err + used, o->err_bytes - (size_t)used, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* "1G", "16K", "1000": the largest unit that divides bytes exactly, for limit messages. */
const char *rw__cli_size_text(uint64_t bytes, char *buf, size_t buf_bytes)
{
    static const char units[] = {'G', 'M', 'K'};
    for (size_t i = 0; i < sizeof(units); i++) {
        uint64_t unit = 1ull << (10 * (3 - i));
        if (bytes != 0 && bytes % unit == 0) {
            snprintf(buf, buf_bytes, "%llu%c", (unsigned long long)(bytes / unit), units[i]);
            return buf;
        }
    }
    snprintf(buf, buf_bytes, "%llu", (unsigned long long)bytes);
    return buf;
}

/* A whole number in [min, max]. */
static int opt_number(const struct opt_ctx *o, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *end;
    uint64_t v = 0;
    int rc = rw__parse_u64(o->value, &end, &v);
    if (rc == -EINVAL || *end != '\0')
        return fail(o, "invalid number '%s'", o->value);
    if (rc == -ERANGE || v > max)
        return fail(o, "%s exceeds the limit of %llu", o->value, (unsigned long long)max);
    if (v < min)
        return fail(o, "%s is below the minimum of %llu", o->value, (unsigned long long)min);
    *out = v;
    return 0;
}

/* A size in [min, max] bytes. */
static int opt_size(const struct opt_ctx *o, uint64_t min, uint64_t max, uint64_t *out)
{
    char limit[32];
    uint64_t v = 0;
    int rc = rw__parse_size(o->value, &v);
    if (rc == -EINVAL)
        return fail(o, "invalid size '%s' (bytes, or with K, M, G)", o->value);
    if (rc == -ERANGE || v > max)
        return fail(o, "%s exceeds the limit of %s", o->value,
                    rw__cli_size_text(max, limit, sizeof(limit)));
    if (v < min)
        return fail(o, "%s is below the minimum of %s", o->value,
                    rw__cli_size_text(min, limit, sizeof(limit)));
    *out = v;
    return 0;
}

/* A duration up to DURATION_MAX_MS; 0 is allowed (each option says what 0 means). */
static int opt_duration(const struct opt_ctx *o, uint64_t *out_ms)
{
    uint64_t v = 0;
    int rc = rw__parse_duration_ms(o->value, &v);
    if (rc == -EINVAL)
        return fail(o, "invalid duration '%s' (e.g. 250ms, 10s, 2m; a bare number is seconds)",
                    o->value);
    if (rc == -ERANGE || v > DURATION_MAX_MS)
        return fail(o, "%s exceeds the limit of %llum (30 days)", o->value,
                    (unsigned long long)(DURATION_MAX_MS / 60000));
    *out_ms = v;
    return 0;
}

/* value must be one of names[0..count); *out gets its index. */
static int opt_choice(const struct opt_ctx *o, const char *const names[], size_t count,
                      const char *expected, size_t *out)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(o->value, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return fail(o, "must be %s, not '%s'", expected, o->value);
}

/* ---- setters: one per option, each validates o->value and writes its field ---- */

static int set_help(struct rw_options *cfg, const struct opt_ctx *o)
{
    (void)cfg;
    *o->action = RW_CLI_HELP;
    return 0;
}

static int set_version(struct rw_options *cfg, const struct opt_ctx *o)
{
    (void)cfg;
    *o->action = RW_CLI_VERSION;
    return 0;
}

static int set_probe(struct rw_options *cfg, const struct opt_ctx *o)
{
    (void)cfg;
    *o->action = RW_CLI_PROBE;
    return 0;
}

static int set_cpu_affinity(struct rw_options *cfg, const struct opt_ctx *o)
{
    (void)o;
    cfg->cpu_affinity = true;
    return 0;
}

static int set_proxy_protocol(struct rw_options *cfg, const struct opt_ctx *o)
{
    (void)o;
    cfg->proxy_protocol = true;
    return 0;
}

static int set_backend(struct rw_options *cfg, const struct opt_ctx *o)
{
    /* Indexed by enum rw_backend_kind. */
    static const char *const names[] = {"auto", "uring", "epoll"};
    _Static_assert(RW_BACKEND_AUTO == 0 && RW_BACKEND_URING == 1 && RW_BACKEND_EPOLL == 2,
                   "names[] follows enum rw_backend_kind");
    size_t i = 0;
    int rc = opt_choice(o, names, 3, "uring, epoll or auto", &i);
    if (rc == 0)
        cfg->backend = (enum rw_backend_kind)i;
    return rc;
}

/* Each --listen adds its addresses (the first replaces the default); rw_options_add_listen. */
static int set_listen(struct rw_options *cfg, const struct opt_ctx *o)
{
    char why[RW_LISTEN_TEXT_MAX + 256];
    if (rw_options_add_listen(cfg, o->value, why, sizeof(why)) < 0)
        return fail(o, "%s", why);
    return 0;
}

static int set_ipv6_dual_stack(struct rw_options *cfg, const struct opt_ctx *o)
{
    (void)o;
    cfg->ipv6_dual_stack = true;
    return 0;
}

static int set_threads(struct rw_options *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_number(o, 1, RW_THREADS_MAX, &v);
    if (rc == 0)
        cfg->threads = (uint32_t)v;
    return rc;
}

static int set_idle_timeout(struct rw_options *cfg, const struct opt_ctx *o)
{
    return opt_duration(o, &cfg->idle_timeout_ms);
}

static int set_frame_timeout(struct rw_options *cfg, const struct opt_ctx *o)
{
    return opt_duration(o, &cfg->frame_timeout_ms);
}

static int set_tcp_user_timeout(struct rw_options *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_duration(o, &v);
    if (rc < 0)
        return rc;
    if (v > RW_TCP_USER_TIMEOUT_MAX_MS)
        return fail(o, "%s exceeds the kernel's limit of %ums (about 24 days)", o->value,
                    RW_TCP_USER_TIMEOUT_MAX_MS);
    cfg->tcp_user_timeout_ms = (uint32_t)v;
    return 0;
}

static int set_keepalive(struct rw_options *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_duration(o, &v);
    if (rc < 0)
        return rc;
    if (v % 1000 != 0)
        return fail(o, "%s is not a whole number of seconds (the kernel's keepalive unit)",
                    o->value);
    if (v / 1000 > RW_KEEPALIVE_MAX_S)
        return fail(o, "%s exceeds the kernel's limit of %us", o->value, RW_KEEPALIVE_MAX_S);
    cfg->keepalive_idle_s = (uint32_t)(v / 1000); /* the probe schedule: loop.c */
    return 0;
}

static int set_drain_timeout(struct rw_options *cfg, const struct opt_ctx *o)
{
    return opt_duration(o, &cfg->drain_timeout_ms);
}

static int set_stats_interval(struct rw_options *cfg, const struct opt_ctx *o)
{
    return opt_duration(o, &cfg->stats_interval_ms);
}

static int set_max_frame(struct rw_options *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_size(o, 0, RW_FRAME_MAX_BYTES_CEILING, &v);
    if (rc == 0)
        cfg->max_frame_bytes = (uint32_t)v;
    return rc;
}

/* --length-bytes, --length-order, --length-offset, --length-adjust (framing.c). */
static int set_framing(struct rw_options *cfg, const struct opt_ctx *o)
{
    char why[160];
    if (rw__framing_parse_option(&cfg->framing, o->name, o->value, why, sizeof(why)) < 0)
        return fail(o, "%s", why);
    return 0;
}

static int set_max_conns(struct rw_options *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_number(o, 1, RW_CONNS_MAX, &v);
    if (rc == 0)
        cfg->max_conns = (uint32_t)v;
    return rc;
}

static int set_backlog(struct rw_options *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_number(o, 1, INT_MAX, &v);
    if (rc == 0)
        cfg->backlog = (uint32_t)v;
    return rc;
}

static int set_write_buffer(struct rw_options *cfg, const struct opt_ctx *o)
{
    return opt_size(o, 1, WRITE_BUFFER_MAX_BYTES, &cfg->write_buffer_bytes);
}

static int set_max_memory(struct rw_options *cfg, const struct opt_ctx *o)
{
    char floor[32];
    uint64_t v = 0;
    int rc = opt_size(o, 0, UINT64_MAX, &v);
    if (rc < 0)
        return rc;
    if (v != 0 && v < RW_MEM_MIN_BYTES)
        return fail(o, "%s is below the minimum of %s (0 means no limit)", o->value,
                    rw__cli_size_text(RW_MEM_MIN_BYTES, floor, sizeof(floor)));
    cfg->max_memory_bytes = v;
    return 0;
}

static int set_stats_json(struct rw_options *cfg, const struct opt_ctx *o)
{
    if (o->value[0] == '\0')
        return fail(o, "needs a file name");
    /* server.c writes FILE.tmp and renames it over FILE; both names must fit PATH_MAX. */
    if (strlen(o->value) + sizeof(".tmp") > PATH_MAX)
        return fail(o, "file name longer than %zu bytes", (size_t)PATH_MAX - sizeof(".tmp"));
    cfg->stats_json_path = o->value;
    return 0;
}

static int set_log_level(struct rw_options *cfg, const struct opt_ctx *o)
{
    /* Indexed by enum rw_log_level. */
    static const char *const names[] = {"error", "warn", "info", "debug"};
    _Static_assert(RW_LOG_ERROR == 0 && RW_LOG_WARN == 1 && RW_LOG_INFO == 2 && RW_LOG_DEBUG == 3,
                   "names[] follows enum rw_log_level");
    size_t i = 0;
    int rc = opt_choice(o, names, 4, "error, warn, info or debug", &i);
    if (rc == 0)
        cfg->log_level = (enum rw_log_level)i;
    return rc;
}

static int set_log_format(struct rw_options *cfg, const struct opt_ctx *o)
{
    /* Indexed by enum rw_log_format. */
    static const char *const names[] = {"auto", "plain", "journal"};
    _Static_assert(RW_LOG_FORMAT_AUTO == 0 && RW_LOG_FORMAT_PLAIN == 1 &&
                       RW_LOG_FORMAT_JOURNAL == 2,
                   "names[] follows enum rw_log_format");
    size_t i = 0;
    int rc = opt_choice(o, names, 3, "auto, plain or journal", &i);
    if (rc == 0)
        cfg->log_format = (enum rw_log_format)i;
    return rc;
}

static int set_log_timestamps(struct rw_options *cfg, const struct opt_ctx *o)
{
    (void)o;
    cfg->log_timestamps = true;
    return 0;
}

static int set_metrics(struct rw_options *cfg, const struct opt_ctx *o)
{
    if (rw__parse_listen(o->value, &cfg->metrics_addr, &cfg->metrics_addr_len) < 0)
        return fail(o, "bad address '%s' (numeric HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464)",
                    o->value);
    cfg->metrics = true;
    return 0;
}

static int set_buf_count(struct rw_options *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_number(o, 1, RW_URING_BUF_COUNT_MAX, &v);
    if (rc < 0)
        return rc;
    /* The kernel's buffer ring is indexed with a mask: entries must be a power of two. */
    if ((v & (v - 1)) != 0)
        return fail(o, "%s is not a power of two", o->value);
    cfg->buf_count = (uint32_t)v;
    return 0;
}

static int set_buf_size(struct rw_options *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_size(o, BUF_SIZE_MIN_BYTES, RW_URING_BUF_SIZE_MAX, &v);
    if (rc == 0)
        cfg->buf_size_bytes = (uint32_t)v;
    return rc;
}

static int set_uring_features(struct rw_options *cfg, const struct opt_ctx *o)
{
    char why[256];
    if (rw__uring_features_parse(o->value, &cfg->uring_features, why, sizeof(why)) < 0)
        return fail(o, "%s", why + strlen("--uring-features: "));
    return 0;
}

struct opt_def {
    const char *name;  /* long form, "--listen" */
    const char *alias; /* short form, "-h", or NULL */
    bool takes_value;
    int (*set)(struct rw_options *cfg, const struct opt_ctx *o);
};

/* Keep in the order of the --help text. */
static const struct opt_def opt_defs[] = {
    {"--backend", NULL, true, set_backend},
    {"--listen", NULL, true, set_listen},
    {"--ipv6-dual-stack", NULL, false, set_ipv6_dual_stack},
    {"--threads", NULL, true, set_threads},
    {"--cpu-affinity", NULL, false, set_cpu_affinity},
    {"--idle-timeout", NULL, true, set_idle_timeout},
    {"--frame-timeout", NULL, true, set_frame_timeout},
    {"--tcp-user-timeout", NULL, true, set_tcp_user_timeout},
    {"--keepalive", NULL, true, set_keepalive},
    {"--max-frame", NULL, true, set_max_frame},
    {"--length-bytes", NULL, true, set_framing},
    {"--length-order", NULL, true, set_framing},
    {"--length-offset", NULL, true, set_framing},
    {"--length-adjust", NULL, true, set_framing},
    {"--max-conns", NULL, true, set_max_conns},
    {"--backlog", NULL, true, set_backlog},
    {"--proxy-protocol", NULL, false, set_proxy_protocol},
    {"--write-buffer", NULL, true, set_write_buffer},
    {"--max-memory", NULL, true, set_max_memory},
    {"--drain-timeout", NULL, true, set_drain_timeout},
    {"--stats-interval", NULL, true, set_stats_interval},
    {"--stats-json", NULL, true, set_stats_json},
    {"--metrics", NULL, true, set_metrics},
    {"--log-level", NULL, true, set_log_level},
    {"--log-format", NULL, true, set_log_format},
    {"--log-timestamps", NULL, false, set_log_timestamps},
    {"--buf-count", NULL, true, set_buf_count},
    {"--buf-size", NULL, true, set_buf_size},
    {"--uring-features", NULL, true, set_uring_features},
    {"--probe", NULL, false, set_probe},
    {"--help", "-h", false, set_help},
    {"--version", "-V", false, set_version},
};

/* The option named by arg[0..name_len), or NULL. */
static const struct opt_def *find_opt(const char *arg, size_t name_len)
{
    for (size_t i = 0; i < sizeof(opt_defs) / sizeof(opt_defs[0]); i++) {
        const struct opt_def *d = &opt_defs[i];
        if (strlen(d->name) == name_len && memcmp(d->name, arg, name_len) == 0)
            return d;
        if (d->alias != NULL && strlen(d->alias) == name_len &&
            memcmp(d->alias, arg, name_len) == 0)
            return d;
    }
    return NULL;
}

/*
 * Apply argv[*i] (and its value, which may be argv[*i + 1]). A separate value
 * that starts with "--" is taken as the next option, not as this one's value,
 * so "--listen --threads 4" says "missing value" rather than "bad address";
 * "--stats-json=--odd-name" still works.
 */
static int apply_arg(struct rw_cli *cli, int argc, char *const argv[], int *i, char *err,
                     size_t err_bytes)
{
    const char *arg = argv[*i];
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    const struct opt_def *d = find_opt(arg, name_len);
    if (d == NULL) {
        snprintf(err, err_bytes, "unknown option '%.*s'", (int)name_len, arg);
        return -EINVAL;
    }
    struct opt_ctx o = {
        .name = d->name, .value = NULL, .action = &cli->action, .err = err, .err_bytes = err_bytes};
    if (!d->takes_value) {
        if (eq != NULL)
            return fail(&o, "takes no value");
    } else if (eq != NULL) {
        o.value = eq + 1;
    } else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
        o.value = argv[++*i];
    } else {
        return fail(&o, "missing value");
    }
    return d->set(&cli->cfg, &o);
}

int rw__cli_parse(struct rw_cli *cli, int argc, char *const argv[], char *err, size_t err_bytes)
{
    RW_ASSERT(cli != NULL);
    RW_ASSERT(argc >= 0);
    RW_ASSERT(argc == 0 || argv != NULL);
    RW_ASSERT(err != NULL);
    RW_ASSERT(err_bytes > 0);
    struct rw_options *cfg = &cli->cfg;
    rw_options_init(cfg);
    cli->action = RW_CLI_RUN;
    err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0' || strcmp(arg, "--") == 0) {
            snprintf(err, err_bytes, "unexpected argument '%s' (ringwire takes only options)", arg);
            return -EINVAL;
        }
        if (apply_arg(cli, argc, argv, &i, err, err_bytes) < 0)
            return -EINVAL;
        /* --help and --version answer at once; whatever follows is not looked at. */
        if (cli->action == RW_CLI_HELP || cli->action == RW_CLI_VERSION)
            return 0;
    }
    if (cli->action == RW_CLI_RUN &&
        rw__framing_validate(&cfg->framing, cfg->max_frame_bytes, err, err_bytes) < 0)
        return -EINVAL;
    if (cli->action == RW_CLI_RUN)
        return rw__options_check_fit(cfg, rw__machine_memory_bytes(), err, err_bytes);
    return 0;
}
