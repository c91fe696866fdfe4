/*
 * libringwire: build length-prefixed TCP servers on io_uring (or epoll).
 *
 * A server is a set of worker threads, each with its own event loop, its own
 * SO_REUSEPORT listener per address and its own connections. The application
 * gives a handler (struct rw_handler) whose callbacks run on the connection's
 * worker thread, inside its loop, never concurrently for one connection, and
 * never for two connections of one worker at once. Everything here returns 0
 * (or a count) on success and a negative errno on failure, unless it says
 * otherwise. The library never installs signal handlers, never calls exit and
 * never changes the process's signal dispositions: the program does (see
 * README "Embedding" for a complete minimal program). Its worker threads block
 * every blockable signal, so a program's sigwait or handler sees them.
 *
 * Lifetimes in short: a frame's bytes (struct rw_frame) are the server's and
 * valid only during on_frame; rw_conn_send_frame / rw_conn_send_raw copy;
 * rw_conn_send_ref references the caller's bytes until its release callback;
 * a struct rw_conn is valid from on_open until on_close returns.
 */
#ifndef RINGWIRE_H
#define RINGWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ringwire/export.h>
#include <ringwire/frame.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RINGWIRE_VERSION_MAJOR 0
#define RINGWIRE_VERSION_MINOR 2
#define RINGWIRE_VERSION_PATCH 0
/* "0.2.0": the library's version at run time (may differ from the header's). */
RW_API const char *rw_version(void);

/* ---- options: plain data, filled with defaults by rw_options_init ---- */

#define RW_LISTEN_MAX      16u  /* addresses a server listens on */
#define RW_LISTEN_TEXT_MAX 256u /* bytes of one address as written, NUL included */

enum rw_backend_kind { RW_BACKEND_AUTO = 0, RW_BACKEND_URING, RW_BACKEND_EPOLL };
enum rw_log_level { RW_LOG_ERROR = 0, RW_LOG_WARN, RW_LOG_INFO, RW_LOG_DEBUG };
enum rw_log_format { RW_LOG_FORMAT_AUTO = 0, RW_LOG_FORMAT_PLAIN, RW_LOG_FORMAT_JOURNAL };

/* Optional io_uring features (rw_options.uring_features bits; README "io_uring features"). */
enum rw_uring_feature {
    RW_UF_ZC_REPLIES = 1u << 0,  /* replies sent from the receive buffer they came in */
    RW_UF_INC_BUFS = 1u << 1,    /* incremental provided-buffer consumption (6.12) */
    RW_UF_REG_RING = 1u << 2,    /* registered ring fd for io_uring_enter (5.18) */
    RW_UF_MIN_WAIT = 1u << 3,    /* min-wait batching (6.12) */
    RW_UF_RING_TIMER = 1u << 4,  /* the wait's deadline as a timeout SQE kept across waits */
    RW_UF_FIXED_FILES = 1u << 5, /* sockets also in a registered file table (5.19) */
    RW_UF_BUNDLES = 1u << 6,     /* multishot recv bundles: one CQE, several buffers (6.10) */
    RW_UF_SEND_ZC = 1u << 7,     /* zero-copy sends (IORING_OP_SEND[MSG]_ZC, 6.1) of 16 KiB+ */
    RW_UF_SQPOLL = 1u << 8,      /* a kernel thread polls the submission queue (opt-in) */
    RW_UF_LAZY_REAP = 1u << 9,   /* a loop turn waits past sends whose completion is bookkeeping */
};

/* One address to listen on, resolved (rw_options_add_listen fills it). */
struct rw_listen {
    char text[RW_LISTEN_TEXT_MAX]; /* as given: "localhost:7000" */
    struct sockaddr_storage addr;  /* one address it resolved to */
    socklen_t addr_len;
};

/*
 * Every option of the server (README "Options" gives each one's meaning and
 * default; the CLI option of the same name in parentheses). Copied by
 * rw_server_start: the caller may reuse or free it afterwards.
 */
struct rw_options {
    enum rw_backend_kind backend;           /* --backend: auto = uring when probed usable */
    struct rw_listen listen[RW_LISTEN_MAX]; /* --listen; none added: 127.0.0.1:7000 */
    uint32_t listen_count;
    bool ipv6_dual_stack;         /* --ipv6-dual-stack */
    uint32_t threads;             /* --threads; 0 = one per CPU of the affinity mask */
    bool cpu_affinity;            /* --cpu-affinity */
    uint64_t idle_timeout_ms;     /* --idle-timeout; 0 disables */
    uint64_t frame_timeout_ms;    /* --frame-timeout; 0 disables */
    uint32_t tcp_user_timeout_ms; /* --tcp-user-timeout; 0 = kernel default */
    uint32_t keepalive_idle_s;    /* --keepalive; 0 disables SO_KEEPALIVE */
    uint32_t max_frame_bytes;     /* --max-frame: largest payload accepted */
    uint32_t max_conns;           /* --max-conns, process-wide */
    uint32_t backlog;             /* --backlog */
    bool proxy_protocol;          /* --proxy-protocol */
    uint64_t write_buffer_bytes;  /* --write-buffer: stop reading a connection above this */
    uint64_t max_memory_bytes;    /* --max-memory; 0 = no limit */
    uint64_t drain_timeout_ms;    /* --drain-timeout */
    uint64_t stats_interval_ms;   /* --stats-interval: a stats line at info; 0 disables */
    const char *stats_json_path;  /* --stats-json FILE or NULL (the string is copied) */
    bool metrics;                 /* --metrics given: serve Prometheus text at metrics_addr */
    struct sockaddr_storage metrics_addr;
    socklen_t metrics_addr_len;
    uint32_t buf_count;            /* --buf-count (uring) */
    uint32_t buf_size_bytes;       /* --buf-size (uring) */
    uint32_t uring_features;       /* --uring-features: enum rw_uring_feature bits */
    struct rw_framing framing;     /* --length-bytes/-order/-offset/-adjust (frame.h) */
    enum rw_log_level log_level;   /* --log-level (process-wide: applied by rw_server_start) */
    enum rw_log_format log_format; /* --log-format */
    bool log_timestamps;           /* --log-timestamps */
};

/* Fill every field with its documented default. */
RW_API void rw_options_init(struct rw_options *opt);
/*
 * Append HOST:PORT (numeric IPv4, [IPv6] with an optional %scope, or a name
 * resolved with getaddrinfo: every address it has; PORT a number or service
 * name). 0; -EINVAL with why in err (err may be NULL); -E2BIG past RW_LISTEN_MAX.
 */
RW_API int rw_options_add_listen(struct rw_options *opt, const char *host_port, char *err,
                                 size_t err_bytes);
/* Is every value in range, and does the configuration fit this machine? 0 or -EINVAL + err. */
RW_API int rw_options_check(const struct rw_options *opt, char *err, size_t err_bytes);

/* ---- connections and the handler ---- */

struct rw_conn;
struct rw_server;

/* Why a connection ended (on_close), as the counters count it. */
enum rw_close_reason {
    RW_CLOSE_PEER = 0,      /* the peer closed (FIN) after its last frame */
    RW_CLOSE_ERROR,         /* reset by the peer, or a socket error */
    RW_CLOSE_IDLE,          /* --idle-timeout */
    RW_CLOSE_FRAME_TIMEOUT, /* --frame-timeout */
    RW_CLOSE_TCP_TIMEOUT,   /* --tcp-user-timeout / keepalive gave up */
    RW_CLOSE_DEAD,          /* the peer was found gone (liveness sweep) */
    RW_CLOSE_PROTOCOL,      /* a bad frame (over --max-frame, below zero), after every reply */
    RW_CLOSE_HANDLER,       /* on_frame returned an error, after every reply already queued
                               (counted as closed_protocol) */
    RW_CLOSE_MEMORY,        /* --max-memory: one of the largest consumers */
    RW_CLOSE_PROXY,         /* --proxy-protocol: a bad or missing PROXY header (such a
                               connection never reaches on_open: not reported today) */
    RW_CLOSE_APP,           /* rw_conn_close */
    RW_CLOSE_SHUTDOWN,      /* the server stopped (drain ended or timed out) */
};
/* "peer", "error", "idle", ...: for logs. */
RW_API const char *rw_close_reason_name(enum rw_close_reason reason);

struct rw_handler {
    const char *name; /* for logs */
    /*
     * Optional. A new connection (after its PROXY header, under
     * --proxy-protocol). Set per-connection state with rw_conn_set_user.
     * Return 0, or a negative errno to refuse it: it is closed at once and
     * on_close is not called.
     */
    int (*on_open)(struct rw_conn *conn);
    /*
     * One complete frame. frame's bytes are the server's, valid only during
     * the call: copy what must outlive it. Return 0, or a negative errno to
     * close the connection: replies already queued still go out first (FIN,
     * then close), further input is ignored; on_close gets RW_CLOSE_HANDLER.
     */
    int (*on_frame)(struct rw_conn *conn, const struct rw_frame *frame);
    /*
     * Optional. Called exactly once for every connection on_open accepted
     * (or every connection, without on_open), when it is gone: free its user
     * data here. No rw_conn_* call may be made on conn after this returns.
     */
    void (*on_close)(struct rw_conn *conn, enum rw_close_reason reason);
};

/*
 * Queue one frame: the header from the server's framing (offset bytes zero),
 * then payload (copied: the caller keeps it). Replies leave in order, batched
 * once per loop turn. 0; -ERANGE when len cannot be expressed in the length
 * field; -ENOMEM (nothing queued); -EPIPE when the connection is closing.
 */
RW_API int rw_conn_send_frame(struct rw_conn *conn, const void *payload, uint32_t len);
/* Queue bytes already framed by the caller (copied; e.g. an echo of frame->header). */
RW_API int rw_conn_send_raw(struct rw_conn *conn, const void *bytes, size_t len);
/*
 * Queue one frame whose payload is sent by reference (zero copy): payload
 * must stay unchanged until release(arg) is called, once, on conn's worker
 * thread, when its bytes were sent or the connection closed (possibly inside
 * on_close's aftermath). On an error return release is not called.
 */
typedef void (*rw_release_fn)(void *arg);
RW_API int rw_conn_send_ref(struct rw_conn *conn, const void *payload, uint32_t len,
                            rw_release_fn release, void *arg);
/*
 * Close after every reply already queued went out (FIN, then close); input
 * after this is ignored. on_close follows with RW_CLOSE_APP. Idempotent.
 */
RW_API void rw_conn_close(struct rw_conn *conn);
/* The peer (under --proxy-protocol: the client its header named). 0 or -ENOTCONN. */
RW_API int rw_conn_peer(const struct rw_conn *conn, struct sockaddr_storage *addr, socklen_t *len);
RW_API void *rw_conn_user(const struct rw_conn *conn);
RW_API void rw_conn_set_user(struct rw_conn *conn, void *user);
/* The ctx given to rw_server_start; the worker (0 .. threads-1) serving conn. */
RW_API void *rw_conn_server_ctx(const struct rw_conn *conn);
RW_API unsigned rw_conn_worker(const struct rw_conn *conn);

/* ---- the server ---- */

/*
 * Start a server: resolve nothing more (opt's listen addresses are resolved),
 * raise RLIMIT_NOFILE as far as --max-conns needs, pick the backend, open the
 * listeners and start opt->threads workers; returns once every worker accepts
 * on every address. opt is copied; handler and ctx must outlive the server.
 * 0 with *out set, or -errno with why in err (err may be NULL).
 */
RW_API int rw_server_start(const struct rw_options *opt, const struct rw_handler *handler,
                           void *ctx, struct rw_server **out, char *err, size_t err_bytes);
/* Addresses listened on (as bound: port 0 became the kernel's choice). */
RW_API unsigned rw_server_address_count(const struct rw_server *srv);
RW_API int rw_server_address(const struct rw_server *srv, unsigned i, struct sockaddr_storage *addr,
                             socklen_t *len);
/* The port of address i (host order), 0 when i is out of range. */
RW_API uint16_t rw_server_port(const struct rw_server *srv, unsigned i);
/* "uring" or "epoll": the backend serving (auto may have fallen back). */
RW_API const char *rw_server_backend(const struct rw_server *srv);
RW_API unsigned rw_server_threads(const struct rw_server *srv);
/*
 * Begin a drain: stop accepting, let connections finish (--drain-timeout),
 * then the workers exit. Any thread; async-signal-safe; idempotent.
 */
RW_API void rw_server_stop(struct rw_server *srv);
/*
 * Block until rw_server_stop was called (or a worker failed) and the workers
 * have exited. 0, or -EIO when one failed at run time (logged). Once only.
 * The periodic stats line (stats_interval_ms) runs on a library thread of
 * its own, started only when that option is set.
 */
RW_API int rw_server_wait(struct rw_server *srv);
/* Free everything (after rw_server_wait). */
RW_API void rw_server_destroy(struct rw_server *srv);

/* Counters, summed over the workers (README "Stats" says what each counts). One per line;
 * clang-format 14 reflows this macro differently on every pass, so it is left alone. */
/* clang-format off */
#define RW_COUNTERS(X) \
    X(conns_open) \
    X(accepted) \
    X(closed) \
    X(rejected_limit) \
    X(reaped_idle) \
    X(reaped_frame_timeout) \
    X(reaped_tcp_timeout) \
    X(reaped_dead) \
    X(closed_protocol) \
    X(closed_error) \
    X(closed_memory) \
    X(closed_proxy) \
    X(frames_in) \
    X(frames_out) \
    X(bytes_in) \
    X(bytes_out) \
    X(backpressure_pauses) \
    X(memory_pauses) \
    X(mem_bytes)
/* clang-format on */
struct rw_counters {
#define RW_COUNTER_FIELD(name) uint64_t name;
    RW_COUNTERS(RW_COUNTER_FIELD)
#undef RW_COUNTER_FIELD
};
/* Any thread, any time between start and destroy (relaxed reads: a moment's view). */
RW_API void rw_server_counters(const struct rw_server *srv, struct rw_counters *out);
/* Log the stats line (the CLI's SIGUSR1): the total, and each worker when per_worker. */
RW_API void rw_server_log_stats(struct rw_server *srv, bool per_worker);

#ifdef __cplusplus
}
#endif

#endif
