/*
 * Unit tests for the uring backend's provided-buffer ring and its bundle mirror
 * (src/backend/uring_bufs.c), without a kernel: the test plays the kernel, taking ring
 * entries in ring order at its own head, and hands their CQEs back in any order, as
 * completions that end a multishot recv can come after later ones (kernel-notes/26). Every
 * buffer must stay in exactly one place (the ring, taken, or deferred), an entry whose CQE
 * is still to come must never be overwritten, the ring head must follow the oldest CQE not
 * handled, and positions must survive the 16-bit wrap. The in-order shortcut (a CQE at the
 * ring head moves it on unmarked) and the out-of-order path (mark, walk, defer) are both
 * driven, which the integration tests cannot force: the kernel here posts in order.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/uring_impl.h"
#include "stats.h"

#define BUF_BYTES 64u

/* A check for the invariants, which run hundreds of thousands of times: Check's ck_assert
 * reports a checkpoint to its parent process on every pass, this only on failure. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

struct fx {
    struct ur_backend ur;
    struct rw_stats stats;
    uint16_t khead;      /* the next ring position "the kernel" takes */
    uint16_t pend[4096]; /* positions taken whose CQE is not handled yet */
    uint32_t pend_bid[4096];
    uint32_t npend;
    uint32_t held[4096]; /* buffers a queued reply still holds (zc-replies): out of the ring */
    uint32_t nheld;
};

static void fx_init(struct fx *f, uint32_t n)
{
    memset(f, 0, sizeof(*f));
    struct ur_backend *ur = &f->ur;
    ur->buf_count = n;
    ur->buf_size = BUF_BYTES;
    ur->features = RW_UF_BUNDLES;
    ur->stats = &f->stats;
    ur->bufs = calloc(n, BUF_BYTES);
    ur->buf_state = calloc(n, sizeof(*ur->buf_state));
    ur->br = aligned_alloc(4096, (n * sizeof(struct io_uring_buf) + 4095) / 4096 * 4096);
    ck_assert(ur->bufs && ur->buf_state && ur->br);
    io_uring_buf_ring_init(ur->br);
    ck_assert_int_eq(rw__ur_bundles_alloc(ur), 0);
    for (uint32_t bid = 0; bid < n; bid++)
        rw__ur_buf_add(ur, bid);
    rw__ur_buf_publish(ur);
}

static void fx_free(struct fx *f)
{
    rw__ur_bundles_free(&f->ur);
    free(f->ur.bufs);
    free(f->ur.buf_state);
    free(f->ur.br);
}

static uint32_t slot_of(const struct fx *f, uint32_t pos)
{
    return pos & (f->ur.buf_count - 1);
}

/* The kernel takes the entry at its head (there must be one): its bid, remembered as pending. */
static uint32_t kernel_take(struct fx *f)
{
    REQUIRE(f->khead != f->ur.br->tail, "the ring is empty");
    uint32_t bid = f->ur.br->bufs[slot_of(f, f->khead)].bid;
    REQUIRE(bid < f->ur.buf_count, "%s", "bid < f->ur.buf_count");
    f->pend[f->npend] = f->khead;
    f->pend_bid[f->npend] = bid;
    f->npend++;
    f->khead++;
    return bid;
}

/* Entries in the ring the kernel has not taken yet. */
static uint32_t ring_avail(const struct fx *f)
{
    return (uint16_t)(f->ur.br->tail - f->khead);
}

/*
 * Every buffer in exactly one place; no pending entry overwritten; the ring head at the
 * oldest pending position (at the kernel's head when none is pending); the tail within
 * buf_count of the ring head.
 */
static void check_invariants(const struct fx *f)
{
    const struct ur_backend *ur = &f->ur;
    uint32_t n = ur->buf_count;
    uint8_t seen[64] = {0};
    REQUIRE(n <= sizeof(seen), "%s", "n <= sizeof(seen)");
    for (uint16_t p = f->khead; p != ur->br->tail; p++) {
        uint32_t bid = ur->br->bufs[slot_of(f, p)].bid;
        REQUIRE(!seen[bid], "bid %u twice", bid);
        seen[bid] = 1;
        REQUIRE(!ur->buf_state[bid].out, "%s", "!ur->buf_state[bid].out");
    }
    uint16_t oldest = f->khead;
    for (uint32_t i = 0; i < f->npend; i++) {
        uint32_t bid = f->pend_bid[i];
        REQUIRE(ur->br->bufs[slot_of(f, f->pend[i])].bid == bid, "pending position %u overwritten",
                f->pend[i]);
        REQUIRE(!seen[bid], "bid %u twice", bid);
        seen[bid] = 1;
        if ((uint16_t)(f->khead - f->pend[i]) > (uint16_t)(f->khead - oldest))
            oldest = f->pend[i];
    }
    for (uint32_t i = 0; i < f->nheld; i++) {
        uint32_t bid = f->held[i];
        REQUIRE(!seen[bid], "bid %u twice", bid);
        seen[bid] = 1;
        REQUIRE(ur->buf_state[bid].out && ur->buf_state[bid].holds > 0, "%s",
                "ur->buf_state[bid].out && ur->buf_state[bid].holds > 0");
    }
    for (uint32_t i = 0; i < ur->deferred_count; i++) {
        uint32_t bid = ur->deferred[i];
        REQUIRE(!seen[bid], "bid %u twice", bid);
        seen[bid] = 1;
    }
    for (uint32_t bid = 0; bid < n; bid++)
        REQUIRE(seen[bid], "bid %u lost", bid);
    REQUIRE(ur->ring_head == oldest, "ring head %u, oldest pending %u", ur->ring_head, oldest);
    uint32_t window = (uint16_t)(ur->br->tail + ur->bufs_to_advance - ur->ring_head);
    REQUIRE(window <= n, "tail %u past the ring head %u", window, ur->ring_head);
    /* A buffer waits only while the ring is full that way: else it should be back in it. */
    if (ur->deferred_count > 0)
        REQUIRE(window == n, "%u deferred with room in the ring", ur->deferred_count);
    REQUIRE(ur->bufs_out == f->nheld, "bufs_out %u, lent %u", ur->bufs_out, f->nheld);
}

/* The CQE of pending entry i, a plain recv's one buffer: taken, parsed (lent to a reply when
 * lend and the ring has room for it), released. */
static void handle_plain_lend(struct fx *f, uint32_t i, bool lend)
{
    uint32_t bid = f->pend_bid[i];
    f->pend[i] = f->pend[f->npend - 1];
    f->pend_bid[i] = f->pend_bid[f->npend - 1];
    f->npend--;
    uint8_t *buf = rw__ur_buf_taken_one(&f->ur, bid);
    REQUIRE(buf == f->ur.bufs + (size_t)bid * BUF_BYTES, "%s",
            "buf == f->ur.bufs + (size_t)bid * BUF_BYTES");
    REQUIRE(f->ur.buf_state[bid].out, "%s", "f->ur.buf_state[bid].out");
    if (lend && rw__ur_buf_hold(&f->ur, bid))
        f->held[f->nheld++] = bid;
    rw__ur_buf_release(&f->ur, bid);
    rw__ur_buf_publish(&f->ur);
}

static void handle_plain(struct fx *f, uint32_t i)
{
    handle_plain_lend(f, i, false);
}

/* The reply that held held[i] was sent: the buffer goes back (or waits, deferred). */
static void reply_sent(struct fx *f, uint32_t i)
{
    uint32_t bid = f->held[i];
    f->held[i] = f->held[--f->nheld];
    rw__ur_buf_release(&f->ur, bid);
    rw__ur_buf_publish(&f->ur);
}

/* The pending entry at ring position pos. */
static uint32_t pend_index(const struct fx *f, uint16_t pos)
{
    for (uint32_t i = 0; i < f->npend; i++)
        if (f->pend[i] == pos)
            return i;
    ck_abort_msg("position %u not pending", pos);
    return 0;
}

/*
 * A bundle's CQE: the pending entries from pos on, count of them, res bytes in all, handled as
 * uring.c's ur_on_bundle does (take, each buffer parsed and released, then done).
 */
static void handle_bundle(struct fx *f, uint16_t pos, uint32_t count, uint32_t res)
{
    uint32_t bid0 = f->pend_bid[pend_index(f, pos)];
    uint32_t first;
    uint32_t n = rw__ur_bundle_take(&f->ur, bid0, res, &first);
    REQUIRE(n == count, "%s", "n == count");
    REQUIRE((uint16_t)first == pos, "%s", "(uint16_t)first == pos");
    uint32_t left = res;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t len;
        uint32_t i = pend_index(f, (uint16_t)(pos + k));
        uint32_t bid = rw__ur_bundle_buf(&f->ur, first + k, left, &len);
        REQUIRE(bid == f->pend_bid[i], "%s", "bid == f->pend_bid[i]");
        left -= len;
        f->pend[i] = f->pend[f->npend - 1];
        f->pend_bid[i] = f->pend_bid[f->npend - 1];
        f->npend--;
        rw__ur_buf_release(&f->ur, bid);
    }
    REQUIRE(left == 0, "%s", "left == 0");
    rw__ur_bundle_done(&f->ur, first, n);
    rw__ur_buf_publish(&f->ur);
}

/* In ring order, past the 16-bit wrap: the ring head follows the kernel's, nothing deferred. */
START_TEST(test_bufring_in_order_past_the_wrap)
{
    static struct fx f;
    fx_init(&f, 8);
    uint32_t taken = 0;
    for (uint32_t round = 0; taken < 70000; round++) {
        uint32_t take = 1 + round % 3;
        taken += take;
        for (uint32_t k = 0; k < take; k++)
            (void)kernel_take(&f);
        while (f.npend > 0) /* the oldest first: the one at the ring head */
            handle_plain(&f, pend_index(&f, f.ur.ring_head));
        ck_assert_uint_eq(f.ur.deferred_count, 0);
        check_invariants(&f);
    }
    ck_assert_uint_lt(f.khead, 70000 - 65536 + 3); /* 70,000 positions: wrapped */
    fx_free(&f);
}
END_TEST

/*
 * Out of order: the CQE of a later entry first. Its buffer cannot go back at the tail, whose
 * slot holds the entry still to come, so it waits (deferred); each later CQE walks the ring
 * head past what was handled and lets the deferred in.
 */
START_TEST(test_bufring_out_of_order_defers_and_walks)
{
    static struct fx f;
    fx_init(&f, 8);
    for (int i = 0; i < 3; i++) /* positions 0-2, handled in order: tail 11, ring head 3 */
        (void)kernel_take(&f);
    for (int i = 0; i < 3; i++)
        handle_plain(&f, pend_index(&f, (uint16_t)i));
    ck_assert_uint_eq(f.ur.ring_head, 3);
    for (int i = 0; i < 3; i++) /* positions 3, 4, 5 taken */
        (void)kernel_take(&f);
    handle_plain(&f, pend_index(&f, 5)); /* 5 first: marked, its buffer deferred */
    ck_assert_uint_eq(f.ur.ring_head, 3);
    ck_assert_uint_eq(f.ur.deferred_count, 1);
    check_invariants(&f);
    handle_plain(&f, pend_index(&f, 3)); /* head 4; the deferred buffer goes in, 3's waits */
    ck_assert_uint_eq(f.ur.ring_head, 4);
    ck_assert_uint_eq(f.ur.deferred_count, 1);
    check_invariants(&f);
    handle_plain(&f, pend_index(&f, 4)); /* head walks past 4 and the marked 5 */
    ck_assert_uint_eq(f.ur.ring_head, 6);
    ck_assert_uint_eq(f.ur.deferred_count, 0);
    check_invariants(&f);
    /* A CQE at the ring head with a marked slot right after it: the walk, not the shortcut. */
    (void)kernel_take(&f);
    (void)kernel_take(&f);
    handle_plain(&f, pend_index(&f, 7));
    handle_plain(&f, pend_index(&f, 6));
    ck_assert_uint_eq(f.ur.ring_head, 8);
    check_invariants(&f);
    fx_free(&f);
}
END_TEST

/*
 * Random takes, plain and bundle CQEs handled in random order, some buffers lent to replies
 * that complete later in any order (zc-replies), many rounds past the wrap, with a ring of 16:
 * the invariants hold after every step and every buffer comes back.
 */
START_TEST(test_bufring_random_orders_bundles_and_plain)
{
    static struct fx f;
    fx_init(&f, 16);
    uint32_t seed = 12345;
    uint32_t taken = 0;
    for (uint32_t round = 0; taken < 70000 || round < 20000; round++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t avail = ring_avail(&f);
        if (avail > 0) {
            /* The kernel takes a run of entries: one plain CQE each, or one bundle for all. */
            uint32_t run = 1 + (seed >> 16) % (avail < 4 ? avail : 4);
            uint16_t start = f.khead;
            for (uint32_t k = 0; k < run; k++)
                (void)kernel_take(&f);
            taken += run;
            if (run > 1 && (seed & 1)) {
                /* A bundle, handled at once: before any older plain CQE still pending. */
                handle_bundle(&f, start, run, (run - 1) * BUF_BYTES + 1 + (seed >> 8) % BUF_BYTES);
                check_invariants(&f);
                continue;
            }
        }
        /* Handle some pending plain CQEs, in random order. */
        uint32_t handle = f.npend ? 1 + (seed >> 20) % f.npend : 0;
        for (uint32_t k = 0; k < handle && f.npend; k++) {
            seed = seed * 1103515245u + 12345u;
            handle_plain_lend(&f, (seed >> 16) % f.npend, (seed & 6) == 0);
            check_invariants(&f);
        }
        /* Some replies that held buffers complete, in any order. */
        seed = seed * 1103515245u + 12345u;
        if (f.nheld && (seed & 3) == 0) {
            reply_sent(&f, (seed >> 16) % f.nheld);
            check_invariants(&f);
        }
    }
    while (f.npend)
        handle_plain(&f, 0);
    while (f.nheld)
        reply_sent(&f, 0);
    check_invariants(&f);
    ck_assert_uint_eq(f.ur.deferred_count, 0);
    ck_assert_uint_eq(ring_avail(&f), 16);
    fx_free(&f);
}
END_TEST

static Suite *bufring_suite(void)
{
    Suite *s = suite_create("bufring");
    const struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"test_bufring_in_order_past_the_wrap", test_bufring_in_order_past_the_wrap},
        {"test_bufring_out_of_order_defers_and_walks", test_bufring_out_of_order_defers_and_walks},
        {"test_bufring_random_orders_bundles_and_plain",
         test_bufring_random_orders_bundles_and_plain},
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
    SRunner *sr = srunner_create(bufring_suite());
    srunner_run_all(sr, CK_ENV);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
