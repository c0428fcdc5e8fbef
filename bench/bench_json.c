/*
 * bench_json.c - the cost-curve file of `mtpbench bench --json` (bench_json.h).
 *
 * One flat list of named cases, each with its parameters, the summaries of
 * its nanoseconds and of its per-round ratio to "decode", and the per-round
 * ratios themselves: the report resamples rounds to put the cost spread into
 * its predicted-speedup interval. The sections of bench_threads.h (per-forward
 * overheads, threads quiet and contended) are case lists of their own, with
 * their own reference, under "sections", plus their derived figures; readers
 * look cases up by name, so the cost curve's readers are unaffected.
 */
#include "bench_json.h"

#include <jansson.h> /* defines: json_pack, json_dump_file */
#include <stdio.h>   /* defines: FILE, fgets */
#include <stdlib.h>  /* defines: getloadavg */
#include <string.h>  /* defines: strncmp, strchr */
#include <time.h>    /* defines: clock_gettime */
#include <unistd.h>  /* defines: gethostname, sysconf */

#include "core/error.h"
#include "engine/model.h"

static json_t *stats_json(const struct mtp_bench_stats *s)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "median", s->median, "mean",
                     s->mean, "sd", s->sd, "p10", s->p10, "p90", s->p90, "min", s->min, "max",
                     s->max);
}

static json_t *case_json(const struct mtp_bench_case *c, const struct mtp_bench_result *r, int i)
{
    int n = r->n_cases, R = r->rounds;
    struct mtp_bench_stats ns = mtp_bench_stats_of(r->ns + i, R, n);
    struct mtp_bench_stats ratio = mtp_bench_stats_of(r->ratio + i, R, n);
    json_t *samples = json_array();
    for (int k = 0; k < R; k++)
        json_array_append_new(samples, json_real(r->ratio[(size_t)k * n + i]));
    json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o}", "name", c->name, "kind", c->kind, "ns",
                          stats_json(&ns), "ratio", stats_json(&ratio), "ratio_samples", samples);
    if (c->module > 0)
        json_object_set_new(o, "module", json_integer(c->module));
    if (strcmp(c->kind, "verify") == 0 || strcmp(c->kind, "draft") == 0)
        json_object_set_new(o, "n", json_integer(c->n));
    if (c->threads > 0)
        json_object_set_new(o, "threads", json_integer(c->threads));
    if (strcmp(c->kind, "threads") == 0)
        json_object_set_new(o, "contended", json_boolean(c->contended));
    if (c->layers > 0)
        json_object_set_new(o, "layers", json_integer(c->layers));
    return o;
}

static json_t *section_json(const struct mtp_bench_section *s)
{
    json_t *list = json_array(), *figs = json_object();
    for (int i = 0; i < s->n_cases; i++)
        json_array_append_new(list, case_json(&s->cases[i], &s->res, i));
    for (int i = 0; i < s->n_fig; i++) {
        json_t *f = stats_json(&s->fig[i].s);
        json_object_set_new(f, "unit", json_string(s->fig[i].unit));
        json_object_set_new(figs, s->fig[i].name, f);
    }
    json_t *o = json_pack("{s:s, s:i, s:o, s:o}", "reference", s->cases[s->res.ref].name,
                          "rounds", s->res.rounds, "cases", list, "figures", figs);
    if (o && s->extra_json)
        json_object_set_new(o, "per_op", s->extra_json(s->extra));
    return o;
}

/* The "model name" of /proc/cpuinfo, or "unknown". */
static void cpu_name(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) || !colon)
            continue;
        snprintf(buf, cap, "%s", colon + 2);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    if (f)
        fclose(f);
}

void mtp_bench_load_average(double *load)
{
    if (getloadavg(load, 3) != 3)
        load[0] = load[1] = load[2] = -1;
}

static json_t *load_json(const double *v)
{
    if (v[0] < 0)
        return json_null();
    return json_pack("[f, f, f]", v[0], v[1], v[2]);
}

/* The machine, its threads and its load: the report prints them beside any
 * prediction and warns when the logs' differ (analysis/report_cost_check.h). */
static json_t *machine_json(const struct mtp_bench_provenance *pv)
{
    char host[256] = "unknown", cpu[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    cpu_name(cpu, sizeof cpu);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return json_pack("{s:s, s:s, s:s, s:i, s:I, s:{s:o, s:o}}", "host", host, "cpu", cpu,
                     "backend", pv->backend, "threads", pv->threads, "cpus_online",
                     (json_int_t)(cpus > 0 ? cpus : 1), "load_average", "start",
                     load_json(pv->load_start), "end", load_json(pv->load_end));
}

int mtp_bench_write_json(const char *path, const struct mtp_bench_provenance *pv,
                         const struct mtp_bench_ctx *ctx, const struct mtp_bench_case *cases,
                         const struct mtp_bench_result *res,
                         const struct mtp_bench_section *sec, int n_sec, json_t *batch)
{
    const struct mtp_config *c = ctx->c;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    json_t *list = json_array();
    for (int i = 0; i < res->n_cases; i++)
        json_array_append_new(list, case_json(&cases[i], res, i));
    json_t *model = json_pack("{s:s, s:i, s:i, s:i, s:i}", "dir", pv->model_dir, "hidden_size",
                              c->hidden_size, "num_hidden_layers", c->num_hidden_layers,
                              "num_nextn_predict_layers", c->num_nextn_predict_layers,
                              "vocab_size", c->vocab_size);
    json_t *root = json_pack("{s:s, s:o, s:o, s:i, s:i, s:i, s:i, s:s, s:I, s:o}", "schema",
                             MTP_BENCH_COSTS_SCHEMA, "model", model, "machine", machine_json(pv),
                             "context", pv->context, "rounds", res->rounds, "warmup_rounds",
                             pv->warmup, "inner_runs", pv->inner, "reference", cases[res->ref].name, "time_unix_ns",
                             (json_int_t)ts.tv_sec * 1000000000 + ts.tv_nsec, "cases", list);
    json_t *sections = json_object();
    for (int i = 0; i < n_sec; i++)
        json_object_set_new(sections, sec[i].name, section_json(&sec[i]));
    if (root) {
        json_object_set_new(root, "sections", sections);
        if (batch)
            json_object_set_new(root, "batch", batch);
    } else {
        json_decref(sections);
        json_decref(batch);
    }
    int rc = root && json_dump_file(root, path, JSON_INDENT(1)) == 0
                 ? MTP_OK
                 : mtp_error_set("bench: cannot write %s", path);
    json_decref(root);
    return rc;
}
