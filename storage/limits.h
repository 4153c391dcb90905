/*
 * limits.h - bounds on every variable-sized field of ingot's records and
 * commands.  Decoders refuse anything larger (ING_ETOOBIG), so a record or
 * command can never make a node allocate without bound.  docs/formats.md
 * lists the same numbers.
 */
#ifndef INGOT_STORAGE_LIMITS_H
#define INGOT_STORAGE_LIMITS_H

#define ING_NAME_MAX         63 /* target, tenant, capability, label key, stage name */
#define ING_LABEL_VALUE_MAX  255
#define ING_ADDRESS_MAX      63 /* "a.b.c.d:port" with room to spare */
#define ING_REQUEST_ID_MAX   64
#define ING_MESSAGE_MAX      1024 /* error and event texts */
#define ING_PATH_MAX         255  /* source, output names: relative paths */
#define ING_ARG_MAX          1024 /* one argv element or env value */
#define ING_MAX_CAPS         16
#define ING_MAX_LABELS       16
#define ING_MAX_STAGES       16
#define ING_MAX_ARGV         64
#define ING_MAX_ENV          32
#define ING_MAX_OUTPUTS      16
#define ING_MAX_SOURCES      64
#define ING_MAX_PRIORITY     100
#define ING_MAX_ATTEMPTS     100
#define ING_MAX_SLOTS        1024
#define ING_MAX_GPUS         16         /* GPUs per node; GPUs a target or stage needs */
#define ING_GPU_INDEX_MAX    63         /* a GPU's index on its node (NVML's numbering) */
#define ING_GPU_UUID_MAX     95         /* NVML's UUID text ("GPU-..."), "" when unknown */
#define ING_SOURCE_MAX_BYTES (4u << 20) /* one source or output file */
/* A source of at most this many bytes is kept with its job, not as an
 * artifact (schema 7). */
#define ING_INLINE_SOURCE_MAX (16u << 10)
#define ING_COMMAND_MAX_BYTES (16u << 20) /* a whole encoded command */
#define ING_TOKEN_HASH_BYTES  32
#define ING_SHA256_BYTES      32

#endif
