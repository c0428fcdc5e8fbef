/*
 * shipped_model.c - test_shipped_open / test_shipped_close (shipped_model.h).
 */
#include "shipped_model.h"

#include <stdio.h> /* defines: fprintf, snprintf */

#include "core/error.h"

int test_shipped_open(struct test_shipped *s, const char *dir)
{
    char tok[1024];
    snprintf(tok, sizeof tok, "%s/tokenizer.json", dir);
    struct mtp_engine_options opt = {.max_positions = 1024, .max_batch = 64,
                                     .poison_rollback = true};
    if (mtp_model_load(dir, &s->model) || mtp_backend_cpu_create(1, &s->be) ||
        mtp_tokenizer_load(tok, &s->tok) || mtp_engine_create(s->model, s->be, &opt, &s->engine)) {
        fprintf(stderr, "%s: %s\n", dir, mtp_error_message());
        return -1;
    }
    return 0;
}

void test_shipped_close(struct test_shipped *s)
{
    mtp_engine_free(s->engine);
    mtp_tokenizer_free(s->tok);
    mtp_backend_free(s->be);
    mtp_model_free(s->model);
    s->engine = NULL, s->tok = NULL, s->be = NULL, s->model = NULL;
}
