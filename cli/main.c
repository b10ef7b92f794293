/* SPDX-License-Identifier: BSD-3-Clause */
/* Copyright (c) 2026 The fanout authors */
/*
 * cli/main.c - the `fanout` command: subcommand dispatch, --version, --help.
 * See cli/fanout.1.scd (man fanout) for the user's side.
 */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: fanout COMMAND [OPTIONS] ...\n"
    "\n"
    "Shell tools on fanout's lock-free streams and parallel map.\n"
    "\n"
    "Commands:\n"
    "  tee [--tap CMD]... [-0] [--buffer N] CMD...\n"
    "        copy every input record to each CMD's stdin (lossless; the slowest\n"
    "        bounds memory); --tap CMDs are lossy and never slow the others\n"
    "  map [-j N] [-k] [--timeout S] [--retries R] [--halt-on-error] [--pipe]\n"
    "      [--joblog FILE] [--bar] [--shell] [-0] -- CMD [ARGS... {}]\n"
    "        run CMD once per input line, N at a time, outputs never interleaved\n"
#if defined(FANOUT_CLI_REDIS) || defined(FANOUT_CLI_NATS)
    "  pub [--stream S] URL KEY, sub [--group G] [--count N] URL KEY\n"
    "        stdin lines to a Redis stream or a NATS JetStream subject and back\n"
#else
    "  pub, sub\n"
    "        bridges to Redis/NATS (not built into this binary)\n"
#endif
    "\n"
    "Options:\n"
    "  --version   print the fanout library version\n"
    "  --help      this text; 'fanout COMMAND --help' for a command's own\n"
    "\n"
    "Exit status: 2 for bad flags or values; otherwise see the command.\n";

int main(int argc, char **argv)
{
	cli_std_fds();
	if (argc < 2)
		cli_usage_error(NULL, "no command given: tee or map");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("fanout %s\n", cli_version());
		return 0;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage, stdout);
		return 0;
	}
	/* A consumer or job that goes away must show up as EPIPE on its write, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(cmd, "tee"))
		return cli_tee(argc - 1, argv + 1);
	if (!strcmp(cmd, "map"))
		return cli_map(argc - 1, argv + 1);
#if defined(FANOUT_CLI_REDIS) || defined(FANOUT_CLI_NATS)
	if (!strcmp(cmd, "pub"))
		return cli_pub(argc - 1, argv + 1);
	if (!strcmp(cmd, "sub"))
		return cli_sub(argc - 1, argv + 1);
#endif
	if (!strcmp(cmd, "pub") || !strcmp(cmd, "sub")) {
		fprintf(stderr,
		        "fanout %s: not built: this fanout has no bridge "
		        "(rebuild with libhiredis-dev or libnats-dev installed)\n",
		        cmd);
		return CLI_EXIT_USAGE;
	}
	if (cmd[0] == '-')
		cli_usage_error(NULL, "unknown option '%s'", cmd);
	cli_usage_error(NULL, "unknown command '%s'", cmd);
}
