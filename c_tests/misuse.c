/*
 * misuse.c: libc_embed_runtime under hostile callers. Every case runs in its own
 * fork()ed child, so one crash cannot hide the others, and checks what the header
 * (include/c_embed_runtime.h) documents for that misuse.
 *
 *   misuse MODEL_DIR REAL_MODEL [FILTER]
 *
 *   MODEL_DIR   the models of tools/gen_test_models.py (tiny_bert.onnx is used)
 *   REAL_MODEL  a real model file (all-MiniLM-L6-v2): truncated copies are made of it
 *   FILTER      run only the cases whose name contains FILTER
 *
 * A case fails if its child dies from a signal (a crash, or SIGALRM after
 * CASE_TIMEOUT seconds), exits non-zero, or fails a check (each failed check
 * prints file:line [case]: what). The run ends with exactly one line
 * "N cases, M failed" and exits 1 if M > 0.
 *
 * The parent never calls the library: each child loads ONNX Runtime itself, so no
 * child inherits another's threads or state.
 */
#define _POSIX_C_SOURCE 200809L
#define TEST_SUPPORT_CHILD_CASES

#include "c_embed_runtime.h"
#include "contract_errors.h"
#include "test_support.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- checks of documented errors (in the child) ------------------------------- */

/* An embed error as documented: non-NULL, non-empty, with a documented prefix. */
static int check_embed_error_at(where_t at, const char *what, const char *error)
{
    int ok = error != NULL && error[0] != '\0' &&
             (strncmp(error, ORT_ERROR, sizeof ORT_ERROR - 1) == 0 ||
              strncmp(error, STD_ERROR, sizeof STD_ERROR - 1) == 0 ||
              strncmp(error, UNKNOWN_EMBED_ERROR, sizeof UNKNOWN_EMBED_ERROR - 1) == 0);
    return record(at, ok, "%s is \"%s\", expected ort_error:/std_error:/unknown_error", what,
                  shown(error));
}

/* A create error as documented: non-NULL, with a documented prefix. */
static int check_create_error_at(where_t at, const char *what, const char *error)
{
    int ok = error != NULL &&
             (strncmp(error, STD_CREATE_ERROR, sizeof STD_CREATE_ERROR - 1) == 0 ||
              strncmp(error, ORT_CREATE_ERROR, sizeof ORT_CREATE_ERROR - 1) == 0 ||
              strncmp(error, UNKNOWN_CREATE_ERROR, sizeof UNKNOWN_CREATE_ERROR - 1) == 0);
    return record(at, ok,
                  "%s is \"%s\", expected std_create_error:/ort_create_error:/unknown_create_error",
                  what, shown(error));
}

#define CHECK_EMBED_ERROR(error) check_embed_error_at(HERE, #error, (error))
#define CHECK_CREATE_ERROR(error) check_create_error_at(HERE, #error, (error))

/* ---- test data --------------------------------------------------------------------- */

enum { SEQ = 16, DIM = 24, VOCAB = TEST_VOCAB, ROWS = 2 };


static const char *g_model_dir;
static const char *g_real_model;

static void tiny_bert_path(char *buf, size_t size)
{
    snprintf(buf, size, "%s/tiny_bert.onnx", g_model_dir);
}

/* Finite and of L2 norm 1 within 1e-5 (compared squared: no libm). */
static int is_unit(const float *v, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double x = v[i];
        if (x != x || x > 1e30 || x < -1e30) {
            return 0;
        }
        sum += x * x;
    }
    return sum >= (1 - 1e-5) * (1 - 1e-5) && sum <= (1 + 1e-5) * (1 + 1e-5);
}

/* Opens tiny_bert on the CPU; a failure is a failed check and ends the case. */
static void *open_tiny_at(where_t at, int64_t seq_len, int32_t out_dim, int32_t threads)
{
    char path[4096];
    tiny_bert_path(path, sizeof path);
    void *h = c_embed_runtime_create(path, "CPU", seq_len, out_dim, threads, 1);
    if (!record(at, h != NULL, "create(tiny_bert, seq_len %lld, out_dim %d, threads %d) failed: "
                               "\"%s\"",
                (long long)seq_len, (int)out_dim, (int)threads,
                shown(c_embed_runtime_last_create_error()))) {
        exit(1);
    }
    check_str_at(at, STR_EXACT, "last_create_error after a success",
                 c_embed_runtime_last_create_error(), "");
    return h;
}

#define OPEN_TINY() open_tiny_at(HERE, SEQ, DIM, 1)

/* A good embed (in-vocabulary ids, n = the handle's seq_len) succeeds with last_error "". */
static void good_embed_at(where_t at, void *h)
{
    size_t n = (size_t)c_embed_runtime_seq_len(h), dim = (size_t)c_embed_runtime_output_dim(h);
    int64_t *ids = make_ids(n, 7);
    float *out = new_vec(dim);
    int32_t rc = c_embed_runtime_embed(h, ids, NULL, NULL, out);
    record(at, rc == 1, "good embed returned %d (last_error \"%s\")", rc,
           shown(c_embed_runtime_last_error(h)));
    check_str_at(at, STR_EXACT, "last_error after a good embed", c_embed_runtime_last_error(h), "");
    record(at, rc != 1 || is_unit(out, dim), "good embed's vector is not unit length");
    free(out);
    free(ids);
}

#define GOOD_EMBED(h) good_embed_at(HERE, (h))

/* A live handle answers as one: CPU, the sizes it was created with, embeds. */
static void check_live_at(where_t at, void *h)
{
    check_str_at(at, STR_EXACT, "selected_device of a live handle",
                 c_embed_runtime_selected_device(h), "CPU");
    check_int_at(at, "seq_len of a live handle", c_embed_runtime_seq_len(h), SEQ);
    check_int_at(at, "output_dim of a live handle", c_embed_runtime_output_dim(h), DIM);
    good_embed_at(at, h);
}

#define CHECK_LIVE(h) check_live_at(HERE, (h))

/* ---- cases: handles ----------------------------------------------------------------- */

typedef child_case misuse_case;

/* Every exported function on a destroyed handle; a new handle is not the old one. */
static void case_destroyed_handle(int64_t unused)
{
    (void)unused;
    void *h = OPEN_TINY();
    CHECK_LIVE(h);
    c_embed_runtime_destroy(h);
    CHECK_INVALID_HANDLE(h);
    void *again = OPEN_TINY();
    CHECK(again != h); /* tokens are not reused... */
    CHECK_INVALID_HANDLE(h); /* ...so the old value stays invalid */
    CHECK_LIVE(again);
    c_embed_runtime_destroy(again);
    CHECK_INVALID_HANDLE(again);
}

/* A second destroy is ignored and does not touch other handles. */
static void case_double_destroy(int64_t unused)
{
    (void)unused;
    void *a = OPEN_TINY(), *b = OPEN_TINY();
    c_embed_runtime_destroy(a);
    c_embed_runtime_destroy(a);
    c_embed_runtime_destroy(NULL);
    c_embed_runtime_destroy(a);
    CHECK_LIVE(b);
    CHECK_INVALID_HANDLE(a);
    c_embed_runtime_destroy(b);
    c_embed_runtime_destroy(b);
    CHECK_INVALID_HANDLE(b);
}

/* Fills n bytes pseudo-randomly (a fixed seed: runs are reproducible). */
static void fill_random(unsigned char *bytes, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        bytes[i] = (unsigned char)(seed >> 24);
    }
}

/*
 * Pointers to heap memory as handles: random bytes, and a block holding copies
 * of a live handle's value (a library that dereferenced its argument would find
 * a "handle" there). Nothing is read: the blocks are unchanged afterwards.
 */
static void case_heap_random_handle(int64_t unused)
{
    (void)unused;
    enum { BLOCK = 4096 };
    unsigned char *block = xmalloc(BLOCK), *copy = xmalloc(BLOCK);
    fill_random(block, BLOCK, 0xC0FFEEu);
    memcpy(copy, block, BLOCK);
    CHECK_INVALID_HANDLE(block);
    CHECK_INVALID_HANDLE(block + 8);
    CHECK_INVALID_HANDLE(block + 1); /* misaligned too */

    void *live = OPEN_TINY();
    CHECK_INVALID_HANDLE(block);
    void **tokens = xmalloc(BLOCK);
    for (size_t i = 0; i < BLOCK / sizeof *tokens; i++) {
        tokens[i] = live;
    }
    CHECK_INVALID_HANDLE(tokens);
    CHECK_INVALID_HANDLE(&tokens[1]);
    CHECK(memcmp(block, copy, BLOCK) == 0); /* destroy() of it freed nothing, wrote nothing */
    CHECK_LIVE(live); /* the "copies" did not destroy the real one */
    c_embed_runtime_destroy(live);
    free(tokens);
    free(copy);
    free(block);
}

/*
 * A wild value as a handle, before any handle exists (the registry is empty)
 * and while a live handle exists; the live handle keeps working.
 */
static void case_wild(int64_t value)
{
    int on_stack = 0;
    void *h = value == 0 ? (void *)&on_stack : (void *)(uintptr_t)(uint64_t)value;
    CHECK_INVALID_HANDLE(h);
    void *live = OPEN_TINY();
    CHECK_INVALID_HANDLE(h);
    CHECK_LIVE(live);
    c_embed_runtime_destroy(live);
    CHECK_INVALID_HANDLE(h);
}

/* Values next to a live handle's are not handles. */
static void case_near_live_handle(int64_t unused)
{
    (void)unused;
    void *live = OPEN_TINY();
    uintptr_t v = (uintptr_t)live;
    const uintptr_t near[] = {v + 1, v - 1, v + 8, v ^ ((uintptr_t)1 << 40), ~v, v << 1};
    for (size_t i = 0; i < sizeof near / sizeof near[0]; i++) {
        if (near[i] != v) {
            CHECK_INVALID_HANDLE((void *)near[i]);
        }
    }
    CHECK_LIVE(live);
    c_embed_runtime_destroy(live);
}

/* ---- cases: token arrays -------------------------------------------------------------- */

/*
 * An out-of-vocabulary id: embed and embed_batch return 0 with an ort_error and
 * leave out_vec alone; a good embed on the same handle then succeeds.
 */
static void case_token_id(int64_t id)
{
    void *h = OPEN_TINY();
    for (int where = 0; where < 3; where++) {
        int64_t *ids = make_ids(SEQ, 3);
        if (where == 2) {
            for (size_t i = 0; i < SEQ; i++) {
                ids[i] = id;
            }
        } else {
            ids[where == 0 ? 0 : SEQ - 1] = id;
        }
        float *out = new_vec(DIM);
        CHECK_INT(c_embed_runtime_embed(h, ids, NULL, NULL, out), 0);
        CHECK_PREFIX(c_embed_runtime_last_error(h), ORT_ERROR);
        CHECK(is_untouched(out, DIM));
        GOOD_EMBED(h);
        free(out);
        free(ids);
    }
    /* the same in row 2 of a batch */
    int64_t *batch = xmalloc(ROWS * SEQ * sizeof *batch), *row = make_ids(SEQ, 4);
    memcpy(batch, row, sizeof *row * SEQ);
    memcpy(batch + SEQ, row, sizeof *row * SEQ);
    batch[SEQ + 3] = id;
    float *outs = new_vec(ROWS * DIM);
    CHECK_INT(c_embed_runtime_embed_batch(h, ROWS, batch, NULL, NULL, outs), 0);
    CHECK_PREFIX(c_embed_runtime_last_error(h), ORT_ERROR);
    GOOD_EMBED(h);
    free(outs);
    free(row);
    free(batch);
    c_embed_runtime_destroy(h);
}

/*
 * An odd value in a mask, token types or both: no crash; either 1 with
 * last_error "" and a unit vector, or 0 with a documented error and out_vec
 * untouched. Then a good embed works.
 */
static void odd_values(int64_t value, int in_mask)
{
    void *h = OPEN_TINY();
    for (int pattern = 0; pattern < 3; pattern++) {
        int64_t *ids = make_ids(SEQ, 5), *values = make_filled(SEQ, in_mask ? 1 : 0);
        for (size_t i = 0; i < SEQ; i++) {
            /* 0: one odd value, 1: every other, 2: all */
            if ((pattern == 0 && i == 2) || (pattern == 1 && i % 2 == 1) || pattern == 2) {
                values[i] = value;
            }
        }
        float *out = new_vec(DIM);
        int32_t rc = in_mask ? c_embed_runtime_embed(h, ids, values, NULL, out)
                             : c_embed_runtime_embed(h, ids, NULL, values, out);
        const char *error = c_embed_runtime_last_error(h);
        fprintf(stderr, "  [%s] pattern %d: embed returned %d, last_error \"%s\"\n", g_context,
                pattern, rc, shown(error));
        CHECK(rc == 0 || rc == 1);
        if (rc == 1) {
            CHECK_STR(error, "");
            CHECK(is_unit(out, DIM));
        } else {
            CHECK_EMBED_ERROR(error);
            CHECK(is_untouched(out, DIM));
        }
        GOOD_EMBED(h);
        free(out);
        free(ids);
        free(values);
    }
    c_embed_runtime_destroy(h);
}

static void case_mask(int64_t value)
{
    odd_values(value, 1);
}

static void case_token_type(int64_t value)
{
    odd_values(value, 0);
}

/* NULL (and misaligned) input_ids or out_vec: 0 and the NULL-array message. */
static void case_null_arrays(int64_t unused)
{
    (void)unused;
    void *h = OPEN_TINY();
    int64_t *ids = make_ids(ROWS * SEQ, 6), *mask = make_filled(ROWS * SEQ, 1);
    float *out = new_vec(ROWS * DIM);
    CHECK_INT(c_embed_runtime_embed(h, NULL, mask, NULL, out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_ARRAYS);
    CHECK_INT(c_embed_runtime_embed(h, ids, mask, NULL, NULL), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_ARRAYS);
    CHECK_INT(c_embed_runtime_embed(h, NULL, NULL, NULL, NULL), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_ARRAYS);
    CHECK_INT(c_embed_runtime_embed_batch(h, ROWS, NULL, mask, NULL, out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_ARRAYS);
    CHECK_INT(c_embed_runtime_embed_batch(h, ROWS, ids, mask, NULL, NULL), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_ARRAYS);
    CHECK_INT(c_embed_runtime_embed_batch(h, ROWS, NULL, NULL, NULL, NULL), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_ARRAYS);
    CHECK(is_untouched(out, ROWS * DIM));

    /* Misaligned arrays are refused the same way (the message says "aligned"). */
    unsigned char *raw = xmalloc(ROWS * SEQ * sizeof(int64_t) + 8);
    memcpy(raw + 1, ids, ROWS * SEQ * sizeof(int64_t));
    const int64_t *odd_ids = (const int64_t *)(void *)(raw + 1);
    CHECK_INT(c_embed_runtime_embed(h, odd_ids, NULL, NULL, out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_ARRAYS);
    CHECK_INT(c_embed_runtime_embed_batch(h, ROWS, odd_ids, NULL, NULL, out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_ARRAYS);
    float *odd_out = (float *)(void *)(raw + 1);
    CHECK_INT(c_embed_runtime_embed(h, ids, NULL, NULL, odd_out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_ARRAYS);
    GOOD_EMBED(h);
    free(raw);
    free(out);
    free(mask);
    free(ids);
    c_embed_runtime_destroy(h);
}

/*
 * A misaligned (non-NULL) attention_mask or token_type_ids is a caller's bug,
 * not a request for the default: embed and embed_batch fail with the message
 * below, write nothing, and the handle stays usable.
 */
static void case_misaligned_optional_arrays(int64_t unused)
{
    (void)unused;
    void *h = OPEN_TINY();
    int64_t *ids = make_ids(ROWS * SEQ, 12), *values = make_filled(ROWS * SEQ, 0);
    for (size_t i = 0; i < ROWS * SEQ; i++) {
        values[i] = i % SEQ < 5; /* a mask of 5 ones, or token types 1 1 1 1 1 0 ... */
    }
    unsigned char *raw = xmalloc(ROWS * SEQ * sizeof(int64_t) + 8);
    memcpy(raw + 1, values, ROWS * SEQ * sizeof(int64_t));
    const int64_t *odd = (const int64_t *)(void *)(raw + 1);
    for (int as_mask = 1; as_mask >= 0; as_mask--) {
        float *out = new_vec(DIM);
        CHECK_INT(c_embed_runtime_embed(h, ids, as_mask ? odd : NULL, as_mask ? NULL : odd, out),
                  0);
        CHECK_STR(c_embed_runtime_last_error(h), MISALIGNED_OPTIONAL_ARRAYS);
        CHECK(is_untouched(out, DIM));
        float *outs = new_vec(ROWS * DIM);
        CHECK_INT(c_embed_runtime_embed_batch(h, ROWS, ids, as_mask ? odd : NULL,
                                              as_mask ? NULL : odd, outs),
                  0);
        CHECK_STR(c_embed_runtime_last_error(h), MISALIGNED_OPTIONAL_ARRAYS);
        GOOD_EMBED(h);
        free(outs);
        free(out);
    }
    free(raw);
    free(values);
    free(ids);
    c_embed_runtime_destroy(h);
}

/* rows < 1, or so large the array sizes overflow: 0 and "std_error:invalid_rows". */
static void case_batch_rows(int64_t rows)
{
    void *h = OPEN_TINY();
    int64_t *ids = make_ids(ROWS * SEQ, 8);
    float *out = new_vec(ROWS * DIM);
    CHECK_INT(c_embed_runtime_embed_batch(h, rows, ids, NULL, NULL, out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), INVALID_ROWS);
    CHECK(is_untouched(out, ROWS * DIM));
    CHECK_INT(c_embed_runtime_embed_batch(h, rows, NULL, NULL, NULL, NULL), 0);
    CHECK_EMBED_ERROR(c_embed_runtime_last_error(h));
    GOOD_EMBED(h);
    CHECK_INT(c_embed_runtime_embed_batch(h, ROWS, ids, NULL, NULL, out), 1);
    CHECK_STR(c_embed_runtime_last_error(h), "");
    free(out);
    free(ids);
    c_embed_runtime_destroy(h);
}

/* ---- cases: create arguments ---------------------------------------------------------- */

/* Creates tiny_bert on the CPU expecting failure; returns the create error. */
static const char *create_fails_at(where_t at, const char *path, const char *device,
                                   int64_t seq_len, int32_t out_dim, int32_t threads)
{
    void *h = c_embed_runtime_create(path, device, seq_len, out_dim, threads, 1);
    const char *error = c_embed_runtime_last_create_error();
    record(at, h == NULL, "create succeeded, expected a failure");
    c_embed_runtime_destroy(h); /* NULL unless the check above failed */
    check_create_error_at(at, "last_create_error", error);
    record(at, error != NULL && error[0] != '\0', "last_create_error is empty after a failure");
    return error;
}

#define CREATE_FAILS(path, device, seq_len, out_dim, threads) \
    create_fails_at(HERE, (path), (device), (seq_len), (out_dim), (threads))

/*
 * seq_len: above 1,048,576 the create fails (std_create_error); below 8 it is
 * clamped to 8 and an embed reads exactly 8 values.
 */
static void case_seq_len(int64_t seq_len)
{
    char path[4096];
    tiny_bert_path(path, sizeof path);
    if (seq_len > 1048576) {
        const char *error = CREATE_FAILS(path, "CPU", seq_len, DIM, 1);
        CHECK_PREFIX(error, STD_CREATE_ERROR);
        CHECK_CONTAINS(error, "seq_len");
        return;
    }
    void *h = open_tiny_at(HERE, seq_len, DIM, 1);
    int64_t want = seq_len < 8 ? 8 : seq_len;
    CHECK_INT(c_embed_runtime_seq_len(h), want);
    if (want <= 4096) {
        GOOD_EMBED(h);
    } else {
        /* The largest seq_len: a mask of 16 ones keeps the run short. */
        size_t n = (size_t)want;
        int64_t *ids = make_ids(n, 9), *mask = make_filled(n, 0);
        for (size_t i = 0; i < SEQ; i++) {
            mask[i] = 1;
        }
        float *out = new_vec(DIM);
        int32_t rc = c_embed_runtime_embed(h, ids, mask, NULL, out);
        CHECK_INT(rc, 1);
        CHECK_STR(c_embed_runtime_last_error(h), "");
        CHECK(rc != 1 || is_unit(out, DIM));
        free(out);
        free(mask);
        free(ids);
    }
    c_embed_runtime_destroy(h);
}

/*
 * out_dim: clamped to at least 1 (then the vector is one float, +-1). INT32_MAX is
 * taken as is: only the getter is checked (an embed would need 8 GiB of output).
 */
static void case_out_dim(int64_t out_dim)
{
    void *h = open_tiny_at(HERE, SEQ, (int32_t)out_dim, 1);
    int32_t want = out_dim < 1 ? 1 : (int32_t)out_dim;
    CHECK_INT(c_embed_runtime_output_dim(h), want);
    CHECK_INT(c_embed_runtime_seq_len(h), SEQ);
    CHECK_INT(c_embed_runtime_hidden_size(h), 32);
    if (want == 1) {
        GOOD_EMBED(h);
    }
    c_embed_runtime_destroy(h);
}

/* threads: clamped to 1..=64; create and embed work. */
static void case_threads(int64_t threads)
{
    void *h = open_tiny_at(HERE, SEQ, DIM, (int32_t)threads);
    CHECK_LIVE(h);
    GOOD_EMBED(h);
    c_embed_runtime_destroy(h);
}

/* Writes n bytes of `src` (or pseudo-random bytes if src is NULL) to a new temp file. */
static void write_temp_file(char *path, size_t path_size, const char *tag,
                            const unsigned char *src, size_t n)
{
    snprintf(path, path_size, "/tmp/c_embed_misuse_%s_XXXXXX", tag);
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    unsigned char *bytes = xmalloc(n > 0 ? n : 1);
    if (src != NULL) {
        memcpy(bytes, src, n);
    } else {
        fill_random(bytes, n, 0x2545F491u);
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, bytes + done, n - done);
        if (w <= 0) {
            perror("write");
            exit(2);
        }
        done += (size_t)w;
    }
    close(fd);
    free(bytes);
}

/* The whole of a file, or exit(2). */
static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = xmalloc((size_t)len + 1);
    if (len < 0 || fread(bytes, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *size = (size_t)len;
    return bytes;
}

static void case_path_directory(int64_t unused)
{
    (void)unused;
    const char *error = CREATE_FAILS(g_model_dir, "CPU", SEQ, DIM, 1);
    CHECK_PREFIX(error, STD_CREATE_ERROR);
    CHECK_CONTAINS(error, "directory");
    error = CREATE_FAILS("/", "CPU", SEQ, DIM, 1);
    CHECK_PREFIX(error, STD_CREATE_ERROR);
}

static void case_path_empty(int64_t unused)
{
    (void)unused;
    CHECK_STR(CREATE_FAILS("", "CPU", SEQ, DIM, 1), MODEL_PATH_EMPTY);
    CHECK_STR(CREATE_FAILS(NULL, NULL, SEQ, DIM, 1), MODEL_PATH_EMPTY);
    CHECK_STR(CREATE_FAILS("", "a device that does not exist", SEQ, DIM, 1), MODEL_PATH_EMPTY);
}

static void case_path_garbage(int64_t unused)
{
    (void)unused;
    char path[256];
    write_temp_file(path, sizeof path, "garbage", NULL, 64 * 1024);
    CHECK_PREFIX(CREATE_FAILS(path, "CPU", SEQ, DIM, 1), ORT_CREATE_ERROR);
    unlink(path);
}

/* A prefix of the real model (first 1000 bytes; first half): an ORT load error. */
static void case_path_truncated(int64_t halve)
{
    size_t size;
    unsigned char *model = read_file(g_real_model, &size);
    size_t n = halve ? size / 2 : 1000;
    char path[256];
    write_temp_file(path, sizeof path, "truncated", model, n);
    const char *error = CREATE_FAILS(path, "CPU", SEQ, DIM, 1);
    fprintf(stderr, "  [%s] %zu of %zu bytes: \"%s\"\n", g_context, n, size, shown(error));
    CHECK_PREFIX(error, ORT_CREATE_ERROR);
    unlink(path);
    free(model);
}

/*
 * A path with the bytes 0xff 0xfe (not UTF-8): "any bytes but NUL". A missing
 * file fails as any missing file does; a copy of tiny_bert under such a name opens.
 */
static void case_path_non_utf8(int64_t unused)
{
    (void)unused;
    char missing[] = "/tmp/c_embed_misuse_missing_\xff\xfe.onnx";
    unlink(missing);
    const char *error = CREATE_FAILS(missing, "CPU", SEQ, DIM, 1);
    CHECK_PREFIX(error, STD_CREATE_ERROR);

    char tiny[4096];
    tiny_bert_path(tiny, sizeof tiny);
    size_t size;
    unsigned char *model = read_file(tiny, &size);
    char dir[] = "/tmp/c_embed_misuse_XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/model_\xff\xfe.onnx", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL && fwrite(model, 1, size, f) == size);
    if (f != NULL) {
        fclose(f);
    }
    void *h = c_embed_runtime_create(path, "CPU", SEQ, DIM, 1, 1);
    record(HERE, h != NULL, "create of a tiny_bert copy at a non-UTF-8 path failed: \"%s\"",
           shown(c_embed_runtime_last_create_error()));
    if (h != NULL) {
        CHECK_LIVE(h);
        c_embed_runtime_destroy(h);
    }
    unlink(path);
    rmdir(dir);
    free(model);
}

/* A string of 1 MiB (plus the NUL) of one repeated pattern. */
static char *mib_string(const char *pattern)
{
    enum { MIB = 1 << 20 };
    size_t k = strlen(pattern);
    char *s = xmalloc(MIB + 1);
    for (size_t i = 0; i < MIB; i++) {
        s[i] = pattern[i % k];
    }
    s[MIB] = '\0';
    return s;
}

/* A 1 MiB path (of a missing file; and "/./././..." that resolves to "/"). */
static void case_path_1mib(int64_t unused)
{
    (void)unused;
    char *path = mib_string("a");
    path[0] = '/';
    CHECK_PREFIX(CREATE_FAILS(path, "CPU", SEQ, DIM, 1), STD_CREATE_ERROR);
    free(path);
    path = mib_string("/.");
    CHECK_PREFIX(CREATE_FAILS(path, "CPU", SEQ, DIM, 1), STD_CREATE_ERROR);
    free(path);
    path = mib_string("x");
    CHECK_PREFIX(CREATE_FAILS(path, "CPU", SEQ, DIM, 1), STD_CREATE_ERROR);
    free(path);
}

/* A 1 MiB device string: the unsupported-device error. */
static void case_device_1mib(int64_t unused)
{
    (void)unused;
    char path[4096];
    tiny_bert_path(path, sizeof path);
    const char *patterns[] = {"C", "CPU", "AUTO "};
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        char *device = mib_string(patterns[i]);
        CHECK_STR(CREATE_FAILS(path, device, SEQ, DIM, 1), UNSUPPORTED_DEVICE);
        free(device);
    }
    /* and the process still creates handles */
    void *h = OPEN_TINY();
    CHECK_LIVE(h);
    c_embed_runtime_destroy(h);
}

/* ---- the cases ------------------------------------------------------------------------- */

#define STACK_ADDRESS 0 /* case_wild: 0 stands for the address of a local variable */

static const misuse_case CASES[] = {
    {"destroyed handle: every function", case_destroyed_handle, 0},
    {"double destroy", case_double_destroy, 0},
    {"heap memory of random bytes as handle", case_heap_random_handle, 0},
    {"wild handle (void*)1", case_wild, 1},
    {"wild handle 0xdeadbeef", case_wild, 0xdeadbeef},
    {"wild handle (void*)-1", case_wild, -1},
    {"wild handle UINTPTR_MAX-7", case_wild, (int64_t)(UINTPTR_MAX - 7)},
    {"wild handle: a stack address", case_wild, STACK_ADDRESS},
    {"values next to a live handle", case_near_live_handle, 0},
    {"token id INT64_MIN", case_token_id, INT64_MIN},
    {"token id INT64_MAX", case_token_id, INT64_MAX},
    {"token id -1000000", case_token_id, -1000000},
    {"token id 1000000", case_token_id, 1000000},
    {"mask -5", case_mask, -5},
    {"mask 2", case_mask, 2},
    {"mask INT64_MAX", case_mask, INT64_MAX},
    {"mask INT64_MIN", case_mask, INT64_MIN},
    {"token type 7", case_token_type, 7},
    {"token type -1", case_token_type, -1},
    {"token type INT64_MAX", case_token_type, INT64_MAX},
    {"seq_len INT64_MAX", case_seq_len, INT64_MAX},
    {"seq_len INT64_MIN", case_seq_len, INT64_MIN},
    {"seq_len -1", case_seq_len, -1},
    {"seq_len 0", case_seq_len, 0},
    {"seq_len 1048577", case_seq_len, 1048577},
    {"seq_len 1048576 (the maximum)", case_seq_len, 1048576},
    {"out_dim INT32_MAX", case_out_dim, INT32_MAX},
    {"out_dim INT32_MIN", case_out_dim, INT32_MIN},
    {"out_dim -1", case_out_dim, -1},
    {"threads INT32_MAX", case_threads, INT32_MAX},
    {"threads INT32_MIN", case_threads, INT32_MIN},
    {"threads -5", case_threads, -5},
    {"model path: a directory", case_path_directory, 0},
    {"model path: empty", case_path_empty, 0},
    {"model path: a garbage file", case_path_garbage, 0},
    {"model path: first 1000 bytes of the real model", case_path_truncated, 0},
    {"model path: first half of the real model", case_path_truncated, 1},
    {"model path: not UTF-8", case_path_non_utf8, 0},
    {"model path: 1 MiB", case_path_1mib, 0},
    {"device: 1 MiB", case_device_1mib, 0},
    {"NULL and misaligned arrays", case_null_arrays, 0},
    {"misaligned mask and token types", case_misaligned_optional_arrays, 0},
    {"embed_batch rows 0", case_batch_rows, 0},
    {"embed_batch rows -1", case_batch_rows, -1},
    {"embed_batch rows -32", case_batch_rows, -32},
    {"embed_batch rows INT64_MIN", case_batch_rows, INT64_MIN},
    {"embed_batch rows INT64_MAX", case_batch_rows, INT64_MAX},
    /* rows * seq_len (16) overflows 64 bits; then only rows * out_dim (24) does */
    {"embed_batch rows 2^60 + 1", case_batch_rows, ((int64_t)1 << 60) + 1},
    {"embed_batch rows 2^60 - 1", case_batch_rows, ((int64_t)1 << 60) - 1},
};

/* A child taking longer than this is killed (SIGALRM) and fails. */
enum { CASE_TIMEOUT = 300 };

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL_DIR REAL_MODEL [FILTER]\n", argv[0]);
        return 2;
    }
    g_model_dir = argv[1];
    g_real_model = argv[2];
    const char *filter = argc == 4 ? argv[3] : NULL;
    struct stat st;
    if (stat(g_real_model, &st) != 0) {
        fprintf(stderr, "%s: %s\n", g_real_model, strerror(errno));
        return 2;
    }

    return run_cases_in_children(CASES, sizeof CASES / sizeof CASES[0], filter, CASE_TIMEOUT);
}
