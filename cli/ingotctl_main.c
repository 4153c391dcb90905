/*
 * ingotctl_main.c - entry point of ingotctl, the operator's command line
 * (docs/cli.md).  All the work is in cli_run (cli/run.c), so the tests run
 * exactly what this program runs.
 */
#include <signal.h>
#include <stdio.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
	/* A peer closing its socket mid-write must be an error on that write
	 * (handled by the client library), not the death of the process; the
	 * same for a closed stdout pipe (`ingotctl job list | head`). */
	signal(SIGPIPE, SIG_IGN);
	return cli_run(argc, argv, stdout, stderr);
}
