/*
 * --metrics HOST:PORT: the counters and gauges in the Prometheus text
 * exposition format (version 0.0.4) over plain HTTP/1.0 and 1.1, GET or HEAD
 * /metrics, one request per connection. Served by one thread of its own that
 * reads the workers' counters with relaxed loads, as the stats line does; it
 * never touches a worker's loop, sockets or memory.
 */
#ifndef RW_METRICS_H
#define RW_METRICS_H

#include <sys/socket.h>

#include "stats.h"

struct rw_metrics;

/*
 * Fresh counters for one scrape: per[i] points at worker i's counters (valid
 * until rw__metrics_stop returns), total holds their sum; returns the number
 * of workers. Called on the metrics thread.
 */
typedef unsigned (*rw_metrics_collect_fn)(void *ctx, struct rw_stats *total, struct rw_stats **per);

struct rw_metrics_source {
    rw_metrics_collect_fn collect;
    void *ctx;
    const struct rw_stats_meta *meta; /* read at every scrape; must outlive the thread */
};

/*
 * Listen on addr and start the thread; logs "metrics: serving http://ADDR/metrics"
 * (the bound port when addr's is 0). 0, or -errno with the failure logged
 * ("metrics: bind 127.0.0.1:9100: Address already in use").
 */
int rw__metrics_start(struct rw_metrics **out, const struct sockaddr *addr, socklen_t addr_len,
                      const struct rw_metrics_source *src);
/* Stop and join the thread, close its socket, free m. NULL is a no-op. */
void rw__metrics_stop(struct rw_metrics *m);

/*
 * The exposition text for these counters (the thread's body, public for the
 * unit tests): every family with # HELP and # TYPE, process totals as
 * ringwire_NAME, per worker as ringwire_worker_NAME{worker="N"}, counters
 * ending in _total, CPU time in seconds. 0 or -errno (of the stream).
 */
int rw__metrics_format(const struct rw_stats_meta *meta, const struct rw_stats *total,
                       unsigned workers, struct rw_stats *const *per, FILE *out);

#endif
