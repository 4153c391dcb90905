/*
 * version.c - the --version text of both programs (common/version.h).  The
 * callers collect the library versions, since only they link the
 * libraries; this file only lays them out, the same way for both.
 */
#include "common/version.h"

#include "common/build_info.h"

void ing_version_print(FILE *out, const char *program, const struct ing_lib_version *libs, size_t n)
{
	fprintf(out, "%s %s (commit %s)\n", program, INGOT_VERSION, INGOT_COMMIT);
	for (size_t i = 0; i < n; i++) {
		if (libs[i].running != NULL)
			fprintf(out, "%-10s %s (built with %s)\n", libs[i].name, libs[i].running,
			        libs[i].built);
		else
			fprintf(out,
			        "%-10s %s (built with it; the library reports no version at run "
			        "time)\n",
			        libs[i].name, libs[i].built);
	}
}
