/*
 * Runtime probe of io_uring: can we create a ring at all (kernel, seccomp,
 * kernel.io_uring_disabled, RLIMIT_MEMLOCK), does it have the feature bits and
 * opcodes the uring backend needs, does a provided-buffer ring register, and
 * does a multishot recv really stay armed (a try-op on a socketpair). Each
 * failure names its remedy. See kernel-notes/01-probe-and-fallback.md.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "backends.h"
#include "uring_compat.h"

struct probe_result {
    int setup_rc;
    bool single_issuer;
    bool defer_taskrun;
    unsigned features;
    bool ops[IORING_OP_LAST];
    int buf_ring_rc;
    int multishot_rc; /* 0: multishot recv kept IORING_CQE_F_MORE */
};

static const struct {
    int op;
    const char *name;
} needed_ops[] = {
    {IORING_OP_ACCEPT, "ACCEPT"}, {IORING_OP_RECV, "RECV"},
    {IORING_OP_SEND, "SEND"},     {IORING_OP_SENDMSG, "SENDMSG"},
    {IORING_OP_READ, "READ"},     {IORING_OP_ASYNC_CANCEL, "ASYNC_CANCEL"},
};

static const struct {
    unsigned bit;
    const char *name;
} needed_features[] = {
    {IORING_FEAT_NODROP, "IORING_FEAT_NODROP (5.5)"},
    {IORING_FEAT_FAST_POLL, "IORING_FEAT_FAST_POLL (5.7)"},
    {IORING_FEAT_EXT_ARG, "IORING_FEAT_EXT_ARG (5.11)"},
};

static bool try_flags(unsigned flags)
{
    struct io_uring ring;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = flags;
    if (io_uring_queue_init_params(4, &ring, &p) < 0)
        return false;
    io_uring_queue_exit(&ring);
    return true;
}

/* Arm a multishot recv on a socketpair, write twice, expect two CQEs that both say F_MORE. */
static int try_multishot_recv(struct io_uring *ring)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    int err = 0;
    struct io_uring_buf_ring *br = rwc_setup_buf_ring(ring, 4, 7, 0, &err);
    if (!br)
        goto out_close;
    static char bufs[4][64];
    for (int i = 0; i < 4; i++)
        io_uring_buf_ring_add(br, bufs[i], sizeof(bufs[i]), (unsigned short)i,
                              io_uring_buf_ring_mask(4), i);
    io_uring_buf_ring_advance(br, 4);
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 7;
    io_uring_sqe_set_data64(sqe, 1);
    err = -EOPNOTSUPP;
    for (int round = 0; round < 2; round++) {
        struct io_uring_cqe *cqe;
        if (write(sv[1], "x", 1) != 1 || io_uring_submit_and_wait(ring, 1) < 0 ||
            io_uring_peek_cqe(ring, &cqe) < 0)
            goto out_cancel;
        bool more = cqe->flags & IORING_CQE_F_MORE;
        int res = cqe->res;
        io_uring_cqe_seen(ring, cqe);
        if (res < 0) {
            err = res;
            goto out_cancel;
        }
        if (!more)
            goto out_cancel;
    }
    err = 0;
out_cancel:
    close(sv[1]);
    close(sv[0]);
    io_uring_queue_exit(ring); /* tears down the armed recv and the buffer ring with it */
    return err;
out_close:
    close(sv[0]);
    close(sv[1]);
    io_uring_queue_exit(ring);
    return err;
}

static void probe_run(struct probe_result *r)
{
    memset(r, 0, sizeof(*r));
    struct io_uring ring;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    r->setup_rc = io_uring_queue_init_params(8, &ring, &p);
    if (r->setup_rc < 0)
        return;
    r->features = p.features;
    struct io_uring_probe *probe = io_uring_get_probe_ring(&ring);
    for (int op = 0; probe && op < IORING_OP_LAST; op++)
        r->ops[op] = io_uring_opcode_supported(probe, op);
    if (probe)
        io_uring_free_probe(probe);
    int err = 0;
    struct io_uring_buf_ring *br = rwc_setup_buf_ring(&ring, 8, 3, 0, &err);
    r->buf_ring_rc = br ? 0 : err;
    if (br)
        rwc_free_buf_ring(&ring, br, 8, 3);
    r->multishot_rc = try_multishot_recv(&ring); /* consumes the ring */
    r->single_issuer = try_flags(IORING_SETUP_SINGLE_ISSUER);
    r->defer_taskrun = try_flags(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
}

static int read_disabled_sysctl(void)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    int value = -1;
    if (f) {
        if (fscanf(f, "%d", &value) != 1)
            value = -1;
        fclose(f);
    }
    return value;
}

static int explain_setup_failure(int rc, char *reason, size_t bytes)
{
    int disabled = read_disabled_sysctl();
    if (rc == -ENOSYS)
        snprintf(reason, bytes,
                 "io_uring_setup: %s: the kernel lacks io_uring or a seccomp profile blocks it "
                 "(containers: allow io_uring_setup/io_uring_enter/io_uring_register; kernel "
                 "6.1+ recommended)",
                 strerror(-rc));
    else if (rc == -EPERM && disabled > 0)
        snprintf(reason, bytes,
                 "io_uring_setup: %s: kernel.io_uring_disabled=%d (set it to 0 with sysctl -w "
                 "kernel.io_uring_disabled=0, or use --backend epoll)",
                 strerror(-rc), disabled);
    else if (rc == -ENOMEM)
        snprintf(reason, bytes,
                 "io_uring_setup: %s: RLIMIT_MEMLOCK too low for the rings (raise it with "
                 "ulimit -l or LimitMEMLOCK=)",
                 strerror(-rc));
    else
        snprintf(reason, bytes, "io_uring_setup: %s (a seccomp profile or LSM may deny it)",
                 strerror(-rc));
    return rc;
}

int rw__uring_probe(char *reason, size_t reason_bytes)
{
    struct probe_result r;
    probe_run(&r);
    if (r.setup_rc < 0)
        return explain_setup_failure(r.setup_rc, reason, reason_bytes);
    for (size_t i = 0; i < sizeof(needed_features) / sizeof(needed_features[0]); i++) {
        if (!(r.features & needed_features[i].bit)) {
            snprintf(reason, reason_bytes, "kernel lacks %s; kernel 6.1+ needed",
                     needed_features[i].name);
            return -EOPNOTSUPP;
        }
    }
    for (size_t i = 0; i < sizeof(needed_ops) / sizeof(needed_ops[0]); i++) {
        if (!r.ops[needed_ops[i].op]) {
            snprintf(reason, reason_bytes,
                     "kernel lacks IORING_OP_%s (or a policy hides it); kernel 6.1+ needed",
                     needed_ops[i].name);
            return -EOPNOTSUPP;
        }
    }
    if (r.buf_ring_rc < 0) {
        snprintf(reason, reason_bytes,
                 "provided buffer ring registration failed: %s (kernel 5.19+ needed; check "
                 "RLIMIT_MEMLOCK)",
                 strerror(-r.buf_ring_rc));
        return r.buf_ring_rc;
    }
    if (r.multishot_rc < 0) {
        snprintf(reason, reason_bytes, "multishot recv does not work here: %s (kernel 6.0+ needed)",
                 strerror(-r.multishot_rc));
        return r.multishot_rc;
    }
    snprintf(reason, reason_bytes, "io_uring usable");
    return 0;
}

static const char *yes_no(bool b)
{
    return b ? "yes" : "no";
}

void rw__uring_probe_print(FILE *out)
{
    struct utsname u;
    if (uname(&u) == 0)
        fprintf(out, "kernel: %s %s\n", u.sysname, u.release);
    fprintf(out, "kernel.io_uring_disabled: %d\n", read_disabled_sysctl());
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0)
        fprintf(out, "RLIMIT_MEMLOCK: %llu bytes\n", (unsigned long long)rl.rlim_cur);
    struct probe_result r;
    probe_run(&r);
    fprintf(out, "io_uring_setup: %s%s%s\n", yes_no(r.setup_rc == 0), r.setup_rc ? " - " : "",
            r.setup_rc ? strerror(-r.setup_rc) : "");
    if (r.setup_rc == 0) {
        for (size_t i = 0; i < sizeof(needed_features) / sizeof(needed_features[0]); i++)
            fprintf(out, "%s: %s\n", needed_features[i].name,
                    yes_no(r.features & needed_features[i].bit));
        for (size_t i = 0; i < sizeof(needed_ops) / sizeof(needed_ops[0]); i++)
            fprintf(out, "IORING_OP_%s: %s\n", needed_ops[i].name, yes_no(r.ops[needed_ops[i].op]));
        fprintf(out, "provided buffer ring (5.19): %s\n", yes_no(r.buf_ring_rc == 0));
        fprintf(out, "multishot recv (6.0): %s\n", yes_no(r.multishot_rc == 0));
        fprintf(out, "multishot accept (5.19): %s\n", yes_no(r.ops[IORING_OP_ACCEPT]));
        fprintf(out, "IORING_SETUP_SINGLE_ISSUER (6.0): %s\n", yes_no(r.single_issuer));
        fprintf(out, "IORING_SETUP_DEFER_TASKRUN (6.1): %s\n", yes_no(r.defer_taskrun));
        fprintf(out, "recv bundles (6.10, --uring-features bundles): %s\n",
                yes_no(r.features & RWC_FEAT_RECVSEND_BUNDLE));
    }
    char reason[512];
    int rc = rw__uring_probe(reason, sizeof(reason));
    fprintf(out, "uring backend: %s%s%s\n", rc == 0 ? "usable" : "unavailable",
            rc == 0 ? "" : " - ", rc == 0 ? "" : reason);
}
