/*
 * The CPUs this process may run on (its sched_getaffinity mask: taskset,
 * systemd's CPUAffinity=, a cgroup cpuset), for the default --threads and for
 * --cpu-affinity's pinning within that set.
 */
#ifndef RW_CPUS_H
#define RW_CPUS_H

#include <sched.h>

/*
 * The calling thread's allowed CPUs into *set; returns how many (>= 1), or
 * -errno (then *set holds CPUs 0 .. online - 1 and the caller may fall back).
 */
int rw__cpus_allowed(cpu_set_t *set);

/* The n-th CPU (from 0, wrapping around) of set, which holds count >= 1 CPUs. */
int rw__cpus_nth(const cpu_set_t *set, int count, unsigned n);

#endif
