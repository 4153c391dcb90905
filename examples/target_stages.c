/*
 * target_stages.c - prints a target file's stages for check-targets.sh.
 *
 *   target_stages FILE.yaml
 *
 * Reads the target YAML (the format of docs/cli.md) with libyaml and
 * writes NUL-terminated records to stdout, so argv words may hold any
 * character, newlines included:
 *
 *   name=NAME          once
 *   cap=CAPABILITY     one per capability
 *   stage=NAME         then, for that stage:
 *   timeout=DURATION   (empty when not given)
 *   stdout=FILE        (empty when not given: stdout goes to the log)
 *   env=KEY=VALUE      one per variable
 *   arg=WORD           one per argv word, in order
 *   out=FILE           one per declared output
 *   end=               after each stage
 *
 * A test tool, not a validator: `ingotctl target apply` checks files
 * completely.  Unknown keys (description, limits...) are ignored here: the
 * stages run without the limits.  Exit 1 on a file that is
 * not a mapping with name and stages.
 *
 *   cc -O2 -o target_stages target_stages.c -lyaml
 */
#include <stdio.h>
#include <string.h>
#include <yaml.h>

static yaml_document_t doc;

static void put(const char *key, const char *v1, const char *v2)
{
	fputs(key, stdout);
	putchar('=');
	fputs(v1, stdout);
	if (v2 != NULL) {
		putchar('=');
		fputs(v2, stdout);
	}
	putchar('\0');
}

static const char *scalar(const yaml_node_t *n)
{
	return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The value of key in mapping m, or NULL. */
static yaml_node_t *get(const yaml_node_t *m, const char *key)
{
	if (m == NULL || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		const char *k = scalar(yaml_document_get_node(&doc, p->key));
		if (k != NULL && strcmp(k, key) == 0)
			return yaml_document_get_node(&doc, p->value);
	}
	return NULL;
}

/* Prints every scalar item of sequence s as key=item. */
static int put_seq(const char *key, const yaml_node_t *s)
{
	if (s == NULL)
		return 0;
	if (s->type != YAML_SEQUENCE_NODE)
		return -1;
	for (yaml_node_item_t *i = s->data.sequence.items.start; i < s->data.sequence.items.top;
	     i++) {
		const char *v = scalar(yaml_document_get_node(&doc, *i));
		if (v == NULL)
			return -1;
		put(key, v, NULL);
	}
	return 0;
}

int main(int argc, char **argv)
{
	yaml_parser_t parser;
	yaml_node_t *root, *stages;
	FILE *f;

	if (argc != 2) {
		fprintf(stderr, "usage: target_stages FILE.yaml\n");
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (f == NULL) {
		perror(argv[1]);
		return 1;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		fprintf(stderr, "%s:%lu:%lu: %s\n", argv[1],
		        (unsigned long)parser.problem_mark.line + 1,
		        (unsigned long)parser.problem_mark.column + 1,
		        parser.problem ? parser.problem : "YAML error");
		return 1;
	}
	root = yaml_document_get_root_node(&doc);
	stages = get(root, "stages");
	if (scalar(get(root, "name")) == NULL || stages == NULL ||
	    stages->type != YAML_SEQUENCE_NODE) {
		fprintf(stderr, "%s: not a target (needs name and stages)\n", argv[1]);
		return 1;
	}
	put("name", scalar(get(root, "name")), NULL);
	if (put_seq("cap", get(root, "capabilities")) != 0)
		goto bad;
	for (yaml_node_item_t *i = stages->data.sequence.items.start;
	     i < stages->data.sequence.items.top; i++) {
		yaml_node_t *st = yaml_document_get_node(&doc, *i), *env;
		const char *name = scalar(get(st, "name"));

		if (name == NULL || get(st, "argv") == NULL)
			goto bad;
		put("stage", name, NULL);
		put("timeout", scalar(get(st, "timeout")) ? scalar(get(st, "timeout")) : "", NULL);
		put("stdout", scalar(get(st, "stdout")) ? scalar(get(st, "stdout")) : "", NULL);
		env = get(st, "env");
		if (env != NULL && env->type == YAML_MAPPING_NODE) {
			for (yaml_node_pair_t *p = env->data.mapping.pairs.start;
			     p < env->data.mapping.pairs.top; p++) {
				const char *k = scalar(yaml_document_get_node(&doc, p->key));
				const char *v = scalar(yaml_document_get_node(&doc, p->value));
				if (k == NULL || v == NULL)
					goto bad;
				put("env", k, v);
			}
		}
		if (put_seq("arg", get(st, "argv")) != 0 || put_seq("out", get(st, "outputs")) != 0)
			goto bad;
		put("end", "", NULL);
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	return fflush(stdout) == 0 ? 0 : 1;
bad:
	fprintf(stderr, "%s: unexpected shape (a stage without name/argv, or a non-string item)\n",
	        argv[1]);
	return 1;
}
