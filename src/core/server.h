/*
 * The server: picks the backend, opens the listeners, runs one worker thread
 * per --threads (each its own loop, listener, table, timers, buffers), turns
 * signals into a drain or a stats line, and returns the process exit status.
 */
#ifndef RW_SERVER_H
#define RW_SERVER_H

#include <ringwire/handler.h>

#include "options.h"

/* Runs until SIGTERM/SIGINT drained everything. Returns 0, or 1 on a runtime failure (logged). */
int rw__server_run(const struct rw_config *cfg, const struct rw_handler *handler);

#endif
