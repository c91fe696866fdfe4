/*
 * Library options: struct rw_options (include/ringwire/ringwire.h) is
 * everything a server is configured with, as plain data; here are the
 * internal helpers behind rw_options_init / rw_options_add_listen /
 * rw_options_check (options.c): the checks of a whole configuration against
 * the machine. The ringwire program fills it from its
 * command line (src/app/cli.h); value syntax is values.h's.
 */
#ifndef RW_OPTIONS_H
#define RW_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <ringwire/ringwire.h>

#include "log.h"
#include "rw_limits.h"
#include "values.h"

/*
 * The listen addresses the server uses: opt's, or when none was added the
 * default 127.0.0.1:7000, which rw_options_init leaves in listen[0] with
 * listen_count 0 (so the first rw_options_add_listen replaces it).
 */
static inline uint32_t rw__options_listen_count(const struct rw_options *opt)
{
    return opt->listen_count ? opt->listen_count : 1;
}

/* One worker per CPU of our affinity mask (at least 1, at most RW_THREADS_MAX). */
uint32_t rw__options_default_threads(void);

/*
 * The --max-memory default for a machine with phys_bytes of memory and a cgroup limit of
 * cgroup_bytes (0: none): a quarter of the smaller, so a flood of large frames or non-readers
 * cannot take the host down; at least RW_MEM_MIN_BYTES.
 */
uint64_t rw__default_max_memory(uint64_t phys_bytes, uint64_t cgroup_bytes);

/*
 * Can this configuration fit a machine with phys_bytes of memory? Its fixed memory (every
 * worker's provided-buffer ring on uring/auto, the connection table at --max-conns) must fit.
 * 0, or -EINVAL with err naming the options and the numbers.
 */
int rw__options_check_fit(const struct rw_options *cfg, uint64_t phys_bytes, char *err,
                          size_t err_bytes);

/*
 * Descriptors (RLIMIT_NOFILE) this configuration needs: --max-conns
 * connections, each worker's own descriptors and slack (rw_limits.h).
 */
uint64_t rw__nofile_needed(const struct rw_options *cfg);

/* This machine's memory in bytes (0: unknown). */
uint64_t rw__machine_memory_bytes(void);
/* The cgroup v2 memory.max of our cgroup (0 when none is set). */
uint64_t rw__cgroup_memory_max_bytes(void);

#endif
