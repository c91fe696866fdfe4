/*
 * Unit tests for the command line (src/app/cli.c) and the options (src/core/options.c): defaults,
 * every option in both "--opt value" and "--opt=value" form, the size,
 * duration and listen-address syntaxes, and every kind of bad input, which
 * must come back as -EINVAL with a message that names the option first.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/cli.h"
#include "listener.h"
#include "rw_limits.h"

#define ARGS_MAX    32
#define ARENA_BYTES 16384

/*
 * argv for rw__config_parse is char *const[]; string literals are const under
 * -Wwrite-strings, so the strings are copied here. They stay valid until the
 * next parse, which matters because cfg->stats_json_path points into argv.
 */
static char arena[ARENA_BYTES];
static char *args[ARGS_MAX + 1];
static char err[512];

/* The CLI's last parse: its action; the test reads the options as a struct rw_options. */
static struct rw_cli last_cli;

/* rw__cli_parse, with the options copied out whole (padding too: the tests memcmp them). */
static int config_parse(struct rw_options *cfg, int argc, char *const argv[], char *e, size_t n)
{
    int rc = rw__cli_parse(&last_cli, argc, argv, e, n);
    memcpy(cfg, &last_cli.cfg, sizeof(*cfg));
    return rc;
}

__attribute__((sentinel)) static int parse_args(struct rw_options *cfg, const char *first, ...)
{
    size_t used = 0;
    int argc = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *a = "ringwire"; a != NULL; a = argc == 1 ? first : va_arg(ap, const char *)) {
        size_t len = strlen(a) + 1;
        ck_assert_uint_le(used + len, sizeof(arena));
        ck_assert_int_lt(argc, ARGS_MAX);
        memcpy(arena + used, a, len);
        args[argc++] = arena + used;
        used += len;
    }
    va_end(ap);
    args[argc] = NULL;
    memset(err, 0, sizeof(err));
    int rc = config_parse(cfg, argc, args, err, sizeof(err));
    ck_assert(rc == 0 || rc == -EINVAL);
    if (rc == 0)
        ck_assert_str_eq(err, "");
    else
        ck_assert_uint_gt(strlen(err), 0);
    return rc;
}

#define PARSE(cfg, ...) parse_args((cfg), __VA_ARGS__, (const char *)NULL)

/* Parse one "--opt value" and the same as "--opt=value"; both must succeed alike. */
static void parse_both(struct rw_options *cfg, const char *opt, const char *value)
{
    char joined[PATH_MAX + 64];
    snprintf(joined, sizeof(joined), "%s=%s", opt, value);
    struct rw_options spaced;
    ck_assert_msg(PARSE(&spaced, opt, value) == 0, "%s %s: %s", opt, value, err);
    ck_assert_msg(PARSE(cfg, joined) == 0, "%s: %s", joined, err);
    if (spaced.stats_json_path != NULL) {
        /* Points into different argv copies; compare contents, then the rest. */
        ck_assert_str_eq(spaced.stats_json_path, cfg->stats_json_path);
        spaced.stats_json_path = cfg->stats_json_path;
    }
    ck_assert_msg(memcmp(&spaced, cfg, sizeof(spaced)) == 0, "%s: forms differ", opt);
}

/* value for opt is rejected in both forms, with a message "opt: ...containing...". */
static void expect_bad(const char *opt, const char *value, const char *containing)
{
    struct rw_options cfg;
    char joined[PATH_MAX + 64];
    char prefix[64];
    snprintf(joined, sizeof(joined), "%s=%s", opt, value);
    snprintf(prefix, sizeof(prefix), "%s: ", opt);
    for (int form = 0; form < 2; form++) {
        int rc = form == 0 ? PARSE(&cfg, opt, value) : PARSE(&cfg, joined);
        ck_assert_msg(rc == -EINVAL, "%s '%s' accepted", opt, value);
        ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "'%s' does not start with '%s'",
                      err, prefix);
        if (containing != NULL)
            ck_assert_msg(strstr(err, containing) != NULL, "'%s' lacks '%s'", err, containing);
    }
}

static void assert_v4(const struct sockaddr_storage *ss, socklen_t len, const char *ip,
                      uint16_t port)
{
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss;
    char text[INET_ADDRSTRLEN];
    ck_assert_int_eq(ss->ss_family, AF_INET);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
    ck_assert_ptr_nonnull(inet_ntop(AF_INET, &a4->sin_addr, text, sizeof(text)));
    ck_assert_str_eq(text, ip);
    ck_assert_uint_eq(ntohs(a4->sin_port), port);
}

static void assert_v6(const struct sockaddr_storage *ss, socklen_t len, const char *ip,
                      uint16_t port)
{
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss;
    char text[INET6_ADDRSTRLEN];
    ck_assert_int_eq(ss->ss_family, AF_INET6);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in6));
    ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &a6->sin6_addr, text, sizeof(text)));
    ck_assert_str_eq(text, ip);
    ck_assert_uint_eq(ntohs(a6->sin6_port), port);
}

START_TEST(test_config_defaults)
{
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, NULL), 0);
    ck_assert_int_eq(last_cli.action, RW_CLI_RUN);
    ck_assert_int_eq(cfg.backend, RW_BACKEND_AUTO);
    ck_assert_str_eq(cfg.listen[0].text, "127.0.0.1:7000");
    assert_v4(&cfg.listen[0].addr, cfg.listen[0].addr_len, "127.0.0.1", 7000);
    cpu_set_t allowed; /* the CPUs this process may run on, not every online one */
    ck_assert_int_eq(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
    long cpus = CPU_COUNT(&allowed);
    uint32_t want = cpus < 1 ? 1 : cpus > (long)RW_THREADS_MAX ? RW_THREADS_MAX : (uint32_t)cpus;
    ck_assert_uint_eq(cfg.threads, want);
    ck_assert_uint_ge(cfg.threads, 1);
    ck_assert(!cfg.cpu_affinity);
    ck_assert_uint_eq(cfg.idle_timeout_ms, 60000);
    ck_assert_uint_eq(cfg.frame_timeout_ms, 30000);
    ck_assert_uint_eq(cfg.tcp_user_timeout_ms, 30000);
    ck_assert_uint_eq(cfg.keepalive_idle_s, 0);
    ck_assert_uint_eq(cfg.listen_count, 0); /* listen[0] is the default until one is added */
    ck_assert_uint_eq(cfg.max_frame_bytes, 1u << 20);
    ck_assert_uint_eq(cfg.max_conns, 10000);
    ck_assert_uint_eq(cfg.backlog, 4096);
    ck_assert_uint_eq(cfg.write_buffer_bytes, 4u << 20);
    ck_assert_uint_eq(cfg.drain_timeout_ms, 10000);
    ck_assert_uint_eq(cfg.stats_interval_ms, 0);
    ck_assert_ptr_null(cfg.stats_json_path);
    ck_assert_int_eq(cfg.log_level, RW_LOG_INFO);
    ck_assert_uint_eq(cfg.buf_count, RW_URING_BUF_COUNT_DEFAULT);
    ck_assert_uint_eq(cfg.buf_size_bytes, RW_URING_BUF_SIZE_DEFAULT);

    /* rw_options_init alone gives the same as parsing no options. */
    struct rw_options d;
    memset(&d, 0xa5, sizeof(d));
    rw_options_init(&d);
    ck_assert_int_eq(memcmp(&d, &cfg, sizeof(d)), 0);
}
END_TEST

START_TEST(test_config_every_option_both_forms)
{
    struct rw_options cfg;
    parse_both(&cfg, "--backend", "uring");
    ck_assert_int_eq(cfg.backend, RW_BACKEND_URING);
    parse_both(&cfg, "--backend", "epoll");
    ck_assert_int_eq(cfg.backend, RW_BACKEND_EPOLL);
    parse_both(&cfg, "--backend", "auto");
    ck_assert_int_eq(cfg.backend, RW_BACKEND_AUTO);
    parse_both(&cfg, "--listen", "0.0.0.0:8080");
    ck_assert_str_eq(cfg.listen[0].text, "0.0.0.0:8080");
    assert_v4(&cfg.listen[0].addr, cfg.listen[0].addr_len, "0.0.0.0", 8080);
    parse_both(&cfg, "--listen", "[::1]:9000");
    ck_assert_str_eq(cfg.listen[0].text, "[::1]:9000");
    assert_v6(&cfg.listen[0].addr, cfg.listen[0].addr_len, "::1", 9000);
    parse_both(&cfg, "--threads", "3");
    ck_assert_uint_eq(cfg.threads, 3);
    parse_both(&cfg, "--idle-timeout", "5s");
    ck_assert_uint_eq(cfg.idle_timeout_ms, 5000);
    parse_both(&cfg, "--frame-timeout", "250ms");
    ck_assert_uint_eq(cfg.frame_timeout_ms, 250);
    parse_both(&cfg, "--tcp-user-timeout", "1500ms");
    ck_assert_uint_eq(cfg.tcp_user_timeout_ms, 1500);
    parse_both(&cfg, "--tcp-user-timeout", "0");
    ck_assert_uint_eq(cfg.tcp_user_timeout_ms, 0);
    parse_both(&cfg, "--keepalive", "30s");
    ck_assert_uint_eq(cfg.keepalive_idle_s, 30);
    uint32_t intvl_s = 0, probes = 0; /* the schedule loop.c sets from it */
    rw__keepalive_schedule(cfg.keepalive_idle_s, &intvl_s, &probes);
    ck_assert_uint_eq(intvl_s, 10);
    ck_assert_uint_eq(probes, 3);
    parse_both(&cfg, "--keepalive", "0");
    ck_assert_uint_eq(cfg.keepalive_idle_s, 0);
    parse_both(&cfg, "--max-frame", "64K");
    ck_assert_uint_eq(cfg.max_frame_bytes, 64u << 10);
    parse_both(&cfg, "--max-conns", "123");
    ck_assert_uint_eq(cfg.max_conns, 123);
    parse_both(&cfg, "--backlog", "17");
    ck_assert_uint_eq(cfg.backlog, 17);
    parse_both(&cfg, "--write-buffer", "8M");
    ck_assert_uint_eq(cfg.write_buffer_bytes, 8u << 20);
    parse_both(&cfg, "--max-memory", "64M");
    ck_assert_uint_eq(cfg.max_memory_bytes, 64u << 20);
    parse_both(&cfg, "--drain-timeout", "2m");
    ck_assert_uint_eq(cfg.drain_timeout_ms, 120000);
    parse_both(&cfg, "--stats-interval", "1");
    ck_assert_uint_eq(cfg.stats_interval_ms, 1000);
    parse_both(&cfg, "--stats-json", "/tmp/stats.json");
    ck_assert_str_eq(cfg.stats_json_path, "/tmp/stats.json");
    parse_both(&cfg, "--log-level", "error");
    ck_assert_int_eq(cfg.log_level, RW_LOG_ERROR);
    parse_both(&cfg, "--log-level", "warn");
    ck_assert_int_eq(cfg.log_level, RW_LOG_WARN);
    parse_both(&cfg, "--log-level", "info");
    ck_assert_int_eq(cfg.log_level, RW_LOG_INFO);
    parse_both(&cfg, "--log-level", "debug");
    ck_assert_int_eq(cfg.log_level, RW_LOG_DEBUG);
    parse_both(&cfg, "--buf-count", "256");
    ck_assert_uint_eq(cfg.buf_count, 256);
    parse_both(&cfg, "--buf-size", "4K");
    ck_assert_uint_eq(cfg.buf_size_bytes, 4096);
}
END_TEST

START_TEST(test_config_many_options_together)
{
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, "--backend", "epoll", "--listen=[::]:0", "--threads", "2",
                           "--cpu-affinity", "--max-frame=0", "--idle-timeout", "0",
                           "--frame-timeout=0", "--log-level", "debug"),
                     0);
    ck_assert_int_eq(last_cli.action, RW_CLI_RUN);
    ck_assert_int_eq(cfg.backend, RW_BACKEND_EPOLL);
    assert_v6(&cfg.listen[0].addr, cfg.listen[0].addr_len, "::", 0);
    ck_assert_uint_eq(cfg.threads, 2);
    ck_assert(cfg.cpu_affinity);
    ck_assert_uint_eq(cfg.max_frame_bytes, 0);
    ck_assert_uint_eq(cfg.idle_timeout_ms, 0);
    ck_assert_uint_eq(cfg.frame_timeout_ms, 0);
    ck_assert_int_eq(cfg.log_level, RW_LOG_DEBUG);
    /* Untouched options keep their defaults. */
    ck_assert_uint_eq(cfg.max_conns, 10000);
    ck_assert_uint_eq(cfg.drain_timeout_ms, 10000);
}
END_TEST

START_TEST(test_config_later_option_wins)
{
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, "--threads", "2", "--threads=5", "--listen", "1.2.3.4:1",
                           "--listen", "5.6.7.8:2"),
                     0);
    ck_assert_uint_eq(cfg.threads, 5);
    /* Except --listen: each one adds its addresses, in order (the first replaces the default). */
    ck_assert_uint_eq(cfg.listen_count, 2);
    ck_assert_str_eq(cfg.listen[0].text, "1.2.3.4:1");
    assert_v4(&cfg.listen[0].addr, cfg.listen[0].addr_len, "1.2.3.4", 1);
    ck_assert_str_eq(cfg.listen[1].text, "5.6.7.8:2");
    assert_v4(&cfg.listen[1].addr, cfg.listen[1].addr_len, "5.6.7.8", 2);
}
END_TEST

/* Several --listen, kept in order: numeric IPv4, IPv6, a scope id; duplicates and the bound. */
START_TEST(test_config_listen_repeated)
{
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, NULL), 0);
    ck_assert_uint_eq(cfg.listen_count, 0); /* none added: the default 127.0.0.1:7000 */
    ck_assert(!cfg.ipv6_dual_stack);
    ck_assert_int_eq(PARSE(&cfg, "--listen", "[::1]:9", "--listen=0.0.0.0:8", "--listen",
                           "[fe80::1%lo]:7", "--listen", "[::]:6", "--ipv6-dual-stack"),
                     0);
    ck_assert(cfg.ipv6_dual_stack);
    ck_assert_uint_eq(cfg.listen_count, 4);
    assert_v6(&cfg.listen[0].addr, cfg.listen[0].addr_len, "::1", 9);
    assert_v4(&cfg.listen[1].addr, cfg.listen[1].addr_len, "0.0.0.0", 8);
    assert_v6(&cfg.listen[2].addr, cfg.listen[2].addr_len, "fe80::1", 7);
    ck_assert_uint_eq(((const struct sockaddr_in6 *)&cfg.listen[2].addr)->sin6_scope_id,
                      if_nametoindex("lo"));
    assert_v6(&cfg.listen[3].addr, cfg.listen[3].addr_len, "::", 6);
    ck_assert_str_eq(cfg.listen[2].text, "[fe80::1%lo]:7");
    /* Descriptors: each further address is one more listener per worker. */
    ck_assert_int_eq(PARSE(&cfg, "--max-conns", "1", "--threads", "2", "--listen", "127.0.0.1:1",
                           "--listen", "127.0.0.1:2", "--listen", "127.0.0.1:3"),
                     0);
    ck_assert_uint_eq(rw__nofile_needed(&cfg), 1 + 2 * (3 + 2 + 16) + 64);

    /* The same address and port twice would only join its own SO_REUSEPORT group: refused. */
    ck_assert_int_eq(PARSE(&cfg, "--listen", "127.0.0.1:7000", "--listen", "[::1]:1", "--listen",
                           "127.0.0.1:7000"),
                     -EINVAL);
    ck_assert_str_eq(err, "--listen: '127.0.0.1:7000' repeats an address of '127.0.0.1:7000'");
    /* Port 0 twice: two ephemeral ports, two addresses. */
    ck_assert_int_eq(PARSE(&cfg, "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"), 0);
    ck_assert_uint_eq(cfg.listen_count, 2);

    /* RW_LISTEN_MAX addresses, not one more (exit 2 with the bound named). */
    static char prog[] = "ringwire", opt[] = "--listen", value[] = "127.0.0.1:0";
    static char *argv[2 * RW_LISTEN_MAX + 4];
    int argc = 0;
    argv[argc++] = prog;
    for (unsigned i = 0; i <= RW_LISTEN_MAX; i++) {
        argv[argc++] = opt;
        argv[argc++] = value;
        err[0] = '\0';
        ck_assert_int_eq(config_parse(&cfg, argc, argv, err, sizeof(err)),
                         i < RW_LISTEN_MAX ? 0 : -EINVAL);
    }
    ck_assert_uint_eq(cfg.listen_count, RW_LISTEN_MAX);
    char want[128];
    snprintf(want, sizeof(want),
             "--listen: too many addresses: '127.0.0.1:0' makes more than %u in all",
             RW_LISTEN_MAX);
    ck_assert_str_eq(err, want);
}
END_TEST

/* The addresses getaddrinfo gives for host (what ringwire should listen on), in its order. */
static unsigned resolve_like_ringwire(const char *host, struct sockaddr_storage *out, unsigned max)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    ck_assert_int_eq(getaddrinfo(host, NULL, &hints, &res), 0);
    unsigned n = 0;
    for (struct addrinfo *ai = res; ai != NULL && n < max; ai = ai->ai_next) {
        bool dup = false;
        for (unsigned i = 0; i < n; i++)
            dup = dup || memcmp(&out[i], ai->ai_addr, ai->ai_addrlen) == 0;
        if (!dup)
            memcpy(&out[n++], ai->ai_addr, ai->ai_addrlen);
    }
    freeaddrinfo(res);
    return n;
}

/* Names (localhost, no DNS) and service names, through getaddrinfo; its reason on failure. */
START_TEST(test_config_listen_names)
{
    struct rw_options cfg;
    struct sockaddr_storage want[RW_LISTEN_MAX];
    memset(want, 0, sizeof(want));
    unsigned n = resolve_like_ringwire("localhost", want, RW_LISTEN_MAX);
    ck_assert_uint_ge(n, 1);
    ck_assert_int_eq(PARSE(&cfg, "--listen", "localhost:7000"), 0);
    /* Every address the name has (127.0.0.1, and ::1 where /etc/hosts lists it), in order. */
    ck_assert_uint_eq(cfg.listen_count, n);
    for (unsigned i = 0; i < n; i++) {
        ck_assert_str_eq(cfg.listen[i].text, "localhost:7000");
        ck_assert_int_eq(cfg.listen[i].addr.ss_family, want[i].ss_family);
        char got_text[RW_ADDR_TEXT_MAX], want_text[RW_ADDR_TEXT_MAX];
        rw__format_addr((const struct sockaddr *)&cfg.listen[i].addr, got_text, sizeof(got_text));
        ((struct sockaddr_in *)&want[i])->sin_port = htons(7000); /* same offset in sin6 */
        rw__format_addr((const struct sockaddr *)&want[i], want_text, sizeof(want_text));
        ck_assert_str_eq(got_text, want_text);
    }

    /* Service names for the port (the services database, no DNS). */
    ck_assert_int_eq(PARSE(&cfg, "--listen", "localhost:http"), 0);
    ck_assert_uint_eq(cfg.listen_count, n);
    ck_assert_uint_eq(ntohs(((const struct sockaddr_in *)&cfg.listen[0].addr)->sin_port), 80);
    ck_assert_int_eq(PARSE(&cfg, "--listen", "127.0.0.1:http", "--listen", "[::1]:https"), 0);
    assert_v4(&cfg.listen[0].addr, cfg.listen[0].addr_len, "127.0.0.1", 80);
    assert_v6(&cfg.listen[1].addr, cfg.listen[1].addr_len, "::1", 443);

    /* Failures carry the resolver's own words (gai_strerror), whatever this host's says. */
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(NULL, "no-such-service", &hints, &res);
    ck_assert_int_ne(rc, 0);
    char want_err[256];
    snprintf(want_err, sizeof(want_err),
             "--listen: bad address '127.0.0.1:no-such-service': unknown service "
             "'no-such-service': %s",
             gai_strerror(rc));
    ck_assert_int_eq(PARSE(&cfg, "--listen", "127.0.0.1:no-such-service"), -EINVAL);
    ck_assert_str_eq(err, want_err);
    /* An empty label: refused by the resolver itself, no query leaves the host. */
    struct addrinfo hints_host = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    rc = getaddrinfo("no-such-host..invalid", NULL, &hints_host, &res);
    ck_assert_int_ne(rc, 0);
    snprintf(want_err, sizeof(want_err),
             "--listen: bad address 'no-such-host..invalid:7000': cannot resolve "
             "'no-such-host..invalid': %s",
             rc == EAI_SYSTEM ? "" : gai_strerror(rc));
    ck_assert_int_eq(PARSE(&cfg, "--listen", "no-such-host..invalid:7000"), -EINVAL);
    if (rc != EAI_SYSTEM)
        ck_assert_str_eq(err, want_err);
    /* Numbers that are not an IPv4 address never go to the resolver (1.2.3 is not 1.2.0.3). */
    expect_bad("--listen", "1.2.3:7000", "not a numeric IPv4 address");
    /* The numeric helper (--metrics) still takes no names. */
    struct sockaddr_storage ss;
    socklen_t len = 0;
    ck_assert_int_eq(rw__parse_listen("localhost:7000", &ss, &len), -EINVAL);
}
END_TEST

/* `taskset -c N ringwire` starts one worker, however many CPUs are online. */
START_TEST(test_config_default_threads_follow_affinity)
{
    cpu_set_t saved;
    ck_assert_int_eq(sched_getaffinity(0, sizeof(saved), &saved), 0);
    int first = -1;
    for (int cpu = 0; cpu < CPU_SETSIZE && first < 0; cpu++)
        if (CPU_ISSET(cpu, &saved))
            first = cpu;
    ck_assert_int_ge(first, 0);
    if (CPU_COUNT(&saved) < 2)
        fprintf(stderr, "test_config_default_threads_follow_affinity: already on one CPU; "
                        "the restriction changes nothing here\n");
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
    struct rw_options cfg;
    rw_options_init(&cfg);
    uint32_t threads = cfg.threads;
    int parsed = PARSE(&cfg, NULL);
    uint32_t parsed_threads = cfg.threads;
    ck_assert_int_eq(sched_setaffinity(0, sizeof(saved), &saved), 0); /* restore first */
    ck_assert_uint_eq(threads, 1);
    ck_assert_int_eq(parsed, 0);
    ck_assert_uint_eq(parsed_threads, 1);
    /* And the whole mask again: as many as it holds. */
    rw_options_init(&cfg);
    long cpus = CPU_COUNT(&saved);
    ck_assert_uint_eq(cfg.threads, cpus > (long)RW_THREADS_MAX ? RW_THREADS_MAX : (uint32_t)cpus);
}
END_TEST

START_TEST(test_config_flags)
{
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, "--proxy-protocol"), 0);
    ck_assert(cfg.proxy_protocol);
    ck_assert_int_eq(PARSE(&cfg, NULL), 0);
    ck_assert(!cfg.proxy_protocol);
    ck_assert_int_eq(PARSE(&cfg, "--proxy-protocol=1"), -EINVAL);
    ck_assert_str_eq(err, "--proxy-protocol: takes no value");
    ck_assert_int_eq(PARSE(&cfg, "--cpu-affinity"), 0);
    ck_assert(cfg.cpu_affinity);
    ck_assert_int_eq(last_cli.action, RW_CLI_RUN);
    ck_assert_int_eq(PARSE(&cfg, "--probe"), 0);
    ck_assert_int_eq(last_cli.action, RW_CLI_PROBE);
    ck_assert_int_eq(PARSE(&cfg, "--probe", "--log-level", "debug"), 0);
    ck_assert_int_eq(last_cli.action, RW_CLI_PROBE);
    ck_assert_int_eq(cfg.log_level, RW_LOG_DEBUG);
    /* A flag given a value is an error naming the flag. */
    ck_assert_int_eq(PARSE(&cfg, "--cpu-affinity=yes"), -EINVAL);
    ck_assert_str_eq(err, "--cpu-affinity: takes no value");
    ck_assert_int_eq(PARSE(&cfg, "--probe=1"), -EINVAL);
    ck_assert_str_eq(err, "--probe: takes no value");
    ck_assert_int_eq(PARSE(&cfg, "--help=1"), -EINVAL);
    ck_assert_str_eq(err, "--help: takes no value");
}
END_TEST

START_TEST(test_config_sizes)
{
    uint64_t v = 7;
    ck_assert_int_eq(rw__parse_size("0", &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(rw__parse_size("123", &v), 0);
    ck_assert_uint_eq(v, 123);
    ck_assert_int_eq(rw__parse_size("4K", &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(rw__parse_size("4k", &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(rw__parse_size("1M", &v), 0);
    ck_assert_uint_eq(v, 1ull << 20);
    ck_assert_int_eq(rw__parse_size("1m", &v), 0);
    ck_assert_uint_eq(v, 1ull << 20);
    ck_assert_int_eq(rw__parse_size("2G", &v), 0);
    ck_assert_uint_eq(v, 2ull << 30);
    ck_assert_int_eq(rw__parse_size("3g", &v), 0);
    ck_assert_uint_eq(v, 3ull << 30);
    ck_assert_int_eq(rw__parse_size("0K", &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(rw__parse_size("007", &v), 0);
    ck_assert_uint_eq(v, 7);
    ck_assert_int_eq(rw__parse_size("18446744073709551615", &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);

    /* Overflow: of the number itself, and of the scaled value. */
    v = 42;
    ck_assert_int_eq(rw__parse_size("18446744073709551616", &v), -ERANGE);
    ck_assert_int_eq(rw__parse_size("99999999999999999999999", &v), -ERANGE);
    ck_assert_int_eq(rw__parse_size("17179869184G", &v), -ERANGE); /* 2^34 G = 2^64 */
    ck_assert_int_eq(rw__parse_size("17179869183G", &v), 0);
    ck_assert_uint_eq(v, 17179869183ull << 30);
    ck_assert_int_eq(rw__parse_size("18014398509481984K", &v), -ERANGE); /* 2^54 K */
    ck_assert_int_eq(rw__parse_size("99999999999999999999999M", &v), -ERANGE);

    /* Junk, signs, spaces, empty: -EINVAL, even when the digits also overflow. */
    static const char *const bad[] = {
        "",
        "abc",
        "K",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1KB",
        "1KiB",
        "1T",
        "1.5M",
        "0x10",
        "1e3",
        "1KK",
        "--5",
        "1,000",
        "9999999999999999999999x",
        "M1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 42;
        ck_assert_msg(rw__parse_size(bad[i], &v) == -EINVAL, "'%s' not -EINVAL", bad[i]);
        ck_assert_uint_eq(v, 42); /* untouched on error */
    }
}
END_TEST

START_TEST(test_config_durations)
{
    uint64_t v = 7;
    ck_assert_int_eq(rw__parse_duration_ms("250ms", &v), 0);
    ck_assert_uint_eq(v, 250);
    ck_assert_int_eq(rw__parse_duration_ms("0ms", &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(rw__parse_duration_ms("10s", &v), 0);
    ck_assert_uint_eq(v, 10000);
    ck_assert_int_eq(rw__parse_duration_ms("2m", &v), 0);
    ck_assert_uint_eq(v, 120000);
    ck_assert_int_eq(rw__parse_duration_ms("5", &v), 0);
    ck_assert_uint_eq(v, 5000);
    ck_assert_int_eq(rw__parse_duration_ms("0", &v), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(rw__parse_duration_ms("18446744073709551615ms", &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);

    v = 42;
    ck_assert_int_eq(rw__parse_duration_ms("18446744073709551616ms", &v), -ERANGE);
    ck_assert_int_eq(rw__parse_duration_ms("18446744073709551615s", &v), -ERANGE);
    ck_assert_int_eq(rw__parse_duration_ms("18446744073709552", &v), -ERANGE); /* bare = s */
    ck_assert_int_eq(rw__parse_duration_ms("307445734561825861m", &v), -ERANGE);
    ck_assert_uint_eq(v, 42);

    static const char *const bad[] = {
        "",
        "s",
        "ms",
        "abc",
        "-1s",
        "+1s",
        " 1s",
        "1s ",
        "1h",
        "1S",
        "1sec",
        "1.5s",
        "1mss",
        "1 s",
        "1d",
        "0x1s",
        "99999999999999999999999h",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 42;
        ck_assert_msg(rw__parse_duration_ms(bad[i], &v) == -EINVAL, "'%s' not -EINVAL", bad[i]);
        ck_assert_uint_eq(v, 42);
    }
}
END_TEST

START_TEST(test_config_listen_ipv4)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    ck_assert_int_eq(rw__parse_listen("127.0.0.1:7000", &ss, &len), 0);
    assert_v4(&ss, len, "127.0.0.1", 7000);
    ck_assert_int_eq(rw__parse_listen("0.0.0.0:80", &ss, &len), 0);
    assert_v4(&ss, len, "0.0.0.0", 80);
    ck_assert_int_eq(rw__parse_listen("10.1.2.3:0", &ss, &len), 0);
    assert_v4(&ss, len, "10.1.2.3", 0);
    ck_assert_int_eq(rw__parse_listen("255.255.255.255:65535", &ss, &len), 0);
    assert_v4(&ss, len, "255.255.255.255", 65535);
}
END_TEST

START_TEST(test_config_listen_ipv6)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    ck_assert_int_eq(rw__parse_listen("[::1]:7000", &ss, &len), 0);
    assert_v6(&ss, len, "::1", 7000);
    ck_assert_int_eq(rw__parse_listen("[::]:0", &ss, &len), 0);
    assert_v6(&ss, len, "::", 0);
    ck_assert_int_eq(rw__parse_listen("[2001:db8::42]:65535", &ss, &len), 0);
    assert_v6(&ss, len, "2001:db8::42", 65535);
    ck_assert_int_eq(rw__parse_listen("[::ffff:1.2.3.4]:1", &ss, &len), 0);
    assert_v6(&ss, len, "::ffff:1.2.3.4", 1);
}
END_TEST

/* "[fe80::1%lo]:7000": the scope id by interface name or index, printed back by rw__format_addr. */
START_TEST(test_config_listen_ipv6_scope_id)
{
    unsigned lo = if_nametoindex("lo");
    ck_assert_uint_gt(lo, 0);
    struct sockaddr_storage ss;
    socklen_t len = 0;
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
    char text[80];

    ck_assert_int_eq(rw__parse_listen("[fe80::1%lo]:7000", &ss, &len), 0);
    assert_v6(&ss, len, "fe80::1", 7000);
    ck_assert_uint_eq(a6->sin6_scope_id, lo);
    rw__format_addr((const struct sockaddr *)&ss, text, sizeof(text));
    ck_assert_str_eq(text, "[fe80::1%lo]:7000");

    ck_assert_int_eq(rw__parse_listen("[fe80::1%1]:7000", &ss, &len), 0);
    assert_v6(&ss, len, "fe80::1", 7000);
    ck_assert_uint_eq(a6->sin6_scope_id, 1);

    /* An index no interface has (now) is printed as the number. */
    ck_assert_int_eq(rw__parse_listen("[fe80::2%4294967295]:1", &ss, &len), 0);
    ck_assert_uint_eq(a6->sin6_scope_id, 4294967295u);
    rw__format_addr((const struct sockaddr *)&ss, text, sizeof(text));
    ck_assert_str_eq(text, "[fe80::2%4294967295]:1");

    /* Without a scope nothing changes. */
    ck_assert_int_eq(rw__parse_listen("[::1]:7000", &ss, &len), 0);
    ck_assert_uint_eq(a6->sin6_scope_id, 0);
    rw__format_addr((const struct sockaddr *)&ss, text, sizeof(text));
    ck_assert_str_eq(text, "[::1]:7000");

    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, "--listen", "[fe80::1%lo]:9"), 0);
    ck_assert_str_eq(cfg.listen[0].text, "[fe80::1%lo]:9");
    ck_assert_uint_eq(((const struct sockaddr_in6 *)&cfg.listen[0].addr)->sin6_scope_id, lo);
    /* An unknown interface is named. */
    ck_assert_int_eq(PARSE(&cfg, "--listen", "[fe80::1%nosuchif0]:7000"), -EINVAL);
    ck_assert_str_eq(err, "--listen: bad address '[fe80::1%nosuchif0]:7000': no interface "
                          "'nosuchif0'");
    expect_bad("--listen", "[fe80::1%]:7000", "no interface after '%'");
}
END_TEST

/* What --max-conns needs in descriptors, and the --help lines that say so. */
START_TEST(test_config_nofile_needed)
{
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, "--max-conns", "10000", "--threads", "2"), 0);
    /* Each connection, then per worker a listener, eventfd, epoll/ring fd and slack. */
    ck_assert_uint_eq(rw__nofile_needed(&cfg), 10000 + 2 * (3 + 16) + 64);
    ck_assert_int_eq(PARSE(&cfg, "--max-conns", "1", "--threads", "1"), 0);
    ck_assert_uint_eq(rw__nofile_needed(&cfg), 1 + 19 + 64);

    ck_assert_int_eq(PARSE(&cfg, "--max-conns", "10000", "--threads", "2"), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    rw__cli_usage_nofile(&cfg, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strstr(text, "RLIMIT_NOFILE soft limit, hard") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "--max-conns 10000 with --threads 2 needs about 10102") != NULL,
                  "%s", text);
    free(text);
}
END_TEST

START_TEST(test_config_listen_errors)
{
    static const char *const bad[] = {
        "",
        "127.0.0.1",       /* no port */
        "127.0.0.1:",      /* empty port */
        ":7000",           /* no host */
        "[]:7000",         /* no host */
        "256.0.0.1:7000",  /* bad IPv4 */
        "1.2.3:7000",      /* bad IPv4 */
        "127.0.0.1:70000", /* port out of range */
        "127.0.0.1:65536", /* port out of range */
        "127.0.0.1:-1",    /* sign */
        "127.0.0.1:+80",   /* sign */
        "127.0.0.1:80x",   /* junk */
        "127.0.0.1:99999999999999999999999",
        "::1:7000",                                         /* IPv6 without brackets */
        "::1",                                              /* IPv6 without brackets or port */
        "[::1]",                                            /* no port */
        "[::1]:",                                           /* empty port */
        "[::1]7000",                                        /* no ':' after ']' */
        "[::1:7000",                                        /* no ']' */
        "[::1]:70000",                                      /* port out of range */
        "[1.2.3.4]:80",                                     /* IPv4 in brackets */
        "[::g]:80",                                         /* bad IPv6 */
        "[fe80::1%]:80",                                    /* empty scope id */
        "[fe80::1%no-such-if0]:80",                         /* no such interface */
        "[fe80::1%4294967296]:80",                          /* index beyond 32 bits */
        "[fe80::g%lo]:80",                                  /* bad IPv6 before a good scope */
        "[0000:0000:0000:0000:0000:0000:0000:0000:0000]:1", /* too long */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sockaddr_storage ss;
        socklen_t len = 1234;
        ck_assert_msg(rw__parse_listen(bad[i], &ss, &len) == -EINVAL, "'%s' accepted", bad[i]);
        ck_assert_uint_eq(len, 1234); /* untouched on error */
        expect_bad("--listen", bad[i], "bad address");
    }
    expect_bad("--listen", "127.0.0.1:70000", "port");
    expect_bad("--listen", "::1:7000", "brackets");

    /* A failed --listen leaves the earlier address in place. */
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, "--listen", "1.2.3.4:5", "--listen", "1.2.3.4:70000"), -EINVAL);
    ck_assert_str_eq(err, "--listen: bad address '1.2.3.4:70000': the port must be a number "
                          "from 0 to 65535");

    /* Longer than listen_text can hold. */
    char lng[400];
    memset(lng, '1', sizeof(lng) - 1);
    lng[sizeof(lng) - 1] = '\0';
    expect_bad("--listen", lng, "bad address");
}
END_TEST

START_TEST(test_config_bounds)
{
    struct rw_options cfg;
    char text[64];

    snprintf(text, sizeof(text), "%u", RW_THREADS_MAX);
    parse_both(&cfg, "--threads", text);
    ck_assert_uint_eq(cfg.threads, RW_THREADS_MAX);
    parse_both(&cfg, "--threads", "1");
    ck_assert_uint_eq(cfg.threads, 1);

    parse_both(&cfg, "--max-frame", "1G");
    ck_assert_uint_eq(cfg.max_frame_bytes, RW_FRAME_MAX_BYTES_CEILING);
    parse_both(&cfg, "--max-frame", "0");
    ck_assert_uint_eq(cfg.max_frame_bytes, 0);

    snprintf(text, sizeof(text), "%u", RW_CONNS_MAX);
    parse_both(&cfg, "--max-conns", text);
    ck_assert_uint_eq(cfg.max_conns, RW_CONNS_MAX);
    parse_both(&cfg, "--max-conns", "1");
    ck_assert_uint_eq(cfg.max_conns, 1);

    snprintf(text, sizeof(text), "%d", INT_MAX);
    parse_both(&cfg, "--backlog", text);
    ck_assert_uint_eq(cfg.backlog, INT_MAX);
    parse_both(&cfg, "--backlog", "1");
    ck_assert_uint_eq(cfg.backlog, 1);

    parse_both(&cfg, "--write-buffer", "1");
    ck_assert_uint_eq(cfg.write_buffer_bytes, 1);
    parse_both(&cfg, "--write-buffer", "1G");
    ck_assert_uint_eq(cfg.write_buffer_bytes, 1ull << 30);

    parse_both(&cfg, "--buf-count", "1");
    ck_assert_uint_eq(cfg.buf_count, 1);
    snprintf(text, sizeof(text), "%u", RW_URING_BUF_COUNT_MAX);
    parse_both(&cfg, "--buf-count", text);
    ck_assert_uint_eq(cfg.buf_count, RW_URING_BUF_COUNT_MAX);

    parse_both(&cfg, "--buf-size", "64");
    ck_assert_uint_eq(cfg.buf_size_bytes, 64);
    snprintf(text, sizeof(text), "%u", RW_URING_BUF_SIZE_MAX);
    parse_both(&cfg, "--buf-size", text);
    ck_assert_uint_eq(cfg.buf_size_bytes, RW_URING_BUF_SIZE_MAX);

    /* Durations: 0 is allowed everywhere; 30 days is the ceiling. */
    parse_both(&cfg, "--drain-timeout", "0");
    ck_assert_uint_eq(cfg.drain_timeout_ms, 0);
    parse_both(&cfg, "--idle-timeout", "43200m");
    ck_assert_uint_eq(cfg.idle_timeout_ms, 43200ull * 60000);
    expect_bad("--idle-timeout", "43201m", "exceeds the limit");

    /* The kernel's ceilings: TCP_USER_TIMEOUT is an int of ms, keepalive times 32767 s. */
    snprintf(text, sizeof(text), "%ums", RW_TCP_USER_TIMEOUT_MAX_MS);
    parse_both(&cfg, "--tcp-user-timeout", text);
    ck_assert_uint_eq(cfg.tcp_user_timeout_ms, RW_TCP_USER_TIMEOUT_MAX_MS);
    snprintf(text, sizeof(text), "%llums", (unsigned long long)RW_TCP_USER_TIMEOUT_MAX_MS + 1);
    expect_bad("--tcp-user-timeout", text, "exceeds the kernel's limit of 2147483647ms");
    parse_both(&cfg, "--keepalive", "1");
    ck_assert_uint_eq(cfg.keepalive_idle_s, 1);
    snprintf(text, sizeof(text), "%us", RW_KEEPALIVE_MAX_S);
    parse_both(&cfg, "--keepalive", text);
    ck_assert_uint_eq(cfg.keepalive_idle_s, RW_KEEPALIVE_MAX_S);
    snprintf(text, sizeof(text), "%us", RW_KEEPALIVE_MAX_S + 1);
    expect_bad("--keepalive", text, "exceeds the kernel's limit of 32767s");
}
END_TEST

START_TEST(test_config_bad_values)
{
    char text[64];
    expect_bad("--backend", "x", NULL);
    expect_bad("--backend", "", NULL);
    expect_bad("--backend", "URING", NULL);
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, "--backend", "x"), -EINVAL);
    ck_assert_str_eq(err, "--backend: must be uring, epoll or auto, not 'x'");

    expect_bad("--threads", "0", "below the minimum of 1");
    snprintf(text, sizeof(text), "%u", RW_THREADS_MAX + 1);
    expect_bad("--threads", text, "exceeds the limit");
    expect_bad("--threads", "abc", "invalid number 'abc'");
    expect_bad("--threads", "-1", "invalid number");
    expect_bad("--threads", "", "invalid number");
    expect_bad("--threads", "4x", "invalid number");
    expect_bad("--threads", "99999999999999999999999", "exceeds the limit");

    static const char *const durations[] = {"--idle-timeout",     "--frame-timeout",
                                            "--drain-timeout",    "--stats-interval",
                                            "--tcp-user-timeout", "--keepalive"};
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        expect_bad(durations[i], "abc", "invalid duration 'abc'");
        expect_bad(durations[i], "", "invalid duration");
        expect_bad(durations[i], "-1s", "invalid duration");
        expect_bad(durations[i], "1h", "invalid duration");
        expect_bad(durations[i], "99999999999999999999999", "exceeds the limit");
        expect_bad(durations[i], "18446744073709551615m", "exceeds the limit");
    }

    /* Keepalive times are whole seconds in the kernel: no silent rounding. */
    expect_bad("--keepalive", "1500ms", "not a whole number of seconds");
    expect_bad("--keepalive", "999ms", "not a whole number of seconds");
    ck_assert_int_eq(PARSE(&cfg, "--keepalive", "2000ms"), 0);
    ck_assert_uint_eq(cfg.keepalive_idle_s, 2);

    expect_bad("--max-frame", "abc", "invalid size 'abc' (bytes, or with K, M, G)");
    expect_bad("--max-frame", "", "invalid size");
    expect_bad("--max-frame", "-1", "invalid size");
    ck_assert_int_eq(PARSE(&cfg, "--max-frame", "2G"), -EINVAL);
    ck_assert_str_eq(err, "--max-frame: 2G exceeds the limit of 1G");
    expect_bad("--max-frame", "1073741825", "exceeds the limit of 1G");
    expect_bad("--max-frame", "99999999999999999999G", "exceeds the limit of 1G");

    expect_bad("--max-conns", "0", "below the minimum");
    snprintf(text, sizeof(text), "%u", RW_CONNS_MAX + 1);
    expect_bad("--max-conns", text, "exceeds the limit");
    expect_bad("--max-conns", "1K", "invalid number");

    expect_bad("--backlog", "0", "below the minimum");
    expect_bad("--backlog", "2147483648", "exceeds the limit of 2147483647");
    expect_bad("--backlog", "x", "invalid number");

    expect_bad("--write-buffer", "0", "below the minimum of 1");
    expect_bad("--write-buffer", "1025M", "exceeds the limit of 1G");
    expect_bad("--write-buffer", "4MB", "invalid size");

    expect_bad("--stats-json", "", "needs a file name");
    char path[PATH_MAX];
    memset(path, 'p', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    expect_bad("--stats-json", path, "file name longer than");
    path[PATH_MAX - sizeof(".tmp")] = '\0';
    ck_assert_int_eq(PARSE(&cfg, "--stats-json", path), 0);
    ck_assert_str_eq(cfg.stats_json_path, path);

    expect_bad("--log-level", "verbose", "must be error, warn, info or debug, not 'verbose'");
    expect_bad("--log-level", "", NULL);
    expect_bad("--log-level", "2", NULL);

    expect_bad("--buf-count", "0", "below the minimum");
    expect_bad("--buf-count", "1000", "not a power of two");
    expect_bad("--buf-count", "3", "not a power of two");
    snprintf(text, sizeof(text), "%u", RW_URING_BUF_COUNT_MAX * 2);
    expect_bad("--buf-count", text, "exceeds the limit");
    expect_bad("--buf-count", "x", "invalid number");

    expect_bad("--buf-size", "63", "below the minimum of 64");
    expect_bad("--buf-size", "0", "below the minimum");
    expect_bad("--buf-size", "2M", "exceeds the limit of 1M");
    expect_bad("--buf-size", "4KiB", "invalid size");
}
END_TEST

START_TEST(test_config_unknown_option)
{
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, "--foo"), -EINVAL);
    ck_assert_str_eq(err, "unknown option '--foo'");
    ck_assert_int_eq(PARSE(&cfg, "--foo=bar"), -EINVAL);
    ck_assert_str_eq(err, "unknown option '--foo'");
    ck_assert_int_eq(PARSE(&cfg, "-x"), -EINVAL);
    ck_assert_str_eq(err, "unknown option '-x'");
    ck_assert_int_eq(PARSE(&cfg, "--threads", "2", "--thread", "3"), -EINVAL);
    ck_assert_str_eq(err, "unknown option '--thread'");
    /* No prefix matching, no single-dash long options. */
    ck_assert_int_eq(PARSE(&cfg, "--list", "1.2.3.4:5"), -EINVAL);
    ck_assert_str_eq(err, "unknown option '--list'");
    ck_assert_int_eq(PARSE(&cfg, "-listen", "1.2.3.4:5"), -EINVAL);
    ck_assert_str_eq(err, "unknown option '-listen'");
    ck_assert_int_eq(PARSE(&cfg, "--LISTEN", "1.2.3.4:5"), -EINVAL);
    ck_assert_str_eq(err, "unknown option '--LISTEN'");
}
END_TEST

START_TEST(test_config_missing_value)
{
    struct rw_options cfg;
    static const char *const valued[] = {
        "--backend",          "--listen",     "--threads",   "--idle-timeout", "--frame-timeout",
        "--max-frame",        "--max-conns",  "--backlog",   "--write-buffer", "--drain-timeout",
        "--stats-interval",   "--stats-json", "--log-level", "--buf-count",    "--buf-size",
        "--tcp-user-timeout", "--keepalive",
    };
    char want[64];
    for (size_t i = 0; i < sizeof(valued) / sizeof(valued[0]); i++) {
        snprintf(want, sizeof(want), "%s: missing value", valued[i]);
        ck_assert_int_eq(PARSE(&cfg, valued[i]), -EINVAL);
        ck_assert_str_eq(err, want);
        /* The next option is not swallowed as the value. */
        ck_assert_int_eq(PARSE(&cfg, valued[i], "--cpu-affinity"), -EINVAL);
        ck_assert_str_eq(err, want);
    }
    /* "--opt=" is an empty value, not a missing one. */
    ck_assert_int_eq(PARSE(&cfg, "--threads="), -EINVAL);
    ck_assert_str_eq(err, "--threads: invalid number ''");
    /* A value that merely starts with one dash is a value (and here a bad one). */
    ck_assert_int_eq(PARSE(&cfg, "--threads", "-3"), -EINVAL);
    ck_assert_str_eq(err, "--threads: invalid number '-3'");
    /* A file name beginning with "--" can be given with '='. */
    ck_assert_int_eq(PARSE(&cfg, "--stats-json=--odd"), 0);
    ck_assert_str_eq(cfg.stats_json_path, "--odd");
}
END_TEST

START_TEST(test_config_positional)
{
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, "foo"), -EINVAL);
    ck_assert_str_eq(err, "unexpected argument 'foo' (ringwire takes only options)");
    ck_assert_int_eq(PARSE(&cfg, "--threads", "2", "extra"), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "'extra'"));
    ck_assert_int_eq(PARSE(&cfg, "-"), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "unexpected argument '-'"));
    ck_assert_int_eq(PARSE(&cfg, "--"), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "unexpected argument '--'"));
    ck_assert_int_eq(PARSE(&cfg, ""), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "unexpected argument ''"));
}
END_TEST

START_TEST(test_config_help_version)
{
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, "-h"), 0);
    ck_assert_int_eq(last_cli.action, RW_CLI_HELP);
    ck_assert_int_eq(PARSE(&cfg, "--help"), 0);
    ck_assert_int_eq(last_cli.action, RW_CLI_HELP);
    ck_assert_int_eq(PARSE(&cfg, "-V"), 0);
    ck_assert_int_eq(last_cli.action, RW_CLI_VERSION);
    ck_assert_int_eq(PARSE(&cfg, "--version"), 0);
    ck_assert_int_eq(last_cli.action, RW_CLI_VERSION);
    /* They answer at once: what follows is not parsed. */
    ck_assert_int_eq(PARSE(&cfg, "--help", "--bogus", "positional"), 0);
    ck_assert_int_eq(last_cli.action, RW_CLI_HELP);
    ck_assert_int_eq(PARSE(&cfg, "--threads", "2", "-V", "--threads", "0"), 0);
    ck_assert_int_eq(last_cli.action, RW_CLI_VERSION);
    /* Errors before them still count. */
    ck_assert_int_eq(PARSE(&cfg, "--threads", "0", "--help"), -EINVAL);
    ck_assert_str_eq(err, "--threads: 0 is below the minimum of 1");
    ck_assert_int_eq(PARSE(&cfg, "--probe", "--help"), 0);
    ck_assert_int_eq(last_cli.action, RW_CLI_HELP);
}
END_TEST

/* --length-*: defaults, every value both forms, bad values naming the option, combinations. */
START_TEST(test_config_framing)
{
    struct rw_options cfg;
    ck_assert_int_eq(PARSE(&cfg, "--threads", "1"), 0);
    const struct rw_framing def = RW_FRAMING_DEFAULT;
    ck_assert_uint_eq(cfg.framing.length_bytes, def.length_bytes);
    ck_assert_uint_eq(cfg.framing.order, RW_LENGTH_BIG);
    ck_assert_uint_eq(cfg.framing.offset, 0);
    ck_assert_int_eq(cfg.framing.adjust, 0);
    static const char *const widths[] = {"1", "2", "3", "4", "8"};
    for (size_t i = 0; i < 5; i++) {
        parse_both(&cfg, "--length-bytes", widths[i]);
        ck_assert_uint_eq(cfg.framing.length_bytes, (unsigned)atoi(widths[i]));
    }
    parse_both(&cfg, "--length-order", "little");
    ck_assert_uint_eq(cfg.framing.order, RW_LENGTH_LITTLE);
    parse_both(&cfg, "--length-order", "big");
    ck_assert_uint_eq(cfg.framing.order, RW_LENGTH_BIG);
    parse_both(&cfg, "--length-offset", "4096");
    ck_assert_uint_eq(cfg.framing.offset, 4096);
    parse_both(&cfg, "--length-adjust", "-4");
    ck_assert_int_eq(cfg.framing.adjust, -4);
    parse_both(&cfg, "--length-adjust", "+2");
    ck_assert_int_eq(cfg.framing.adjust, 2);
    ck_assert_int_eq(PARSE(&cfg, "--length-bytes", "2", "--length-order", "little",
                           "--length-offset", "2", "--length-adjust", "-6"),
                     0);
    ck_assert_uint_eq(cfg.framing.length_bytes, 2);
    ck_assert_uint_eq(cfg.framing.order, RW_LENGTH_LITTLE);
    ck_assert_uint_eq(cfg.framing.offset, 2);
    ck_assert_int_eq(cfg.framing.adjust, -6);
    /* A 1-byte field with the default --max-frame: fine, frames are just small. */
    ck_assert_int_eq(PARSE(&cfg, "--length-bytes", "1"), 0);

    expect_bad("--length-bytes", "5", "1, 2, 3, 4 or 8");
    expect_bad("--length-bytes", "0", NULL);
    expect_bad("--length-bytes", "16", NULL);
    expect_bad("--length-bytes", "+4", NULL);
    expect_bad("--length-bytes", "four", NULL);
    expect_bad("--length-order", "network", "big or little");
    expect_bad("--length-order", "", NULL);
    expect_bad("--length-offset", "4097", "0 to 4096");
    expect_bad("--length-offset", "-1", NULL);
    expect_bad("--length-offset", "1K", NULL);
    expect_bad("--length-adjust", "4294967297", NULL);
    expect_bad("--length-adjust", "-4294967297", NULL);
    expect_bad("--length-adjust", "99999999999999999999", NULL);
    expect_bad("--length-adjust", "--4", NULL);
    expect_bad("--length-adjust", "1.5", NULL);
    expect_bad("--length-adjust", "", NULL);
    /* Combinations that can never carry a frame. */
    ck_assert_int_eq(PARSE(&cfg, "--length-bytes", "1", "--length-adjust", "-256"), -EINVAL);
    ck_assert_msg(strncmp(err, "--length-adjust: ", 17) == 0 && strstr(err, "1-byte"), "%s", err);
    ck_assert_int_eq(PARSE(&cfg, "--length-bytes", "1", "--length-adjust", "-255"), 0);
    ck_assert_int_eq(PARSE(&cfg, "--max-frame", "100", "--length-adjust", "101"), -EINVAL);
    ck_assert_msg(strncmp(err, "--length-adjust: ", 17) == 0 && strstr(err, "--max-frame"), "%s",
                  err);
    ck_assert_int_eq(PARSE(&cfg, "--max-frame", "100", "--length-adjust", "100"), 0);
}
END_TEST

START_TEST(test_config_usage)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    rw__cli_usage(f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(strncmp(text, "Usage: ringwire [OPTIONS]\n", 26), 0);
    static const char *const must[] = {
        "--backend",
        "--listen",
        "--threads",
        "--cpu-affinity",
        "--idle-timeout",
        "--frame-timeout",
        "--tcp-user-timeout",
        "--keepalive",
        "--max-frame",
        "--length-bytes",
        "--length-order",
        "--length-offset",
        "--length-adjust",
        "--max-conns",
        "--backlog",
        "--proxy-protocol",
        "--write-buffer",
        "--max-memory",
        "--drain-timeout",
        "--stats-interval",
        "--stats-json",
        "--log-level",
        "--buf-count",
        "--buf-size",
        "--probe",
        "-h, --help",
        "-V, --version",
        "SIGTERM",
        "SIGINT",
        "SIGUSR1",
        "SIGHUP",
        "Exit status",
        "[127.0.0.1:7000]",
        "[60s]",
        "[30s]",
        "[1M]",
        "[10000]",
        "[4096]",
        "[4M]",
        "[10s]",
        "[info]",
        "[auto]",
        "[1024]",
        "[16448: 16K + 64",
        "powers of 1024",
        "a bare number is seconds",
    };
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        ck_assert_msg(strstr(text, must[i]) != NULL, "--help lacks '%s'", must[i]);
    /* Every line fits 79 columns. */
    for (const char *line = text; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        ck_assert_msg(nl - line <= 79, "long line: %.*s", (int)(nl - line), line);
        line = nl + 1;
    }
    free(text);
}
END_TEST

/*
 * --keepalive DUR: a silent peer must be found within 2 x DUR (first probe
 * after DUR, then probes x intvl), with at least one probe, within the
 * kernel's bounds, and with about three probes once DUR allows it.
 */
START_TEST(test_config_keepalive_schedule)
{
    static const struct {
        uint32_t idle_s, intvl_s, probes;
    } known[] = {{1, 1, 1},  {2, 1, 2},   {3, 1, 3},   {5, 1, 5},      {6, 2, 3},
                 {10, 3, 3}, {30, 10, 3}, {60, 20, 3}, {7200, 2400, 3}};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        uint32_t intvl = 0, probes = 0;
        rw__keepalive_schedule(known[i].idle_s, &intvl, &probes);
        ck_assert_msg(intvl == known[i].intvl_s && probes == known[i].probes,
                      "--keepalive %us: intvl %u probes %u", known[i].idle_s, intvl, probes);
    }
    for (uint32_t idle = 1; idle <= RW_KEEPALIVE_MAX_S; idle++) {
        uint32_t intvl = 0, probes = 0;
        rw__keepalive_schedule(idle, &intvl, &probes);
        ck_assert_uint_ge(intvl, 1);
        ck_assert_uint_le(intvl, RW_KEEPALIVE_MAX_S);
        ck_assert_uint_ge(probes, 1);
        ck_assert_uint_le(probes, RW_KEEPALIVE_PROBES_MAX);
        ck_assert_uint_le((uint64_t)intvl * probes, idle);
        if (idle >= 3)
            ck_assert_uint_ge(probes, 3);
        /* Not much sooner than 2 x DUR either: the last probe gets its interval. */
        ck_assert_uint_ge(idle + (uint64_t)intvl * probes, 2ull * idle - 2 * intvl);
    }
}
END_TEST

START_TEST(test_config_max_memory)
{
    struct rw_options cfg;
    /* The default: a quarter of the machine, or of a smaller cgroup limit, in whole MiB. */
    ck_assert_uint_eq(rw__default_max_memory(16ull << 30, 0), 4ull << 30);
    ck_assert_uint_eq(rw__default_max_memory(16ull << 30, 2ull << 30), 512ull << 20);
    ck_assert_uint_eq(rw__default_max_memory(16ull << 30, 64ull << 30), 4ull << 30);
    ck_assert_uint_eq(rw__default_max_memory((1ull << 30) + 12345, 0), 256ull << 20);
    ck_assert_uint_eq(rw__default_max_memory(8u << 20, 0), RW_MEM_MIN_BYTES);
    ck_assert_uint_eq(rw__default_max_memory(0, 0), RW_MEM_MIN_BYTES);
    rw_options_init(&cfg);
    ck_assert_uint_ge(cfg.max_memory_bytes, RW_MEM_MIN_BYTES);
    ck_assert_uint_eq(cfg.max_memory_bytes % (1u << 20), 0);

    parse_both(&cfg, "--max-memory", "0");
    ck_assert_uint_eq(cfg.max_memory_bytes, 0); /* no limit */
    parse_both(&cfg, "--max-memory", "4M");
    ck_assert_uint_eq(cfg.max_memory_bytes, RW_MEM_MIN_BYTES);
    parse_both(&cfg, "--max-memory", "3G");
    ck_assert_uint_eq(cfg.max_memory_bytes, 3ull << 30);
    expect_bad("--max-memory", "1M", "below the minimum of 4M (0 means no limit)");
    expect_bad("--max-memory", "lots", "invalid size");
    expect_bad("--max-memory", "99999999999G", "exceeds the limit");
}
END_TEST

START_TEST(test_config_check_fit)
{
    struct rw_options cfg;
    rw_options_init(&cfg);
    char msg[512];
    /* The defaults fit a small machine. */
    ck_assert_int_eq(rw__options_check_fit(&cfg, 1ull << 30, msg, sizeof(msg)), 0);
    /* Unknown machine memory: nothing to compare with. */
    cfg.threads = 256;
    cfg.buf_count = 32768;
    cfg.buf_size_bytes = 1u << 20;
    ck_assert_int_eq(rw__options_check_fit(&cfg, 0, msg, sizeof(msg)), 0);
    /* 256 x 32768 x 1 MiB of provided buffers fit no machine: refused with the numbers. */
    ck_assert_int_eq(rw__options_check_fit(&cfg, 64ull << 30, msg, sizeof(msg)), -EINVAL);
    ck_assert_msg(
        strstr(msg, "--threads 256 x --buf-count 32768 x --buf-size 1048576 = 8388608 MiB"), "%s",
        msg);
    ck_assert_msg(strstr(msg, "exceeds this machine's 65536 MiB"), "%s", msg);
    /* epoll has no provided buffers: the same numbers fit. */
    cfg.backend = RW_BACKEND_EPOLL;
    ck_assert_int_eq(rw__options_check_fit(&cfg, 64ull << 30, msg, sizeof(msg)), 0);
    /* The table at --max-conns counts on every backend. */
    cfg.max_conns = RW_CONNS_MAX;
    ck_assert_int_eq(rw__options_check_fit(&cfg, 64u << 20, msg, sizeof(msg)), -EINVAL);
    ck_assert_msg(strstr(msg, "--max-conns 1048576"), "%s", msg);
    /* And the parser applies the check (against this machine). */
    ck_assert_int_eq(PARSE(&cfg, "--threads", "256", "--buf-count", "32768", "--buf-size", "1M"),
                     -EINVAL);
    ck_assert_msg(strstr(err, "exceeds this machine's"), "%s", err);
}
END_TEST

START_TEST(test_config_small_err_buffer)
{
    struct rw_options cfg;
    char *argv[] = {arena, arena + 16, arena + 32, NULL};
    snprintf(arena, 16, "ringwire");
    snprintf(arena + 16, 16, "--max-frame");
    snprintf(arena + 32, 16, "abcdefghij");
    char small[8];
    memset(small, 'z', sizeof(small));
    ck_assert_int_eq(config_parse(&cfg, 3, argv, small, sizeof(small)), -EINVAL);
    ck_assert_str_eq(small, "--max-f");
    char one[1] = {'z'};
    ck_assert_int_eq(config_parse(&cfg, 3, argv, one, sizeof(one)), -EINVAL);
    ck_assert_int_eq(one[0], '\0');
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"test_config_defaults", test_config_defaults},
        {"test_config_framing", test_config_framing},
        {"test_config_every_option_both_forms", test_config_every_option_both_forms},
        {"test_config_many_options_together", test_config_many_options_together},
        {"test_config_later_option_wins", test_config_later_option_wins},
        {"test_config_listen_repeated", test_config_listen_repeated},
        {"test_config_listen_names", test_config_listen_names},
        {"test_config_default_threads_follow_affinity",
         test_config_default_threads_follow_affinity},
        {"test_config_flags", test_config_flags},
        {"test_config_sizes", test_config_sizes},
        {"test_config_durations", test_config_durations},
        {"test_config_listen_ipv4", test_config_listen_ipv4},
        {"test_config_listen_ipv6", test_config_listen_ipv6},
        {"test_config_listen_ipv6_scope_id", test_config_listen_ipv6_scope_id},
        {"test_config_nofile_needed", test_config_nofile_needed},
        {"test_config_listen_errors", test_config_listen_errors},
        {"test_config_bounds", test_config_bounds},
        {"test_config_bad_values", test_config_bad_values},
        {"test_config_unknown_option", test_config_unknown_option},
        {"test_config_missing_value", test_config_missing_value},
        {"test_config_positional", test_config_positional},
        {"test_config_help_version", test_config_help_version},
        {"test_config_usage", test_config_usage},
        {"test_config_keepalive_schedule", test_config_keepalive_schedule},
        {"test_config_max_memory", test_config_max_memory},
        {"test_config_check_fit", test_config_check_fit},
        {"test_config_small_err_buffer", test_config_small_err_buffer},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_ENV);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
