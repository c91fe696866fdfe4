/* stderr logger: "ringwire[w0] info: message". One fprintf per line keeps lines whole. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static _Atomic int log_level = RW_LOG_INFO;
static _Thread_local int log_worker = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

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

void rw__log(enum rw_log_level level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (log_worker >= 0)
        fprintf(stderr, "ringwire[w%d] %s: %s\n", log_worker, level_names[level], line);
    else
        fprintf(stderr, "ringwire %s: %s\n", level_names[level], line);
}
