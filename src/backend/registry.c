/*
 * The backend registry: the only place both backends are named. Selection for
 * --backend auto|uring|epoll (with the io_uring probe), the fallback to epoll
 * when io_uring passed the probe but worker setup failed, and --probe.
 */
#include <stdio.h>

#include "backend.h"
#include "backends.h"

const struct rw_backend_ops *rw__backend_select(enum rw_backend_kind kind, char *reason,
                                                size_t reason_bytes)
{
    if (kind == RW_BACKEND_EPOLL) {
        snprintf(reason, reason_bytes, "chosen with --backend epoll");
        return &rw__epoll_ops;
    }
    char why[400];
    if (rw__uring_probe(why, sizeof(why)) == 0) {
        snprintf(reason, reason_bytes, "%s",
                 kind == RW_BACKEND_AUTO ? "auto: io_uring has every feature needed"
                                         : "chosen with --backend uring");
        return &rw__uring_ops;
    }
    if (kind == RW_BACKEND_URING) {
        snprintf(reason, reason_bytes, "%s", why);
        return NULL;
    }
    snprintf(reason, reason_bytes,
             "auto: falling back to epoll because io_uring is unavailable: %s", why);
    return &rw__epoll_ops;
}

/*
 * auto promised a working server: the probe passed, but a full-size ring per
 * worker may still not fit (RLIMIT_MEMLOCK, memory). Then epoll, over the
 * same listeners. Only auto falls back, and only from io_uring.
 */
const struct rw_backend_ops *rw__backend_fallback(enum rw_backend_kind kind,
                                                  const struct rw_backend_ops *failed, char *reason,
                                                  size_t reason_bytes)
{
    if (kind != RW_BACKEND_AUTO || failed != &rw__uring_ops)
        return NULL;
    snprintf(reason, reason_bytes, "auto: io_uring worker setup failed; falling back to epoll");
    return &rw__epoll_ops;
}

bool rw__backend_locks_memory(const struct rw_backend_ops *ops)
{
    return ops == &rw__uring_ops;
}

void rw__backend_probe_print(FILE *out)
{
    rw__uring_probe_print(out);
    rw__uring_features_print(out);
}
