/*
 * Unit tests for the output queue and its block pool (src/core/outq.c):
 * bytes survive append/gather/consume across block boundaries in any
 * chunking, frames get a big-endian header, gather respects iov_max, blocks
 * go back to the pool (whose cache is capped), the watermarks flip where the
 * loop expects, and an append that runs out of memory leaves the queue as it
 * was (the pool's fail_malloc test hook stands in for malloc failing); a
 * trim frees only the cached blocks nobody took since the last trim, and the
 * memory budget is charged for every block allocated until it is freed.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ringwire/frame.h>

#include "membudget.h"
#include "outq.h"
#include "rw_limits.h"

static const struct rw_framing DEF = RW_FRAMING_DEFAULT;

#define BLOCK   ((size_t)RW_OUTQ_BLOCK_BYTES)
#define IOV_CAP 1024u

/* A deterministic byte stream: byte i of the stream is pattern(i). */
static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 131u + (i >> 8) * 7u + 3u);
}

static void fill(uint8_t *buf, size_t from, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern(from + i);
}

/* Everything queued, in order, via gather; returns its length. */
static size_t snapshot(const struct rw_outq *q, uint8_t *out, size_t cap)
{
    static struct iovec iov[IOV_CAP];
    size_t count = rw__outq_gather(q, iov, IOV_CAP);
    size_t len = 0;
    for (size_t i = 0; i < count; i++) {
        ck_assert_uint_gt(iov[i].iov_len, 0);
        ck_assert_uint_le(len + iov[i].iov_len, cap);
        memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    ck_assert_uint_eq(count == 0, rw__outq_empty(q));
    return len;
}

static void assert_stream(const struct rw_outq *q, size_t from, size_t len)
{
    uint8_t *got = malloc(len + 1);
    uint8_t *want = malloc(len + 1);
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_nonnull(want);
    ck_assert_uint_eq(rw__outq_bytes(q), len);
    ck_assert_uint_eq(snapshot(q, got, len + 1), len);
    fill(want, from, len);
    ck_assert_mem_eq(got, want, len);
    free(got);
    free(want);
}

START_TEST(test_outq_round_trip)
{
    const size_t sizes[] = {1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 7, 0, 5, 2 * BLOCK};
    struct rw_block_pool pool;
    struct rw_outq q;
    rw__block_pool_init(&pool, 4);
    rw__outq_init(&q);
    ck_assert(rw__outq_empty(&q));

    size_t total = 0;
    uint8_t *buf = malloc(4 * BLOCK);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        fill(buf, total, sizes[i]);
        ck_assert_int_eq(rw__outq_append(&q, &pool, buf, sizes[i]), 0);
        total += sizes[i];
        assert_stream(&q, 0, total);
    }
    /* Blocks are filled before new ones are taken. */
    ck_assert_uint_eq(pool.blocks_live, (total + BLOCK - 1) / BLOCK);
    rw__outq_consume(&q, &pool, total);
    ck_assert(rw__outq_empty(&q));
    ck_assert_uint_eq(pool.blocks_live, 0);
    ck_assert_ptr_null(q.head);
    ck_assert_ptr_null(q.tail);

    /* The emptied queue takes appends again. */
    fill(buf, 0, 10);
    ck_assert_int_eq(rw__outq_append(&q, &pool, buf, 10), 0);
    assert_stream(&q, 0, 10);
    rw__outq_clear(&q, &pool);
    ck_assert_uint_eq(pool.blocks_live, 0);
    free(buf);
    rw__block_pool_destroy(&pool);
}
END_TEST

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

START_TEST(test_outq_append_frame_big_endian)
{
    struct rw_block_pool pool;
    struct rw_outq q;
    rw__block_pool_init(&pool, 4);
    rw__outq_init(&q);
    const uint32_t len = 0x00010203u; /* spans blocks; distinct header bytes */
    uint8_t *payload = malloc(len);
    uint8_t *got = malloc(len + 64);
    ck_assert_ptr_nonnull(payload);
    ck_assert_ptr_nonnull(got);
    fill(payload, 0, len);

    ck_assert_int_eq(rw__outq_append_frame(&q, &pool, &DEF, payload, len), 0);
    ck_assert_uint_eq(rw__outq_bytes(&q), RW_FRAME_HEADER_BYTES + len);
    ck_assert_uint_eq(snapshot(&q, got, len + 64), RW_FRAME_HEADER_BYTES + len);
    const uint8_t header[] = {0x00, 0x01, 0x02, 0x03};
    ck_assert_mem_eq(got, header, 4);
    ck_assert_mem_eq(got + 4, payload, len);
    rw__outq_clear(&q, &pool);

    /* A header split across a block boundary, then an empty frame. */
    ck_assert_int_eq(rw__outq_append(&q, &pool, payload, BLOCK - 2), 0);
    ck_assert_int_eq(rw__outq_append_frame(&q, &pool, &DEF, payload, 0x2a), 0);
    ck_assert_int_eq(rw__outq_append_frame(&q, &pool, &DEF, NULL, 0), 0);
    size_t n = snapshot(&q, got, len + 64);
    ck_assert_uint_eq(n, BLOCK - 2 + 4 + 0x2a + 4);
    ck_assert_uint_eq(be32(got + BLOCK - 2), 0x2a);
    ck_assert_mem_eq(got + BLOCK + 2, payload, 0x2a);
    ck_assert_uint_eq(be32(got + BLOCK + 2 + 0x2a), 0);

    /* The header of a length with the top bit set. */
    rw__outq_clear(&q, &pool);
    uint8_t hdr[RW_FRAME_HEADER_BYTES];
    rw_frame_put_header(hdr, 0xfedcba98u);
    const uint8_t want[] = {0xfe, 0xdc, 0xba, 0x98};
    ck_assert_mem_eq(hdr, want, 4);

    free(payload);
    free(got);
    rw__block_pool_destroy(&pool);
}
END_TEST

/* Another framing's header (offset bytes, 2-byte little-endian, adjust -3); a length the field
 * cannot express is -ERANGE with the queue unchanged. */
START_TEST(test_outq_append_frame_framing)
{
    struct rw_block_pool pool;
    struct rw_outq q;
    rw__block_pool_init(&pool, 4);
    rw__outq_init(&q);
    const struct rw_framing f = {
        .length_bytes = 2, .order = RW_LENGTH_LITTLE, .offset = 1, .adjust = -3};
    uint8_t got[64];
    ck_assert_int_eq(rw__outq_append_frame(&q, &pool, &f, "abc", 3), 0);
    ck_assert_uint_eq(snapshot(&q, got, sizeof(got)), 6);
    const uint8_t want[] = {0, 6, 0, 'a', 'b', 'c'}; /* value 3 - (-3) = 6 */
    ck_assert_mem_eq(got, want, sizeof(want));
    const uint8_t big[] = {0};
    ck_assert_int_eq(rw__outq_append_frame(&q, &pool, &f, big, 65533), -ERANGE);
    const struct rw_framing pos = {.length_bytes = 1, .order = RW_LENGTH_BIG, .adjust = 2};
    ck_assert_int_eq(rw__outq_append_frame(&q, &pool, &pos, big, 1), -ERANGE);
    ck_assert_uint_eq(rw__outq_bytes(&q), 6);
    rw__outq_clear(&q, &pool);
    rw__block_pool_destroy(&pool);
}
END_TEST

START_TEST(test_outq_gather_bounded_in_order)
{
    struct rw_block_pool pool;
    struct rw_outq q;
    struct iovec iov[16];
    rw__block_pool_init(&pool, 16);
    rw__outq_init(&q);
    ck_assert_uint_eq(rw__outq_gather(&q, iov, 16), 0);

    const size_t total = 10 * BLOCK - 123;
    uint8_t *buf = malloc(total);
    ck_assert_ptr_nonnull(buf);
    fill(buf, 0, total);
    ck_assert_int_eq(rw__outq_append(&q, &pool, buf, total), 0);
    rw__outq_consume(&q, &pool, 77); /* the first segment starts mid-block */

    for (size_t iov_max = 1; iov_max <= 16; iov_max++) {
        memset(iov, 0, sizeof(iov));
        size_t count = rw__outq_gather(&q, iov, iov_max);
        ck_assert_uint_eq(count, iov_max < 10 ? iov_max : 10);
        size_t off = 77;
        for (size_t i = 0; i < count; i++) {
            ck_assert_uint_gt(iov[i].iov_len, 0);
            ck_assert_uint_le(iov[i].iov_len, BLOCK);
            ck_assert_mem_eq(iov[i].iov_base, buf + off, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        ck_assert_uint_le(off - 77, rw__outq_bytes(&q));
        if (count < iov_max)
            ck_assert_uint_eq(off, total); /* not bounded: covered everything */
        for (size_t i = count; i < 16; i++)
            ck_assert_ptr_null(iov[i].iov_base); /* nothing written past count */
    }
    rw__outq_clear(&q, &pool);
    free(buf);
    rw__block_pool_destroy(&pool);
}
END_TEST

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

/* A sender that writes what gather offers, cut short at a random point. */
static size_t send_some(struct rw_outq *q, struct rw_block_pool *pool, uint8_t *sink, size_t want,
                        size_t iov_max)
{
    struct iovec iov[64];
    size_t count = rw__outq_gather(q, iov, iov_max);
    size_t n = 0;
    for (size_t i = 0; i < count && n < want; i++) {
        size_t take = iov[i].iov_len < want - n ? iov[i].iov_len : want - n;
        memcpy(sink + n, iov[i].iov_base, take);
        n += take;
    }
    rw__outq_consume(q, pool, n);
    return n;
}

START_TEST(test_outq_partial_consume_random)
{
    const size_t stream_len = 8u << 20;
    uint8_t *stream = malloc(stream_len);
    uint8_t *sent = malloc(stream_len);
    ck_assert_ptr_nonnull(stream);
    ck_assert_ptr_nonnull(sent);
    fill(stream, 0, stream_len);

    for (uint64_t seed0 = 1; seed0 <= 4; seed0++) {
        uint64_t seed = seed0 * 0x9e3779b97f4a7c15ull;
        struct rw_block_pool pool;
        struct rw_outq q;
        rw__block_pool_init(&pool, 8);
        rw__outq_init(&q);
        size_t appended = 0;
        size_t drained = 0;
        while (drained < stream_len) {
            uint64_t r = xorshift64(&seed);
            if (appended < stream_len && r % 3 != 0) {
                /* Mostly small replies, sometimes one over several blocks. */
                size_t len = r % 8 == 1 ? (r >> 8) % (3 * BLOCK) : (r >> 8) % 300;
                if (appended + len > stream_len)
                    len = stream_len - appended;
                ck_assert_int_eq(rw__outq_append(&q, &pool, stream + appended, len), 0);
                appended += len;
            } else {
                size_t want = (r >> 8) % (2 * BLOCK + 1);
                if (appended == stream_len)
                    want += 1;
                size_t iov_max = 1 + (r >> 40) % 64;
                drained += send_some(&q, &pool, sent + drained, want, iov_max);
            }
            ck_assert_uint_eq(rw__outq_bytes(&q), appended - drained);
            ck_assert_uint_eq(rw__outq_empty(&q), appended == drained);
            /* Live blocks stay proportional to the bytes queued (+ the partly sent head). */
            ck_assert_uint_le(pool.blocks_live, (appended - drained + BLOCK - 1) / BLOCK + 1);
            ck_assert_uint_le(pool.free_count, pool.free_max);
        }
        ck_assert_mem_eq(sent, stream, stream_len);
        ck_assert_uint_eq(pool.blocks_live, 0);
        rw__block_pool_destroy(&pool);
    }
    free(stream);
    free(sent);
}
END_TEST

START_TEST(test_outq_blocks_return_to_pool)
{
    struct rw_block_pool pool;
    struct rw_outq a;
    struct rw_outq b;
    rw__block_pool_init(&pool, 2);
    rw__outq_init(&a);
    rw__outq_init(&b);
    uint8_t *buf = malloc(5 * BLOCK);
    ck_assert_ptr_nonnull(buf);
    fill(buf, 0, 5 * BLOCK);

    ck_assert_int_eq(rw__outq_append(&a, &pool, buf, 5 * BLOCK), 0);
    ck_assert_uint_eq(pool.blocks_live, 5);
    ck_assert_uint_eq(pool.free_count, 0);

    /* consume returns each emptied block as soon as it empties. */
    rw__outq_consume(&a, &pool, BLOCK - 1);
    ck_assert_uint_eq(pool.blocks_live, 5);
    rw__outq_consume(&a, &pool, 1);
    ck_assert_uint_eq(pool.blocks_live, 4);
    ck_assert_uint_eq(pool.free_count, 1);
    rw__outq_consume(&a, &pool, 2 * BLOCK + 10);
    ck_assert_uint_eq(pool.blocks_live, 2);
    ck_assert_uint_eq(pool.free_count, 2); /* capped: the third was freed */

    /* A second queue reuses cached blocks before allocating. */
    ck_assert_int_eq(rw__outq_append(&b, &pool, buf, BLOCK + 1), 0);
    ck_assert_uint_eq(pool.blocks_live, 4);
    ck_assert_uint_eq(pool.free_count, 0);

    rw__outq_clear(&a, &pool);
    ck_assert(rw__outq_empty(&a));
    ck_assert_ptr_null(a.head);
    ck_assert_ptr_null(a.tail);
    ck_assert_uint_eq(pool.blocks_live, 2);
    ck_assert_uint_eq(pool.free_count, 2);
    rw__outq_consume(&b, &pool, BLOCK + 1);
    ck_assert_uint_eq(pool.blocks_live, 0);
    ck_assert_uint_eq(pool.free_count, 2);
    rw__outq_clear(&b, &pool); /* clearing an empty queue is harmless */
    ck_assert_uint_eq(pool.blocks_live, 0);

    /* A pool that caches nothing frees every block it gets back. */
    struct rw_block_pool none;
    rw__block_pool_init(&none, 0);
    ck_assert_int_eq(rw__outq_append(&a, &none, buf, 3 * BLOCK), 0);
    rw__outq_clear(&a, &none);
    ck_assert_uint_eq(none.blocks_live, 0);
    ck_assert_uint_eq(none.free_count, 0);
    ck_assert_ptr_null(none.free);
    rw__block_pool_destroy(&none);

    free(buf);
    rw__block_pool_destroy(&pool);
    ck_assert_uint_eq(pool.free_count, 0);
    ck_assert_ptr_null(pool.free);
}
END_TEST

START_TEST(test_outq_pool_trim_frees_unused)
{
    struct rw_mem_budget budget;
    struct rw_mem_account acct;
    rw__mem_budget_init(&budget, 0);
    rw__mem_account_init(&acct, &budget);
    struct rw_block_pool pool;
    rw__block_pool_init(&pool, 16);
    pool.acct = &acct;
    struct rw_outq q;
    rw__outq_init(&q);
    uint8_t *buf = malloc(10 * BLOCK);
    ck_assert_ptr_nonnull(buf);
    fill(buf, 0, 10 * BLOCK);

    ck_assert_int_eq(rw__outq_append(&q, &pool, buf, 10 * BLOCK), 0);
    ck_assert_uint_eq(acct.used_bytes, 10 * RW_BLOCK_ALLOC_BYTES);
    rw__outq_clear(&q, &pool);
    ck_assert_uint_eq(pool.free_count, 10);
    ck_assert_uint_eq(acct.used_bytes, 10 * RW_BLOCK_ALLOC_BYTES); /* cached blocks are held */

    /* The cache was empty at some point since the last trim: every block was needed. */
    ck_assert_uint_eq(rw__block_pool_trim(&pool, 2, false), 0);
    ck_assert_uint_eq(pool.free_count, 10);
    /* Three taken and returned: the other seven stayed unused for the interval. */
    ck_assert_int_eq(rw__outq_append(&q, &pool, buf, 3 * BLOCK), 0);
    rw__outq_clear(&q, &pool);
    ck_assert_uint_eq(rw__block_pool_trim(&pool, 2, false), 7);
    ck_assert_uint_eq(pool.free_count, 3);
    ck_assert_uint_eq(acct.used_bytes, 3 * RW_BLOCK_ALLOC_BYTES);
    /* An idle interval: all unused, but the floor is kept. */
    ck_assert_uint_eq(rw__block_pool_trim(&pool, 2, false), 1);
    ck_assert_uint_eq(pool.free_count, 2);
    /* Under memory pressure: everything cached goes. */
    ck_assert_uint_eq(rw__block_pool_trim(&pool, 0, true), 2);
    ck_assert_uint_eq(pool.free_count, 0);
    ck_assert_uint_eq(acct.used_bytes, 0);
    ck_assert_uint_ge(acct.freed_bytes, 10 * RW_BLOCK_ALLOC_BYTES);

    free(buf);
    rw__block_pool_destroy(&pool);
    rw__mem_account_destroy(&acct);
    ck_assert_uint_eq(budget.reserved_bytes, 0);
}
END_TEST

START_TEST(test_outq_watermarks)
{
    const uint64_t high = 1000;
    struct rw_block_pool pool;
    struct rw_outq q;
    uint8_t buf[1000];
    rw__block_pool_init(&pool, 1);
    rw__outq_init(&q);
    fill(buf, 0, sizeof(buf));

    ck_assert(!rw__outq_above_high(&q, high));
    ck_assert(rw__outq_below_low(&q, high));
    ck_assert_int_eq(rw__outq_append(&q, &pool, buf, 999), 0);
    ck_assert(!rw__outq_above_high(&q, high));
    ck_assert_int_eq(rw__outq_append(&q, &pool, buf, 1), 0);
    ck_assert(rw__outq_above_high(&q, high)); /* >= high */
    ck_assert(!rw__outq_below_low(&q, high));
    rw__outq_consume(&q, &pool, 500); /* 500 == high / 2: not below */
    ck_assert(!rw__outq_above_high(&q, high));
    ck_assert(!rw__outq_below_low(&q, high));
    rw__outq_consume(&q, &pool, 1); /* 499 */
    ck_assert(rw__outq_below_low(&q, high));
    rw__outq_clear(&q, &pool);
    ck_assert(rw__outq_below_low(&q, high));
    rw__block_pool_destroy(&pool);
}
END_TEST

START_TEST(test_outq_enomem_leaves_queue_unchanged)
{
    struct rw_block_pool pool;
    struct rw_outq q;
    struct rw_outq spare;
    rw__block_pool_init(&pool, 8);
    rw__outq_init(&q);
    rw__outq_init(&spare);
    uint8_t *buf = malloc(4 * BLOCK);
    ck_assert_ptr_nonnull(buf);
    fill(buf, 0, 4 * BLOCK);

    /* One cached block in the pool, a queue with a partly filled tail. */
    ck_assert_int_eq(rw__outq_append(&q, &pool, buf, BLOCK + 100), 0);
    rw__outq_consume(&q, &pool, 50);
    ck_assert_int_eq(rw__outq_append(&spare, &pool, buf, 1), 0);
    rw__outq_clear(&spare, &pool);
    ck_assert_uint_eq(pool.free_count, 1);
    const size_t queued = BLOCK + 50;
    const struct rw_block *head = q.head;
    const struct rw_block *tail = q.tail;
    pool.fail_malloc = true;

    /* Needs the cached block and two fresh ones: fails whole, the cached one goes back. */
    const size_t big = 3 * BLOCK;
    ck_assert_int_eq(rw__outq_append(&q, &pool, buf, big), -ENOMEM);
    ck_assert_int_eq(rw__outq_append_frame(&q, &pool, &DEF, buf, (uint32_t)big), -ENOMEM);
    ck_assert_uint_eq(rw__outq_bytes(&q), queued);
    ck_assert_ptr_eq(q.head, head);
    ck_assert_ptr_eq(q.tail, tail);
    ck_assert_ptr_null(q.tail->next);
    ck_assert_uint_eq(pool.blocks_live, 2);
    ck_assert_uint_eq(pool.free_count, 1);
    assert_stream(&q, 50, queued);

    /* A frame whose payload fits the tail but whose header pushes it over one more block. */
    const size_t tail_room = BLOCK - q.tail->end;
    ck_assert_int_eq(rw__outq_append_frame(&q, &pool, &DEF, buf, (uint32_t)(tail_room + BLOCK - 3)),
                     -ENOMEM);
    assert_stream(&q, 50, queued);
    ck_assert_uint_eq(pool.free_count, 1);

    /* What fits the tail plus the cached block still works without fresh memory. */
    ck_assert_int_eq(rw__outq_append(&q, &pool, buf + queued + 50, tail_room + BLOCK), 0);
    assert_stream(&q, 50, queued + tail_room + BLOCK);
    ck_assert_uint_eq(pool.free_count, 0);
    ck_assert_int_eq(rw__outq_append(&q, &pool, buf, 1), -ENOMEM);
    assert_stream(&q, 50, queued + tail_room + BLOCK);

    /* Memory back: appends succeed again. */
    pool.fail_malloc = false;
    const size_t at = 50 + queued + tail_room + BLOCK;
    ck_assert_int_eq(rw__outq_append(&q, &pool, buf + at, 4 * BLOCK - at), 0);
    assert_stream(&q, 50, 4 * BLOCK - 50);
    rw__outq_clear(&q, &pool);
    ck_assert_uint_eq(pool.blocks_live, 0);
    free(buf);
    rw__block_pool_destroy(&pool);
}
END_TEST

/* A lender for external entries: counts releases per id. */
static uint32_t releases[8];
static void count_release(void *owner, uint32_t id)
{
    ck_assert_ptr_eq(owner, releases);
    releases[id]++;
}

/*
 * External entries (zero-copy replies): bytes by reference between copied ones keep their order
 * through gather and any partial consume; bytes continuing the tail entry of the same lender
 * merge into it (one iovec, one release); each entry is released exactly once, when consumed or
 * cleared; copied appends after an external entry go to a fresh block.
 */
START_TEST(test_outq_ext_entries_order_merge_release)
{
    struct rw_block_pool pool;
    rw__block_pool_init(&pool, 64);
    struct rw_outq q;
    rw__outq_init(&q);
    memset(releases, 0, sizeof(releases));
    static uint8_t lent[3][4096];
    uint8_t want[16384];
    size_t wlen = 0;
    for (int i = 0; i < 3; i++)
        fill(lent[i], (size_t)i * 4096, sizeof(lent[i]));
    uint8_t copied[100];
    fill(copied, 50000, sizeof(copied));
    /* copied, ext 0 [0,100), ext 0 [100,300) merges, copied, ext 1 [10,20), ext 2 [0,4096) */
    ck_assert_int_eq(rw__outq_append(&q, &pool, copied, 40), 0);
    memcpy(want + wlen, copied, 40), wlen += 40;
    ck_assert_int_eq(rw__outq_append_ext(&q, &pool, lent[0], 100, count_release, releases, 0), 0);
    memcpy(want + wlen, lent[0], 100), wlen += 100;
    ck_assert(rw__outq_ext_continues(&q, lent[0] + 100, releases, 0));
    ck_assert(!rw__outq_ext_continues(&q, lent[0] + 100, releases, 1));
    ck_assert(!rw__outq_ext_continues(&q, lent[0] + 101, releases, 0));
    ck_assert_int_eq(rw__outq_append_ext(&q, &pool, lent[0] + 100, 200, count_release, releases, 0),
                     1);
    memcpy(want + wlen, lent[0] + 100, 200), wlen += 200;
    ck_assert_int_eq(rw__outq_append(&q, &pool, copied + 40, 60), 0);
    memcpy(want + wlen, copied + 40, 60), wlen += 60;
    ck_assert_int_eq(rw__outq_append_ext(&q, &pool, lent[1] + 10, 10, count_release, releases, 1),
                     0);
    memcpy(want + wlen, lent[1] + 10, 10), wlen += 10;
    ck_assert_int_eq(rw__outq_append_ext(&q, &pool, lent[2], 4096, count_release, releases, 2), 0);
    memcpy(want + wlen, lent[2], 4096), wlen += 4096;
    ck_assert_uint_eq(q.ext_count, 3);
    ck_assert_uint_eq(rw__outq_bytes(&q), wlen);
    struct iovec iov[16];
    ck_assert_uint_eq(rw__outq_gather(&q, iov, 16), 5);
    uint8_t got[16384];
    ck_assert_uint_eq(snapshot(&q, got, sizeof(got)), wlen);
    ck_assert(memcmp(got, want, wlen) == 0);
    /* Consume in odd steps: releases come exactly as entries are passed. */
    size_t done = 0;
    while (done < wlen) {
        size_t n = wlen - done < 37 ? wlen - done : 37;
        rw__outq_consume(&q, &pool, n);
        done += n;
        ck_assert_uint_eq(snapshot(&q, got, sizeof(got)), wlen - done);
        ck_assert(memcmp(got, want + done, wlen - done) == 0);
        ck_assert_uint_eq(releases[0], done >= 340 ? 1 : 0);
        ck_assert_uint_eq(releases[1], done >= 410 ? 1 : 0);
    }
    ck_assert_uint_eq(releases[2], 1);
    ck_assert_uint_eq(q.ext_count, 0);
    /* Clear releases what is left, once. */
    memset(releases, 0, sizeof(releases));
    ck_assert_int_eq(rw__outq_append_ext(&q, &pool, lent[1], 5, count_release, releases, 1), 0);
    ck_assert_int_eq(rw__outq_append(&q, &pool, copied, 5), 0);
    rw__outq_clear(&q, &pool);
    ck_assert_uint_eq(releases[1], 1);
    ck_assert(rw__outq_empty(&q));
    ck_assert_uint_eq(pool.blocks_live, 0);
    rw__block_pool_destroy(&pool);
}
END_TEST

/*
 * A reply that fits one block (the common case): the tail filled to its last byte stays one
 * block, one byte more opens a second, a copy after an external entry opens a fresh block, and
 * an empty queue with no memory stays empty.
 */
START_TEST(test_outq_append_one_block_edges)
{
    struct rw_block_pool pool;
    rw__block_pool_init(&pool, 8);
    struct rw_outq q;
    rw__outq_init(&q);
    memset(releases, 0, sizeof(releases));
    uint8_t *buf = malloc(2 * BLOCK);
    ck_assert_ptr_nonnull(buf);
    fill(buf, 0, 2 * BLOCK);

    pool.fail_malloc = true; /* nothing cached, no memory: the empty queue stays empty */
    ck_assert_int_eq(rw__outq_append2(&q, &pool, buf, 4, buf + 4, 60), -ENOMEM);
    ck_assert(rw__outq_empty(&q));
    ck_assert_ptr_null(q.head);
    ck_assert_ptr_null(q.tail);
    ck_assert_uint_eq(pool.blocks_live, 0);
    pool.fail_malloc = false;

    /* Two parts into an empty queue, then the rest of the block exactly: still one block. */
    ck_assert_int_eq(rw__outq_append2(&q, &pool, buf, 4, buf + 4, 60), 0);
    ck_assert_int_eq(rw__outq_append2(&q, &pool, buf + 64, 100, buf + 164, BLOCK - 164), 0);
    ck_assert_ptr_eq(q.head, q.tail);
    ck_assert_uint_eq(pool.blocks_live, 1);
    assert_stream(&q, 0, BLOCK);
    /* One byte more: a second block. */
    ck_assert_int_eq(rw__outq_append2(&q, &pool, NULL, 0, buf + BLOCK, 1), 0);
    ck_assert_ptr_ne(q.head, q.tail);
    ck_assert_uint_eq(pool.blocks_live, 2);
    assert_stream(&q, 0, BLOCK + 1);
    /* Consumed to empty: the blocks go back; the next reply takes one again. */
    rw__outq_consume(&q, &pool, BLOCK + 1);
    ck_assert(rw__outq_empty(&q));
    ck_assert_uint_eq(pool.blocks_live, 0);

    /* After an external entry a copy goes to a fresh block, after it in order. */
    static uint8_t lent[64];
    fill(lent, 0, sizeof(lent));
    ck_assert_int_eq(rw__outq_append_ext(&q, &pool, lent, 64, count_release, releases, 0), 0);
    ck_assert_int_eq(rw__outq_append2(&q, &pool, buf + 64, 10, buf + 74, 20), 0);
    ck_assert_uint_eq(pool.blocks_live, 1);
    ck_assert(!q.tail->is_ext);
    assert_stream(&q, 0, 94);
    rw__outq_clear(&q, &pool);
    ck_assert_uint_eq(releases[0], 1);
    ck_assert_uint_eq(pool.blocks_live, 0);
    free(buf);
    rw__block_pool_destroy(&pool);
}
END_TEST

static Suite *outq_suite(void)
{
    Suite *s = suite_create("outq");
    const struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"test_outq_round_trip", test_outq_round_trip},
        {"test_outq_append_frame_big_endian", test_outq_append_frame_big_endian},
        {"test_outq_append_frame_framing", test_outq_append_frame_framing},
        {"test_outq_gather_bounded_in_order", test_outq_gather_bounded_in_order},
        {"test_outq_partial_consume_random", test_outq_partial_consume_random},
        {"test_outq_blocks_return_to_pool", test_outq_blocks_return_to_pool},
        {"test_outq_pool_trim_frees_unused", test_outq_pool_trim_frees_unused},
        {"test_outq_watermarks", test_outq_watermarks},
        {"test_outq_enomem_leaves_queue_unchanged", test_outq_enomem_leaves_queue_unchanged},
        {"test_outq_ext_entries_order_merge_release", test_outq_ext_entries_order_merge_release},
        {"test_outq_append_one_block_edges", test_outq_append_one_block_edges},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(outq_suite());
    srunner_run_all(sr, CK_ENV);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
