/*
 * Library options (options.h, include/ringwire/ringwire.h): the defaults of
 * struct rw_options, adding listen addresses, the range checks of every
 * value (the CLI checks them as it parses; a program filling the struct gets
 * the same answers from rw_options_check), the --max-memory default from the
 * machine's and the cgroup's memory, whether a configuration fits the
 * machine, and the descriptors it needs.
 */
#include "options.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "framing.h"
#include "rw_assert.h"
#include "uring_features.h"
#include "conn.h"
#include "cpus.h"
#include "rw_limits.h"

uint64_t rw__default_max_memory(uint64_t phys_bytes, uint64_t cgroup_bytes)
{
    uint64_t base = phys_bytes;
    if (cgroup_bytes && (base == 0 || cgroup_bytes < base))
        base = cgroup_bytes;
    uint64_t v = base / 4;
    v -= v % (1u << 20); /* whole MiB, as it is printed */
    return v < RW_MEM_MIN_BYTES ? RW_MEM_MIN_BYTES : v;
}

/* This machine's memory, and the cgroup v2 memory.max of our cgroup (0 when none is set). */
uint64_t rw__machine_memory_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

uint64_t rw__cgroup_memory_max_bytes(void)
{
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "re");
    if (!f)
        return 0;
    unsigned long long v = 0;
    int n = fscanf(f, "%llu", &v); /* "max" reads as no number: no limit */
    fclose(f);
    return n == 1 ? (uint64_t)v : 0;
}

uint32_t rw__options_default_threads(void)
{
    cpu_set_t allowed; /* the CPUs we may run on (taskset, CPUAffinity=), not all online */
    int n_allowed = rw__cpus_allowed(&allowed);
    long cpus = n_allowed > 0 ? n_allowed : CPU_COUNT(&allowed);
    if (cpus < 1)
        cpus = 1;
    if (cpus > (long)RW_THREADS_MAX)
        cpus = RW_THREADS_MAX;
    return (uint32_t)cpus;
}

RW_API void rw_options_init(struct rw_options *cfg)
{
    RW_ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof(*cfg));
    cfg->backend = RW_BACKEND_AUTO;
    snprintf(cfg->listen[0].text, sizeof(cfg->listen[0].text), "%s", "127.0.0.1:7000");
    int rc = rw__parse_listen(cfg->listen[0].text, &cfg->listen[0].addr, &cfg->listen[0].addr_len);
    RW_ASSERT(rc == 0);
    cfg->listen_count = 0; /* listen[0] is the default until an address is added */
    cfg->threads = rw__options_default_threads();
    cfg->cpu_affinity = false;
    cfg->idle_timeout_ms = 60 * 1000;
    cfg->frame_timeout_ms = 30 * 1000;
    /*
     * 30 s of transmitted data going unacknowledged means the peer is gone:
     * a live path answers a retransmission within a few RTOs (0.2 + 0.4 + ...
     * + 12.8 s = 25.4 s covers seven of them). The kernel's own limit
     * (tcp_retries2 = 15) is about 15 minutes, during which the socket, and
     * after close() its orphan, keeps its send buffer (kernel-notes/11).
     */
    cfg->tcp_user_timeout_ms = 30 * 1000;
    /*
     * Keepalive is off by default: --idle-timeout (60 s) already reaps a
     * silent peer, vanished or not, and keepalive adds probes and four
     * setsockopt calls per accept for nothing. Turn it on when the idle timeout
     * is off or long (kernel-notes/11).
     */
    cfg->keepalive_idle_s = 0;
    cfg->max_frame_bytes = 1u << 20;
    /* RW_FRAMING_DEFAULT field by field (offset and adjust 0 from the memset): a struct copy
     * need not copy padding, and the config is compared with memcmp. */
    cfg->framing.length_bytes = 4;
    cfg->framing.order = RW_LENGTH_BIG;
    cfg->max_conns = 10000;
    cfg->backlog = 4096;
    cfg->write_buffer_bytes = 4u << 20;
    cfg->max_memory_bytes =
        rw__default_max_memory(rw__machine_memory_bytes(), rw__cgroup_memory_max_bytes());
    cfg->drain_timeout_ms = 10 * 1000;
    cfg->stats_interval_ms = 0;
    cfg->stats_json_path = NULL;
    cfg->log_level = RW_LOG_INFO;
    cfg->buf_count = RW_URING_BUF_COUNT_DEFAULT;
    cfg->uring_features = RW_UF_DEFAULT;
    cfg->buf_size_bytes = RW_URING_BUF_SIZE_DEFAULT;
}

static bool is_ephemeral(const struct sockaddr_storage *ss)
{
    const void *sa = ss;
    return (ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                      : ((const struct sockaddr_in *)sa)->sin_port) == 0;
}

/*
 * An address given twice with the same non-zero port is refused: the second
 * set of listeners would only join the first one's SO_REUSEPORT group,
 * silently.
 */
RW_API int rw_options_add_listen(struct rw_options *opt, const char *host_port, char *err,
                                 size_t err_bytes)
{
    RW_ASSERT(opt != NULL);
    RW_ASSERT(host_port != NULL);
    char none[1];
    if (!err || err_bytes == 0) {
        err = none;
        err_bytes = sizeof(none);
    }
    unsigned have = opt->listen_count;
    if (have > RW_LISTEN_MAX) {
        snprintf(err, err_bytes, "listen_count %u exceeds %u", have, RW_LISTEN_MAX);
        return -EINVAL;
    }
    struct rw_listen got[RW_LISTEN_MAX];
    unsigned n = 0;
    char why[192];
    int rc = rw__resolve_listen(host_port, got, RW_LISTEN_MAX - have, &n, why, sizeof(why));
    if (rc == -E2BIG) {
        snprintf(err, err_bytes, "too many addresses: '%s' makes more than %u in all", host_port,
                 RW_LISTEN_MAX);
        return -E2BIG;
    }
    if (rc < 0) {
        snprintf(err, err_bytes, "bad address '%s': %s", host_port, why);
        return -EINVAL;
    }
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < have && !is_ephemeral(&got[i].addr); j++)
            if (opt->listen[j].addr_len == got[i].addr_len &&
                memcmp(&opt->listen[j].addr, &got[i].addr, got[i].addr_len) == 0) {
                snprintf(err, err_bytes, "'%s' repeats an address of '%s'", host_port,
                         opt->listen[j].text);
                return -EINVAL;
            }
    for (unsigned i = 0; i < n; i++) {
        struct rw_listen *l = &opt->listen[have + i];
        memset(l, 0, sizeof(*l)); /* whole bytes: options compare with memcmp (the unit tests) */
        snprintf(l->text, sizeof(l->text), "%s", host_port);
        memcpy(&l->addr, &got[i].addr, got[i].addr_len);
        l->addr_len = got[i].addr_len;
    }
    opt->listen_count = have + n;
    return 0;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(err, err_bytes, __VA_ARGS__);                                                 \
            return -EINVAL;                                                                        \
        }                                                                                          \
    } while (0)

/* The bounds the CLI enforces as it parses (app/cli.c), for a struct filled by a program. */
static int check_ranges(const struct rw_options *o, char *err, size_t err_bytes)
{
    CHECK(o->backend <= RW_BACKEND_EPOLL, "--backend: unknown backend %d", (int)o->backend);
    CHECK(o->listen_count <= RW_LISTEN_MAX, "--listen: %u addresses exceed %u", o->listen_count,
          RW_LISTEN_MAX);
    for (uint32_t i = 0; i < o->listen_count; i++) {
        const struct rw_listen *l = &o->listen[i];
        CHECK((l->addr.ss_family == AF_INET && l->addr_len == sizeof(struct sockaddr_in)) ||
                  (l->addr.ss_family == AF_INET6 && l->addr_len == sizeof(struct sockaddr_in6)),
              "--listen: address %u is not IPv4 or IPv6", i);
    }
    CHECK(o->threads <= RW_THREADS_MAX, "--threads: %u exceeds the limit of %u", o->threads,
          RW_THREADS_MAX);
    CHECK(o->idle_timeout_ms <= DURATION_MAX_MS, "--idle-timeout: exceeds 30 days");
    CHECK(o->frame_timeout_ms <= DURATION_MAX_MS, "--frame-timeout: exceeds 30 days");
    CHECK(o->drain_timeout_ms <= DURATION_MAX_MS, "--drain-timeout: exceeds 30 days");
    CHECK(o->stats_interval_ms <= DURATION_MAX_MS, "--stats-interval: exceeds 30 days");
    CHECK(o->tcp_user_timeout_ms <= RW_TCP_USER_TIMEOUT_MAX_MS,
          "--tcp-user-timeout: exceeds the kernel's limit of %ums", RW_TCP_USER_TIMEOUT_MAX_MS);
    CHECK(o->keepalive_idle_s <= RW_KEEPALIVE_MAX_S,
          "--keepalive: exceeds the kernel's limit of %us", RW_KEEPALIVE_MAX_S);
    CHECK(o->max_frame_bytes <= RW_FRAME_MAX_BYTES_CEILING,
          "--max-frame: %u exceeds the limit of %u", o->max_frame_bytes,
          RW_FRAME_MAX_BYTES_CEILING);
    CHECK(o->max_conns >= 1 && o->max_conns <= RW_CONNS_MAX, "--max-conns: %u is not in 1..%u",
          o->max_conns, RW_CONNS_MAX);
    CHECK(o->backlog >= 1 && o->backlog <= INT_MAX, "--backlog: %u is not in 1..%d", o->backlog,
          INT_MAX);
    CHECK(o->write_buffer_bytes >= 1 && o->write_buffer_bytes <= WRITE_BUFFER_MAX_BYTES,
          "--write-buffer: %llu is not in 1..%llu", (unsigned long long)o->write_buffer_bytes,
          (unsigned long long)WRITE_BUFFER_MAX_BYTES);
    CHECK(o->max_memory_bytes == 0 || o->max_memory_bytes >= RW_MEM_MIN_BYTES,
          "--max-memory: %llu is below the minimum of %u (0 means no limit)",
          (unsigned long long)o->max_memory_bytes, RW_MEM_MIN_BYTES);
    CHECK(!o->stats_json_path || (o->stats_json_path[0] != '\0' &&
                                  strlen(o->stats_json_path) + sizeof(".tmp") <= PATH_MAX),
          "--stats-json: needs a file name shorter than %zu bytes", (size_t)PATH_MAX - 4);
    CHECK(!o->metrics || o->metrics_addr.ss_family == AF_INET ||
              o->metrics_addr.ss_family == AF_INET6,
          "--metrics: not an IPv4 or IPv6 address");
    CHECK(o->buf_count >= 1 && o->buf_count <= RW_URING_BUF_COUNT_MAX &&
              (o->buf_count & (o->buf_count - 1)) == 0,
          "--buf-count: %u is not a power of two in 1..%u", o->buf_count, RW_URING_BUF_COUNT_MAX);
    CHECK(o->buf_size_bytes >= BUF_SIZE_MIN_BYTES && o->buf_size_bytes <= RW_URING_BUF_SIZE_MAX,
          "--buf-size: %u is not in %u..%u", o->buf_size_bytes, BUF_SIZE_MIN_BYTES,
          RW_URING_BUF_SIZE_MAX);
    CHECK((o->uring_features & ~(uint32_t)RW_UF_ALL) == 0, "--uring-features: unknown bits 0x%x",
          o->uring_features & ~(uint32_t)RW_UF_ALL);
    /* The framing and --max-frame together (framing.c): the messages name the --length-*. */
    if (rw__framing_validate(&o->framing, o->max_frame_bytes, err, err_bytes) < 0)
        return -EINVAL;
    CHECK(o->log_level <= RW_LOG_DEBUG, "--log-level: unknown level %d", (int)o->log_level);
    CHECK(o->log_format <= RW_LOG_FORMAT_JOURNAL, "--log-format: unknown format %d",
          (int)o->log_format);
    return 0;
}

RW_API int rw_options_check(const struct rw_options *opt, char *err, size_t err_bytes)
{
    RW_ASSERT(opt != NULL);
    char none[1];
    if (!err || err_bytes == 0) {
        err = none;
        err_bytes = sizeof(none);
    }
    int rc = check_ranges(opt, err, err_bytes);
    if (rc < 0)
        return rc;
    struct rw_options resolved = *opt;
    if (resolved.threads == 0)
        resolved.threads = rw__options_default_threads();
    return rw__options_check_fit(&resolved, rw__machine_memory_bytes(), err, err_bytes);
}

int rw__options_check_fit(const struct rw_options *cfg, uint64_t phys_bytes, char *err,
                          size_t err_bytes)
{
    RW_ASSERT(cfg != NULL);
    if (phys_bytes == 0)
        return 0; /* unknown: nothing to compare with */
    uint64_t ring_bytes = 0;
    if (cfg->backend != RW_BACKEND_EPOLL)
        ring_bytes = (uint64_t)cfg->threads * cfg->buf_count * cfg->buf_size_bytes;
    /* Slot (the backend's own state included) and free-list entry of every connection that
     * may be open. */
    uint64_t table_bytes = (uint64_t)cfg->max_conns * (sizeof(struct rw_conn) + sizeof(uint32_t));
    if (ring_bytes + table_bytes <= phys_bytes)
        return 0;
    snprintf(err, err_bytes,
             "--threads %u x --buf-count %u x --buf-size %u = %llu MiB of receive buffers, plus "
             "%llu MiB of connection table for --max-conns %u, exceeds this machine's %llu MiB "
             "of memory; lower --threads, --buf-count, --buf-size or --max-conns",
             cfg->threads, cfg->buf_count, cfg->buf_size_bytes,
             (unsigned long long)(ring_bytes >> 20), (unsigned long long)(table_bytes >> 20),
             cfg->max_conns, (unsigned long long)(phys_bytes >> 20));
    return -EINVAL;
}

uint64_t rw__nofile_needed(const struct rw_options *cfg)
{
    RW_ASSERT(cfg != NULL);
    RW_ASSERT(cfg->threads >= 1);
    RW_ASSERT(cfg->threads <= RW_THREADS_MAX);
    uint32_t listen_count = rw__options_listen_count(cfg);
    RW_ASSERT(listen_count <= RW_LISTEN_MAX);
    /* RW_NOFILE_PER_WORKER counts one listener; each further --listen address adds one. */
    uint64_t per_worker = RW_NOFILE_PER_WORKER + (listen_count - 1) + RW_NOFILE_WORKER_SLACK;
    return (uint64_t)cfg->max_conns + (uint64_t)cfg->threads * per_worker + RW_NOFILE_PROCESS_SLACK;
}
