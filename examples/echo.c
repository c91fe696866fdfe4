/*
 * echo: the smallest complete libringwire server. Every frame is answered with
 * the same bytes, its header and payload, in order. The program, not the
 * library, owns the signals: SIGINT and SIGTERM are blocked before the server
 * starts and the main thread waits for them with sigwait, then drains the
 * server (replies already due still go out) and exits 0.
 *
 *   cc -o echo echo.c $(pkg-config --cflags --libs ringwire)
 *   ./echo [--listen HOST:PORT]... [--threads N] [--backend auto|uring|epoll]
 *
 * Port 0 lets the kernel pick; "listening on port N" on stdout says which.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringwire/ringwire.h>

static int echo_frame(struct rw_conn *conn, const struct rw_frame *frame)
{
    /* header .. payload end lie together in the server's buffer, valid during this call only:
     * send_raw copies them. */
    size_t bytes = (size_t)(frame->payload - frame->header) + frame->len;
    return rw_conn_send_raw(conn, frame->header, bytes);
}

static const struct rw_handler echo_handler = {.name = "echo", .on_frame = echo_frame};

static int parse_args(int argc, char **argv, struct rw_options *opt)
{
    char err[256];
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0) {
            if (rw_options_add_listen(opt, argv[i + 1], err, sizeof(err)) < 0) {
                fprintf(stderr, "echo: --listen: %s\n", err);
                return -1;
            }
        } else if (strcmp(argv[i], "--threads") == 0) {
            opt->threads = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--backend") == 0) {
            const char *b = argv[i + 1];
            opt->backend = strcmp(b, "uring") == 0   ? RW_BACKEND_URING
                           : strcmp(b, "epoll") == 0 ? RW_BACKEND_EPOLL
                                                     : RW_BACKEND_AUTO;
        } else {
            return -1;
        }
    }
    return argc % 2 == 1 ? 0 : -1; /* every option takes one value */
}

int main(int argc, char **argv)
{
    struct rw_options opt;
    rw_options_init(&opt);
    if (parse_args(argc, argv, &opt) < 0) {
        fprintf(stderr, "usage: echo [--listen HOST:PORT]... [--threads N] [--backend B]\n");
        return 2;
    }

    /* Blocked before any worker exists, so the signals wait for sigwait below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, NULL);

    struct rw_server *srv;
    char err[256] = "";
    int rc = rw_server_start(&opt, &echo_handler, NULL, &srv, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "echo: %s\n", err[0] ? err : strerror(-rc));
        return 1;
    }
    printf("listening on port %u (backend %s, %u threads)\n", rw_server_port(srv, 0),
           rw_server_backend(srv), rw_server_threads(srv));
    fflush(stdout);

    int sig;
    sigwait(&stop, &sig);
    rw_server_stop(srv); /* drain: stop accepting, finish what came in */
    rc = rw_server_wait(srv);
    rw_server_destroy(srv);
    return rc < 0 ? 1 : 0;
}
