/*
 * principal.c - role names and the two permission predicates
 * (principal.h).  The table of which operation needs which role lives
 * with the operations (node/api); this file only orders roles and scopes
 * tenants, so the rule is written once.
 */
#include "node/auth/principal.h"

static const char *const role_names[] = {"none", "viewer", "submitter", "operator", "admin"};

const char *auth_role_name(enum auth_role r)
{
	if ((unsigned)r < sizeof(role_names) / sizeof(role_names[0]))
		return role_names[r];
	return "none";
}

int auth_role_parse(struct ing_str s, enum auth_role *out, struct ing_error *e)
{
	for (unsigned r = AUTH_ROLE_VIEWER; r <= AUTH_ROLE_ADMIN; r++)
		if (ing_str_eq_c(s, role_names[r])) {
			*out = (enum auth_role)r;
			return 0;
		}
	return ing_error_set(e, ING_EINVAL,
	                     "unknown role '%.*s' (viewer, submitter, operator or admin)",
	                     ING_STR_FMT(s));
}

const char *auth_kind_name(enum auth_kind k)
{
	switch (k) {
	case AUTH_KIND_NONE: return "none";
	case AUTH_KIND_TOKEN: return "token";
	case AUTH_KIND_JWT: return "jwt";
	case AUTH_KIND_CERT: return "cert";
	case AUTH_KIND_NODE: return "node";
	}
	return "none";
}

bool auth_has_role(const struct auth_principal *p, enum auth_role need)
{
	if (p->kind == AUTH_KIND_NONE || p->kind == AUTH_KIND_NODE)
		return false;
	return p->role >= need;
}

bool auth_sees_tenant(const struct auth_principal *p, struct ing_str tenant)
{
	if (p->tenant[0] == '\0')
		return true;
	return ing_str_eq_c(tenant, p->tenant);
}
