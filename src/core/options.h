/*
 * Library options: everything a server is configured with, as plain data
 * (struct rw_config), with its defaults and the checks of a whole
 * configuration against the machine. The ringwire program fills it from its
 * command line (src/app/cli.h); value syntax is values.h's.
 */
#ifndef RW_OPTIONS_H
#define RW_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <ringwire/frame.h>

#include "log.h"
#include "rw_limits.h"
#include "values.h"

enum rw_backend_kind { RW_BACKEND_AUTO = 0, RW_BACKEND_URING, RW_BACKEND_EPOLL };

struct rw_config {
    enum rw_backend_kind backend;
    /* In --listen order; a name's addresses in the resolver's order. 1 .. RW_LISTEN_MAX. */
    struct rw_listen listen[RW_LISTEN_MAX];
    uint32_t listen_count;
    bool listen_given;            /* a --listen replaced the default 127.0.0.1:7000 */
    bool ipv6_dual_stack;         /* --ipv6-dual-stack: IPV6_V6ONLY off on IPv6 listeners */
    uint32_t threads;             /* >= 1; default: the CPUs of our affinity mask */
    bool cpu_affinity;            /* --cpu-affinity: pin worker i to the mask's i-th CPU */
    uint64_t idle_timeout_ms;     /* 0 disables */
    uint64_t frame_timeout_ms;    /* --frame-timeout: a started frame must complete; 0 disables */
    uint32_t tcp_user_timeout_ms; /* --tcp-user-timeout: TCP_USER_TIMEOUT; 0 = kernel default */
    uint32_t keepalive_idle_s;    /* --keepalive: TCP_KEEPIDLE; 0 disables SO_KEEPALIVE */
    uint32_t keepalive_intvl_s;   /* derived from keepalive_idle_s: TCP_KEEPINTVL */
    uint32_t keepalive_probes;    /* derived from keepalive_idle_s: TCP_KEEPCNT */
    uint32_t max_frame_bytes;     /* 0 .. RW_FRAME_MAX_BYTES_CEILING: the adjusted length */
    struct rw_framing framing;    /* --length-*: rw_framing_check() passes, adjust <= max */
    uint32_t max_conns;           /* 1 .. RW_CONNS_MAX */
    uint32_t backlog;             /* 1 .. INT_MAX; clamped by somaxconn at listen time */
    bool proxy_protocol;          /* --proxy-protocol: a PROXY v1/v2 header starts each conn */
    uint64_t write_buffer_bytes;  /* >= 1 */
    uint64_t max_memory_bytes;    /* --max-memory: reassembly + output, all workers; 0 = no limit */
    uint64_t drain_timeout_ms;
    uint64_t stats_interval_ms;  /* 0 disables */
    const char *stats_json_path; /* --stats-json FILE, NULL if unset (points into argv) */
    enum rw_log_level log_level;
    enum rw_log_format log_format;        /* --log-format auto|plain|journal */
    bool log_timestamps;                  /* --log-timestamps */
    bool metrics;                         /* --metrics given */
    struct sockaddr_storage metrics_addr; /* --metrics HOST:PORT (numeric) */
    socklen_t metrics_addr_len;
    uint32_t buf_count;      /* --buf-count: uring provided buffers (power of two) */
    uint32_t buf_size_bytes; /* --buf-size: bytes per provided buffer */
    uint32_t uring_features; /* --uring-features: enum rw_uring_feature bits wanted */
};

/* Fill every field with the documented default. */
void rw__config_defaults(struct rw_config *cfg);

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
int rw__config_check_fit(const struct rw_config *cfg, uint64_t phys_bytes, char *err,
                         size_t err_bytes);

/*
 * Descriptors (RLIMIT_NOFILE) this configuration needs: --max-conns
 * connections, each worker's own descriptors and slack (rw_limits.h).
 */
uint64_t rw__nofile_needed(const struct rw_config *cfg);

/* This machine's memory in bytes (0: unknown). */
uint64_t rw__machine_memory_bytes(void);
/* The cgroup v2 memory.max of our cgroup (0 when none is set). */
uint64_t rw__cgroup_memory_max_bytes(void);

#endif
