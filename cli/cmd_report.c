/*
 * cmd_report.c - `mtpbench report LOG...`: acceptance, speed, latency and MoE
 * tables from one or more experiment logs (analysis/report.h), with 95%
 * bootstrap intervals over prompts.
 *
 *   mtpbench report runs/default/default.msgpack
 *   mtpbench report runs/default --table acceptance
 *   mtpbench report a.msgpack b.msgpack --by decoder,category --format csv --out t.csv
 *   mtpbench report runs/default --table cost-model --costs bench.json
 *   mtpbench report runs/batch --table batch
 *   mtpbench report runs/default --table cost-batch --costs bench.json
 *
 * A directory argument stands for every *.msgpack file in it (sorted).
 */
#include <dirent.h>   /* defines: opendir, readdir */
#include <errno.h>    /* defines: errno */
#include <getopt.h>   /* defines: getopt_long */
#include <stdio.h>    /* defines: fopen, fprintf */
#include <stdlib.h>   /* defines: free, qsort */
#include <string.h>   /* defines: strcmp, strlen, strerror */
#include <sys/stat.h> /* defines: stat, S_ISDIR */

#include "analysis/report.h" /* defines: mtp_report_* */
#include "cli_util.h"        /* defines: mtp_cli_parse_int, mtp_cli_fail */
#include "commands.h"        /* defines: mtp_cmd_report */
#include "core/error.h"    /* defines: mtp_error_message */
#include "report_cost_out.h" /* defines: mtp_report_cost_output */

enum report_view {
    VIEW_FULL, VIEW_ACCEPTANCE, VIEW_ABLATION, VIEW_COST, VIEW_TREE, VIEW_POSITION, VIEW_BATCH,
    VIEW_COST_BATCH,
};

/* The views priced with --costs. */
static bool needs_costs(enum report_view v) { return v == VIEW_COST || v == VIEW_COST_BATCH; }

struct report_args {
    struct mtp_report_options opt;
    enum mtp_report_format format;
    enum report_view view;
    const char *out;
    const char *costs; /* --costs: bench cost file (cost-model and cost-batch views) */
    bool skip_damaged; /* --skip-damaged */
    bool strict;        /* --strict: any gap in the inputs is an error */
    bool allow_partial; /* --allow-partial: report a run with missing rank logs */
    int n_logs;
    char **logs; /* argv entries */
};

static void report_usage(FILE *f)
{
    fprintf(f,
            "usage: mtpbench report LOG... [--by KEYS] [--table VIEW]\n"
            "                       [--format md|csv|tex|json] [--bootstrap N] [--seed S]\n"
            "                       [--out FILE] [--skip-damaged] [--strict] [--allow-partial]\n"
            "       mtpbench report LOG... --table cost-model|cost-batch --costs BENCH.json [...]\n"
            "\n"
            "Tables from MessagePack logs of 'mtpbench run' (several logs are merged; a\n"
            "directory means every *.msgpack in it). Every metric of spec/metrics.md with a\n"
            "95%% bootstrap confidence interval over prompts.\n"
            "\n"
            "options:\n"
            "  --by KEYS        group by these comma-separated keys, in column order:\n"
            "                   decoder, temperature, category, dataset, run, wiring,\n"
            "                   turn (multi-turn prompts, 1-based), batch (the batch\n"
            "                   size B; added when the logs hold more than one)\n"
            "                   (default decoder,temperature)\n"
            "  --table VIEW     full (default): every metric per group;\n"
            "                   acceptance: tau and alpha_1 per category, overall speedup;\n"
            "                   ablation: exact vs chained drafting per depth;\n"
            "                   cost-model: predicted vs measured speedup and the best\n"
            "                   depth K* per category, from the costs of --costs;\n"
            "                   cost-batch: predicted speedup and K* per batch size\n"
            "                   B = 1..32 from the batch curve of --costs (bench --batch);\n"
            "                   tree: tau and speedup against tokens verified per step\n"
            "                   for chains, static and dynamic trees;\n"
            "                   position: tau and alpha_j by context length and by\n"
            "                   position in the generation;\n"
            "                   batch: tau, TPOT per request, throughput, speedup and\n"
            "                   experts per verification step per batch size B\n"
            "  --costs FILE     `mtpbench bench --json` output (another machine's file\n"
            "                   gives a projection onto that machine)\n"
            "  --format FMT     md (default), csv, tex, json\n"
            "  --bootstrap N    resamples for the intervals (default %d; 0 = none)\n"
            "  --seed S         bootstrap seed (default 0)\n"
            "  --out FILE       write there instead of standard output\n"
            "  --skip-damaged   leave out damaged records (bad checksum, or not a\n"
            "                   cut-off tail) and say how many, instead of failing\n"
            "  --strict         fail on any gap in the inputs: skipped prompts, requests\n"
            "                   never decoded, an unfinished run, a missing rank log\n"
            "  --allow-partial  report a run whose rank logs are not all there (else an\n"
            "                   error naming them); the tables mark it partial\n"
            "Every table says per group what the plans held: requests of those planned,\n"
            "prompts skipped and why, requests never decoded, missing rank logs.\n"
            "Options that change what is read or written need their full name.\n"
            "  -h, --help       show this help\n",
            MTP_REPORT_DEFAULT_BOOTSTRAP);
}

static int report_parse_view(const char *s, enum report_view *v)
{
    static const char *const names[] = {"full", "acceptance", "ablation", "cost-model",
                                         "tree", "position",   "batch",      "cost-batch"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (strcmp(s, names[i]) == 0) {
            *v = (enum report_view)i;
            return 0;
        }
    fprintf(stderr, "mtpbench: error: option --table: expected full, acceptance, ablation, "
                    "cost-model, cost-batch, tree, position or batch, found '%s'\n", s);
    return -1;
}

/* One option C with argument ARG; returns 0, or 2 on a usage error. */
static int report_option(int c, const char *arg, struct report_args *a)
{
    long v;
    switch (c) {
    case 'b':
        if (mtp_report_parse_by(arg, &a->opt)) {
            fprintf(stderr, "mtpbench: error: %s\n", mtp_error_message());
            return 2;
        }
        return 0;
    case 'f':
        if (mtp_report_format_parse(arg, &a->format)) {
            fprintf(stderr, "mtpbench: error: %s\n", mtp_error_message());
            return 2;
        }
        return 0;
    case 't': return report_parse_view(arg, &a->view) ? 2 : 0;
    case 'B':
        if (mtp_cli_parse_int("--bootstrap", arg, 0, 1000000, &v))
            return 2;
        a->opt.bootstrap = (int)v;
        return 0;
    case 's':
        if (mtp_cli_parse_int("--seed", arg, 0, 0x7fffffffL, &v))
            return 2;
        a->opt.seed = (uint64_t)v;
        return 0;
    case 'o': a->out = arg; return 0;
    case 'c': a->costs = arg; return 0;
    case 'D': a->skip_damaged = true; return 0;
    case 'S': a->strict = true; return 0;
    case 'P': a->allow_partial = true; return 0;
    default: return 2;
    }
}

/* 0: go on; 1: --help printed; 2: usage error. */
static int report_parse(int argc, char **argv, struct report_args *a)
{
    static const struct option opts[] = {
        {"by", required_argument, 0, 'b'},        {"format", required_argument, 0, 'f'},
        {"table", required_argument, 0, 't'},     {"bootstrap", required_argument, 0, 'B'},
        {"seed", required_argument, 0, 's'},      {"out", required_argument, 0, 'o'},
        {"costs", required_argument, 0, 'c'},    {"skip-damaged", no_argument, 0, 'D'},
        {"strict", no_argument, 0, 'S'},         {"allow-partial", no_argument, 0, 'P'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    /* A prefix of these must not pass for them (--allow for --allow-partial). */
    static const char *const exact[] = {"out", "costs", "skip-damaged", "strict",
                                        "allow-partial", NULL};
    if (mtp_cli_require_exact(argc, argv, opts, exact))
        return 2;
    memset(a, 0, sizeof *a);
    mtp_report_options_default(&a->opt);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            report_usage(stdout);
            return 1;
        }
        if (c == '?' || report_option(c, optarg, a)) {
            fprintf(stderr, "Run 'mtpbench report --help' for the options.\n");
            return 2;
        }
    }
    a->n_logs = argc - optind;
    a->logs = argv + optind;
    if (needs_costs(a->view) != (a->costs != NULL)) {
        fprintf(stderr, "mtpbench: error: %s\n", a->costs ? "option --costs: only with --table "
                        "cost-model or cost-batch" : "option --table cost-model/cost-batch: "
                        "needs --costs BENCH.json (from `mtpbench bench --json`)");
        return 2;
    }
    if (a->n_logs == 0) {
        fprintf(stderr, "mtpbench: error: report needs at least one LOG\n");
        report_usage(stderr);
        return 2;
    }
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load every *.msgpack file of directory DIR, in name order. */
static int report_load_dir(struct mtp_report_data *d, const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return mtp_error_set("REPORT %s: cannot open directory", dir);
    char **names = NULL;
    int n = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        size_t len = strlen(e->d_name);
        if (len <= 8 || strcmp(e->d_name + len - 8, ".msgpack") != 0)
            continue;
        names = mtp_xrealloc(names, (size_t)(n + 1) * sizeof *names);
        size_t cap = strlen(dir) + len + 2;
        names[n] = mtp_xmalloc(cap);
        snprintf(names[n++], cap, "%s/%s", dir, e->d_name);
    }
    closedir(dp);
    qsort(names, (size_t)n, sizeof *names, str_cmp);
    int rc = n ? MTP_OK : mtp_error_set("REPORT %s: no *.msgpack logs in this directory", dir);
    for (int i = 0; i < n; i++) {
        if (rc == MTP_OK)
            rc = mtp_report_data_load(d, names[i], stderr);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int report_load_all(struct mtp_report_data *d, const struct report_args *a)
{
    d->skip_damaged = a->skip_damaged;
    for (int i = 0; i < a->n_logs; i++) {
        struct stat st;
        int rc = stat(a->logs[i], &st) == 0 && S_ISDIR(st.st_mode)
                     ? report_load_dir(d, a->logs[i])
                     : mtp_report_data_load(d, a->logs[i], stderr);
        if (rc)
            return MTP_ERR;
    }
    return MTP_OK;
}

/* The full report groups by batch size whenever the logs hold several (a
 * group must never merge B = 1 with B = 4 silently); the other views keep
 * their own keys, and say on standard error when they merge batch sizes
 * (their speedups stay paired at the same B). */
static void report_batch_key(const struct mtp_report_data *d, struct report_args *a)
{
    int sizes[8];
    int n = mtp_report_batch_sizes(d, sizes, 8);
    if (n < 2 || a->view == VIEW_BATCH)
        return;
    char list[64] = "";
    for (int i = 0; i < n && i < 8; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", i ? ", " : "",
                 sizes[i]);
    const char *more = n > 8 ? ", ..." : "";
    if (a->view == VIEW_FULL && mtp_report_add_batch_key(d, &a->opt))
        fprintf(stderr, "mtpbench: note: the logs hold batch sizes %s%s: grouping by batch too "
                        "(--by ...,batch; --table batch compares them)\n", list, more);
    else if (a->view != VIEW_FULL)
        fprintf(stderr, "mtpbench: note: the logs hold batch sizes %s%s; this view merges "
                        "them (speedups stay paired at the same B): --table batch shows them "
                        "apart\n", list, more);
}

/* Build the requested view of D into T. */
static int report_make_table(const struct mtp_report_data *d, const struct report_args *a,
                             struct mtp_report_table *t)
{
    if (a->view == VIEW_ACCEPTANCE)
        return mtp_report_table_acceptance(d, &a->opt, t);
    if (a->view == VIEW_ABLATION)
        return mtp_report_table_ablation(d, &a->opt, t);
    if (a->view == VIEW_TREE)
        return mtp_report_table_tree(d, &a->opt, t);
    if (a->view == VIEW_POSITION)
        return mtp_report_table_position(d, &a->opt, t);
    if (a->view == VIEW_BATCH)
        return mtp_report_table_batch(d, &a->opt, t);
    struct mtp_report r;
    if (mtp_report_build(d, &a->opt, &r))
        return MTP_ERR;
    int rc = mtp_report_table_full(&r, t);
    mtp_report_free(&r);
    return rc;
}

static int report_output(const struct mtp_report_data *d, const struct report_args *a,
                         const struct mtp_report_table *t)
{
    FILE *f = a->out ? fopen(a->out, "w") : stdout;
    if (!f)
        return mtp_error_set("REPORT --out %s: cannot create the output file: %s", a->out,
                             strerror(errno));
    struct mtp_report_meta meta = {d, &a->opt};
    int rc = a->view == VIEW_COST ? mtp_report_cost_output(f, d, &a->opt, a->costs, a->format)
             : a->view == VIEW_COST_BATCH
                 ? mtp_report_cost_batch_output(f, d, &a->opt, a->costs, a->format)
                 : mtp_report_write(f, t, a->format, &meta);
    if (a->out && fclose(f) != 0 && rc == MTP_OK)
        rc = mtp_error_set("REPORT --out %s: write failed: %s", a->out, strerror(errno));
    return rc;
}

int mtp_cmd_report(int argc, char **argv)
{
    struct report_args a;
    int rc = report_parse(argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    struct mtp_report_data d = {0};
    struct mtp_report_table t = {0};
    int status = report_load_all(&d, &a);
    if (status == MTP_OK) {
        mtp_report_gaps_print(stderr, &d, "mtpbench: warning: left out: ");
        status = mtp_report_check_complete(&d, a.strict, a.allow_partial);
    }
    if (status == MTP_OK)
        report_batch_key(&d, &a);
    if (status == MTP_OK && !needs_costs(a.view))
        status = report_make_table(&d, &a, &t);
    if (status == MTP_OK)
        status = report_output(&d, &a, &t);
    if (status != MTP_OK)
        mtp_cli_fail();
    mtp_report_table_free(&t);
    mtp_report_data_free(&d);
    return status == MTP_OK ? 0 : 1;
}
