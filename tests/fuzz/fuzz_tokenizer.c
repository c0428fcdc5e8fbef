/*
 * fuzz_tokenizer.c - libFuzzer target: a tokenizer.json through
 * mtp_tokenizer_load, then encode and decode a text with it.
 *
 * Input: tokenizer JSON, optionally followed by a NUL byte and the text to
 * encode; without the NUL a fixed text with multi-byte characters is used
 * (a regex from the file must survive any UTF-8, see issue 10, case 1).
 * Encoding then decoding must give the text back for valid UTF-8 without
 * special-token strings, but byte-level tokenizers are not all reversible
 * (normalizers), so only crashes count.
 */
#include <stdlib.h> /* defines: free */
#include <string.h> /* defines: memchr, strlen */

#include "engine/tokenizer.h" /* defines: mtp_tokenizer_* */
#include "fuzz.h"

static const char DEFAULT_TEXT[] = "def f(x):\n    return x  # héllo wörld, 日本語, emoji \xf0\x9f\x98\x80 123";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : DEFAULT_TEXT;
    size_t text_len = nul ? size - json_len - 1 : strlen(DEFAULT_TEXT);
    const char *path = fuzz_scratch_file(data, json_len, 0);
    struct mtp_tokenizer *tok = NULL;
    if (mtp_tokenizer_load(path, &tok) != 0)
        return 0;
    int32_t *ids = NULL;
    int n = 0;
    if (mtp_tokenizer_encode(tok, text, text_len, false, &ids, &n) == 0) {
        size_t len = 0;
        free(mtp_tokenizer_decode(tok, ids, n, false, &len));
    }
    free(ids);
    mtp_tokenizer_free(tok);
    return 0;
}
