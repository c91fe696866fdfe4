/*
 * The ringwire program's --help text (cli.h), kept beside the option table
 * (cli.c): limits and defaults are printed from rw_limits.h and the options'
 * defaults, so the text cannot drift from what parsing enforces.
 */
#include "cli.h"

#include <stdio.h>
#include <sys/resource.h>

#include "rw_assert.h"
#include "framing.h"
#include "rw_limits.h"
#include "uring_features.h"

void rw__cli_usage(FILE *out)
{
    RW_ASSERT(out != NULL);
    char frame_max[32], buf_size_max[32], buf_size_default[32], buf_payload[32], mem_default[32];
    char uring_default[128];
    rw__uring_features_format(RW_UF_DEFAULT, uring_default, sizeof(uring_default));
    /* Limits come from rw_limits.h so the text cannot drift from what parsing enforces. */
    fprintf(
        out,
        "Usage: ringwire [OPTIONS]\n"
        "A length-prefixed TCP echo server on io_uring or epoll. A frame is a 4-byte\n"
        "big-endian payload length, then the payload (--length-* change that); each\n"
        "frame is answered with an identical frame, in order.\n"
        "\n"
        "Options (default in brackets):\n"
        "  --backend uring|epoll|auto  I/O engine. auto picks uring when the kernel\n"
        "                              has every io_uring feature it needs, else\n"
        "                              epoll, and logs why; uring fails if a\n"
        "                              feature is missing [auto]\n"
        "  --listen HOST:PORT          address to listen on; repeat for more (up to\n"
        "                              %u). HOST: a name (getaddrinfo; every address\n"
        "                              it resolves to, e.g. localhost: 127.0.0.1 and\n"
        "                              ::1), IPv4, or IPv6 in brackets, e.g.\n"
        "                              [::1]:7000, [fe80::1%%eth0]:7000; 0.0.0.0 or\n"
        "                              [::] for all. PORT: a number (0 picks a free\n"
        "                              port) or a service name (http). Every worker\n"
        "                              listens on every address [127.0.0.1:7000]\n"
        "  --ipv6-dual-stack           IPv6 listeners take IPv4 too ([::] all of\n"
        "                              both); else IPV6_V6ONLY: [::] is IPv6 only,\n"
        "                              whatever net.ipv6.bindv6only says [off]\n"
        "  --threads N                 worker threads, each with its own loop and\n"
        "                              SO_REUSEPORT listener, 1 to %u [the CPUs\n"
        "                              this process may run on: its affinity mask]\n"
        "  --cpu-affinity              pin worker i to the i-th CPU of that mask\n"
        "                              (wrapping) [off]\n"
        "  --idle-timeout DUR          close a connection that received and sent\n"
        "                              nothing for DUR; 0 disables [60s]\n"
        "  --frame-timeout DUR         a frame once started must complete within\n"
        "                              DUR; 0 disables [30s]\n"
        "  --tcp-user-timeout DUR      TCP_USER_TIMEOUT: the kernel drops a\n"
        "                              connection whose sent data stays\n"
        "                              unacknowledged for DUR (a vanished peer);\n"
        "                              0 keeps the kernel's (~15 min) [30s]\n"
        "  --keepalive DUR             TCP keepalive: probe a peer silent for DUR,\n"
        "                              so a vanished one is dropped within about\n"
        "                              2 x DUR (or --tcp-user-timeout, if longer);\n"
        "                              whole seconds; 0 disables [0]\n"
        "  --max-frame SIZE            largest payload accepted, at most %s; a\n"
        "                              larger one closes the connection after the\n"
        "                              frames before it are answered; 0 allows only\n"
        "                              empty frames [1M]\n"
        "  --length-bytes 1|2|3|4|8    width of the length field [4]\n"
        "  --length-order big|little   byte order of the length field [big]\n"
        "  --length-offset N           header bytes before the length field (echoed\n"
        "                              as they came), 0 to %u [0]\n"
        "  --length-adjust N           signed, added to the field's value to give the\n"
        "                              payload length, e.g. -4 when it counts its own\n"
        "                              4 bytes; --max-frame applies to the result; a\n"
        "                              result below 0 is a protocol error [0]\n"
        "  --max-conns N               open connections at most (whole process);\n"
        "                              more are closed at once and counted; the\n"
        "                              soft RLIMIT_NOFILE is raised to fit [10000]\n"
        "  --backlog N                 listen backlog, clamped by\n"
        "                              net.core.somaxconn with a warning [4096]\n"
        "  --proxy-protocol            each connection starts with a PROXY protocol\n"
        "                              v1 or v2 header (HAProxy send-proxy[-v2]),\n"
        "                              within --frame-timeout; logs name the client\n"
        "                              it gives; one without a valid header is\n"
        "                              closed (closed_proxy) [off]\n"
        "  --write-buffer SIZE         replies queued per connection before the\n"
        "                              server stops reading from it, until they\n"
        "                              drain below half; 1 to 1G [4M]\n"
        "  --max-memory SIZE           one budget for reassembly buffers and queued\n"
        "                              replies over all connections; at it, growing\n"
        "                              connections stop being read and the largest\n"
        "                              are closed; 0 = no limit [a quarter of RAM\n"
        "                              or of the cgroup's memory.max: %s here]\n"
        "  --drain-timeout DUR         on SIGTERM/SIGINT, how long to finish\n"
        "                              in-flight work before closing by force [10s]\n"
        "  --stats-interval DUR        print one line of counters every DUR;\n"
        "                              0 disables [0]\n"
        "  --stats-json FILE           also write the counters as JSON to FILE, with\n"
        "                              version, backend, uptime and a timestamp [none]\n"
        "  --metrics HOST:PORT         serve the counters to Prometheus over HTTP at\n"
        "                              http://HOST:PORT/metrics (numeric address;\n"
        "                              port 0 picks a free one, logged) [off]\n"
        "  --log-level LEVEL           stderr verbosity: error, warn, info or debug\n"
        "                              [info]\n"
        "  --log-format FORMAT         plain, or journal: each line starts with its\n"
        "                              syslog priority (<3> error, <4> warn, <6> info,\n"
        "                              <7> debug); auto is journal when stderr is the\n"
        "                              systemd journal (JOURNAL_STREAM) [auto]\n"
        "  --log-timestamps            start each line with the local time,\n"
        "                              RFC 3339 with milliseconds [off]\n"
        "  --buf-count N               uring: provided receive buffers per worker,\n"
        "                              a power of two up to %u [%u]\n"
        "  --buf-size SIZE             uring: bytes per provided buffer, %u to %s\n"
        "                              [%s: %s + %u, so a %s payload and its\n"
        "                              header arrive in one buffer]\n"
        "  --uring-features LIST       uring: optional io_uring features, e.g.\n"
        "                              +inc-bufs,-zc-replies, all or none; each is\n"
        "                              probed and falls back when the kernel lacks\n"
        "                              it; --probe lists them and why each is on\n"
        "                              or off by default\n"
        "                              [%s]; known:\n"
        "                              zc-replies, inc-bufs, reg-ring,\n"
        "                              min-wait, ring-timer, fixed-files, bundles,\n"
        "                              send-zc (zero-copy sends of 16 KiB+), sqpoll\n"
        "                              (a kernel thread polls the submission queue:\n"
        "                              needs a spare core), lazy-reap\n"
        "  --probe                     print the kernel's io_uring features and exit\n"
        "  -h, --help                  print this help and exit\n"
        "  -V, --version               print the version and the backends compiled in\n"
        "\n"
        "Every option takes '--opt VALUE' or '--opt=VALUE'; a later one overrides an\n"
        "earlier one, except --listen, which adds addresses.\n"
        "SIZE: bytes, or a number with K, M or G (powers of 1024), e.g. 4096, 64K, 1M.\n"
        "DUR: a number with ms, s or m (milliseconds, seconds, minutes), e.g. 250ms,\n"
        "10s, 2m; a bare number is seconds; at most 30 days.\n"
        "\n"
        "Signals:\n"
        "  SIGTERM, SIGINT  stop accepting, answer every complete frame already\n"
        "                   received, flush replies, close connections and exit 0\n"
        "                   (closing by force after --drain-timeout)\n"
        "  SIGUSR1          print the counters\n"
        "  SIGHUP           ignored (logged; there are no log files to reopen)\n"
        "  SIGPIPE          ignored\n"
        "\n"
        "Exit status:\n"
        "  0  clean shutdown (or --help, --version, --probe)\n"
        "  1  runtime failure; the message names what failed and why\n"
        "  2  bad usage or configuration; the message names the option and why\n"
        "     (also a --listen name that does not resolve: the resolver's reason)\n",
        RW_LISTEN_MAX, RW_THREADS_MAX,
        rw__cli_size_text(RW_FRAME_MAX_BYTES_CEILING, frame_max, sizeof(frame_max)),
        RW_FRAMING_OFFSET_MAX,
        rw__cli_size_text(
            rw__default_max_memory(rw__machine_memory_bytes(), rw__cgroup_memory_max_bytes()),
            mem_default, sizeof(mem_default)),
        RW_URING_BUF_COUNT_MAX, RW_URING_BUF_COUNT_DEFAULT, BUF_SIZE_MIN_BYTES,
        rw__cli_size_text(RW_URING_BUF_SIZE_MAX, buf_size_max, sizeof(buf_size_max)),
        rw__cli_size_text(RW_URING_BUF_SIZE_DEFAULT, buf_size_default, sizeof(buf_size_default)),
        rw__cli_size_text(RW_URING_BUF_SIZE_DEFAULT - RW_URING_BUF_HEADROOM, buf_payload,
                          sizeof(buf_payload)),
        RW_URING_BUF_HEADROOM, buf_payload, uring_default);
}

static const char *rlim_text(rlim_t v, char *buf, size_t buf_bytes)
{
    if (v == RLIM_INFINITY)
        snprintf(buf, buf_bytes, "unlimited");
    else
        snprintf(buf, buf_bytes, "%llu", (unsigned long long)v);
    return buf;
}

void rw__cli_usage_nofile(const struct rw_options *cfg, FILE *out)
{
    RW_ASSERT(cfg != NULL);
    RW_ASSERT(out != NULL);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    char soft[24], hard[24];
    uint64_t need = rw__nofile_needed(cfg);
    fprintf(out,
            "\nDescriptors: this process may open %s (RLIMIT_NOFILE soft limit, hard %s);\n"
            "--max-conns %u with --threads %u needs about %llu",
            rlim_text(rl.rlim_cur, soft, sizeof(soft)), rlim_text(rl.rlim_max, hard, sizeof(hard)),
            cfg->max_conns, cfg->threads, (unsigned long long)need);
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        fprintf(out, ".\n");
    else if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need)
        fprintf(out, "; at start the soft limit is\nraised to that.\n");
    else
        fprintf(out,
                ", more than the hard\nlimit: at start the soft limit is raised to %s and a "
                "warning says so;\nraise the hard limit (ulimit -Hn, LimitNOFILE=) or lower "
                "--max-conns.\n",
                hard);
}
