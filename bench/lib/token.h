/*
 * token.h - the credential a bench sends, read the way ingotctl reads it.
 */
#ifndef INGOT_BENCH_TOKEN_H
#define INGOT_BENCH_TOKEN_H

#include <stddef.h>

/*
 * The token to send: `flag` when not NULL (a --token argument), else
 * INGOT_TOKEN, else the first line of the file INGOT_TOKEN_FILE names
 * (bench/token.sh exports it: a new cluster's <data_dir>/admin.token),
 * blanks around it dropped, copied into buf.  NULL: none of them is set.
 * An unreadable INGOT_TOKEN_FILE ends the program with exit 2, naming
 * `prog` and the file.
 */
const char *bench_token(const char *prog, const char *flag, char *buf, size_t cap);

#endif
