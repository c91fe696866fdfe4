/*
 * The peer address of a connection as log text, for connection-level
 * messages ("conn 7 (203.0.113.9:51234): protocol error: ...").
 */
#ifndef RW_PEER_H
#define RW_PEER_H

#include <stddef.h>

struct rw_conn;

/* "[ffff:...:ffff]:65535" plus the NUL fits. */
#define RW_PEER_TEXT_MAX 64u

/*
 * c's peer as "127.0.0.1:51234" or "[::1]:51234" in buf (n bytes, at least
 * RW_PEER_TEXT_MAX for any address), returned for use in a format argument.
 * Under --proxy-protocol, once the header is in, the client it named (its
 * source address), kept in c: no system call, known after a reset too.
 * Otherwise from getpeername(2) at the time of the call: after the peer reset the
 * connection the kernel no longer reports it (ENOTCONN), and the text is "?".
 * A system call: for log lines (debug, warn), never per frame.
 */
const char *rw__conn_peer(const struct rw_conn *c, char *buf, size_t n);

/*
 * The same from getpeername(2) always: under --proxy-protocol rw__conn_peer
 * prints the client the PROXY header named (once it has), and this the load
 * balancer that connected.
 */
const char *rw__conn_sock_peer(const struct rw_conn *c, char *buf, size_t n);

#endif
