/* Allowed CPUs (see cpus.h). */
#include "cpus.h"

#include <errno.h>
#include <unistd.h>

#include "rw_assert.h"

int rw__cpus_allowed(cpu_set_t *set)
{
    RW_ASSERT(set != NULL);
    /* A cpu_set_t covers CPU_SETSIZE (1024) CPUs; beyond that EINVAL, and we fall back. */
    if (sched_getaffinity(0, sizeof(*set), set) == 0) {
        int count = CPU_COUNT(set);
        if (count > 0)
            return count;
    }
    int err = errno ? -errno : -EINVAL;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    CPU_ZERO(set);
    for (long i = 0; i < (online > 0 ? online : 1) && i < CPU_SETSIZE; i++)
        CPU_SET((size_t)i, set);
    return err;
}

int rw__cpus_nth(const cpu_set_t *set, int count, unsigned n)
{
    RW_ASSERT(set != NULL);
    RW_ASSERT(count >= 1);
    RW_ASSERT(count == CPU_COUNT(set));
    unsigned want = n % (unsigned)count;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET((size_t)cpu, set) && want-- == 0)
            return cpu;
    RW_ASSERT(!"count matches the set");
    return 0;
}
