/*
 * Per-connection output queue: replies are appended (copied) into fixed-size
 * blocks taken from a per-loop block pool, then gathered into iovecs for one
 * sendmsg/writev per loop turn; partial sends consume from the front.
 * No allocation per frame: a block holds many small replies.
 */
#ifndef RW_OUTQ_H
#define RW_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "rw_limits.h"

struct rw_block {
    struct rw_block *next;
    uint32_t start; /* first unsent byte */
    uint32_t end;   /* one past the last written byte */
    uint8_t data[]; /* RW_OUTQ_BLOCK_BYTES */
};

struct rw_mem_account;

/* Bytes one block costs the memory budget (its malloc). */
#define RW_BLOCK_ALLOC_BYTES (sizeof(struct rw_block) + RW_OUTQ_BLOCK_BYTES)

/* Per-loop cache of free blocks (single-threaded). */
struct rw_block_pool {
    struct rw_block *free;
    uint32_t free_count;
    uint32_t free_max;
    uint32_t free_low;    /* fewest cached blocks since the last rw__block_pool_trim */
    uint64_t blocks_live; /* blocks handed out and not yet returned */
    bool fail_malloc;     /* test hook: fresh blocks fail as if out of memory; cached ones serve */
    struct rw_mem_account
        *acct; /* charged for every block allocated, cached or live; may be NULL */
};

struct rw_outq {
    struct rw_block *head;
    struct rw_block *tail;
    uint64_t bytes; /* queued and not yet consumed */
};

void rw__block_pool_init(struct rw_block_pool *pool, uint32_t free_max);
/* Frees cached blocks; every queue must have been cleared first. */
void rw__block_pool_destroy(struct rw_block_pool *pool);
/*
 * Give back cached blocks nobody needed: those that stayed cached since the last call (the
 * cache's low-water mark), keeping at least keep; all down to keep when keep_all_excess.
 * Returns the number freed.
 */
uint32_t rw__block_pool_trim(struct rw_block_pool *pool, uint32_t keep, bool keep_all_excess);

static inline void rw__outq_init(struct rw_outq *q)
{
    q->head = NULL;
    q->tail = NULL;
    q->bytes = 0;
}
static inline bool rw__outq_empty(const struct rw_outq *q)
{
    return q->bytes == 0;
}
static inline uint64_t rw__outq_bytes(const struct rw_outq *q)
{
    return q->bytes;
}

/* Append len bytes (copied). Returns 0 or -ENOMEM (queue unchanged then). */
int rw__outq_append(struct rw_outq *q, struct rw_block_pool *pool, const void *data, size_t len);
/* Append a 4-byte big-endian header and the payload. 0 or -ENOMEM (unchanged). */
int rw__outq_append_frame(struct rw_outq *q, struct rw_block_pool *pool, const void *payload,
                          uint32_t len);
/* Fill up to iov_max iovecs from the front; returns the count (0 iff empty). */
size_t rw__outq_gather(const struct rw_outq *q, struct iovec *iov, size_t iov_max);
/* Drop n sent bytes from the front (n <= bytes), returning emptied blocks. */
void rw__outq_consume(struct rw_outq *q, struct rw_block_pool *pool, size_t n);
/* Drop everything. */
void rw__outq_clear(struct rw_outq *q, struct rw_block_pool *pool);

/* Watermarks: stop reading at >= high; resume once below high / 2. */
static inline bool rw__outq_above_high(const struct rw_outq *q, uint64_t high)
{
    return q->bytes >= high;
}
static inline bool rw__outq_below_low(const struct rw_outq *q, uint64_t high)
{
    return q->bytes < high / 2;
}

#endif
