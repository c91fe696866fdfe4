/*
 * Value syntax (values.c): sizes, durations, listen addresses and the
 * keepalive schedule, parsed for the options and the command line alike.
 */
#ifndef RW_VALUES_H
#define RW_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rw_limits.h"

/* struct rw_listen: include/ringwire/ringwire.h (every worker opens one listener per address). */
#include <ringwire/ringwire.h>

/*
 * A whole decimal number: digits only (no sign, no spaces, no base prefix); *end points at the
 * first non-digit, also on -ERANGE. 0, -EINVAL (no digit first) or -ERANGE.
 */
int rw__parse_u64(const char *text, const char **end, uint64_t *out);
/* "123", "4K", "1M", "2G" (powers of 1024). 0 or -EINVAL / -ERANGE. */
int rw__parse_size(const char *text, uint64_t *out_bytes);
/* "250ms", "10s", "2m", bare number = seconds. 0 or -EINVAL / -ERANGE. */
int rw__parse_duration_ms(const char *text, uint64_t *out_ms);
/* "127.0.0.1:7000", "[::1]:7000", "0.0.0.0:80", "[::]:0". 0 or -EINVAL. Numeric only (no DNS). */
int rw__parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addr_len);
/*
 * HOST:PORT as --listen takes it: HOST a numeric IPv4 address, an IPv6 one in brackets (scope
 * id too, as rw__parse_listen), or a name resolved with getaddrinfo, which yields every address
 * it has (localhost: 127.0.0.1 and ::1 when /etc/hosts says so), in the resolver's order,
 * duplicates dropped; PORT a number or a service name ("http", from /etc/services). Writes up
 * to max addresses to out and their number to *count. 0; -EINVAL with the reason (for a name,
 * the resolver's: gai_strerror) in why; -E2BIG when there are more than max.
 */
int rw__resolve_listen(const char *text, struct rw_listen *out, unsigned max, unsigned *count,
                       char *why, size_t why_bytes);

/*
 * Keepalive probe schedule for --keepalive idle_s (> 0): the first probe after
 * idle_s of silence, then one every *intvl_s, *probes unanswered in all, so
 * idle_s + intvl_s * probes <= 2 * idle_s (a silent peer is found within
 * about twice the setting; kernel-notes/11). idle_s <= RW_KEEPALIVE_MAX_S.
 */
void rw__keepalive_schedule(uint32_t idle_s, uint32_t *intvl_s, uint32_t *probes);

#endif
