/*
 * Hashed timing wheel: one per loop. Arm and cancel are O(1); advancing
 * touches only the slots whose ticks passed. A timer never fires before its
 * deadline and at most one tick after it (plus the caller's own lateness).
 * Deadlines beyond one revolution stay in their slot and are re-checked when
 * it comes round. Callers re-arm lazily: keep a last-activity time and, when
 * the timer fires, re-arm to the real deadline instead of re-arming on every byte.
 */
#ifndef RW_WHEEL_H
#define RW_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rw_timer {
    struct rw_timer *next; /* NULL and prev NULL when not armed */
    struct rw_timer *prev;
    uint64_t deadline_ms;
};

struct rw_wheel {
    struct rw_timer *slots; /* slot_count sentinel heads (circular lists) */
    uint32_t slot_count;    /* power of two */
    uint32_t tick_ms;
    uint64_t current_tick; /* every tick < current_tick has been processed */
    uint64_t armed;        /* timers armed */
};

/* Fires with the timer already disarmed; the callback may re-arm or free it. */
typedef void (*rw_timer_fn)(void *ctx, struct rw_timer *t);

/* 0 or -EINVAL (slot_count not a power of two, tick 0) or -ENOMEM. */
int rw__wheel_init(struct rw_wheel *w, uint32_t slot_count, uint32_t tick_ms, uint64_t now_ms);
void rw__wheel_destroy(struct rw_wheel *w);

static inline void rw__timer_init(struct rw_timer *t)
{
    t->next = NULL;
    t->prev = NULL;
    t->deadline_ms = 0;
}
static inline bool rw__timer_armed(const struct rw_timer *t)
{
    return t->next != NULL;
}

/* Arm (or move) t to fire at deadline_ms (a deadline in the past fires on the next advance). */
void rw__wheel_arm(struct rw_wheel *w, struct rw_timer *t, uint64_t deadline_ms);
/* Disarm t; harmless if not armed. */
void rw__wheel_cancel(struct rw_wheel *w, struct rw_timer *t);
/* Fire every timer with deadline <= now_ms; returns how many fired. */
uint32_t rw__wheel_advance(struct rw_wheel *w, uint64_t now_ms, rw_timer_fn fn, void *ctx);
/* Milliseconds from now_ms until the next advance can fire something:
 * -1 when no timer is armed, 0 when one is already due. */
int64_t rw__wheel_timeout_ms(const struct rw_wheel *w, uint64_t now_ms);

#endif
