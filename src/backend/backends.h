/*
 * Backend-private: what the backends export to the registry (registry.c), the
 * only file outside a backend that names them. The core sees backends only
 * through core/backend.h.
 */
#ifndef RW_BACKENDS_H
#define RW_BACKENDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"

extern const struct rw_backend_ops rw__epoll_ops;
extern const struct rw_backend_ops rw__uring_ops;

/*
 * Probe io_uring for everything the uring backend needs. 0 when usable, else
 * -errno with why (and the remedy) in reason.
 */
int rw__uring_probe(char *reason, size_t reason_bytes);
/* Print the kernel version and each io_uring feature with yes/no (--probe). */
void rw__uring_probe_print(FILE *out);
/* --probe: per optional feature, kernel support, compiled support, default, and why. */
void rw__uring_features_print(FILE *out);
/* Kernel support of each optional feature, probed on a small ring (enum rw_uring_feature). */
uint32_t rw__uring_features_kernel(void);
/*
 * send-zc: 0 when the kernel has IORING_OP_SEND_ZC and IORING_OP_SENDMSG_ZC (6.1), with
 * *report_usage whether it also takes IORING_SEND_ZC_REPORT_USAGE (6.2); else -EOPNOTSUPP.
 */
int rw__uring_send_zc_probe(bool *report_usage);

#endif
