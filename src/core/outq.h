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

struct rw_framing;

struct rw_block {
    struct rw_block *next;
    uint32_t start; /* first unsent byte */
    uint32_t end;   /* one past the last written byte */
    bool is_ext;    /* a struct rw_ext: the bytes are elsewhere, never written here */
    uint8_t data[]; /* RW_OUTQ_BLOCK_BYTES; an external entry (struct rw_ext) has none */
};

/*
 * Zero-copy replies: an entry that references memory the queue does not own
 * (a receive buffer the backend lent), bytes [start, end) of ext. When the
 * entry is consumed or cleared, release(owner, id) gives the memory back.
 * Entries come from a small per-pool cache; they are not charged to the
 * memory budget (the memory they point at is the backend's, preallocated).
 */
struct rw_ext {
    struct rw_block b; /* b.start/b.end index into ext; must be first */
    const uint8_t *ext;
    void (*release)(void *owner, uint32_t id);
    void *owner;
    uint32_t id;
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
    struct rw_ext *ext_free; /* cached external entries */
    struct rw_mem_account
        *acct; /* charged for every block allocated, cached or live; may be NULL */
};

struct rw_outq {
    struct rw_block *head;
    struct rw_block *tail;
    uint64_t bytes;     /* queued and not yet consumed */
    uint32_t ext_count; /* external entries queued (each holds a lent buffer) */
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
    q->ext_count = 0;
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
/* Append a_len bytes then b_len bytes (copied), both or neither. 0 or -ENOMEM (unchanged). */
int rw__outq_append2(struct rw_outq *q, struct rw_block_pool *pool, const void *a, size_t a_len,
                     const void *b, size_t b_len);
/* Append f's header for the payload, then the payload. 0, -ERANGE (the length does not fit
 * f's field) or -ENOMEM; the queue is unchanged on error. */
int rw__outq_append_frame(struct rw_outq *q, struct rw_block_pool *pool, const struct rw_framing *f,
                          const void *payload, uint32_t len);
/*
 * Append len bytes at data by reference (no copy): data stays valid until
 * release(owner, id) is called, once, when those bytes were sent or the queue
 * cleared. Bytes that continue the tail entry of the same (owner, id) extend
 * it and release is not called for them (returns 1: the caller's hold is not
 * needed). 0 when a new entry was queued, -ENOMEM when none could be had.
 */
int rw__outq_append_ext(struct rw_outq *q, struct rw_block_pool *pool, const uint8_t *data,
                        size_t len, void (*release)(void *owner, uint32_t id), void *owner,
                        uint32_t id);
/* A cached external entry, so the next rw__outq_append_ext cannot fail. 0 or -ENOMEM. */
int rw__outq_ext_reserve(struct rw_block_pool *pool);
/* Would data continue the tail external entry of (owner, id)? */
bool rw__outq_ext_continues(const struct rw_outq *q, const uint8_t *data, void *owner, uint32_t id);
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
