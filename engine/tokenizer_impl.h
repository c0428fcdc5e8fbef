/*
 * tokenizer_impl.h - the inside of struct mtp_tokenizer, shared by the three
 * tokenizer files:
 *   tokenizer_load.c   tokenizer.json -> tables (and the public getters)
 *   tokenizer_pretok.c added-token matching, Split regexes, ByteLevel steps
 *   tokenizer_bpe.c    hash maps, BPE merges, encode and decode
 *
 * Tokens are kept as raw bytes, not in GPT-2's byte->unicode spelling: the
 * ByteLevel map is a bijection on bytes, so BPE over the bytes of a pre-token
 * merges exactly as BPE over its mapped characters, and decoding needs no
 * inverse map at run time.
 */
#ifndef MTP_TOKENIZER_IMPL_H
#define MTP_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>   /* defines: pcre2_code */
#include <stdbool.h> /* defines: bool */
#include <stddef.h>  /* defines: size_t */
#include <stdint.h>  /* defines: int32_t, uint64_t */

#include "tokenizer.h"

/* Open-addressing map from byte strings to ids (keys are borrowed); grows. */
struct mtp_tok_strmap {
    size_t cap; /* power of two */
    size_t count;
    const char **key;
    size_t *klen;
    int32_t *val;
};

/* Open-addressing map from a token pair (a, b) to its merge rank and result. */
struct mtp_tok_pairmap {
    size_t cap; /* power of two */
    size_t count;
    uint64_t *key; /* (a << 32 | b) + 1, 0 = empty slot */
    int32_t *rank;
    int32_t *merged;
};

enum mtp_tok_piece_kind {
    MTP_TOK_PIECE_NONE = 0, /* id not used by the file */
    MTP_TOK_PIECE_MODEL,    /* a model (BPE) token */
    MTP_TOK_PIECE_ADDED,    /* an added token, not special */
    MTP_TOK_PIECE_SPECIAL,  /* an added token marked special */
};

/* What id decodes to. */
struct mtp_tok_piece {
    char *bytes; /* owned; NUL-terminated for convenience */
    size_t len;
    enum mtp_tok_piece_kind kind;
};

struct mtp_tok_added {
    const char *content; /* borrowed from pieces[id].bytes */
    size_t len;
    int32_t id;
};

enum mtp_tok_step_kind {
    MTP_TOK_STEP_SPLIT,     /* Split, behaviour Isolated */
    MTP_TOK_STEP_BYTELEVEL, /* ByteLevel: optional prefix space, optional GPT-2 regex */
};

struct mtp_tok_step {
    enum mtp_tok_step_kind kind;
    pcre2_code *re;        /* the Split pattern, or GPT-2's regex when use_regex; else NULL */
    bool add_prefix_space; /* ByteLevel only */
};

struct mtp_tokenizer {
    char *path;
    int vocab_size;              /* max id + 1 */
    struct mtp_tok_piece *piece; /* [vocab_size] */
    struct mtp_tok_strmap vocab; /* model token bytes -> id */
    struct mtp_tok_pairmap merges;
    int32_t byte_id[256]; /* id of each single-byte token, -1 if the vocab lacks it */
    bool ignore_merges;   /* BPE: a pre-token that is a whole vocab entry maps to it directly */
    struct mtp_tok_added *added; /* sorted by first byte, then longest first */
    int n_added;
    struct mtp_tok_step *step;
    int n_step;
    bool added_first[256]; /* bytes some added token starts with: skip the scan elsewhere */
    int32_t bos_id, eos_id;
};

/* A pre-token: LEN bytes at P, borrowed from the input or from an owned copy. */
struct mtp_tok_word {
    const char *p;
    size_t len;
};

/* A growable list of pre-tokens, and the copies (ByteLevel's prefix space)
 * some of them point into; the copies live until mtp_tok_words_free, so a word
 * cache may keep pointing at them across segments. */
struct mtp_tok_words {
    struct mtp_tok_word *w;
    int n, cap;
    char **owned;
    int n_owned, cap_owned;
};

/* tokenizer_bpe.c: maps. Keys of strmap must outlive it. */
void mtp_tok_strmap_init(struct mtp_tok_strmap *m, size_t n);
void mtp_tok_strmap_free(struct mtp_tok_strmap *m);
/* Insert KEY -> VAL; returns false (no change) if KEY is already present. */
bool mtp_tok_strmap_put(struct mtp_tok_strmap *m, const char *key, size_t klen, int32_t val);
int32_t mtp_tok_strmap_get(const struct mtp_tok_strmap *m, const char *key, size_t klen);
void mtp_tok_pairmap_init(struct mtp_tok_pairmap *m, size_t n);
void mtp_tok_pairmap_free(struct mtp_tok_pairmap *m);
/* Set (A, B) -> (RANK, MERGED), replacing an earlier entry for the pair. */
void mtp_tok_pairmap_put(struct mtp_tok_pairmap *m, int32_t a, int32_t b, int32_t rank,
                         int32_t merged);
/* Rank of (A, B) and its merged id in *MERGED, or -1 if the pair is not a merge. */
int32_t mtp_tok_pairmap_get(const struct mtp_tok_pairmap *m, int32_t a, int32_t b,
                            int32_t *merged);

/* tokenizer_pretok.c */
/* Compile a Split pattern (LITERAL for {"String": ...}); on failure MTP_ERR
 * naming PATH, WHERE, the PCRE2 message and offset. */
int mtp_tok_regex_compile(const char *path, const char *where, const char *pattern, bool literal,
                          pcre2_code **out);
/* Offset of the first invalid UTF-8 sequence in TEXT, or LEN if it is valid. */
size_t mtp_tok_utf8_check(const char *text, size_t len);
/* Id of the added token starting at TEXT (longest match within LEN bytes), with
 * its length in *MLEN; -1 if none starts there. */
int32_t mtp_tok_added_match(const struct mtp_tokenizer *tok, const char *text, size_t len,
                            size_t *mlen);
/* Run the pre-tokenizer steps over LEN bytes at TEXT (no added tokens inside)
 * and append the resulting pre-tokens to OUT. */
int mtp_tok_pretokenize(const struct mtp_tokenizer *tok, const char *text, size_t len,
                        struct mtp_tok_words *out);
void mtp_tok_words_push(struct mtp_tok_words *ws, const char *p, size_t len);
/* Forget the words (not the owned copies). */
void mtp_tok_words_clear(struct mtp_tok_words *ws);
void mtp_tok_words_free(struct mtp_tok_words *ws);

#endif
