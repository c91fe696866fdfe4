/* Backend selection for --backend auto|uring|epoll; the only place both backends are named. */
#include "backend.h"

#include <stdio.h>

const struct rw_backend_ops *rw__backend_select(enum rw_backend_kind kind, char *reason,
                                                size_t reason_bytes)
{
    if (kind == RW_BACKEND_EPOLL) {
        snprintf(reason, reason_bytes, "chosen with --backend epoll");
        return &rw__epoll_ops;
    }
    char why[400];
    if (rw__uring_probe(why, sizeof(why)) == 0) {
        snprintf(reason, reason_bytes, "%s", kind == RW_BACKEND_AUTO
                                                 ? "auto: io_uring has every feature needed"
                                                 : "chosen with --backend uring");
        return &rw__uring_ops;
    }
    if (kind == RW_BACKEND_URING) {
        snprintf(reason, reason_bytes, "%s", why);
        return NULL;
    }
    snprintf(reason, reason_bytes, "auto: falling back to epoll because io_uring is unavailable: %s",
             why);
    return &rw__epoll_ops;
}
