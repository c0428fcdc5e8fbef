/*
 * cmd_run.c - `mtpbench run SPEC`: run an experiment spec (experiments/runner.h)
 * and write its MessagePack log.
 *
 *   mtpbench run experiments/depth-sweep.json [--resume] [--quiet] [--out DIR]
 *   mpirun -n 4 mtpbench run SPEC          (one rank log each; rank 0 shows progress)
 *   mtpbench run SPEC --shard 2/4           (the same split without MPI: job arrays)
 */
#include <getopt.h> /* defines: getopt_long */
#include <stdio.h>  /* defines: fprintf */
#include <string.h> /* defines: strcmp */

#include "cli_util.h"
#include "commands.h"
#include "core/error.h"
#include "experiments/runner.h"
#include "experiments/runner_mpi.h"
#include "experiments/shard.h"

static void run_usage(FILE *f)
{
    fprintf(f, "usage: mtpbench run SPEC [--resume] [--quiet] [--out DIR] [--max-requests N]\n"
               "                        [--shard R/N] [--gpus-per-node G] [--verbose]\n"
               "                        [--allow-partial]\n"
               "       mpirun -n N mtpbench run SPEC [...]\n\n"
               "Run the experiment spec SPEC (spec/experiment-spec.md): every decoder x sampling\n"
               "setting x dataset x prompt x repeat, one log record each in\n"
               "<output_dir>/<name>.msgpack (spec/log-format.md), then a table per decoder.\n\n"
               "  --resume          continue an interrupted run's log (finished requests are kept)\n"
               "  --quiet           no progress display\n"
               "  --out DIR         write the log to DIR instead of the spec's output_dir\n"
               "  --max-requests N  stop after N requests (per process; continue with --resume)\n"
               "  --shard R/N       run share R of N (0-based) into <name>.rank-R-of-N.msgpack,\n"
               "                    the split an N-rank MPI run makes (for job arrays)\n"
               "  --gpus-per-node G MPI with backend cuda: rank uses device local_rank %% G\n"
               "                    (default: device = local rank)\n"
               "  --verbose         a warning line for every skipped prompt (default: the\n"
               "                    first 3, then one line of counts by reason and category)\n"
               "  --allow-partial   --resume even though a rank log of the run is missing:\n"
               "                    its requests are run again (default: an error naming it)\n"
               "  Options that change data (--resume, --out, --shard, --max-requests,\n"
               "  --allow-partial) need their full name.\n\n"
               "Started by mpirun/srun (built with MPI: %s), every rank runs its share of the\n"
               "requests into <name>.rank-R-of-N.msgpack; --resume finishes what all rank logs\n"
               "of the run miss, with any N (spec/experiment-spec.md, \"Ranks and shards\").\n",
               mtp_mpi_available() ? "yes" : "no");
}

/* One rank of an MPI job: its share, its device; an error on one rank ends
 * them all (the others would wait for it at the end). */
static int run_mpi(const char *spec, struct mtp_runner_options *o, int gpus_per_node)
{
    if (o->shard.size > 0) {
        fprintf(stderr, "mtpbench: error: --shard: not with mpirun/srun (each rank already runs "
                        "its share); found --shard %d/%d\n", o->shard.rank, o->shard.size);
        return 2;
    }
    int rank, size, local;
    if (!mtp_mpi_available()) {
        fprintf(stderr, "mtpbench: error: started by an MPI launcher, but this mtpbench was "
                        "built without MPI: rebuild with libopenmpi-dev installed, or use "
                        "--shard R/N\n");
        return 2;
    }
    if (mtp_mpi_init(&rank, &size, &local))
        return mtp_cli_fail();
    o->shard = (struct mtp_shard){.rank = rank, .size = size};
    o->mpi = true;
    o->device = gpus_per_node > 0 ? local % gpus_per_node : local;
    if (mtp_runner_run(spec, o)) {
        mtp_error_wrap("rank %d of %d: ", rank, size);
        mtp_cli_fail();
        mtp_mpi_abort(1);
    }
    mtp_mpi_finalize();
    return 0;
}

int mtp_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"resume", no_argument, 0, 'r'},      {"quiet", no_argument, 0, 'q'},
        {"out", required_argument, 0, 'o'},   {"max-requests", required_argument, 0, 'n'},
        {"shard", required_argument, 0, 's'}, {"gpus-per-node", required_argument, 0, 'g'},
        {"verbose", no_argument, 0, 'v'},     {"allow-partial", no_argument, 0, 'P'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0},
    };
    /* A prefix must not pass for these: "--resum" is a typo, not --resume. */
    static const char *const exact[] = {"resume", "out", "max-requests", "shard",
                                        "allow-partial", NULL};
    if (mtp_cli_require_exact(argc, argv, opts, exact))
        return 2;
    long gpus_per_node = 0;
    struct mtp_runner_options o = {0};
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': o.resume = true; break;
        case 'q': o.quiet = true; break;
        case 'v': o.verbose = true; break;
        case 'P': o.allow_partial = true; break;
        case 'o': o.out_dir = optarg; break;
        case 'n':
            if (mtp_cli_parse_int("--max-requests", optarg, 0, 1L << 30, &v))
                return 2;
            o.max_requests = (int)v;
            break;
        case 's':
            if (mtp_shard_parse("--shard", optarg, &o.shard))
                {
                mtp_cli_fail();
                return 2;
            }
            break;
        case 'g':
            if (mtp_cli_parse_int("--gpus-per-node", optarg, 1, 1024, &gpus_per_node))
                return 2;
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
    if (!mtp_mpi_launched())
        return mtp_runner_run(argv[optind], &o) ? mtp_cli_fail() : 0;
    return run_mpi(argv[optind], &o, (int)gpus_per_node);
}
