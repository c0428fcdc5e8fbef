/*
 * shipped_model.h - one shipped model directory opened the way the
 * invariant tests use it: the model, a 1-thread CPU backend, its tokenizer
 * and an engine that poisons rolled-back cache rows (so a read of a stale
 * entry shows up in the results).
 */
#ifndef MTP_TEST_SHIPPED_MODEL_H
#define MTP_TEST_SHIPPED_MODEL_H

#include "engine/engine.h"
#include "engine/tokenizer.h"

struct test_shipped {
    const char *name; /* models/<name>, for the tests that iterate over them */
    struct mtp_model *model;
    struct mtp_backend *be;
    struct mtp_engine *engine;
    struct mtp_tokenizer *tok;
};

/* Open DIR into S (the name is kept). Returns 0, or -1 with the error
 * printed to stderr (what is already open stays for test_shipped_close). */
int test_shipped_open(struct test_shipped *s, const char *dir);

/* Free what S holds and clear it (the name is kept). */
void test_shipped_close(struct test_shipped *s);

#endif
