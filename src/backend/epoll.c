/*
 * The epoll backend: the honest baseline. Level-triggered, non-blocking
 * sockets; one read per readiness into one per-loop scratch buffer (fair
 * across connections, no per-connection read buffer); replies gathered into
 * one sendmsg per connection per turn; EPOLLOUT armed only while a socket is
 * full. Mechanics only: every decision is the core's (core/backend.h).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rw_assert.h"
#include "backend.h"
#include "backends.h"
#include "rw_limits.h"

enum { TAG_LISTEN = 1, TAG_WAKE = 2, TAG_CONN = 3 };
/* A connection's bits: the first of its backend bytes (conn.h), ep_flags(c). */
enum { EP_READ = 1u << 0, EP_WRITE = 1u << 1, EP_REGISTERED = 1u << 2 };

struct ep_backend {
    struct rw_loop *loop; /* opaque: only passed back to the rw__loop_on_* callbacks */
    /* Read from the loop once at init (backend.h): the data path calls no accessor. */
    struct rw_stats *stats;
    struct rw_conn *conns;
    uint32_t conn_cap;
    const int *listen_fds;
    uint32_t listen_count;
    int wake_fd;
    int epfd;
    bool accept_armed;
    uint8_t *scratch;
    struct epoll_event events[RW_EPOLL_EVENTS_MAX];
};

_Static_assert(RW_CONNS_MAX <= (1u << 24), "conn index fits the epoll tag");
_Static_assert(sizeof(uint8_t) <= RW_BACKEND_CONN_BYTES, "fits the slot's backend bytes");

static uint8_t *ep_flags(struct rw_conn *c)
{
    return &c->backend[0];
}

static uint64_t tag_conn(const struct rw_conn *c)
{
    return ((uint64_t)TAG_CONN << 56) | ((uint64_t)c->generation << 24) | c->index;
}

static int ep_ctl(struct ep_backend *ep, int op, int fd, uint32_t events, uint64_t tag)
{
    struct epoll_event ev = {.events = events, .data.u64 = tag};
    return epoll_ctl(ep->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

static int ep_init(struct rw_loop *loop, void **out_be)
{
    struct ep_backend *ep = calloc(1, sizeof(*ep));
    if (!ep)
        return -ENOMEM;
    int rc = -ENOMEM;
    ep->loop = loop;
    ep->stats = rw__loop_stats(loop);
    ep->conns = rw__loop_conns(loop);
    ep->conn_cap = rw__loop_conn_cap(loop);
    ep->listen_fds = rw__loop_listen_fds(loop, &ep->listen_count);
    ep->wake_fd = rw__loop_wake_fd(loop);
    ep->scratch = malloc(RW_EPOLL_SCRATCH_BYTES);
    if (!ep->scratch)
        goto err_free;
    ep->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ep->epfd < 0) {
        rc = -errno;
        goto err_free;
    }
    rc = ep_ctl(ep, EPOLL_CTL_ADD, ep->wake_fd, EPOLLIN, (uint64_t)TAG_WAKE << 56);
    if (rc < 0)
        goto err_close;
    *out_be = ep;
    return 0;

err_close:
    close(ep->epfd);
err_free:
    free(ep->scratch);
    free(ep);
    return rc;
}

static void ep_destroy(void *be)
{
    struct ep_backend *ep = be;
    close(ep->epfd);
    free(ep->scratch);
    free(ep);
}

/* Each listener is tagged with its index in the loop's listen fds. */
static int ep_accept_start(void *be)
{
    struct ep_backend *ep = be;
    if (ep->accept_armed)
        return 0;
    for (uint32_t i = 0; i < ep->listen_count; i++) {
        int rc =
            ep_ctl(ep, EPOLL_CTL_ADD, ep->listen_fds[i], EPOLLIN, ((uint64_t)TAG_LISTEN << 56) | i);
        if (rc < 0) {
            while (i-- > 0) /* all or none: accept_stop would not know which */
                (void)ep_ctl(ep, EPOLL_CTL_DEL, ep->listen_fds[i], 0, 0);
            return rc;
        }
    }
    ep->accept_armed = true;
    return 0;
}

static void ep_accept_stop(void *be)
{
    struct ep_backend *ep = be;
    if (!ep->accept_armed)
        return;
    for (uint32_t i = 0; i < ep->listen_count; i++)
        (void)ep_ctl(ep, EPOLL_CTL_DEL, ep->listen_fds[i], 0, 0);
    ep->accept_armed = false;
}

/* Make the kernel's interest match the connection's EP_READ / EP_WRITE bits. */
static int ep_update(struct ep_backend *ep, struct rw_conn *c)
{
    uint8_t *flags = ep_flags(c);
    uint32_t events = 0;
    if (*flags & EP_READ)
        events |= EPOLLIN | EPOLLRDHUP;
    if (*flags & EP_WRITE)
        events |= EPOLLOUT;
    int op = (*flags & EP_REGISTERED) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    *flags |= EP_REGISTERED;
    return ep_ctl(ep, op, c->fd, events, tag_conn(c));
}

static int ep_conn_open(void *be, struct rw_conn *c)
{
    struct ep_backend *ep = be;
    *ep_flags(c) = EP_READ;
    return ep_update(ep, c);
}

static void ep_set(struct ep_backend *ep, struct rw_conn *c, uint32_t bit, bool on)
{
    uint8_t *now = ep_flags(c);
    uint8_t flags = (uint8_t)(on ? (*now | bit) : (*now & ~bit));
    if (flags == *now)
        return;
    *now = flags;
    (void)ep_update(ep, c); /* fails only for a dead fd, which the next I/O reports */
}

static void ep_read_pause(void *be, struct rw_conn *c)
{
    ep_set(be, c, EP_READ, false);
}
static void ep_read_resume(void *be, struct rw_conn *c)
{
    ep_set(be, c, EP_READ, true);
}

/* Reads happen only in ep_wait's dispatch: none is ever left in flight. */
static bool ep_read_idle(void *be, struct rw_conn *c)
{
    (void)be;
    (void)c;
    return true;
}

static int ep_flush(void *be, struct rw_conn *c)
{
    struct ep_backend *ep = be;
    struct iovec iov[RW_SEND_IOV_MAX];
    size_t count = rw__outq_gather(&c->outq, iov, RW_SEND_IOV_MAX);
    RW_ASSERT(count > 0);
    size_t gathered = 0;
    for (size_t i = 0; i < count; i++)
        gathered += iov[i].iov_len;
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = count};
    ssize_t n;
    do {
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    rw__stat_add(ep->stats, RW_STAT_SEND_CALLS, 1);
    if (n < 0) {
        if (errno != EAGAIN)
            return -errno;
        ep_set(ep, c, EP_WRITE, true);
        return 0;
    }
    /* Short: the socket is full, wait for EPOLLOUT. Whole: stop watching for it. */
    ep_set(ep, c, EP_WRITE, (size_t)n < gathered);
    return (int)n;
}

static bool ep_close(void *be, struct rw_conn *c)
{
    (void)be;
    close(c->fd); /* also removes it from the epoll set: no dup exists */
    *ep_flags(c) = 0;
    return true;
}

static void ep_accept_ready(struct ep_backend *ep, uint32_t listener)
{
    struct rw_loop *loop = ep->loop;
    RW_ASSERT(listener < ep->listen_count);
    int listen_fd = ep->listen_fds[listener];
    for (unsigned i = 0; i < RW_ACCEPT_BATCH_MAX && ep->accept_armed; i++) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            rw__loop_on_accept(loop, fd);
            continue;
        }
        switch (errno) {
        case EAGAIN:
            return;
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case EPERM:
            continue; /* that one connection failed; others may be waiting */
        default:
            rw__loop_on_accept_error(loop, -errno); /* EMFILE, ENFILE, ENOBUFS, ENOMEM */
            return;
        }
    }
}

static void ep_conn_ready(struct ep_backend *ep, uint64_t tag, uint32_t events)
{
    uint32_t index = (uint32_t)(tag & 0xffffffu);
    uint32_t generation = (uint32_t)((tag >> 24) & 0xffffffffu);
    struct rw_conn *c = rw__conn_lookup(ep->conns, ep->conn_cap, index, generation);
    if (!c || c->state != RW_CONN_OPEN)
        return; /* stale event of a slot closed earlier in this batch */
    if ((*ep_flags(c) & EP_READ) && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        ssize_t n;
        do {
            n = recv(c->fd, ep->scratch, RW_EPOLL_SCRATCH_BYTES, 0);
        } while (n < 0 && errno == EINTR);
        rw__stat_add(ep->stats, RW_STAT_RECV_CALLS, 1);
        if (n > 0) {
            rw__conn_on_data(c, ep->scratch, (size_t)n);
        } else if (n == 0) {
            ep_set(ep, c, EP_READ, false); /* the stream ended: stop level-triggered wakeups */
            rw__conn_on_eof(c);
        } else if (errno != EAGAIN) {
            rw__conn_on_error(c, -errno);
        }
    } else if (events & EPOLLERR) {
        int err = 0;
        socklen_t len = sizeof(err);
        (void)getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rw__conn_on_error(c, err ? -err : -EIO);
    }
    if (c->state == RW_CONN_OPEN && (events & (EPOLLOUT | EPOLLHUP)) && (*ep_flags(c) & EP_WRITE))
        rw__conn_on_writable(c);
}

static int ep_wait(void *be, int timeout_ms)
{
    struct ep_backend *ep = be;
    int n = epoll_wait(ep->epfd, ep->events, RW_EPOLL_EVENTS_MAX, timeout_ms);
    rw__stat_add(ep->stats, RW_STAT_WAIT_CALLS, 1);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint64_t tag = ep->events[i].data.u64;
        /* The next event's slot loads while this one's recv and send run (backend.h). */
        if (i + 1 < n && (ep->events[i + 1].data.u64 >> 56) == TAG_CONN)
            rw__conn_prefetch(ep->conns, ep->conn_cap,
                              (uint32_t)(ep->events[i + 1].data.u64 & 0xffffffu));
        switch (tag >> 56) {
        case TAG_LISTEN:
            ep_accept_ready(ep, (uint32_t)(tag & 0xffffffu));
            break;
        case TAG_WAKE: {
            uint64_t value;
            (void)!read(ep->wake_fd, &value, sizeof(value));
            rw__loop_on_wake(ep->loop);
            break;
        }
        default:
            ep_conn_ready(ep, tag, ep->events[i].events);
            break;
        }
    }
    return 0;
}

const struct rw_backend_ops rw__epoll_ops = {
    .name = "epoll",
    .init = ep_init,
    .destroy = ep_destroy,
    .accept_start = ep_accept_start,
    .accept_stop = ep_accept_stop,
    .conn_open = ep_conn_open,
    .read_pause = ep_read_pause,
    .read_resume = ep_read_resume,
    .read_idle = ep_read_idle,
    .flush = ep_flush,
    .close = ep_close,
    .wait = ep_wait,
};
