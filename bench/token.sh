# bench/token.sh - sourced by the benches that start their own ingotd
# processes: the bootstrap admin token (docs/operations.md "The bootstrap
# admin token"), which every client call needs since the API checks who
# asks.
#
#   bench_token DATA_DIR...   waits up to 15 s for the first leader to write
#                             DATA_DIR/admin.token in one of the given data
#                             directories and exports INGOT_TOKEN_FILE (read
#                             by ingotctl and load_bench) and INGOT_TOKEN
#                             (for HTTP clients: Authorization: Bearer).
#                             A build from before authentication writes
#                             none: both are left unset, with a note.

bench_token() {
  local _ d
  unset INGOT_TOKEN INGOT_TOKEN_FILE
  for _ in $(seq 150); do
    for d in "$@"; do
      if [ -s "$d/admin.token" ]; then
        INGOT_TOKEN_FILE="$d/admin.token"
        INGOT_TOKEN="$(tr -d ' \n' <"$d/admin.token")"
        export INGOT_TOKEN_FILE INGOT_TOKEN
        return 0
      fi
    done
    sleep 0.1
  done
  echo "bench: no admin.token in $* after 15 s (a build without authentication?); calls go without one" >&2
}
