/*
 * Unit tests for the hashed timing wheel (src/core/wheel.c): a timer never
 * fires before its deadline and at most one tick after it, cancel and re-arm
 * work in O(1) from anywhere (callbacks included), deadlines many revolutions
 * away fire exactly once, the loop's lazy re-arm pattern reaps only idle
 * connections, and timeout_ms never sleeps past a timer's tick. The clock is
 * a plain number the tests advance; nothing here sleeps.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "rw_assert.h"
#include "wheel.h"

#define TICK_MS    10u
#define SLOTS      64u
#define REV_MS     ((uint64_t)TICK_MS * SLOTS)
#define TIMERS_MAX 100000u

/* A timer that records when it fired. */
struct probe {
    struct rw_timer timer;
    uint32_t fires;
    uint64_t fired_at_ms;
};

/* What every callback in these tests gets as ctx. */
struct sim_clock {
    uint64_t now_ms;
    uint32_t fires;
    struct rw_wheel *wheel;
};

static void on_probe(void *ctx, struct rw_timer *t)
{
    struct sim_clock *clk = ctx;
    struct probe *p = RW_CONTAINER_OF(t, struct probe, timer);
    ck_assert(!rw__timer_armed(t)); /* disarmed before the callback */
    ck_assert_uint_le(t->deadline_ms, clk->now_ms);
    p->fires++;
    p->fired_at_ms = clk->now_ms;
    clk->fires++;
}

static void wheel_setup(struct rw_wheel *w, uint64_t now_ms)
{
    ck_assert_int_eq(rw__wheel_init(w, SLOTS, TICK_MS, now_ms), 0);
}

static uint32_t advance_to(struct rw_wheel *w, struct sim_clock *clk, uint64_t now_ms)
{
    clk->now_ms = now_ms;
    return rw__wheel_advance(w, now_ms, on_probe, clk);
}

/* Step the clock 1 ms at a time from clk->now_ms to until_ms (inclusive). */
static void step_to(struct rw_wheel *w, struct sim_clock *clk, uint64_t until_ms)
{
    for (uint64_t now = clk->now_ms + 1; now <= until_ms; now++)
        advance_to(w, clk, now);
}

START_TEST(test_wheel_init_rejects_bad_geometry)
{
    struct rw_wheel w;
    ck_assert_int_eq(rw__wheel_init(&w, 0, TICK_MS, 0), -EINVAL);
    ck_assert_int_eq(rw__wheel_init(&w, 48, TICK_MS, 0), -EINVAL);
    ck_assert_int_eq(rw__wheel_init(&w, SLOTS, 0, 0), -EINVAL);
    ck_assert_int_eq(rw__wheel_init(&w, 1, 1, 0), 0);
    rw__wheel_destroy(&w);
}
END_TEST

START_TEST(test_wheel_fires_at_deadline_not_before)
{
    const uint64_t deadlines[] = {105, 200, 1, 639, 640, 641};
    for (size_t i = 0; i < sizeof(deadlines) / sizeof(deadlines[0]); i++) {
        struct rw_wheel w;
        struct sim_clock clk = {.now_ms = 0};
        struct probe p = {.fires = 0};
        wheel_setup(&w, 0);
        rw__timer_init(&p.timer);
        rw__wheel_arm(&w, &p.timer, deadlines[i]);
        ck_assert(rw__timer_armed(&p.timer));
        ck_assert_uint_eq(w.armed, 1);
        step_to(&w, &clk, deadlines[i] - 1);
        ck_assert_uint_eq(p.fires, 0);
        step_to(&w, &clk, deadlines[i] + TICK_MS);
        ck_assert_uint_eq(p.fires, 1);
        ck_assert_uint_ge(p.fired_at_ms, deadlines[i]);
        ck_assert(!rw__timer_armed(&p.timer));
        ck_assert_uint_eq(w.armed, 0);
        rw__wheel_destroy(&w);
    }
}
END_TEST

START_TEST(test_wheel_late_by_at_most_one_tick)
{
    /* Every phase of a deadline within a tick, armed from every phase of "now". */
    for (uint64_t start = 1000; start < 1000 + TICK_MS; start++) {
        for (uint64_t delay = 0; delay <= 3 * TICK_MS; delay++) {
            struct rw_wheel w;
            struct sim_clock clk = {.now_ms = start};
            struct probe p = {.fires = 0};
            wheel_setup(&w, start);
            rw__timer_init(&p.timer);
            rw__wheel_arm(&w, &p.timer, start + delay);
            step_to(&w, &clk, start + delay + TICK_MS);
            ck_assert_uint_eq(p.fires, 1);
            ck_assert_uint_ge(p.fired_at_ms, start + delay);
            ck_assert_uint_le(p.fired_at_ms, start + delay + TICK_MS);
            rw__wheel_destroy(&w);
        }
    }
}
END_TEST

START_TEST(test_wheel_past_deadline_fires_on_next_tick)
{
    struct rw_wheel w;
    struct sim_clock clk = {.now_ms = 5000};
    struct probe p = {.fires = 0};
    wheel_setup(&w, 5000);
    rw__timer_init(&p.timer);
    rw__wheel_arm(&w, &p.timer, 10); /* long past */
    step_to(&w, &clk, 5000 + TICK_MS);
    ck_assert_uint_eq(p.fires, 1);
    ck_assert_uint_le(p.fired_at_ms, 5000 + TICK_MS);
    rw__wheel_destroy(&w);
}
END_TEST

START_TEST(test_wheel_cancel_prevents_firing)
{
    struct rw_wheel w;
    struct sim_clock clk = {.now_ms = 0};
    struct probe a = {.fires = 0};
    struct probe b = {.fires = 0};
    struct probe never = {.fires = 0};
    wheel_setup(&w, 0);
    rw__timer_init(&a.timer);
    rw__timer_init(&b.timer);
    rw__timer_init(&never.timer);
    rw__wheel_cancel(&w, &never.timer); /* never armed: harmless */
    rw__wheel_arm(&w, &a.timer, 100);
    rw__wheel_arm(&w, &b.timer, 100); /* same slot */
    ck_assert_uint_eq(w.armed, 2);
    rw__wheel_cancel(&w, &a.timer);
    ck_assert(!rw__timer_armed(&a.timer));
    ck_assert_uint_eq(w.armed, 1);
    rw__wheel_cancel(&w, &a.timer); /* twice: harmless */
    ck_assert_uint_eq(w.armed, 1);
    ck_assert_uint_eq(advance_to(&w, &clk, 10 * REV_MS), 1);
    ck_assert_uint_eq(a.fires, 0);
    ck_assert_uint_eq(b.fires, 1);
    ck_assert_uint_eq(never.fires, 0);
    ck_assert_uint_eq(w.armed, 0);
    ck_assert_int_eq(rw__wheel_timeout_ms(&w, clk.now_ms), -1);
    rw__wheel_destroy(&w);
}
END_TEST

START_TEST(test_wheel_rearm_moves)
{
    struct rw_wheel w;
    struct sim_clock clk = {.now_ms = 0};
    struct probe p = {.fires = 0};
    wheel_setup(&w, 0);
    rw__timer_init(&p.timer);

    /* Later: nothing at the old deadline, one fire at the new one. */
    rw__wheel_arm(&w, &p.timer, 100);
    rw__wheel_arm(&w, &p.timer, 300);
    ck_assert_uint_eq(w.armed, 1);
    ck_assert_uint_eq(p.timer.deadline_ms, 300);
    step_to(&w, &clk, 299);
    ck_assert_uint_eq(p.fires, 0);
    step_to(&w, &clk, 300 + TICK_MS);
    ck_assert_uint_eq(p.fires, 1);
    ck_assert_uint_ge(p.fired_at_ms, 300);

    /* Earlier, and to another revolution and back. */
    rw__wheel_arm(&w, &p.timer, clk.now_ms + 3 * REV_MS);
    rw__wheel_arm(&w, &p.timer, clk.now_ms + 50);
    uint64_t deadline = clk.now_ms + 50;
    ck_assert_uint_eq(w.armed, 1);
    step_to(&w, &clk, deadline - 1);
    ck_assert_uint_eq(p.fires, 1);
    step_to(&w, &clk, deadline + TICK_MS);
    ck_assert_uint_eq(p.fires, 2);
    step_to(&w, &clk, clk.now_ms + 4 * REV_MS);
    ck_assert_uint_eq(p.fires, 2);
    ck_assert_uint_eq(w.armed, 0);
    rw__wheel_destroy(&w);
}
END_TEST

START_TEST(test_wheel_beyond_one_revolution)
{
    struct rw_wheel w;
    struct sim_clock clk = {.now_ms = 0};
    struct probe p = {.fires = 0};
    struct probe near = {.fires = 0};
    const uint64_t deadline = 10 * REV_MS + 37;
    wheel_setup(&w, 0);
    rw__timer_init(&p.timer);
    rw__timer_init(&near.timer);
    rw__wheel_arm(&w, &p.timer, deadline);
    rw__wheel_arm(&w, &near.timer, 37); /* same slot, this revolution */
    step_to(&w, &clk, deadline - 1);
    ck_assert_uint_eq(near.fires, 1);
    ck_assert_uint_eq(p.fires, 0);
    ck_assert(rw__timer_armed(&p.timer));
    step_to(&w, &clk, deadline + 2 * REV_MS);
    ck_assert_uint_eq(p.fires, 1);
    ck_assert_uint_ge(p.fired_at_ms, deadline);
    ck_assert_uint_le(p.fired_at_ms, deadline + TICK_MS);
    ck_assert_uint_eq(w.armed, 0);
    rw__wheel_destroy(&w);

    /* Coarse, irregular steps: still once, never early. */
    struct probe q = {.fires = 0};
    clk.now_ms = 3;
    wheel_setup(&w, 3);
    rw__timer_init(&q.timer);
    rw__wheel_arm(&w, &q.timer, deadline);
    for (uint64_t now = 3; now < deadline + 2 * REV_MS; now += 7 + now % 13) {
        advance_to(&w, &clk, now);
        if (now < deadline)
            ck_assert_uint_eq(q.fires, 0);
        if (now >= deadline + TICK_MS)
            ck_assert_uint_eq(q.fires, 1);
    }
    ck_assert_uint_eq(q.fires, 1);
    ck_assert_uint_ge(q.fired_at_ms, deadline);
    rw__wheel_destroy(&w);
}
END_TEST

/* The loop's idle timer: activity only stores a time; the timer re-arms itself lazily. */
struct idle_conn {
    struct rw_timer timer;
    uint64_t last_active_ms;
    uint64_t idle_ms;
    uint32_t wakeups;
    bool reaped;
    uint64_t reaped_at_ms;
};

static void on_idle(void *ctx, struct rw_timer *t)
{
    struct sim_clock *clk = ctx;
    struct idle_conn *c = RW_CONTAINER_OF(t, struct idle_conn, timer);
    c->wakeups++;
    uint64_t deadline = c->last_active_ms + c->idle_ms;
    if (deadline > clk->now_ms) {
        rw__wheel_arm(clk->wheel, t, deadline);
        return;
    }
    c->reaped = true;
    c->reaped_at_ms = clk->now_ms;
}

START_TEST(test_wheel_lazy_rearm)
{
    struct rw_wheel w;
    struct sim_clock clk = {.now_ms = 0, .wheel = &w};
    struct idle_conn c = {.last_active_ms = 0, .idle_ms = 1000};
    wheel_setup(&w, 0);
    rw__timer_init(&c.timer);
    rw__wheel_arm(&w, &c.timer, c.idle_ms);

    /* Busy for 2.5 s (activity every 100 ms, no re-arm), then silent. */
    for (uint64_t now = 1; now <= 6000; now++) {
        clk.now_ms = now;
        if (now <= 2500 && now % 100 == 0)
            c.last_active_ms = now;
        rw__wheel_advance(&w, now, on_idle, &clk);
        if (now < c.last_active_ms + c.idle_ms)
            ck_assert(!c.reaped);
    }
    ck_assert(c.reaped);
    ck_assert_uint_ge(c.reaped_at_ms, 2500 + 1000);
    ck_assert_uint_le(c.reaped_at_ms, 2500 + 1000 + TICK_MS);
    ck_assert(!rw__timer_armed(&c.timer));
    ck_assert_uint_eq(w.armed, 0);
    /* One wake-up per idle period at most, not one per activity. */
    ck_assert_uint_le(c.wakeups, 4);
    rw__wheel_destroy(&w);
}
END_TEST

START_TEST(test_wheel_timeout_ms)
{
    struct rw_wheel w;
    struct sim_clock clk = {.now_ms = 0};
    struct probe p = {.fires = 0};
    struct probe far = {.fires = 0};
    wheel_setup(&w, 0);
    rw__timer_init(&p.timer);
    rw__timer_init(&far.timer);
    ck_assert_int_eq(rw__wheel_timeout_ms(&w, 0), -1);

    /* One timer: wake no later than it can fire, not absurdly early. */
    rw__wheel_arm(&w, &p.timer, 105);
    int64_t t = rw__wheel_timeout_ms(&w, 0);
    ck_assert_int_ge(t, 100);
    ck_assert_int_le(t, 105 + TICK_MS);
    ck_assert_uint_eq(advance_to(&w, &clk, (uint64_t)t), 1); /* sleeping t is enough */
    ck_assert_int_eq(rw__wheel_timeout_ms(&w, clk.now_ms), -1);

    /* Due (its tick passed) but not yet advanced: 0. */
    rw__wheel_arm(&w, &p.timer, clk.now_ms + 20);
    ck_assert_int_eq(rw__wheel_timeout_ms(&w, clk.now_ms + 20 + TICK_MS), 0);
    ck_assert_uint_eq(advance_to(&w, &clk, clk.now_ms + 20 + TICK_MS), 1);

    /* Beyond one revolution: wakes within one revolution (conservative), never after. */
    rw__wheel_arm(&w, &far.timer, clk.now_ms + 5 * REV_MS);
    t = rw__wheel_timeout_ms(&w, clk.now_ms);
    ck_assert_int_gt(t, 0);
    ck_assert_int_le(t, (int64_t)REV_MS);

    /* A sleep-until-timeout driver reaches it without busy-looping. */
    uint32_t wakeups = 0;
    while ((t = rw__wheel_timeout_ms(&w, clk.now_ms)) >= 0) {
        ck_assert_int_gt(t, 0); /* after an advance nothing is due yet */
        advance_to(&w, &clk, clk.now_ms + (uint64_t)t);
        ck_assert_uint_lt(++wakeups, 20);
    }
    ck_assert_uint_eq(far.fires, 1);
    ck_assert_uint_ge(far.fired_at_ms, far.timer.deadline_ms);
    ck_assert_uint_le(far.fired_at_ms, far.timer.deadline_ms + TICK_MS);
    rw__wheel_destroy(&w);
}
END_TEST

/* Timers of the same-advance test: one re-arms itself as already due, cancels a
 * neighbour and arms a spawn with a deadline long past, all from its callback. */
enum actor_kind { ACTOR_PLAIN, ACTOR_SELF_REARM };

struct actor {
    struct rw_timer timer;
    enum actor_kind kind;
    uint32_t fires;
    struct actor *victim;
    struct actor *spawn;
};

static void on_actor(void *ctx, struct rw_timer *t)
{
    struct sim_clock *clk = ctx;
    struct actor *a = RW_CONTAINER_OF(t, struct actor, timer);
    ck_assert_uint_le(t->deadline_ms, clk->now_ms);
    a->fires++;
    ck_assert_uint_lt(a->fires, 1000); /* a loop would trip this */
    if (a->kind != ACTOR_SELF_REARM)
        return;
    rw__wheel_arm(clk->wheel, t, clk->now_ms); /* due right now */
    if (a->victim) {
        rw__wheel_cancel(clk->wheel, &a->victim->timer);
        a->victim = NULL;
    }
    if (a->spawn) {
        rw__wheel_arm(clk->wheel, &a->spawn->timer, 0);
        a->spawn = NULL;
    }
}

START_TEST(test_wheel_callback_rearm_no_loop)
{
    struct rw_wheel w;
    struct sim_clock clk = {.now_ms = 0, .wheel = &w};
    struct actor victim = {.kind = ACTOR_PLAIN};
    struct actor spawn = {.kind = ACTOR_PLAIN};
    struct actor self = {.kind = ACTOR_SELF_REARM, .victim = &victim, .spawn = &spawn};
    wheel_setup(&w, 0);
    rw__timer_init(&self.timer);
    rw__timer_init(&victim.timer);
    rw__timer_init(&spawn.timer);
    rw__wheel_arm(&w, &self.timer, 50);
    rw__wheel_arm(&w, &victim.timer, 50); /* same slot, after self in its list */

    clk.now_ms = 100;
    uint32_t fired = rw__wheel_advance(&w, 100, on_actor, &clk);
    ck_assert_uint_eq(self.fires, 1);
    ck_assert_uint_eq(victim.fires, 0);
    ck_assert(!rw__timer_armed(&victim.timer));
    ck_assert(rw__timer_armed(&self.timer));
    ck_assert_uint_eq(fired, self.fires + spawn.fires);

    /* Every later advance that crosses a tick fires self once more; spawn fires once. */
    for (uint64_t now = 101; now <= 100 + 5 * TICK_MS; now++) {
        uint32_t before = self.fires;
        clk.now_ms = now;
        rw__wheel_advance(&w, now, on_actor, &clk);
        ck_assert_uint_le(self.fires - before, 1);
    }
    ck_assert_uint_ge(self.fires, 5);
    ck_assert_uint_le(self.fires, 7);
    ck_assert_uint_eq(spawn.fires, 1);
    ck_assert_uint_eq(victim.fires, 0);
    ck_assert_uint_eq(w.armed, 1);
    rw__wheel_cancel(&w, &self.timer);
    ck_assert_uint_eq(w.armed, 0);
    rw__wheel_destroy(&w);
}
END_TEST

/* 100k timers with random deadlines, stepped 1 ms at a time. */
struct many {
    struct rw_timer timer;
    uint32_t fires;
};

struct many_ctx {
    uint64_t now_ms;
    uint64_t wake_max_ms; /* latest wake-up timeout_ms asked for since the last fire */
    uint64_t fired;
};

static void on_many(void *ctx, struct rw_timer *t)
{
    struct many_ctx *m = ctx;
    struct many *x = RW_CONTAINER_OF(t, struct many, timer);
    x->fires++;
    ck_assert_uint_eq(x->fires, 1);
    ck_assert_uint_le(t->deadline_ms, m->now_ms);
    ck_assert_uint_le(m->now_ms - t->deadline_ms, TICK_MS);
    ck_assert_uint_le(m->wake_max_ms, m->now_ms); /* no sleep would have overshot this */
    m->fired++;
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

START_TEST(test_wheel_random_100k)
{
    struct rw_wheel w;
    struct many_ctx m = {.now_ms = 12345};
    const uint64_t start = 12345;
    const uint64_t span = 20 * REV_MS;
    struct many *timers = calloc(TIMERS_MAX, sizeof(*timers));
    ck_assert_ptr_nonnull(timers);
    ck_assert_int_eq(rw__wheel_init(&w, SLOTS, TICK_MS, start), 0);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (uint32_t i = 0; i < TIMERS_MAX; i++) {
        rw__timer_init(&timers[i].timer);
        rw__wheel_arm(&w, &timers[i].timer, start + xorshift64(&seed) % span);
    }
    /* Re-arm a tenth elsewhere and cancel a tenth: the rest must be unaffected. */
    uint32_t cancelled = 0;
    for (uint32_t i = 0; i < TIMERS_MAX; i += 10) {
        rw__wheel_arm(&w, &timers[i].timer, start + xorshift64(&seed) % span);
        rw__wheel_cancel(&w, &timers[i + 5].timer);
        cancelled++;
    }
    ck_assert_uint_eq(w.armed, TIMERS_MAX - cancelled);

    m.wake_max_ms = 0;
    for (uint64_t now = start; now <= start + span + TICK_MS; now++) {
        m.now_ms = now;
        uint64_t before = m.fired;
        rw__wheel_advance(&w, now, on_many, &m);
        if (m.fired != before)
            m.wake_max_ms = 0;
        int64_t t = rw__wheel_timeout_ms(&w, now);
        ck_assert_int_eq(t < 0, w.armed == 0);
        if (t >= 0 && now + (uint64_t)t > m.wake_max_ms)
            m.wake_max_ms = now + (uint64_t)t;
    }
    ck_assert_uint_eq(m.fired, TIMERS_MAX - cancelled);
    ck_assert_uint_eq(w.armed, 0);
    for (uint32_t i = 0; i < TIMERS_MAX; i++) {
        bool was_cancelled = i % 10 == 5;
        ck_assert_uint_eq(timers[i].fires, was_cancelled ? 0 : 1);
        ck_assert(!rw__timer_armed(&timers[i].timer));
    }
    rw__wheel_destroy(&w);
    free(timers);
}
END_TEST

START_TEST(test_wheel_big_time_jump)
{
    struct rw_wheel w;
    struct sim_clock clk = {.now_ms = 0};
    enum { N = 6 };
    const uint64_t deadlines[N] = {5, 333, REV_MS + 1, 7 * REV_MS + 3, 99 * REV_MS, 1000 * REV_MS};
    struct probe p[N];
    wheel_setup(&w, 0);
    for (int i = 0; i < N; i++) {
        p[i] = (struct probe){.fires = 0};
        rw__timer_init(&p[i].timer);
        rw__wheel_arm(&w, &p[i].timer, deadlines[i]);
    }
    /* 100 revolutions in one advance: every slot walked once, all but the last due. */
    const uint64_t jump = 100 * REV_MS + 7;
    ck_assert_uint_eq(advance_to(&w, &clk, jump), N - 1);
    for (int i = 0; i < N - 1; i++)
        ck_assert_uint_eq(p[i].fires, 1);
    ck_assert_uint_eq(p[N - 1].fires, 0);
    ck_assert_uint_eq(w.armed, 1);
    ck_assert_uint_eq(w.current_tick, jump / TICK_MS);

    /* After the jump the wheel keeps time: a new timer fires on time, the far one too. */
    rw__wheel_arm(&w, &p[0].timer, jump + 55);
    step_to(&w, &clk, jump + 54);
    ck_assert_uint_eq(p[0].fires, 1);
    step_to(&w, &clk, jump + 55 + TICK_MS);
    ck_assert_uint_eq(p[0].fires, 2);
    ck_assert_uint_eq(advance_to(&w, &clk, deadlines[N - 1] - 1), 0);
    ck_assert_uint_eq(advance_to(&w, &clk, deadlines[N - 1] + TICK_MS), 1);
    ck_assert_uint_eq(p[N - 1].fires, 1);
    ck_assert_uint_eq(w.armed, 0);
    rw__wheel_destroy(&w);
}
END_TEST

/* The answer of a full scan from current_tick (what timeout_ms computed before it kept a hint). */
static int64_t timeout_by_scan(const struct rw_wheel *w, uint64_t now_ms)
{
    if (w->armed == 0)
        return -1;
    if (now_ms / w->tick_ms > w->current_tick)
        return 0;
    uint64_t tick = w->current_tick;
    for (uint32_t i = 0; i < w->slot_count; i++, tick++) {
        const struct rw_timer *slot = &w->slots[tick & (w->slot_count - 1)];
        if (slot->next != slot) {
            uint64_t at = (tick + 1) * w->tick_ms;
            return at > now_ms ? (int64_t)(at - now_ms) : 0;
        }
    }
    return (int64_t)w->slot_count * w->tick_ms;
}

static void on_rearm_later(void *ctx, struct rw_timer *t)
{
    struct sim_clock *clk = ctx;
    clk->fires++;
    if (clk->fires % 3 == 0)
        rw__wheel_arm(clk->wheel, t, clk->now_ms + (clk->fires * 7919u) % (3 * REV_MS));
}

/* The kept hint never changes the answer: after any mix of arm, cancel and advance, timeout_ms
 * equals a full scan's. */
START_TEST(test_wheel_timeout_hint_matches_scan)
{
    struct rw_wheel w;
    ck_assert_int_eq(rw__wheel_init(&w, SLOTS, TICK_MS, 1000), 0);
    enum { N = 300 };
    static struct rw_timer timers[N];
    for (int i = 0; i < N; i++)
        rw__timer_init(&timers[i]);
    struct sim_clock clk = {.now_ms = 1000, .wheel = &w};
    uint32_t seed = 12345;
    for (int step = 0; step < 200000; step++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 8;
        struct rw_timer *t = &timers[r % N];
        switch ((r >> 12) % 4) {
        case 0:
        case 1:
            rw__wheel_arm(&w, t, clk.now_ms + (r >> 3) % (3 * REV_MS));
            break;
        case 2:
            rw__wheel_cancel(&w, t);
            break;
        default:
            clk.now_ms += (r >> 5) % (2 * TICK_MS);
            (void)rw__wheel_advance(&w, clk.now_ms, on_rearm_later, &clk);
            break;
        }
        ck_assert_int_eq(rw__wheel_timeout_ms(&w, clk.now_ms), timeout_by_scan(&w, clk.now_ms));
    }
    rw__wheel_destroy(&w);
}
END_TEST

static Suite *wheel_suite(void)
{
    Suite *s = suite_create("wheel");
    const struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"test_wheel_init_rejects_bad_geometry", test_wheel_init_rejects_bad_geometry},
        {"test_wheel_fires_at_deadline_not_before", test_wheel_fires_at_deadline_not_before},
        {"test_wheel_late_by_at_most_one_tick", test_wheel_late_by_at_most_one_tick},
        {"test_wheel_past_deadline_fires_on_next_tick",
         test_wheel_past_deadline_fires_on_next_tick},
        {"test_wheel_cancel_prevents_firing", test_wheel_cancel_prevents_firing},
        {"test_wheel_rearm_moves", test_wheel_rearm_moves},
        {"test_wheel_beyond_one_revolution", test_wheel_beyond_one_revolution},
        {"test_wheel_lazy_rearm", test_wheel_lazy_rearm},
        {"test_wheel_timeout_ms", test_wheel_timeout_ms},
        {"test_wheel_callback_rearm_no_loop", test_wheel_callback_rearm_no_loop},
        {"test_wheel_random_100k", test_wheel_random_100k},
        {"test_wheel_big_time_jump", test_wheel_big_time_jump},
        {"test_wheel_timeout_hint_matches_scan", test_wheel_timeout_hint_matches_scan},
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
    SRunner *sr = srunner_create(wheel_suite());
    srunner_run_all(sr, CK_ENV);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
