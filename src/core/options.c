/*
 * Library options (options.h): the defaults of struct rw_config, the
 * --max-memory default from the machine's and the cgroup's memory, whether
 * a configuration fits the machine, and the descriptors it needs.
 */
#include "options.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

void rw__config_defaults(struct rw_config *cfg)
{
    RW_ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof(*cfg));
    cfg->backend = RW_BACKEND_AUTO;
    snprintf(cfg->listen[0].text, sizeof(cfg->listen[0].text), "%s", "127.0.0.1:7000");
    int rc = rw__parse_listen(cfg->listen[0].text, &cfg->listen[0].addr, &cfg->listen[0].addr_len);
    RW_ASSERT(rc == 0);
    cfg->listen_count = 1;
    cpu_set_t allowed; /* the CPUs we may run on (taskset, CPUAffinity=), not all online */
    int n_allowed = rw__cpus_allowed(&allowed);
    long cpus = n_allowed > 0 ? n_allowed : CPU_COUNT(&allowed);
    if (cpus < 1)
        cpus = 1;
    if (cpus > (long)RW_THREADS_MAX)
        cpus = RW_THREADS_MAX;
    cfg->threads = (uint32_t)cpus;
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
    cfg->keepalive_intvl_s = 0;
    cfg->keepalive_probes = 0;
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

int rw__config_check_fit(const struct rw_config *cfg, uint64_t phys_bytes, char *err,
                         size_t err_bytes)
{
    RW_ASSERT(cfg != NULL);
    if (phys_bytes == 0)
        return 0; /* unknown: nothing to compare with */
    uint64_t ring_bytes = 0;
    if (cfg->backend != RW_BACKEND_EPOLL)
        ring_bytes = (uint64_t)cfg->threads * cfg->buf_count * cfg->buf_size_bytes;
    /* Slot, free-list entry and the backend's own state (at most RW_BACKEND_CONN_BYTES) of
     * every connection that may be open. */
    uint64_t table_bytes = (uint64_t)cfg->max_conns *
                           (sizeof(struct rw_conn) + sizeof(uint32_t) + RW_BACKEND_CONN_BYTES);
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

uint64_t rw__nofile_needed(const struct rw_config *cfg)
{
    RW_ASSERT(cfg != NULL);
    RW_ASSERT(cfg->threads >= 1);
    RW_ASSERT(cfg->threads <= RW_THREADS_MAX);
    RW_ASSERT(cfg->listen_count >= 1);
    RW_ASSERT(cfg->listen_count <= RW_LISTEN_MAX);
    /* RW_NOFILE_PER_WORKER counts one listener; each further --listen address adds one. */
    uint64_t per_worker = RW_NOFILE_PER_WORKER + (cfg->listen_count - 1) + RW_NOFILE_WORKER_SLACK;
    return (uint64_t)cfg->max_conns + (uint64_t)cfg->threads * per_worker + RW_NOFILE_PROCESS_SLACK;
}
