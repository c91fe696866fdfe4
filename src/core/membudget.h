/*
 * The process-wide memory budget (--max-memory): one limit for reassembly
 * buffers and output blocks over all workers. Each worker charges its own
 * account with plain adds and takes budget from the shared counter in chunks
 * (RW_MEM_CHUNK_BYTES), so the hot path never touches a shared cache line;
 * the shared counter over-states what is in use by at most two chunks a
 * worker. Charging never fails: the budget is policy, decided by the loop
 * (stop growing buffers, close the largest consumers), not by allocation.
 */
#ifndef RW_MEMBUDGET_H
#define RW_MEMBUDGET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rw_assert.h"
#include "rw_limits.h"

/* Shared by every worker of a process. */
struct rw_mem_budget {
    uint64_t limit_bytes;            /* 0: unlimited */
    _Atomic uint64_t reserved_bytes; /* sum of the workers' reservations */
};

/* One worker's account (single-threaded). */
struct rw_mem_account {
    struct rw_mem_budget *budget;
    uint64_t used_bytes;     /* charged by this worker now */
    uint64_t reserved_bytes; /* taken from budget->reserved_bytes, >= used_bytes */
    uint64_t freed_bytes;    /* uncharged since the last rw__mem_take_freed (for trimming) */
};

void rw__mem_budget_init(struct rw_mem_budget *b, uint64_t limit_bytes);
void rw__mem_account_init(struct rw_mem_account *a, struct rw_mem_budget *b);
/* Return the account's reservation to the budget; everything must be uncharged first. */
void rw__mem_account_destroy(struct rw_mem_account *a);

static inline void rw__mem_reserve_slow(struct rw_mem_account *a, uint64_t need)
{
    uint64_t chunks = (need + RW_MEM_CHUNK_BYTES - 1) / RW_MEM_CHUNK_BYTES;
    uint64_t more = chunks * RW_MEM_CHUNK_BYTES;
    atomic_fetch_add_explicit(&a->budget->reserved_bytes, more, memory_order_relaxed);
    a->reserved_bytes += more;
}

static inline void rw__mem_charge(struct rw_mem_account *a, uint64_t bytes)
{
    if (!a)
        return;
    a->used_bytes += bytes;
    if (a->used_bytes > a->reserved_bytes)
        rw__mem_reserve_slow(a, a->used_bytes - a->reserved_bytes);
}

static inline void rw__mem_uncharge(struct rw_mem_account *a, uint64_t bytes)
{
    if (!a)
        return;
    RW_ASSERT(bytes <= a->used_bytes);
    a->used_bytes -= bytes;
    a->freed_bytes += bytes;
    /* Keep at most one spare chunk: give the rest back so other workers may use it. */
    if (a->reserved_bytes - a->used_bytes > 2 * RW_MEM_CHUNK_BYTES) {
        uint64_t spare = a->reserved_bytes - a->used_bytes - RW_MEM_CHUNK_BYTES;
        spare -= spare % RW_MEM_CHUNK_BYTES;
        atomic_fetch_sub_explicit(&a->budget->reserved_bytes, spare, memory_order_relaxed);
        a->reserved_bytes -= spare;
    }
}

/* Bytes the whole process has reserved (an over-estimate of use by <= 2 chunks a worker). */
static inline uint64_t rw__mem_reserved(const struct rw_mem_account *a)
{
    return atomic_load_explicit(&a->budget->reserved_bytes, memory_order_relaxed);
}

/* By how much the process is over its budget (0: within it, or unlimited). */
static inline uint64_t rw__mem_excess(const struct rw_mem_account *a)
{
    uint64_t limit = a->budget->limit_bytes;
    uint64_t reserved = rw__mem_reserved(a);
    return limit && reserved > limit ? reserved - limit : 0;
}

/* Below the resume mark (7/8 of the budget), or unlimited. */
static inline bool rw__mem_has_room(const struct rw_mem_account *a)
{
    uint64_t limit = a->budget->limit_bytes;
    return !limit || rw__mem_reserved(a) < limit - limit / 8;
}

/* Bytes uncharged since the last call, then reset. */
static inline uint64_t rw__mem_take_freed(struct rw_mem_account *a)
{
    uint64_t n = a->freed_bytes;
    a->freed_bytes = 0;
    return n;
}

#endif
