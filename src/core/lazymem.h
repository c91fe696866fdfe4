/*
 * Large zeroed tables touched on demand: the connection table and the uring
 * send contexts are sized for --max-conns but must cost only the pages used.
 * calloc usually gives that (big blocks are fresh mmaps), but not always:
 * with MALLOC_PERTURB_ set (meson test sets it) glibc memsets every calloc,
 * touching it all. So these come straight from mmap (MAP_NORESERVE: not
 * counted against overcommit until touched).
 */
#ifndef RW_LAZYMEM_H
#define RW_LAZYMEM_H

#include <stddef.h>

/* count x size zeroed bytes, untouched; NULL on overflow or failure (errno set). */
void *rw__lazy_calloc(size_t count, size_t size);
/* Free what rw__lazy_calloc(count, size) returned (NULL is fine). */
void rw__lazy_free(void *p, size_t count, size_t size);

#endif
