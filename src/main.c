/* The ringwire command: parse options, then run the echo server (or print help, version, probe). */
#include <stdio.h>

#include <ringwire/handler.h>

#include "backend.h"
#include "config.h"
#include "log.h"
#include "rw_build_config.h"
#include "server.h"

int main(int argc, char **argv)
{
    struct rw_config cfg;
    char err[512];
    if (rw__config_parse(&cfg, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "ringwire: %s\nTry 'ringwire --help' for more information.\n", err);
        return 2;
    }
    switch (cfg.action) {
    case RW_ACTION_HELP:
        rw__config_usage(stdout);
        rw__config_usage_nofile(&cfg, stdout);
        return 0;
    case RW_ACTION_VERSION:
        printf("ringwire %s\nbackends: uring epoll (chosen at run time with --backend)\n",
               RW_VERSION);
        return 0;
    case RW_ACTION_PROBE:
        rw__backend_probe_print(stdout);
        return 0;
    case RW_ACTION_RUN:
        break;
    }
    rw__log_set_level(cfg.log_level);
    rw__log_set_format(cfg.log_format, cfg.log_timestamps);
    return rw__server_run(&cfg, &rw_echo_handler);
}
