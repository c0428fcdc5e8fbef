/*
 * chat_template.c - find a chat template and render it through
 * experiments/render_chat_template.py (see chat_template.h).
 *
 * The renderer is a child process: its stdin and stderr are temporary files
 * (no pipe can fill up or raise SIGPIPE), its stdout a pipe read to the end.
 */
#include "chat_template.h"

#include <errno.h>    /* defines: errno */
#include <jansson.h>  /* defines: json_t */
#include <stdio.h>    /* defines: tmpfile */
#include <stdlib.h>   /* defines: free, getenv */
#include <string.h>   /* defines: strcmp, strerror */
#include <sys/stat.h> /* defines: stat */
#include <sys/wait.h> /* defines: waitpid */
#include <unistd.h>   /* defines: fork, execvp, pipe */

#include "../core/error.h"

#define RENDERER MTP_SOURCE_DIR "/experiments/render_chat_template.py"

static char *join_path(const char *dir, const char *file)
{
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = mtp_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, file);
    return p;
}

/* The whole file PATH as a new string; NULL with errno when unreadable. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = mtp_xmalloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap)
            buf = mtp_xrealloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* tokenizer_config.json's chat_template: a string, or the "default" entry of
 * a list of {name, template} (transformers' choice without a template name). */
static const char *config_template(json_t *cfg)
{
    json_t *v = json_object_get(cfg, "chat_template");
    if (json_is_string(v))
        return json_string_value(v);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        json_t *name = json_object_get(e, "name"), *tpl = json_object_get(e, "template");
        if (json_is_string(name) && !strcmp(json_string_value(name), "default") &&
            json_is_string(tpl))
            return json_string_value(tpl);
    }
    return NULL;
}

static int load_model_template(const char *model_dir, json_t *cfg, struct mtp_chat_template *t)
{
    char *jinja = join_path(model_dir, "chat_template.jinja");
    char *cfg_path = join_path(model_dir, "tokenizer_config.json");
    int rc = MTP_OK;
    if ((t->text = read_text(jinja))) {
        t->name = mtp_xstrdup(jinja);
    } else if (cfg && config_template(cfg)) {
        t->text = mtp_xstrdup(config_template(cfg));
        size_t n = strlen(cfg_path) + 32;
        t->name = mtp_xmalloc(n);
        snprintf(t->name, n, "%s (key 'chat_template')", cfg_path);
    } else {
        rc = mtp_error_set("chat_template \"model\": %s has no chat template: looked in %s "
                           "(absent) and %s (%s)",
                           model_dir, jinja, cfg_path,
                           cfg ? "no string 'chat_template', nor a list entry named "
                                 "\"default\""
                               : "absent");
    }
    free(jinja);
    free(cfg_path);
    return rc;
}

/* A special token of tokenizer_config.json: a string or {"content": ...}. */
static const char *config_token(json_t *cfg, const char *key)
{
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void set_token_from_id(json_t *obj, const char *key, const struct mtp_tokenizer *tok,
                              int32_t id)
{
    size_t len;
    const char *bytes = id >= 0 ? mtp_tokenizer_token_bytes(tok, id, &len) : NULL;
    if (bytes)
        json_object_set_new(obj, key, json_stringn(bytes, len));
}

static char *special_tokens_json(json_t *cfg, const struct mtp_tokenizer *tok)
{
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    json_t *obj = json_object();
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (cfg && config_token(cfg, keys[i]))
            json_object_set_new(obj, keys[i], json_string(config_token(cfg, keys[i])));
    if (!json_object_get(obj, "bos_token"))
        set_token_from_id(obj, "bos_token", tok, mtp_tokenizer_bos_id(tok));
    if (!json_object_get(obj, "eos_token"))
        set_token_from_id(obj, "eos_token", tok, mtp_tokenizer_eos_id(tok));
    char *s = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return s;
}

int mtp_chat_template_load(const char *value, const char *model_dir,
                           const struct mtp_tokenizer *tok, struct mtp_chat_template *out)
{
    memset(out, 0, sizeof *out);
    if (!strcmp(value, "none")) {
        out->none = true;
        out->name = mtp_xstrdup("none");
        return MTP_OK;
    }
    char *cfg_path = join_path(model_dir, "tokenizer_config.json");
    json_error_t jerr;
    struct stat st;
    json_t *cfg = stat(cfg_path, &st) == 0 ? json_load_file(cfg_path, 0, &jerr) : NULL;
    int rc = MTP_OK;
    if (stat(cfg_path, &st) == 0 && !json_is_object(cfg))
        rc = mtp_error_set("chat_template: %s: expected a JSON object, found %s", cfg_path,
                           cfg ? "another JSON value" : jerr.text);
    else if (!strcmp(value, "model"))
        rc = load_model_template(model_dir, cfg, out);
    else if (!(out->text = read_text(value)))
        rc = mtp_error_set("chat_template: cannot read %s: %s", value, strerror(errno));
    else
        out->name = mtp_xstrdup(value);
    if (rc == MTP_OK)
        out->special_json = special_tokens_json(cfg, tok);
    json_decref(cfg);
    free(cfg_path);
    return rc;
}

void mtp_chat_template_free(struct mtp_chat_template *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->text);
    free(t->special_json);
    memset(t, 0, sizeof *t);
}

/* The renderer's request: {"template", "messages", "add_generation_prompt",
 * "special_tokens"} into a temporary file, rewound. */
static FILE *write_request(const struct mtp_chat_template *t, const struct mtp_chat_message *m,
                           int n)
{
    json_t *req = json_object(), *msgs = json_array();
    bool ok = true;
    for (int i = 0; i < n; i++) {
        json_t *msg = json_object();
        json_t *content = json_string(m[i].content); /* NULL unless valid UTF-8 */
        ok = ok && content;
        json_object_set_new(msg, "role", json_string(m[i].role));
        json_object_set_new(msg, "content", content ? content : json_null());
        json_array_append_new(msgs, msg);
    }
    if (!ok) {
        json_decref(req);
        json_decref(msgs);
        errno = EILSEQ;
        return NULL;
    }
    json_object_set_new(req, "template", json_string(t->text));
    json_object_set_new(req, "messages", msgs);
    json_object_set_new(req, "add_generation_prompt", json_true());
    json_object_set_new(req, "special_tokens", json_loads(t->special_json, 0, NULL));
    FILE *f = tmpfile();
    if (f && (json_dumpf(req, f, JSON_COMPACT) != 0 || fflush(f) != 0))
        fclose(f), f = NULL;
    json_decref(req);
    if (f)
        rewind(f);
    return f;
}

/* Run the renderer with stdin IN and stderr ERR; its stdout into *TEXT. */
static int run_renderer(FILE *in, FILE *err, char **text, size_t *len, int *status)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        const char *py = getenv("MTP_PYTHON");
        py = py && *py ? py : "python3";
        dup2(fileno(in), 0);
        dup2(fds[1], 1);
        dup2(fileno(err), 2);
        close(fds[0]);
        close(fds[1]);
        execlp(py, py, RENDERER, (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", py, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 4096, n = 0;
    char *buf = mtp_xmalloc(cap);
    ssize_t got;
    while ((got = read(fds[0], buf + n, cap - n - 1)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        n += (size_t)got;
        if (n + 1 == cap)
            buf = mtp_xrealloc(buf, cap *= 2);
    }
    close(fds[0]);
    buf[n] = '\0';
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
    *text = buf;
    *len = n;
    return 0;
}

/* The renderer's one-line message (the last non-empty line of ERR). */
static void last_line(FILE *err, char *out, size_t cap)
{
    char line[1024];
    snprintf(out, cap, "the renderer failed without a message");
    rewind(err);
    while (fgets(line, sizeof line, err)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            snprintf(out, cap, "%s", line);
    }
}

int mtp_chat_template_render(const struct mtp_chat_template *t,
                             const struct mtp_chat_message *msgs, int n, char **text,
                             size_t *len)
{
    *text = NULL;
    *len = 0;
    FILE *in = write_request(t, msgs, n);
    bool bad_text = !in && errno == EILSEQ;
    FILE *err = tmpfile();
    int status = 0, rc = MTP_OK;
    if (bad_text) {
        rc = mtp_error_set("chat template %s: a message is not valid UTF-8", t->name);
    } else if (!in || !err) {
        rc = mtp_error_set("chat template %s: cannot create a temporary file: %s", t->name,
                           strerror(errno));
    } else if (run_renderer(in, err, text, len, &status) != 0) {
        rc = mtp_error_set("chat template %s: cannot start the renderer %s: %s", t->name,
                           RENDERER, strerror(errno));
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char msg[1024];
        last_line(err, msg, sizeof msg);
        rc = mtp_error_set("chat template %s: %s", t->name, msg);
    }
    if (rc) {
        free(*text);
        *text = NULL;
        *len = 0;
    }
    if (in)
        fclose(in);
    if (err)
        fclose(err);
    return rc;
}
