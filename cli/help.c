/*
 * help.c - what ingotctl says about itself: `ingotctl help [COMMAND]` (and
 * `COMMAND --help`), `ingotctl completion bash` and `ingotctl --version`.
 *
 * Everything comes from the table in commands.c; this file only lays it
 * out.  Texts there are single lines, wrapped here at WIDTH columns.  The
 * completion script is bash: it finds the noun and verb on the line the
 * way the parser does (skipping options and the values of those that take
 * one), then offers the command's options, an option's values, files for
 * FILE operands and option values, directories for DIR ones.
 */
#include <msgpack.h>
#include <openssl/crypto.h>
#include <string.h>
#include <uv.h>
#include <yaml.h>

#include "cli/cli.h"
#include "common/build_info.h"
#include "common/version.h"

#define WIDTH      79
#define CMD_COLUMN 30 /* where a command's summary starts in a list */
#define OPT_COLUMN 26 /* where an option's help starts */

#define GLUE '\x01' /* a space where wrap() must not break the line */

/*
 * Writes `text` word by word from column *col, breaking lines before WIDTH
 * and starting each new line at column `indent`.  A word longer than a line
 * gets a line of its own; GLUE inside a word is written as a space.  Leaves
 * *col where the output stands.
 */
static void wrap(FILE *out, size_t *col, size_t indent, const char *text)
{
	const char *p = text;
	bool first = true;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		size_t len = strcspn(p, " ");
		if (len == 0)
			break;
		if (!first && *col + 1 + len > WIDTH && *col > indent) {
			fprintf(out, "\n%*s", (int)indent, "");
			*col = indent;
		} else if (!first) {
			fputc(' ', out);
			(*col)++;
		}
		for (size_t i = 0; i < len; i++)
			fputc(p[i] == GLUE ? ' ' : p[i], out);
		*col += len;
		p += len;
		first = false;
	}
}

/* A synopsis for wrap(): the spaces inside [...] and between an option and
 * its value glued, so that a line breaks only between options. */
static void glue(const char *syn, char *buf, size_t cap)
{
	size_t n = 0;
	int depth = 0;
	bool option = false; /* the word before this space is "--name" */
	for (const char *p = syn; *p != '\0' && n + 1 < cap; p++) {
		if (*p == '[')
			depth++;
		else if (*p == ']')
			depth--;
		if (*p == ' ') {
			buf[n++] = depth > 0 || option ? GLUE : ' ';
			option = p[1] == '-' && p[2] == '-';
			continue;
		}
		buf[n++] = *p;
	}
	buf[n] = '\0';
}

/* "  LEFT   TEXT" with TEXT from column `at` (on the next line when LEFT
 * reaches it), both wrapped. */
static void item(FILE *out, const char *left, size_t at, const char *text)
{
	size_t col = 2;
	fputs("  ", out);
	wrap(out, &col, 6, left);
	if (text != NULL && *text != '\0') {
		if (col + 2 > at) {
			fputc('\n', out);
			col = 0;
		}
		fprintf(out, "%*s", (int)(at - col), "");
		col = at;
		wrap(out, &col, at, text);
	}
	fputc('\n', out);
}

/* "-o, --output FORMAT", "--stale". */
static void opt_left(enum cli_opt_id id, const char *arg, char *buf, size_t cap)
{
	const struct cli_opt *o = &cli_opts[id];
	if (o->short_name != 0)
		snprintf(buf, cap, "-%c, --%s%s%s", o->short_name, o->name, arg ? " " : "",
		         arg ? arg : "");
	else
		snprintf(buf, cap, "--%s%s%s", o->name, arg ? " " : "", arg ? arg : "");
}

static void list_commands(FILE *out, const char *noun)
{
	char syn[256], glued[256];
	for (size_t i = 0; i < cli_ncommands; i++) {
		const struct cli_command *c = &cli_commands[i];
		if (noun != NULL && strcmp(c->noun, noun) != 0)
			continue;
		cli_command_synopsis(c, false, syn, sizeof(syn));
		glue(syn, glued, sizeof(glued));
		item(out, glued, CMD_COLUMN, c->summary);
	}
}

static void general_help(FILE *out)
{
	char left[128];
	size_t col = 0;
	fputs("usage: ingotctl [global options] COMMAND [options] [ARGS]\n\nCommands:\n", out);
	list_commands(out, NULL);
	fputs("\nGlobal options (anywhere on the line):\n", out);
	for (int id = 0; id < CLI_OPT_COUNT; id++) {
		if (!cli_opts[id].global)
			continue;
		opt_left((enum cli_opt_id)id, cli_opts[id].arg, left, sizeof(left));
		item(out, left, OPT_COLUMN, cli_opts[id].help);
	}
	fputc('\n', out);
	wrap(out, &col, 0,
	     "Exit codes: 0 success, 1 the cluster refused or failed the operation, 2 usage "
	     "error, 3 cluster unreachable or no leader in time.");
	fputs("\n\n", out);
	col = 0;
	wrap(out, &col, 0,
	     "'ingotctl help COMMAND' or 'ingotctl COMMAND --help' shows a command's options. "
	     "The manual: ingotctl(1) and docs/cli.md.");
	fputc('\n', out);
}

static void noun_help(FILE *out, const char *noun)
{
	fprintf(out, "usage: ingotctl [global options] %s COMMAND [options] [ARGS]\n\nCommands:\n",
	        noun);
	list_commands(out, noun);
	fprintf(out, "\n'ingotctl help %s COMMAND' shows a command's options.\n", noun);
}

static void command_help(FILE *out, const struct cli_command *c)
{
	char syn[512], glued[512], left[128], arg[128], text[512], values[256];
	size_t col = 0;
	cli_command_synopsis(c, true, syn, sizeof(syn));
	glue(syn, glued, sizeof(glued));
	fputs("usage: ingotctl ", out);
	col = strlen("usage: ingotctl ");
	wrap(out, &col, 6, glued);
	fputs("\n\n", out);
	col = 0;
	wrap(out, &col, 0, c->text != NULL ? c->text : c->summary);
	fputc('\n', out);
	if (c->opts->help != NULL)
		fputs("\nOptions:\n", out);
	for (const struct cli_command_opt *o = c->opts; o->help != NULL; o++) {
		opt_left(o->id, cli_command_opt_arg(c, o->id, arg, sizeof(arg)), left,
		         sizeof(left));
		/* Values the placeholder does not show are listed in the text. */
		if (o->values == NULL && cli_opts[o->id].values != NULL) {
			cli_values_list(cli_opts[o->id].values, values, sizeof(values));
			snprintf(text, sizeof(text), "%s: %s", o->help, values);
		} else {
			snprintf(text, sizeof(text), "%s%s", o->help,
			         (o->flags & CLI_OPT_REQUIRED) ? " (required)" : "");
		}
		item(out, left, OPT_COLUMN, text);
	}
	if (c->flags & CLI_CMD_LOCAL)
		return;
	snprintf(text, sizeof(text),
	         "Global options: --endpoints H:P,..., -o json, --timeout DURATION (default "
	         "%s), --token TOKEN%s; 'ingotctl help' describes them.",
	         (c->flags & CLI_CMD_MEMBER_CHANGE) ? "60s" : "10s",
	         (c->flags & CLI_CMD_READ) ? ", --stale" : "");
	fputc('\n', out);
	col = 0;
	wrap(out, &col, 0, text);
	fputc('\n', out);
}

void cli_help(FILE *out, const struct cli_command *cmd, const char *noun)
{
	if (cmd != NULL)
		command_help(out, cmd);
	else if (noun != NULL)
		noun_help(out, noun);
	else
		general_help(out);
}

/* ---- completion -------------------------------------------------------- */

/* The long names of the options command c accepts (every command when c
 * is NULL: the globals), space-separated, on out. */
static void print_opt_names(FILE *out, const struct cli_command *c)
{
	bool first = true;
	for (int id = 0; id < CLI_OPT_COUNT; id++) {
		const struct cli_opt *o = &cli_opts[id];
		bool takes = o->global
		                 ? (c == NULL || !(c->flags & CLI_CMD_LOCAL) || id == CLI_OPT_HELP)
		                 : (c != NULL && cli_command_opt(c, (enum cli_opt_id)id));
		if (id == CLI_OPT_STALE && c != NULL && !(c->flags & CLI_CMD_READ))
			takes = false;
		if (!takes)
			continue;
		fprintf(out, "%s--%s", first ? "" : " ", o->name);
		first = false;
	}
}

/* "-o|--output|--endpoints": the options that take a value, as a bash
 * case pattern. */
static void print_value_opts(FILE *out)
{
	bool first = true;
	for (int id = 0; id < CLI_OPT_COUNT; id++) {
		const struct cli_opt *o = &cli_opts[id];
		if (o->arg == NULL)
			continue;
		if (o->short_name != 0)
			fprintf(out, "%s-%c", first ? "" : "|", o->short_name);
		fprintf(out, "%s--%s", first && o->short_name == 0 ? "" : "|", o->name);
		first = false;
	}
}

static bool noun_has_verbs(const char *noun)
{
	return cli_noun_known(noun) && cli_command_find(noun, NULL) == NULL;
}

/* Whether cli_commands[i] is the first command of its noun. */
static bool first_of_noun(size_t i)
{
	for (size_t k = 0; k < i; k++) {
		if (strcmp(cli_commands[k].noun, cli_commands[i].noun) == 0)
			return false;
	}
	return true;
}

/* Every noun, space-separated. */
static void print_nouns(FILE *out)
{
	for (size_t i = 0; i < cli_ncommands; i++) {
		if (first_of_noun(i))
			fprintf(out, "%s%s", i == 0 ? "" : " ", cli_commands[i].noun);
	}
}

void cli_completion_bash(FILE *out)
{
	char name[64];
	fprintf(out,
	        "# bash completion for ingotctl %s, generated by `ingotctl completion bash`\n"
	        "# from ingotctl's command table: commands, options, option values, files.\n"
	        "\n"
	        "_ingotctl_verbs()\n"
	        "{\n"
	        "\tcase $1 in\n",
	        INGOT_VERSION);
	for (size_t i = 0; i < cli_ncommands; i++) {
		const char *noun = cli_commands[i].noun;
		if (!first_of_noun(i) || !noun_has_verbs(noun))
			continue;
		fprintf(out, "\t%s) echo \"", noun);
		for (size_t k = i; k < cli_ncommands; k++) {
			if (strcmp(cli_commands[k].noun, noun) == 0)
				fprintf(out, "%s%s", k == i ? "" : " ", cli_commands[k].verb);
		}
		fputs("\" ;;\n", out);
	}
	fputs("\tesac\n"
	      "}\n"
	      "\n"
	      "_ingotctl()\n"
	      "{\n"
	      "\tlocal cur prev words cword split=false\n"
	      "\tif declare -F _init_completion >/dev/null 2>&1; then\n"
	      "\t\t_init_completion -s -n : || return\n"
	      "\telse\n"
	      "\t\t# Without bash-completion: the words up to the cursor, split on blanks.\n"
	      "\t\tlocal line=${COMP_LINE:0:COMP_POINT}\n"
	      "\t\tread -ra words <<<\"$line\"\n"
	      "\t\t[[ $line == *[[:blank:]] ]] && words+=(\"\")\n"
	      "\t\tcword=$((${#words[@]} - 1))\n"
	      "\t\tcur=${words[cword]}\n"
	      "\t\tprev=${words[cword - 1]}\n"
	      "\t\tif [[ $cur == --*=* ]]; then\n"
	      "\t\t\tprev=${cur%%=*}\n"
	      "\t\t\tcur=${cur#*=}\n"
	      "\t\t\tsplit=true\n"
	      "\t\tfi\n"
	      "\tfi\n"
	      "\n"
	      "\tlocal noun= verb= i skip=false\n"
	      "\tfor ((i = 1; i < cword; i++)); do\n"
	      "\t\tif $skip; then\n"
	      "\t\t\tskip=false\n"
	      "\t\t\tcontinue\n"
	      "\t\tfi\n"
	      "\t\tcase ${words[i]} in\n"
	      "\t\t",
	      out);
	print_value_opts(out);
	fputs(") skip=true ;;\n"
	      "\t\t-*) ;;\n"
	      "\t\t*)\n"
	      "\t\t\tif [[ -z $noun ]]; then\n"
	      "\t\t\t\tnoun=${words[i]}\n"
	      "\t\t\telif [[ -z $verb ]]; then\n"
	      "\t\t\t\tverb=${words[i]}\n"
	      "\t\t\tfi\n"
	      "\t\t\t;;\n"
	      "\t\tesac\n"
	      "\tdone\n"
	      "\n"
	      "\tcase $prev in\n",
	      out);
	/* Option values: fixed lists, per command where commands differ; the
	 * other options that take a value get nothing offered. */
	for (int id = 0; id < CLI_OPT_COUNT; id++) {
		const struct cli_opt *o = &cli_opts[id];
		bool listed = o->values != NULL;
		for (size_t i = 0; i < cli_ncommands; i++) {
			const struct cli_command_opt *co =
			    cli_command_opt(&cli_commands[i], (enum cli_opt_id)id);
			listed = listed || (co != NULL && co->values != NULL);
		}
		if (o->arg == NULL || !listed)
			continue;
		if (o->short_name != 0)
			fprintf(out, "\t-%c | --%s)\n", o->short_name, o->name);
		else
			fprintf(out, "\t--%s)\n", o->name);
		if (o->values != NULL)
			fprintf(out, "\t\tCOMPREPLY=($(compgen -W \"%s\" -- \"$cur\"))\n",
			        o->values);
		for (size_t i = 0; i < cli_ncommands; i++) {
			const struct cli_command *c = &cli_commands[i];
			const struct cli_command_opt *co = cli_command_opt(c, (enum cli_opt_id)id);
			if (co == NULL || co->values == NULL)
				continue;
			cli_command_name(c, name, sizeof(name));
			fprintf(out,
			        "\t\t[[ \"$noun $verb\" == \"%s\" ]] && "
			        "COMPREPLY=($(compgen -W \"%s\" -- \"$cur\"))\n",
			        name, co->values);
		}
		fputs("\t\treturn\n\t\t;;\n", out);
	}
	/* Options whose value is a file or a directory (--cacert, --dir). */
	for (int id = 0; id < CLI_OPT_COUNT; id++) {
		const struct cli_opt *o = &cli_opts[id];
		if (o->arg == NULL || o->values != NULL ||
		    (strcmp(o->arg, "FILE") != 0 && strcmp(o->arg, "DIR") != 0))
			continue;
		fprintf(out,
		        "\t--%s)\n"
		        "\t\tcompopt -o filenames 2>/dev/null\n"
		        "\t\tCOMPREPLY=($(compgen -%c -- \"$cur\"))\n"
		        "\t\treturn\n\t\t;;\n",
		        o->name, o->arg[0] == 'F' ? 'f' : 'd');
	}
	fputs("\t", out);
	print_value_opts(out);
	fputs(")\n\t\treturn\n\t\t;;\n", out);
	fputs("\tesac\n"
	      "\t$split && return\n"
	      "\n"
	      "\tif [[ -z $noun ]]; then\n"
	      "\t\tif [[ $cur == -* ]]; then\n"
	      "\t\t\tCOMPREPLY=($(compgen -W \"",
	      out);
	print_opt_names(out, NULL);
	fputs("\" -- \"$cur\"))\n"
	      "\t\telse\n"
	      "\t\t\tCOMPREPLY=($(compgen -W \"",
	      out);
	print_nouns(out);
	fputs("\" -- \"$cur\"))\n"
	      "\t\tfi\n"
	      "\t\treturn\n"
	      "\tfi\n"
	      "\tlocal verbs\n"
	      "\tverbs=$(_ingotctl_verbs \"$noun\")\n"
	      "\tif [[ -n $verbs && -z $verb && $cur != -* ]]; then\n"
	      "\t\tCOMPREPLY=($(compgen -W \"$verbs\" -- \"$cur\"))\n"
	      "\t\treturn\n"
	      "\tfi\n"
	      "\t# A noun that is a command alone: the next word is an operand.\n"
	      "\tlocal operand1=\n"
	      "\tif [[ -z $verbs ]]; then\n"
	      "\t\toperand1=$verb\n"
	      "\t\tverb=\n"
	      "\tfi\n"
	      "\n"
	      "\tlocal opts= operands=\n"
	      "\tcase \"$noun${verb:+ $verb}\" in\n",
	      out);
	for (size_t i = 0; i < cli_ncommands; i++) {
		const struct cli_command *c = &cli_commands[i];
		cli_command_name(c, name, sizeof(name));
		fprintf(out, "\t\"%s\")\n\t\topts=\"", name);
		print_opt_names(out, c);
		fputs("\"\n", out);
		const char *ops = c->operands != NULL ? c->operands : "";
		if (c->id == CLI_HELP)
			fputs("\t\toperands=help\n", out);
		else if (strstr(ops, "FILE") != NULL)
			fputs("\t\toperands=file\n", out);
		else if (strstr(ops, "DIR") != NULL)
			fputs("\t\toperands=dir\n", out);
		fputs("\t\t;;\n", out);
	}
	fputs("\tesac\n"
	      "\tif [[ $cur == -* ]]; then\n"
	      "\t\tCOMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
	      "\t\treturn\n"
	      "\tfi\n"
	      "\tcase $operands in\n"
	      "\tfile)\n"
	      "\t\tcompopt -o filenames 2>/dev/null\n"
	      "\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n"
	      "\t\t;;\n"
	      "\tdir)\n"
	      "\t\tcompopt -o filenames 2>/dev/null\n"
	      "\t\tCOMPREPLY=($(compgen -d -- \"$cur\"))\n"
	      "\t\t;;\n"
	      "\thelp)\n"
	      "\t\tif [[ -z $operand1 ]]; then\n"
	      "\t\t\tCOMPREPLY=($(compgen -W \"",
	      out);
	print_nouns(out);
	fputs("\" -- \"$cur\"))\n"
	      "\t\telif [[ ${words[cword - 1]} == \"$operand1\" ]]; then\n"
	      "\t\t\tCOMPREPLY=($(compgen -W \"$(_ingotctl_verbs \"$operand1\")\" -- \"$cur\"))\n"
	      "\t\tfi\n"
	      "\t\t;;\n"
	      "\tesac\n"
	      "}\n"
	      "\n"
	      "complete -F _ingotctl ingotctl\n",
	      out);
}

/* ---- version ----------------------------------------------------------- */

void cli_version(FILE *out)
{
	char uv_built[ING_VERSION_MAX];
	snprintf(uv_built, sizeof(uv_built), "%d.%d.%d", UV_VERSION_MAJOR, UV_VERSION_MINOR,
	         UV_VERSION_PATCH);
	const struct ing_lib_version libs[] = {
	    {"libuv", uv_version_string(), uv_built},
	    {"OpenSSL", OpenSSL_version(OPENSSL_VERSION_STRING), OPENSSL_VERSION_STR},
	    {"msgpack-c", msgpack_version(), MSGPACK_VERSION},
	    {"jansson", jansson_version_str(), JANSSON_VERSION},
	    {"libyaml", yaml_get_version_string(), INGOT_BUILT_YAML},
	};
	ing_version_print(out, "ingotctl", libs, sizeof(libs) / sizeof(libs[0]));
}
