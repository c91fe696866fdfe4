/*
 * liburing compatibility: Debian 12 ships liburing 2.3, which lacks
 * io_uring_setup_buf_ring (2.4). Project-prefixed wrappers (rwc_) pick the
 * library's function when the build found it, else do what it does: mmap the
 * ring and register it (IORING_REGISTER_PBUF_RING, kernel 5.19). Newer UAPI
 * constants are defined here only under our own names. See kernel-notes/03.
 */
#ifndef RW_URING_COMPAT_H
#define RW_URING_COMPAT_H

#include <errno.h>
#include <liburing.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <string.h>
#include <sys/mman.h>

#include "rw_build_config.h"

/* Kernel 6.10: IORING_RECVSEND_BUNDLE (--uring-features bundles, kernel-notes/26). */
#define RWC_RECVSEND_BUNDLE      (1U << 4)
#define RWC_FEAT_RECVSEND_BUNDLE (1U << 14)
/*
 * Kernel 6.12: incremental buffer consumption. A buffer ring registered with
 * IOU_PBUF_RING_INC lets a receive take only the bytes it needs from the head
 * buffer; the CQE then carries IORING_CQE_F_BUF_MORE while the kernel keeps
 * filling that buffer, and the next receive continues after the last one.
 */
#define RWC_PBUF_RING_INC  2U
#define RWC_CQE_F_BUF_MORE (1U << 4)

/*
 * Kernel 6.12: min-wait batching. io_uring_getevents_arg's 32-bit field after
 * sigmask_sz ("pad" in liburing 2.3) is min_wait_usec: wait for wait_nr
 * completions, but once min_wait_usec passed return with whatever is there
 * (at least one). liburing 2.3 has no helper: rwc_submit_and_wait_min flushes
 * the SQ as io_uring_submit does and calls io_uring_enter itself.
 */
#define RWC_FEAT_MIN_TIMEOUT (1U << 15)

/*
 * Kernel 6.2: IORING_SEND_ZC_REPORT_USAGE (a zero-copy send's zc_flags, in sqe->ioprio) asks
 * the notification CQE to say in res whether the kernel copied the data after all
 * (IORING_NOTIF_USAGE_ZC_COPIED; loopback always does). A 6.0/6.1 kernel fails the send
 * with EINVAL. liburing 2.3 has io_uring_prep_send_zc and io_uring_prep_sendmsg_zc but not
 * these two (kernel-notes/27).
 */
#define RWC_SEND_ZC_REPORT_USAGE  (1U << 3)
#define RWC_NOTIF_USAGE_ZC_COPIED (1U << 31)

/*
 * SQPOLL (kernel-notes/28): a kernel thread takes the SQEs off the ring, so a submit is a
 * store of the SQ tail, and io_uring_enter is needed only to wait, or to wake that thread
 * once it went idle (IORING_SQ_NEED_WAKEUP, after sq_thread_idle without work). The flags
 * an io_uring_enter that submits needs for that: IORING_ENTER_SQ_WAKEUP when the thread
 * sleeps, else 0 (and always 0 without SQPOLL). The full barrier orders the tail store
 * (rwc_flush_sq) before the load of the flag, as liburing's own submit does: otherwise the
 * thread could go to sleep after we read "awake" and before it saw the new tail.
 * The 'submit' count passed with it is then not a count to submit: the kernel returns it
 * as is without submitting anything; io_uring_enter only wakes the thread and waits.
 */
static inline unsigned rwc_enter_flags(struct io_uring *ring)
{
    if (!(ring->flags & IORING_SETUP_SQPOLL))
        return 0;
    io_uring_smp_mb();
    if (IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_NEED_WAKEUP)
        return IORING_ENTER_SQ_WAKEUP;
    return 0;
}

static inline unsigned rwc_flush_sq(struct io_uring *ring)
{
    struct io_uring_sq *sq = &ring->sq;
    unsigned tail = sq->sqe_tail;
    if (sq->sqe_head != tail) {
        sq->sqe_head = tail;
        io_uring_smp_store_release(sq->ktail, tail);
    }
    return tail - io_uring_smp_load_acquire(sq->khead);
}

/*
 * Submit what is queued and wait for wait_nr CQEs, or min_wait_us then any, or timeout_ms
 * (< 0: no limit). 0/-errno. min_wait_us 0 is a plain wait, the backend's every wait; EXT_ARG
 * (5.11), and the timespec it points at, only when there is a timeout or a min_wait_us to
 * pass: a wait that ring-timer covers builds neither.
 */
static inline int rwc_submit_and_wait_min(struct io_uring *ring, unsigned wait_nr,
                                          unsigned min_wait_us, int timeout_ms,
                                          bool registered_ring)
{
    unsigned submit = rwc_flush_sq(ring);
    unsigned flags = IORING_ENTER_GETEVENTS | rwc_enter_flags(ring);
    int fd = ring->ring_fd;
    if (registered_ring) {
        flags |= IORING_ENTER_REGISTERED_RING;
        fd = ring->enter_ring_fd;
    }
    struct __kernel_timespec ts;
    struct io_uring_getevents_arg arg;
    const void *argp = NULL;
    size_t arg_bytes = 0;
    if (timeout_ms >= 0 || min_wait_us) {
        memset(&arg, 0, sizeof(arg));
        arg.pad = min_wait_us; /* min_wait_usec */
        if (timeout_ms >= 0) {
            ts.tv_sec = timeout_ms / 1000;
            ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
            arg.ts = (unsigned long long)(uintptr_t)&ts;
        }
        flags |= IORING_ENTER_EXT_ARG;
        argp = &arg;
        arg_bytes = sizeof(arg);
    }
    long rc = syscall(__NR_io_uring_enter, fd, submit, wait_nr, flags, argp, arg_bytes);
    return rc < 0 ? -errno : 0;
}

static inline struct io_uring_buf_ring *rwc_setup_buf_ring(struct io_uring *ring, unsigned entries,
                                                           int bgid, unsigned flags, int *err)
{
#if RW_HAVE_SETUP_BUF_RING
    return io_uring_setup_buf_ring(ring, entries, bgid, flags, err);
#else
    size_t bytes = entries * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
        *err = -errno;
        return NULL;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)mem;
    reg.ring_entries = entries;
    reg.bgid = (unsigned short)bgid;
    /* liburing 2.3 names the 16-bit flags field after bgid "pad". */
    memcpy((char *)&reg + offsetof(struct io_uring_buf_reg, bgid) + sizeof(reg.bgid),
           &(__u16){(__u16)flags}, sizeof(__u16));
    int rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0) {
        munmap(mem, bytes);
        *err = rc;
        return NULL;
    }
    io_uring_buf_ring_init((struct io_uring_buf_ring *)mem);
    *err = 0;
    return (struct io_uring_buf_ring *)mem;
#endif
}

static inline void rwc_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br,
                                     unsigned entries, int bgid)
{
#if RW_HAVE_SETUP_BUF_RING
    io_uring_free_buf_ring(ring, br, entries, bgid);
#else
    io_uring_unregister_buf_ring(ring, bgid);
    munmap(br, entries * sizeof(struct io_uring_buf));
#endif
}

#endif
