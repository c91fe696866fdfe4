/*
 * ringwire-bench: the load generator that benchmarks/run drives. It speaks the
 * ringwire wire format (4-byte big-endian length, then the payload) to an echo
 * server over many TCP connections and measures throughput and latency. It is
 * standalone: it links nothing of the server, so a server bug cannot hide in a
 * shared helper. Each client thread runs one epoll loop over its share of the
 * connections; a connection keeps --depth frames in flight (closed loop) or
 * sends on a fixed schedule (--rate, open loop; latency counts from the
 * intended send time, so a stalled server cannot hide queueing delay).
 *
 * Cost model: no allocation after start. Payloads are never copied: every
 * frame's payload is a window of one shared random pattern, picked by a hash
 * of (connection, sequence), and goes out through sendmsg iovecs; replies are
 * parsed as a stream out of a per-thread buffer (frames may be split
 * anywhere), and with --verify compared against the same window. One
 * clock_gettime per syscall, not per frame.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Bounds. */
#define CONNS_MAX      (1u << 20)
#define THREADS_MAX    256u
#define DEPTH_MAX      65536u
#define SIZE_MAX_BYTES (1u << 30)
/* Send-time slots (conns x depth, 8 bytes each) allocated at start: 1 GiB at most. */
#define SLOTS_MAX    (1ull << 27)
#define HEADER_BYTES 4u
/* Payload windows start at one of this many offsets into the pattern. */
#define PATTERN_SPAN 65536u
/* Frames per sendmsg (two iovecs each; IOV_MAX is 1024). */
#define SEND_BATCH_FRAMES 256u
#define RX_BUF_BYTES      (256u * 1024u)
/* Reads per readiness event before moving to the next connection (fairness). */
#define RX_READS_PER_EVENT 4
#define EPOLL_EVENTS       512
/* Idle wakeups: how often the loop checks the watchdog, the deadline and signals. */
#define TICK_NS             (100ull * 1000 * 1000)
#define WATCHDOG_NS_DEFAULT (10ull * 1000 * 1000 * 1000)
#define CONNECT_TIMEOUT_S   10
#define NS_PER_S            1000000000ull

/* Latency histogram, HDR-style log-linear: exact below 256 ns, then every
 * power of two [2^k, 2^(k+1)) split into 128 linear buckets, so a reported
 * value is within 1/128 (0.8%) of the truth; values clamp at 60 s (< 2^36). */
#define HIST_SUB_BITS 7u
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_LINEAR   (2u * HIST_SUB)
#define HIST_TOP_BIT  36u
#define HIST_BUCKETS  (HIST_LINEAR + (HIST_TOP_BIT - HIST_SUB_BITS - 1u) * HIST_SUB)
#define HIST_CLAMP_NS (60ull * NS_PER_S)

_Static_assert(HIST_CLAMP_NS < (1ull << HIST_TOP_BIT), "clamp fits the top bucket row");
_Static_assert((PATTERN_SPAN & (PATTERN_SPAN - 1)) == 0, "pattern span: power of two");
_Static_assert(2u * SEND_BATCH_FRAMES <= IOV_MAX, "a send batch fits IOV_MAX");
_Static_assert((uint64_t)SIZE_MAX_BYTES + HEADER_BYTES <= UINT32_MAX, "frame fits uint32");

struct config {
    const char *target;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    uint32_t conns;
    uint32_t threads;
    uint32_t size_bytes;
    uint32_t depth;
    uint64_t frames;      /* 0: run for duration_ns instead */
    uint64_t duration_ns; /* 0: run for frames instead */
    double rate;          /* frames/s over all connections; 0: closed loop */
    uint64_t watchdog_ns;
    bool verify;
    bool json;
    uint32_t hold;    /* --hold N: open N idle connections and keep them */
    uint64_t hold_ns; /* --hold-seconds */
    bool hold_echo;   /* --hold-echo: one echoed frame per held connection first */
    const char *mode; /* --mode preset, reported as given */
    /* --churn K: each connection carries K frames, is closed (FIN, or RST with
     * --close rst) and replaced by a new one; --connections M: M in all (fixed work). */
    uint64_t churn_frames;
    uint64_t churn_total;
    bool churn_rst;
};

struct hist {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t min_ns;
    uint64_t max_ns;
    uint64_t b[HIST_BUCKETS];
};

/* Per-run counters; each thread owns one, main sums them after join. */
struct counters {
    uint64_t frames_tx;
    uint64_t frames_rx;
    uint64_t bytes_tx;
    uint64_t bytes_rx;
    uint64_t mismatches;      /* replies whose payload differs (with --verify) */
    uint64_t protocol_errors; /* a reply with a wrong length or an unexpected reply */
    uint64_t lost;            /* frames sent that never came back */
    uint64_t closed_early;    /* connections closed or reset with work left */
    uint64_t connect_failed;
    uint64_t conns_opened;
    uint64_t conns_completed; /* --churn: carried all their frames, then closed by us */
};

struct conn {
    int fd;
    uint32_t id;        /* global index: seeds the payload of each frame */
    uint64_t quota;     /* frames to send; UINT64_MAX until a --duration run ends */
    uint64_t tx_commit; /* frames committed to the byte stream (timestamps taken) */
    uint64_t tx_done;   /* frames completely written */
    uint32_t tx_off;    /* bytes of frame tx_done already written */
    uint64_t rx_done;   /* replies completely received */
    uint32_t rx_hdr_have;
    uint8_t rx_hdr[HEADER_BYTES];
    uint32_t rx_left; /* payload bytes of the current reply still to come */
    const uint8_t *rx_expect;
    bool rx_bad;       /* the current reply already counted as a mismatch */
    uint64_t *sent_ns; /* closed loop: ring of depth send times, by sequence */
    bool want_out;
    bool finished;
    bool connecting; /* --churn: a non-blocking connect in progress */
};

struct worker {
    pthread_t thread;
    unsigned id;
    struct conn *conns;
    uint32_t n;
    uint32_t first;
    uint64_t *slots;
    uint8_t *rx_buf;
    int epfd;
    uint32_t active; /* connections neither finished nor failed */
    uint64_t quota_total;
    /* Open loop: the thread sends frame k (to conn k % n, sequence k / n) at
     * start_ns + k * period_ns; k_due frames are due so far. */
    double period_ns;
    uint64_t k_due;
    bool stopping;
    uint64_t start_ns;
    uint64_t end_ns;
    uint64_t last_progress_ns;
    uint64_t churn_left; /* --churn: connections this thread may still open */
    struct counters c;
    struct hist hist;
};

static struct config g_cfg;
static uint8_t *g_pattern;
static uint8_t g_header[HEADER_BYTES];
static pthread_barrier_t g_barrier;
static _Atomic bool g_connect_failed;
static uint64_t g_start_ns;
static struct rusage g_ru_start;
static volatile sig_atomic_t g_stop;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void on_stop_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull; /* splitmix64 finaliser */
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The payload of frame seq on connection id: a window of the shared pattern. */
static const uint8_t *payload_of(uint32_t id, uint64_t seq)
{
    return g_pattern + (mix64(((uint64_t)id << 40) ^ seq) & (PATTERN_SPAN - 1));
}

static int pattern_init(uint32_t size_bytes)
{
    size_t len = (size_t)size_bytes + PATTERN_SPAN;
    g_pattern = malloc(len);
    if (!g_pattern)
        return -ENOMEM;
    uint64_t s = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < len; i += 8) {
        s = mix64(s);
        for (size_t j = 0; j < 8 && i + j < len; j++)
            g_pattern[i + j] = (uint8_t)(s >> (8 * j));
    }
    g_header[0] = (uint8_t)(size_bytes >> 24);
    g_header[1] = (uint8_t)(size_bytes >> 16);
    g_header[2] = (uint8_t)(size_bytes >> 8);
    g_header[3] = (uint8_t)size_bytes;
    return 0;
}

/* ---- histogram ---------------------------------------------------------- */

static unsigned hist_index(uint64_t v)
{
    if (v < HIST_LINEAR)
        return (unsigned)v;
    if (v >= HIST_CLAMP_NS)
        v = HIST_CLAMP_NS;
    unsigned k = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS + 1 */
    unsigned sub = (unsigned)(v >> (k - HIST_SUB_BITS)) & (HIST_SUB - 1);
    return HIST_LINEAR + (k - HIST_SUB_BITS - 1) * HIST_SUB + sub;
}

/* The middle of bucket i. */
static uint64_t hist_value(unsigned i)
{
    if (i < HIST_LINEAR)
        return i;
    unsigned row = (i - HIST_LINEAR) / HIST_SUB;
    unsigned sub = (i - HIST_LINEAR) % HIST_SUB;
    unsigned shift = row + 1;
    uint64_t low = (uint64_t)(HIST_SUB + sub) << shift;
    return low + ((1ull << shift) >> 1);
}

static void hist_record(struct hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->count++;
    h->sum_ns += v;
    if (v < h->min_ns || h->count == 1)
        h->min_ns = v;
    if (v > h->max_ns)
        h->max_ns = v;
}

static void hist_merge(struct hist *into, const struct hist *from)
{
    if (!from->count)
        return;
    if (!into->count || from->min_ns < into->min_ns)
        into->min_ns = from->min_ns;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
    into->count += from->count;
    into->sum_ns += from->sum_ns;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
}

static uint64_t hist_percentile(const struct hist *h, double q)
{
    if (!h->count)
        return 0;
    uint64_t target = (uint64_t)ceil(q * (double)h->count);
    if (target < 1)
        target = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= target) {
            uint64_t v = hist_value(i);
            return v > h->max_ns ? h->max_ns : (v < h->min_ns ? h->min_ns : v);
        }
    }
    return h->max_ns;
}

/* ---- option parsing ----------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ringwire-bench [OPTIONS]\n"
            "Drive a ringwire echo server and report throughput and latency.\n"
            "\n"
            "  --connect HOST:PORT   server address; IPv6 as [::1]:7000; a name's addresses\n"
            "                        are tried in turn, the first that connects is used\n"
            "                        [127.0.0.1:7000]\n"
            "  --conns N             connections [64]\n"
            "  --size BYTES          payload bytes per frame; K/M/G suffixes [64]\n"
            "  --depth K             frames in flight per connection (closed loop) [1]\n"
            "  --duration DUR        run this long (ms/s/m suffix, bare = s) [5s]\n"
            "  --frames N            or send exactly N frames in all (fixed work)\n"
            "  --rate R              open loop: R frames/s over all connections; latency\n"
            "                        counts from each frame's intended send time\n"
            "  --threads N           client threads; connections split across them [1]\n"
            "  --verify              check every echoed payload byte\n"
            "  --json                print one JSON object instead of text\n"
            "  --timeout DUR         fail when frames are outstanding and nothing moved\n"
            "                        for DUR [10s]\n"
            "  --hold N              open N idle connections, keep them --hold-seconds,\n"
            "                        close them (for memory measurements); prints\n"
            "                        'holding N connections' once all are open\n"
            "  --hold-seconds DUR    how long --hold keeps them; SIGTERM ends it early [30s]\n"
            "  --hold-echo           --hold: first echo one --size frame on each (verified)\n"
            "  --churn K             connection churn: each connection connects, echoes K\n"
            "                        frames (--depth in flight), closes, and is replaced\n"
            "  --connections M       --churn: open M connections in all (fixed work)\n"
            "  --close fin|rst       --churn: close with FIN, or with RST (SO_LINGER 0) [fin]\n"
            "  --mode NAME           a workload preset, set before the other options:\n"
            "                        pingpong (depth 1), pipeline (depth 16),\n"
            "                        stream (4 conns, 256K frames, depth 8),\n"
            "                        churn (--churn 10); named in the output\n"
            "  -h, --help            this text\n"
            "\n"
            "Exit status: 0 all frames echoed intact; 1 a mismatch, a lost frame, a\n"
            "connection failure or reset; 2 bad usage.\n");
}

static _Noreturn __attribute__((format(printf, 2, 3))) void usage_error(const char *opt,
                                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ringwire-bench: %s: ", opt);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see ringwire-bench --help)\n");
    va_end(ap);
    exit(2);
}

/* A whole decimal number with an optional K/M/G (1024) suffix when sized. */
static bool parse_u64(const char *text, bool sized, uint64_t *out)
{
    if (*text < '0' || *text > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno)
        return false;
    unsigned shift = 0;
    if (sized && *end) {
        switch (*end) {
        case 'K':
        case 'k':
            shift = 10;
            break;
        case 'M':
        case 'm':
            shift = 20;
            break;
        case 'G':
        case 'g':
            shift = 30;
            break;
        default:
            return false;
        }
        end++;
    }
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

/* A non-negative decimal (fractions allowed) with an ms/s/m suffix; bare = s. */
static bool parse_duration(const char *text, uint64_t *out_ns)
{
    if ((*text < '0' || *text > '9') && *text != '.')
        return false;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || !(v >= 0))
        return false;
    double scale = 1e9;
    if (!strcmp(end, "ms"))
        scale = 1e6;
    else if (!strcmp(end, "m"))
        scale = 60e9;
    else if (*end && strcmp(end, "s"))
        return false;
    double ns = v * scale;
    if (ns > 1e18)
        return false;
    *out_ns = (uint64_t)ns;
    return true;
}

static void parse_target(const char *opt, const char *text, struct config *cfg)
{
    char host[256];
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || !colon[1])
        usage_error(opt, "'%s' is not HOST:PORT", text);
    const char *h = text;
    size_t hlen = (size_t)(colon - text);
    if (text[0] == '[') {
        if (hlen < 3 || text[hlen - 1] != ']')
            usage_error(opt, "'%s' is not [IPV6]:PORT", text);
        h = text + 1;
        hlen -= 2;
    }
    if (hlen >= sizeof(host))
        usage_error(opt, "'%s': host name too long", text);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    uint64_t port;
    if (!parse_u64(colon + 1, false, &port) || port == 0 || port > 65535)
        usage_error(opt, "'%s': port must be 1..65535", text);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "ringwire-bench: %s %s: %s\n", opt, text, gai_strerror(rc));
        exit(2);
    }
    /* The first address that takes a connection, as a client library would (localhost may be
     * ::1 first with the server on 127.0.0.1 only). One address: no probe, nothing extra for the
     * server to count. None connects: the first, and the run reports the failure. */
    const struct addrinfo *pick = res;
    if (res->ai_next != NULL) {
        for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0)
                continue;
            struct timeval tv = {.tv_sec = CONNECT_TIMEOUT_S};
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            int ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
            close(fd);
            if (ok) {
                pick = ai;
                break;
            }
        }
    }
    memcpy(&cfg->addr, pick->ai_addr, pick->ai_addrlen);
    cfg->addr_len = pick->ai_addrlen;
    freeaddrinfo(res);
    cfg->target = text;
}

static uint64_t need_u64(const char *opt, const char *v, bool sized, uint64_t lo, uint64_t hi)
{
    uint64_t x;
    if (!parse_u64(v, sized, &x))
        usage_error(opt, "'%s' is not a whole number", v);
    if (x < lo || x > hi) {
        fprintf(stderr, "ringwire-bench: %s: %s is outside %" PRIu64 "..%" PRIu64 "\n", opt, v, lo,
                hi);
        exit(2);
    }
    return x;
}

static uint64_t need_duration(const char *opt, const char *v)
{
    uint64_t ns;
    if (!parse_duration(v, &ns))
        usage_error(opt, "'%s' is not a duration (e.g. 500ms, 5s, 2m)", v);
    return ns;
}

/* --mode NAME: defaults for one workload family; later options override them. */
static void apply_mode(struct config *cfg, const char *name)
{
    if (!strcmp(name, "pingpong")) {
        cfg->depth = 1;
    } else if (!strcmp(name, "pipeline")) {
        cfg->depth = 16;
    } else if (!strcmp(name, "stream")) {
        cfg->conns = 4;
        cfg->size_bytes = 256u * 1024u;
        cfg->depth = 8;
    } else if (!strcmp(name, "churn")) {
        cfg->churn_frames = 10;
        cfg->depth = 1;
    } else {
        usage_error("--mode", "'%s' is not pingpong, pipeline, stream or churn", name);
    }
    cfg->mode = name;
}

/* One option with its value; returns false for an unknown option. */
static bool apply_option(struct config *cfg, const char *opt, const char *v)
{
    if (!strcmp(opt, "--connect")) {
        parse_target(opt, v, cfg);
    } else if (!strcmp(opt, "--conns")) {
        cfg->conns = (uint32_t)need_u64(opt, v, false, 1, CONNS_MAX);
    } else if (!strcmp(opt, "--size")) {
        cfg->size_bytes = (uint32_t)need_u64(opt, v, true, 0, SIZE_MAX_BYTES);
    } else if (!strcmp(opt, "--depth")) {
        cfg->depth = (uint32_t)need_u64(opt, v, false, 1, DEPTH_MAX);
    } else if (!strcmp(opt, "--duration")) {
        cfg->duration_ns = need_duration(opt, v);
        if (!cfg->duration_ns)
            usage_error(opt, "'%s' must be more than zero", v);
    } else if (!strcmp(opt, "--frames")) {
        cfg->frames = need_u64(opt, v, false, 1, UINT64_MAX >> 8);
    } else if (!strcmp(opt, "--rate")) {
        char *end;
        errno = 0;
        cfg->rate = strtod(v, &end);
        if (errno || end == v || *end || !(cfg->rate > 0) || cfg->rate > 1e9)
            usage_error(opt, "'%s' is not a rate in frames/s (0 < R <= 1e9)", v);
    } else if (!strcmp(opt, "--threads")) {
        cfg->threads = (uint32_t)need_u64(opt, v, false, 1, THREADS_MAX);
    } else if (!strcmp(opt, "--timeout")) {
        cfg->watchdog_ns = need_duration(opt, v);
        if (!cfg->watchdog_ns)
            usage_error(opt, "'%s' must be more than zero", v);
    } else if (!strcmp(opt, "--hold")) {
        cfg->hold = (uint32_t)need_u64(opt, v, false, 1, CONNS_MAX);
    } else if (!strcmp(opt, "--hold-seconds")) {
        cfg->hold_ns = need_duration(opt, v);
    } else if (!strcmp(opt, "--churn")) {
        cfg->churn_frames = need_u64(opt, v, false, 1, UINT32_MAX);
    } else if (!strcmp(opt, "--connections")) {
        cfg->churn_total = need_u64(opt, v, false, 1, UINT64_MAX >> 8);
    } else if (!strcmp(opt, "--close")) {
        if (strcmp(v, "fin") && strcmp(v, "rst"))
            usage_error(opt, "'%s' is not fin or rst", v);
        cfg->churn_rst = !strcmp(v, "rst");
    } else if (!strcmp(opt, "--mode")) {
        (void)v; /* applied by the pre-pass in parse_args */
    } else {
        return false;
    }
    return true;
}

static bool takes_value(const char *opt)
{
    static const char *const names[] = {"--connect",     "--conns",  "--size",         "--depth",
                                        "--duration",    "--frames", "--rate",         "--threads",
                                        "--timeout",     "--hold",   "--hold-seconds", "--churn",
                                        "--connections", "--close",  "--mode"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(opt, names[i]))
            return true;
    return false;
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    *cfg = (struct config){.conns = 64,
                           .threads = 1,
                           .size_bytes = 64,
                           .depth = 1,
                           .watchdog_ns = WATCHDOG_NS_DEFAULT,
                           .hold_ns = 30 * NS_PER_S};
    bool have_target = false;
    for (int i = 1; i < argc; i++) { /* presets first, so explicit options win */
        if (!strncmp(argv[i], "--mode=", 7))
            apply_mode(cfg, argv[i] + 7);
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
            apply_mode(cfg, argv[i + 1]);
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(arg, "--verify")) {
            cfg->verify = true;
            continue;
        } else if (!strcmp(arg, "--json")) {
            cfg->json = true;
            continue;
        } else if (!strcmp(arg, "--hold-echo")) {
            cfg->hold_echo = true;
            continue;
        }
        char opt[64];
        const char *value;
        const char *eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) != 0 || (eq && (size_t)(eq - arg) >= sizeof(opt))) {
            fprintf(stderr, "ringwire-bench: unknown option '%s' (see --help)\n", arg);
            exit(2);
        }
        if (eq) {
            memcpy(opt, arg, (size_t)(eq - arg));
            opt[eq - arg] = '\0';
            value = eq + 1;
        } else {
            snprintf(opt, sizeof(opt), "%s", arg);
            value = i + 1 < argc ? argv[i + 1] : NULL;
        }
        if (!value) {
            if (!takes_value(opt))
                goto unknown;
            fprintf(stderr, "ringwire-bench: %s needs a value\n", opt);
            exit(2);
        }
        if (!apply_option(cfg, opt, value))
            goto unknown;
        if (!eq)
            i++;
        if (!strcmp(opt, "--connect"))
            have_target = true;
        continue;
    unknown:
        fprintf(stderr, "ringwire-bench: unknown option '%s' (see --help)\n", opt);
        exit(2);
    }
    if (cfg->frames && cfg->duration_ns) {
        fprintf(stderr, "ringwire-bench: --frames and --duration: pick one\n");
        exit(2);
    }
    if (cfg->churn_frames && (cfg->frames || cfg->rate || cfg->hold)) {
        fprintf(stderr, "ringwire-bench: --churn: use --connections or --duration, closed loop\n");
        exit(2);
    }
    if (cfg->churn_total && !cfg->churn_frames) {
        fprintf(stderr, "ringwire-bench: --connections needs --churn K\n");
        exit(2);
    }
    if (cfg->churn_total && cfg->duration_ns) {
        fprintf(stderr, "ringwire-bench: --connections and --duration: pick one\n");
        exit(2);
    }
    if (cfg->churn_total && cfg->conns > cfg->churn_total)
        cfg->conns = (uint32_t)cfg->churn_total;
    if (!cfg->frames && !cfg->duration_ns && !cfg->churn_total)
        cfg->duration_ns = 5 * NS_PER_S;
    if (!have_target)
        parse_target("--connect", "127.0.0.1:7000", cfg);
    if (cfg->threads > cfg->conns)
        cfg->threads = cfg->conns;
    if (!cfg->rate && (uint64_t)cfg->conns * cfg->depth > SLOTS_MAX) {
        fprintf(stderr, "ringwire-bench: --depth: conns x depth is over %llu\n", SLOTS_MAX);
        exit(2);
    }
}

/* ---- connections -------------------------------------------------------- */

/* RLIMIT_NOFILE soft limit up to what we need (at most the hard limit). */
static void raise_nofile(uint64_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need)
        fprintf(stderr,
                "ringwire-bench: RLIMIT_NOFILE hard limit is %llu, below the %llu descriptors "
                "wanted; raise it (ulimit -Hn)\n",
                (unsigned long long)rl.rlim_max, (unsigned long long)need);
}

/* A blocking connect (bounded by SO_SNDTIMEO), then non-blocking with TCP_NODELAY. */
static int open_conn(void)
{
    int fd = socket(g_cfg.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = CONNECT_TIMEOUT_S};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&g_cfg.addr, g_cfg.addr_len) != 0) {
        int err = errno == EINPROGRESS ? ETIMEDOUT : errno;
        close(fd);
        return -err;
    }
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* --churn: a non-blocking connect; fd (connecting or connected) or -errno. */
static int open_conn_async(void)
{
    int fd = socket(g_cfg.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        (connect(fd, (struct sockaddr *)&g_cfg.addr, g_cfg.addr_len) != 0 &&
         errno != EINPROGRESS)) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* --churn: 1 once the connect completed, 0 while it is in progress, -errno if it failed. */
static int connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return -errno;
    if (err)
        return -err;
    /* An event may be stale (left from the slot's previous socket): ask the state. */
    struct tcp_info ti;
    len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -errno;
    return ti.tcpi_state == 1 /* TCP_ESTABLISHED */ ? 1 : 0;
}

/* Close as --close says: FIN (plain close), or RST (SO_LINGER with a zero timeout). */
static void close_conn_fd(int fd)
{
    if (g_cfg.churn_rst) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(fd);
}

static void report_connect_error(int err)
{
    static _Atomic bool said;
    if (!atomic_exchange(&said, true))
        fprintf(stderr, "ringwire-bench: connect %s: %s\n", g_cfg.target, strerror(-err));
}

static void ep_set(struct worker *w, struct conn *c, bool want_out)
{
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0u), .data.ptr = c};
    (void)epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want_out;
}

/* The connection is done with (success or failure): no more events for it. */
static void conn_finish(struct worker *w, struct conn *c)
{
    if (c->finished)
        return;
    c->finished = true;
    w->active--;
    if (c->fd >= 0) /* a finished connection must not keep waking the loop (EOF is level) */
        (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
}

/* The connection broke (EOF, reset, bad reply): what it had in flight is lost. */
static void conn_fail(struct worker *w, struct conn *c)
{
    if (c->finished)
        return;
    uint64_t outstanding = c->tx_commit - c->rx_done;
    w->c.lost += outstanding;
    if (outstanding || c->rx_done < c->quota)
        w->c.closed_early++;
    conn_finish(w, c);
}

static void conn_send(struct worker *w, struct conn *c, uint64_t now);

/* --churn: close a connection that carried its frames; open its successor if allowed. */
static void conn_recycle(struct worker *w, struct conn *c, uint64_t now)
{
    close_conn_fd(c->fd);
    c->fd = -1;
    w->c.conns_completed++;
    if (w->stopping || !w->churn_left) {
        c->finished = true;
        w->active--;
        return;
    }
    w->churn_left--;
    uint64_t *ring = c->sent_ns;
    uint32_t id = c->id;
    *c = (struct conn){.fd = -1, .id = id, .quota = g_cfg.churn_frames, .sent_ns = ring};
    int fd = open_conn_async();
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (fd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        report_connect_error(fd < 0 ? fd : -errno);
        if (fd >= 0)
            close(fd);
        w->c.connect_failed++;
        c->finished = true;
        w->active--;
        return;
    }
    c->fd = fd;
    c->connecting = true;
    c->want_out = true;
    w->last_progress_ns = now;
}

/* --churn: an event on a connecting socket. */
static void conn_connect_event(struct worker *w, struct conn *c, uint64_t now)
{
    int rc = connect_result(c->fd);
    if (rc == 0)
        return;
    if (rc < 0) {
        report_connect_error(rc);
        w->c.connect_failed++;
        close(c->fd);
        c->fd = -1;
        c->finished = true;
        w->active--;
        return;
    }
    c->connecting = false;
    w->c.conns_opened++;
    w->last_progress_ns = now;
    conn_send(w, c, now); /* leaves EPOLLIN, and EPOLLOUT only while blocked */
}

static void conn_check_done(struct worker *w, struct conn *c)
{
    if (c->rx_done != c->quota || c->tx_commit != c->quota || c->finished)
        return;
    if (g_cfg.churn_frames && !c->connecting)
        conn_recycle(w, c, now_ns());
    else
        conn_finish(w, c);
}

/* ---- sending ------------------------------------------------------------ */

/* How many frames this connection may have committed by now. */
static uint64_t send_allowance(const struct worker *w, const struct conn *c)
{
    uint64_t limit = c->quota;
    if (g_cfg.rate) {
        uint32_t j = (uint32_t)(c - w->conns);
        uint64_t due = w->k_due / w->n + (j < w->k_due % w->n ? 1 : 0);
        return due < limit ? due : limit;
    }
    uint64_t window = c->rx_done + g_cfg.depth;
    return window < limit ? window : limit;
}

/* Commit what the connection may send, then write as much as the socket takes. */
static void conn_send(struct worker *w, struct conn *c, uint64_t now)
{
    uint64_t allow = send_allowance(w, c);
    if (!g_cfg.rate)
        for (; c->tx_commit < allow; c->tx_commit++)
            c->sent_ns[c->tx_commit % g_cfg.depth] = now;
    else if (allow > c->tx_commit)
        c->tx_commit = allow;

    uint32_t frame_bytes = HEADER_BYTES + g_cfg.size_bytes;
    while (c->tx_done < c->tx_commit) {
        struct iovec iov[2 * SEND_BATCH_FRAMES];
        unsigned nio = 0;
        uint32_t off = c->tx_off;
        for (uint64_t s = c->tx_done; s < c->tx_commit && nio + 2 <= 2 * SEND_BATCH_FRAMES; s++) {
            if (off < HEADER_BYTES)
                iov[nio++] = (struct iovec){g_header + off, HEADER_BYTES - off};
            uint32_t poff = off > HEADER_BYTES ? off - HEADER_BYTES : 0;
            if (g_cfg.size_bytes > poff)
                iov[nio++] = (struct iovec){(void *)(uintptr_t)(payload_of(c->id, s) + poff),
                                            g_cfg.size_bytes - poff};
            off = 0;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = nio};
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            conn_fail(w, c);
            return;
        }
        w->c.bytes_tx += (uint64_t)n;
        w->last_progress_ns = now;
        uint64_t total = (uint64_t)c->tx_off + (uint64_t)n;
        uint64_t whole = total / frame_bytes;
        c->tx_done += whole;
        c->tx_off = (uint32_t)(total % frame_bytes);
        w->c.frames_tx += whole;
        size_t asked = 0;
        for (unsigned i = 0; i < nio; i++)
            asked += iov[i].iov_len;
        if ((size_t)n < asked)
            break; /* the socket buffer is full */
    }
    bool blocked = c->tx_done < c->tx_commit;
    if (blocked != c->want_out)
        ep_set(w, c, blocked);
}

/* ---- receiving ---------------------------------------------------------- */

static uint64_t intended_ns(const struct worker *w, const struct conn *c, uint64_t seq)
{
    uint64_t k = seq * w->n + (uint64_t)(c - w->conns);
    return w->start_ns + (uint64_t)((double)k * w->period_ns);
}

static void reply_done(struct worker *w, struct conn *c, uint64_t now)
{
    uint64_t seq = c->rx_done;
    uint64_t sent = g_cfg.rate ? intended_ns(w, c, seq) : c->sent_ns[seq % g_cfg.depth];
    hist_record(&w->hist, now > sent ? now - sent : 0);
    c->rx_done++;
    c->rx_hdr_have = 0;
    w->c.frames_rx++;
}

/* Starts a reply once its header is complete; false on a protocol error. */
static bool reply_begin(struct worker *w, struct conn *c)
{
    uint32_t len = (uint32_t)c->rx_hdr[0] << 24 | (uint32_t)c->rx_hdr[1] << 16 |
                   (uint32_t)c->rx_hdr[2] << 8 | c->rx_hdr[3];
    if (len != g_cfg.size_bytes || c->rx_done >= c->tx_done) {
        if (!w->c.protocol_errors)
            fprintf(stderr,
                    "ringwire-bench: conn %u: reply %" PRIu64 " has length %u (sent %u, %" PRIu64
                    " frames written)\n",
                    c->id, c->rx_done, len, g_cfg.size_bytes, c->tx_done);
        w->c.protocol_errors++;
        return false;
    }
    c->rx_left = len;
    c->rx_bad = false;
    c->rx_expect = payload_of(c->id, c->rx_done);
    return true;
}

/* Parses len bytes of reply stream; false when the stream is broken. */
static bool parse_replies(struct worker *w, struct conn *c, const uint8_t *p, size_t len,
                          uint64_t now)
{
    const uint8_t *end = p + len;
    while (p < end) {
        if (c->rx_hdr_have < HEADER_BYTES) {
            size_t take = HEADER_BYTES - c->rx_hdr_have;
            if (take > (size_t)(end - p))
                take = (size_t)(end - p);
            memcpy(c->rx_hdr + c->rx_hdr_have, p, take);
            c->rx_hdr_have += (uint32_t)take;
            p += take;
            if (c->rx_hdr_have < HEADER_BYTES)
                break;
            if (!reply_begin(w, c))
                return false;
            if (!c->rx_left)
                reply_done(w, c, now);
            continue;
        }
        size_t take = c->rx_left < (size_t)(end - p) ? c->rx_left : (size_t)(end - p);
        if (g_cfg.verify) {
            const uint8_t *want = c->rx_expect + (g_cfg.size_bytes - c->rx_left);
            if (!c->rx_bad && memcmp(p, want, take) != 0) {
                if (!w->c.mismatches)
                    fprintf(stderr, "ringwire-bench: conn %u: reply %" PRIu64 " differs\n", c->id,
                            c->rx_done);
                w->c.mismatches++;
                c->rx_bad = true; /* count each frame once */
            }
        }
        p += take;
        c->rx_left -= (uint32_t)take;
        if (!c->rx_left)
            reply_done(w, c, now);
    }
    return true;
}

static void conn_readable(struct worker *w, struct conn *c)
{
    for (int i = 0; i < RX_READS_PER_EVENT; i++) {
        ssize_t n = recv(c->fd, w->rx_buf, RX_BUF_BYTES, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) { /* EOF or reset */
            if (c->rx_done < c->quota || n < 0)
                conn_fail(w, c);
            else
                conn_finish(w, c);
            return;
        }
        uint64_t now = now_ns();
        w->c.bytes_rx += (uint64_t)n;
        w->last_progress_ns = now;
        if (!parse_replies(w, c, w->rx_buf, (size_t)n, now)) {
            conn_fail(w, c);
            return;
        }
        if (c->tx_commit < c->quota)
            conn_send(w, c, now);
        conn_check_done(w, c);
        if (c->finished || (size_t)n < RX_BUF_BYTES)
            return;
    }
}

/* ---- the loop ----------------------------------------------------------- */

/* Stop committing new frames (deadline, signal); what is in flight still counts. */
static void worker_stop_sending(struct worker *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    for (uint32_t j = 0; j < w->n; j++) {
        struct conn *c = &w->conns[j];
        if (c->finished)
            continue;
        if (c->connecting) { /* never opened: not counted */
            close(c->fd);
            c->fd = -1;
            c->finished = true;
            w->active--;
            continue;
        }
        c->quota = c->tx_commit;
        conn_check_done(w, c);
    }
}

/* Open loop: mark frames due up to now and push them out. */
static void worker_schedule(struct worker *w, uint64_t now)
{
    if (now < w->start_ns)
        return;
    uint64_t k = (uint64_t)((double)(now - w->start_ns) / w->period_ns) + 1;
    if (k > w->quota_total)
        k = w->quota_total;
    if (k <= w->k_due)
        return;
    uint64_t from = w->k_due;
    w->k_due = k;
    uint64_t touched = k - from < w->n ? k - from : w->n;
    for (uint64_t i = 0; i < touched; i++) {
        struct conn *c = &w->conns[(from + i) % w->n];
        if (!c->finished)
            conn_send(w, c, now);
    }
}

static int64_t worker_timeout_ns(const struct worker *w, uint64_t now, uint64_t deadline)
{
    uint64_t wake = now + TICK_NS;
    if (deadline && !w->stopping && deadline < wake)
        wake = deadline;
    if (g_cfg.rate && w->k_due < w->quota_total && !w->stopping) {
        uint64_t next = w->start_ns + (uint64_t)((double)w->k_due * w->period_ns);
        if (next < wake)
            wake = next;
    }
    return wake > now ? (int64_t)(wake - now) : 0;
}

static int wait_events(int epfd, struct epoll_event *ev, int max, int64_t timeout_ns)
{
    static _Atomic bool no_pwait2;
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        struct timespec ts = {.tv_sec = timeout_ns / (int64_t)NS_PER_S,
                              .tv_nsec = timeout_ns % (int64_t)NS_PER_S};
        int n = epoll_pwait2(epfd, ev, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store(&no_pwait2, true); /* kernel < 5.11 */
    }
    return epoll_wait(epfd, ev, max, (int)((timeout_ns + 999999) / 1000000));
}

/* The watchdog: frames are outstanding and nothing moved for --timeout. */
static bool worker_stalled(const struct worker *w, uint64_t now)
{
    if (now - w->last_progress_ns <= g_cfg.watchdog_ns)
        return false;
    for (uint32_t j = 0; j < w->n; j++)
        if (!w->conns[j].finished && w->conns[j].tx_commit > w->conns[j].rx_done)
            return true;
    return false;
}

static void worker_run(struct worker *w)
{
    uint64_t deadline = g_cfg.duration_ns ? w->start_ns + g_cfg.duration_ns : 0;
    struct epoll_event ev[EPOLL_EVENTS];
    uint64_t now = now_ns();
    w->last_progress_ns = now;
    for (uint32_t j = 0; j < w->n && !g_cfg.rate; j++)
        conn_send(w, &w->conns[j], now);
    while (w->active) {
        now = now_ns();
        if ((deadline && now >= deadline) || g_stop)
            worker_stop_sending(w);
        if (g_cfg.rate && !w->stopping)
            worker_schedule(w, now);
        if (!w->active)
            break;
        int n = wait_events(w->epfd, ev, EPOLL_EVENTS, worker_timeout_ns(w, now, deadline));
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "ringwire-bench: epoll_wait: %s\n", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = ev[i].data.ptr;
            if (c->finished)
                continue;
            if (c->connecting) {
                conn_connect_event(w, c, now_ns());
                continue;
            }
            if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                conn_readable(w, c);
            if (!c->finished && !c->connecting && (ev[i].events & EPOLLOUT))
                conn_send(w, c, now_ns());
        }
        if (n == 0 && worker_stalled(w, now_ns())) {
            fprintf(stderr,
                    "ringwire-bench: thread %u: frames outstanding and no progress for "
                    "%.1f s; giving up\n",
                    w->id, (double)(now_ns() - w->last_progress_ns) / 1e9);
            break;
        }
    }
    for (uint32_t j = 0; j < w->n; j++)
        conn_fail(w, &w->conns[j]); /* no-op for finished ones */
    w->end_ns = now_ns();
}

static int worker_setup(struct worker *w)
{
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
        return -errno;
    for (uint32_t j = 0; j < w->n; j++) {
        struct conn *c = &w->conns[j];
        if (!g_cfg.rate)
            c->sent_ns = w->slots + (uint64_t)j * g_cfg.depth;
        if (atomic_load(&g_connect_failed))
            return -ECANCELED;
        int fd = open_conn();
        if (fd < 0) {
            report_connect_error(fd);
            w->c.connect_failed++;
            return fd;
        }
        c->fd = fd;
        w->c.conns_opened++;
        if (c->finished)
            continue; /* nothing to send on it */
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            return -errno;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int rc = worker_setup(w);
    if (rc < 0)
        atomic_store(&g_connect_failed, true);
    /* Everyone connected: take one common start time, then go. */
    if (pthread_barrier_wait(&g_barrier) == PTHREAD_BARRIER_SERIAL_THREAD) {
        getrusage(RUSAGE_SELF, &g_ru_start);
        g_start_ns = now_ns();
    }
    pthread_barrier_wait(&g_barrier);
    w->start_ns = g_start_ns;
    if (!atomic_load(&g_connect_failed))
        worker_run(w);
    else
        w->end_ns = w->start_ns;
    for (uint32_t j = 0; j < w->n; j++)
        if (w->conns[j].fd >= 0)
            close(w->conns[j].fd);
    if (w->epfd >= 0)
        close(w->epfd);
    return NULL;
}

/* Split conns and frames across threads; conn i gets frames/conns (+1 for the first ones). */
static int workers_init(struct worker *ws, struct conn *conns, uint64_t *slots)
{
    uint32_t per = g_cfg.conns / g_cfg.threads, extra = g_cfg.conns % g_cfg.threads;
    uint32_t first = 0;
    for (uint32_t t = 0; t < g_cfg.threads; t++) {
        struct worker *w = &ws[t];
        w->id = t;
        w->first = first;
        w->n = per + (t < extra ? 1 : 0);
        w->conns = conns + first;
        w->slots = slots ? slots + (uint64_t)first * g_cfg.depth : NULL;
        w->active = w->n;
        w->epfd = -1;
        w->rx_buf = malloc(RX_BUF_BYTES);
        if (!w->rx_buf)
            return -ENOMEM;
        for (uint32_t j = 0; j < w->n; j++) {
            uint32_t i = first + j;
            conns[i].fd = -1;
            conns[i].id = i;
            uint64_t q = UINT64_MAX;
            if (g_cfg.churn_frames)
                q = g_cfg.churn_frames;
            else if (g_cfg.frames)
                q = g_cfg.frames / g_cfg.conns + (i < g_cfg.frames % g_cfg.conns ? 1 : 0);
            conns[i].quota = q;
            w->quota_total = q == UINT64_MAX ? UINT64_MAX : w->quota_total + q;
            if (g_cfg.frames && q == 0) {
                conns[i].finished = true; /* more conns than frames: nothing to do */
                w->active--;
            }
        }
        if (g_cfg.rate)
            w->period_ns = 1e9 * (double)g_cfg.conns / (g_cfg.rate * (double)w->n);
        w->churn_left = UINT64_MAX;
        if (g_cfg.churn_total) { /* successors beyond the first connections, split by share */
            uint64_t rest = g_cfg.churn_total - g_cfg.conns;
            w->churn_left = rest / g_cfg.threads + (t < rest % g_cfg.threads ? 1 : 0);
        }
        first += w->n;
    }
    return 0;
}

/* ---- output ------------------------------------------------------------- */

struct summary {
    struct counters c;
    struct hist *hist;
    double elapsed_s;
    double user_s;
    double sys_s;
    uint64_t errors;
};

static double us(uint64_t ns)
{
    return (double)ns / 1e3;
}

/* Client CPU over the run, in cores (1.0 = one core busy the whole time). */
static double cores(const struct summary *s)
{
    return s->elapsed_s > 0 ? (s->user_s + s->sys_s) / s->elapsed_s : 0.0;
}

static void print_text(const struct summary *s)
{
    const struct counters *c = &s->c;
    const struct hist *h = s->hist;
    double mib = 1024.0 * 1024.0, el = s->elapsed_s > 0 ? s->elapsed_s : 1e-9;
    printf("ringwire-bench: %s conns=%u threads=%u size=%u %s%s%s%s\n", g_cfg.target, g_cfg.conns,
           g_cfg.threads, g_cfg.size_bytes, g_cfg.verify ? "verify " : "",
           g_cfg.rate ? "open loop" : "closed loop", g_cfg.mode ? " mode=" : "",
           g_cfg.mode ? g_cfg.mode : "");
    if (g_cfg.rate)
        printf("  rate:        %.0f frames/s target, %.0f achieved\n", g_cfg.rate,
               (double)c->frames_tx / el);
    else
        printf("  depth:       %u frames in flight per connection\n", g_cfg.depth);
    printf("  frames:      %" PRIu64 " sent, %" PRIu64 " echoed in %.3f s\n", c->frames_tx,
           c->frames_rx, s->elapsed_s);
    printf("  throughput:  %.0f frames/s, %.2f MiB/s out, %.2f MiB/s in (%.3f / %.3f GB/s)\n",
           (double)c->frames_rx / el, (double)c->bytes_tx / mib / el,
           (double)c->bytes_rx / mib / el, (double)c->bytes_tx / 1e9 / el,
           (double)c->bytes_rx / 1e9 / el);
    printf("  latency us:  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (mean %.1f, "
           "%" PRIu64 " samples)\n",
           us(hist_percentile(h, 0.5)), us(hist_percentile(h, 0.9)), us(hist_percentile(h, 0.99)),
           us(hist_percentile(h, 0.999)), us(h->max_ns), h->count ? us(h->sum_ns / h->count) : 0.0,
           h->count);
    printf("  errors:      %" PRIu64 " (closed early %" PRIu64 ", connect failed %" PRIu64
           ", bad reply %" PRIu64 "), lost frames %" PRIu64 "\n",
           s->errors, c->closed_early, c->connect_failed, c->protocol_errors, c->lost);
    printf("  mismatches:  %" PRIu64 "%s\n", c->mismatches, g_cfg.verify ? "" : " (not verified)");
    if (g_cfg.churn_frames)
        printf("  churn:       %" PRIu64 " connections opened, %" PRIu64 " completed (%" PRIu64
               " frames each, closed with %s): %.0f connections/s\n",
               c->conns_opened, c->conns_completed, g_cfg.churn_frames,
               g_cfg.churn_rst ? "RST" : "FIN", (double)c->conns_completed / el);
    else
        printf("  connections: %" PRIu64 " opened of %u\n", c->conns_opened, g_cfg.conns);
    printf("  client cpu:  user %.2f s, sys %.2f s = %.2f cores over the run\n", s->user_s,
           s->sys_s, cores(s));
}

static void print_json(const struct summary *s)
{
    const struct counters *c = &s->c;
    const struct hist *h = s->hist;
    double mib = 1024.0 * 1024.0, el = s->elapsed_s > 0 ? s->elapsed_s : 1e-9;
    printf("{\"target\": \"%s\", \"conns\": %u, \"threads\": %u, \"size\": %u, \"depth\": %u, "
           "\"rate\": %.3f, \"verify\": %s, ",
           g_cfg.target, g_cfg.conns, g_cfg.threads, g_cfg.size_bytes, g_cfg.depth, g_cfg.rate,
           g_cfg.verify ? "true" : "false");
    printf("\"frames_sent\": %" PRIu64 ", \"frames_received\": %" PRIu64
           ", \"bytes_sent\": %" PRIu64 ", \"bytes_received\": %" PRIu64 ", \"elapsed_s\": %.6f, ",
           c->frames_tx, c->frames_rx, c->bytes_tx, c->bytes_rx, s->elapsed_s);
    printf("\"frames_per_s\": %.1f, \"mib_per_s_out\": %.3f, \"mib_per_s_in\": %.3f, "
           "\"gb_per_s_out\": %.6f, \"gb_per_s_in\": %.6f, ",
           (double)c->frames_rx / el, (double)c->bytes_tx / mib / el,
           (double)c->bytes_rx / mib / el, (double)c->bytes_tx / 1e9 / el,
           (double)c->bytes_rx / 1e9 / el);
    printf("\"mode\": \"%s\", \"churn_frames\": %" PRIu64 ", \"close\": \"%s\", "
           "\"connections_completed\": %" PRIu64 ", \"conns_per_s\": %.1f, ",
           g_cfg.mode ? g_cfg.mode : (g_cfg.churn_frames ? "churn" : ""), g_cfg.churn_frames,
           g_cfg.churn_rst ? "rst" : "fin", c->conns_completed, (double)c->conns_completed / el);
    printf("\"latency_us\": {\"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, \"p999\": %.2f, "
           "\"max\": %.2f, \"min\": %.2f, \"mean\": %.2f, \"samples\": %" PRIu64 "}, ",
           us(hist_percentile(h, 0.5)), us(hist_percentile(h, 0.9)), us(hist_percentile(h, 0.99)),
           us(hist_percentile(h, 0.999)), us(h->max_ns), us(h->min_ns),
           h->count ? us(h->sum_ns / h->count) : 0.0, h->count);
    printf("\"errors\": %" PRIu64 ", \"lost_frames\": %" PRIu64 ", \"closed_early\": %" PRIu64
           ", \"connect_failed\": %" PRIu64 ", \"protocol_errors\": %" PRIu64
           ", \"mismatches\": %" PRIu64 ", \"connections\": %" PRIu64 ", ",
           s->errors, c->lost, c->closed_early, c->connect_failed, c->protocol_errors,
           c->mismatches, c->conns_opened);
    printf("\"client_cpu\": {\"user_s\": %.3f, \"sys_s\": %.3f, \"cores\": %.3f}, \"ok\": %s}\n",
           s->user_s, s->sys_s, cores(s), s->errors || c->lost || c->mismatches ? "false" : "true");
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* ---- modes -------------------------------------------------------------- */

static int run_load(void)
{
    raise_nofile((uint64_t)g_cfg.conns + 64);
    struct conn *conns = calloc(g_cfg.conns, sizeof(*conns));
    struct worker *ws = calloc(g_cfg.threads, sizeof(*ws));
    struct hist *total = calloc(1, sizeof(*total));
    uint64_t *slots = NULL;
    if (!g_cfg.rate)
        slots = calloc((size_t)g_cfg.conns * g_cfg.depth, sizeof(*slots));
    if (!conns || !ws || !total || (!g_cfg.rate && !slots) || pattern_init(g_cfg.size_bytes) < 0 ||
        workers_init(ws, conns, slots) < 0) {
        fprintf(stderr, "ringwire-bench: out of memory\n");
        return 1;
    }
    pthread_barrier_init(&g_barrier, NULL, g_cfg.threads);
    for (uint32_t t = 0; t < g_cfg.threads; t++) {
        int rc = pthread_create(&ws[t].thread, NULL, worker_main, &ws[t]);
        if (rc != 0) {
            fprintf(stderr, "ringwire-bench: pthread_create: %s\n", strerror(rc));
            exit(1); /* the barrier would wait forever */
        }
    }
    struct summary s = {.hist = total};
    uint64_t end = 0;
    for (uint32_t t = 0; t < g_cfg.threads; t++) {
        pthread_join(ws[t].thread, NULL);
        struct counters *c = &ws[t].c;
        s.c.frames_tx += c->frames_tx;
        s.c.frames_rx += c->frames_rx;
        s.c.bytes_tx += c->bytes_tx;
        s.c.bytes_rx += c->bytes_rx;
        s.c.mismatches += c->mismatches;
        s.c.protocol_errors += c->protocol_errors;
        s.c.lost += c->lost;
        s.c.closed_early += c->closed_early;
        s.c.connect_failed += c->connect_failed;
        s.c.conns_opened += c->conns_opened;
        s.c.conns_completed += c->conns_completed;
        hist_merge(total, &ws[t].hist);
        if (ws[t].end_ns > end)
            end = ws[t].end_ns;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s.user_s = tv_s(ru.ru_utime) - tv_s(g_ru_start.ru_utime);
    s.sys_s = tv_s(ru.ru_stime) - tv_s(g_ru_start.ru_stime);
    s.elapsed_s = end > g_start_ns ? (double)(end - g_start_ns) / 1e9 : 0.0;
    if (atomic_load(&g_connect_failed) && !s.c.connect_failed)
        s.c.connect_failed = 1;
    s.errors = s.c.closed_early + s.c.connect_failed + s.c.protocol_errors;
    if (g_cfg.json)
        print_json(&s);
    else
        print_text(&s);
    fflush(stdout);
    for (uint32_t t = 0; t < g_cfg.threads; t++)
        free(ws[t].rx_buf);
    free(slots);
    free(total);
    free(ws);
    free(conns);
    return s.errors || s.c.lost || s.c.mismatches ? 1 : 0;
}

/* Blocking exchange of frame 0 of connection i on fd (non-blocking, so poll). */
static int hold_echo_one(int fd, uint32_t i, uint8_t *buf)
{
    uint32_t frame_bytes = HEADER_BYTES + g_cfg.size_bytes;
    memcpy(buf, g_header, HEADER_BYTES);
    memcpy(buf + HEADER_BYTES, payload_of(i, 0), g_cfg.size_bytes);
    for (uint32_t done = 0, dir = 0; dir < 2; dir++) {
        for (done = 0; done < frame_bytes;) {
            struct pollfd pfd = {.fd = fd, .events = dir ? POLLIN : POLLOUT};
            if (poll(&pfd, 1, (int)(g_cfg.watchdog_ns / 1000000)) <= 0)
                return -ETIMEDOUT;
            ssize_t n = dir ? recv(fd, buf + frame_bytes + done, frame_bytes - done, 0)
                            : send(fd, buf + done, frame_bytes - done, MSG_NOSIGNAL);
            if (n == 0)
                return -ECONNRESET;
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return -errno;
            done += n > 0 ? (uint32_t)n : 0;
        }
    }
    return memcmp(buf, buf + frame_bytes, frame_bytes) ? -EBADMSG : 0;
}

/* --hold: N idle connections, for measuring the server's memory per connection. */
static int run_hold(void)
{
    raise_nofile((uint64_t)g_cfg.hold + 64);
    int *fds = malloc(sizeof(int) * g_cfg.hold);
    if (!fds)
        return 1;
    uint32_t open = 0;
    int status = 0;
    for (; open < g_cfg.hold; open++) {
        int fd = open_conn();
        if (fd < 0) {
            fprintf(stderr, "ringwire-bench: --hold: connection %u: connect %s: %s\n", open + 1,
                    g_cfg.target, strerror(-fd));
            status = 1;
            break;
        }
        fds[open] = fd;
    }
    uint8_t *buf = g_cfg.hold_echo ? malloc(2 * ((size_t)HEADER_BYTES + g_cfg.size_bytes)) : NULL;
    if (g_cfg.hold_echo && (!buf || pattern_init(g_cfg.size_bytes) < 0))
        status = 1;
    for (uint32_t i = 0; g_cfg.hold_echo && !status && i < open; i++) {
        int rc = hold_echo_one(fds[i], i, buf);
        if (rc < 0) {
            fprintf(stderr, "ringwire-bench: --hold-echo: connection %u: %s\n", i + 1,
                    strerror(-rc));
            status = 1;
        }
    }
    free(buf);
    if (!status) {
        printf("holding %u connections\n", open);
        fflush(stdout);
        uint64_t until = now_ns() + g_cfg.hold_ns;
        while (!g_stop && now_ns() < until)
            usleep(20000);
    }
    /* Connections the server closed meanwhile (e.g. over --max-conns) read EOF now. */
    uint32_t closed = 0;
    for (uint32_t i = 0; i < open; i++) {
        char b;
        ssize_t n = recv(fds[i], &b, 1, MSG_DONTWAIT | MSG_PEEK);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            closed++;
        close(fds[i]);
    }
    if (closed) {
        fprintf(stderr, "ringwire-bench: --hold: the server closed %u of %u connections\n", closed,
                open);
        status = 1;
    }
    printf("released %u connections (%u closed by the server)\n", open, closed);
    free(fds);
    return status;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv, &g_cfg);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (g_cfg.hold)
        return run_hold();
    return run_load();
}
