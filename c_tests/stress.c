/*
 * stress.c: libc_embed_runtime under load.
 *
 *   stress [-r ROUNDS] [-c CYCLES] [-g MAX_GROWTH_MIB] MODEL_DIR
 *
 * (a) destroy under load, ROUNDS rounds (default 20): WORKERS threads embed on one
 *     tiny_bert handle (seq_len 16) in a loop (single embeds, 2-row batches and the
 *     getters, in turn) while the main thread destroys the handle mid-way. Every
 *     call returns 1 or 0; every success is bit for bit the result the input gets
 *     alone; every call that starts after the destroy returned gets the
 *     invalid-handle results (0, last_error "invalid_handle", output_dim 0, ...).
 * (b) memory, CYCLES create/embed/destroy cycles on tiny_bert (default 100): the
 *     resident set size (/proc/self/statm) after cycle 10 and after the last must
 *     not grow by more than MAX_GROWTH_MIB (0: print, do not enforce, as under ASan
 *     or valgrind, whose own bookkeeping moves RSS).
 *
 *     The default bound, 4 MiB, from measurements (x86-64, glibc malloc): growth
 *     over cycles 10..100 was 0.00-0.02 MiB in ten runs (cycles 1..10 warm up by
 *     ~0.05 MiB), while a tiny_bert handle that is never destroyed holds ~208 KiB,
 *     so 90 leaked handles add ~18 MiB. 4 MiB leaves 200x headroom over the noise
 *     and still catches a leak of a fifth of a handle (~45 KiB) per cycle; 16 MiB
 *     would let a leak of most of a handle per cycle pass.
 *
 * Prints its figures; ends with "stress: N passed, M failed" and exits 1 if M > 0.
 */
#define _POSIX_C_SOURCE 200809L

#include "c_embed_runtime.h"
#include "contract_errors.h"

/* stress counts its checks from several threads: its own framework, below. */
#define TEST_SUPPORT_NO_CHECK_FRAMEWORK
#include "test_support.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the check framework -------------------------------------------------------- */

static atomic_int g_passed;
static atomic_int g_failed;

#define CHECK(cond) check_at(__FILE__, __LINE__, (cond) != 0, "%s", #cond)

/* Prints "file:line: <prefix><message>" with one write, so that the lines of
 * several threads do not interleave. */
static void print_line(const char *file, int line, const char *prefix, const char *fmt,
                       va_list args) __attribute__((format(printf, 4, 0)));
static void print_line(const char *file, int line, const char *prefix, const char *fmt,
                       va_list args)
{
    char message[512];
    vsnprintf(message, sizeof message, fmt, args);
    fprintf(stderr, "%s:%d: %s%s\n", file, line, prefix, message);
}

static int check_at(const char *file, int line, int ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int check_at(const char *file, int line, int ok, const char *fmt, ...)
{
    if (ok) {
        atomic_fetch_add(&g_passed, 1);
        return 1;
    }
    atomic_fetch_add(&g_failed, 1);
    va_list args;
    va_start(args, fmt);
    print_line(file, line, "FAIL: ", fmt, args);
    va_end(args);
    return 0;
}

#define CHECKF(cond, ...) check_at(__FILE__, __LINE__, (cond) != 0, __VA_ARGS__)

/* ---- data ------------------------------------------------------------------------- */

enum { SEQ = 16, DIM = 24, BATCH_ROWS = 2, WORKERS = 4 };
/* Successful calls (all workers together) before the main thread destroys. */
enum { CALLS_BEFORE_DESTROY = 40 };
/* Calls each worker makes after it saw the destroy. */
enum { CALLS_AFTER_DESTROY = 30 };
/* Seconds the main thread waits for the calls before the destroy. */
enum { WAIT_LIMIT_S = 120 };

static const char *g_model_dir;

static void *open_tiny(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tiny_bert.onnx", g_model_dir);
    void *h = c_embed_runtime_create(path, "CPU", SEQ, DIM, 1, 1);
    if (h == NULL) {
        fprintf(stderr, "create(%s) failed: %s\n", path, c_embed_runtime_last_create_error());
        exit(2);
    }
    return h;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- (a) destroy under load --------------------------------------------------------- */

typedef struct {
    void *handle;
    atomic_int *destroyed;       /* set once destroy has returned */
    atomic_int *successes;       /* successful calls, all workers */
    const int64_t *ids;          /* BATCH_ROWS rows */
    int64_t mask[BATCH_ROWS * SEQ];
    float expected_one[DIM];                /* embed of row 0, alone */
    float expected_batch[BATCH_ROWS * DIM]; /* embed_batch of both rows, alone */
    /* results */
    int ok_calls;      /* returned 1 */
    int raced_calls;   /* returned 0 while the destroy was under way */
    int spanning_ok;   /* started before the destroy returned, ended after it, returned 1 */
    int after_calls;   /* started after the destroy */
    int wrong;         /* any contract violation */
} worker;

/* A contract violation seen by a worker: counted; the first few are printed. */
#define WRONG(w, ...) wrong_at((w), __LINE__, __VA_ARGS__)

static void wrong_at(worker *w, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void wrong_at(worker *w, int line, const char *fmt, ...)
{
    if (++w->wrong > 3) {
        return;
    }
    va_list args;
    va_start(args, fmt);
    print_line(__FILE__, line, "", fmt, args);
    va_end(args);
}

static void *run_worker(void *arg)
{
    worker *w = arg;
    float out[BATCH_ROWS * DIM];
    for (unsigned i = 0; w->after_calls < CALLS_AFTER_DESTROY; i++) {
        int after = atomic_load(w->destroyed);
        int32_t rc = 0;
        switch (i % 3) {
        case 0: rc = c_embed_runtime_embed(w->handle, w->ids, w->mask, NULL, out); break;
        case 1:
            rc = c_embed_runtime_embed_batch(w->handle, BATCH_ROWS, w->ids, w->mask, NULL, out);
            break;
        default: {
            /*
             * The getters, in a row: each gives its live value or its invalid one,
             * and once one is invalid all later ones are (the destroy is final);
             * after the destroy all are invalid.
             */
            int seen_dead = after, bad = 0;
#define GETTER(live_expr, dead_expr)                    \
    do {                                                \
        int is_live = (live_expr), is_dead = (dead_expr); \
        bad |= seen_dead ? !is_dead : !(is_live || is_dead); \
        seen_dead |= is_dead;                           \
    } while (0)
            int32_t dim = c_embed_runtime_output_dim(w->handle);
            GETTER(dim == DIM, dim == 0);
            int64_t seq = c_embed_runtime_seq_len(w->handle);
            GETTER(seq == SEQ, seq == 0);
            int32_t hidden = c_embed_runtime_hidden_size(w->handle);
            GETTER(hidden == 32, hidden == 0);
            const char *device = c_embed_runtime_selected_device(w->handle);
            GETTER(strcmp(device, "CPU") == 0, strcmp(device, INVALID_DEVICE) == 0);
            /* a live handle's detail may not be read past the destroy; only compare dead ones */
            const char *detail = c_embed_runtime_cpu_fallback_detail(w->handle);
            GETTER(!seen_dead, seen_dead && strcmp(detail, INVALID_HANDLE) == 0);
#undef GETTER
            if (bad || c_embed_runtime_cpu_fallback_detected(w->handle) != 0) {
                WRONG(w,
                      "getters (after destroy: %d) mixed live and invalid values: dim %d "
                      "seq %lld hidden %d device %s",
                      after, (int)dim, (long long)seq, (int)hidden, device);
            }
            rc = -1;
            break;
        }
        }
        if (rc == -1) {
            w->after_calls += after;
            continue;
        }
        if (rc != 0 && rc != 1) {
            WRONG(w, "embed returned %d", (int)rc);
        } else if (after) {
            w->after_calls++;
            const char *error = c_embed_runtime_last_error(w->handle);
            if (rc != 0 || strcmp(error, INVALID_HANDLE) != 0) {
                WRONG(w, "a call after destroy returned %d, last_error \"%s\"", (int)rc, error);
            }
        } else if (rc == 1) {
            w->ok_calls++;
            w->spanning_ok += atomic_load(w->destroyed);
            atomic_fetch_add(w->successes, 1);
            int single = i % 3 == 0;
            if (memcmp(out, single ? w->expected_one : w->expected_batch,
                       (single ? 1 : BATCH_ROWS) * DIM * sizeof *out) != 0) {
                WRONG(w, "a result differs from the input's result alone (%s)",
                      single ? "embed" : "embed_batch");
            }
        } else {
            /* 0 before the flag was set: the destroy is under way (the handle is gone). */
            w->raced_calls++;
        }
    }
    return NULL;
}

/* One round; returns 1 if it passed. Adds its figures to the totals. */
static int destroy_under_load(int round, int totals[4])
{
    void *h = open_tiny();
    atomic_int destroyed = 0, successes = 0;
    worker *workers = xmalloc(WORKERS * sizeof *workers);
    int64_t *ids[WORKERS];
    int failed_before = atomic_load(&g_failed);
    for (int t = 0; t < WORKERS; t++) {
        worker *w = &workers[t];
        memset(w, 0, sizeof *w);
        ids[t] = make_ids(BATCH_ROWS * SEQ, 100u * (unsigned)round + (unsigned)t);
        w->handle = h;
        w->destroyed = &destroyed;
        w->successes = &successes;
        w->ids = ids[t];
        for (size_t i = 0; i < BATCH_ROWS * SEQ; i++) {
            w->mask[i] = i % SEQ < (size_t)(6 + t); /* distinct lengths per worker */
        }
        /* the results alone */
        if (c_embed_runtime_embed(h, ids[t], w->mask, NULL, w->expected_one) != 1 ||
            c_embed_runtime_embed_batch(h, BATCH_ROWS, ids[t], w->mask, NULL,
                                        w->expected_batch) != 1) {
            fprintf(stderr, "solo embed failed: %s\n", c_embed_runtime_last_error(h));
            exit(2);
        }
    }
    pthread_t threads[WORKERS];
    for (int t = 0; t < WORKERS; t++) {
        if (pthread_create(&threads[t], NULL, run_worker, &workers[t]) != 0) {
            perror("pthread_create");
            exit(2);
        }
    }
    /* mid-way: the workers are in their loops and have succeeded a few times */
    for (long waited = 0; atomic_load(&successes) < CALLS_BEFORE_DESTROY; waited++) {
        if (waited > WAIT_LIMIT_S * 1000L) {
            CHECKF(0, "round %d: only %d successful calls in %d s", round,
                   atomic_load(&successes), WAIT_LIMIT_S);
            break;
        }
        sleep_ms(1);
    }
    c_embed_runtime_destroy(h);
    atomic_store(&destroyed, 1);
    /* The main thread too sees the invalid handle at once. */
    CHECK(strcmp(c_embed_runtime_last_error(h), INVALID_HANDLE) == 0);
    CHECK(c_embed_runtime_output_dim(h) == 0);
    int ok = 0, raced = 0, after = 0, spanning = 0;
    for (int t = 0; t < WORKERS; t++) {
        pthread_join(threads[t], NULL);
        CHECKF(workers[t].wrong == 0, "round %d worker %d: %d wrong results", round, t,
               workers[t].wrong);
        ok += workers[t].ok_calls;
        raced += workers[t].raced_calls;
        after += workers[t].after_calls;
        spanning += workers[t].spanning_ok;
        free(ids[t]);
    }
    c_embed_runtime_destroy(h); /* a second destroy, after all calls ended: ignored */
    CHECK(c_embed_runtime_seq_len(h) == 0);
    totals[0] += ok;
    totals[1] += raced;
    totals[2] += after;
    totals[3] += spanning;
    free(workers);
    return atomic_load(&g_failed) == failed_before;
}

/* ---- (b) memory over create/destroy cycles ----------------------------------------- */

/* The resident set size in bytes (/proc/self/statm, second field). */
static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, resident = 0;
    if (f == NULL || fscanf(f, "%lld %lld", &size, &resident) != 2) {
        perror("/proc/self/statm");
        exit(2);
    }
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static double mib(long long bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

static void create_destroy_cycles(int cycles, int max_growth_mib)
{
    int64_t *ids = make_ids(SEQ, 3);
    float out[DIM];
    long long rss_first = 0, rss_10 = 0, rss_last = 0;
    for (int i = 1; i <= cycles; i++) {
        void *h = open_tiny();
        CHECKF(c_embed_runtime_embed(h, ids, NULL, NULL, out) == 1, "cycle %d: embed failed: %s",
               i, c_embed_runtime_last_error(h));
        c_embed_runtime_destroy(h);
        long long rss = rss_bytes();
        if (i == 1) {
            rss_first = rss;
        }
        if (i == 10) {
            rss_10 = rss;
        }
        if (i % 25 == 0 || i == 1 || i == 10 || i == cycles) {
            printf("  cycle %3d: RSS %.2f MiB\n", i, mib(rss));
        }
        rss_last = rss;
    }
    if (cycles < 10) {
        rss_10 = rss_first;
    }
    long long growth = rss_last - rss_10;
    printf("(b) %d create/embed/destroy cycles: RSS after cycle 1 %.2f MiB, after cycle 10 "
           "%.2f MiB, after cycle %d %.2f MiB: growth 10..%d %+.2f MiB (%+.1f KiB per cycle)",
           cycles, mib(rss_first), mib(rss_10), cycles, mib(rss_last), cycles, mib(growth),
           cycles > 10 ? (double)growth / 1024.0 / (cycles - 10) : 0.0);
    if (max_growth_mib > 0) {
        printf(", bound %d MiB\n", max_growth_mib);
        CHECKF(growth <= (long long)max_growth_mib * 1024 * 1024,
               "RSS grew by %.2f MiB over cycles 10..%d, more than %d MiB", mib(growth), cycles,
               max_growth_mib);
    } else {
        printf(", bound not enforced\n");
    }
    free(ids);
}

/* ---- main --------------------------------------------------------------------------- */

static int parse_int(const char *s, const char *what)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0 || v > 1000000) {
        fprintf(stderr, "bad %s: %s\n", what, s);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    int rounds = 20, cycles = 100, max_growth_mib = 4, opt;
    while ((opt = getopt(argc, argv, "r:c:g:")) != -1) {
        switch (opt) {
        case 'r': rounds = parse_int(optarg, "ROUNDS"); break;
        case 'c': cycles = parse_int(optarg, "CYCLES"); break;
        case 'g': max_growth_mib = parse_int(optarg, "MAX_GROWTH_MIB"); break;
        default:
            fprintf(stderr, "usage: %s [-r ROUNDS] [-c CYCLES] [-g MAX_GROWTH_MIB] MODEL_DIR\n",
                    argv[0]);
            return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "usage: %s [-r ROUNDS] [-c CYCLES] [-g MAX_GROWTH_MIB] MODEL_DIR\n",
                argv[0]);
        return 2;
    }
    g_model_dir = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);

    int totals[4] = {0, 0, 0, 0}, rounds_failed = 0;
    for (int round = 0; round < rounds; round++) {
        rounds_failed += !destroy_under_load(round, totals);
    }
    printf("(a) %d rounds of %d threads, destroy mid-way: %d successful calls that started "
           "before the destroy returned (%d of them ended after it), %d returned 0 during it, "
           "%d calls after it (all invalid_handle); %d rounds failed\n",
           rounds, WORKERS, totals[0], totals[3], totals[1], totals[2], rounds_failed);

    if (cycles > 0) {
        create_destroy_cycles(cycles, max_growth_mib);
    }

    int passed = atomic_load(&g_passed), failed = atomic_load(&g_failed);
    printf("stress: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
