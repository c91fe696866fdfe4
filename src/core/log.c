/*
 * stderr logger: "[<P>][TIMESTAMP ]ringwire[w0] info: message". One fprintf
 * per line keeps lines whole (stderr is unbuffered, so each line is one write).
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = RW_LOG_INFO;
static _Thread_local int log_worker = -1;
/* Written by main before any worker starts (thread creation orders it), then only read. */
static bool log_journal;
static bool log_timestamps;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const char *const level_prefixes[] = {"<3>", "<4>", "<6>", "<7>"};

void rw__log_set_level(enum rw_log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum rw_log_level rw__log_get_level(void)
{
    return (enum rw_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

void rw__log_set_worker(int worker_id)
{
    log_worker = worker_id;
}

bool rw__log_stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return false;
    /* A child of the service inherits the variable with another stderr: compare, not trust. */
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void rw__log_set_format(enum rw_log_format format, bool timestamps)
{
    log_journal = format == RW_LOG_FORMAT_JOURNAL ||
                  (format == RW_LOG_FORMAT_AUTO && rw__log_stderr_is_journal());
    log_timestamps = timestamps;
    if (timestamps)
        tzset(); /* localtime_r need not do it itself */
}

/* "2026-11-23T14:05:09.042+01:00 " into buf (at least 64 bytes); "" if the clock fails. */
static void format_timestamp(char *buf, size_t bytes)
{
    struct timespec ts;
    struct tm tm;
    buf[0] = '\0';
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || !localtime_r(&ts.tv_sec, &tm))
        return;
    char date[24], zone[8];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(zone, sizeof(zone), "%z", &tm); /* "+0100": RFC 3339 wants "+01:00" */
    snprintf(buf, bytes, "%s.%03ld%.3s:%.2s ", date, ts.tv_nsec / 1000000L, zone, zone + 3);
}

void rw__log(enum rw_log_level level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    char stamp[64] = "";
    if (log_timestamps)
        format_timestamp(stamp, sizeof(stamp));
    const char *prio = log_journal ? level_prefixes[level] : "";
    if (log_worker >= 0)
        fprintf(stderr, "%s%sringwire[w%d] %s: %s\n", prio, stamp, log_worker, level_names[level],
                line);
    else
        fprintf(stderr, "%s%sringwire %s: %s\n", prio, stamp, level_names[level], line);
}
