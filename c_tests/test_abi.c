/*
 * test_abi.c: the C harness for libc_embed_runtime, checked against the contract
 * (abi.md) through the generated header.
 *
 *   test_abi MODEL_DIR      MODEL_DIR holds the models of tools/gen_test_models.py
 *
 * Runs on a CPU-only machine: NPU and GPU requests are checked as the failures the
 * contract prescribes when their execution providers are missing. Every failed
 * check prints file:line and the actual value; the run ends with exactly one line
 * "N passed, M failed" and exits 1 if M > 0.
 *
 * No libm: norms are compared squared, so the plain link line of the Makefile works.
 */
#define _POSIX_C_SOURCE 200809L

#include "c_embed_runtime.h"
#include "contract_errors.h"
#include "test_support.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

/* ---- test data ---------------------------------------------------------------- */

#define GATE_ENV "CDB_EMBED_GPU_ALLOW_OPENVINO_FALLBACK"
#define NPU_UNAVAILABLE STD_CREATE_ERROR OPENVINO_UNAVAILABLE
#define GPU_GATE_OFF \
    STD_CREATE_ERROR CUDA_UNAVAILABLE DEVICE_REASON_SEPARATOR OPENVINO_GPU_FALLBACK_DISABLED
#define GPU_GATE_ON \
    STD_CREATE_ERROR CUDA_UNAVAILABLE DEVICE_REASON_SEPARATOR OPENVINO_UNAVAILABLE

enum { SEQ = 16, VALID = 10, VOCAB = TEST_VOCAB, THREAD_CALLS = 200 };

/* embed_batch runs at most this many rows at once (larger batches are split). */
enum { BATCH_RUN = 32 };
/* How close a batch row must be to the single embed of that row. */
static const double BATCH_TOLERANCE = 1e-6;

static const char *g_model_dir;

static void model_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", g_model_dir, name);
}

static double abs_d(double x)
{
    return x < 0 ? -x : x;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = abs_d((double)a[i] - (double)b[i]);
        worst = d > worst ? d : worst;
    }
    return worst;
}

static double norm_sq(const float *v, size_t n)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += (double)v[i] * (double)v[i];
    }
    return sum;
}

/* The L2 norm is within 1e-5 of 1 (compared squared: no libm). */
static void check_unit_at(where_t at, const float *v, size_t n)
{
    double sq = norm_sq(v, n);
    record(at, sq >= (1 - 1e-5) * (1 - 1e-5) && sq <= (1 + 1e-5) * (1 + 1e-5),
           "squared L2 norm is %.9g, expected 1 (norm within 1e-5)", sq);
}

#define CHECK_UNIT(v, n) check_unit_at(HERE, (v), (n))

/* ---- handle helpers ------------------------------------------------------------ */

static void gate(const char *value)
{
    if (value == NULL) {
        unsetenv(GATE_ENV);
    } else {
        setenv(GATE_ENV, value, 1);
    }
}

/* Creates a handle on a test model; a failure is a failed check (with the reason). */
static void *open_at(where_t at, const char *name, const char *device, int64_t seq_len,
                     int32_t out_dim, int32_t threads, int32_t strict)
{
    char path[4096];
    model_path(path, sizeof path, name);
    void *h = c_embed_runtime_create(path, device, seq_len, out_dim, threads, strict);
    const char *error = c_embed_runtime_last_create_error();
    record(at, h != NULL, "create(%s, %s) failed: \"%s\"", name, device ? device : "NULL",
           error ? error : "(NULL)");
    if (h != NULL) {
        check_str_at(at, STR_EXACT, "last_create_error after a success", error, "");
    }
    return h;
}

/* The common case: CPU, one thread, strict (as the Python caller). */
#define OPEN(name, seq_len, out_dim) open_at(HERE, (name), "CPU", (seq_len), (out_dim), 1, 1)

static size_t out_dim_of(void *h)
{
    return (size_t)c_embed_runtime_output_dim(h);
}

/*
 * Embeds and checks the call succeeded (returns 1, last_error ""). Returns the
 * vector (out_dim floats, SENTINEL-filled if the call failed); free() it.
 */
static float *embed_at(where_t at, void *h, const int64_t *ids, const int64_t *mask,
                       const int64_t *types)
{
    float *out = new_vec(out_dim_of(h));
    int32_t rc = c_embed_runtime_embed(h, ids, mask, types, out);
    if (!record(at, rc == 1, "embed returned %d (last_error \"%s\")", rc,
                c_embed_runtime_last_error(h))) {
        return out;
    }
    check_str_at(at, STR_EXACT, "last_error after a success", c_embed_runtime_last_error(h), "");
    return out;
}

#define EMBED(h, ids, mask, types) embed_at(HERE, (h), (ids), (mask), (types))

/* Embeds, expecting failure: returns 0, last_error matches, out_vec untouched. */
static void embed_fails_at(where_t at, void *h, const int64_t *ids, const int64_t *mask,
                           str_match_t match, const char *expected)
{
    size_t n = out_dim_of(h);
    float *out = new_vec(n);
    check_int_at(at, "embed return", c_embed_runtime_embed(h, ids, mask, NULL, out), 0);
    check_str_at(at, match, "last_error", c_embed_runtime_last_error(h), expected);
    record(at, is_untouched(out, n), "out_vec was written by a failed embed");
    free(out);
}

#define EMBED_FAILS(h, ids, mask, match, expected) \
    embed_fails_at(HERE, (h), (ids), (mask), (match), (expected))

/* ---- batch helpers ------------------------------------------------------------- */

/*
 * Batch arrays hold `rows` rows of n values, row after row, and nothing more (so
 * ASan catches a read past rows * n).
 */

/* Row r is make_ids(n, seed + r): every row differs. */
static int64_t *make_batch_ids(size_t rows, size_t n, unsigned seed)
{
    int64_t *ids = xmalloc(rows * n * sizeof *ids);
    for (size_t r = 0; r < rows; r++) {
        int64_t *row = make_ids(n, seed + (unsigned)r);
        memcpy(ids + r * n, row, n * sizeof *row);
        free(row);
    }
    return ids;
}

/*
 * The mask shapes of a batch row (n >= 8): 0 all ones (the run is full length),
 * 1 the first 5n/8 valid, 2 three valid, 3 one valid, 4 gaps (1 1 0 1 0 0 1 0...),
 * 5 all zeros, 6 all but the last, 7 gaps reaching the end (1 0 ... 0 1).
 */
enum { MASK_KINDS = 8 };

static void fill_row_mask(int64_t *row, size_t n, unsigned kind)
{
    for (size_t i = 0; i < n; i++) {
        int valid = 0;
        switch (kind % MASK_KINDS) {
        case 0: valid = 1; break;
        case 1: valid = i < n * 5 / 8; break;
        case 2: valid = i < 3; break;
        case 3: valid = i == 0; break;
        case 4: valid = i == 0 || i == 1 || i == 3 || i == 6; break;
        case 5: valid = 0; break;
        case 6: valid = i + 1 < n; break;
        case 7: valid = i == 0 || i + 1 == n; break;
        }
        row[i] = valid;
    }
}

/* Row r gets mask kind first_kind + r. */
static int64_t *make_batch_masks(size_t rows, size_t n, unsigned first_kind)
{
    int64_t *masks = xmalloc(rows * n * sizeof *masks);
    for (size_t r = 0; r < rows; r++) {
        fill_row_mask(masks + r * n, n, first_kind + (unsigned)r);
    }
    return masks;
}

/* Token types 0/1 in a pattern that differs from row to row. */
static int64_t *make_batch_types(size_t rows, size_t n)
{
    int64_t *types = xmalloc(rows * n * sizeof *types);
    for (size_t r = 0; r < rows; r++) {
        for (size_t i = 0; i < n; i++) {
            types[r * n + i] = (i * 3 + r) % 5 == 0;
        }
    }
    return types;
}

/*
 * Embeds a batch and checks the call succeeded (returns 1, last_error ""). Returns
 * rows * out_dim floats (SENTINEL-filled if the call failed); free() it.
 */
static float *embed_batch_at(where_t at, void *h, size_t rows, const int64_t *ids,
                             const int64_t *mask, const int64_t *types)
{
    float *out = new_vec(rows * out_dim_of(h));
    int32_t rc = c_embed_runtime_embed_batch(h, (int64_t)rows, ids, mask, types, out);
    if (!record(at, rc == 1, "embed_batch of %zu rows returned %d (last_error \"%s\")", rows, rc,
                c_embed_runtime_last_error(h))) {
        return out;
    }
    check_str_at(at, STR_EXACT, "last_error after a batch success", c_embed_runtime_last_error(h),
                 "");
    return out;
}

#define EMBED_BATCH(h, rows, ids, mask, types) \
    embed_batch_at(HERE, (h), (rows), (ids), (mask), (types))

/*
 * Each row of `batch` is, within BATCH_TOLERANCE, the single embed of that row
 * (fed from arrays of exactly seq_len values), and unit length.
 */
static void check_rows_match_single_at(where_t at, void *h, size_t rows, const int64_t *ids,
                                       const int64_t *mask, const int64_t *types,
                                       const float *batch)
{
    size_t n = (size_t)c_embed_runtime_seq_len(h), dim = out_dim_of(h);
    int64_t *row_ids = xmalloc(n * sizeof *row_ids), *row_mask = xmalloc(n * sizeof *row_mask);
    int64_t *row_types = xmalloc(n * sizeof *row_types);
    for (size_t r = 0; r < rows; r++) {
        memcpy(row_ids, ids + r * n, n * sizeof *row_ids);
        if (mask != NULL) {
            memcpy(row_mask, mask + r * n, n * sizeof *row_mask);
        }
        if (types != NULL) {
            memcpy(row_types, types + r * n, n * sizeof *row_types);
        }
        float *single = embed_at(at, h, row_ids, mask != NULL ? row_mask : NULL,
                                 types != NULL ? row_types : NULL);
        double diff = max_abs_diff(batch + r * dim, single, dim);
        record(at, diff < BATCH_TOLERANCE, "row %zu of %zu differs from its single embed by %g", r,
               rows, diff);
        check_unit_at(at, batch + r * dim, dim);
        free(single);
    }
    free(row_ids);
    free(row_mask);
    free(row_types);
}

#define CHECK_ROWS_MATCH_SINGLE(h, rows, ids, mask, types, batch) \
    check_rows_match_single_at(HERE, (h), (rows), (ids), (mask), (types), (batch))

/* ---- tests: create ------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
/* The sanitizer build must really run under ASan, or its clean run proves nothing. */
static void test_sanitizer_is_linked(void)
{
    char *block = xmalloc(8);
    CHECK(__asan_address_is_poisoned(block + 8));
    free(block);
}
#endif

/* One "create must fail with this message" case. */
typedef struct {
    const char *what;
    const char *model;    /* file in the model directory, or NULL: pass raw_path */
    const char *raw_path; /* used when model is NULL; may itself be NULL */
    const char *device;
    const char *gate;     /* CDB_EMBED_GPU_ALLOW_OPENVINO_FALLBACK, NULL: unset */
    str_match_t match;
    const char *expected;
    const char *also_contains; /* optional second check on the message */
} create_fail_case;

static void expect_create_error(const create_fail_case *c)
{
    char path[4096];
    const char *arg = c->raw_path;
    if (c->model != NULL) {
        model_path(path, sizeof path, c->model);
        arg = path;
    }
    set_context("%s", c->what);
    gate(c->gate);
    void *h = c_embed_runtime_create(arg, c->device, SEQ, 24, 1, 1);
    const char *error = c_embed_runtime_last_create_error();
    CHECK(h == NULL);
    check_str_at(HERE, c->match, "last_create_error", error, c->expected);
    if (c->also_contains != NULL) {
        CHECK_CONTAINS(error, c->also_contains);
    }
    c_embed_runtime_destroy(h); /* NULL unless the check above failed */
    gate(NULL);
    set_context("%s", "");
}

/* Writes `size` pseudo-random bytes to a new temporary file; returns its path. */
static void write_garbage_file(char *path, size_t path_size, size_t size)
{
    snprintf(path, path_size, "/tmp/c_embed_garbage_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    uint32_t state = 0x2545F491u;
    for (size_t i = 0; i < size; i++) {
        state = state * 1664525u + 1013904223u;
        unsigned char byte = (unsigned char)(state >> 24);
        if (write(fd, &byte, 1) != 1) {
            perror("write");
            exit(2);
        }
    }
    close(fd);
}

static void test_create_errors(void)
{
    char missing[4096], garbage[4096], empty[4096];
    model_path(missing, sizeof missing, "does_not_exist.onnx");
    write_garbage_file(garbage, sizeof garbage, 4096);
    write_garbage_file(empty, sizeof empty, 0);

    const create_fail_case cases[] = {
        {"NULL model path", NULL, NULL, "CPU", NULL, STR_EXACT,
         MODEL_PATH_EMPTY, NULL},
        {"empty model path", NULL, "", "CPU", NULL, STR_EXACT,
         MODEL_PATH_EMPTY, NULL},
        {"empty path beats a bad device", NULL, "", "TPU", NULL, STR_EXACT,
         MODEL_PATH_EMPTY, NULL},
        {"nonexistent model", NULL, missing, "CPU", NULL, STR_PREFIX, STD_CREATE_ERROR,
         "does_not_exist.onnx"},
        {"directory as model", NULL, g_model_dir, "CPU", NULL, STR_PREFIX, STD_CREATE_ERROR,
         "directory"},
        {"garbage model file", NULL, garbage, "CPU", NULL, STR_PREFIX, ORT_CREATE_ERROR, NULL},
        {"empty model file", NULL, empty, "CPU", NULL, STR_PREFIX, ORT_CREATE_ERROR, NULL},
        {"device TPU", "tiny_bert.onnx", NULL, "TPU", NULL, STR_EXACT, UNSUPPORTED_DEVICE, NULL},
        {"device GPU0", "tiny_bert.onnx", NULL, "GPU0", NULL, STR_EXACT, UNSUPPORTED_DEVICE, NULL},
        {"device ' cpu'", "tiny_bert.onnx", NULL, " cpu", NULL, STR_EXACT, UNSUPPORTED_DEVICE,
         NULL},
        {"device 'CPU,NPU'", "tiny_bert.onnx", NULL, "CPU,NPU", NULL, STR_EXACT,
         UNSUPPORTED_DEVICE, NULL},
        {"device NPU", "tiny_bert.onnx", NULL, "NPU", NULL, STR_EXACT, NPU_UNAVAILABLE, NULL},
        {"device npu", "tiny_bert.onnx", NULL, "npu", NULL, STR_EXACT, NPU_UNAVAILABLE, NULL},
        {"device Intel_NPU", "tiny_bert.onnx", NULL, "Intel_NPU", NULL, STR_EXACT,
         NPU_UNAVAILABLE, NULL},
        {"NPU ignores the GPU gate", "tiny_bert.onnx", NULL, "NPU", "1", STR_EXACT,
         NPU_UNAVAILABLE, NULL},
        {"device GPU, gate unset", "tiny_bert.onnx", NULL, "GPU", NULL, STR_EXACT, GPU_GATE_OFF,
         NULL},
        {"device cuda, gate unset", "tiny_bert.onnx", NULL, "cuda", NULL, STR_EXACT, GPU_GATE_OFF,
         NULL},
        {"device Nvidia, gate unset", "tiny_bert.onnx", NULL, "Nvidia", NULL, STR_EXACT,
         GPU_GATE_OFF, NULL},
        {"device NVIDIA_GPU, gate unset", "tiny_bert.onnx", NULL, "NVIDIA_GPU", NULL, STR_EXACT,
         GPU_GATE_OFF, NULL},
        {"device GPU, gate 0", "tiny_bert.onnx", NULL, "GPU", "0", STR_EXACT, GPU_GATE_OFF, NULL},
        {"device GPU, gate empty", "tiny_bert.onnx", NULL, "GPU", "", STR_EXACT, GPU_GATE_OFF,
         NULL},
        {"device GPU, gate 'enable'", "tiny_bert.onnx", NULL, "GPU", "enable", STR_EXACT,
         GPU_GATE_OFF, NULL},
        {"device GPU, gate 1", "tiny_bert.onnx", NULL, "GPU", "1", STR_EXACT, GPU_GATE_ON, NULL},
        {"device gpu, gate TRUE", "tiny_bert.onnx", NULL, "gpu", "TRUE", STR_EXACT, GPU_GATE_ON,
         NULL},
        {"device CUDA, gate Yes", "tiny_bert.onnx", NULL, "CUDA", "Yes", STR_EXACT, GPU_GATE_ON,
         NULL},
        {"device nvidia, gate on", "tiny_bert.onnx", NULL, "nvidia", "on", STR_EXACT, GPU_GATE_ON,
         NULL},
        {"model without float output", "bad_no_float_output.onnx", NULL, "CPU", NULL, STR_PREFIX,
         STD_CREATE_ERROR, "float"},
        {"model with a sequence input", "bad_sequence_input.onnx", NULL, "CPU", NULL, STR_PREFIX,
         STD_CREATE_ERROR, "not a tensor"},
        /* Inputs the contract can never fill: refused at create, naming input, type and shape;
           the contract's embed reason comes first, so hosts matching it still do. */
        {"int32 extra input", "bad_int32_extra.onnx", NULL, "CPU", NULL, STR_PREFIX,
         STD_CREATE_ERROR UNSUPPORTED_INPUT_TYPE ": input 'extra_int32' is tensor(int32) "
         "[batch, sequence]",
         NULL},
        {"float attention_mask", "bad_float_mask.onnx", NULL, "CPU", NULL, STR_EXACT,
         STD_CREATE_ERROR UNSUPPORTED_INPUT_TYPE ": input 'attention_mask' is tensor(float) "
         "[batch, sequence], the contract feeds it int64 token values",
         NULL},
        {"string input", "bad_string_input.onnx", NULL, "CPU", NULL, STR_PREFIX,
         STD_CREATE_ERROR UNSUPPORTED_INPUT_TYPE ": input 'text' is tensor(string) [batch]", NULL},
        {"400 MB static extra input", "bad_huge_extra.onnx", NULL, "CPU", NULL, STR_PREFIX,
         STD_CREATE_ERROR INPUT_TOO_LARGE ": input 'huge_extra' is tensor(float) [1, 100000, 1000]",
         "400000000 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_create_error(&cases[i]);
    }
    unlink(garbage);
    unlink(empty);
}

/* Case-insensitive device strings that end on the CPU here; NULL and "" mean AUTO. */
static void test_devices_that_reach_the_cpu(void)
{
    static const struct {
        const char *device;
        const char *gate;
    } cases[] = {
        {"CPU", NULL},  {"cpu", NULL},  {"Cpu", NULL},  {"HOST", NULL}, {"Host", NULL},
        {"host", NULL}, {"AUTO", NULL}, {"auto", NULL}, {"Auto", NULL}, {NULL, NULL},
        {"", NULL},     {"AUTO", "1"},  {NULL, "on"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_context("device %s, gate %s", cases[i].device ? cases[i].device : "NULL",
                    cases[i].gate ? cases[i].gate : "unset");
        gate(cases[i].gate);
        void *h = open_at(HERE, "tiny_bert.onnx", cases[i].device, SEQ, 24, 1, 1);
        CHECK_STR(c_embed_runtime_selected_device(h), "CPU");
        c_embed_runtime_destroy(h);
        gate(NULL);
    }
    set_context("%s", "");
}

/* After a failure, a success resets last_create_error to "" (and returns it twice). */
static void test_last_create_error_reset(void)
{
    CHECK(c_embed_runtime_create(NULL, "CPU", SEQ, 24, 1, 1) == NULL);
    CHECK_STR(c_embed_runtime_last_create_error(), MODEL_PATH_EMPTY);
    CHECK_STR(c_embed_runtime_last_create_error(), MODEL_PATH_EMPTY);
    void *h = OPEN("tiny_bert.onnx", SEQ, 24);
    CHECK_STR(c_embed_runtime_last_create_error(), "");
    CHECK_STR(c_embed_runtime_last_create_error(), "");
    c_embed_runtime_destroy(h);
}

static void *failing_create(void *unused)
{
    (void)unused;
    return c_embed_runtime_create("", "CPU", SEQ, 24, 1, 1);
}

/* last_create_error is process-global: a failure on another thread shows here. */
static void test_last_create_error_is_process_global(void)
{
    void *h = OPEN("tiny_bert.onnx", SEQ, 24);
    pthread_t thread;
    void *created = &thread;
    CHECK_INT(pthread_create(&thread, NULL, failing_create, NULL), 0);
    CHECK_INT(pthread_join(thread, &created), 0);
    CHECK(created == NULL);
    CHECK_STR(c_embed_runtime_last_create_error(), MODEL_PATH_EMPTY);
    c_embed_runtime_destroy(h);
}

/* seq_len >= 8, out_dim >= 1, threads >= 1; the getters return the clamped values. */
static void test_clamps(void)
{
    static const struct {
        int64_t seq_len;
        int32_t out_dim;
        int32_t threads;
        int64_t want_seq_len;
        int32_t want_out_dim;
    } cases[] = {
        {1, 0, -5, 8, 1},      {0, -3, 0, 8, 1},     {-100, 1, 1, 8, 1},
        {INT64_MIN, INT32_MIN, INT32_MIN, 8, 1},     {7, 24, 2, 8, 24},
        {8, 32, 1, 8, 32},     {9, 40, 3, 9, 40},    {128, 24, 1, 128, 24},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_context("seq_len %lld, out_dim %d, threads %d", (long long)cases[i].seq_len,
                    (int)cases[i].out_dim, (int)cases[i].threads);
        void *h = open_at(HERE, "tiny_bert.onnx", "CPU", cases[i].seq_len, cases[i].out_dim,
                          cases[i].threads, 1);
        CHECK_INT(c_embed_runtime_seq_len(h), cases[i].want_seq_len);
        CHECK_INT(c_embed_runtime_output_dim(h), cases[i].want_out_dim);
        /* The arrays hold exactly the clamped seq_len (ASan checks nothing more is read). */
        size_t n = (size_t)cases[i].want_seq_len;
        int64_t *ids = make_ids(n, 3), *mask = make_mask(n, n / 2), *types = make_filled(n, 0);
        float *v = EMBED(h, ids, mask, types);
        CHECK_UNIT(v, out_dim_of(h));
        free(v);
        free(ids);
        free(mask);
        free(types);
        c_embed_runtime_destroy(h);
    }
    set_context("%s", "");
}

/* Many create/destroy cycles: nothing may pile up (LeakSanitizer watches). */
static void test_create_destroy_cycles(void)
{
    int64_t *ids = make_ids(SEQ, 4);
    for (int i = 0; i < 10; i++) {
        void *h = OPEN(i % 2 ? "tiny_bert.onnx" : "tiny_rank2.onnx", SEQ, 24);
        free(EMBED(h, ids, NULL, NULL));
        c_embed_runtime_destroy(h);
    }
    free(ids);
}

/* ---- tests: NULL handles and NULL arguments ------------------------------------ */

/* NULL is an invalid handle: every function gives its invalid-handle answer. */
static void test_null_handle(void)
{
    CHECK_INVALID_HANDLE(NULL);
}

/* A NULL mask is an all-ones mask; NULL token types are all zeros (bit for bit). */
static void test_optional_arrays_defaults(void)
{
    void *h = OPEN("tiny_bert.onnx", SEQ, 32);
    int64_t *ids = make_ids(SEQ, 2), *ones = make_filled(SEQ, 1), *zeros = make_filled(SEQ, 0);
    int64_t *mask = make_mask(SEQ, VALID), *types = make_mask(SEQ, 4);
    float *null_mask = EMBED(h, ids, NULL, zeros), *ones_mask = EMBED(h, ids, ones, zeros);
    float *null_types = EMBED(h, ids, mask, NULL), *zero_types = EMBED(h, ids, mask, zeros);
    float *other_types = EMBED(h, ids, mask, types);
    CHECK(same_bits(null_mask, ones_mask, 32));
    CHECK(same_bits(null_types, zero_types, 32));
    /* ...and the arrays are really fed: other values give other vectors. */
    CHECK(max_abs_diff(null_mask, zero_types, 32) > 1e-4);
    CHECK(max_abs_diff(other_types, zero_types, 32) > 1e-4);
    free(null_mask);
    free(ones_mask);
    free(null_types);
    free(zero_types);
    free(other_types);
    free(ids);
    free(ones);
    free(zeros);
    free(mask);
    free(types);
    c_embed_runtime_destroy(h);
}

/* ---- tests: pooling, folding, normalisation ------------------------------------ */

/*
 * out_dim > hidden pads zeros after the hidden values; out_dim < hidden truncates
 * (renormalised); on models of hidden 32 and 48.
 */
static void test_fold_to_out_dim(void)
{
    static const struct {
        const char *model;
        int32_t hidden;
    } models[] = {{"tiny_bert.onnx", 32}, {"tiny_bert_h48.onnx", 48}};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        const char *model = models[m].model;
        int32_t hidden = models[m].hidden, wide = hidden + 16;
        set_context("%s", model);
        void *h_full = OPEN(model, SEQ, hidden), *h_wide = OPEN(model, SEQ, wide);
        void *h8 = OPEN(model, SEQ, 8), *h1 = OPEN(model, SEQ, 1);
        int64_t *ids = make_ids(SEQ, 5), *mask = make_mask(SEQ, VALID);
        float *full = EMBED(h_full, ids, mask, NULL), *padded = EMBED(h_wide, ids, mask, NULL);
        float *v8 = EMBED(h8, ids, mask, NULL), *v1 = EMBED(h1, ids, mask, NULL);
        CHECK_UNIT(full, (size_t)hidden);
        CHECK_UNIT(padded, (size_t)wide);
        CHECK_UNIT(v8, 8);
        CHECK_UNIT(v1, 1);

        /* Padding: the same norm, so the first `hidden` values are full's exactly. */
        CHECK(same_bits(padded, full, (size_t)hidden));
        int padded_zeros = 1;
        for (int32_t i = hidden; i < wide; i++) {
            padded_zeros &= padded[i] == 0.0f;
        }
        CHECK(padded_zeros);

        /* Truncation: v8 is full's first 8 values renormalised, i.e. full[i] = k * v8[i]. */
        double k = 0;
        for (size_t i = 0; i < 8; i++) {
            k += (double)full[i] * (double)v8[i];
        }
        double worst = 0;
        for (size_t i = 0; i < 8; i++) {
            double d = abs_d((double)full[i] - k * (double)v8[i]);
            worst = d > worst ? d : worst;
        }
        CHECK(k > 0);
        record(HERE, worst < 1e-6, "full[:8] is not proportional to v8 (residual %g)", worst);
        CHECK(v1[0] == (full[0] > 0 ? 1.0f : -1.0f));

        free(full);
        free(padded);
        free(v8);
        free(v1);
        free(ids);
        free(mask);
        c_embed_runtime_destroy(h_full);
        c_embed_runtime_destroy(h_wide);
        c_embed_runtime_destroy(h8);
        c_embed_runtime_destroy(h1);
    }
    set_context("%s", "");
}

/* The same input twice on one handle, and once on each of two live handles. */
static void test_determinism(void)
{
    void *a = OPEN("tiny_bert.onnx", SEQ, 24);
    void *b = OPEN("tiny_bert.onnx", SEQ, 24);
    int64_t *ids = make_ids(SEQ, 7), *mask = make_mask(SEQ, VALID);
    float *first = EMBED(a, ids, mask, NULL), *again = EMBED(a, ids, mask, NULL);
    float *other = EMBED(b, ids, mask, NULL);
    CHECK(same_bits(first, again, 24));
    CHECK(same_bits(first, other, 24));
    free(first);
    free(again);
    free(other);
    free(ids);
    free(mask);
    c_embed_runtime_destroy(a);
    c_embed_runtime_destroy(b);
}

/*
 * Padding invariance: ids and types at mask-0 positions change nothing. The model
 * masks them out of its context sum and the library out of the mean, and adding
 * exact zeros changes no float, so the vectors are bit-identical.
 */
static void test_padding_invariance(void)
{
    void *h = OPEN("tiny_bert.onnx", SEQ, 32);
    int64_t *ids = make_ids(SEQ, 8), *mask = make_mask(SEQ, VALID);
    int64_t *noisy_ids = make_ids(SEQ, 8), *noisy_types = make_filled(SEQ, 0);
    for (size_t i = VALID; i < SEQ; i++) {
        noisy_ids[i] = (int64_t)(VOCAB - 1 - i);
        noisy_types[i] = 1;
    }
    float *clean = EMBED(h, ids, mask, NULL), *noisy = EMBED(h, noisy_ids, mask, noisy_types);
    CHECK(same_bits(clean, noisy, 32));
    free(clean);
    free(noisy);
    free(ids);
    free(noisy_ids);
    free(noisy_types);
    free(mask);
    c_embed_runtime_destroy(h);
}

/*
 * An all-zero mask: token 0's hidden vector, normalised. With no valid token the
 * model's context term is 0, so token 0's output depends on token 0 alone:
 * changing every other id changes nothing, changing token 0 changes the vector.
 * (It is not the {1,0,...} result: there the model's context includes token 0.)
 */
static void test_all_zero_mask(void)
{
    void *h = OPEN("tiny_bert.onnx", SEQ, 32);
    int64_t *zero_mask = make_filled(SEQ, 0), *ids = make_ids(SEQ, 9), *others = make_ids(SEQ, 10);
    int64_t *first = make_ids(SEQ, 9);
    first[0] = 42;
    float *v = EMBED(h, ids, zero_mask, NULL);
    float *v_others = EMBED(h, others, zero_mask, NULL);
    float *v_first = EMBED(h, first, zero_mask, NULL);
    CHECK_UNIT(v, 32);
    CHECK(same_bits(v, v_others, 32));
    CHECK(max_abs_diff(v, v_first, 32) > 1e-4);
    free(v);
    free(v_others);
    free(v_first);
    free(ids);
    free(others);
    free(first);
    free(zero_mask);
    c_embed_runtime_destroy(h);
}

/* ---- tests: model variants ---------------------------------------------------- */

/* Every valid test model embeds, normalised and deterministically, on every call form. */
static void test_valid_models(void)
{
    static const struct {
        const char *model;
        int64_t seq_len;
    } cases[] = {
        {"tiny_bert.onnx", SEQ},           {"tiny_bert_no_types.onnx", SEQ},
        {"tiny_bert_position_ids.onnx", SEQ}, {"tiny_bert_position_ids.onnx", 128},
        {"tiny_bert_extra_inputs.onnx", SEQ}, {"tiny_rank2.onnx", SEQ},
        {"tiny_int64_first.onnx", SEQ},    {"tiny_bert_h48.onnx", SEQ},
        {"tiny_static16.onnx", 16},        {"tiny_fallback_marker.onnx", SEQ},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_context("%s, seq_len %lld", cases[i].model, (long long)cases[i].seq_len);
        size_t n = (size_t)cases[i].seq_len;
        void *h = OPEN(cases[i].model, cases[i].seq_len, 24);
        int64_t *ids = make_ids(n, 11), *mask = make_mask(n, n / 2), *types = make_mask(n, 2);
        float *full = EMBED(h, ids, mask, types), *again = EMBED(h, ids, mask, types);
        float *bare = EMBED(h, ids, NULL, NULL);
        CHECK_UNIT(full, 24);
        CHECK_UNIT(bare, 24);
        CHECK(same_bits(full, again, 24));
        free(full);
        free(again);
        free(bare);
        free(ids);
        free(mask);
        free(types);
        c_embed_runtime_destroy(h);
    }
    set_context("%s", "");
}

/*
 * Models that tools/gen_test_models.py builds with tiny_bert's weights (the same
 * seeded draws in the same order) compute tiny_bert's last_hidden_state:
 * tiny_int64_first (so its float output, not the int64 output 0, is read),
 * tiny_fallback_marker (an unused initializer) and tiny_static16 at seq_len 16.
 */
static void test_models_sharing_tiny_bert_weights(void)
{
    static const char *const models[] = {
        "tiny_int64_first.onnx", "tiny_fallback_marker.onnx", "tiny_static16.onnx"};
    void *base = OPEN("tiny_bert.onnx", 16, 32);
    int64_t *ids = make_ids(16, 12), *mask = make_mask(16, 9), *types = make_mask(16, 3);
    float *expected = EMBED(base, ids, mask, types);
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        set_context("%s", models[i]);
        void *h = OPEN(models[i], 16, 32);
        float *v = EMBED(h, ids, mask, types);
        double diff = max_abs_diff(v, expected, 32);
        record(HERE, diff < 1e-6, "differs from tiny_bert by %g", diff);
        free(v);
        c_embed_runtime_destroy(h);
    }
    set_context("%s", "");
    free(expected);
    free(ids);
    free(mask);
    free(types);
    c_embed_runtime_destroy(base);
}

/*
 * position_ids are fed (0..seq_len-1): tiny_bert's mean pool is invariant under a
 * permutation of the valid tokens (up to float rounding), the position model's
 * is not, unless every position got the same id.
 */
static void test_position_ids_are_fed(void)
{
    void *plain = OPEN("tiny_bert.onnx", SEQ, 32);
    void *positional = OPEN("tiny_bert_position_ids.onnx", SEQ, 32);
    int64_t *ids = make_ids(SEQ, 13), *reversed = make_ids(SEQ, 13), *mask = make_mask(SEQ, VALID);
    for (size_t i = 0; i < VALID; i++) {
        reversed[i] = ids[VALID - 1 - i];
    }
    float *p = EMBED(plain, ids, mask, NULL), *p_rev = EMBED(plain, reversed, mask, NULL);
    float *q = EMBED(positional, ids, mask, NULL), *q_rev = EMBED(positional, reversed, mask, NULL);
    double plain_diff = max_abs_diff(p, p_rev, 32), positional_diff = max_abs_diff(q, q_rev, 32);
    record(HERE, plain_diff < 1e-5, "tiny_bert is order-sensitive (%g)", plain_diff);
    record(HERE, positional_diff > 1e-3, "position model ignores order (%g)", positional_diff);
    free(p);
    free(p_rev);
    free(q);
    free(q_rev);
    free(ids);
    free(reversed);
    free(mask);
    c_embed_runtime_destroy(plain);
    c_embed_runtime_destroy(positional);
}

/* Models that load but cannot be embedded: each call fails with the contract's reason. */
static void test_bad_output_models(void)
{
    static const struct {
        const char *model;
        const char *error;
    } cases[] = {
        {"bad_rank1_output.onnx", UNSUPPORTED_OUTPUT_RANK},
        {"bad_rank0_output.onnx", EMPTY_OUTPUT},
        {"bad_wide_hidden.onnx", INVALID_HIDDEN_DIM},
        {"bad_empty_output.onnx", EMPTY_OUTPUT},
    };
    int64_t *ids = make_ids(SEQ, 14), *mask = make_mask(SEQ, VALID);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_context("%s", cases[i].model);
        void *h = OPEN(cases[i].model, SEQ, 24);
        EMBED_FAILS(h, ids, mask, STR_EXACT, cases[i].error);
        EMBED_FAILS(h, ids, NULL, STR_EXACT, cases[i].error); /* the same every time */
        c_embed_runtime_destroy(h);
    }
    set_context("%s", "");
    free(ids);
    free(mask);
}

/*
 * A static sequence length other than seq_len is refused at create (it could never be
 * fed); at its own length the model opens.
 */
static void test_static_length_must_be_seq_len(void)
{
    char path[4096];
    model_path(path, sizeof path, "tiny_static16.onnx");
    CHECK(c_embed_runtime_create(path, "CPU", 32, 24, 1, 1) == NULL);
    CHECK_STR(c_embed_runtime_last_create_error(),
              STD_CREATE_ERROR INPUT_LENGTH_MISMATCH ": input 'input_ids' is tensor(int64) [1, 16], "
              "16 values per row, and seq_len is 32: the contract feeds it the caller's seq_len "
              "values");
    void *h = OPEN("tiny_static16.onnx", 16, 24);
    CHECK_STR(c_embed_runtime_last_create_error(), "");
    c_embed_runtime_destroy(h);
}

/*
 * tiny_nan_output adds log(id): id 0 at a valid position makes the vector non-finite,
 * which fails the call (out_vec untouched); id 0 at a masked position never reaches it.
 */
static void test_non_finite_output_fails(void)
{
    void *h = OPEN("tiny_nan_output.onnx", SEQ, 24);
    int64_t *ids = make_ids(SEQ, 9), *mask = make_mask(SEQ, VALID);
    for (size_t i = VALID; i < SEQ; i++) {
        ids[i] = 0; /* padding */
    }
    float *v = EMBED(h, ids, mask, NULL);
    CHECK_UNIT(v, 24);
    ids[3] = 0;
    float out[24];
    for (size_t i = 0; i < 24; i++) {
        out[i] = -7.0f;
    }
    CHECK_INT(c_embed_runtime_embed(h, ids, mask, NULL, out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NON_FINITE_OUTPUT);
    CHECK(out[0] == -7.0f && out[23] == -7.0f);
    int64_t batch_ids[2 * SEQ], batch_mask[2 * SEQ];
    for (size_t i = 0; i < SEQ; i++) {
        batch_ids[i] = ids[i];
        batch_ids[SEQ + i] = i == 3 ? 5 : ids[i];
        batch_mask[i] = batch_mask[SEQ + i] = mask[i];
    }
    float batch_out[2 * 24];
    CHECK_INT(c_embed_runtime_embed_batch(h, 2, batch_ids, batch_mask, NULL, batch_out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NON_FINITE_OUTPUT);
    ids[3] = 5;
    float *again = EMBED(h, ids, mask, NULL); /* the handle keeps working */
    CHECK_UNIT(again, 24);
    free(again);
    free(v);
    free(ids);
    free(mask);
    c_embed_runtime_destroy(h);
}

/* Ids outside the vocabulary (100): an ORT error; the handle keeps working. */
static void test_out_of_vocabulary_ids(void)
{
    static const int64_t bad_ids[] = {VOCAB, 1000, -VOCAB - 1, INT64_MAX, INT64_MIN};
    void *h = OPEN("tiny_bert.onnx", SEQ, 24);
    int64_t *good = make_ids(SEQ, 15), *mask = make_mask(SEQ, VALID);
    float *expected = EMBED(h, good, mask, NULL);
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        set_context("id %lld", (long long)bad_ids[i]);
        int64_t *ids = make_ids(SEQ, 15);
        ids[3] = bad_ids[i];
        EMBED_FAILS(h, ids, mask, STR_PREFIX, ORT_ERROR);
        float *v = EMBED(h, good, mask, NULL); /* recovers: 1 and last_error "" */
        CHECK(same_bits(v, expected, 24));
        free(v);
        free(ids);
    }
    set_context("%s", "");
    free(expected);
    free(good);
    free(mask);
    c_embed_runtime_destroy(h);
}

/*
 * On the CPU no log message is a fallback signal: tiny_fallback_marker makes ORT
 * warn with "cpu" and "fallback" in the text, yet nothing is flagged and strict
 * mode does not fail the embed (also when AUTO ends on the CPU).
 */
static void test_no_fallback_on_cpu(void)
{
    static const char *const devices[] = {"CPU", "AUTO"};
    int64_t *ids = make_ids(SEQ, 16);
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        set_context("tiny_fallback_marker on %s", devices[i]);
        void *h = open_at(HERE, "tiny_fallback_marker.onnx", devices[i], SEQ, 24, 1, 1);
        CHECK_STR(c_embed_runtime_selected_device(h), "CPU");
        CHECK_INT(c_embed_runtime_cpu_fallback_detected(h), 0);
        CHECK_STR(c_embed_runtime_cpu_fallback_detail(h), "");
        free(EMBED(h, ids, NULL, NULL));
        CHECK_INT(c_embed_runtime_cpu_fallback_detected(h), 0);
        CHECK_STR(c_embed_runtime_cpu_fallback_detail(h), "");
        c_embed_runtime_destroy(h);
    }
    set_context("%s", "");
    free(ids);
}

/* ---- tests: embed_batch, hidden_size, version --------------------------------- */

/*
 * Each row of a batch is its single embed (within 1e-6), on every model that
 * embeds, for batches whose longest row is full length ("mixed": every mask
 * shape, including gaps and an all-zero row), shorter than seq_len ("short": the
 * run is cut) or a single row; with and without mask and token types.
 */
static void test_embed_batch_matches_single(void)
{
    static const struct {
        const char *model;
        int64_t seq_len;
        int32_t out_dim;
    } models[] = {
        {"tiny_bert.onnx", SEQ, 32},
        {"tiny_bert_no_types.onnx", SEQ, 24},
        {"tiny_bert_position_ids.onnx", SEQ, 24},
        {"tiny_bert_position_ids.onnx", 128, 24},
        {"tiny_bert_extra_inputs.onnx", SEQ, 24},
        {"tiny_rank2.onnx", SEQ, 24},
        {"tiny_int64_first.onnx", SEQ, 24},
        {"tiny_bert_h48.onnx", SEQ, 64},
        {"tiny_static16.onnx", 16, 24},
        {"tiny_fallback_marker.onnx", SEQ, 8},
    };
    static const struct {
        const char *name;
        size_t rows;
        unsigned first_kind;
    } batches[] = {{"mixed", MASK_KINDS, 0}, {"short", 5, 1}, {"one row", 1, 4}};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        size_t n = (size_t)models[m].seq_len;
        void *h = OPEN(models[m].model, models[m].seq_len, models[m].out_dim);
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            size_t rows = batches[b].rows;
            int64_t *ids = make_batch_ids(rows, n, 20 + (unsigned)b);
            int64_t *masks = make_batch_masks(rows, n, batches[b].first_kind);
            int64_t *types = make_batch_types(rows, n);
            for (int variant = 0; variant < 4; variant++) {
                const int64_t *mask = variant & 1 ? NULL : masks;
                const int64_t *type = variant & 2 ? NULL : types;
                set_context("%s, seq_len %lld, %s batch, mask %s, types %s", models[m].model,
                            (long long)models[m].seq_len, batches[b].name,
                            mask ? "given" : "NULL", type ? "given" : "NULL");
                float *batch = EMBED_BATCH(h, rows, ids, mask, type);
                CHECK_ROWS_MATCH_SINGLE(h, rows, ids, mask, type, batch);
                free(batch);
            }
            free(ids);
            free(masks);
            free(types);
        }
        c_embed_runtime_destroy(h);
    }
    set_context("%s", "");
}

/*
 * Batches larger than one run (32 rows) are split: every row still matches its
 * single embed, also when the runs have different lengths (full rows first and
 * short rows after, and the other way round).
 */
static void test_embed_batch_split_into_runs(void)
{
    static const size_t sizes[] = {BATCH_RUN, BATCH_RUN + 1, 40, 2 * BATCH_RUN + 1};
    void *h = OPEN("tiny_bert.onnx", SEQ, 24);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t rows = sizes[i];
        int64_t *ids = make_batch_ids(rows, SEQ, 30), *masks = make_batch_masks(rows, SEQ, 0);
        int64_t *types = make_batch_types(rows, SEQ);
        set_context("%zu rows, every mask shape", rows);
        float *batch = EMBED_BATCH(h, rows, ids, masks, types);
        CHECK_ROWS_MATCH_SINGLE(h, rows, ids, masks, types, batch);
        free(batch);
        set_context("%zu rows, NULL mask and types", rows);
        batch = EMBED_BATCH(h, rows, ids, NULL, NULL);
        CHECK_ROWS_MATCH_SINGLE(h, rows, ids, NULL, NULL, batch);
        free(batch);
        for (int long_first = 0; long_first < 2; long_first++) {
            for (size_t r = 0; r < rows; r++) {
                int first_run = r < BATCH_RUN;
                fill_row_mask(masks + r * SEQ, SEQ, first_run == long_first ? 0 : 2);
            }
            set_context("%zu rows, %s", rows, long_first ? "full run then short run"
                                                          : "short run then full run");
            batch = EMBED_BATCH(h, rows, ids, masks, types);
            CHECK_ROWS_MATCH_SINGLE(h, rows, ids, masks, types, batch);
            free(batch);
        }
        free(ids);
        free(masks);
        free(types);
    }
    set_context("%s", "");
    c_embed_runtime_destroy(h);
}

/*
 * An out-of-vocabulary id in any row (first or last row, first or later run)
 * fails the whole batch with an ORT error; the handle keeps working: the next
 * batch and single embed succeed with last_error "".
 */
static void test_embed_batch_ort_error_recovers(void)
{
    static const struct {
        size_t rows, bad_row, position;
    } cases[] = {{3, 1, 2}, {3, 0, 0}, {3, 2, SEQ - 1}, {40, 37, 5}, {40, 0, 15}};
    void *h = OPEN("tiny_bert.onnx", SEQ, 24);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t rows = cases[i].rows;
        set_context("%zu rows, id 1000000 in row %zu at %zu", rows, cases[i].bad_row,
                    cases[i].position);
        /* all-ones masks: the bad id is in a valid position */
        int64_t *ids = make_batch_ids(rows, SEQ, 50), *masks = make_batch_masks(rows, SEQ, 0);
        for (size_t r = 0; r < rows; r++) {
            fill_row_mask(masks + r * SEQ, SEQ, 0);
        }
        float *expected = EMBED_BATCH(h, rows, ids, masks, NULL);
        int64_t *bad = make_batch_ids(rows, SEQ, 50);
        bad[cases[i].bad_row * SEQ + cases[i].position] = 1000000;
        float *out = new_vec(rows * 24);
        CHECK_INT(c_embed_runtime_embed_batch(h, (int64_t)rows, bad, masks, NULL, out), 0);
        CHECK_PREFIX(c_embed_runtime_last_error(h), ORT_ERROR);
        float *v = EMBED_BATCH(h, rows, ids, masks, NULL);
        CHECK(same_bits(v, expected, rows * 24));
        CHECK_INT(c_embed_runtime_embed_batch(h, (int64_t)rows, bad, NULL, NULL, out), 0);
        CHECK_PREFIX(c_embed_runtime_last_error(h), ORT_ERROR);
        free(EMBED(h, ids, NULL, NULL)); /* a single embed recovers too */
        free(v);
        free(out);
        free(bad);
        free(expected);
        free(ids);
        free(masks);
    }
    set_context("%s", "");
    c_embed_runtime_destroy(h);
}

/*
 * hidden_size is the model's last output dimension, whatever out_dim and seq_len;
 * 0 for a model that creates but whose output cannot be
 * pooled (bad_rank1_output).
 */
static void test_hidden_size(void)
{
    static const struct {
        const char *model;
        int64_t seq_len;
        int32_t out_dim;
        int32_t hidden;
    } cases[] = {
        {"tiny_bert.onnx", SEQ, 24, 32},          {"tiny_bert.onnx", SEQ, 8, 32},
        {"tiny_bert.onnx", 128, 40, 32},          {"tiny_bert.onnx", 4, 1, 32},
        {"tiny_bert_h48.onnx", SEQ, 24, 48},      {"tiny_bert_h48.onnx", SEQ, 64, 48},
        {"tiny_rank2.onnx", SEQ, 24, 32},         {"tiny_static16.onnx", 16, 24, 32},
        {"tiny_bert_no_types.onnx", SEQ, 24, 32}, {"tiny_int64_first.onnx", SEQ, 24, 32},
        {"bad_rank1_output.onnx", SEQ, 24, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_context("%s, seq_len %lld, out_dim %d", cases[i].model, (long long)cases[i].seq_len,
                    (int)cases[i].out_dim);
        void *h = OPEN(cases[i].model, cases[i].seq_len, cases[i].out_dim);
        CHECK_INT(c_embed_runtime_hidden_size(h), cases[i].hidden);
        size_t n = (size_t)c_embed_runtime_seq_len(h);
        int64_t *ids = make_ids(n, 60);
        float *out = new_vec(out_dim_of(h));
        int32_t rc = c_embed_runtime_embed(h, ids, NULL, NULL, out);
        CHECK_INT(rc, cases[i].hidden > 0); /* only the poolable models embed */
        CHECK_INT(c_embed_runtime_hidden_size(h), cases[i].hidden); /* unchanged by embeds */
        free(out);
        free(ids);
        c_embed_runtime_destroy(h);
    }
    set_context("%s", "");
}

/* "MAJOR.MINOR.PATCH": digits, a dot, digits, a dot, digits, nothing else. */
static int is_semver(const char *s)
{
    for (int part = 0; part < 3; part++) {
        const char *start = s;
        while (*s >= '0' && *s <= '9') {
            s++;
        }
        if (s == start || *s != (part < 2 ? '.' : '\0')) {
            return 0;
        }
        s += part < 2;
    }
    return 1;
}

/* The version: static, needs no handle (run before any create), the crate's version. */
static void test_version(void)
{
    const char *version = c_embed_runtime_version();
    CHECK(version != NULL);
    CHECK_STR(version, C_EMBED_RUNTIME_VERSION); /* the header's: Cargo.toml's */
    CHECK(version != NULL && is_semver(version));
    CHECK(c_embed_runtime_version() == version); /* one static string */
    CHECK(!is_semver("0.2") && !is_semver("0.2.0-rc1") && !is_semver("a.b.c")); /* the checker */
    /* No ONNX Runtime before the first create. */
    CHECK_STR(c_embed_runtime_onnxruntime_path(), "");
    CHECK_STR(c_embed_runtime_onnxruntime_version(), "");
}

/*
 * The ONNX Runtime in use, once a create loaded it; a host build must be loaded
 * to register, a directory must be one (python/tests/test_loading.py shows a
 * registered directory searched, in a process that has not loaded ONNX Runtime).
 */
static void test_onnxruntime_in_use(void)
{
    void *h = OPEN("tiny_bert.onnx", 16, 8);
    const char *path = c_embed_runtime_onnxruntime_path();
    CHECK(h != NULL);
    CHECK(strstr(path, "/libonnxruntime.so") != NULL);
    CHECK(is_semver(c_embed_runtime_onnxruntime_version()));
    CHECK(strstr(path, c_embed_runtime_onnxruntime_version()) != NULL); /* libonnxruntime.so.<version> */
    CHECK(c_embed_runtime_onnxruntime_path() == path); /* one string for the process */
    CHECK(c_embed_runtime_register_host_build(NULL) == 0);
    CHECK(c_embed_runtime_register_host_build("/nonexistent/libc_embed_runtime.abc.so") == 0);
    char model[4096];
    model_path(model, sizeof model, "tiny_bert.onnx");
    CHECK(c_embed_runtime_register_onnxruntime_dir(NULL) == 0);
    CHECK(c_embed_runtime_register_onnxruntime_dir("") == 0);
    CHECK(c_embed_runtime_register_onnxruntime_dir("/nonexistent/capi") == 0);
    CHECK(c_embed_runtime_register_onnxruntime_dir(model) == 0); /* a file */
    CHECK(c_embed_runtime_register_onnxruntime_dir(g_model_dir) == 1);
    CHECK(c_embed_runtime_register_onnxruntime_dir(g_model_dir) == 1); /* again: no change */
    CHECK(c_embed_runtime_onnxruntime_path() == path); /* ONNX Runtime stays the one loaded */
    c_embed_runtime_destroy(h);
}

/* ---- tests: threads ------------------------------------------------------------ */

/* Embeds `calls` times on one thread, counting the failed calls. */
typedef struct {
    void *handle;
    const int64_t *ids;
    size_t dim;
    int calls;
    int failures; /* embed returned 0 */
} embed_job;

static void *run_embed_job(void *arg)
{
    embed_job *job = arg;
    float *out = new_vec(job->dim);
    for (int i = 0; i < job->calls; i++) {
        job->failures += c_embed_runtime_embed(job->handle, job->ids, NULL, NULL, out) != 1;
    }
    free(out);
    return NULL;
}

/*
 * A returned last_error stays valid until this thread's next call on the handle:
 * another thread's failing and succeeding calls in between must not free it.
 */
static void test_error_string_survives_other_threads(void)
{
    void *h = OPEN("tiny_bert.onnx", SEQ, 24);
    int64_t *bad = make_ids(SEQ, 19), *good = make_ids(SEQ, 19);
    bad[1] = 1000;
    float *out = new_vec(24);
    CHECK_INT(c_embed_runtime_embed(h, bad, NULL, NULL, out), 0);
    const char *error = c_embed_runtime_last_error(h);
    CHECK_PREFIX(error, ORT_ERROR);

    embed_job jobs[2] = {{h, bad, 24, 3, 0}, {h, good, 24, 3, 0}};
    for (int t = 0; t < 2; t++) {
        pthread_t thread;
        CHECK_INT(pthread_create(&thread, NULL, run_embed_job, &jobs[t]), 0);
        CHECK_INT(pthread_join(thread, NULL), 0);
    }
    CHECK_INT(jobs[0].failures, 3);
    CHECK_INT(jobs[1].failures, 0);
    CHECK_PREFIX(error, ORT_ERROR); /* still readable (ASan: not freed) */
    free(out);
    free(bad);
    free(good);
    c_embed_runtime_destroy(h);
}

/* One thread's share of test_concurrent_calls: a batch (rows > 0) or a single embed. */
typedef struct {
    void *handle;
    int64_t rows; /* 0: c_embed_runtime_embed */
    const int64_t *ids;
    const int64_t *mask;
    const int64_t *types;
    const float *expected; /* its result alone */
    size_t floats;         /* in a result */
    int calls;
    int failures;   /* a call returned 0 */
    int mismatches; /* a result differed from `expected` */
} batch_job;

static void *run_batch_job(void *arg)
{
    batch_job *job = arg;
    float *out = new_vec(job->floats);
    for (int i = 0; i < job->calls; i++) {
        int32_t rc = job->rows > 0 ? c_embed_runtime_embed_batch(job->handle, job->rows, job->ids,
                                                                 job->mask, job->types, out)
                                   : c_embed_runtime_embed(job->handle, job->ids, job->mask,
                                                           job->types, out);
        if (rc != 1) {
            job->failures++;
        } else if (!same_bits(out, job->expected, job->floats)) {
            job->mismatches++;
        }
    }
    free(out);
    return NULL;
}

/*
 * Four threads on one handle at once: a 5-row batch, a 40-row batch (two runs of
 * other lengths) and two threads of single embeds, each with its own input; each
 * gets, bit for bit, its result alone.
 */
static void test_concurrent_calls(void)
{
    enum { JOBS = 4 };
    static const int64_t rows[JOBS] = {5, 40, 0, 0};
    static const int calls[JOBS] = {THREAD_CALLS, THREAD_CALLS / 10, THREAD_CALLS, THREAD_CALLS};
    void *h = OPEN("tiny_bert.onnx", SEQ, 24);
    int64_t *ids[JOBS], *masks[JOBS], *types[JOBS];
    float *solo[JOBS];
    batch_job jobs[JOBS];
    pthread_t threads[JOBS];
    for (int t = 0; t < JOBS; t++) {
        size_t n = rows[t] > 0 ? (size_t)rows[t] : 1;
        ids[t] = make_batch_ids(n, SEQ, 70 + 10 * (unsigned)t);
        masks[t] = make_batch_masks(n, SEQ, (unsigned)t + 1);
        types[t] = make_batch_types(n, SEQ);
        solo[t] = rows[t] > 0 ? EMBED_BATCH(h, n, ids[t], masks[t], types[t])
                              : EMBED(h, ids[t], masks[t], types[t]);
        jobs[t] = (batch_job){h,        rows[t],  ids[t], masks[t], types[t],
                              solo[t], n * 24, calls[t], 0,        0};
    }
    /* distinct inputs, so mix-ups show */
    CHECK(!same_bits(solo[0], solo[1], 24) && !same_bits(solo[0], solo[2], 24) &&
          !same_bits(solo[2], solo[3], 24));
    for (int t = 0; t < JOBS; t++) {
        CHECK_INT(pthread_create(&threads[t], NULL, run_batch_job, &jobs[t]), 0);
    }
    for (int t = 0; t < JOBS; t++) {
        set_context("job %d (%lld rows)", t, (long long)rows[t]);
        CHECK_INT(pthread_join(threads[t], NULL), 0);
        CHECK_INT(jobs[t].failures, 0);
        CHECK_INT(jobs[t].mismatches, 0);
        free(solo[t]);
        free(ids[t]);
        free(masks[t]);
        free(types[t]);
    }
    set_context("%s", "");
    c_embed_runtime_destroy(h);
}

/* ---- main ----------------------------------------------------------------------- */

/* ---- text in -------------------------------------------------------------------- */

#define TINY_TOKENIZER "tiny_tokenizer.json"

/* A tiny_bert handle with the WordPiece tokenizer of tools/gen_test_models.py. */
static void *open_text_at(where_t at, int64_t seq_len, int32_t out_dim)
{
    char model[4096], tokenizer[4096];
    model_path(model, sizeof model, "tiny_bert.onnx");
    model_path(tokenizer, sizeof tokenizer, TINY_TOKENIZER);
    void *h = c_embed_runtime_create_with_tokenizer(model, tokenizer, "CPU", seq_len, out_dim, 1, 1);
    record(at, h != NULL, "create_with_tokenizer failed: \"%s\"",
           c_embed_runtime_last_create_error());
    return h;
}

#define OPEN_TEXT(seq_len, out_dim) open_text_at(HERE, (seq_len), (out_dim))

/* embed_text succeeds (1, last_error ""); returns the vector (free() it). */
static float *embed_text_at(where_t at, void *h, const char *text)
{
    float *out = new_vec(out_dim_of(h));
    int32_t rc = c_embed_runtime_embed_text(h, text, out);
    record(at, rc == 1, "embed_text returned %d (last_error \"%s\")", rc,
           c_embed_runtime_last_error(h));
    check_str_at(at, STR_EXACT, "last_error after embed_text", c_embed_runtime_last_error(h), "");
    return out;
}

#define EMBED_TEXT(h, text) embed_text_at(HERE, (h), (text))

/* embed_text fails with `expected` and leaves out_vec untouched. */
static void embed_text_fails_at(where_t at, void *h, const char *text, str_match_t match,
                                const char *expected)
{
    size_t n = out_dim_of(h);
    float *out = new_vec(n);
    check_int_at(at, "embed_text return", c_embed_runtime_embed_text(h, text, out), 0);
    check_str_at(at, match, "last_error", c_embed_runtime_last_error(h), expected);
    record(at, is_untouched(out, n), "out_vec was written by a failed embed_text");
    free(out);
}

#define EMBED_TEXT_FAILS(h, text, expected) embed_text_fails_at(HERE, (h), (text), STR_EXACT, (expected))

/* Bad tokenizer paths fail the create with std_create_error and their reason. */
static void test_text_create_errors(void)
{
    char model[4096], dir[4096], not_json[4096];
    model_path(model, sizeof model, "tiny_bert.onnx");
    model_path(dir, sizeof dir, "");
    model_path(not_json, sizeof not_json, "tiny_bert.onnx");
    static const struct {
        const char *tokenizer;
        str_match_t match;
        const char *error;
    } cases[] = {
        {NULL, STR_EXACT, TOKENIZER_PATH_EMPTY},
        {"", STR_EXACT, TOKENIZER_PATH_EMPTY},
        {"/nonexistent/tokenizer.json", STR_PREFIX,
         CANNOT_LOAD_TOKENIZER " /nonexistent/tokenizer.json: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_context("tokenizer %s", cases[i].tokenizer ? cases[i].tokenizer : "NULL");
        void *h = c_embed_runtime_create_with_tokenizer(model, cases[i].tokenizer, "CPU", SEQ, 24,
                                                        1, 1);
        CHECK(h == NULL);
        check_str_at(HERE, cases[i].match, "last_create_error", c_embed_runtime_last_create_error(),
                     cases[i].error);
    }
    set_context("%s", "");
    /* a directory, and a file that is not a tokenizer.json (the model itself) */
    CHECK(c_embed_runtime_create_with_tokenizer(model, dir, "CPU", SEQ, 24, 1, 1) == NULL);
    CHECK_CONTAINS(c_embed_runtime_last_create_error(), "is a directory");
    CHECK(c_embed_runtime_create_with_tokenizer(model, not_json, "CPU", SEQ, 24, 1, 1) == NULL);
    CHECK_PREFIX(c_embed_runtime_last_create_error(), CANNOT_LOAD_TOKENIZER " ");
    /* the model's errors come first, as with c_embed_runtime_create */
    CHECK(c_embed_runtime_create_with_tokenizer(NULL, NULL, "CPU", SEQ, 24, 1, 1) == NULL);
    CHECK_STR(c_embed_runtime_last_create_error(), MODEL_PATH_EMPTY);
    void *h = OPEN_TEXT(SEQ, 24);
    CHECK_STR(c_embed_runtime_last_create_error(), "");
    c_embed_runtime_destroy(h);
}

/*
 * Text in: the tokens are the tokenizer's ("[CLS] hello world ##s , [UNK] ! [SEP]"),
 * padded with 0; a long text keeps [SEP]; the vector of a text is the vector of
 * its tokens through c_embed_runtime_embed, bit for bit; a batch row is its
 * single embed_text within BATCH_TOLERANCE.
 */
static void test_text_matches_ids(void)
{
    static const int64_t want_ids[SEQ] = {2, 4, 5, 6, 18, 1, 19, 3};
    static const int64_t want_mask[SEQ] = {1, 1, 1, 1, 1, 1, 1, 1};
    static const int64_t zeros[SEQ] = {0};
    const char *text = "Hello worlds, bye!";
    void *h = OPEN_TEXT(SEQ, 24);
    int64_t *ids = make_ids(SEQ, 1), *mask = make_ids(SEQ, 2), *types = make_ids(SEQ, 3);
    CHECK_INT(c_embed_runtime_tokenize(h, text, ids, mask, types), 8);
    CHECK(memcmp(ids, want_ids, sizeof want_ids) == 0);
    CHECK(memcmp(mask, want_mask, sizeof want_mask) == 0);
    CHECK(memcmp(types, zeros, sizeof zeros) == 0);
    CHECK_STR(c_embed_runtime_last_error(h), "");
    float *from_ids = EMBED(h, ids, mask, types);
    float *from_text = EMBED_TEXT(h, text);
    CHECK(same_bits(from_text, from_ids, 24));
    CHECK_UNIT(from_text, 24);

    /* Truncated to seq_len with [SEP] kept; NULL arrays are not written. */
    CHECK_INT(c_embed_runtime_tokenize(h, "hello hello hello hello hello hello hello hello hello "
                                          "hello hello hello hello hello hello hello hello",
                                       ids, NULL, NULL),
              SEQ);
    CHECK_INT(ids[0], 2);
    CHECK_INT(ids[1], 4);
    CHECK_INT(ids[SEQ - 1], 3);
    CHECK_INT(c_embed_runtime_tokenize(h, "", NULL, NULL, NULL), 2);

    /* A batch: each row is its single embed_text. */
    const char *texts[] = {text, "the cat sat on the mat.", "", "Café over THERE?"};
    enum { N = sizeof texts / sizeof texts[0] };
    float *batch = new_vec(N * 24);
    CHECK_INT(c_embed_runtime_embed_text_batch(h, texts, N, batch), 1);
    CHECK_STR(c_embed_runtime_last_error(h), "");
    for (size_t i = 0; i < N; i++) {
        set_context("text %zu", i);
        float *single = EMBED_TEXT(h, texts[i]);
        double diff = max_abs_diff(batch + i * 24, single, 24);
        record(HERE, diff <= BATCH_TOLERANCE, "batch row differs from embed_text by %g", diff);
        free(single);
    }
    set_context("%s", "");
    free(batch);
    free(from_ids);
    free(from_text);
    free(ids);
    free(mask);
    free(types);
    c_embed_runtime_destroy(h);
}

/* Bad text arguments fail with their std_error and the handle keeps working. */
static void test_text_bad_arguments(void)
{
    void *h = OPEN_TEXT(SEQ, 24);
    EMBED_TEXT_FAILS(h, NULL, STD_ERROR "text" ARGUMENT_IS_NULL);
    EMBED_TEXT_FAILS(h, "caf\xc3", STD_ERROR "text" ARGUMENT_NOT_UTF8 " (invalid byte at offset 3)");
    EMBED_TEXT_FAILS(h, "\xff hello", STD_ERROR "text" ARGUMENT_NOT_UTF8 " (invalid byte at offset 0)");
    CHECK_INT(c_embed_runtime_embed_text(h, "hello", NULL), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_TEXT_ARRAYS);
    int64_t *ids = make_ids(SEQ, 4);
    CHECK_INT(c_embed_runtime_tokenize(h, NULL, ids, NULL, NULL), -1);
    CHECK_STR(c_embed_runtime_last_error(h), STD_ERROR "text" ARGUMENT_IS_NULL);
    CHECK_INT(c_embed_runtime_tokenize(h, "\xc0\xaf", ids, NULL, NULL), -1);
    CHECK_PREFIX(c_embed_runtime_last_error(h), STD_ERROR "text" ARGUMENT_NOT_UTF8);

    const char *texts[] = {"hello", NULL, "\xff"};
    float *out = new_vec(3 * 24);
    CHECK_INT(c_embed_runtime_embed_text_batch(h, texts, 3, out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), STD_ERROR "texts[1]" ARGUMENT_IS_NULL);
    texts[1] = "world";
    CHECK_INT(c_embed_runtime_embed_text_batch(h, texts, 3, out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), STD_ERROR "texts[2]" ARGUMENT_NOT_UTF8 " (invalid byte at offset 0)");
    CHECK_INT(c_embed_runtime_embed_text_batch(h, texts, 0, out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), INVALID_ROWS);
    CHECK_INT(c_embed_runtime_embed_text_batch(h, texts, -1, out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), INVALID_ROWS);
    CHECK_INT(c_embed_runtime_embed_text_batch(h, NULL, 2, out), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_TEXT_ARRAYS);
    CHECK_INT(c_embed_runtime_embed_text_batch(h, texts, 2, NULL), 0);
    CHECK_STR(c_embed_runtime_last_error(h), NULL_TEXT_ARRAYS);
    CHECK(is_untouched(out, 3 * 24));
    /* the handle still works */
    CHECK_INT(c_embed_runtime_embed_text_batch(h, texts, 2, out), 1);
    CHECK_STR(c_embed_runtime_last_error(h), "");

    /* NULL handle: 0 / -1, nothing written. */
    float *untouched = new_vec(24);
    CHECK_INT(c_embed_runtime_embed_text(NULL, "hello", untouched), 0);
    CHECK_INT(c_embed_runtime_embed_text_batch(NULL, texts, 2, untouched), 0);
    CHECK_INT(c_embed_runtime_tokenize(NULL, "hello", ids, NULL, NULL), -1);
    CHECK(c_embed_runtime_create_with_tokenizer(NULL, NULL, NULL, 0, 0, 0, 0) == NULL);
    CHECK(is_untouched(untouched, 24));
    c_embed_runtime_destroy(h);

    /* A handle without a tokenizer: the text calls say how to get one; ids work. */
    void *plain = OPEN("tiny_bert.onnx", SEQ, 24);
    EMBED_TEXT_FAILS(plain, "hello", NO_TOKENIZER);
    CHECK_INT(c_embed_runtime_embed_text_batch(plain, texts, 2, out), 0);
    CHECK_STR(c_embed_runtime_last_error(plain), NO_TOKENIZER);
    CHECK_INT(c_embed_runtime_tokenize(plain, "hello", ids, NULL, NULL), -1);
    CHECK_STR(c_embed_runtime_last_error(plain), NO_TOKENIZER);
    free(EMBED(plain, ids, NULL, NULL));
    c_embed_runtime_destroy(plain);
    free(untouched);
    free(out);
    free(ids);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    g_model_dir = argv[1];
    gate(NULL);

#if defined(__SANITIZE_ADDRESS__)
    test_sanitizer_is_linked();
#endif
    test_version(); /* first: it needs no handle and no ONNX Runtime */
    test_null_handle();
    test_create_errors();
    test_devices_that_reach_the_cpu();
    test_last_create_error_reset();
    test_last_create_error_is_process_global();
    test_clamps();
    test_create_destroy_cycles();
    test_optional_arrays_defaults();
    test_fold_to_out_dim();
    test_determinism();
    test_padding_invariance();
    test_all_zero_mask();
    test_valid_models();
    test_models_sharing_tiny_bert_weights();
    test_position_ids_are_fed();
    test_bad_output_models();
    test_static_length_must_be_seq_len();
    test_non_finite_output_fails();
    test_out_of_vocabulary_ids();
    test_no_fallback_on_cpu();
    test_embed_batch_matches_single();
    test_embed_batch_split_into_runs();
    test_embed_batch_ort_error_recovers();
    test_hidden_size();
    test_onnxruntime_in_use();
    test_error_string_survives_other_threads();
    test_concurrent_calls();
    test_text_create_errors();
    test_text_matches_ids();
    test_text_bad_arguments();

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
