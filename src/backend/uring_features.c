/*
 * --uring-features: names, parsing, and the run-time probe behind --probe.
 * The backend itself probes again as it sets each feature up, and falls back
 * (feature off, logged once) when the kernel refuses.
 */
#include "uring_features.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "backends.h"
#include "uring_compat.h"

/* Why each default is what it is (the measurements are in the notes). */
#define OFF_NO_DIFFERENCE                                                                          \
    "off by default: no difference measured yet (ablation on a loaded 2-core VM, every "           \
    "interval contains 1.0); "

static const struct {
    uint32_t bit;
    const char *name;
    const char *kernel;
    const char *why;
} features[] = {
    {RW_UF_ZC_REPLIES, "zc-replies", "any",
     "on by default for payloads of 4 KiB and more (below, no saving measured): user time per "
     "frame halved at 4-8 KiB, server CPU -17% at 16 KiB with --buf-size 64K; a reply that lies in "
     "its receive buffer (echo) is sent from it, not copied; copied "
     "when fewer than 1/4 of the buffers are free, when the connection holds 4 already, "
     "or when the frame spans buffers (kernel-notes/18)"},
    {RW_UF_INC_BUFS, "inc-bufs", "6.12",
     OFF_NO_DIFFERENCE
     "IOU_PBUF_RING_INC: small receives fill one buffer after another instead of taking a "
     "whole buffer each, so the data touched stays in a few cache lines and pages "
     "(kernel-notes/19)"},
    {RW_UF_REG_RING, "reg-ring", "5.18",
     "off by default: not shown faster in both cells (ablation of 2026-12-01: -8% server CPU per "
     "frame at 60k/s x 512 conns, no difference at 20k/s x 64, and no difference in either "
     "before); "
     "io_uring_register_ring_fd: io_uring_enter skips the fd table lookup (kernel-notes/20)"},
    {RW_UF_MIN_WAIT, "min-wait", "6.12",
     "off by default: measured slower (+10% and +17% server CPU per frame in open loop: an "
     "hrtimer per wait); a turn that submitted N sends waits for N+1 completions, at most "
     "50"
     " us past the "
     "first: sends that complete inline no longer cost a turn of their own (one "
     "io_uring_enter a frame instead of two at low load; kernel-notes/21)"},
    {RW_UF_RING_TIMER, "ring-timer", "5.5",
     "on by default: faster wherever the loop sleeps (paired runs, benchmarks/pair: server CPU "
     "per frame 0.983 of off at 20k/s x 64 conns x 1000 B, 0.993 at 60k/s x 512, 0.991 in "
     "ping-pong over 1 conn, intervals clear of 1.0), no difference in ping-pong over 512 conns "
     "(0.994), where it seldom sleeps; the loop's next deadline is an absolute IORING_OP_TIMEOUT "
     "kept armed across waits "
     "(re-armed only when the deadline moves earlier or it fired), instead of a timespec on "
     "every io_uring_enter, which arms and cancels an hrtimer each time the loop sleeps "
     "(kernel-notes/24)"},
    {RW_UF_FIXED_FILES, "fixed-files", "5.19",
     "off by default: no saving measured (server CPU per frame 0.995 and 1.068 of the default "
     "over 16 rounds, intervals containing 1.0); "
     "each socket is also put in a sparse registered file table at its connection slot (one "
     "io_uring_register at open, one at close), and its recv, send and cancel SQEs name the "
     "slot: no fd table lookup per operation; the fd stays for setsockopt, shutdown, "
     "TCP_INFO and SIOCINQ (kernel-notes/25)"},
    {RW_UF_BUNDLES, "bundles", "6.10",
     "on by default: -15% server CPU per frame at 256 KiB ping-pong over the default buffers, "
     "no difference at 64 B to 16 KiB (frames that fit in one buffer); "
     "IORING_RECVSEND_BUNDLE: one multishot recv CQE carries as many buffers as the socket had "
     "data for (frames larger than --buf-size: one CQE instead of one per buffer); per "
     "connection, from its first receive that fills a buffer (a one-buffer bundle costs the "
     "kernel ~80 ns more than a plain recv, perf, 64 B x 512 conns); off when inc-bufs is on "
     "(kernel-notes/26)"},
    {RW_UF_SEND_ZC, "send-zc", "6.1",
     "off by default: on loopback the kernel copies anyway, so it can only cost here (it needs "
     "a real NIC); sends of 16 KiB and more go out as IORING_OP_SEND_ZC/SENDMSG_ZC, each "
     "complete only at its notification CQE (kernel-notes/27)"},
    {RW_UF_SQPOLL, "sqpoll", "5.11",
     "off by default: an opt-in for machines with a spare core; a kernel thread per worker "
     "polls the submission queue (idle after 10 ms), so submits need no io_uring_enter; "
     "on 2 cores it competes with the client, and its SQ thread costs a core while it polls "
     "(50 us of server CPU per frame at 20k/s, counted by the process clock; kernel-notes/28)"},
    {RW_UF_LAZY_REAP, "lazy-reap", "5.18",
     "off by default: slower in closed loop (+8% server CPU per frame in ping-pong at 64 B and "
     "1 KiB, intervals clear of 1.0: a wait that returned with the send CQEs found the next "
     "requests there; one that sleeps past them costs a context switch) and no difference shown "
     "in open loop (0.95 of the default at 60k/s x 512 and at 20k/s x 64, intervals containing "
     "1.0); "
     "a send of all a connection has queued, whose completion the core would only count (it "
     "reads, nothing waits on its output draining), goes with MSG_WAITALL, and the turn's "
     "wait sleeps past such completions (N sends: N + 1 CQEs, at most 100 ms) so they are "
     "reaped with the next event instead of a turn of their own (kernel-notes/29)"},
};

#define FEATURE_COUNT (sizeof(features) / sizeof(features[0]))

int rw__uring_features_parse(const char *list, uint32_t *mask, char *err, size_t err_bytes)
{
    const char *p = list;
    if (!*p) {
        snprintf(err, err_bytes, "--uring-features: empty list");
        return -EINVAL;
    }
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char sign = '+';
        if (n > 0 && (*p == '+' || *p == '-')) {
            sign = *p;
            p++;
            n--;
        }
        uint32_t bits = 0;
        if (n == 3 && strncmp(p, "all", 3) == 0) {
            bits = RW_UF_ALL;
        } else if (n == 4 && strncmp(p, "none", 4) == 0) {
            bits = RW_UF_ALL;
            sign = sign == '+' ? '-' : '+';
        } else {
            for (size_t i = 0; i < FEATURE_COUNT; i++)
                if (strlen(features[i].name) == n && strncmp(p, features[i].name, n) == 0)
                    bits = features[i].bit;
        }
        if (!bits) {
            char names[256];
            rw__uring_features_format(RW_UF_ALL, names, sizeof(names));
            snprintf(err, err_bytes,
                     "--uring-features: unknown feature '%.*s' (known: %s, all, none)", (int)n, p,
                     names);
            return -EINVAL;
        }
        if (sign == '+')
            *mask |= bits;
        else
            *mask &= ~bits;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

void rw__uring_features_format(uint32_t mask, char *buf, size_t buf_bytes)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < FEATURE_COUNT && used < buf_bytes; i++)
        if (mask & features[i].bit)
            used += (size_t)snprintf(buf + used, buf_bytes - used, "%s%s", used ? "," : "",
                                     features[i].name);
    if (used == 0)
        snprintf(buf, buf_bytes, "none");
}

uint32_t rw__uring_features_kernel(void)
{
    struct io_uring ring;
    if (io_uring_queue_init(4, &ring, 0) < 0)
        return 0;
    uint32_t have = RW_UF_ZC_REPLIES;
    int err = 0;
    struct io_uring_buf_ring *br = rwc_setup_buf_ring(&ring, 4, 3, RWC_PBUF_RING_INC, &err);
    if (br) {
        have |= RW_UF_INC_BUFS;
        rwc_free_buf_ring(&ring, br, 4, 3);
    }
    if (io_uring_register_ring_fd(&ring) == 1)
        have |= RW_UF_REG_RING;
    if (ring.features & RWC_FEAT_MIN_TIMEOUT)
        have |= RW_UF_MIN_WAIT;
    have |= RW_UF_RING_TIMER; /* IORING_OP_TIMEOUT with IORING_TIMEOUT_ABS: 5.5, below our floor */
    have |= RW_UF_LAZY_REAP;  /* MSG_WAITALL sends retried by the kernel: 5.18, below our floor */
    if (io_uring_register_files_sparse(&ring, 4) == 0)
        have |= RW_UF_FIXED_FILES; /* its SQEs' cancels are by user_data, as without it */
    if (ring.features & RWC_FEAT_RECVSEND_BUNDLE)
        have |= RW_UF_BUNDLES;
    io_uring_queue_exit(&ring);
    bool report_usage;
    if (rw__uring_send_zc_probe(&report_usage) == 0)
        have |= RW_UF_SEND_ZC;
    /* Starts (and ends) an SQ thread for a moment; EPERM before 5.11 without privilege. */
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SQPOLL;
    p.sq_thread_idle = 1;
    if (io_uring_queue_init_params(4, &ring, &p) == 0) {
        if (p.features & IORING_FEAT_SQPOLL_NONFIXED)
            have |= RW_UF_SQPOLL;
        io_uring_queue_exit(&ring);
    }
    return have;
}

int rw__uring_send_zc_probe(bool *report_usage)
{
    *report_usage = false;
    struct io_uring ring;
    if (io_uring_queue_init(2, &ring, 0) < 0)
        return -EOPNOTSUPP;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
    bool ops = probe && io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) &&
               io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
    if (probe)
        io_uring_free_probe(probe);
    if (ops) {
        /* The SQE is checked before its file is looked up: to fd -1 the send fails EBADF where
         * the kernel knows the flag, EINVAL where it does not. */
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_send_zc(sqe, -1, NULL, 0, 0, RWC_SEND_ZC_REPORT_USAGE);
        struct io_uring_cqe *cqe;
        if (io_uring_submit_and_wait(&ring, 1) >= 0 && io_uring_peek_cqe(&ring, &cqe) == 0)
            *report_usage = cqe->res == -EBADF;
    }
    io_uring_queue_exit(&ring); /* its notification, if one is still to come, goes with it */
    return ops ? 0 : -EOPNOTSUPP;
}

void rw__uring_features_print(FILE *out)
{
    uint32_t kernel = rw__uring_features_kernel();
    fprintf(out, "uring features (--uring-features; default: ");
    char names[256];
    rw__uring_features_format(RW_UF_DEFAULT, names, sizeof(names));
    fprintf(out, "%s):\n", names);
    for (size_t i = 0; i < FEATURE_COUNT; i++)
        fprintf(out, "  %-11s kernel %s: %-3s compiled: yes  default: %-3s  %s\n", features[i].name,
                features[i].kernel, (kernel & features[i].bit) ? "yes" : "no",
                (RW_UF_DEFAULT & features[i].bit) ? "on" : "off", features[i].why);
    /* Candidates measured or considered but not implemented: say so rather than stay silent. */
    fprintf(out, "  not implemented: direct descriptors (accept into the table) "
                 "(kernel-notes/22)\n");
}
