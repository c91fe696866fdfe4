/*
 * Running the uring backend under valgrind memcheck (tests/run --valgrind,
 * built with -Dvalgrind=enabled). Valgrind 3.19 runs one thread at a time and
 * does not know that io_uring_enter can block, so a worker waiting in it keeps
 * valgrind's lock and the process stops (KDE bug 463859): under valgrind the
 * backend waits in poll() on the ring fd instead, a syscall valgrind lets
 * block, and only then reaps with a non-blocking io_uring_enter. Valgrind also
 * cannot see the kernel write received bytes into provided buffers, so each
 * completed receive is marked defined. In any other build, or when not
 * running under valgrind, these are no-ops and the normal wait is used.
 */
#ifndef RW_URING_VALGRIND_H
#define RW_URING_VALGRIND_H

#include <stdbool.h>
#include <stddef.h>

#include "rw_build_config.h"

#if RW_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
static inline bool rw__under_valgrind(void)
{
    return RUNNING_ON_VALGRIND != 0;
}
static inline void rw__vg_defined(const void *p, size_t n)
{
    (void)VALGRIND_MAKE_MEM_DEFINED(p, n);
}
#else
static inline bool rw__under_valgrind(void)
{
    return false;
}
static inline void rw__vg_defined(const void *p, size_t n)
{
    (void)p;
    (void)n;
}
#endif

#endif
