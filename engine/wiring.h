/*
 * wiring.h - the MTP wiring conventions in use across engines and model
 * families, as named choices (spec/decoding.md "MTP wiring"; issue 11).
 *
 * Three things differ between implementations and change the drafts:
 *   draft_hidden        the hidden a module passes on to the next draft step
 *                       (chained drafting, and exact drafting's module k-1 ->
 *                       module k): after shared_head.norm (SGLang
 *                       deepseek_nextn.py) or before it (vLLM deepseek_mtp.py,
 *                       whose layer returns the block output and whose
 *                       compute_logits applies the norm);
 *   position0_embedding the module's input embedding at position 0: kept
 *                       (SGLang, DeepSeek-V3) or zeroed (vLLM: "masking inputs
 *                       at position 0, as not needed by MTP");
 *   module_hidden       the hidden module k >= 2 reads in exact drafting: module
 *                       k-1's (the DeepSeek-V3 paper, §2.2) or the main model's
 *                       at the same position (MiMo's NEXTN layers).
 * Each field has a _DEFAULT value meaning "the checkpoint family's choice",
 * resolved by mtp_wiring_resolve once the config is known.
 */
#ifndef MTP_WIRING_H
#define MTP_WIRING_H

#include "config.h" /* defines: struct mtp_config */

enum mtp_wiring_draft_hidden {
    MTP_WIRING_DRAFT_HIDDEN_DEFAULT,
    MTP_WIRING_DRAFT_HIDDEN_AFTER_NORM,  /* "after_shared_head_norm" (SGLang) */
    MTP_WIRING_DRAFT_HIDDEN_BEFORE_NORM, /* "before_shared_head_norm" (vLLM) */
};

enum mtp_wiring_position0 {
    MTP_WIRING_POSITION0_DEFAULT,
    MTP_WIRING_POSITION0_KEPT,   /* "kept" (SGLang, DeepSeek-V3) */
    MTP_WIRING_POSITION0_ZEROED, /* "zeroed" (vLLM) */
};

enum mtp_wiring_module_hidden {
    MTP_WIRING_MODULE_HIDDEN_DEFAULT,
    MTP_WIRING_MODULE_HIDDEN_PREVIOUS_MODULE, /* "previous_module" (DeepSeek-V3 paper) */
    MTP_WIRING_MODULE_HIDDEN_MAIN_MODEL,      /* "main_model" (MiMo NEXTN) */
};

struct mtp_wiring {
    enum mtp_wiring_draft_hidden draft_hidden;
    enum mtp_wiring_position0 position0_embedding;
    enum mtp_wiring_module_hidden module_hidden;
};

/* The fields, their names in specs, logs and on the command line. */
enum mtp_wiring_field {
    MTP_WIRING_FIELD_DRAFT_HIDDEN,
    MTP_WIRING_FIELD_POSITION0_EMBEDDING,
    MTP_WIRING_FIELD_MODULE_HIDDEN,
    MTP_WIRING_FIELD_COUNT,
};
const char *mtp_wiring_field_name(enum mtp_wiring_field f);
/* "after_shared_head_norm or before_shared_head_norm", for messages. */
const char *mtp_wiring_field_choices(enum mtp_wiring_field f);

/* Set field F of W from VALUE; returns MTP_OK, or MTP_ERR (message names the
 * field, the choices and what was found) for an unknown value. */
int mtp_wiring_set(struct mtp_wiring *w, enum mtp_wiring_field f, const char *value);
/* The name of field F's value in W ("default" when unresolved). */
const char *mtp_wiring_value_name(const struct mtp_wiring *w, enum mtp_wiring_field f);

/* Replace every _DEFAULT field of W by the family's choice for CFG: the MiMo
 * family (model_type "mimo*") reads the main model's hidden in every module;
 * everything else follows DeepSeek-V3 and the weights our trainer writes
 * (after_shared_head_norm, kept, previous_module). */
void mtp_wiring_resolve(struct mtp_wiring *w, const struct mtp_config *cfg);

/* "after_shared_head_norm,kept,previous_module" into BUF (a label for tables). */
void mtp_wiring_label(const struct mtp_wiring *w, char *buf, int size);

#endif
