/*
 * fuzz_auth.c - libFuzzer driver for what reads a presented credential:
 * the token parser (node/auth/token.c) and the JWT verifier
 * (node/auth/jwt.c) with a real key set.
 *
 * Any input must be accepted or refused cleanly; a refusal must say why.
 * Nothing an attacker sends can be accepted: the key set is made here from
 * a fresh random key, so an input that verifies means the verifier is
 * broken, and the driver aborts.
 */
#include <cjose/cjose.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/auth/jwt.h"
#include "node/auth/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct auth_jwt *verifier;

static void setup_once(void)
{
	cjose_err err;
	char dir[] = "/tmp/ingot-fuzz-auth-XXXXXX";
	char path[64];
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(path, sizeof(path), "%s/jwks.json", dir);
	cjose_jwk_t *k = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &err);
	if (k == NULL || !cjose_jwk_set_kid(k, "k1", 2, &err))
		abort();
	char *pub = cjose_jwk_to_json(k, false, &err);
	FILE *f = fopen(path, "w");
	if (pub == NULL || f == NULL)
		abort();
	fprintf(f, "{\"keys\":[%s]}", pub);
	fclose(f);
	free(pub);
	cjose_jwk_release(k);
	struct auth_jwt_options o = {
	    .issuer = "https://idp.example", .audience = "ingot", .keys_path = path};
	struct ing_error e;
	if (auth_jwt_new(&o, &verifier, &e) != 0)
		abort();
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ing_error e;
	struct auth_principal p;
	uint8_t h[AUTH_TOKEN_HASH_BYTES];
	uint64_t id;

	if (verifier == NULL)
		setup_once();
	ing_error_clear(&e);
	if (auth_token_parse((const char *)data, size, &id, h, &e) == 0) {
		if (id == 0)
			abort();
	} else if (e.msg[0] == '\0') {
		abort();
	}
	ing_error_clear(&e);
	if (auth_jwt_verify(verifier, (const char *)data, size, 1800000000u, &p, &e) == 0)
		abort(); /* nobody holds the private key */
	if (e.code != ING_EUNAUTHENTICATED || e.msg[0] == '\0')
		abort();
	return 0;
}
