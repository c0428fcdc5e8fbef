/*
 * dataset.h - prompt sets in the Spec-Bench question schema (docs/design.md §9):
 * one JSON object per line,
 *   {"question_id": int | string, "category": string, "turns": [string, ...],
 *    "reference"?: ...}
 * Every turn is kept (the runner runs them in order, experiments/conversation.h);
 * turns[0] is the prompt of a single-turn run. Other keys are ignored. Empty
 * (whitespace-only) lines are skipped. An empty turn is an error naming the
 * prompt and the turn. "category" is optional and defaults to
 * the dataset name (the file stem: "data/code.jsonl" -> "code").
 *
 * Errors name the file and the 1-based line, what was expected and what was
 * found: "DATASET: data/code.jsonl:7: key 'turns': expected non-empty array of
 * strings, found 42". Invalid UTF-8 is reported with its byte column.
 */
#ifndef MTP_DATASET_H
#define MTP_DATASET_H

struct mtp_prompt {
    char *id;       /* question_id as a string (integers in decimal); unique in the file */
    char *category; /* "category", or the dataset name when absent */
    char *text;     /* turns[0] (== turns[0] below), valid UTF-8, non-empty */
    int n_turns;    /* >= 1 */
    char **turns;   /* [n_turns] every turn, valid UTF-8, non-empty; turns[0] is text */
    int line;       /* 1-based line in the file, for messages */
};

struct mtp_dataset {
    char *path;  /* as given */
    char *name;  /* file stem */
    int n_prompts;
    struct mtp_prompt *prompts; /* [n_prompts], file order */
};

/* Read PATH into DS (zeroed first; free with mtp_dataset_free, also after a
 * failure). Every line is validated; only the first MAX_PROMPTS prompts are
 * kept (0 = all). Returns MTP_OK or MTP_ERR. */
int mtp_dataset_load(const char *path, int max_prompts, struct mtp_dataset *ds);

void mtp_dataset_free(struct mtp_dataset *ds);

/* The dataset name of PATH (file stem, without directory and last extension),
 * newly allocated. */
char *mtp_dataset_name_from_path(const char *path);

#endif
