/*
 * tokenizer_load.c - read a Hugging Face tokenizer.json into struct
 * mtp_tokenizer (see tokenizer.h for the supported subset) and the small
 * public getters.
 *
 * Every rejection names the file and the JSON part, e.g.
 *   "models/x/tokenizer.json: pre_tokenizer.pretokenizers[1].behavior: 'Removed' not
 *    supported (only Isolated)"
 * so a researcher dropping in another model's tokenizer sees what to change.
 */
#include "tokenizer_impl.h"

#include <jansson.h> /* defines: json_t, json_load_file */
#include <stdio.h>   /* defines: snprintf */
#include <stdlib.h>  /* defines: free, qsort */
#include <string.h>  /* defines: strcmp, strstr, memcpy */

#include "../core/error.h"
#include "input_file.h" /* defines: mtp_input_load_json */

/* GPT-2's regex, applied by ByteLevel when use_regex is true. */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Ids are bounded so a corrupt file cannot make us allocate gigabytes. */
enum { TOK_MAX_ID = 1 << 24 };

struct tok_reader {
    const char *path;
    struct mtp_tokenizer *tok;
    int byte_of_cp[324]; /* GPT-2 byte-level char (code point) -> byte, -1 if not one */
};

/* GPT-2 bytes_to_unicode: printable bytes map to themselves, the other 68 to
 * U+0100.. in byte order. */
static void reader_init_bytemap(struct tok_reader *r)
{
    for (int i = 0; i < 324; i++)
        r->byte_of_cp[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        r->byte_of_cp[printable ? b : 256 + n++] = b;
    }
}

/* Decode one UTF-8 code point at S (valid UTF-8 from jansson); returns its length. */
static int utf8_decode(const unsigned char *s, int *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        *cp = ((s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if ((s[0] & 0xF0) == 0xE0) {
        *cp = ((s[0] & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((s[0] & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

/* Byte-level spelling S -> raw bytes in a new buffer. Returns NULL if some
 * character is not in the byte-level alphabet (such tokens cannot come out of
 * BPE; the decoder then writes their UTF-8 as is, as `tokenizers` does). */
static char *bytelevel_to_bytes(const struct tok_reader *r, const char *s, size_t slen,
                                size_t *len)
{
    char *out = mtp_xmalloc(slen + 1);
    size_t n = 0;
    for (size_t i = 0; i < slen;) {
        int cp;
        i += (size_t)utf8_decode((const unsigned char *)s + i, &cp);
        if (cp >= 324 || r->byte_of_cp[cp] < 0) {
            free(out);
            return NULL;
        }
        out[n++] = (char)r->byte_of_cp[cp];
    }
    out[n] = '\0';
    *len = n;
    return out;
}

static char *dup_bytes(const char *s, size_t len)
{
    char *p = mtp_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* The "type" string of OBJ, or NULL. */
static const char *type_of(const json_t *obj)
{
    return json_string_value(json_object_get(obj, "type"));
}

static bool is_true(const json_t *obj, const char *key)
{
    return json_is_true(json_object_get(obj, key));
}

/* Largest id in model.vocab and added_tokens, checking each is an integer in range. */
static int read_max_id(struct tok_reader *r, json_t *vocab, json_t *added, int *max_id)
{
    *max_id = -1;
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v)
    {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id >= TOK_MAX_ID)
            return mtp_error_set("%s: model.vocab['%s']: expected an id in [0, %d)", r->path, k,
                                 TOK_MAX_ID);
        if (id > *max_id)
            *max_id = (int)id;
    }
    size_t i;
    json_array_foreach(added, i, v)
    {
        json_t *idv = json_object_get(v, "id");
        json_int_t id = json_integer_value(idv);
        if (!json_is_integer(idv) || id < 0 || id >= TOK_MAX_ID)
            return mtp_error_set("%s: added_tokens[%zu].id: expected an id in [0, %d)", r->path,
                                 i, TOK_MAX_ID);
        if (id > *max_id)
            *max_id = (int)id;
    }
    return MTP_OK;
}

/* model.vocab -> piece table and the bytes -> id map. */
static int read_vocab(struct tok_reader *r, json_t *vocab)
{
    struct mtp_tokenizer *tok = r->tok;
    mtp_tok_strmap_init(&tok->vocab, json_object_size(vocab));
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v)
    {
        int32_t id = (int32_t)json_integer_value(v);
        struct mtp_tok_piece *p = &tok->piece[id];
        if (p->kind != MTP_TOK_PIECE_NONE)
            return mtp_error_set("%s: model.vocab['%s']: id %d is used twice", r->path, k, id);
        size_t klen = strlen(k);
        p->bytes = bytelevel_to_bytes(r, k, klen, &p->len);
        p->kind = MTP_TOK_PIECE_MODEL;
        if (!p->bytes) { /* decodable only as its own UTF-8; never produced by BPE */
            p->bytes = dup_bytes(k, klen);
            p->len = klen;
            continue;
        }
        mtp_tok_strmap_put(&tok->vocab, p->bytes, p->len, id);
        if (p->len == 1)
            tok->byte_id[(unsigned char)p->bytes[0]] = id;
    }
    return MTP_OK;
}

/* Id of byte-level spelling S in the vocab, or -1. */
static int32_t vocab_lookup(const struct tok_reader *r, const char *s, size_t slen)
{
    size_t len;
    char *b = bytelevel_to_bytes(r, s, slen, &len);
    if (!b)
        return -1;
    int32_t id = mtp_tok_strmap_get(&r->tok->vocab, b, len);
    free(b);
    return id;
}

/* Split merge I into its two spellings: "a b" or ["a", "b"]. */
static int merge_parts(struct tok_reader *r, json_t *m, size_t i, const char **a, size_t *alen,
                       const char **b, size_t *blen)
{
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        const char *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return mtp_error_set("%s: model.merges[%zu]: '%s' is not two tokens separated by "
                                 "one space",
                                 r->path, i, s);
        *a = s, *alen = (size_t)(sp - s), *b = sp + 1, *blen = strlen(sp + 1);
        return MTP_OK;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1));
        *alen = json_string_length(json_array_get(m, 0));
        *blen = json_string_length(json_array_get(m, 1));
        return MTP_OK;
    }
    return mtp_error_set("%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", r->path, i);
}

/* model.merges -> pair map, rank = position. A later duplicate replaces an
 * earlier one, as in `tokenizers` (its merges are collected into a hash map). */
static int read_merges(struct tok_reader *r, json_t *merges)
{
    struct mtp_tokenizer *tok = r->tok;
    mtp_tok_pairmap_init(&tok->merges, json_array_size(merges));
    size_t i;
    json_t *m;
    json_array_foreach(merges, i, m)
    {
        const char *a = "", *b = "";
        size_t alen = 0, blen = 0;
        if (merge_parts(r, m, i, &a, &alen, &b, &blen))
            return MTP_ERR;
        int32_t ia = vocab_lookup(r, a, alen), ib = vocab_lookup(r, b, blen);
        if (ia < 0 || ib < 0)
            return mtp_error_set("%s: model.merges[%zu]: token '%.*s' is not in model.vocab",
                                 r->path, i, (int)(ia < 0 ? alen : blen), ia < 0 ? a : b);
        const struct mtp_tok_piece *pa = &tok->piece[ia], *pb = &tok->piece[ib];
        char *joined = mtp_xmalloc(pa->len + pb->len);
        memcpy(joined, pa->bytes, pa->len);
        memcpy(joined + pa->len, pb->bytes, pb->len);
        int32_t im = mtp_tok_strmap_get(&tok->vocab, joined, pa->len + pb->len);
        free(joined);
        if (im < 0)
            return mtp_error_set("%s: model.merges[%zu]: merged token '%.*s%.*s' is not in "
                                 "model.vocab",
                                 r->path, i, (int)alen, a, (int)blen, b);
        mtp_tok_pairmap_put(&tok->merges, ia, ib, (int32_t)i, im);
    }
    return MTP_OK;
}

/* Model block: BPE only, and only the options that do not change byte-level
 * BPE semantics we implement. */
static int read_model(struct tok_reader *r, json_t *root)
{
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model))
        return mtp_error_set("%s: model: missing or not an object", r->path);
    const char *type = type_of(model);
    if (type && strcmp(type, "BPE") != 0)
        return mtp_error_set("%s: model.type: '%s' not supported (only BPE)", r->path, type);
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout))
        return mtp_error_set("%s: model.dropout: not supported (must be null)", r->path);
    const char *fix[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *s = json_string_value(json_object_get(model, fix[i]));
        if (s && *s)
            return mtp_error_set("%s: model.%s: '%s' not supported (byte-level BPE has none)",
                                 r->path, fix[i], s);
    }
    if (is_true(model, "byte_fallback"))
        return mtp_error_set("%s: model.byte_fallback: true not supported", r->path);
    r->tok->ignore_merges = is_true(model, "ignore_merges");
    if (!json_is_object(json_object_get(model, "vocab")))
        return mtp_error_set("%s: model.vocab: missing or not an object", r->path);
    if (!json_is_array(json_object_get(model, "merges")))
        return mtp_error_set("%s: model.merges: missing or not a list", r->path);
    return MTP_OK;
}

static bool contains(const char *s, const char *const *names)
{
    for (; *names; names++)
        if (strstr(s, *names))
            return true;
    return false;
}

/* added_tokens -> piece kinds, the match list, BOS and EOS. */
static int read_added(struct tok_reader *r, json_t *added)
{
    static const char *const bos_names[] = {"begin\xE2\x96\x81of\xE2\x96\x81sentence", "<s>",
                                            "<|begin_of_text|>", "<|startoftext|>", NULL};
    static const char *const eos_names[] = {"end\xE2\x96\x81of\xE2\x96\x81sentence", "</s>",
                                            "<|endoftext|>", "<|end_of_text|>", NULL};
    struct mtp_tokenizer *tok = r->tok;
    tok->added = mtp_xcalloc(json_array_size(added) + 1, sizeof *tok->added);
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a)
    {
        const char *content = json_string_value(json_object_get(a, "content"));
        if (!content || !*content)
            return mtp_error_set("%s: added_tokens[%zu].content: missing or empty", r->path, i);
        const char *opts[] = {"single_word", "lstrip", "rstrip"};
        for (int k = 0; k < 3; k++)
            if (is_true(a, opts[k]))
                return mtp_error_set("%s: added_tokens[%zu].%s: true not supported", r->path, i,
                                     opts[k]);
        int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
        struct mtp_tok_piece *p = &tok->piece[id];
        if (p->kind == MTP_TOK_PIECE_ADDED || p->kind == MTP_TOK_PIECE_SPECIAL)
            return mtp_error_set("%s: added_tokens[%zu].id: %d is used twice", r->path, i, id);
        free(p->bytes);
        p->len = json_string_length(json_object_get(a, "content"));
        p->bytes = dup_bytes(content, p->len);
        p->kind = is_true(a, "special") ? MTP_TOK_PIECE_SPECIAL : MTP_TOK_PIECE_ADDED;
        tok->added[tok->n_added++] = (struct mtp_tok_added){p->bytes, p->len, id};
        tok->added_first[(unsigned char)p->bytes[0]] = true;
        if (tok->bos_id < 0 && contains(content, bos_names))
            tok->bos_id = id;
        else if (tok->eos_id < 0 && contains(content, eos_names))
            tok->eos_id = id;
    }
    return MTP_OK;
}

/* Longest first, so the first hit in a scan is the longest match. */
static int added_cmp(const void *pa, const void *pb)
{
    const struct mtp_tok_added *a = pa, *b = pb;
    if (a->len != b->len)
        return a->len < b->len ? 1 : -1;
    return memcmp(a->content, b->content, a->len);
}

static int read_normalizer(struct tok_reader *r, json_t *root)
{
    json_t *n = json_object_get(root, "normalizer");
    if (!n || json_is_null(n))
        return MTP_OK;
    const char *type = type_of(n);
    json_t *list = json_object_get(n, "normalizers");
    if (type && strcmp(type, "Sequence") == 0 && json_is_array(list) && json_array_size(list) == 0)
        return MTP_OK;
    return mtp_error_set("%s: normalizer: '%s' not supported (only null or an empty Sequence)",
                         r->path, type ? type : "?");
}

static int read_decoder(struct tok_reader *r, json_t *root)
{
    const char *type = type_of(json_object_get(root, "decoder"));
    if (type && strcmp(type, "ByteLevel") == 0)
        return MTP_OK;
    return mtp_error_set("%s: decoder: '%s' not supported (only ByteLevel)", r->path,
                         type ? type : "null");
}

/* One Split step at WHERE. */
static int read_split(struct tok_reader *r, json_t *pt, const char *where, struct mtp_tok_step *st)
{
    const char *behavior = json_string_value(json_object_get(pt, "behavior"));
    if (!behavior || strcmp(behavior, "Isolated") != 0)
        return mtp_error_set("%s: %s.behavior: '%s' not supported (only Isolated)", r->path,
                             where, behavior ? behavior : "missing");
    if (is_true(pt, "invert"))
        return mtp_error_set("%s: %s.invert: true not supported", r->path, where);
    json_t *pat = json_object_get(pt, "pattern");
    const char *re = json_string_value(json_object_get(pat, "Regex"));
    const char *lit = json_string_value(json_object_get(pat, "String"));
    if (!re && !lit)
        return mtp_error_set("%s: %s.pattern: expected {\"Regex\": ...} or {\"String\": ...}",
                             r->path, where);
    char part[256];
    snprintf(part, sizeof part, "%s.pattern", where);
    st->kind = MTP_TOK_STEP_SPLIT;
    return mtp_tok_regex_compile(r->path, part, re ? re : lit, !re, &st->re);
}

/* One ByteLevel step at WHERE. */
static int read_bytelevel(struct tok_reader *r, json_t *pt, const char *where,
                          struct mtp_tok_step *st)
{
    st->kind = MTP_TOK_STEP_BYTELEVEL;
    st->add_prefix_space = is_true(pt, "add_prefix_space");
    json_t *use_regex = json_object_get(pt, "use_regex");
    if (use_regex && !json_is_true(use_regex))
        return MTP_OK;
    char part[256];
    snprintf(part, sizeof part, "%s (GPT-2 regex for use_regex)", where);
    return mtp_tok_regex_compile(r->path, part, GPT2_PATTERN, false, &st->re);
}

static int read_step(struct tok_reader *r, json_t *pt, const char *where)
{
    struct mtp_tokenizer *tok = r->tok;
    const char *type = type_of(pt);
    if (tok->n_step > 0 && tok->step[tok->n_step - 1].kind == MTP_TOK_STEP_BYTELEVEL)
        return mtp_error_set("%s: %s: steps after ByteLevel not supported", r->path, where);
    struct mtp_tok_step *st = &tok->step[tok->n_step];
    int rc;
    if (type && strcmp(type, "Split") == 0)
        rc = read_split(r, pt, where, st);
    else if (type && strcmp(type, "ByteLevel") == 0)
        rc = read_bytelevel(r, pt, where, st);
    else
        return mtp_error_set("%s: %s.type: '%s' not supported (only Split and ByteLevel)",
                             r->path, where, type ? type : "missing");
    if (rc == MTP_OK)
        tok->n_step++;
    return rc;
}

static int read_pretokenizer(struct tok_reader *r, json_t *root)
{
    struct mtp_tokenizer *tok = r->tok;
    json_t *pt = json_object_get(root, "pre_tokenizer");
    const char *type = type_of(pt);
    json_t *list = json_object_get(pt, "pretokenizers");
    if (type && strcmp(type, "Sequence") == 0 && json_is_array(list)) {
        tok->step = mtp_xcalloc(json_array_size(list) + 1, sizeof *tok->step);
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item)
        {
            char where[64];
            snprintf(where, sizeof where, "pre_tokenizer.pretokenizers[%zu]", i);
            if (read_step(r, item, where))
                return MTP_ERR;
        }
    } else if (pt && !json_is_null(pt)) {
        tok->step = mtp_xcalloc(1, sizeof *tok->step);
        if (read_step(r, pt, "pre_tokenizer"))
            return MTP_ERR;
    }
    if (tok->n_step == 0 || tok->step[tok->n_step - 1].kind != MTP_TOK_STEP_BYTELEVEL)
        return mtp_error_set("%s: pre_tokenizer: no ByteLevel step (only byte-level BPE is "
                             "supported)",
                             r->path);
    return MTP_OK;
}

static int read_all(struct tok_reader *r, json_t *root)
{
    struct mtp_tokenizer *tok = r->tok;
    if (read_model(r, root) || read_normalizer(r, root) || read_decoder(r, root) ||
        read_pretokenizer(r, root))
        return MTP_ERR;
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab");
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added))
        return mtp_error_set("%s: added_tokens: not a list", r->path);
    if (!added)
        added = json_array(); /* owned by nothing: freed below */
    int max_id;
    int rc = read_max_id(r, vocab, added, &max_id);
    if (rc == MTP_OK) {
        tok->vocab_size = max_id + 1;
        tok->piece = mtp_xcalloc((size_t)tok->vocab_size + 1, sizeof *tok->piece);
        rc = read_vocab(r, vocab);
    }
    if (rc == MTP_OK)
        rc = read_merges(r, json_object_get(model, "merges"));
    if (rc == MTP_OK)
        rc = read_added(r, added);
    if (!json_object_get(root, "added_tokens"))
        json_decref(added);
    if (rc == MTP_OK && tok->n_added > 1)
        qsort(tok->added, (size_t)tok->n_added, sizeof *tok->added, added_cmp);
    return rc;
}

int mtp_tokenizer_load(const char *path, struct mtp_tokenizer **out)
{
    *out = NULL;
    json_t *root = mtp_input_load_json(path, 0); /* regular files only: a FIFO cannot block */
    if (!root)
        return mtp_error_wrap("cannot read tokenizer: ");
    struct mtp_tokenizer *tok = mtp_xcalloc(1, sizeof *tok);
    tok->path = mtp_xstrdup(path);
    tok->bos_id = tok->eos_id = -1;
    for (int b = 0; b < 256; b++)
        tok->byte_id[b] = -1;
    struct tok_reader r = {.path = path, .tok = tok};
    reader_init_bytemap(&r);
    int rc = json_is_object(root) ? read_all(&r, root)
                                  : mtp_error_set("%s: not a JSON object", path);
    json_decref(root);
    if (rc != MTP_OK) {
        mtp_tokenizer_free(tok);
        return MTP_ERR;
    }
    *out = tok;
    return MTP_OK;
}

void mtp_tokenizer_free(struct mtp_tokenizer *tok)
{
    if (!tok)
        return;
    for (int i = 0; i < tok->vocab_size; i++)
        free(tok->piece[i].bytes);
    free(tok->piece);
    mtp_tok_strmap_free(&tok->vocab);
    mtp_tok_pairmap_free(&tok->merges);
    free(tok->added);
    for (int i = 0; i < tok->n_step; i++)
        pcre2_code_free(tok->step[i].re);
    free(tok->step);
    free(tok->path);
    free(tok);
}

const char *mtp_tokenizer_token_bytes(const struct mtp_tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->vocab_size || tok->piece[id].kind == MTP_TOK_PIECE_NONE)
        return NULL;
    *len = tok->piece[id].len;
    return tok->piece[id].bytes;
}

int32_t mtp_tokenizer_token_id(const struct mtp_tokenizer *tok, const char *content)
{
    size_t len = strlen(content);
    for (int i = 0; i < tok->n_added; i++)
        if (tok->added[i].len == len && memcmp(tok->added[i].content, content, len) == 0)
            return tok->added[i].id;
    struct tok_reader r = {.path = tok->path, .tok = (struct mtp_tokenizer *)tok};
    reader_init_bytemap(&r);
    return vocab_lookup(&r, content, len);
}

bool mtp_tokenizer_is_special(const struct mtp_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->vocab_size && tok->piece[id].kind == MTP_TOK_PIECE_SPECIAL;
}

int32_t mtp_tokenizer_bos_id(const struct mtp_tokenizer *tok) { return tok->bos_id; }

int32_t mtp_tokenizer_eos_id(const struct mtp_tokenizer *tok) { return tok->eos_id; }

int mtp_tokenizer_vocab_size(const struct mtp_tokenizer *tok) { return tok->vocab_size; }
