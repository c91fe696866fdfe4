/*
 * stderr logging with a level and the worker id. The boundary (main, the loop
 * driver, backends' setup) logs; core modules return -errno and never print.
 * Never called per frame.
 */
#ifndef RW_LOG_H
#define RW_LOG_H

enum rw_log_level { RW_LOG_ERROR = 0, RW_LOG_WARN, RW_LOG_INFO, RW_LOG_DEBUG };

void rw__log_set_level(enum rw_log_level level);
enum rw_log_level rw__log_get_level(void);
/* Worker id shown in each line of the calling thread (-1: main thread). */
void rw__log_set_worker(int worker_id);

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
