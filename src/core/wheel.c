/*
 * The hashed timing wheel (see wheel.h). Each slot is a circular doubly
 * linked list with a sentinel; a timer lives in slot (deadline / tick) mod
 * slots. Advancing walks the ticks that passed (at most one revolution) and
 * fires only timers whose deadline has really come; the rest wait for a
 * later revolution.
 */
#include "wheel.h"

#include <errno.h>
#include <stdlib.h>

#include "rw_assert.h"

static void list_init(struct rw_timer *head)
{
    head->next = head;
    head->prev = head;
}

static void list_unlink(struct rw_timer *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->next = NULL;
    t->prev = NULL;
}

static void list_push(struct rw_timer *head, struct rw_timer *t)
{
    t->prev = head->prev;
    t->next = head;
    head->prev->next = t;
    head->prev = t;
}

int rw__wheel_init(struct rw_wheel *w, uint32_t slot_count, uint32_t tick_ms, uint64_t now_ms)
{
    if (slot_count == 0 || (slot_count & (slot_count - 1)) != 0 || tick_ms == 0)
        return -EINVAL;
    w->slots = calloc(slot_count, sizeof(*w->slots));
    if (!w->slots)
        return -ENOMEM;
    for (uint32_t i = 0; i < slot_count; i++)
        list_init(&w->slots[i]);
    w->slot_count = slot_count;
    w->tick_ms = tick_ms;
    w->current_tick = now_ms / tick_ms;
    w->armed = 0;
    w->hint_valid = false;
    return 0;
}

void rw__wheel_destroy(struct rw_wheel *w)
{
    free(w->slots);
    w->slots = NULL;
}

void rw__wheel_arm(struct rw_wheel *w, struct rw_timer *t, uint64_t deadline_ms)
{
    if (rw__timer_armed(t))
        rw__wheel_cancel(w, t);
    uint64_t tick = deadline_ms / w->tick_ms;
    if (tick < w->current_tick)
        tick = w->current_tick; /* already due: fires on the next advance */
    t->deadline_ms = deadline_ms;
    list_push(&w->slots[tick & (w->slot_count - 1)], t);
    w->armed++;
    if (w->hint_valid) {
        /* The tick this slot is next walked at, within the current revolution. */
        uint64_t at = w->current_tick + ((tick - w->current_tick) & (w->slot_count - 1));
        if (at < w->hint_tick)
            w->hint_tick = at;
    }
}

void rw__wheel_cancel(struct rw_wheel *w, struct rw_timer *t)
{
    if (!rw__timer_armed(t))
        return;
    RW_ASSERT(w->armed > 0);
    struct rw_timer *neighbour = t->next;
    list_unlink(t);
    w->armed--;
    /* Emptied a slot (its sentinel is alone): maybe the one the hint names. */
    if (neighbour->next == neighbour)
        w->hint_valid = false;
}

/* Fire the due timers of one slot; others stay. The slot is detached first so that
 * callbacks may re-arm (into it, even) or cancel timers still waiting in it. */
static uint32_t fire_slot(struct rw_wheel *w, struct rw_timer *slot, uint64_t now_ms,
                          rw_timer_fn fn, void *ctx)
{
    if (slot->next == slot)
        return 0;
    struct rw_timer pending;
    list_init(&pending);
    pending.next = slot->next;
    pending.prev = slot->prev;
    pending.next->prev = &pending;
    pending.prev->next = &pending;
    list_init(slot);
    uint32_t fired = 0;
    while (pending.next != &pending) {
        struct rw_timer *t = pending.next;
        list_unlink(t);
        if (t->deadline_ms <= now_ms) {
            w->armed--;
            fired++;
            fn(ctx, t);
        } else {
            list_push(slot, t); /* a later revolution */
        }
    }
    return fired;
}

uint32_t rw__wheel_advance(struct rw_wheel *w, uint64_t now_ms, rw_timer_fn fn, void *ctx)
{
    /* Only ticks that have wholly passed are walked: every timer of such a tick (this
     * revolution) is due, so none waits a revolution, and none fires early. */
    uint64_t now_tick = now_ms / w->tick_ms;
    if (now_tick <= w->current_tick)
        return 0;
    uint64_t from = w->current_tick;
    if (now_tick - from > w->slot_count)
        from = now_tick - w->slot_count; /* one revolution visits every slot */
    /* Set first: a callback arming a past deadline lands in now_tick's slot (next walk). */
    w->current_tick = now_tick;
    w->hint_valid = false;
    uint32_t fired = 0;
    for (uint64_t tick = from; tick < now_tick; tick++)
        fired += fire_slot(w, &w->slots[tick & (w->slot_count - 1)], now_ms, fn, ctx);
    w->hint_valid = false; /* fire_slot put timers of later revolutions back */
    return fired;
}

int64_t rw__wheel_timeout_ms(struct rw_wheel *w, uint64_t now_ms)
{
    if (w->armed == 0)
        return -1;
    uint64_t now_tick = now_ms / w->tick_ms;
    if (now_tick > w->current_tick)
        return 0; /* ticks have passed unwalked */
    if (!w->hint_valid) {
        uint64_t tick = w->current_tick;
        uint32_t i = 0;
        for (; i < w->slot_count; i++, tick++) {
            const struct rw_timer *slot = &w->slots[tick & (w->slot_count - 1)];
            if (slot->next != slot)
                break;
        }
        if (i == w->slot_count)
            return (int64_t)w->slot_count * w->tick_ms;
        w->hint_tick = tick;
        w->hint_valid = true;
    }
    uint64_t at = (w->hint_tick + 1) * w->tick_ms; /* the slot is walked once its tick passed */
    return at > now_ms ? (int64_t)(at - now_ms) : 0;
}
