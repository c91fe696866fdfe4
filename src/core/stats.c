/* Counter names, aggregation over workers and the two output formats (line, JSON). */
#include "stats.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

const char *const rw__stat_names[RW_STAT_COUNT] = {
#define RW_STAT_NAME(id, name) name,
    RW_STATS_LIST(RW_STAT_NAME)
#undef RW_STAT_NAME
};

void rw__stats_sum(struct rw_stats *out, struct rw_stats *const *in, unsigned count)
{
    for (unsigned k = 0; k < RW_STAT_COUNT; k++) {
        uint64_t sum = 0;
        for (unsigned i = 0; i < count; i++)
            sum += rw__stat_get(in[i], (enum rw_stat)k);
        atomic_store_explicit(&out->v[k], sum, memory_order_relaxed);
    }
}

static uint64_t conns_open(const struct rw_stats *s)
{
    uint64_t accepted = rw__stat_get(s, RW_STAT_ACCEPTED);
    uint64_t closed = rw__stat_get(s, RW_STAT_CLOSED);
    return accepted > closed ? accepted - closed : 0;
}

static double per_wait(const struct rw_stats *s)
{
    uint64_t waits = rw__stat_get(s, RW_STAT_WAIT_CALLS);
    return waits ? (double)rw__stat_get(s, RW_STAT_FRAMES_IN) / (double)waits : 0.0;
}

void rw__stats_format_line(const struct rw_stats *s, int worker, char *buf, size_t buf_bytes)
{
    size_t used = 0;
    if (worker >= 0)
        used = (size_t)snprintf(buf, buf_bytes, "stats worker=%d conns_open=%" PRIu64, worker,
                                conns_open(s));
    else
        used = (size_t)snprintf(buf, buf_bytes, "stats conns_open=%" PRIu64, conns_open(s));
    for (unsigned k = 0; k < RW_STAT_COUNT && used < buf_bytes; k++)
        used += (size_t)snprintf(buf + used, buf_bytes - used, " %s=%" PRIu64, rw__stat_names[k],
                                 rw__stat_get(s, (enum rw_stat)k));
    if (used < buf_bytes)
        snprintf(buf + used, buf_bytes - used, " frames_per_wait=%.2f", per_wait(s));
}

static void write_object(const struct rw_stats *s, FILE *out)
{
    fprintf(out, "{\"conns_open\": %" PRIu64, conns_open(s));
    for (unsigned k = 0; k < RW_STAT_COUNT; k++)
        fprintf(out, ", \"%s\": %" PRIu64, rw__stat_names[k], rw__stat_get(s, (enum rw_stat)k));
    fprintf(out, ", \"frames_per_wait\": %.3f}", per_wait(s));
}

int rw__stats_write_json(const struct rw_stats *s, unsigned workers, struct rw_stats *const *per,
                         FILE *out)
{
    fprintf(out, "{\"total\": ");
    write_object(s, out);
    fprintf(out, ", \"workers\": [");
    for (unsigned i = 0; i < workers; i++) {
        if (i)
            fprintf(out, ", ");
        write_object(per[i], out);
    }
    fprintf(out, "]}\n");
    return ferror(out) ? -EIO : 0;
}
