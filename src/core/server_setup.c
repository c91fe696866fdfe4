/*
 * The server's dealings with the machine (server_int.h): pinning a worker to
 * its CPU, explaining a failed setup with its remedy, and raising
 * RLIMIT_NOFILE for --max-conns.
 */
#include "server_int.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "backend.h"
#include "cpus.h"
#include "log.h"
#include "options.h"
#include "rw_limits.h"

/*
 * Worker i runs on the i-th CPU of the mask it inherited from the main thread (taskset -c 4-7:
 * worker 0 on CPU 4), wrapping: pinning to CPU i outside the mask would fail with EINVAL, or
 * crowd workers onto CPUs the operator kept for something else.
 */
void rw__server_pin_to_cpu(int worker_id)
{
    cpu_set_t allowed;
    int count = rw__cpus_allowed(&allowed);
    if (count < 0)
        count = CPU_COUNT(&allowed);
    int cpu = rw__cpus_nth(&allowed, count, (unsigned)worker_id);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0)
        RW_WARN("--cpu-affinity: CPU %d: %s", cpu, strerror(rc));
}

/* Out of descriptors: the process's limit (EMFILE) or the system's (ENFILE), not the backend. */
bool rw__server_is_fd_limit(int err)
{
    return err == -EMFILE || err == -ENFILE;
}

/* Why a worker's loop setup failed, with the remedy where we know one. */
void rw__server_describe_setup_error(const struct rw_options *cfg, const struct rw_backend_ops *ops,
                                     int err, char *buf, size_t bytes)
{
    struct rlimit rl;
    if (err == -EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        snprintf(buf, bytes,
                 "%s: the descriptor limit, not %s (RLIMIT_NOFILE is %llu; %u workers need "
                 "%u before any connection, --max-conns %u about %llu: raise it with "
                 "ulimit -n or LimitNOFILE=, or lower --threads / --max-conns)",
                 strerror(-err), ops->name, (unsigned long long)rl.rlim_cur, cfg->threads,
                 RW_NOFILE_STDIO + cfg->threads * RW_NOFILE_PER_WORKER, cfg->max_conns,
                 (unsigned long long)rw__nofile_needed(cfg));
        return;
    }
    if (err == -ENFILE) {
        snprintf(buf, bytes,
                 "%s: the system-wide descriptor limit, not %s (raise fs.file-max with "
                 "sysctl -w fs.file-max=N)",
                 strerror(-err), ops->name);
        return;
    }
    if (err == -ENOMEM && rw__backend_locks_memory(ops) && getrlimit(RLIMIT_MEMLOCK, &rl) == 0 &&
        rl.rlim_cur != RLIM_INFINITY) {
        /* The probe's small ring fits; N workers' full-size rings and buffer rings may not. */
        snprintf(buf, bytes,
                 "%s (RLIMIT_MEMLOCK is %llu KiB and every worker's rings count against it: "
                 "raise it with ulimit -l or LimitMEMLOCK=, or lower --threads / --buf-count)",
                 strerror(-err), (unsigned long long)rl.rlim_cur / 1024);
        return;
    }
    snprintf(buf, bytes, "%s", strerror(-err));
}

/*
 * Raise the soft RLIMIT_NOFILE to what --max-conns needs, up to the hard
 * limit, as Redis and memcached do: the usual soft default of 1024 would
 * leave clients beyond about a thousand queued unserved with no word said.
 * Below the need, one warning with both numbers and the remedy.
 */
void rw__server_fit_nofile(const struct rw_options *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        RW_WARN("getrlimit RLIMIT_NOFILE: %s", strerror(errno));
        return;
    }
    rlim_t need = (rlim_t)rw__nofile_needed(cfg);
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return;
    rlim_t want = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
    rlim_t was = rl.rlim_cur;
    if (want > rl.rlim_cur) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            RW_WARN("setrlimit RLIMIT_NOFILE %llu: %s", (unsigned long long)want, strerror(errno));
            return;
        }
        RW_INFO("RLIMIT_NOFILE: soft limit raised from %llu to %llu for --max-conns %u",
                (unsigned long long)was, (unsigned long long)want, cfg->max_conns);
    }
    if (want < need)
        RW_WARN("RLIMIT_NOFILE: --max-conns %u needs about %llu descriptors but the hard limit "
                "is %llu: clients beyond what it allows wait unaccepted; raise it (ulimit -n, "
                "LimitNOFILE=) or lower --max-conns",
                cfg->max_conns, (unsigned long long)need, (unsigned long long)want);
}
