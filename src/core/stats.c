/* Counter names, aggregation over workers and the two output formats (line, JSON). */
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

char rw__stats_uring_features[96];

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

/* utime and stime (fields 14 and 15, in clock ticks) of /proc/self/task/TID/stat, in µs. */
static int task_times_us(pid_t tid, uint64_t *user_us, uint64_t *sys_us)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int err = n < 0 ? -errno : 0;
    close(fd);
    if (n <= 0)
        return err ? err : -EIO;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: skip past the last ')'. */
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -EIO;
    long tck = sysconf(_SC_CLK_TCK);
    if (tck <= 0)
        tck = 100;
    *user_us = ut * 1000000ull / (unsigned long long)tck;
    *sys_us = st * 1000000ull / (unsigned long long)tck;
    return 0;
}

int rw__stats_thread_cpu(struct rw_stats *s, pthread_t thread, pid_t tid)
{
    clockid_t cid;
    struct timespec ts;
    int rc = pthread_getcpuclockid(thread, &cid);
    if (rc != 0)
        return -rc;
    if (clock_gettime(cid, &ts) != 0)
        return -errno;
    rw__stat_set(s, RW_STAT_CPU_US,
                 (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000u);
    uint64_t user_us, sys_us;
    if (tid > 0 && task_times_us(tid, &user_us, &sys_us) == 0) {
        rw__stat_set(s, RW_STAT_CPU_USER_US, user_us);
        rw__stat_set(s, RW_STAT_CPU_SYS_US, sys_us);
    }
    return 0;
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
        used +=
            (size_t)snprintf(buf + used, buf_bytes - used, " frames_per_wait=%.2f", per_wait(s));
    if (used < buf_bytes && rw__stats_uring_features[0])
        snprintf(buf + used, buf_bytes - used, " uring_features=%s", rw__stats_uring_features);
}

static void write_object(const struct rw_stats *s, FILE *out)
{
    fprintf(out, "{\"conns_open\": %" PRIu64, conns_open(s));
    for (unsigned k = 0; k < RW_STAT_COUNT; k++)
        fprintf(out, ", \"%s\": %" PRIu64, rw__stat_names[k], rw__stat_get(s, (enum rw_stat)k));
    fprintf(out, ", \"frames_per_wait\": %.3f", per_wait(s));
    if (rw__stats_uring_features[0])
        fprintf(out, ", \"uring_features\": \"%s\"", rw__stats_uring_features);
    fprintf(out, "}");
}

uint64_t rw__stats_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double rw__stats_uptime_s(const struct rw_stats_meta *meta)
{
    uint64_t now = rw__stats_mono_ns();
    return now > meta->started_mono_ns ? (double)(now - meta->started_mono_ns) / 1e9 : 0.0;
}

int rw__stats_write_json(const struct rw_stats_meta *meta, const struct rw_stats *s,
                         unsigned workers, struct rw_stats *const *per, FILE *out)
{
    struct timespec now;
    struct tm tm;
    char stamp[32] = "";
    clock_gettime(CLOCK_REALTIME, &now);
    if (gmtime_r(&now.tv_sec, &tm))
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    /* version and backend are ours (RW_VERSION, a backend's name): nothing to escape. */
    fprintf(out,
            "{\"version\": \"%s\", \"backend\": \"%s\", \"uptime_s\": %.3f, "
            "\"timestamp\": \"%s.%03ldZ\", \"timestamp_unix_ms\": %lld, \"total\": ",
            meta->version, meta->backend, rw__stats_uptime_s(meta), stamp, now.tv_nsec / 1000000L,
            (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000L);
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
