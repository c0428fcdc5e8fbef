/*
 * tokenizer_bpe.c - BPE merges, encode and decode, and the hash maps they use.
 *
 * BPE on one pre-token is the O(n log n) form `tokenizers` uses: the symbols
 * form a linked list, candidate pairs sit in a min-heap ordered by (merge rank,
 * position), and a popped pair is applied only if both symbols are still there
 * and still form that merge. Ties in rank go to the leftmost pair, so "aaa"
 * with the merge (a, a) gives "aa" + "a", as in `tokenizers`.
 *
 * Words repeat a lot within a text, so each encode call keeps its own word ->
 * ids cache. It is per call rather than per tokenizer so that a loaded
 * tokenizer stays immutable and needs no lock.
 */
#include "tokenizer_impl.h"

#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memcmp, memcpy */

#include "../core/error.h"

/* ---- maps ------------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static size_t pow2_at_least(size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    return cap;
}

void mtp_tok_strmap_init(struct mtp_tok_strmap *m, size_t n)
{
    m->cap = pow2_at_least(n);
    m->count = 0;
    m->key = mtp_xcalloc(m->cap, sizeof *m->key);
    m->klen = mtp_xcalloc(m->cap, sizeof *m->klen);
    m->val = mtp_xcalloc(m->cap, sizeof *m->val);
}

void mtp_tok_strmap_free(struct mtp_tok_strmap *m)
{
    free(m->key);
    free(m->klen);
    free(m->val);
    *m = (struct mtp_tok_strmap){0};
}

/* Slot of KEY, or the empty slot where it would go. */
static size_t strmap_slot(const struct mtp_tok_strmap *m, const char *key, size_t klen)
{
    size_t i = hash_bytes(key, klen) & (m->cap - 1);
    while (m->key[i] && (m->klen[i] != klen || memcmp(m->key[i], key, klen) != 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void strmap_grow(struct mtp_tok_strmap *m)
{
    struct mtp_tok_strmap old = *m;
    mtp_tok_strmap_init(m, old.cap);
    for (size_t i = 0; i < old.cap; i++)
        if (old.key[i])
            mtp_tok_strmap_put(m, old.key[i], old.klen[i], old.val[i]);
    mtp_tok_strmap_free(&old);
}

bool mtp_tok_strmap_put(struct mtp_tok_strmap *m, const char *key, size_t klen, int32_t val)
{
    if (2 * (m->count + 1) > m->cap)
        strmap_grow(m);
    size_t i = strmap_slot(m, key, klen);
    if (m->key[i])
        return false;
    m->key[i] = key;
    m->klen[i] = klen;
    m->val[i] = val;
    m->count++;
    return true;
}

int32_t mtp_tok_strmap_get(const struct mtp_tok_strmap *m, const char *key, size_t klen)
{
    if (m->cap == 0)
        return -1;
    size_t i = strmap_slot(m, key, klen);
    return m->key[i] ? m->val[i] : -1;
}

void mtp_tok_pairmap_init(struct mtp_tok_pairmap *m, size_t n)
{
    m->cap = pow2_at_least(n);
    m->count = 0;
    m->key = mtp_xcalloc(m->cap, sizeof *m->key);
    m->rank = mtp_xcalloc(m->cap, sizeof *m->rank);
    m->merged = mtp_xcalloc(m->cap, sizeof *m->merged);
}

void mtp_tok_pairmap_free(struct mtp_tok_pairmap *m)
{
    free(m->key);
    free(m->rank);
    free(m->merged);
    *m = (struct mtp_tok_pairmap){0};
}

static size_t pairmap_slot(const struct mtp_tok_pairmap *m, uint64_t key)
{
    size_t i = hash_u64(key) & (m->cap - 1);
    while (m->key[i] && m->key[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static uint64_t pair_key(int32_t a, int32_t b)
{
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1; /* +1: 0 marks an empty slot */
}

void mtp_tok_pairmap_put(struct mtp_tok_pairmap *m, int32_t a, int32_t b, int32_t rank,
                         int32_t merged)
{
    if (2 * (m->count + 1) > m->cap) {
        struct mtp_tok_pairmap old = *m;
        mtp_tok_pairmap_init(m, old.cap);
        for (size_t i = 0; i < old.cap; i++)
            if (old.key[i]) {
                size_t j = pairmap_slot(m, old.key[i]);
                m->key[j] = old.key[i], m->rank[j] = old.rank[i], m->merged[j] = old.merged[i];
                m->count++;
            }
        mtp_tok_pairmap_free(&old);
    }
    uint64_t key = pair_key(a, b);
    size_t i = pairmap_slot(m, key);
    m->count += m->key[i] == 0;
    m->key[i] = key;
    m->rank[i] = rank;
    m->merged[i] = merged;
}

int32_t mtp_tok_pairmap_get(const struct mtp_tok_pairmap *m, int32_t a, int32_t b,
                            int32_t *merged)
{
    if (m->cap == 0)
        return -1;
    size_t i = pairmap_slot(m, pair_key(a, b));
    if (!m->key[i])
        return -1;
    *merged = m->merged[i];
    return m->rank[i];
}

/* ---- growable id array ------------------------------------------------------------------ */

struct id_buf {
    int32_t *v;
    size_t n, cap;
};

static void ids_push(struct id_buf *b, int32_t id)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->v = mtp_xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n++] = id;
}

/* ---- BPE on one word ---------------------------------------------------------------------- */

struct bpe_sym {
    int32_t id;
    int prev, next; /* -1 at the ends */
    bool alive;
};

struct bpe_cand {
    int32_t rank, merged;
    int pos; /* left symbol */
};

struct bpe_heap {
    struct bpe_cand *v;
    int n, cap;
};

static bool cand_less(const struct bpe_cand *a, const struct bpe_cand *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(struct bpe_heap *h, struct bpe_cand c)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->v = mtp_xrealloc(h->v, (size_t)h->cap * sizeof *h->v);
    }
    int i = h->n++;
    while (i > 0 && cand_less(&c, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = c;
}

static struct bpe_cand heap_pop(struct bpe_heap *h)
{
    struct bpe_cand top = h->v[0], last = h->v[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && cand_less(&h->v[c + 1], &h->v[c]))
            c++;
        if (!cand_less(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0)
        h->v[i] = last;
    return top;
}

/* Scratch reused across the words of one encode call. */
struct bpe_scratch {
    struct bpe_sym *sym;
    int cap;
    struct bpe_heap heap;
};

static void bpe_consider(const struct mtp_tokenizer *tok, struct bpe_scratch *sc, int pos)
{
    if (pos < 0 || sc->sym[pos].next < 0)
        return;
    int next = sc->sym[pos].next;
    int32_t merged;
    int32_t rank = mtp_tok_pairmap_get(&tok->merges, sc->sym[pos].id, sc->sym[next].id, &merged);
    if (rank >= 0)
        heap_push(&sc->heap, (struct bpe_cand){rank, merged, pos});
}

/* Initial symbols: one per byte. A byte missing from the vocab is dropped, as
 * `tokenizers` does without an unk token (a byte-level vocab has all 256). */
static int bpe_init(const struct mtp_tokenizer *tok, struct bpe_scratch *sc, const char *w,
                    size_t len)
{
    if ((int)len > sc->cap) {
        sc->cap = (int)len;
        sc->sym = mtp_xrealloc(sc->sym, (size_t)sc->cap * sizeof *sc->sym);
    }
    int m = 0;
    for (size_t i = 0; i < len; i++) {
        int32_t id = tok->byte_id[(unsigned char)w[i]];
        if (id >= 0)
            sc->sym[m] = (struct bpe_sym){id, m - 1, m + 1, true}, m++;
    }
    if (m > 0)
        sc->sym[m - 1].next = -1;
    return m;
}

/* Merge the bytes of W by rank and append the ids to OUT. */
static void bpe_word(const struct mtp_tokenizer *tok, struct bpe_scratch *sc, const char *w,
                     size_t len, struct id_buf *out)
{
    int m = bpe_init(tok, sc, w, len);
    sc->heap.n = 0;
    for (int i = 0; i + 1 < m; i++)
        bpe_consider(tok, sc, i);
    while (sc->heap.n > 0) {
        struct bpe_cand c = heap_pop(&sc->heap);
        struct bpe_sym *left = &sc->sym[c.pos];
        if (!left->alive || left->next < 0)
            continue;
        int32_t merged;
        if (mtp_tok_pairmap_get(&tok->merges, left->id, sc->sym[left->next].id, &merged) < 0 ||
            merged != c.merged)
            continue; /* stale: one side has merged with something else since */
        struct bpe_sym *right = &sc->sym[left->next];
        left->id = merged;
        right->alive = false;
        left->next = right->next;
        if (right->next >= 0)
            sc->sym[right->next].prev = c.pos;
        bpe_consider(tok, sc, left->prev);
        bpe_consider(tok, sc, c.pos);
    }
    for (int i = m > 0 ? 0 : -1; i >= 0; i = sc->sym[i].next)
        ids_push(out, sc->sym[i].id);
}

/* ---- encode --------------------------------------------------------------------------------- */

/* Per-call state: output, BPE scratch and the word cache (word -> entry index;
 * entry e's ids are cache_ids[cache_off[e] .. cache_off[e + 1])). */
struct encoder {
    const struct mtp_tokenizer *tok;
    struct id_buf out;
    struct bpe_scratch sc;
    struct mtp_tok_strmap cache;
    struct id_buf cache_ids;
    struct id_buf cache_off; /* offsets into cache_ids, one more than entries */
    struct mtp_tok_words words;
};

static void encode_word(struct encoder *e, const char *w, size_t len)
{
    const struct mtp_tokenizer *tok = e->tok;
    int32_t id = -1;
    if (tok->ignore_merges || len == 1)
        id = mtp_tok_strmap_get(&tok->vocab, w, len);
    if (id >= 0) {
        ids_push(&e->out, id);
        return;
    }
    int32_t entry = mtp_tok_strmap_get(&e->cache, w, len);
    if (entry < 0) {
        bpe_word(tok, &e->sc, w, len, &e->cache_ids);
        entry = (int32_t)e->cache_off.n - 1;
        ids_push(&e->cache_off, (int32_t)e->cache_ids.n);
        mtp_tok_strmap_put(&e->cache, w, len, entry);
    }
    for (int32_t i = e->cache_off.v[entry]; i < e->cache_off.v[entry + 1]; i++)
        ids_push(&e->out, e->cache_ids.v[i]);
}

/* Pre-tokenize and BPE one stretch of text that holds no added token. */
static int encode_segment(struct encoder *e, const char *text, size_t len)
{
    mtp_tok_words_clear(&e->words);
    if (mtp_tok_pretokenize(e->tok, text, len, &e->words))
        return MTP_ERR;
    for (int i = 0; i < e->words.n; i++)
        encode_word(e, e->words.w[i].p, e->words.w[i].len);
    return MTP_OK;
}

static int encode_text(struct encoder *e, const char *text, size_t len)
{
    size_t seg = 0;
    for (size_t i = 0; i < len;) {
        size_t mlen;
        int32_t id = mtp_tok_added_match(e->tok, text + i, len - i, &mlen);
        if (id < 0) {
            i++;
            continue;
        }
        if (encode_segment(e, text + seg, i - seg))
            return MTP_ERR;
        ids_push(&e->out, id);
        i += mlen;
        seg = i;
    }
    return encode_segment(e, text + seg, len - seg);
}

int mtp_tokenizer_encode(const struct mtp_tokenizer *tok, const char *text, size_t len,
                         bool add_bos, int32_t **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    size_t bad = mtp_tok_utf8_check(text, len);
    if (bad < len)
        return mtp_error_set("%s: encode: the text is not valid UTF-8 (byte offset %zu, byte "
                             "0x%02x)",
                             tok->path, bad, (unsigned char)text[bad]);
    if (add_bos && tok->bos_id < 0)
        return mtp_error_set("%s: encode: BOS requested but the tokenizer has no BOS token",
                             tok->path);
    struct encoder e = {.tok = tok};
    mtp_tok_strmap_init(&e.cache, 256);
    ids_push(&e.cache_off, 0);
    if (add_bos)
        ids_push(&e.out, tok->bos_id);
    int rc = encode_text(&e, text, len);
    if (e.out.n > (size_t)INT32_MAX)
        rc = mtp_error_set("%s: encode: more than 2^31 tokens", tok->path);
    mtp_tok_strmap_free(&e.cache);
    free(e.cache_ids.v);
    free(e.cache_off.v);
    free(e.sc.sym);
    free(e.sc.heap.v);
    mtp_tok_words_free(&e.words);
    if (rc != MTP_OK) {
        free(e.out.v);
        return MTP_ERR;
    }
    *ids = e.out.v ? e.out.v : mtp_xmalloc(sizeof **ids);
    *n = (int)e.out.n;
    return MTP_OK;
}

/* ---- decode --------------------------------------------------------------------------------- */

char *mtp_tokenizer_decode(const struct mtp_tokenizer *tok, const int32_t *ids, int n,
                           bool skip_special, size_t *len_out)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= tok->vocab_size ||
            tok->piece[ids[i]].kind == MTP_TOK_PIECE_NONE) {
            mtp_error_set("%s: decode: id %d (position %d) is not in the vocabulary", tok->path,
                          ids[i], i);
            return NULL;
        }
        total += tok->piece[ids[i]].len;
    }
    char *s = mtp_xmalloc(total + 1), *p = s;
    for (int i = 0; i < n; i++) {
        const struct mtp_tok_piece *pc = &tok->piece[ids[i]];
        if (skip_special && pc->kind == MTP_TOK_PIECE_SPECIAL)
            continue;
        memcpy(p, pc->bytes, pc->len);
        p += pc->len;
    }
    *p = '\0';
    if (len_out)
        *len_out = (size_t)(p - s);
    return s;
}
