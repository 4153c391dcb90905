/*
 * template.h - expansion of a stage's argv template words
 * (cluster-configs/targets/README.md):
 *
 *   {src}        the attempt's src/ directory
 *   {source}     the first source file
 *   {sources}    alone as a word: one argument per source file; inside a
 *                word: every source file, separated by spaces
 *   {out}        this stage's output directory
 *   {prev}       the previous stage's output directory ({src} for the first)
 *   {job}        the job id
 *   {attempt}    the attempt number
 *   {param:NAME} the job's parameter NAME (letters, digits, '_'; not
 *                starting with a digit)
 *
 * Anything else is copied as it is: no shell, no escapes.  Expansion is
 * pure: it reads only the context and writes only the argv it is given.
 */
#ifndef INGOT_NODE_WORKER_TEMPLATE_H
#define INGOT_NODE_WORKER_TEMPLATE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/str.h"
#include "storage/records.h"

/* The longest word after expansion, NUL excluded. */
#define TEMPLATE_WORD_MAX 4095

/* What the placeholders stand for in one stage of one attempt.  Every
 * pointer is borrowed for the duration of the call. */
struct template_ctx {
	const char *dir;                /* the attempt's directory */
	const struct rec_file *sources; /* the job's sources (paths under dir/src/) */
	uint32_t nsources;
	const struct rec_kv *params; /* the job's parameters */
	uint32_t nparams;
	uint64_t job;
	uint32_t attempt;
	const char *out;      /* this stage's output directory */
	const char *prev;     /* the previous stage's (or dir/src) */
	struct ing_str stage; /* the stage's name, for messages */
};

/*
 * Appends a copy of s[0..len) (allocated from z) to argv[*argc], keeping
 * room for the terminating NULL within `cap` entries.  0, or ING_ETOOBIG
 * (argv full), ING_ENOMEM.
 */
int template_append(char **argv, unsigned *argc, unsigned cap, msgpack_zone *z, const char *s,
                    size_t len);

/*
 * Expands one template word into argv (one argument, or one per source for
 * a lone {sources}).  0; ING_ETOOBIG when a word grows past
 * TEMPLATE_WORD_MAX or argv is full; ING_ENOTFOUND when the word uses a
 * {param:NAME} the job does not have (why says so, naming the stage and
 * the parameter); ING_ENOMEM.  On error argv may hold some new entries.
 */
int template_expand(const struct template_ctx *c, struct ing_str word, msgpack_zone *z, char **argv,
                    unsigned *argc, unsigned cap, char *why, size_t why_cap);

#endif
