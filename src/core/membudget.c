/* The process-wide memory budget and the workers' accounts (see membudget.h). */
#include "membudget.h"

void rw__mem_budget_init(struct rw_mem_budget *b, uint64_t limit_bytes)
{
    b->limit_bytes = limit_bytes;
    atomic_store_explicit(&b->reserved_bytes, 0, memory_order_relaxed);
}

void rw__mem_account_init(struct rw_mem_account *a, struct rw_mem_budget *b)
{
    RW_ASSERT(b != NULL);
    a->budget = b;
    a->used_bytes = 0;
    a->reserved_bytes = 0;
    a->freed_bytes = 0;
}

void rw__mem_account_destroy(struct rw_mem_account *a)
{
    RW_ASSERT(a->used_bytes == 0);
    atomic_fetch_sub_explicit(&a->budget->reserved_bytes, a->reserved_bytes, memory_order_relaxed);
    a->reserved_bytes = 0;
}
