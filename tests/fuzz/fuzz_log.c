/*
 * fuzz_log.c - libFuzzer target: an experiment log through the reader
 * (every record, request records decoded, the run record's spec as JSON;
 * a request record the reader returns must decode: it checks them),
 * once failing on damage and once skipping it, and through the resume scan (mtp_log_open_resume, which may cut a partial
 * tail of the scratch file; nothing else is written).
 */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: strcmp */

#include "experiments/log.h" /* defines: mtp_log_* */
#include "fuzz.h"

static void read_all(const char *path, bool skip_damaged)
{
    struct mtp_log_reader *r;
    if (mtp_log_reader_open(path, &r) != 0)
        return;
    mtp_log_reader_skip_damaged(r, skip_damaged);
    const msgpack_object *rec;
    char type[32];
    while (mtp_log_reader_next(r, &rec, NULL) == 0 && rec) {
        mtp_log_record_type(rec, type, sizeof type);
        if (strcmp(type, "request") == 0) {
            struct mtp_request_record req;
            if (mtp_log_decode_request(rec, &req) != 0)
                abort(); /* the reader returns only request records that decode (issue 28) */
            mtp_log_request_free(&req);
        } else if (strcmp(type, "run") == 0) {
            free(mtp_log_obj_to_json(mtp_log_map_get(rec, "spec")));
        }
    }
    (void)mtp_log_reader_partial(r, NULL);
    struct mtp_log_damage d;
    mtp_log_reader_damage(r, &d);
    if (d.records < 0 || (d.records > 0 && !skip_damaged))
        abort(); /* damage is only ever counted when skipped */
    mtp_log_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_file(data, size, 0);
    read_all(path, false);
    read_all(path, true);
    struct mtp_log_writer *w = NULL;
    struct mtp_log_resume st;
    if (mtp_log_open_resume(path, NULL, NULL, &w, &st) == 0) {
        mtp_log_resume_free(&st);
        (void)mtp_log_close(w);
    }
    return 0;
}
