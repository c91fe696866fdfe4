/*
 * The ringwire command: the library's first client. Parse options, then run
 * the echo server (or print help, version, probe). The program owns the
 * signals: TERM/INT drain the server, USR1 logs the stats per worker, HUP is
 * logged and ignored (its default action would kill us with no drain);
 * SIGPIPE is ignored (sends also pass MSG_NOSIGNAL). It also tells systemd
 * (Type=notify) when the server is up and when it stops.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <ringwire/ringwire.h>

#include "backend.h"
#include "cli.h"
#include "echo.h"
#include "listener.h"
#include "log.h"
#include "notify.h"

/* "127.0.0.1:7000 [::1]:7001": every address as bound. */
static void format_addresses(const struct rw_server *srv, char *buf, size_t buf_bytes)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned a = 0; a < rw_server_address_count(srv) && used < buf_bytes; a++) {
        struct sockaddr_storage ss;
        socklen_t len;
        char text[RW_ADDR_TEXT_MAX] = "?";
        if (rw_server_address(srv, a, &ss, &len) == 0)
            rw__format_addr((const struct sockaddr *)&ss, text, sizeof(text));
        int n = snprintf(buf + used, buf_bytes - used, "%s%s", a ? " " : "", text);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Until TERM or INT: the other signals are answered here. */
static void wait_for_signals(struct rw_server *srv, const struct rw_options *opt,
                             const sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT) {
            RW_INFO("%s: draining (up to %llu ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                    (unsigned long long)opt->drain_timeout_ms);
            return;
        }
        if (sig == SIGHUP)
            RW_INFO("SIGHUP: ignored (ringwire has no log files to reopen)");
        else if (sig == SIGUSR1)
            rw_server_log_stats(srv, true);
    }
}

static int run(const struct rw_options *opt)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct rw_server *srv;
    char err[1024];
    int rc = rw_server_start(opt, &rw_echo_handler, NULL, &srv, err, sizeof(err));
    if (rc < 0) {
        RW_ERROR("%s", err);
        return 1;
    }
    char addr_text[RW_LISTEN_MAX * (RW_ADDR_TEXT_MAX + 1)];
    format_addresses(srv, addr_text, sizeof(addr_text));
    /* Every worker has its loop and listener set up: tell systemd (Type=notify). */
    int notified = rw__notifyf("READY=1\nSTATUS=listening on %s backend=%s threads=%u", addr_text,
                               rw_server_backend(srv), rw_server_threads(srv));
    if (notified < 0)
        RW_WARN("sd_notify READY=1 to $NOTIFY_SOCKET: %s", strerror(-notified));

    wait_for_signals(srv, opt, &set);
    (void)rw__notify("STOPPING=1\nSTATUS=draining");
    rw_server_stop(srv);
    rc = rw_server_wait(srv);
    rw_server_destroy(srv);
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct rw_cli cli;
    char err[512];
    if (rw__cli_parse(&cli, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "ringwire: %s\nTry 'ringwire --help' for more information.\n", err);
        return 2;
    }
    const struct rw_options *opt = &cli.cfg;
    switch (cli.action) {
    case RW_CLI_HELP:
        rw__cli_usage(stdout);
        rw__cli_usage_nofile(opt, stdout);
        return 0;
    case RW_CLI_VERSION:
        printf("ringwire %s\nbackends: uring epoll (chosen at run time with --backend)\n",
               rw_version());
        return 0;
    case RW_CLI_PROBE:
        rw__backend_probe_print(stdout);
        return 0;
    case RW_CLI_RUN:
        break;
    }
    /* Before the library logs anything: its first lines (backend, RLIMIT_NOFILE) too. */
    rw__log_set_level(opt->log_level);
    rw__log_set_format(opt->log_format, opt->log_timestamps);
    return run(opt);
}
