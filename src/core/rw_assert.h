/*
 * Assertions (TigerStyle): RW_ASSERT stays on in release builds for cheap
 * invariants; RW_DASSERT compiles away with NDEBUG for expensive ones.
 * A failed assertion is a bug in ringwire, never a way to handle bad input.
 */
#ifndef RW_ASSERT_H
#define RW_ASSERT_H

_Noreturn void rw__assert_fail(const char *expr, const char *file, int line);

#define RW_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0))                                                          \
            rw__assert_fail(#cond, __FILE__, __LINE__);                                            \
    } while (0)

#ifdef NDEBUG
#define RW_DASSERT(cond) ((void)0)
#else
#define RW_DASSERT(cond) RW_ASSERT(cond)
#endif

#define RW_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
