/*
 * libFuzzer harness for the C ABI of libc_embed_runtime (see fuzz/README.md).
 *
 * Each input is a little program: a sequence of ABI calls, decoded from the
 * bytes by the reader below (an exhausted input reads as zeros). It creates
 * handles with fuzzed arguments, embeds through them with fuzzed sizes, token
 * ids, masks, types and buffer placements, calls the getters, destroys handles
 * (twice, too) and calls everything on NULL, destroyed and wild handles.
 *
 * What counts as a finding (the harness aborts, libFuzzer saves the input):
 *  - AddressSanitizer / UndefinedBehaviorSanitizer reports in this file;
 *  - a SIGSEGV on a guard page: every array is placed either at the end or at
 *    the start of an mmap'ed region fenced by PROT_NONE pages (or in an exact
 *    ASan heap block), so a read or write of even one element beyond what the
 *    header allows faults, also from the library's Rust code and from ONNX
 *    Runtime, which ASan does not instrument;
 *  - a broken contract (CHECK below): a return value, getter value or error
 *    string that the header rules out, input arrays modified, the output of a
 *    failed embed or of an invalid handle written, a non-finite or
 *    non-normalised vector, a batch row that differs from embedding that row
 *    alone, "unknown_error" (a Rust panic caught at the boundary);
 *  - a hang (-timeout) or an allocation above -malloc_limit_mb.
 *
 * Buffers are never shorter than the header says the library reads or writes
 * (rows * seq_len values per array, rows * out_dim floats), except for calls
 * that the header says read nothing (invalid handle, rows <= 0, rows whose
 * product with seq_len or out_dim overflows): those get zero-length arrays
 * sitting right on a guard page. Calls that would need more than
 * MAX_ELEMENTS elements are skipped.
 *
 * Model loading costs milliseconds, embedding tens of microseconds, so besides
 * the handles each input creates (at most MAX_SLOTS live, all destroyed when
 * the input ends), the harness keeps one *cached* handle per valid model, with
 * fixed arguments (CACHED below), created on first use and kept for the whole
 * process. Their state (cached run shapes, grown buffers) carries over from
 * input to input, so a finding on a cached handle may need the inputs that ran
 * before it; every finding on a per-input handle reproduces from its file alone.
 *
 * Environment: FUZZ_MODEL_DIR, the directory of the generated test models
 * (default models/test, relative to the working directory).
 */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "c_embed_runtime.h"
#include "../c_tests/contract_errors.h"

#define MAX_ELEMENTS ((size_t)1 << 16) /* per array, per call */
#define MAX_SLOTS 4                    /* live per-input handles */
#define MAX_OPS 48                     /* calls per input */
#define MAX_STALE 8

/* ---- findings ---------------------------------------------------------- */

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("\nfuzz_abi: CONTRACT VIOLATION: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
#define CHECK(cond, ...) \
    do { if (!(cond)) fail(__VA_ARGS__); } while (0)

/* FUZZ_TRACE=1: print each call (to read a crash file: run the binary on it). */
static int trace;
#define TRACE(...) \
    do { if (trace) fprintf(stderr, "fuzz_abi: " __VA_ARGS__); } while (0)

/* ---- reading the program ------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t n;
} Reader;

static uint8_t u8(Reader *r) {
    if (r->n == 0) return 0;
    r->n--;
    return *r->p++;
}
/* Little-endian; the low part is read first (one statement each: C leaves the
 * order of evaluation of `a() | b()` unspecified). */
static uint16_t u16(Reader *r) {
    uint16_t lo = u8(r);
    return (uint16_t)(lo | (u8(r) << 8));
}
static uint32_t u32(Reader *r) {
    uint32_t lo = u16(r);
    return lo | ((uint32_t)u16(r) << 16);
}
static uint64_t u64(Reader *r) {
    uint64_t lo = u32(r);
    return lo | ((uint64_t)u32(r) << 32);
}

/* Deterministic filler for long arrays once the explicit bytes run out. */
static uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static const int64_t INTERESTING_I64[] = {
    0, 1, -1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 99, 100, 101, -100, -101,
    127, 128, 255, 256, 511, 512, 513, 30521, 30522, 65535, 65536,
    INT32_MAX, INT32_MIN, (int64_t)INT32_MAX + 1, (int64_t)INT32_MIN - 1,
    INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1, (int64_t)1 << 32,
    -((int64_t)1 << 32), (int64_t)1 << 62, -((int64_t)1 << 62),
    (int64_t)1 << 20, ((int64_t)1 << 20) + 1, ((int64_t)1 << 20) - 1,
};
#define N_INTERESTING (sizeof INTERESTING_I64 / sizeof INTERESTING_I64[0])

static int64_t interesting(Reader *r) { return INTERESTING_I64[u8(r) % N_INTERESTING]; }

/* ---- models -------------------------------------------------------------- */

/* Every model tools/gen_test_models.py generates (the per-input creates use all). */
static const char *const MODEL_NAMES[] = {
    "tiny_bert", "tiny_bert_no_types", "tiny_bert_position_ids", "tiny_bert_extra_inputs",
    "tiny_rank2", "tiny_int64_first", "tiny_bert_h48", "tiny_static16",
    "tiny_fallback_marker", "bad_rank1_output", "bad_rank0_output", "bad_wide_hidden",
    "bad_int32_extra", "bad_no_float_output", "bad_empty_output", "bad_sequence_input",
};
#define N_MODELS (sizeof MODEL_NAMES / sizeof MODEL_NAMES[0])
static char model_paths[N_MODELS][4096];
static char model_dir[4096];

/* The cached handles: one per model that creates, with fixed arguments. */
typedef struct {
    int model;
    const char *device;
    int64_t seq_len;
    int32_t out_dim, threads, strict;
    void *handle; /* created on first use */
} Cached;
static Cached CACHED[] = {
    {0, "CPU", 16, 32, 1, 0, NULL},  {0, "cpu", 128, 7, 2, 1, NULL},
    {1, "AUTO", 12, 40, 1, 0, NULL}, {2, "HOST", 600, 32, 1, 0, NULL},
    {3, "CPU", 8, 64, 1, 0, NULL},   {4, "CPU", 20, 16, 1, 0, NULL},
    {5, "", 9, 32, 1, 0, NULL},      {6, "CPU", 24, 48, 1, 0, NULL},
    {6, "CPU", 33, 5, 1, 0, NULL},   {7, "CPU", 16, 32, 1, 0, NULL},
    {7, "CPU", 16, 8, 2, 0, NULL},   {8, "CPU", 16, 32, 1, 1, NULL},
    {9, "CPU", 8, 8, 1, 0, NULL},    {10, "CPU", 8, 8, 1, 0, NULL},
    {11, "CPU", 8, 8, 1, 0, NULL},   {11, "CPU", 16, 4, 1, 0, NULL},
    {14, "CPU", 8, 8, 1, 0, NULL},
};
#define N_CACHED (sizeof CACHED / sizeof CACHED[0])

/* ---- handles the harness knows about ------------------------------------- */

typedef struct {
    void *handle;    /* NULL: empty slot */
    int64_t seq_len; /* the clamped values the header promises */
    int32_t out_dim;
} Live;

static Live slots[MAX_SLOTS];
static Live cached_live[N_CACHED];
static void *stale[MAX_STALE];
static unsigned n_stale;

static int64_t clamp_seq(int64_t s) { return s < 8 ? 8 : s; }
static int32_t clamp_out(int32_t d) { return d < 1 ? 1 : d; }

static const Live *find_live(void *h) {
    if (!h) return NULL;
    for (int i = 0; i < MAX_SLOTS; i++)
        if (slots[i].handle == h) return &slots[i];
    for (size_t i = 0; i < N_CACHED; i++)
        if (cached_live[i].handle == h) return &cached_live[i];
    return NULL;
}

static void check_create_result(void *h, const char *what) {
    const char *err = c_embed_runtime_last_create_error();
    CHECK(err != NULL, "last_create_error returned NULL");
    if (h) {
        CHECK(err[0] == '\0', "create succeeded (%s) but last_create_error is \"%s\"", what, err);
        CHECK(find_live(h) == NULL, "create returned a handle that is already live: %p", h);
        for (unsigned i = 0; i < n_stale && i < MAX_STALE; i++)
            CHECK(stale[i] != h, "create returned a destroyed handle again: %p", h);
    } else {
        CHECK(!strncmp(err, STD_CREATE_ERROR, sizeof STD_CREATE_ERROR - 1) || !strncmp(err, ORT_CREATE_ERROR, sizeof ORT_CREATE_ERROR - 1) ||
                  !strcmp(err, UNKNOWN_CREATE_ERROR),
              "create failed (%s) with an error outside the contract: \"%s\"", what, err);
        CHECK(strcmp(err, UNKNOWN_CREATE_ERROR) != 0,
              "create (%s) panicked inside the library (unknown_create_error)", what);
    }
}

static void *cached_handle(unsigned which) {
    Cached *c = &CACHED[which % N_CACHED];
    size_t i = (size_t)(c - CACHED);
    if (!c->handle) {
        c->handle = c_embed_runtime_create(model_paths[c->model], c->device, c->seq_len,
                                           c->out_dim, c->threads, c->strict);
        check_create_result(c->handle, MODEL_NAMES[c->model]);
        if (!c->handle) {
            fprintf(stderr, "fuzz_abi: cannot create the cached handle of %s: %s\n",
                    model_paths[c->model], c_embed_runtime_last_create_error());
            exit(2); /* a set-up problem, not a finding */
        }
        cached_live[i] = (Live){c->handle, clamp_seq(c->seq_len), clamp_out(c->out_dim)};
    }
    return c->handle;
}

static void remember_stale(void *h) { stale[n_stale++ % MAX_STALE] = h; }

/* ---- guarded memory ------------------------------------------------------- */

/*
 * An arena of ARENA_BYTES between two PROT_NONE pages. A buffer placed at its
 * end faults on the first byte past it; one placed at its start faults on the
 * first byte before it.
 */
#define ARENA_BYTES (MAX_ELEMENTS * sizeof(int64_t))
typedef struct {
    uint8_t *start;
} Arena;
enum { A_IDS, A_MASK, A_TYPES, A_OUT, A_SPARE, N_ARENAS };
static Arena arenas[N_ARENAS];
static size_t page;

static void arena_init(Arena *a) {
    size_t total = ARENA_BYTES + 2 * page;
    uint8_t *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        perror("fuzz_abi: mmap");
        exit(2);
    }
    if (mprotect(base, page, PROT_NONE) || mprotect(base + page + ARENA_BYTES, page, PROT_NONE)) {
        perror("fuzz_abi: mprotect");
        exit(2);
    }
    a->start = base + page;
}

/* Where a buffer lives for one call. */
typedef enum { AT_END, AT_START, ON_HEAP, IS_NULL, MISALIGNED } Placement;

typedef struct {
    void *ptr;      /* what the library gets */
    void *heap;     /* to free, for ON_HEAP / MISALIGNED */
    size_t bytes;   /* the size the library may use */
    Placement where;
} Buf;

static Placement pick_placement(Reader *r, int allow_null) {
    switch (u8(r) % 16) {
    case 0: case 1: case 2: case 3: case 4: case 5: return AT_END;
    case 6: case 7: case 8: return AT_START;
    case 9: case 10: case 11: case 12: return ON_HEAP;
    case 13: case 14: return allow_null ? IS_NULL : AT_END;
    default: return MISALIGNED;
    }
}

static Buf buf_place(Arena *a, Placement where, size_t bytes) {
    Buf b = {NULL, NULL, bytes, where};
    switch (where) {
    case AT_END: b.ptr = a->start + ARENA_BYTES - bytes; break;
    case AT_START: b.ptr = a->start; break;
    case ON_HEAP:
        b.heap = malloc(bytes ? bytes : 1);
        if (!b.heap) abort();
        b.ptr = b.heap;
        break;
    case IS_NULL: break;
    case MISALIGNED:
        b.heap = malloc(bytes + 8);
        if (!b.heap) abort();
        b.ptr = (uint8_t *)b.heap + 1; /* never a valid int64_t* / float* */
        break;
    }
    return b;
}

/* A zero-length array on a guard page: any access faults. */
static void *guard_ptr(Arena *a) { return a->start + ARENA_BYTES; }

static void buf_free(Buf *b) {
    free(b->heap);
    b->heap = NULL;
}

/* ---- array contents ------------------------------------------------------- */

static void patch(Reader *r, int64_t *v, size_t n) {
    unsigned k = u8(r) % 4;
    for (unsigned i = 0; i < k && n; i++) {
        size_t at = u32(r) % n;
        v[at] = (u8(r) & 1) ? interesting(r) : (int64_t)u64(r);
    }
}

static void fill_ids(Reader *r, int64_t *v, size_t n) {
    uint64_t s = u32(r);
    int64_t c;
    switch (u8(r) % 10) {
    case 0: case 1: case 2: /* in vocabulary (100 ids) */
        for (size_t i = 0; i < n; i++) v[i] = (int64_t)(rng_next(&s) % 100);
        break;
    case 3: /* in vocabulary, negative indices too (Gather accepts -100..-1) */
        for (size_t i = 0; i < n; i++) v[i] = (int64_t)(rng_next(&s) % 200) - 100;
        break;
    case 4:
        c = interesting(r);
        for (size_t i = 0; i < n; i++) v[i] = c;
        break;
    case 5:
        for (size_t i = 0; i < n; i++) v[i] = INTERESTING_I64[rng_next(&s) % N_INTERESTING];
        break;
    case 6: /* explicit values from the input, then in vocabulary */
        for (size_t i = 0; i < n; i++) v[i] = r->n >= 8 && i < 64 ? (int64_t)u64(r) : (int64_t)(rng_next(&s) % 100);
        break;
    case 7:
        for (size_t i = 0; i < n; i++) v[i] = (int64_t)i;
        break;
    case 8:
        for (size_t i = 0; i < n; i++) v[i] = (int64_t)rng_next(&s);
        break;
    default:
        memset(v, 0, n * sizeof *v);
    }
    patch(r, v, n);
}

static void fill_mask(Reader *r, int64_t *v, size_t n, size_t seq_len) {
    uint64_t s = u32(r);
    size_t len;
    switch (u8(r) % 10) {
    case 0: case 1: /* each row: ones then zeros, fuzzed length */
        len = u16(r);
        for (size_t i = 0; i < n; i++) v[i] = (i % seq_len) < (len + i / seq_len) % (seq_len + 1);
        break;
    case 2:
        for (size_t i = 0; i < n; i++) v[i] = 1;
        break;
    case 3:
        memset(v, 0, n * sizeof *v);
        break;
    case 4: case 5:
        for (size_t i = 0; i < n; i++) v[i] = (int64_t)(rng_next(&s) & 1);
        break;
    case 6: /* values other than 0/1 */
        for (size_t i = 0; i < n; i++) v[i] = (int64_t)(rng_next(&s) % 5) - 2;
        break;
    default:
        fill_ids(r, v, n);
        return;
    }
    patch(r, v, n);
}

static void fill_types(Reader *r, int64_t *v, size_t n) {
    uint64_t s = u32(r);
    switch (u8(r) % 6) {
    case 0:
        memset(v, 0, n * sizeof *v);
        break;
    case 1:
        for (size_t i = 0; i < n; i++) v[i] = 1;
        break;
    case 2: case 3:
        for (size_t i = 0; i < n; i++) v[i] = (int64_t)(rng_next(&s) & 1);
        break;
    default:
        fill_ids(r, v, n);
        return;
    }
    patch(r, v, n);
}

/* ---- picking handles ------------------------------------------------------ */

/* A value that is not a live handle: NULL, destroyed, or wild. */
static void *invalid_handle(Reader *r) {
    static int64_t on_stack_like;
    void *h = NULL;
    switch (u8(r) % 8) {
    case 0: h = NULL; break;
    case 1: case 2: h = n_stale ? stale[u8(r) % (n_stale < MAX_STALE ? n_stale : MAX_STALE)] : NULL; break;
    case 3: h = (void *)(uintptr_t)u64(r); break;
    /* The library's tokens are 0xCE00_0000_0000_0000 | (n << 4): near misses and old ones. */
    case 4: {
        uint64_t n = u16(r);
        h = (void *)(uintptr_t)(0xCE00000000000000ull | (n << 4) | (u8(r) & 0xF));
        break;
    }
    case 5: h = &on_stack_like; break;
    case 6: h = (void *)(uintptr_t)interesting(r); break;
    default: h = arenas[A_SPARE].start; break;
    }
    return find_live(h) ? NULL : h; /* a guess that hit a live handle is not "invalid" */
}

/* Some handle: live (cached or per-input) or invalid. *live tells which. */
static void *pick_handle(Reader *r, const Live **live) {
    uint8_t k = u8(r) % 16;
    void *h;
    if (k < 9) {
        h = cached_handle(u8(r));
    } else if (k < 13) {
        h = slots[k - 9].handle; /* NULL when the slot is empty */
    } else {
        h = invalid_handle(r);
    }
    *live = find_live(h);
    return h;
}

/* ---- checks shared by the calls -------------------------------------------- */

static void check_invalid_getters(void *h) {
    const char *s;
    s = c_embed_runtime_last_error(h);
    CHECK(s && !strcmp(s, "invalid_handle"), "last_error(%p invalid) = \"%s\"", h, s ? s : "(NULL)");
    s = c_embed_runtime_selected_device(h);
    CHECK(s && !strcmp(s, "invalid"), "selected_device(%p invalid) = \"%s\"", h, s ? s : "(NULL)");
    s = c_embed_runtime_cpu_fallback_detail(h);
    CHECK(s && !strcmp(s, "invalid_handle"), "cpu_fallback_detail(%p invalid) = \"%s\"", h, s ? s : "(NULL)");
    CHECK(c_embed_runtime_cpu_fallback_detected(h) == 0, "cpu_fallback_detected(%p invalid) != 0", h);
    CHECK(c_embed_runtime_output_dim(h) == 0, "output_dim(%p invalid) != 0", h);
    CHECK(c_embed_runtime_seq_len(h) == 0, "seq_len(%p invalid) != 0", h);
    CHECK(c_embed_runtime_hidden_size(h) == 0, "hidden_size(%p invalid) != 0", h);
}

static void check_live_getters(void *h, const Live *l) {
    const char *dev = c_embed_runtime_selected_device(h);
    CHECK(dev && (!strcmp(dev, "CPU") || !strcmp(dev, "CUDA") || !strcmp(dev, "GPU") || !strcmp(dev, "NPU")),
          "selected_device(%p) = \"%s\"", h, dev ? dev : "(NULL)");
    int32_t fb = c_embed_runtime_cpu_fallback_detected(h);
    CHECK(fb == 0 || fb == 1, "cpu_fallback_detected = %d", fb);
    const char *detail = c_embed_runtime_cpu_fallback_detail(h);
    CHECK(detail != NULL, "cpu_fallback_detail returned NULL");
    size_t dlen = strlen(detail);
    CHECK(dlen <= 640, "cpu_fallback_detail is %zu bytes (at most 640)", dlen);
    if (!strcmp(dev, "CPU")) CHECK(fb == 0 && dlen == 0, "a CPU handle reports a CPU fallback: \"%s\"", detail);
    CHECK(c_embed_runtime_output_dim(h) == l->out_dim, "output_dim = %d, expected %d",
          c_embed_runtime_output_dim(h), l->out_dim);
    CHECK(c_embed_runtime_seq_len(h) == l->seq_len, "seq_len = %" PRId64 ", expected %" PRId64,
          c_embed_runtime_seq_len(h), l->seq_len);
    int32_t hidden = c_embed_runtime_hidden_size(h);
    CHECK(hidden >= 0 && hidden <= 16384, "hidden_size = %d", hidden);
    const char *err = c_embed_runtime_last_error(h);
    CHECK(err != NULL, "last_error returned NULL");
    (void)strlen(err);
}

static void check_embed_error(void *h, int32_t rc, const char *what) {
    const char *err = c_embed_runtime_last_error(h);
    CHECK(err != NULL, "last_error returned NULL after %s", what);
    if (rc == 1) {
        CHECK(err[0] == '\0', "%s returned 1 but last_error is \"%s\"", what, err);
    } else {
        CHECK(rc == 0, "%s returned %d", what, rc);
        CHECK(!strncmp(err, STD_ERROR, sizeof STD_ERROR - 1) || !strncmp(err, ORT_ERROR, sizeof ORT_ERROR - 1) ||
                  !strcmp(err, UNKNOWN_EMBED_ERROR),
              "%s failed with an error outside the contract: \"%s\"", what, err);
        CHECK(strcmp(err, UNKNOWN_EMBED_ERROR) != 0, "%s panicked inside the library (unknown_error)", what);
    }
}

static void check_vectors(const float *out, size_t rows, size_t out_dim, const char *what) {
    for (size_t r = 0; r < rows; r++) {
        double sq = 0;
        for (size_t i = 0; i < out_dim; i++) {
            float x = out[r * out_dim + i];
            CHECK(isfinite(x), "%s: row %zu value %zu is not finite (%g)", what, r, i, (double)x);
            sq += (double)x * x;
        }
        /* L2-normalised, or left alone when its norm is ~0 (pooling.rs). */
        CHECK(fabs(sqrt(sq) - 1.0) < 1e-4 || sq <= 1e-10, "%s: row %zu has norm %g", what, r, sqrt(sq));
    }
}

#define SENTINEL 12345.0f

/* ---- the calls ------------------------------------------------------------- */

static const char *const DEVICES[] = {
    NULL, "", "CPU", "cpu", "HoSt", "AUTO", "auto", "NPU", "INTEL_NPU", "GPU", "CUDA",
    "nvidia", "NVIDIA_GPU", "CPU ", " CPU", "CPUX", "C", "gpu\n", "\xff\xfe",
};
#define N_DEVICES (sizeof DEVICES / sizeof DEVICES[0])

/* A string from the input: up to 63 bytes, no NUL. */
static void fuzz_string(Reader *r, char *dst, size_t cap) {
    size_t len = u8(r) % (cap - 1), n = 0;
    while (n < len && r->n) {
        uint8_t c = u8(r);
        if (c) dst[n++] = (char)c;
    }
    dst[n] = '\0';
}

static int64_t fuzz_seq_len(Reader *r) {
    switch (u8(r) % 8) {
    case 0: case 1: case 2: return u8(r) % 40;          /* around the clamp at 8 */
    case 3: return 16 + u16(r) % 1024;
    case 4: case 5: return interesting(r);               /* incl. negatives and > 1<<20 */
    case 6: return (int64_t)u64(r);
    default: return 16;
    }
}

static int32_t fuzz_out_dim(Reader *r) {
    switch (u8(r) % 6) {
    case 0: case 1: return (int32_t)(u8(r) % 80);
    case 2: return (int32_t)interesting(r);
    case 3: return (int32_t)u32(r);
    default: return 32;
    }
}

static int32_t fuzz_threads(Reader *r) {
    /* At most 4 intra-op threads (speed); zero and negatives are clamped to 1. */
    static const int32_t T[] = {1, 1, 1, 2, 4, 0, -1, INT32_MIN};
    return T[u8(r) % 8];
}

static void op_create(Reader *r) {
    int slot = u8(r) % MAX_SLOTS;
    char path_buf[256], dev_buf[64];
    const char *path;
    uint8_t m = u8(r) % (N_MODELS + 6);
    if (m < N_MODELS) path = model_paths[m];
    else if (m == N_MODELS) path = NULL;
    else if (m == N_MODELS + 1) path = "";
    else if (m == N_MODELS + 2) path = model_dir; /* a directory */
    else if (m == N_MODELS + 3) path = "/nonexistent/model.onnx";
    else if (m == N_MODELS + 4) path = "/dev/null"; /* not an ONNX model */
    else {
        /* A fuzzed name inside the model directory (never /dev/stdin and the like). */
        char name[64];
        fuzz_string(r, name, sizeof name);
        snprintf(path_buf, sizeof path_buf, "%s/%s", model_dir, name);
        path = path_buf;
    }
    const char *device;
    uint8_t d = u8(r) % (N_DEVICES + 1);
    if (d < N_DEVICES) {
        device = DEVICES[d];
    } else {
        fuzz_string(r, dev_buf, sizeof dev_buf);
        device = dev_buf;
    }
    /* Most creates ask for the CPU: AUTO and GPU also end up there, after the other steps fail. */
    if (d >= 5 && d < N_DEVICES && (u8(r) & 1)) device = "CPU";
    int64_t seq_len = fuzz_seq_len(r);
    int32_t out_dim = fuzz_out_dim(r);
    int32_t threads = fuzz_threads(r);
    int32_t strict = (u8(r) % 3) == 0 ? (int32_t)u32(r) : 0;
    /* Memory caps for two models (a property of the model, not of the library):
     * bad_wide_hidden's output is [rows, len, 16385] floats (4 GiB at 65536
     * tokens); tiny_bert_extra_inputs has a static [1, 32] input, so it is
     * never run shorter than seq_len, and create warms it up at full length
     * (about 740 MB and 1.6 s at 2^20). Values above 2^20 are kept: create
     * rejects them before loading anything. */
    if (seq_len <= ((int64_t)1 << 20) && m < N_MODELS) {
        if (!strcmp(MODEL_NAMES[m], "bad_wide_hidden") && seq_len > 64) seq_len = 64;
        if (!strcmp(MODEL_NAMES[m], "tiny_bert_extra_inputs") && seq_len > (int64_t)MAX_ELEMENTS)
            seq_len = (int64_t)MAX_ELEMENTS;
    }

    if (slots[slot].handle) { /* replace: destroy first, so at most MAX_SLOTS live */
        c_embed_runtime_destroy(slots[slot].handle);
        remember_stale(slots[slot].handle);
        slots[slot].handle = NULL;
    }
    void *h = c_embed_runtime_create(path, device, seq_len, out_dim, threads, strict);
    TRACE("create(\"%s\", \"%s\", seq_len %" PRId64 ", out_dim %d, threads %d, strict %d) = %p into slot %d: \"%s\"\n",
          path ? path : "(NULL)", device ? device : "(NULL)", seq_len, out_dim, threads, strict, h, slot,
          c_embed_runtime_last_create_error());
    check_create_result(h, path ? path : "(NULL path)");
    if (!path || !*path) CHECK(h == NULL, "create with an empty model path succeeded");
    if (seq_len > ((int64_t)1 << 20)) CHECK(h == NULL, "create with seq_len %" PRId64 " succeeded", seq_len);
    if (h) {
        slots[slot] = (Live){h, clamp_seq(seq_len), clamp_out(out_dim)};
        check_live_getters(h, &slots[slot]);
    }
}

static void op_destroy(Reader *r) {
    uint8_t k = u8(r) % 4;
    if (k < 3) {
        int slot = u8(r) % MAX_SLOTS;
        void *h = slots[slot].handle;
        TRACE("destroy(%p) of slot %d%s\n", h, slot, k == 0 && h ? ", twice" : "");
        c_embed_runtime_destroy(h);
        if (h) {
            slots[slot].handle = NULL;
            remember_stale(h);
            check_invalid_getters(h);
            if (k == 0) c_embed_runtime_destroy(h); /* twice */
        }
    } else {
        void *h = invalid_handle(r);
        TRACE("destroy(%p) invalid\n", h);
        c_embed_runtime_destroy(h);
        check_invalid_getters(h);
    }
}

static void op_getters(Reader *r) {
    const Live *l;
    void *h = pick_handle(r, &l);
    TRACE("getters(%p %s)\n", h, l ? "live" : "invalid");
    if (l) check_live_getters(h, l);
    else check_invalid_getters(h);
    const char *v = c_embed_runtime_version();
    unsigned a, b, c;
    char end;
    CHECK(v && sscanf(v, "%u.%u.%u%c", &a, &b, &c, &end) == 3, "version = \"%s\"", v ? v : "(NULL)");
    const char *e = c_embed_runtime_last_create_error();
    CHECK(e != NULL, "last_create_error returned NULL");
    (void)strlen(e);
}

static int64_t fuzz_rows(Reader *r) {
    switch (u8(r) % 8) {
    case 0: return interesting(r);
    case 1: return (int64_t)u64(r);
    case 2: return 1 + u8(r) % 70; /* across the 32-row runs */
    default: return 1 + u8(r) % 5;
    }
}

/* rows * seq_len and rows * out_dim, when both are <= MAX_ELEMENTS. */
static int shapes_fit(int64_t rows, int64_t seq_len, int32_t out_dim, size_t *tokens, size_t *outs,
                      int *overflow) {
    *overflow = 0;
    if (rows <= 0) return 0;
    uint64_t t, o;
    if (__builtin_mul_overflow((uint64_t)rows, (uint64_t)seq_len, &t) ||
        __builtin_mul_overflow((uint64_t)rows, (uint64_t)out_dim, &o)) {
        *overflow = 1;
        return 0;
    }
    if (t > MAX_ELEMENTS || o > MAX_ELEMENTS) return 0;
    *tokens = (size_t)t;
    *outs = (size_t)o;
    return 1;
}

static int32_t call_embed(int batch, void *h, int64_t rows, const int64_t *ids, const int64_t *mask,
                          const int64_t *types, float *out) {
    return batch ? c_embed_runtime_embed_batch(h, rows, ids, mask, types, out)
                 : c_embed_runtime_embed(h, ids, mask, types, out);
}

/* Calls that must read nothing: every array is a zero-length array on a guard page. */
static void embed_reading_nothing(int batch, void *h, int64_t rows, const char *why) {
    int32_t rc = call_embed(batch, h, rows, guard_ptr(&arenas[A_IDS]), guard_ptr(&arenas[A_MASK]),
                            guard_ptr(&arenas[A_TYPES]), guard_ptr(&arenas[A_OUT]));
    CHECK(rc == 0, "embed%s on %s returned %d", batch ? "_batch" : "", why, rc);
}

/* One embed (batch = 0) or embed_batch call on some handle, with fuzzed arrays. */
static void op_embed(Reader *r, int batch) {
    const Live *l;
    void *h = pick_handle(r, &l);
    int64_t rows = batch ? fuzz_rows(r) : 1;
    TRACE("%s(%p %s, rows %" PRId64 ")\n", batch ? "embed_batch" : "embed", h, l ? "live" : "invalid", rows);
    if (!l) {
        embed_reading_nothing(batch, h, rows, "an invalid handle");
        check_invalid_getters(h);
        return;
    }
    size_t tokens = 0, outs = 0;
    int overflow;
    if (!shapes_fit(rows, l->seq_len, l->out_dim, &tokens, &outs, &overflow)) {
        if (rows <= 0 || overflow) {
            embed_reading_nothing(batch, h, rows, rows <= 0 ? "rows <= 0" : "overflowing rows");
            const char *err = c_embed_runtime_last_error(h);
            CHECK(!strcmp(err, INVALID_ROWS), "bad rows %" PRId64 ": last_error \"%s\"", rows, err);
        }
        return; /* too large to allocate: skipped */
    }
    Placement p_ids = pick_placement(r, 1), p_mask = pick_placement(r, 1),
              p_types = pick_placement(r, 1), p_out = pick_placement(r, 1);
    Buf ids = buf_place(&arenas[A_IDS], p_ids, tokens * 8);
    Buf mask = buf_place(&arenas[A_MASK], p_mask, tokens * 8);
    Buf types = buf_place(&arenas[A_TYPES], p_types, tokens * 8);
    Buf out = buf_place(&arenas[A_OUT], p_out, outs * 4);
    /* Contents are generated here, then copied where they go (and compared after). */
    static int64_t keep_ids[MAX_ELEMENTS], keep_mask[MAX_ELEMENTS], keep_types[MAX_ELEMENTS];
    fill_ids(r, keep_ids, tokens);
    fill_mask(r, keep_mask, tokens, (size_t)l->seq_len);
    fill_types(r, keep_types, tokens);
    if (ids.ptr) memcpy(ids.ptr, keep_ids, tokens * 8);
    if (mask.ptr) memcpy(mask.ptr, keep_mask, tokens * 8);
    if (types.ptr) memcpy(types.ptr, keep_types, tokens * 8);
    static const float sentinel = SENTINEL; /* memcpy: out.ptr may be misaligned */
    if (out.ptr)
        for (size_t i = 0; i < outs; i++) memcpy((uint8_t *)out.ptr + 4 * i, &sentinel, 4);

    int32_t rc = call_embed(batch, h, rows, ids.ptr, mask.ptr, types.ptr, out.ptr);
    TRACE("  seq_len %" PRId64 " out_dim %d, placements ids %d mask %d types %d out %d (0 end, 1 start, 2 heap, "
          "3 NULL, 4 misaligned), ids[0] %" PRId64 " mask[0] %" PRId64 ": %d \"%s\"\n",
          l->seq_len, l->out_dim, p_ids, p_mask, p_types, p_out, tokens ? keep_ids[0] : 0,
          tokens ? keep_mask[0] : 0, rc, c_embed_runtime_last_error(h));
    check_embed_error(h, rc, batch ? "embed_batch" : "embed");

    /* Arrays the library only reads are unchanged. */
    if (ids.ptr) CHECK(!memcmp(ids.ptr, keep_ids, tokens * 8), "embed wrote into input_ids");
    if (mask.ptr) CHECK(!memcmp(mask.ptr, keep_mask, tokens * 8), "embed wrote into attention_mask");
    if (types.ptr) CHECK(!memcmp(types.ptr, keep_types, tokens * 8), "embed wrote into token_type_ids");
    int unusable = p_ids == IS_NULL || p_ids == MISALIGNED || p_out == IS_NULL || p_out == MISALIGNED;
    if (unusable) {
        CHECK(rc == 0, "embed succeeded with a NULL or misaligned input_ids/out_vec");
        const char *err = c_embed_runtime_last_error(h);
        CHECK(!strcmp(err, NULL_ARRAYS),
              "NULL/misaligned ids or out: last_error \"%s\"", err);
    } else if (p_mask == MISALIGNED || p_types == MISALIGNED) {
        /* Rejected (README: "NULL or misaligned arrays: 0"), never read as NULL. */
        const char *err = c_embed_runtime_last_error(h);
        CHECK(rc == 0 && !strncmp(err, STD_ERROR, sizeof STD_ERROR - 1) && strstr(err, "aligned"),
              "a misaligned attention_mask/token_type_ids gave %d, \"%s\"", rc, err);
    }
    if (rc == 1) {
        check_vectors(out.ptr, (size_t)rows, (size_t)l->out_dim, batch ? "embed_batch" : "embed");
    } else if (!batch && out.ptr) {
        for (size_t i = 0; i < outs; i++)
            CHECK(!memcmp((uint8_t *)out.ptr + 4 * i, &sentinel, 4), "a failed embed wrote out_vec[%zu]", i);
    }
    buf_free(&ids);
    buf_free(&mask);
    buf_free(&types);
    buf_free(&out);
}

/*
 * The batch contract: embed_batch succeeds exactly when every row embeds alone,
 * and each row's vector is that row's embed within float rounding.
 *
 * A run covers positions up to the last non-zero mask value of its longest
 * row; the library feeds each row's own tail after that as padding, so ids or
 * types there never reach the model, alone or in a batch (fuzz/README.md,
 * "Findings": this check found that they did).
 */
static void op_batch_vs_single(Reader *r) {
    void *h = cached_handle(u8(r));
    const Live *l = find_live(h);
    int64_t rows = 1 + u8(r) % 40;
    size_t tokens, outs;
    int overflow;
    if (!shapes_fit(rows, l->seq_len, l->out_dim, &tokens, &outs, &overflow)) return;
    static int64_t ids[MAX_ELEMENTS], mask[MAX_ELEMENTS], types[MAX_ELEMENTS];
    static float out_batch[MAX_ELEMENTS], out_one[MAX_ELEMENTS];
    fill_ids(r, ids, tokens);
    fill_mask(r, mask, tokens, (size_t)l->seq_len);
    fill_types(r, types, tokens);
    int use_mask = u8(r) % 4 != 0, use_types = u8(r) % 4 != 0;
    size_t s = (size_t)l->seq_len, d = (size_t)l->out_dim;
    if (use_mask) {
        for (size_t row = 0; row < (size_t)rows; row++) {
            int64_t *m = mask + row * s;
            size_t end = s; /* one past the last mask > 0; none: the whole row runs */
            while (end > 0 && m[end - 1] <= 0) end--;
            if (end == 0) end = s;
            /* Up to the last valid token, both runs see the same values: the mask
             * becomes 0/1, as the model (mean over float(mask)) is ill-conditioned
             * for masks like {INT64_MAX, -1}, where float rounding that differs
             * between batch sizes can flip signs. */
            for (size_t i = 0; i < end; i++) m[i] = m[i] > 0;
        }
    }
    int32_t rc = c_embed_runtime_embed_batch(h, rows, ids, use_mask ? mask : NULL, use_types ? types : NULL, out_batch);
    TRACE("batch_vs_single(%p, rows %" PRId64 ", mask %s, types %s) = %d \"%s\"\n", h, rows,
          use_mask ? "given" : "NULL", use_types ? "given" : "NULL", rc, c_embed_runtime_last_error(h));
    check_embed_error(h, rc, "embed_batch");
    char batch_err[512];
    snprintf(batch_err, sizeof batch_err, "%s", c_embed_runtime_last_error(h));
    int all_ok = 1;
    for (int64_t row = 0; row < rows; row++) {
        /* Each row at the end of an arena: exactly seq_len values. */
        int64_t *ri = (int64_t *)(arenas[A_IDS].start + ARENA_BYTES) - s;
        int64_t *rm = (int64_t *)(arenas[A_MASK].start + ARENA_BYTES) - s;
        int64_t *rt = (int64_t *)(arenas[A_TYPES].start + ARENA_BYTES) - s;
        float *ro = (float *)(arenas[A_OUT].start + ARENA_BYTES) - d;
        memcpy(ri, ids + row * s, s * 8);
        memcpy(rm, mask + row * s, s * 8);
        memcpy(rt, types + row * s, s * 8);
        int32_t one = c_embed_runtime_embed(h, ri, use_mask ? rm : NULL, use_types ? rt : NULL, ro);
        if (trace) {
            size_t end = s, neg = 0;
            while (use_mask && end > 0 && rm[end - 1] <= 0) end--;
            int64_t lo = INT64_MAX, hi = INT64_MIN, tlo = INT64_MAX, thi = INT64_MIN;
            for (size_t i = end; i < s; i++) {
                neg += rm[i] < 0;
                lo = ri[i] < lo ? ri[i] : lo;
                hi = ri[i] > hi ? ri[i] : hi;
                tlo = rt[i] < tlo ? rt[i] : tlo;
                thi = rt[i] > thi ? rt[i] : thi;
            }
            TRACE("  row %" PRId64 ": embed alone = %d \"%s\"; last mask > 0 at %zd; after it: %zu negative mask "
                  "values, ids %" PRId64 "..%" PRId64 ", types %" PRId64 "..%" PRId64 "\n",
                  row, one, c_embed_runtime_last_error(h), (ssize_t)end - 1, neg, lo, hi, tlo, thi);
        }
        check_embed_error(h, one, "embed");
        if (!one) {
            all_ok = 0;
            continue;
        }
        memcpy(out_one, ro, d * 4);
        if (rc == 1)
            for (size_t i = 0; i < d; i++)
                CHECK(fabsf(out_one[i] - out_batch[row * d + i]) <= 1e-5f,
                      "embed_batch row %" PRId64 " of %" PRId64 " differs from embed at %zu: %.9g vs %.9g "
                      "(seq_len %zu, out_dim %zu, mask %s, types %s)",
                      row, rows, i, (double)out_batch[row * d + i], (double)out_one[i], s, d,
                      use_mask ? "given" : "NULL", use_types ? "given" : "NULL");
    }
    CHECK((rc == 1) == all_ok, "embed_batch returned %d (\"%s\") but its rows alone %s", rc, batch_err,
          all_ok ? "all succeed" : "do not all succeed");
}

/* The same call twice gives the same vector. */
static void op_repeat(Reader *r) {
    void *h = cached_handle(u8(r));
    const Live *l = find_live(h);
    size_t s = (size_t)l->seq_len, d = (size_t)l->out_dim;
    if (s > MAX_ELEMENTS || d > MAX_ELEMENTS) return;
    static int64_t ids[MAX_ELEMENTS], mask[MAX_ELEMENTS];
    static float a[MAX_ELEMENTS], b[MAX_ELEMENTS];
    fill_ids(r, ids, s);
    fill_mask(r, mask, s, s);
    int32_t ra = c_embed_runtime_embed(h, ids, mask, NULL, a);
    TRACE("repeat(%p, seq_len %zu) = %d \"%s\"\n", h, s, ra, c_embed_runtime_last_error(h));
    check_embed_error(h, ra, "embed");
    /* Something else in between, to change the handle's cached run shape. */
    int64_t other[MAX_ELEMENTS > 4096 ? 4096 : MAX_ELEMENTS];
    if (s <= 4096) {
        for (size_t i = 0; i < s; i++) other[i] = (int64_t)(i % 7);
        float tmp[4096];
        if (d <= 4096) c_embed_runtime_embed(h, other, NULL, NULL, tmp);
    }
    int32_t rb = c_embed_runtime_embed(h, ids, mask, NULL, b);
    check_embed_error(h, rb, "embed");
    CHECK(ra == rb, "the same embed returned %d, then %d", ra, rb);
    if (ra == 1)
        for (size_t i = 0; i < d; i++)
            CHECK(fabsf(a[i] - b[i]) <= 1e-6f, "the same embed gave %.9g, then %.9g at %zu", (double)a[i],
                  (double)b[i], i);
}

/* ---- libFuzzer entry points -------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("FUZZ_MODEL_DIR");
    const char *tr = getenv("FUZZ_TRACE");
    trace = tr && *tr && strcmp(tr, "0") != 0;
    snprintf(model_dir, sizeof model_dir, "%s", dir && *dir ? dir : "models/test");
    for (size_t i = 0; i < N_MODELS; i++) {
        snprintf(model_paths[i], sizeof model_paths[i], "%s/%s.onnx", model_dir, MODEL_NAMES[i]);
        struct stat st;
        if (stat(model_paths[i], &st) != 0) {
            fprintf(stderr,
                    "fuzz_abi: %s: %s\n  generate the test models (make setup) or set FUZZ_MODEL_DIR\n",
                    model_paths[i], strerror(errno));
            exit(2);
        }
    }
    page = (size_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < N_ARENAS; i++) arena_init(&arenas[i]);
    /* Every cached handle at start: a model the library now refuses is a set-up
     * problem reported at once, not an exit in the middle of a run. */
    for (unsigned i = 0; i < N_CACHED; i++) cached_handle(i);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Reader r = {data, size};
    n_stale = 0;
    for (int ops = 0; ops < MAX_OPS && r.n > 0; ops++) {
        /* Zero bytes are common in fuzzed inputs, so 0 is a cheap call, never create. */
        switch (u8(&r) % 32) {
        case 14: case 15: case 16: case 17: case 18: case 19: case 20: case 21: op_embed(&r, 1); break;
        case 22: case 23: case 24: op_getters(&r); break;
        case 25: case 26: op_destroy(&r); break;
        case 27: op_batch_vs_single(&r); break;
        case 28: op_repeat(&r); break;
        case 29: op_create(&r); break; /* slow when it loads a model: 1 in 32 */
        default: op_embed(&r, 0); break;   /* 0-13, 30, 31 */
        }
    }
    for (int i = 0; i < MAX_SLOTS; i++) { /* nothing outlives the input but the cached handles */
        if (slots[i].handle) {
            c_embed_runtime_destroy(slots[i].handle);
            slots[i].handle = NULL;
        }
    }
    return 0;
}
