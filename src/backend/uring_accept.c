/*
 * The uring backend's accepts and wake-ups: one multishot accept per
 * listener, cancelled for backoff and drain and re-armed when one ends while
 * still wanted; the read of the loop's wake eventfd.
 */
#include <errno.h>
#include <sys/socket.h>

#include "rw_assert.h"
#include "uring_impl.h"

/*
 * Where the wake read lands: never freed. The eventfd now outlives the loop (the server's, for a
 * signal-safe stop), and the read re-armed before the loop exits is still pending when its ring
 * is torn down; a write racing the teardown can complete it after struct ur_backend was freed.
 * Nobody reads the value, so every worker may share one sink.
 */
static uint64_t wake_sink;

void rw__ur_arm_wake(struct ur_backend *ur)
{
    struct io_uring_sqe *sqe = ur_sqe(ur);
    io_uring_prep_read(sqe, ur->wake_fd, &wake_sink, sizeof(wake_sink), 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)OP_WAKE << 56);
    ur->wake_live = true;
}

/* One multishot accept per listener; user_data carries the listener's index. */
static uint64_t ud_accept(enum ur_op op, uint32_t listener)
{
    return ((uint64_t)op << 56) | listener;
}

static void ur_arm_accept(struct ur_backend *ur, uint32_t listener)
{
    RW_ASSERT(listener < ur->listen_count);
    struct io_uring_sqe *sqe = ur_sqe(ur);
    /* Blocking sockets: io_uring waits by itself; CLOEXEC so children never inherit them. */
    io_uring_prep_multishot_accept(sqe, ur->listen_fds[listener], NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud_accept(OP_ACCEPT, listener));
    ur->accept_live |= 1u << listener;
}

int rw__ur_accept_start(void *be)
{
    struct ur_backend *ur = be;
    ur->accept_want = true;
    for (uint32_t i = 0; i < ur->listen_count; i++)
        if (!(ur->accept_live & (1u << i)))
            ur_arm_accept(ur, i); /* else: an ending one is re-armed when its last CQE comes */
    return 0;
}

void rw__ur_accept_stop(void *be)
{
    struct ur_backend *ur = be;
    if (!ur->accept_want)
        return;
    ur->accept_want = false;
    for (uint32_t i = 0; i < ur->listen_count; i++) {
        if (!(ur->accept_live & (1u << i)))
            continue;
        struct io_uring_sqe *sqe = ur_sqe(ur);
        io_uring_prep_cancel64(sqe, ud_accept(OP_ACCEPT, i), 0);
        io_uring_sqe_set_data64(sqe, ud_accept(OP_ACCEPT_CANCEL, i));
    }
}

void rw__ur_on_accept(struct ur_backend *ur, struct io_uring_cqe *cqe)
{
    uint32_t listener = (uint32_t)(io_uring_cqe_get_data64(cqe) & 0xffffffu);
    RW_ASSERT(listener < ur->listen_count);
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more)
        ur->accept_live &= ~(1u << listener);
    if (cqe->res >= 0) {
        rw__loop_on_accept(ur->loop, cqe->res);
    } else if (cqe->res != -ECANCELED && ur->accept_want && !more) {
        /* The core backs off (EMFILE...): its accept_stop cancels the other listeners' accepts,
         * and it asks again later. */
        rw__loop_on_accept_error(ur->loop, cqe->res);
        return;
    }
    if (!(ur->accept_live & (1u << listener)) && ur->accept_want) {
        rw__stat_add(ur->stats, RW_STAT_REARM_ACCEPT, 1);
        ur_arm_accept(ur, listener);
    }
}
