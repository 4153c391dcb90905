/*
 * recover.h - `ingotd recover`: offline recovery of a cluster that lost its
 * quorum for good (docs/operations.md, "Quorum loss").
 */
#ifndef INGOT_NODE_MEMBER_RECOVER_H
#define INGOT_NODE_MEMBER_RECOVER_H

/*
 * Runs `ingotd recover --config FILE --members ID[,ID...] [--yes]` with
 * argv[0] == "recover".  Prints the plan (and, with --yes, what was done) on
 * stdout and errors on stderr.  Returns the process exit status: 0 the
 * configuration was rewritten, 1 refused or not confirmed (nothing written),
 * 2 bad command line or configuration.
 */
int node_recover_main(int argc, char **argv);

#endif
