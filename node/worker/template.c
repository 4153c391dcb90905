/*
 * template.c - argv template expansion (see template.h for the
 * placeholders).
 *
 * A word is scanned left to right; at each position the first placeholder
 * that matches is replaced, anything else is copied byte by byte into a
 * buffer of TEMPLATE_WORD_MAX bytes.  A lone {sources} is the one
 * placeholder that makes several arguments.  Nothing here touches the
 * file system or the clock: the worker builds the context, the expansion
 * only reads it.
 */
#include "node/worker/template.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "node/sm/cmd.h"

int template_append(char **argv, unsigned *argc, unsigned cap, msgpack_zone *z, const char *s,
                    size_t len)
{
	if (*argc + 1 >= cap)
		return ING_ETOOBIG;
	char *p = msgpack_zone_malloc(z, len + 1);
	if (p == NULL)
		return ING_ENOMEM;
	memcpy(p, s, len);
	p[len] = '\0';
	argv[(*argc)++] = p;
	return 0;
}

int template_expand(const struct template_ctx *c, struct ing_str word, msgpack_zone *z, char **argv,
                    unsigned *argc, unsigned cap, char *why, size_t why_cap)
{
	char buf[TEMPLATE_WORD_MAX + 1], val[1024];
	size_t n = 0;
	int rv;

	if (ing_str_eq_c(word, "{sources}")) {
		for (uint32_t i = 0; i < c->nsources; i++) {
			int k = snprintf(val, sizeof(val), "%s/src/%.*s", c->dir,
			                 ING_STR_FMT(c->sources[i].path));
			rv = template_append(argv, argc, cap, z, val, (size_t)k);
			if (rv != 0)
				return rv;
		}
		return 0;
	}
	for (uint32_t i = 0; i < word.len;) {
		const char *rest = word.ptr + i;
		size_t left = word.len - i;
		const char *rep = NULL;
		size_t skip = 0;
#define PLACEHOLDER(name, value)                         \
	if (rep == NULL && left >= sizeof(name) - 1 &&   \
	    memcmp(rest, name, sizeof(name) - 1) == 0) { \
		rep = (value);                           \
		skip = sizeof(name) - 1;                 \
	}
		char src[600], first[900], job[32], attempt[16], all[2048];
		snprintf(src, sizeof(src), "%s/src", c->dir);
		if (c->nsources > 0)
			snprintf(first, sizeof(first), "%s/src/%.*s", c->dir,
			         ING_STR_FMT(c->sources[0].path));
		else
			snprintf(first, sizeof(first), "%s/src/", c->dir);
		snprintf(job, sizeof(job), "%" PRIu64, c->job);
		snprintf(attempt, sizeof(attempt), "%" PRIu32, c->attempt);
		size_t al = 0;
		all[0] = '\0';
		for (uint32_t s = 0; s < c->nsources && al < sizeof(all); s++)
			al += (size_t)snprintf(all + al, sizeof(all) - al, "%s%s/src/%.*s",
			                       s > 0 ? " " : "", c->dir,
			                       ING_STR_FMT(c->sources[s].path));
		PLACEHOLDER("{src}", src)
		PLACEHOLDER("{sources}", all)
		PLACEHOLDER("{source}", first)
		PLACEHOLDER("{out}", c->out)
		PLACEHOLDER("{prev}", c->prev)
		PLACEHOLDER("{job}", job)
		PLACEHOLDER("{attempt}", attempt)
#undef PLACEHOLDER
		struct ing_str pname;
		if (rep == NULL && (skip = cmd_param_placeholder(rest, left, &pname)) > 0) {
			uint32_t p = 0;
			while (p < c->nparams && !ing_str_eq(c->params[p].key, pname))
				p++;
			if (p == c->nparams) {
				snprintf(why, why_cap,
				         "stage '%.*s': argv uses {param:%.*s} but the job has no "
				         "parameter %.*s",
				         ING_STR_FMT(c->stage), ING_STR_FMT(pname),
				         ING_STR_FMT(pname));
				return ING_ENOTFOUND;
			}
			size_t vl = c->params[p].value.len;
			if (n + vl >= sizeof(buf))
				return ING_ETOOBIG;
			memcpy(buf + n, c->params[p].value.ptr, vl);
			n += vl;
			i += (uint32_t)skip;
			continue;
		}
		if (rep != NULL) {
			size_t rl = strlen(rep);
			if (n + rl >= sizeof(buf))
				return ING_ETOOBIG;
			memcpy(buf + n, rep, rl);
			n += rl;
			i += (uint32_t)skip;
		} else {
			if (n + 1 >= sizeof(buf))
				return ING_ETOOBIG;
			buf[n++] = word.ptr[i++];
		}
	}
	return template_append(argv, argc, cap, z, buf, n);
}
