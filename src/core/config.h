/*
 * Command-line configuration: every option of SPEC.md parsed into one struct.
 * Parsing never prints and never exits: errors come back as -EINVAL with a
 * message naming the option and why; main prints it and exits 2.
 */
#ifndef RW_CONFIG_H
#define RW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <ringwire/frame.h>

#include "log.h"
#include "rw_limits.h"

enum rw_backend_kind { RW_BACKEND_AUTO = 0, RW_BACKEND_URING, RW_BACKEND_EPOLL };
enum rw_config_action { RW_ACTION_RUN = 0, RW_ACTION_HELP, RW_ACTION_VERSION, RW_ACTION_PROBE };

/* One address to listen on: every worker opens one SO_REUSEPORT listener for it. */
struct rw_listen {
    char text[RW_LISTEN_TEXT_MAX]; /* the --listen it came from, as given: "localhost:7000" */
    struct sockaddr_storage addr;  /* one address it resolved to */
    socklen_t addr_len;
};

struct rw_config {
    enum rw_config_action action;
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
 * Parse argv (argv[0] is the program). Accepts "--opt value" and "--opt=value".
 * Returns 0, or -EINVAL with err holding e.g. "--max-frame: invalid size 'abc'"
 * (the option named first). -h/--help and -V/--version set cfg->action.
 */
int rw__config_parse(struct rw_config *cfg, int argc, char *const argv[], char *err,
                     size_t err_bytes);

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

/* "123", "4K", "1M", "2G" (powers of 1024). 0 or -EINVAL / -ERANGE. */
int rw__parse_size(const char *text, uint64_t *out_bytes);
/* "250ms", "10s", "2m", bare number = seconds. 0 or -EINVAL / -ERANGE. */
int rw__parse_duration_ms(const char *text, uint64_t *out_ms);
/* "127.0.0.1:7000", "[::1]:7000", "0.0.0.0:80", "[::]:0". 0 or -EINVAL. Numeric only (no DNS). */
int rw__parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addr_len);
/*
 * HOST:PORT as --listen takes it: HOST a numeric IPv4 address, an IPv6 one in brackets (scope
 * id too, as rw__parse_listen), or a name resolved with getaddrinfo, which yields every address
 * it has (localhost: 127.0.0.1 and ::1 when /etc/hosts says so), in the resolver's order,
 * duplicates dropped; PORT a number or a service name ("http", from /etc/services). Writes up
 * to max addresses to out and their number to *count. 0; -EINVAL with the reason (for a name,
 * the resolver's: gai_strerror) in why; -E2BIG when there are more than max.
 */
int rw__resolve_listen(const char *text, struct rw_listen *out, unsigned max, unsigned *count,
                       char *why, size_t why_bytes);

/*
 * Keepalive probe schedule for --keepalive idle_s (> 0): the first probe after
 * idle_s of silence, then one every *intvl_s, *probes unanswered in all, so
 * idle_s + intvl_s * probes <= 2 * idle_s (a silent peer is found within
 * about twice the setting; kernel-notes/11). idle_s <= RW_KEEPALIVE_MAX_S.
 */
void rw__keepalive_schedule(uint32_t idle_s, uint32_t *intvl_s, uint32_t *probes);

/*
 * Descriptors (RLIMIT_NOFILE) this configuration needs: --max-conns
 * connections, each worker's own descriptors and slack (rw_limits.h).
 */
uint64_t rw__nofile_needed(const struct rw_config *cfg);

/* The --help text. */
void rw__config_usage(FILE *out);
/*
 * The --help text's last lines, for this configuration: the descriptor limit
 * the process runs under now (RLIMIT_NOFILE soft/hard), what --max-conns
 * needs, and what the server will do about it at start.
 */
void rw__config_usage_nofile(const struct rw_config *cfg, FILE *out);

#endif
