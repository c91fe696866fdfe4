/*
 * The ringwire program's command line: the option table of SPEC.md parsed
 * into struct rw_config plus what the program should do (cli.c), and the
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

/*
 * Durations become deadlines as now_ms + timeout_ms (conn.c), so they need a
 * ceiling far below UINT64_MAX; 30 days is longer than any sane timeout.
 * (Belongs in rw_limits.h next to the other ceilings.)
 */
#define DURATION_MAX_MS (30ull * 24 * 60 * 60 * 1000)
/* --write-buffer ceiling: 1 GiB of queued replies per connection. */
#define WRITE_BUFFER_MAX_BYTES (1ull << 30)
/* --buf-size floor: smaller provided buffers would cost a CQE per few bytes. */
#define BUF_SIZE_MIN_BYTES 64u

enum rw_cli_action { RW_CLI_RUN = 0, RW_CLI_HELP, RW_CLI_VERSION, RW_CLI_PROBE };

struct rw_cli {
    enum rw_cli_action action; /* -h/--help, -V/--version, --probe; else run */
    struct rw_config cfg;
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
void rw__cli_usage_nofile(const struct rw_config *cfg, FILE *out);

/* bytes in the largest unit that divides them ("1M", "64K", "100"), for messages and --help. */
const char *rw__cli_size_text(uint64_t bytes, char *buf, size_t buf_bytes);

#endif
