/* Process resource limits for the server (rlimits.c). */
#ifndef RW_RLIMITS_H
#define RW_RLIMITS_H

#include <stdbool.h>
#include <stddef.h>

#include "options.h"

struct rw_backend_ops;

/* Out of descriptors: the process's limit (EMFILE) or the system's (ENFILE), not the backend. */
bool rw__is_fd_limit(int err);
/* Why a worker's loop setup on ops failed with err, with the remedy where we know one. */
void rw__describe_setup_error(const struct rw_config *cfg, const struct rw_backend_ops *ops,
                              int err, char *buf, size_t bytes);
/* Raise the soft RLIMIT_NOFILE towards rw__nofile_needed(cfg); warn when the hard limit is lower.
 */
void rw__fit_nofile(const struct rw_config *cfg);

#endif
