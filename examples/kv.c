/*
 * kv: a request/response service that keeps state per connection. Each
 * connection gets its own small key-value store, made in on_open, found with
 * rw_conn_user in on_frame and freed in on_close: two connections never see
 * each other's keys, and the store goes when its connection does. Handlers
 * of one connection never run concurrently, so the store needs no lock; what
 * all workers share (the totals printed at exit) is atomic.
 *
 * Protocol: the server's framing (a 4-byte big-endian length, then the
 * payload). Each frame is one command, answered by exactly one frame, in
 * order. Payloads are ASCII, the command and key separated by one space:
 *   SET key value  ->  "OK"              (value: the rest of the frame, may be empty)
 *   GET key        ->  "VALUE value" or "NONE"
 *   DEL key        ->  "OK" or "NONE"
 *   COUNT          ->  "COUNT n"         (keys in this connection's store)
 *   QUIT           ->  "BYE", then the server closes the connection
 *   anything else  ->  "ERR why"         (the connection stays open)
 * Keys are 1 to 64 bytes with no space, values at most 1024 bytes, at most
 * 256 keys a connection ("ERR full"). A frame longer than any command
 * (--max-frame 1093 here) is a protocol error: the server answers the
 * frames before it, then closes the connection.
 *
 *   cc -o kv kv.c $(pkg-config --cflags --libs ringwire)
 *   ./kv [--listen HOST:PORT]... [--threads N] [--backend auto|uring|epoll]
 *
 * It prints "listening on port N" once it serves, and after SIGINT/SIGTERM
 * "kv: accepted=A closed=C keys_freed=K frames_in=F" before it exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringwire/ringwire.h>

#define KEY_MAX   64u
#define VALUE_MAX 1024u
#define KEYS_MAX  256u

struct entry {
    struct entry *next;
    size_t key_len, value_len;
    char bytes[]; /* key, then value */
};

struct store { /* one per connection */
    struct entry *head;
    unsigned count;
};

struct totals { /* shared by every worker: the server's ctx */
    atomic_ulong closed, keys_freed;
};

static struct entry **find(struct store *s, const char *key, size_t key_len)
{
    struct entry **e = &s->head;
    while (*e && ((*e)->key_len != key_len || memcmp((*e)->bytes, key, key_len) != 0))
        e = &(*e)->next;
    return e; /* the link to the entry, or the NULL at the end */
}

static int reply(struct rw_conn *conn, const char *text)
{
    return rw_conn_send_frame(conn, text, (uint32_t)strlen(text));
}

static int kv_set(struct rw_conn *conn, struct store *s, const char *key, size_t key_len,
                  const char *value, size_t value_len)
{
    if (value_len > VALUE_MAX)
        return reply(conn, "ERR value too long");
    struct entry **link = find(s, key, key_len), *old = *link;
    if (!old && s->count == KEYS_MAX)
        return reply(conn, "ERR full");
    struct entry *e = malloc(sizeof(*e) + key_len + value_len);
    if (!e)
        return reply(conn, "ERR out of memory");
    e->key_len = key_len;
    e->value_len = value_len;
    memcpy(e->bytes, key, key_len);
    memcpy(e->bytes + key_len, value, value_len);
    e->next = old ? old->next : NULL;
    *link = e;
    if (old)
        free(old);
    else
        s->count++;
    return reply(conn, "OK");
}

static int kv_open(struct rw_conn *conn)
{
    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM; /* refused: closed at once, no on_close */
    rw_conn_set_user(conn, s);
    return 0;
}

static int kv_frame(struct rw_conn *conn, const struct rw_frame *frame)
{
    struct store *s = rw_conn_user(conn);
    if (frame->len == 0)
        return reply(conn, "ERR empty command");
    /* The payload is the server's and not NUL-terminated: split it in place. */
    const char *p = (const char *)frame->payload, *end = p + frame->len;
    const char *sp = memchr(p, ' ', frame->len);
    size_t cmd_len = (size_t)((sp ? sp : end) - p);
    const char *key = sp ? sp + 1 : end;
    const char *key_end = memchr(key, ' ', (size_t)(end - key));
    size_t key_len = (size_t)((key_end ? key_end : end) - key);

    if (cmd_len == 5 && memcmp(p, "COUNT", 5) == 0 && !sp) {
        char text[32];
        snprintf(text, sizeof(text), "COUNT %u", s->count);
        return reply(conn, text);
    }
    if (cmd_len == 4 && memcmp(p, "QUIT", 4) == 0 && !sp) {
        int rc = reply(conn, "BYE");
        rw_conn_close(conn); /* after BYE went out; on_close follows */
        return rc;
    }
    if (cmd_len != 3 ||
        (memcmp(p, "SET", 3) != 0 && memcmp(p, "GET", 3) != 0 && memcmp(p, "DEL", 3) != 0))
        return reply(conn, "ERR unknown command");
    if (key_len == 0 || key_len > KEY_MAX)
        return reply(conn, "ERR bad key");
    if (p[0] == 'S') {
        if (!key_end)
            return reply(conn, "ERR SET needs a value");
        return kv_set(conn, s, key, key_len, key_end + 1, (size_t)(end - key_end - 1));
    }
    if (key_end)
        return reply(conn, "ERR one key only");
    struct entry **link = find(s, key, key_len), *e = *link;
    if (!e)
        return reply(conn, "NONE");
    if (p[0] == 'D') {
        *link = e->next;
        free(e);
        s->count--;
        return reply(conn, "OK");
    }
    char text[sizeof("VALUE ") + VALUE_MAX];
    int n = snprintf(text, sizeof(text), "VALUE %.*s", (int)e->value_len, e->bytes + e->key_len);
    return rw_conn_send_frame(conn, text, (uint32_t)n);
}

static void kv_close(struct rw_conn *conn, enum rw_close_reason reason)
{
    struct store *s = rw_conn_user(conn);
    struct totals *t = rw_conn_server_ctx(conn);
    unsigned long freed = 0;
    for (struct entry *e = s->head, *next; e; e = next, freed++) {
        next = e->next;
        free(e);
    }
    free(s);
    atomic_fetch_add_explicit(&t->keys_freed, freed, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->closed, 1, memory_order_relaxed);
    (void)reason; /* rw_close_reason_name(reason) says why, for a log */
}

static const struct rw_handler kv_handler = {
    .name = "kv", .on_open = kv_open, .on_frame = kv_frame, .on_close = kv_close};

static int parse_args(int argc, char **argv, struct rw_options *opt)
{
    char err[256];
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0) {
            if (rw_options_add_listen(opt, argv[i + 1], err, sizeof(err)) < 0) {
                fprintf(stderr, "kv: --listen: %s\n", err);
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
    return argc % 2 == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct rw_options opt;
    rw_options_init(&opt);
    opt.max_frame_bytes = 4 + KEY_MAX + 1 + VALUE_MAX; /* longer is no command: close */
    if (parse_args(argc, argv, &opt) < 0) {
        fprintf(stderr, "usage: kv [--listen HOST:PORT]... [--threads N] [--backend B]\n");
        return 2;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, NULL);

    static struct totals totals; /* must outlive the server */
    struct rw_server *srv;
    char err[256] = "";
    int rc = rw_server_start(&opt, &kv_handler, &totals, &srv, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "kv: %s\n", err[0] ? err : strerror(-rc));
        return 1;
    }
    printf("listening on port %u (backend %s, %u threads)\n", rw_server_port(srv, 0),
           rw_server_backend(srv), rw_server_threads(srv));
    fflush(stdout);

    int sig;
    sigwait(&stop, &sig);
    rw_server_stop(srv);
    rc = rw_server_wait(srv);
    struct rw_counters c;
    rw_server_counters(srv, &c); /* still readable until destroy */
    rw_server_destroy(srv);
    printf("kv: accepted=%llu closed=%lu keys_freed=%lu frames_in=%llu\n",
           (unsigned long long)c.accepted, atomic_load(&totals.closed),
           atomic_load(&totals.keys_freed), (unsigned long long)c.frames_in);
    return rc < 0 ? 1 : 0;
}
