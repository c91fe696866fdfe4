/* Zeroed tables mapped from the kernel and touched on demand (see lazymem.h). */
#include "lazymem.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

void *rw__lazy_calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    size_t bytes = count * size;
    if (bytes == 0)
        bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void rw__lazy_free(void *p, size_t count, size_t size)
{
    size_t bytes = count * size;
    if (p)
        munmap(p, bytes != 0 ? bytes : 1);
}
