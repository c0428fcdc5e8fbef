/*
 * cmd_run.c - `mtpbench run SPEC`: run an experiment spec (experiments/runner.h)
 * and write its MessagePack log.
 *
 *   mtpbench run experiments/depth-sweep.json [--resume] [--quiet] [--out DIR]
 */
#include <getopt.h> /* defines: getopt_long */
#include <stdio.h>  /* defines: fprintf */

#include "cli_util.h"
#include "commands.h"
#include "engine/error.h"
#include "experiments/runner.h"

static void run_usage(FILE *f)
{
    fprintf(f, "usage: mtpbench run SPEC [--resume] [--quiet] [--out DIR] [--max-requests N]\n\n"
               "Run the experiment spec SPEC (spec/experiment-spec.md): every decoder x sampling\n"
               "setting x dataset x prompt x repeat, one log record each in\n"
               "<output_dir>/<name>.msgpack (spec/log-format.md), then a table per decoder.\n\n"
               "  --resume          continue an interrupted run's log (finished requests are kept)\n"
               "  --quiet           no progress display\n"
               "  --out DIR         write the log to DIR instead of the spec's output_dir\n"
               "  --max-requests N  stop cleanly after N requests (continue with --resume)\n");
}

int mtp_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"resume", no_argument, 0, 'r'},      {"quiet", no_argument, 0, 'q'},
        {"out", required_argument, 0, 'o'},   {"max-requests", required_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0},
    };
    struct mtp_runner_options o = {0};
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': o.resume = true; break;
        case 'q': o.quiet = true; break;
        case 'o': o.out_dir = optarg; break;
        case 'n':
            if (mtp_cli_parse_int("--max-requests", optarg, 0, 1L << 30, &v))
                return 2;
            o.max_requests = (int)v;
            break;
        case 'h': run_usage(stdout); return 0;
        default: run_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "mtpbench: error: run needs exactly one SPEC file\n");
        run_usage(stderr);
        return 2;
    }
    if (mtp_runner_run(argv[optind], &o))
        return mtp_cli_fail();
    return 0;
}
