/*
 * stderr logging with a level and the worker id. The boundary (main, the loop
 * driver, backends' setup) logs; core modules return -errno and never print.
 * Never called per frame.
 */
#ifndef RW_LOG_H
#define RW_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include <ringwire/ringwire.h> /* enum rw_log_level, enum rw_log_format */

/*
 * --log-format: auto is journal when stderr is the journal (systemd sets
 * JOURNAL_STREAM=DEV:INODE of the stream it gave us), else plain; journal puts
 * the syslog priority first ("<3>" error, "<4>" warn, "<6>" info, "<7>" debug),
 * which journald strips and files the line under.
 */

void rw__log_set_level(enum rw_log_level level);
enum rw_log_level rw__log_get_level(void);
/* Worker id shown in each line of the calling thread (-1: main thread). */
void rw__log_set_worker(int worker_id);
/*
 * Line format, set once by main before any thread starts: auto resolves here
 * (rw__log_stderr_is_journal). timestamps: an RFC 3339 local time with
 * milliseconds before each line ("2026-11-23T14:05:09.042+01:00").
 */
void rw__log_set_format(enum rw_log_format format, bool timestamps);
/* True when $JOURNAL_STREAM names stderr's device and inode (stderr is the journal). */
bool rw__log_stderr_is_journal(void);

__attribute__((format(printf, 2, 3))) void rw__log(enum rw_log_level level, const char *fmt, ...);

#define rw__log_enabled(level) ((level) <= rw__log_get_level())
#define RW_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if (rw__log_enabled(level))                                                                \
            rw__log(level, __VA_ARGS__);                                                           \
    } while (0)
#define RW_ERROR(...) RW_LOG(RW_LOG_ERROR, __VA_ARGS__)
#define RW_WARN(...)  RW_LOG(RW_LOG_WARN, __VA_ARGS__)
#define RW_INFO(...)  RW_LOG(RW_LOG_INFO, __VA_ARGS__)
#define RW_DEBUG(...) RW_LOG(RW_LOG_DEBUG, __VA_ARGS__)

#endif
