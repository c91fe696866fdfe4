/*
 * Listening sockets: non-blocking, CLOEXEC, SO_REUSEADDR and SO_REUSEPORT (one
 * per worker on the same address), backlog clamped by net.core.somaxconn.
 */
#ifndef RW_LISTENER_H
#define RW_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Open, bind and listen (reuseport: join a SO_REUSEPORT group; v6only: IPV6_V6ONLY on an IPv6
 * address, set explicitly either way). Returns the fd or -errno; what holds the failing step
 * ("bind 127.0.0.1:7000"). */
int rw__listener_open(const struct sockaddr *addr, socklen_t addr_len, uint32_t backlog,
                      bool reuseport, bool v6only, char *what, size_t what_bytes);
/* net.core.somaxconn, or -errno if unreadable. */
int rw__somaxconn(void);
/* rw__format_addr's longest text, NUL included: "[" v6 "%" interface "]:65535". */
#define RW_ADDR_TEXT_MAX 80u
/* "127.0.0.1:7000", "[::1]:7000" or, with a scope id, "[fe80::1%eth0]:7000". */
void rw__format_addr(const struct sockaddr *addr, char *buf, size_t buf_bytes);
/* The bound address of fd into addr (for port 0). 0 or -errno. */
int rw__listener_bound(int fd, struct sockaddr_storage *addr, socklen_t *addr_len);

#endif
