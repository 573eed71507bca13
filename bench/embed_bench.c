/*
 * embed_bench.c: times libc_embed_runtime through its C ABI, the way hosts call it.
 *
 *   embed_bench MODEL TOKENS_TXT OUT_JSON
 *
 * TOKENS_TXT is written by bench/tokenize_sentences.py (real sentences, real
 * tokenizer, padded with 0 to seq_len as the legacy host does). Each scenario
 * warms up (every run shape once or twice: the library creates a shape's
 * tensors on first use), then times each call and reads two allocation counters
 * before and after the timed loop:
 *   - process: alloc_counter_count() of bench/alloc_counter.c when it is
 *     LD_PRELOADed (every allocation of the process, ONNX Runtime included);
 *   - Rust: c_embed_runtime_bench_rust_allocations() when the library was built
 *     with the `alloc-counter` feature.
 * Either is reported as null ("n/a") when absent. Both are looked up with dlsym,
 * so this program also runs against the shipped library.
 *
 * Environment: BENCH_CALLS (240) timed embeds per trimmed scenario,
 * BENCH_PADDED_CALLS (40) for the full-length reference, BENCH_RSS_CALLS
 * (20000) and BENCH_RSS_WARMUP (500) for the memory run. Counts are rounded up
 * to whole cycles over the scenario's sentences, so every sentence weighs the
 * same (the bare run and the Python baseline use the same rule).
 *
 * Batch scenarios report per-embed figures: a call's time divided by its rows,
 * allocations divided by the embeds made.
 *
 * Also (issue 11): batches of random sizes 1-32 over the corpus in order
 * ("random"), a fresh handle meeting new run shapes against the same calls in
 * steady state ("shapes_cold" / "shapes_steady"), and, first of all in the
 * process, the memory and create time of the first handle and what a second
 * concurrent caller adds ("memory" in the JSON meta).
 */
#define _GNU_SOURCE /* dlsym(RTLD_DEFAULT, ...) */

#include "c_embed_runtime.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SENTENCES 512
#define OUT_DIM 384
#define MAX_CALLERS 2

typedef struct {
    char length_class[16];
    int real_len;
    int64_t *ids;
    int64_t *mask;
    int64_t *types;
} sentence_t;

typedef struct {
    int64_t seq_len;
    int count;
    sentence_t sentences[MAX_SENTENCES];
} corpus_t;

/* The distinct inputs of one scenario: `ncomp` batches of `rows` rows, cycled. */
typedef struct {
    int64_t seq_len;
    int rows;
    int ncomp;
    int64_t *ids;
    int64_t *mask;
    int64_t *types;
} batches_t;

typedef struct {
    const char *name;
    const char *sentences; /* "mix" or a length class */
    const char *positions; /* "trimmed" (real mask) or "padded" (NULL mask) */
    int threads;
    int batch;
    int callers;
    long embeds;
    double median_ms;
    double p99_ms;
    double embeds_per_s;
    int has_process_allocs;
    double process_allocs;
    int has_rust_allocs;
    double rust_allocs;
    long rss_before_kib; /* -1: not measured */
    long rss_after_kib;
} result_t;

typedef uint64_t (*counter_fn)(void);

static counter_fn g_process_allocs;
static counter_fn g_rust_allocs;

static void die(const char *what)
{
    fprintf(stderr, "embed_bench: %s\n", what);
    exit(1);
}

static void *xcalloc(size_t count, size_t size)
{
    void *p = calloc(count, size);
    if (p == NULL) {
        die("out of memory");
    }
    return p;
}

static long env_long(const char *name, long fallback)
{
    const char *value = getenv(name);
    if (value == NULL || *value == '\0') {
        return fallback;
    }
    char *end = NULL;
    long parsed = strtol(value, &end, 10);
    if (*end != '\0' || parsed < 1) {
        fprintf(stderr, "embed_bench: %s=%s is not a positive number\n", name, value);
        exit(2);
    }
    return parsed;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Resident set size from /proc/self/statm, read without stdio (no allocation). */
static long rss_kib(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    long size_pages = 0;
    long resident_pages = 0;
    if (sscanf(buf, "%ld %ld", &size_pages, &resident_pages) != 2) {
        return -1;
    }
    return resident_pages * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- input ------------------------------------------------------------------- */

static void read_corpus(const char *path, corpus_t *corpus)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        die("cannot open the tokens file (run bench/tokenize_sentences.py)");
    }
    long seq_len = 0;
    int count = 0;
    if (fscanf(f, "seq_len %ld sentences %d", &seq_len, &count) != 2 || seq_len < 8 ||
        count < 1 || count > MAX_SENTENCES) {
        die("bad tokens file header");
    }
    corpus->seq_len = seq_len;
    corpus->count = count;
    for (int i = 0; i < count; i++) {
        sentence_t *s = &corpus->sentences[i];
        if (fscanf(f, "%15s %d", s->length_class, &s->real_len) != 2) {
            die("bad tokens file line");
        }
        int64_t **arrays[3] = {&s->ids, &s->mask, &s->types};
        for (int a = 0; a < 3; a++) {
            *arrays[a] = xcalloc((size_t)seq_len, sizeof(int64_t));
            for (long t = 0; t < seq_len; t++) {
                long long value = 0;
                if (fscanf(f, "%lld", &value) != 1) {
                    die("short tokens file line");
                }
                (*arrays[a])[t] = (int64_t)value;
            }
        }
    }
    fclose(f);
}

/* Indices of the sentences of `length_class` (NULL: all of them). */
static int select_sentences(const corpus_t *corpus, const char *length_class, int *out)
{
    int n = 0;
    for (int i = 0; i < corpus->count; i++) {
        if (length_class == NULL || strcmp(corpus->sentences[i].length_class, length_class) == 0) {
            out[n++] = i;
        }
    }
    if (n == 0) {
        die("no sentence of the requested class");
    }
    return n;
}

static int gcd(int a, int b)
{
    while (b != 0) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Batch k, row r is sentence sel[(k * rows + r) % n]: after ncomp batches the
 * sequence repeats, so ncomp batches are all the run shapes of the scenario. */
static batches_t make_batches(const corpus_t *corpus, const char *length_class, int rows)
{
    int sel[MAX_SENTENCES];
    int n = select_sentences(corpus, length_class, sel);
    batches_t b = {.seq_len = corpus->seq_len, .rows = rows, .ncomp = n / gcd(n, rows)};
    size_t row_count = (size_t)b.ncomp * (size_t)rows;
    size_t len = (size_t)corpus->seq_len;
    b.ids = xcalloc(row_count * len, sizeof(int64_t));
    b.mask = xcalloc(row_count * len, sizeof(int64_t));
    b.types = xcalloc(row_count * len, sizeof(int64_t));
    for (size_t r = 0; r < row_count; r++) {
        const sentence_t *s = &corpus->sentences[sel[r % (size_t)n]];
        memcpy(b.ids + r * len, s->ids, len * sizeof(int64_t));
        memcpy(b.mask + r * len, s->mask, len * sizeof(int64_t));
        memcpy(b.types + r * len, s->types, len * sizeof(int64_t));
    }
    return b;
}

static void free_batches(batches_t *b)
{
    free(b->ids);
    free(b->mask);
    free(b->types);
}

/* Runs needed for at least `embeds` embeds, in whole cycles of the batches. */
static long runs_for(const batches_t *b, long embeds)
{
    long runs = (embeds + b->rows - 1) / b->rows;
    return (runs + b->ncomp - 1) / b->ncomp * b->ncomp;
}

/* ---- one call ------------------------------------------------------------------ */

static void call(void *handle, const batches_t *b, long index, int padded, float *out)
{
    size_t offset = (size_t)(index % b->ncomp) * (size_t)b->rows * (size_t)b->seq_len;
    const int64_t *mask = padded ? NULL : b->mask + offset;
    int32_t ok = b->rows == 1
                     ? c_embed_runtime_embed(handle, b->ids + offset, mask, b->types + offset, out)
                     : c_embed_runtime_embed_batch(handle, b->rows, b->ids + offset, mask,
                                                   b->types + offset, out);
    if (!ok) {
        fprintf(stderr, "embed_bench: embed failed: %s\n", c_embed_runtime_last_error(handle));
        exit(1);
    }
}

/* ---- statistics ------------------------------------------------------------------ */

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile with linear interpolation between ranks (numpy's default). */
static double percentile(const double *sorted, long n, double q)
{
    double pos = q * (double)(n - 1);
    long lo = (long)pos;
    long hi = lo + 1 < n ? lo + 1 : lo;
    double frac = pos - (double)lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

typedef struct {
    uint64_t process;
    uint64_t rust;
    double ms;
} snapshot_t;

static snapshot_t snapshot(void)
{
    snapshot_t s = {
        .process = g_process_allocs ? g_process_allocs() : 0,
        .rust = g_rust_allocs ? g_rust_allocs() : 0,
        .ms = now_ms(),
    };
    return s;
}

/* Fills the timing and allocation fields of `r` from `n` per-embed latencies. */
static void summarise(result_t *r, double *latencies, long n, long embeds, snapshot_t before,
                      snapshot_t after)
{
    qsort(latencies, (size_t)n, sizeof(double), compare_doubles);
    r->embeds = embeds;
    r->median_ms = percentile(latencies, n, 0.5);
    r->p99_ms = percentile(latencies, n, 0.99);
    r->embeds_per_s = (double)embeds / ((after.ms - before.ms) / 1e3);
    r->has_process_allocs = g_process_allocs != NULL;
    r->process_allocs = (double)(after.process - before.process) / (double)embeds;
    r->has_rust_allocs = g_rust_allocs != NULL;
    r->rust_allocs = (double)(after.rust - before.rust) / (double)embeds;
}

static void print_result(const result_t *r)
{
    char process[32] = "n/a";
    char rust[32] = "n/a";
    if (r->has_process_allocs) {
        snprintf(process, sizeof process, "%.2f", r->process_allocs);
    }
    if (r->has_rust_allocs) {
        snprintf(rust, sizeof rust, "%.2f", r->rust_allocs);
    }
    printf("  %-10s %-7s t%d b%-2d c%d  %6ld embeds  median %8.3f ms  p99 %8.3f ms  %8.1f "
           "embeds/s  allocs/embed process %s rust %s",
           r->name, r->sentences, r->threads, r->batch, r->callers, r->embeds, r->median_ms,
           r->p99_ms, r->embeds_per_s, process, rust);
    if (r->rss_before_kib >= 0) {
        printf("  RSS %ld -> %ld KiB (%+ld)", r->rss_before_kib, r->rss_after_kib,
               r->rss_after_kib - r->rss_before_kib);
    }
    printf("\n");
    fflush(stdout);
}

/* ---- scenarios --------------------------------------------------------------------- */

/* One caller: warm-up, then `embeds` timed embeds (whole cycles); with
 * `measure_rss`, the resident set size before and after the timed calls. */
static result_t run_single(void *handle, const batches_t *b, int padded, long embeds,
                           long warmup_runs, int measure_rss, result_t r, float *out)
{
    long runs = runs_for(b, embeds);
    double *latencies = xcalloc((size_t)runs, sizeof(double));
    for (long i = 0; i < warmup_runs; i++) {
        call(handle, b, i, padded, out);
    }
    if (measure_rss) {
        r.rss_before_kib = rss_kib();
    }
    snapshot_t before = snapshot();
    for (long i = 0; i < runs; i++) {
        double start = now_ms();
        call(handle, b, i, padded, out);
        latencies[i] = (now_ms() - start) / b->rows;
    }
    snapshot_t after = snapshot();
    if (measure_rss) {
        r.rss_after_kib = rss_kib();
    }
    summarise(&r, latencies, runs, runs * b->rows, before, after);
    free(latencies);
    print_result(&r);
    return r;
}

typedef struct {
    void *handle;
    const batches_t *batches;
    long first;
    long runs;
    long warmup_runs;
    double *latencies;
    float out[OUT_DIM];
    pthread_barrier_t *barrier;
} caller_t;

static void *caller_main(void *arg)
{
    caller_t *c = arg;
    for (long i = 0; i < c->warmup_runs; i++) {
        call(c->handle, c->batches, c->first + i, 0, c->out);
    }
    pthread_barrier_wait(c->barrier); /* all warm: the main thread takes its snapshot */
    pthread_barrier_wait(c->barrier); /* go */
    for (long i = 0; i < c->runs; i++) {
        double start = now_ms();
        call(c->handle, c->batches, c->first + i, 0, c->out);
        c->latencies[i] = now_ms() - start;
    }
    return NULL;
}

/* `callers` threads embedding at once, each `embeds` embeds: on one handle, or
 * with `handles` set, each on its own (handles[k]). */
static result_t run_callers(void *handle, void *const *handles, const batches_t *b, int callers,
                            long embeds, result_t r)
{
    long runs = runs_for(b, embeds);
    double *latencies = xcalloc((size_t)(runs * callers), sizeof(double));
    caller_t state[MAX_CALLERS];
    pthread_t threads[MAX_CALLERS];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)callers + 1);
    for (int k = 0; k < callers; k++) {
        state[k] = (caller_t){
            .handle = handles != NULL ? handles[k] : handle,
            .batches = b,
            /* Different sentences at the same moment, as independent hosts would send. */
            .first = (long)k * b->ncomp / callers,
            .runs = runs,
            /* Long enough that the pool's second session opens and sees every shape. */
            .warmup_runs = 4L * b->ncomp,
            .latencies = latencies + (size_t)k * (size_t)runs,
            .barrier = &barrier,
        };
        if (pthread_create(&threads[k], NULL, caller_main, &state[k]) != 0) {
            die("pthread_create failed");
        }
    }
    pthread_barrier_wait(&barrier);
    snapshot_t before = snapshot();
    pthread_barrier_wait(&barrier);
    for (int k = 0; k < callers; k++) {
        pthread_join(threads[k], NULL);
    }
    snapshot_t after = snapshot();
    pthread_barrier_destroy(&barrier);
    summarise(&r, latencies, runs * callers, runs * callers, before, after);
    free(latencies);
    print_result(&r);
    return r;
}

static result_t new_result(const char *name, const char *sentences, int threads)
{
    result_t r = {.name = name, .sentences = sentences, .positions = "trimmed",
                  .threads = threads, .batch = 1, .callers = 1,
                  .rss_before_kib = -1, .rss_after_kib = -1};
    return r;
}

/* The device every handle is created on: $BENCH_DEVICE, CPU by default. */
static const char *g_device = "CPU";

/* The corpus's seq_len: 128, or the longer-text corpus's. */
static int64_t g_seq_len = 128;

static void *create_handle(const char *model, int threads)
{
    void *handle = c_embed_runtime_create(model, g_device, g_seq_len, OUT_DIM, threads, 0);
    if (handle == NULL) {
        fprintf(stderr, "embed_bench: create failed: %s\n", c_embed_runtime_last_create_error());
        exit(1);
    }
    return handle;
}

/* ---- random batch sizes (issue 11) ------------------------------------------------------ */

/* Calls of random sizes 1-32 over the corpus in order (wrapping), `rows` rows in all. */
typedef struct {
    int64_t seq_len;
    int ncalls;
    int *sizes;
    size_t *first; /* first row of each call */
    long rows;
    int64_t *ids;
    int64_t *mask;
    int64_t *types;
} random_batches_t;

static uint32_t lcg_next(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

static random_batches_t make_random_batches(const corpus_t *corpus, long rows, uint32_t seed)
{
    random_batches_t b = {.seq_len = corpus->seq_len, .rows = rows};
    size_t len = (size_t)corpus->seq_len;
    b.sizes = xcalloc((size_t)rows, sizeof(int));
    b.first = xcalloc((size_t)rows, sizeof(size_t));
    b.ids = xcalloc((size_t)rows * len, sizeof(int64_t));
    b.mask = xcalloc((size_t)rows * len, sizeof(int64_t));
    b.types = xcalloc((size_t)rows * len, sizeof(int64_t));
    for (long r = 0; r < rows; r++) {
        const sentence_t *s = &corpus->sentences[r % corpus->count];
        memcpy(b.ids + (size_t)r * len, s->ids, len * sizeof(int64_t));
        memcpy(b.mask + (size_t)r * len, s->mask, len * sizeof(int64_t));
        memcpy(b.types + (size_t)r * len, s->types, len * sizeof(int64_t));
    }
    uint32_t state = seed;
    long done = 0;
    while (done < rows) {
        int size = 1 + (int)(lcg_next(&state) % 32);
        if (size > rows - done) {
            size = (int)(rows - done);
        }
        b.first[b.ncalls] = (size_t)done;
        b.sizes[b.ncalls++] = size;
        done += size;
    }
    return b;
}

static void free_random_batches(random_batches_t *b)
{
    free(b->sizes);
    free(b->first);
    free(b->ids);
    free(b->mask);
    free(b->types);
}

static void call_random(void *handle, const random_batches_t *b, int k, float *out)
{
    size_t offset = b->first[k] * (size_t)b->seq_len;
    if (!c_embed_runtime_embed_batch(handle, b->sizes[k], b->ids + offset, b->mask + offset,
                                     b->types + offset, out)) {
        fprintf(stderr, "embed_bench: embed failed: %s\n", c_embed_runtime_last_error(handle));
        exit(1);
    }
}

/* Every call of `b` `passes` times (after `warmup` passes); per-embed latencies. */
static result_t run_random(void *handle, const random_batches_t *b, int warmup, int passes,
                           result_t r, float *out)
{
    long calls = (long)b->ncalls * passes;
    double *latencies = xcalloc((size_t)calls, sizeof(double));
    for (int p = 0; p < warmup; p++) {
        for (int k = 0; k < b->ncalls; k++) {
            call_random(handle, b, k, out);
        }
    }
    snapshot_t before = snapshot();
    for (int p = 0; p < passes; p++) {
        for (int k = 0; k < b->ncalls; k++) {
            double start = now_ms();
            call_random(handle, b, k, out);
            latencies[(long)p * b->ncalls + k] = (now_ms() - start) / b->sizes[k];
        }
    }
    snapshot_t after = snapshot();
    summarise(&r, latencies, calls, b->rows * passes, before, after);
    free(latencies);
    print_result(&r);
    return r;
}

/* ---- memory and create time (issue 11) ------------------------------------------------------ */

typedef struct {
    long rss_start_kib;   /* before the first create (ONNX Runtime not loaded) */
    long rss_created_kib; /* after create */
    long rss_first_kib;   /* after one caller embedded the corpus */
    long rss_second_kib;  /* after a second caller embedded it at the same time */
    double create_ms;
} memory_t;

typedef struct {
    void *handle;
    const random_batches_t *singles;
    float out[OUT_DIM];
} memory_caller_t;

/* One pass of single calls over the corpus (a caller's thread). */
static void *memory_caller_main(void *arg)
{
    memory_caller_t *c = arg;
    for (int k = 0; k < c->singles->ncalls; k++) {
        size_t offset = c->singles->first[k] * (size_t)c->singles->seq_len;
        if (!c_embed_runtime_embed(c->handle, c->singles->ids + offset,
                                   c->singles->mask + offset, c->singles->types + offset, c->out)) {
            die("embed failed in the memory run");
        }
    }
    return NULL;
}

/* Must run first in the process: the first handle's RSS (create, then one
 * caller over the corpus: singles and random batches), then what a second
 * caller embedding at the same time as the first adds. */
static memory_t measure_memory(const char *model, const corpus_t *corpus, float *out)
{
    memory_t m = {.rss_start_kib = rss_kib()};
    double start = now_ms();
    void *handle = create_handle(model, 1);
    m.create_ms = now_ms() - start;
    m.rss_created_kib = rss_kib();
    random_batches_t batches = make_random_batches(corpus, corpus->count, 7);
    random_batches_t singles = make_random_batches(corpus, corpus->count, 7);
    for (int k = 0; k < singles.ncalls; k++) {
        singles.sizes[k] = 1;
    }
    singles.ncalls = corpus->count;
    for (int k = 0; k < singles.ncalls; k++) {
        singles.first[k] = (size_t)k;
    }
    memory_caller_t first = {.handle = handle, .singles = &singles};
    memory_caller_main(&first);
    for (int k = 0; k < batches.ncalls; k++) {
        call_random(handle, &batches, k, out);
    }
    m.rss_first_kib = rss_kib();
    memory_caller_t second = {.handle = handle, .singles = &singles};
    pthread_t thread;
    if (pthread_create(&thread, NULL, memory_caller_main, &second) != 0) {
        die("pthread_create failed");
    }
    memory_caller_main(&first);
    pthread_join(thread, NULL);
    m.rss_second_kib = rss_kib();
    printf("memory: create %.1f ms; RSS %ld KiB at start, %+ld KiB after create, %+ld KiB "
           "after one caller, %+ld KiB more with a second concurrent caller\n",
           m.create_ms, m.rss_start_kib, m.rss_created_kib - m.rss_start_kib,
           m.rss_first_kib - m.rss_start_kib, m.rss_second_kib - m.rss_first_kib);
    free_random_batches(&batches);
    free_random_batches(&singles);
    c_embed_runtime_destroy(handle);
    return m;
}

/* ---- output -------------------------------------------------------------------------- */

static void json_number_or_null(FILE *f, int has, double value)
{
    if (has) {
        fprintf(f, "%.4f", value);
    } else {
        fprintf(f, "null");
    }
}

/*
 * What the handle registry costs a call: every function looks its handle up
 * (a read lock, a hash lookup, a reference count). A getter does nothing else,
 * so its time per call is that cost plus the call itself.
 */
static double handle_lookup_ns(void *handle)
{
    enum { LOOKUPS = 2000000 };
    volatile int64_t sink = 0;
    double start = now_ms();
    for (long i = 0; i < LOOKUPS; i++) {
        sink += c_embed_runtime_seq_len(handle);
    }
    (void)sink;
    return (now_ms() - start) * 1e6 / LOOKUPS;
}

static void write_json(const char *path, const corpus_t *corpus, const result_t *results, int n,
                       double lookup_ns, const memory_t *memory)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        die("cannot write the output JSON");
    }
    fprintf(f, "{\n  \"source\": \"library\",\n  \"meta\": {\"library_version\": \"%s\", "
               "\"seq_len\": %ld, \"sentences\": %d, \"process_counter\": %s, "
               "\"rust_counter\": %s, \"handle_lookup_ns\": %.1f,\n",
            c_embed_runtime_version(), (long)corpus->seq_len, corpus->count,
            g_process_allocs ? "true" : "false", g_rust_allocs ? "true" : "false", lookup_ns);
    fprintf(f, "    \"memory\": {\"create_ms\": %.2f, \"rss_start_kib\": %ld, "
               "\"rss_created_kib\": %ld, \"rss_first_kib\": %ld, \"rss_second_kib\": %ld}},\n",
            memory->create_ms, memory->rss_start_kib, memory->rss_created_kib,
            memory->rss_first_kib, memory->rss_second_kib);
    fprintf(f, "  \"records\": [\n");
    for (int i = 0; i < n; i++) {
        const result_t *r = &results[i];
        fprintf(f,
                "    {\"scenario\": \"%s\", \"sentences\": \"%s\", \"positions\": \"%s\", "
                "\"threads\": %d, \"batch\": %d, \"callers\": %d, \"embeds\": %ld, "
                "\"median_ms\": %.4f, \"p99_ms\": %.4f, \"embeds_per_s\": %.3f, "
                "\"process_allocs_per_embed\": ",
                r->name, r->sentences, r->positions, r->threads, r->batch, r->callers, r->embeds,
                r->median_ms, r->p99_ms, r->embeds_per_s);
        json_number_or_null(f, r->has_process_allocs, r->process_allocs);
        fprintf(f, ", \"rust_allocs_per_embed\": ");
        json_number_or_null(f, r->has_rust_allocs, r->rust_allocs);
        if (r->rss_before_kib >= 0) {
            fprintf(f, ", \"rss_before_kib\": %ld, \"rss_after_kib\": %ld", r->rss_before_kib,
                    r->rss_after_kib);
        } else {
            fprintf(f, ", \"rss_before_kib\": null, \"rss_after_kib\": null");
        }
        fprintf(f, "}%s\n", i + 1 < n ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
}

/* ---- main ------------------------------------------------------------------------------ */

/* `calls` embeds in batches of `rows` over the whole corpus ("batch8", "batch32";
 * one cycle of warm-up: every run shape of the scenario once). */
static result_t run_batched(void *handle, const corpus_t *corpus, int rows, int threads,
                            long calls, float *out)
{
    batches_t batched = make_batches(corpus, NULL, rows);
    result_t r = new_result(rows == 8 ? "batch8" : "batch32", "mix", threads);
    r.batch = rows;
    r = run_single(handle, &batched, 0, calls, batched.ncomp, 0, r, out);
    free_batches(&batched);
    return r;
}

/* Writes the results of a short run (no memory figures) and ends the program. */
static int finish_short_run(const char *path, const corpus_t *corpus, const result_t *results,
                            int n, float *out)
{
    memory_t none = {0};
    write_json(path, corpus, results, n, 0.0, &none);
    printf("wrote %s\n", path);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL TOKENS_TXT OUT_JSON\n", argv[0]);
        return 2;
    }
    const char *model = argv[1];
    long calls = env_long("BENCH_CALLS", 240);
    long padded_calls = env_long("BENCH_PADDED_CALLS", 40);
    long rss_calls = env_long("BENCH_RSS_CALLS", 20000);
    long rss_warmup = env_long("BENCH_RSS_WARMUP", 500);

    /* ISO C has no cast from void* to a function pointer; POSIX guarantees the
     * representations match, so the bits are copied. */
    void *symbol = dlsym(RTLD_DEFAULT, "alloc_counter_count");
    memcpy(&g_process_allocs, &symbol, sizeof symbol);
    symbol = dlsym(RTLD_DEFAULT, "c_embed_runtime_bench_rust_allocations");
    memcpy(&g_rust_allocs, &symbol, sizeof symbol);

    static corpus_t corpus;
    read_corpus(argv[2], &corpus);
    g_seq_len = corpus.seq_len;
    printf("library %s, %d sentences, seq_len %ld, process counter %s, Rust counter %s\n",
           c_embed_runtime_version(), corpus.count, (long)corpus.seq_len,
           g_process_allocs ? "on" : "n/a", g_rust_allocs ? "on" : "n/a");

    enum { MAX_RESULTS = 40 };
    result_t results[MAX_RESULTS];
    int n = 0;
    float *out = xcalloc((size_t)32 * OUT_DIM, sizeof(float));
    const char *classes[] = {"short", "medium", "long"};

    if (corpus.seq_len != 128) {
        /* The longer-text corpus (its own seq_len): one sentence per call and
         * batches of 8 and 32, threads 1 and 2. */
        for (int threads = 1; threads <= 2; threads++) {
            void *handle = create_handle(model, threads);
            batches_t one = make_batches(&corpus, NULL, 1);
            results[n++] = run_single(handle, &one, 0, calls, 2L * one.ncomp, 0,
                                      new_result("mix", "mix", threads), out);
            free_batches(&one);
            results[n++] = run_batched(handle, &corpus, 8, threads, calls, out);
            results[n++] = run_batched(handle, &corpus, 32, threads, calls, out);
            c_embed_runtime_destroy(handle);
        }
        return finish_short_run(argv[3], &corpus, results, n, out);
    }
    const char *device = getenv("BENCH_DEVICE");
    if (device != NULL && *device != '\0' && strcmp(device, "CPU") != 0) {
        /* Another device's column next to the CPU provider: one sentence per
         * call (the mix and each length class) and batches of 32, threads 1. */
        g_device = device;
        void *handle = create_handle(model, 1);
        printf("device %s (selected %s)\n", device, c_embed_runtime_selected_device(handle));
        for (int c = -1; c < 3; c++) {
            const char *name = c < 0 ? "mix" : classes[c];
            batches_t one = make_batches(&corpus, c < 0 ? NULL : classes[c], 1);
            results[n++] = run_single(handle, &one, 0, calls, 2L * one.ncomp, 0,
                                      new_result(name, name, 1), out);
            free_batches(&one);
        }
        results[n++] = run_batched(handle, &corpus, 32, 1, calls, out);
        c_embed_runtime_destroy(handle);
        return finish_short_run(argv[3], &corpus, results, n, out);
    }
    memory_t memory = measure_memory(model, &corpus, out);
    long random_rows = calls > corpus.count ? calls : corpus.count;
    const int batch_sizes[] = {8, 32};

    for (int threads = 1; threads <= 2; threads++) {
        void *handle = create_handle(model, threads);
        batches_t mix = make_batches(&corpus, NULL, 1);
        results[n++] = run_single(handle, &mix, 0, calls, 2L * mix.ncomp, 0,
                                  new_result("mix", "mix", threads), out);
        if (threads == 1) {
            for (int c = 0; c < 3; c++) {
                batches_t one_class = make_batches(&corpus, classes[c], 1);
                results[n++] = run_single(handle, &one_class, 0, calls, 2L * one_class.ncomp, 0,
                                          new_result(classes[c], classes[c], threads), out);
                free_batches(&one_class);
            }
        }
        for (int k = 0; k < 2; k++) {
            results[n++] = run_batched(handle, &corpus, batch_sizes[k], threads, calls, out);
        }
        {
            random_batches_t random = make_random_batches(&corpus, random_rows, 11);
            result_t r = new_result("random", "mix", threads);
            r.batch = 0; /* 1-32 */
            results[n++] = run_random(handle, &random, 1, 1, r, out);
            free_random_batches(&random);
        }
        if (threads > 1) {
            /* The same batches with the groups run one after another, each with
             * `threads` intra-op threads (C_EMBED_RUNTIME_SERIAL_BATCHES). */
            setenv("C_EMBED_RUNTIME_SERIAL_BATCHES", "1", 1);
            void *serial = create_handle(model, threads);
            unsetenv("C_EMBED_RUNTIME_SERIAL_BATCHES");
            batches_t batched = make_batches(&corpus, NULL, 32);
            result_t r = new_result("batch32_serial", "mix", threads);
            r.batch = 32;
            results[n++] = run_single(serial, &batched, 0, calls, batched.ncomp, 0, r, out);
            free_batches(&batched);
            c_embed_runtime_destroy(serial);
        }
        if (threads == 1) {
            /* What the legacy library did: every call runs all seq_len positions. */
            result_t r = new_result("padded", "mix", threads);
            r.positions = "padded";
            results[n++] = run_single(handle, &mix, 1, padded_calls, mix.ncomp, 0, r, out);
        }
        result_t r = new_result("2callers", "mix", threads);
        r.callers = 2;
        results[n++] = run_callers(handle, NULL, &mix, 2, calls, r);
        /* Two hosts' threads, each with its own handle: they share no lock. */
        void *own[2] = {handle, create_handle(model, threads)};
        result_t h = new_result("2handles", "mix", threads);
        h.callers = 2;
        results[n++] = run_callers(NULL, own, &mix, 2, calls, h);
        c_embed_runtime_destroy(own[1]);
        free_batches(&mix);
        c_embed_runtime_destroy(handle);
    }

    /* New run shapes: a fresh handle meets random batches (cold), then the same
     * calls again (steady, two passes). */
    {
        void *handle = create_handle(model, 1);
        random_batches_t random = make_random_batches(&corpus, random_rows, 23);
        result_t cold = new_result("shapes_cold", "mix", 1);
        cold.batch = 0;
        results[n++] = run_random(handle, &random, 0, 1, cold, out);
        result_t steady = new_result("shapes_steady", "mix", 1);
        steady.batch = 0;
        results[n++] = run_random(handle, &random, 0, 2, steady, out);
        free_random_batches(&random);
        c_embed_runtime_destroy(handle);
    }

    /* Memory: a fresh handle, short sentences (the most calls per second). */
    double lookup_ns;
    {
        void *handle = create_handle(model, 1);
        lookup_ns = handle_lookup_ns(handle);
        printf("handle lookup: %.1f ns per call (c_embed_runtime_seq_len)\n", lookup_ns);
        batches_t short_ones = make_batches(&corpus, "short", 1);
        results[n++] = run_single(handle, &short_ones, 0, rss_calls, rss_warmup, 1,
                                  new_result("rss", "short", 1), out);
        free_batches(&short_ones);
        c_embed_runtime_destroy(handle);
    }

    write_json(argv[3], &corpus, results, n, lookup_ns, &memory);
    printf("wrote %s\n", argv[3]);
    free(out);
    return 0;
}
