/*
 * The ringwire program's command line: the option table of SPEC.md parsed
 * into struct rw_options plus what the program should do (cli.c), and the
 * --help text (cli_help.c). Parsing never prints and never exits: errors come
 * back as -EINVAL with a message naming the option and why; main prints it
 * and exits 2.
 */
#ifndef RW_CLI_H
#define RW_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "options.h"

/* DURATION_MAX_MS, WRITE_BUFFER_MAX_BYTES, BUF_SIZE_MIN_BYTES: rw_limits.h (rw_options_check). */

enum rw_cli_action { RW_CLI_RUN = 0, RW_CLI_HELP, RW_CLI_VERSION, RW_CLI_PROBE };

struct rw_cli {
    enum rw_cli_action action; /* -h/--help, -V/--version, --probe; else run */
    struct rw_options cfg;
};

/*
 * Parse argv (argv[0] is the program). Accepts "--opt value" and "--opt=value".
 * Returns 0, or -EINVAL with err holding e.g. "--max-frame: invalid size 'abc'"
 * (the option named first). -h/--help, -V/--version and --probe set cli->action.
 */
int rw__cli_parse(struct rw_cli *cli, int argc, char *const argv[], char *err, size_t err_bytes);

/* The --help text. */
void rw__cli_usage(FILE *out);
/*
 * The --help text's last lines, for this configuration: the descriptor limit
 * the process runs under now (RLIMIT_NOFILE soft/hard), what --max-conns
 * needs, and what the server will do about it at start.
 */
void rw__cli_usage_nofile(const struct rw_options *cfg, FILE *out);

/* bytes in the largest unit that divides them ("1M", "64K", "100"), for messages and --help. */
const char *rw__cli_size_text(uint64_t bytes, char *buf, size_t buf_bytes);

#endif
