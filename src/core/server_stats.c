/*
 * The server's counters and reports (server_int.h): the relaxed reads of
 * every worker's stats, summed; the stats line and --stats-json; the public
 * rw_server_counters / rw_server_log_stats; and the control thread, which
 * writes the periodic stats line (stats_interval_ms; no thread without it).
 * It blocks every signal like the workers (rw_server_start creates every
 * thread with them blocked).
 */
#include "server_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "rw_limits.h"

static void stats_collect(struct rw_server *srv, struct rw_stats *total, struct rw_stats **per)
{
    for (unsigned i = 0; i < srv->count; i++) {
        struct worker *w = &srv->workers[i];
        per[i] = &w->loop.stats;
        if (!atomic_load(&w->cpu_final))
            (void)rw__stats_thread_cpu(per[i], w->thread, atomic_load(&w->tid));
    }
    rw__stats_sum(total, per, srv->count);
}

unsigned rw__server_metrics_collect(void *ctx, struct rw_stats *total, struct rw_stats **per)
{
    struct rw_server *srv = ctx;
    stats_collect(srv, total, per);
    return srv->count;
}

static void stats_write_json(struct rw_server *srv, const struct rw_stats *total,
                             struct rw_stats *const *per)
{
    const char *path = srv->stats_json;
    if (!path)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f || rw__stats_write_json(&srv->meta, total, srv->count, per, f) < 0 || fclose(f) != 0 ||
        rename(tmp, path) < 0)
        RW_WARN("--stats-json %s: %s", path, strerror(errno));
}

void rw__server_stats_report(struct rw_server *srv, enum stats_to_log to_log)
{
    struct rw_stats total;
    struct rw_stats *per[RW_THREADS_MAX];
    stats_collect(srv, &total, per);
    /* JSON first: once a stats line is in the log, the file holds the same counters. */
    stats_write_json(srv, &total, per);
    char line[2048];
    /* The total comes last, so a reader of the log can take the last stats line as the total. */
    if (to_log == STATS_LOG_ALL && srv->count > 1) {
        for (unsigned i = 0; i < srv->count; i++) {
            rw__stats_format_line(per[i], (int)i, line, sizeof(line));
            rw__log(RW_LOG_INFO, "%s", line);
        }
    }
    if (to_log != STATS_LOG_NONE) {
        rw__stats_format_line(&total, -1, line, sizeof(line));
        rw__log(RW_LOG_INFO, "%s", line);
    }
}

RW_API void rw_server_counters(const struct rw_server *srv, struct rw_counters *out)
{
    /* The CPU figures are not among the public counters: no clock reads, no writes. */
    struct rw_stats total;
    struct rw_stats *per[RW_THREADS_MAX];
    for (unsigned i = 0; i < srv->count; i++)
        per[i] = (struct rw_stats *)&srv->workers[i].loop.stats;
    rw__stats_sum(&total, per, srv->count);
    memset(out, 0, sizeof(*out));
    /* conns_open is derived (accepted - closed), the others are stats of the same name. */
    out->accepted = rw__stat_get(&total, RW_STAT_ACCEPTED);
    out->closed = rw__stat_get(&total, RW_STAT_CLOSED);
    out->conns_open = out->accepted >= out->closed ? out->accepted - out->closed : 0;
    out->rejected_limit = rw__stat_get(&total, RW_STAT_REJECTED_LIMIT);
    out->reaped_idle = rw__stat_get(&total, RW_STAT_REAPED_IDLE);
    out->reaped_frame_timeout = rw__stat_get(&total, RW_STAT_REAPED_FRAME_TIMEOUT);
    out->reaped_tcp_timeout = rw__stat_get(&total, RW_STAT_REAPED_TCP_TIMEOUT);
    out->reaped_dead = rw__stat_get(&total, RW_STAT_REAPED_DEAD);
    out->closed_protocol = rw__stat_get(&total, RW_STAT_CLOSED_PROTOCOL);
    out->closed_error = rw__stat_get(&total, RW_STAT_CLOSED_ERROR);
    out->closed_memory = rw__stat_get(&total, RW_STAT_CLOSED_MEMORY);
    out->closed_proxy = rw__stat_get(&total, RW_STAT_CLOSED_PROXY);
    out->frames_in = rw__stat_get(&total, RW_STAT_FRAMES_IN);
    out->frames_out = rw__stat_get(&total, RW_STAT_FRAMES_OUT);
    out->bytes_in = rw__stat_get(&total, RW_STAT_BYTES_IN);
    out->bytes_out = rw__stat_get(&total, RW_STAT_BYTES_OUT);
    out->backpressure_pauses = rw__stat_get(&total, RW_STAT_BACKPRESSURE_PAUSES);
    out->memory_pauses = rw__stat_get(&total, RW_STAT_MEMORY_PAUSES);
    out->mem_bytes = rw__stat_get(&total, RW_STAT_MEM_BYTES);
}

RW_API void rw_server_log_stats(struct rw_server *srv, bool per_worker)
{
    rw__server_stats_report(srv, per_worker ? STATS_LOG_ALL : STATS_LOG_TOTAL);
}

void *rw__server_ctl_main(void *arg)
{
    struct rw_server *srv = arg;
    uint64_t interval = srv->opt.stats_interval_ms;
    uint64_t next = interval ? rw__now_ms() + interval : 0;
    while (!atomic_load(&srv->stop_requested)) {
        int timeout = -1;
        if (interval) {
            uint64_t now = rw__now_ms();
            if (now >= next) {
                rw__server_stats_report(srv, STATS_LOG_TOTAL);
                next = now + interval;
            }
            timeout = (int)(next - now > (uint64_t)INT32_MAX ? INT32_MAX : next - now);
        }
        struct pollfd p = {.fd = srv->stop_fd, .events = POLLIN};
        (void)poll(&p, 1, timeout);
    }
    return NULL;
}
