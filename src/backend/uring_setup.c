/*
 * The uring backend's setup and teardown (ops->init, ops->destroy): the ring
 * with the most capable flags the kernel takes (sqpoll's own set when asked),
 * then each optional feature probed in turn and turned off, logged once, when
 * the kernel refuses it (kernel-notes/01, 02, 18-28).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rw_assert.h"
#include "lazymem.h"
#include "backend.h"
#include "backends.h"
#include "rw_limits.h"
#include "log.h"
#include "stats.h"
#include "uring_compat.h"
#include "uring_features.h"
#include "uring_impl.h"
#include "uring_valgrind.h"

/* One io_uring_queue_init_params with these setup flags; 0 or -errno. */
static int ur_queue_init(struct ur_backend *ur, unsigned flags)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = flags | IORING_SETUP_CQSIZE;
    p.cq_entries = RW_URING_SQ_ENTRIES * 8;
    p.sq_thread_idle = RW_URING_SQPOLL_IDLE_MS; /* read only with IORING_SETUP_SQPOLL */
    int rc = io_uring_queue_init_params(RW_URING_SQ_ENTRIES, &ur->ring, &p);
    if (rc == 0)
        ur->ring_features = p.features;
    return rc;
}

/*
 * sqpoll (kernel-notes/28): the kernel refuses DEFER_TASKRUN and COOP_TASKRUN with SQPOLL
 * (EINVAL: completions are not run by the submitting task there), takes SINGLE_ISSUER (the SQ
 * thread is then the one issuer). Sockets we did not register need IORING_FEAT_SQPOLL_NONFIXED
 * (5.11, which also lets an unprivileged process use SQPOLL). 0, or -errno: ring not set up.
 */
static int ur_setup_sqpoll(struct ur_backend *ur)
{
    static const unsigned flag_sets[] = {
        IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_SQPOLL | IORING_SETUP_SUBMIT_ALL,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]) && rc == -EINVAL; i++)
        rc = ur_queue_init(ur, flag_sets[i]);
    if (rc == 0 && !(ur->ring_features & IORING_FEAT_SQPOLL_NONFIXED)) {
        io_uring_queue_exit(&ur->ring);
        rc = -EOPNOTSUPP;
    }
    return rc;
}

static int ur_setup_ring(struct ur_backend *ur, int worker_id)
{
    /* Most capable first; older kernels reject unknown flags with EINVAL (kernel-notes/02). */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    if (ur->features & RW_UF_SQPOLL) {
        int rc = ur_setup_sqpoll(ur);
        if (rc == 0)
            return 0;
        /* EPERM (before 5.11 unprivileged), EINVAL, EOPNOTSUPP: set up as without it. */
        ur->features &= ~RW_UF_SQPOLL;
        if (worker_id == 0)
            RW_INFO("uring feature sqpoll: refused by the kernel (%s; needs 5.11); off",
                    strerror(-rc));
    }
    /* With DEFER_TASKRUN completions wait for the task's next io_uring_enter, so
     * poll() on the ring fd (the valgrind wait) would never wake: skip it there. */
    size_t first = ur->wait_in_poll ? 1 : 0;
    int rc = -EINVAL;
    for (size_t i = first; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        rc = ur_queue_init(ur, flag_sets[i]);
        if (rc != -EINVAL)
            return rc;
    }
    return rc;
}

int rw__ur_init(struct rw_loop *loop, void **out_be)
{
    const struct rw_options *cfg = rw__loop_config(loop);
    int worker_id = rw__loop_worker_id(loop);
    struct ur_backend *ur = calloc(1, sizeof(*ur));
    if (!ur)
        return -ENOMEM;
    int rc;
    ur->loop = loop;
    ur->stats = rw__loop_stats(loop);
    ur->conns = rw__loop_conns(loop);
    ur->conn_cap = rw__loop_conn_cap(loop);
    ur->listen_fds = rw__loop_listen_fds(loop, &ur->listen_count);
    ur->wake_fd = rw__loop_wake_fd(loop);
    ur->clock_lag_ms = rw__loop_clock_lag_ms(loop);
    ur->wait_in_poll = rw__under_valgrind();
    ur->buf_count = cfg->buf_count;
    ur->buf_size = cfg->buf_size_bytes;
    /* Touched only when used (bump index): sized for --max-conns, costing the pages used. */
    ur->sends = rw__lazy_calloc(ur->conn_cap, sizeof(*ur->sends));
    /* The kernel writes each buffer when it first picks it: untouched until then (lazymem.h). */
    ur->bufs = rw__lazy_calloc(ur->buf_count, ur->buf_size);
    ur->buf_state = calloc(ur->buf_count, sizeof(*ur->buf_state)); /* 8 bytes a buffer */
    ur->features = cfg->uring_features;
    if (!ur->sends || !ur->bufs || !ur->buf_state) {
        rc = -ENOMEM;
        goto err_free;
    }
    rc = ur_setup_ring(ur, worker_id);
    if (rc < 0)
        goto err_free;
    if (ur->features & RW_UF_REG_RING) {
        /* io_uring_enter then finds the ring without an fd table lookup (kernel-notes/20). */
        if (io_uring_register_ring_fd(&ur->ring) != 1) {
            ur->features &= ~RW_UF_REG_RING;
            if (worker_id == 0)
                RW_INFO("uring feature reg-ring: refused by the kernel (needs 5.18); off");
        }
    }
    if (ur->features & RW_UF_FIXED_FILES)
        rw__ur_fixed_setup(ur, worker_id);
    if ((ur->features & RW_UF_MIN_WAIT) &&
        (!(ur->ring_features & RWC_FEAT_MIN_TIMEOUT) || ur->wait_in_poll)) {
        ur->features &= ~RW_UF_MIN_WAIT;
        if (worker_id == 0 && !ur->wait_in_poll)
            RW_INFO("uring feature min-wait: the kernel lacks IORING_FEAT_MIN_TIMEOUT (6.12); off");
    }
    if ((ur->features & RW_UF_BUNDLES) && !(ur->ring_features & RWC_FEAT_RECVSEND_BUNDLE)) {
        ur->features &= ~RW_UF_BUNDLES;
        if (worker_id == 0)
            RW_INFO("uring feature bundles: the kernel lacks IORING_FEAT_RECVSEND_BUNDLE (6.10); "
                    "off");
    }
    if ((ur->features & RW_UF_BUNDLES) && rw__ur_bundles_alloc(ur) < 0) {
        rc = -ENOMEM;
        goto err_ring;
    }
    if ((ur->features & RW_UF_SEND_ZC) && rw__uring_send_zc_probe(&ur->zc_report) < 0) {
        ur->features &= ~RW_UF_SEND_ZC;
        if (worker_id == 0)
            RW_INFO("uring feature send-zc: the kernel lacks IORING_OP_SEND_ZC and "
                    "IORING_OP_SENDMSG_ZC (6.1); off");
    }
    rc = rw__ur_bufs_setup(ur, worker_id);
    if (rc < 0)
        goto err_ring;
    if ((ur->features & RW_UF_BUNDLES) && (ur->features & RW_UF_INC_BUFS)) {
        /* Not combined: with an incremental ring a bundle's first and last buffers are partly
         * filled, and a retried bundle's CQE can carry the first pass's BUF_MORE (kernel-notes/26).
         */
        ur->features &= ~RW_UF_BUNDLES;
        rw__ur_bundles_free(ur);
        if (worker_id == 0)
            RW_INFO("uring feature bundles: not combined with inc-bufs; off");
    }
    rw__loop_set_zc_min_bytes(loop, RW_ZC_MIN_BYTES);
    if (worker_id == 0)
        rw__uring_features_format(ur->features, rw__stats_uring_features,
                                  sizeof(rw__stats_uring_features));
    rw__ur_arm_wake(ur);
    *out_be = ur;
    return 0;

err_ring:
    rw__ur_bundles_free(ur);
    io_uring_queue_exit(&ur->ring);
err_free:
    rw__lazy_free(ur->bufs, ur->buf_count, ur->buf_size);
    rw__lazy_free(ur->sends, ur->conn_cap, sizeof(*ur->sends));
    free(ur->buf_state);
    free(ur);
    return rc;
}

void rw__ur_destroy(void *be)
{
    struct ur_backend *ur = be;
    rwc_free_buf_ring(&ur->ring, ur->br, ur->buf_count, BUF_GROUP);
    io_uring_queue_exit(&ur->ring); /* cancels whatever is still in flight */
    rw__ur_bundles_free(ur);
    rw__lazy_free(ur->bufs, ur->buf_count, ur->buf_size);
    rw__lazy_free(ur->sends, ur->conn_cap, sizeof(*ur->sends));
    free(ur->buf_state);
    free(ur);
}
