/*
 * The output queue and its block pool (see outq.h). Appends copy into the
 * tail block and spill into new ones; gather hands out [start, end) of each
 * block; consume advances from the front and returns emptied blocks.
 */
#include "outq.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ringwire/frame.h>

#include "rw_assert.h"
#include "membudget.h"
#include "rw_limits.h"

void rw__block_pool_init(struct rw_block_pool *pool, uint32_t free_max)
{
    pool->free = NULL;
    pool->free_count = 0;
    pool->free_max = free_max;
    pool->free_low = 0;
    pool->blocks_live = 0;
    pool->fail_malloc = false;
    pool->acct = NULL;
    pool->ext_free = NULL;
}

static void block_free(struct rw_block_pool *pool, struct rw_block *b)
{
    free(b);
    rw__mem_uncharge(pool->acct, RW_BLOCK_ALLOC_BYTES);
}

void rw__block_pool_destroy(struct rw_block_pool *pool)
{
    RW_ASSERT(pool->blocks_live == 0);
    while (pool->free) {
        struct rw_block *b = pool->free;
        pool->free = b->next;
        block_free(pool, b);
    }
    pool->free_count = 0;
    pool->free_low = 0;
    while (pool->ext_free) {
        struct rw_ext *e = pool->ext_free;
        pool->ext_free = (struct rw_ext *)e->b.next;
        free(e);
    }
}

uint32_t rw__block_pool_trim(struct rw_block_pool *pool, uint32_t keep, bool keep_all_excess)
{
    uint32_t unused = keep_all_excess ? pool->free_count : pool->free_low;
    uint32_t target = pool->free_count - (unused > pool->free_count ? pool->free_count : unused);
    if (target < keep)
        target = keep;
    uint32_t freed = 0;
    while (pool->free_count > target) {
        struct rw_block *b = pool->free;
        pool->free = b->next;
        pool->free_count--;
        block_free(pool, b);
        freed++;
    }
    pool->free_low = pool->free_count;
    return freed;
}

static struct rw_block *block_get(struct rw_block_pool *pool)
{
    struct rw_block *b = pool->free;
    if (b) {
        pool->free = b->next;
        pool->free_count--;
        if (pool->free_count < pool->free_low)
            pool->free_low = pool->free_count;
    } else {
        if (pool->fail_malloc)
            return NULL;
        b = malloc(RW_BLOCK_ALLOC_BYTES);
        if (!b)
            return NULL;
        rw__mem_charge(pool->acct, RW_BLOCK_ALLOC_BYTES);
    }
    b->next = NULL;
    b->start = 0;
    b->end = 0;
    b->is_ext = false;
    pool->blocks_live++;
    return b;
}

static bool block_is_ext(const struct rw_block *b)
{
    return b->is_ext;
}

static const uint8_t *block_bytes(const struct rw_block *b)
{
    return b->is_ext ? ((const struct rw_ext *)b)->ext : b->data;
}

static void ext_put(struct rw_block_pool *pool, struct rw_ext *e)
{
    e->release(e->owner, e->id);
    e->b.next = (struct rw_block *)pool->ext_free;
    pool->ext_free = e;
}

static void block_put(struct rw_block_pool *pool, struct rw_block *b)
{
    if (block_is_ext(b)) {
        ext_put(pool, (struct rw_ext *)b);
        return;
    }
    RW_ASSERT(pool->blocks_live > 0);
    pool->blocks_live--;
    if (pool->free_count < pool->free_max) {
        b->next = pool->free;
        pool->free = b;
        pool->free_count++;
    } else {
        block_free(pool, b);
    }
}

/* Room for len more bytes: link enough blocks at the tail first, so a failure changes nothing.
 * Inline, like outq_copy: a reply that fits the tail then costs no calls and no block walk. */
static inline int outq_reserve(struct rw_outq *q, struct rw_block_pool *pool, size_t len)
{
    size_t room = q->tail && !q->tail->is_ext ? RW_OUTQ_BLOCK_BYTES - q->tail->end : 0;
    struct rw_block *first = NULL;
    struct rw_block *last = NULL;
    while (room < len) {
        struct rw_block *b = block_get(pool);
        if (!b) {
            while (first) {
                struct rw_block *next = first->next;
                block_put(pool, first);
                first = next;
            }
            return -ENOMEM;
        }
        if (last)
            last->next = b;
        else
            first = b;
        last = b;
        room += RW_OUTQ_BLOCK_BYTES;
    }
    if (first) {
        if (q->tail)
            q->tail->next = first;
        else
            q->head = first;
    }
    return 0;
}

static inline void outq_copy(struct rw_outq *q, const uint8_t *data, size_t len)
{
    struct rw_block *b = q->tail ? q->tail : q->head;
    while (len > 0) {
        if (b->is_ext || b->end == RW_OUTQ_BLOCK_BYTES)
            b = b->next;
        RW_ASSERT(b != NULL);
        size_t n = RW_OUTQ_BLOCK_BYTES - b->end;
        n = n < len ? n : len;
        memcpy(b->data + b->end, data, n);
        b->end += (uint32_t)n;
        data += n;
        len -= n;
        q->bytes += n;
        q->tail = b;
    }
}

int rw__outq_append2(struct rw_outq *q, struct rw_block_pool *pool, const void *a, size_t a_len,
                     const void *b, size_t b_len)
{
    size_t len = a_len + b_len;
    if (len == 0)
        return 0;
    if (outq_reserve(q, pool, len) < 0)
        return -ENOMEM;
    if (a_len)
        outq_copy(q, a, a_len);
    if (b_len)
        outq_copy(q, b, b_len);
    return 0;
}

int rw__outq_append(struct rw_outq *q, struct rw_block_pool *pool, const void *data, size_t len)
{
    return rw__outq_append2(q, pool, data, len, NULL, 0);
}

int rw__outq_append_frame(struct rw_outq *q, struct rw_block_pool *pool, const struct rw_framing *f,
                          const void *payload, uint32_t len)
{
    uint8_t header[RW_FRAMING_HEADER_MAX];
    int hl = rw_framing_put_header(f, header, len);
    if (hl < 0)
        return hl;
    return rw__outq_append2(q, pool, header, (size_t)hl, payload, len);
}

bool rw__outq_ext_continues(const struct rw_outq *q, const uint8_t *data, void *owner, uint32_t id)
{
    const struct rw_block *t = q->tail;
    if (!t || !t->is_ext)
        return false;
    const struct rw_ext *e = (const struct rw_ext *)t;
    return e->owner == owner && e->id == id && e->ext + e->b.end == data;
}

int rw__outq_ext_reserve(struct rw_block_pool *pool)
{
    if (pool->ext_free)
        return 0;
    struct rw_ext *e = malloc(sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->b.next = NULL;
    pool->ext_free = e;
    return 0;
}

int rw__outq_append_ext(struct rw_outq *q, struct rw_block_pool *pool, const uint8_t *data,
                        size_t len, void (*release)(void *owner, uint32_t id), void *owner,
                        uint32_t id)
{
    RW_ASSERT(len > 0 && len <= UINT32_MAX);
    if (rw__outq_ext_continues(q, data, owner, id)) {
        /* Pipelined frames of one receive buffer: one entry, one iovec, one hold. */
        q->tail->end += (uint32_t)len;
        q->bytes += len;
        return 1;
    }
    struct rw_ext *e = pool->ext_free;
    if (e) {
        pool->ext_free = (struct rw_ext *)e->b.next;
    } else {
        e = malloc(sizeof(*e)); /* once per entry ever in use at the same time, then cached */
        if (!e)
            return -ENOMEM;
    }
    e->b.next = NULL;
    e->b.start = 0;
    e->b.end = (uint32_t)len;
    e->b.is_ext = true;
    e->ext = data;
    e->release = release;
    e->owner = owner;
    e->id = id;
    if (q->tail)
        q->tail->next = &e->b;
    else
        q->head = &e->b;
    q->tail = &e->b;
    q->bytes += len;
    q->ext_count++;
    return 0;
}

size_t rw__outq_gather(const struct rw_outq *q, struct iovec *iov, size_t iov_max)
{
    RW_ASSERT(iov_max > 0);
    size_t count = 0;
    for (struct rw_block *b = q->head; b && count < iov_max; b = b->next) {
        if (b->end == b->start)
            break; /* reserved, never written: only past the tail */
        iov[count].iov_base = (void *)(uintptr_t)(block_bytes(b) + b->start);
        iov[count].iov_len = b->end - b->start;
        count++;
        if (b == q->tail)
            break;
    }
    return count;
}

void rw__outq_consume(struct rw_outq *q, struct rw_block_pool *pool, size_t n)
{
    RW_ASSERT(n <= q->bytes);
    q->bytes -= n;
    while (n > 0) {
        struct rw_block *b = q->head;
        RW_ASSERT(b != NULL);
        size_t avail = b->end - b->start;
        if (n < avail) {
            b->start += (uint32_t)n;
            return;
        }
        n -= avail;
        q->head = b->next;
        if (b == q->tail)
            q->tail = NULL;
        if (b->is_ext)
            q->ext_count--;
        block_put(pool, b);
    }
    if (q->bytes == 0)
        rw__outq_clear(q, pool);
}

void rw__outq_clear(struct rw_outq *q, struct rw_block_pool *pool)
{
    while (q->head) {
        struct rw_block *b = q->head;
        q->head = b->next;
        block_put(pool, b);
    }
    q->tail = NULL;
    q->bytes = 0;
    q->ext_count = 0;
}
