/*
 * Upkeep between turns: the --max-memory budget (close the largest
 * consumers, resume the paused, notice paused peers that left), giving
 * unused memory back to the kernel, and the liveness sweep for connections
 * the kernel closed without a completion saying so. Called by the loop
 * driver (loop.c) once a turn.
 */
#include "conn_policy.h"

#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "rw_assert.h"
#include "rw_limits.h"
#include "log.h"
#include "peer.h"

/* Memory this connection holds in the budget's terms: reassembly buffer and queued replies. */
static uint64_t conn_mem_bytes(const struct rw_conn *c)
{
    return c->reasm.cap + rw__outq_bytes(&c->outq);
}

/* ---- liveness sweep ---- */

/* The kernel's TCP state of c's socket (TCP_INFO: TCP_ESTABLISHED, TCP_CLOSE...), or -1. */
int rw__conn_tcp_state(const struct rw_conn *c)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    return getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 ? ti.tcpi_state : -1;
}

/*
 * A defense against a lost completion: a connection whose peer reset it can
 * stay open with its multishot recv armed and no CQE ever coming (seen on
 * kernel 6.18 under churn, about one RST mid-frame in 10^4; kernel-notes/15).
 * Once per RW_SWEEP_INTERVAL_MS, connections quiet for RW_SWEEP_QUIET_MS are
 * checked round-robin, a bounded number per sweep, with TCP_INFO; one the
 * kernel has already closed (TCP_CLOSE: reset, or timed out) is closed and
 * counted as reaped_dead. An active connection costs one comparison; an idle
 * mass at most RW_SWEEP_CHECKS_MAX getsockopt calls a second per worker.
 */
void rw__loop_sweep_dead(struct rw_loop *loop)
{
    if (loop->open_count == 0 || loop->now_ms < loop->sweep_next_ms)
        return;
    loop->sweep_next_ms = loop->now_ms + RW_SWEEP_INTERVAL_MS;
    /* Only slots ever used (below conn_hw) can hold a connection. */
    uint32_t visits = loop->conn_hw < RW_SWEEP_VISITS_MAX ? loop->conn_hw : RW_SWEEP_VISITS_MAX;
    uint32_t checks = 0;
    for (uint32_t v = 0; v < visits && checks < RW_SWEEP_CHECKS_MAX; v++) {
        if (loop->sweep_cursor >= loop->conn_hw)
            loop->sweep_cursor = 0;
        struct rw_conn *c = &loop->conns[loop->sweep_cursor++];
        if (c->state != RW_CONN_OPEN || c->last_active_ms + RW_SWEEP_QUIET_MS > loop->now_ms)
            continue;
        checks++;
        if (rw__conn_tcp_state(c) == TCP_CLOSE) {
            char peer[RW_PEER_TEXT_MAX];
            RW_DEBUG("conn %u (%s): the kernel closed it, no completion said so; closing", c->index,
                     rw__conn_peer(c, peer, sizeof(peer)));
            rw__conn_close(c, RW_STAT_REAPED_DEAD);
        }
    }
}

/* ---- memory: the budget and giving memory back ---- */

/*
 * This worker's open connections holding the most memory (at least RW_MEM_CLOSE_MIN_BYTES
 * each), largest first, at most max of them, in one pass over the table. Returns the count.
 */
static uint32_t largest_consumers(struct rw_loop *loop, struct rw_conn **out, uint32_t max)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < loop->conn_hw; i++) {
        struct rw_conn *c = &loop->conns[i];
        uint64_t bytes = conn_mem_bytes(c);
        if (c->state != RW_CONN_OPEN || bytes < RW_MEM_CLOSE_MIN_BYTES)
            continue;
        if (n == max && bytes <= conn_mem_bytes(out[n - 1]))
            continue;
        uint32_t at = n < max ? n++ : max - 1; /* the smallest kept drops out */
        while (at > 0 && conn_mem_bytes(out[at - 1]) < bytes) {
            out[at] = out[at - 1];
            at--;
        }
        out[at] = c;
    }
    return n;
}

/*
 * Over --max-memory: free the cached output blocks first (nobody uses them), then close this
 * worker's largest consumers until the excess is covered, as Redis's maxmemory-clients does.
 * Every worker sees the same shared total and closes its own, so the excess is covered at least
 * once over; a connection below RW_MEM_CLOSE_MIN_BYTES is never closed for memory.
 */
static void mem_reclaim(struct rw_loop *loop)
{
    if (rw__block_pool_trim(&loop->pool, 0, true) > 0)
        loop->trim_due_ms = loop->now_ms; /* give the freed blocks back to the kernel soon */
    uint64_t excess = rw__mem_excess(&loop->mem);
    if (excess == 0)
        return;
    struct rw_conn *victims[RW_MEM_CLOSES_PER_TURN];
    uint32_t count = largest_consumers(loop, victims, RW_MEM_CLOSES_PER_TURN);
    for (uint32_t i = 0; i < count && excess > 0; i++) {
        struct rw_conn *victim = victims[i];
        uint64_t bytes = conn_mem_bytes(victim);
        char peer[RW_PEER_TEXT_MAX];
        if (!loop->mem_warned) {
            loop->mem_warned = true;
            RW_WARN("--max-memory %llu MiB reached (%llu MiB in use): closing the connections "
                    "holding the most, largest first (conn %u (%s): %llu KiB)",
                    (unsigned long long)(loop->mem.budget->limit_bytes >> 20),
                    (unsigned long long)(rw__mem_reserved(&loop->mem) >> 20), victim->index,
                    rw__conn_peer(victim, peer, sizeof(peer)), (unsigned long long)(bytes >> 10));
        }
        RW_DEBUG("conn %u (%s): closed for memory (%llu KiB)", victim->index,
                 rw__conn_peer(victim, peer, sizeof(peer)), (unsigned long long)(bytes >> 10));
        rw__conn_close(victim, RW_STAT_CLOSED_MEMORY);
        excess = bytes >= excess ? 0 : excess - bytes;
    }
}

/*
 * A connection paused for memory does not read, so it would never see its peer leave: every
 * RW_MEM_PAUSED_CHECK_MS, ask TCP_INFO whether a FIN (CLOSE_WAIT) or RST (CLOSE) came. Such a
 * peer sends nothing more, so reading on costs at most what is left in the receive queue: it
 * resumes for good (RW_CONN_PEER_DONE) and its frame completes or its EOF closes it.
 */
static void mem_check_paused(struct rw_loop *loop)
{
    loop->mem_check_due_ms = loop->now_ms + RW_MEM_PAUSED_CHECK_MS;
    for (uint32_t i = 0, seen = 0; i < loop->conn_hw && seen < loop->mem_paused; i++) {
        struct rw_conn *c = &loop->conns[i];
        if (c->state != RW_CONN_OPEN || !(c->flags & RW_CONN_MEM_PAUSED))
            continue;
        seen++;
        int state = rw__conn_tcp_state(c);
        if (state != TCP_CLOSE_WAIT && state != TCP_CLOSE)
            continue;
        c->flags |= RW_CONN_PEER_DONE;
        rw__conn_resume(c, RW_CONN_MEM_PAUSED);
    }
}

/* Back under the budget's resume mark: read again from connections paused for memory. */
static void mem_resume(struct rw_loop *loop)
{
    loop->mem_warned = false;
    for (uint32_t i = 0; i < loop->conn_hw && loop->mem_paused > 0; i++) {
        struct rw_conn *c = &loop->conns[i];
        if (c->state == RW_CONN_OPEN && (c->flags & RW_CONN_MEM_PAUSED)) {
            c->frame_started_ms = loop->now_ms; /* the peer was not the one holding it up */
            rw__conn_resume(c, RW_CONN_MEM_PAUSED);
        }
    }
}

/*
 * Under AddressSanitizer malloc is ASan's, and glibc's malloc_trim is not intercepted: called
 * from a worker it initializes glibc's own, unused, malloc there (ptmalloc_init, which takes no
 * lock and attaches the calling thread to the main arena). Two workers trimming for the first
 * time at once (their trims fall due together) both attach, and at exit the second's detach
 * aborts: "malloc assertion failure in __malloc_arena_thread_freeres: a->attached_threads > 0"
 * (seen about once in 150 runs of test_features_sqpoll_with_every_feature, 2 workers).
 * ASan's allocator gives memory back by itself, so an ASan build skips the call and keeps
 * the decision and its counter.
 */
#if defined(__SANITIZE_ADDRESS__)
#define RW_MALLOC_TRIM() ((void)0)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RW_MALLOC_TRIM() ((void)0)
#endif
#endif
#ifndef RW_MALLOC_TRIM
#define RW_MALLOC_TRIM() ((void)malloc_trim(0))
#endif

/*
 * Give memory nobody needs back to the kernel, once per RW_TRIM_INTERVAL_MS: cached output
 * blocks that stayed unused for the whole interval are freed (down to a small floor), and once
 * at least RW_TRIM_MIN_BYTES were freed, malloc_trim returns the free pages of every arena
 * (freed 16 KiB blocks and reassembly buffers otherwise stay resident in glibc's heaps).
 * malloc_trim walks the arenas under their locks; once a second at most is cheap.
 */
static void loop_trim(struct rw_loop *loop)
{
    loop->trim_due_ms = loop->now_ms + RW_TRIM_INTERVAL_MS;
    (void)rw__block_pool_trim(&loop->pool, RW_BLOCK_POOL_CACHE_FLOOR, false);
    if (loop->mem.freed_bytes >= RW_TRIM_MIN_BYTES) {
        (void)rw__mem_take_freed(&loop->mem);
        RW_MALLOC_TRIM();
        rw__stat_add(&loop->stats, RW_STAT_MEM_TRIMS, 1);
    }
}

/* Is there memory a trim could give back (so an idle loop should wake for it)? */
bool rw__loop_trim_pending(const struct rw_loop *loop)
{
    return loop->pool.free_count > RW_BLOCK_POOL_CACHE_FLOOR ||
           loop->mem.freed_bytes >= RW_TRIM_MIN_BYTES;
}

void rw__loop_upkeep(struct rw_loop *loop)
{
    if (rw__mem_excess(&loop->mem) > 0)
        mem_reclaim(loop);
    else if ((loop->mem_paused > 0 || loop->mem_warned) && rw__mem_has_room(&loop->mem))
        mem_resume(loop);
    if (loop->mem_paused > 0 && loop->now_ms >= loop->mem_check_due_ms)
        mem_check_paused(loop);
    if (loop->now_ms >= loop->trim_due_ms)
        loop_trim(loop);
}
