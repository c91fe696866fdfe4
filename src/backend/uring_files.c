/*
 * fixed-files (kernel-notes/25): each connection's socket also sits in the ring's sparse file
 * table at its connection slot index, put there at open and taken out at close, both with a
 * synchronous io_uring_register so the ordering against the slot's SQEs and its reuse is plain.
 * The table itself is registered in ur_init; the SQEs name the slot through ur_sqe_file.
 */
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"
#include "uring_impl.h"

/* Register the sparse table, one empty slot per connection slot; refused: the feature is off. */
void rw__ur_fixed_setup(struct ur_backend *ur, int worker_id)
{
    /* One empty slot per connection slot, same index: filled at open (kernel-notes/25). */
    int frc = io_uring_register_files_sparse(&ur->ring, ur->conn_cap);
    if (frc < 0) {
        ur->features &= ~RW_UF_FIXED_FILES;
        if (worker_id == 0)
            RW_INFO("uring feature fixed-files: a sparse table of %u files refused: %s (needs "
                    "5.19 and RLIMIT_NOFILE >= --max-conns); off",
                    ur->conn_cap, strerror(-frc));
    }
}

/*
 * fixed-files: put c's socket in the table at c->index, so that its SQEs skip the fd table
 * lookup (fget/fput) per operation. Synchronous (one io_uring_register), so the recv armed next
 * already finds it; the socket keeps its fd for everything done outside the ring. A failure
 * leaves this connection on its plain fd (kernel-notes/25).
 */
void rw__ur_fixed_install(struct ur_backend *ur, struct rw_conn *c)
{
    int fd = c->fd;
    int rc = io_uring_register_files_update(&ur->ring, c->index, &fd, 1);
    if (rc == 1) {
        uc(c)->flags |= UR_FIXED;
        rw__stat_add(ur->stats, RW_STAT_FIXED_FILES, 1);
        return;
    }
    if (!ur->fixed_warned) {
        ur->fixed_warned = true;
        RW_WARN("uring fixed-files: installing fd %d at slot %u: %s; that connection (and any "
                "other that fails) uses its plain fd",
                c->fd, c->index, strerror(rc < 0 ? -rc : EIO));
    }
}

/*
 * Close c's socket. Its fixed slot is emptied first, synchronously: only after the last CQE
 * (nothing in flight still names the slot) and before the slot can be reused, so a new
 * connection there never finds the old file, and the socket really closes with close(fd)
 * instead of living on in the table.
 */
void rw__ur_close_fd(struct ur_backend *ur, struct rw_conn *c)
{
    struct ur_conn *cs = uc(c);
    RW_ASSERT(cs->inflight == 0);
    if (cs->flags & UR_FIXED) {
        cs->flags &= ~UR_FIXED;
        int none = -1;
        int rc = io_uring_register_files_update(&ur->ring, c->index, &none, 1);
        if (rc != 1 && !ur->fixed_warned) {
            ur->fixed_warned = true;
            RW_WARN("uring fixed-files: emptying slot %u: %s; the socket stays open until the "
                    "slot is reused",
                    c->index, strerror(rc < 0 ? -rc : EIO));
        }
    }
    close(c->fd);
}
