/* The ringwire command: parse options, then run the echo server (or print help, version, probe). */
#include <stdio.h>

#include <ringwire/handler.h>

#include "backend.h"
#include "cli.h"
#include "log.h"
#include "rw_build_config.h"
#include "server.h"

int main(int argc, char **argv)
{
    struct rw_cli cli;
    char err[512];
    if (rw__cli_parse(&cli, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "ringwire: %s\nTry 'ringwire --help' for more information.\n", err);
        return 2;
    }
    const struct rw_config *cfg = &cli.cfg;
    switch (cli.action) {
    case RW_CLI_HELP:
        rw__cli_usage(stdout);
        rw__cli_usage_nofile(cfg, stdout);
        return 0;
    case RW_CLI_VERSION:
        printf("ringwire %s\nbackends: uring epoll (chosen at run time with --backend)\n",
               RW_VERSION);
        return 0;
    case RW_CLI_PROBE:
        rw__backend_probe_print(stdout);
        return 0;
    case RW_CLI_RUN:
        break;
    }
    rw__log_set_level(cfg->log_level);
    rw__log_set_format(cfg->log_format, cfg->log_timestamps);
    return rw__server_run(cfg, &rw_echo_handler);
}
