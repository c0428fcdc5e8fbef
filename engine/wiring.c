/*
 * wiring.c - names, parsing and family defaults of the MTP wiring conventions
 * (wiring.h).
 */
#include "wiring.h"

#include <stdio.h>  /* defines: snprintf */
#include <string.h> /* defines: strcmp, strncmp */

#include "../core/error.h"

static const char *const field_names[MTP_WIRING_FIELD_COUNT] = {
    "draft_hidden", "position0_embedding", "module_hidden"};

/* Value names per field, indexed by the enum (0 = default). */
static const char *const value_names[MTP_WIRING_FIELD_COUNT][3] = {
    {"default", "after_shared_head_norm", "before_shared_head_norm"},
    {"default", "kept", "zeroed"},
    {"default", "previous_module", "main_model"},
};

static const char *const choices[MTP_WIRING_FIELD_COUNT] = {
    "\"after_shared_head_norm\" or \"before_shared_head_norm\"",
    "\"kept\" or \"zeroed\"",
    "\"previous_module\" or \"main_model\"",
};

const char *mtp_wiring_field_name(enum mtp_wiring_field f) { return field_names[f]; }
const char *mtp_wiring_field_choices(enum mtp_wiring_field f) { return choices[f]; }

static int *field_ptr(struct mtp_wiring *w, enum mtp_wiring_field f)
{
    switch (f) {
    case MTP_WIRING_FIELD_DRAFT_HIDDEN: return (int *)&w->draft_hidden;
    case MTP_WIRING_FIELD_POSITION0_EMBEDDING: return (int *)&w->position0_embedding;
    default: return (int *)&w->module_hidden;
    }
}

static int field_value(const struct mtp_wiring *w, enum mtp_wiring_field f)
{
    return *field_ptr((struct mtp_wiring *)w, f);
}

int mtp_wiring_set(struct mtp_wiring *w, enum mtp_wiring_field f, const char *value)
{
    for (int v = 1; v < 3; v++)
        if (!strcmp(value, value_names[f][v])) {
            *field_ptr(w, f) = v;
            return MTP_OK;
        }
    return mtp_error_set("wiring '%s': expected %s, found \"%s\"", field_names[f], choices[f],
                         value);
}

const char *mtp_wiring_value_name(const struct mtp_wiring *w, enum mtp_wiring_field f)
{
    int v = field_value(w, f);
    return v >= 0 && v < 3 ? value_names[f][v] : "default";
}

void mtp_wiring_resolve(struct mtp_wiring *w, const struct mtp_config *cfg)
{
    /* No DeepSeek config field says which hidden is recycled or whether
     * position 0 is masked, so those follow DeepSeek-V3 as SGLang runs it
     * (and as training/mtpref trains: post-norm hidden, module k-1 -> k). */
    bool mimo = !strncmp(cfg->model_type, "mimo", 4);
    if (w->draft_hidden == MTP_WIRING_DRAFT_HIDDEN_DEFAULT)
        w->draft_hidden = MTP_WIRING_DRAFT_HIDDEN_AFTER_NORM;
    if (w->position0_embedding == MTP_WIRING_POSITION0_DEFAULT)
        w->position0_embedding = MTP_WIRING_POSITION0_KEPT;
    if (w->module_hidden == MTP_WIRING_MODULE_HIDDEN_DEFAULT)
        w->module_hidden = mimo ? MTP_WIRING_MODULE_HIDDEN_MAIN_MODEL
                                : MTP_WIRING_MODULE_HIDDEN_PREVIOUS_MODULE;
}

void mtp_wiring_label(const struct mtp_wiring *w, char *buf, int size)
{
    snprintf(buf, (size_t)size, "%s,%s,%s", mtp_wiring_value_name(w, 0),
             mtp_wiring_value_name(w, 1), mtp_wiring_value_name(w, 2));
}
