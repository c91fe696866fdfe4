/*
 * Optional io_uring features of the uring backend (--uring-features): each
 * has a name, a kernel probe and a fallback, and is on by default only where
 * it measured faster on this project's machine (kernel-notes/18-21). The
 * names and defaults are options (struct rw_options) and so live with the
 * core; the probing and printing are the backend's (backend/backends.h).
 * Implemented in backend/uring_features.c.
 */
#ifndef RW_URING_FEATURES_H
#define RW_URING_FEATURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ringwire/ringwire.h> /* enum rw_uring_feature */

#define RW_UF_ALL                                                                                  \
    (RW_UF_ZC_REPLIES | RW_UF_INC_BUFS | RW_UF_REG_RING | RW_UF_MIN_WAIT | RW_UF_RING_TIMER |      \
     RW_UF_FIXED_FILES | RW_UF_BUNDLES | RW_UF_SEND_ZC | RW_UF_SQPOLL | RW_UF_LAZY_REAP)

/*
 * On by default only where it measured faster here (issue 11): zc-replies, for replies of
 * RW_ZC_MIN_BYTES and more (user time per frame halved at 4-8 KiB, -17% server CPU at 16 KiB
 * in 64 KiB buffers), ring-timer, which spares the wait an hrtimer each time the loop sleeps
 * (1-2% less server CPU per frame in open loop and single-connection ping-pong, paired runs;
 * kernel-notes/24), and bundles, which acts only on receives that span buffers (frames larger
 * than --buf-size): -15% server CPU per frame at 256 KiB ping-pong, no difference in any other
 * cell (kernel-notes/26). inc-bufs and reg-ring showed no difference on the shared 2-core VM,
 * and min-wait and lazy-reap measured slower (lazy-reap in closed loop); `benchmarks/run
 * --ablation` re-measures (kernel-notes/18-21, 29).
 */
#define RW_UF_DEFAULT (RW_UF_ZC_REPLIES | RW_UF_RING_TIMER | RW_UF_BUNDLES)

/*
 * Parse LIST: comma-separated "name", "+name" (on), "-name" (off), "all", "none";
 * applied left to right over *mask (start from RW_UF_DEFAULT). 0, or -EINVAL
 * with the reason in err.
 */
int rw__uring_features_parse(const char *list, uint32_t *mask, char *err, size_t err_bytes);
/* "a,b,c" of the bits in mask ("none" when empty). */
void rw__uring_features_format(uint32_t mask, char *buf, size_t buf_bytes);
#endif
