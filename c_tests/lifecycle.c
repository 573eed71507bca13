/*
 * lifecycle.c: libc_embed_runtime under what long-running hosts do: model files
 * replaced on disk, fork(), thread cancellation, models that never finish a run,
 * several copies and reloads of the library, many short-lived threads, rare huge
 * runs. Every case runs in its own fork()ed child with a timeout (see
 * run_case_in_child in test_support.h).
 *
 *   lifecycle MODEL_DIR LIB [FILTER]
 *   lifecycle --stack KIB MODEL     one create + embed on a thread with a KIB KiB
 *                                   stack (exit 0 if it worked; for the README's
 *                                   stack measurement)
 *   lifecycle --threads N MODEL     one create + embed with N intra-op threads
 *                                   (exit 0 if it worked; run under a process limit
 *                                   for the README's thread-creation measurement)
 *
 *   MODEL_DIR   the models of tools/gen_test_models.py
 *   LIB         the libc_embed_runtime.so this program is linked with: copies of
 *               it are loaded with dlopen
 *   FILTER      run only the cases whose name contains FILTER
 *
 * The run ends with exactly one line "N cases, M failed" and exits 1 if M > 0.
 * Cases print the figures they measure on lines starting with "  figure:".
 */
#define _GNU_SOURCE
#define TEST_SUPPORT_CHILD_CASES

#include "c_embed_runtime.h"
#include "contract_errors.h"
#include "test_support.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

enum { SEQ = 16, DIM = 24, CASE_TIMEOUT = 120 };

static const char *g_model_dir;
static const char *g_lib;

static void model_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s.onnx", g_model_dir, name);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Resident set size in bytes (/proc/self/statm). */
static long rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) {
            resident = 0;
        }
        fclose(f);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

/* Opens a model on the CPU; a failure ends the case. */
static void *open_at(where_t at, const char *path, int64_t seq_len, int32_t threads)
{
    void *h = c_embed_runtime_create(path, "CPU", seq_len, DIM, threads, 0);
    if (!record(at, h != NULL, "create(%s) failed: \"%s\"", shown(path),
                shown(c_embed_runtime_last_create_error()))) {
        exit(1);
    }
    return h;
}

#define OPEN(path, seq_len, threads) open_at(HERE, (path), (seq_len), (threads))

/* Embeds ids of `seed` into out; returns embed's result. */
static int embed_seed(void *h, unsigned seed, float *out)
{
    size_t n = (size_t)c_embed_runtime_seq_len(h);
    int64_t *ids = make_ids(n, seed);
    int ok = c_embed_runtime_embed(h, ids, NULL, NULL, out);
    free(ids);
    return ok;
}

/* A fresh directory under /tmp (removed by the caller's rm_rf). */
static void temp_dir(char *buf, size_t size)
{
    snprintf(buf, size, "/tmp/c_embed_lifecycle_XXXXXX");
    if (mkdtemp(buf) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
}

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
}

static void copy_file(const char *from, const char *to)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s.new' && mv '%s.new' '%s'", from, to, to, to);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not copy %s to %s\n", from, to);
        exit(2);
    }
}

/* ---- 1. the model file changes after create ------------------------------------ */

typedef struct {
    void *h;
    const float *expected;
    atomic_int mismatches;
} same_model_job;

static void *embed_and_compare(void *arg)
{
    same_model_job *job = arg;
    float *out = new_vec(DIM);
    for (int i = 0; i < 200; i++) {
        if (!embed_seed(job->h, 3, out) || !same_bits(out, job->expected, DIM)) {
            atomic_fetch_add(&job->mismatches, 1);
        }
    }
    free(out);
    return NULL;
}

/* A model replaced in place (by rename and by rewrite) while the handle lives:
 * every result still comes from the model the handle opened. */
static void case_model_replaced(int64_t threads)
{
    char dir[64], path[256], original[256], other[256];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    model_path(original, sizeof original, "tiny_bert");
    model_path(other, sizeof other, "tiny_bert_h48");
    copy_file(original, path);
    void *h = OPEN(path, SEQ, (int32_t)threads);
    float *expected = new_vec(DIM);
    CHECK(embed_seed(h, 3, expected));
    copy_file(other, path);
    same_model_job job = {h, expected, 0};
    pthread_t tids[4];
    for (int t = 0; t < 4; t++) {
        pthread_create(&tids[t], NULL, embed_and_compare, &job);
    }
    /* A rewrite of the same inode too. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cat '%s' > '%s'", other, path);
    CHECK(system(cmd) == 0);
    for (int t = 0; t < 4; t++) {
        pthread_join(tids[t], NULL);
    }
    CHECK_INT(atomic_load(&job.mismatches), 0);
    CHECK_INT(c_embed_runtime_hidden_size(h), 32);
    c_embed_runtime_destroy(h);
    free(expected);
    rm_rf(dir);
}

/* A model path that is a FIFO, a directory or a device is refused at once. */
static void case_not_a_regular_file(int64_t unused)
{
    (void)unused;
    char dir[64], fifo[128];
    temp_dir(dir, sizeof dir);
    snprintf(fifo, sizeof fifo, "%s/model.onnx", dir);
    CHECK(mkfifo(fifo, 0600) == 0);
    double start = now_s();
    CHECK(c_embed_runtime_create(fifo, "CPU", SEQ, DIM, 1, 0) == NULL);
    CHECK_CONTAINS(c_embed_runtime_last_create_error(), "is a FIFO" NOT_A_REGULAR_FILE);
    CHECK(c_embed_runtime_create("/dev/zero", "CPU", SEQ, DIM, 1, 0) == NULL);
    CHECK_CONTAINS(c_embed_runtime_last_create_error(), "is a device" NOT_A_REGULAR_FILE);
    CHECK(c_embed_runtime_create(dir, "CPU", SEQ, DIM, 1, 0) == NULL);
    CHECK_CONTAINS(c_embed_runtime_last_create_error(), "is a directory");
    CHECK(now_s() - start < 10);
    rm_rf(dir);
}

/* The model is read from memory, but its external data still comes from its own
 * directory, whatever the current directory, and never from outside it. */
static void case_external_data(int64_t unused)
{
    (void)unused;
    char path[512], escaping[512];
    snprintf(path, sizeof path, "%s/external/tiny_bert_external.onnx", g_model_dir);
    snprintf(escaping, sizeof escaping, "%s/external/escaping/model.onnx", g_model_dir);
    char tiny[256];
    model_path(tiny, sizeof tiny, "tiny_bert");
    void *h = OPEN(tiny, SEQ, 1);
    float *expected = new_vec(DIM), *out = new_vec(DIM);
    CHECK_INT(embed_seed(h, 3, expected), 1);
    c_embed_runtime_destroy(h);
    CHECK(chdir("/") == 0);
    h = OPEN(path, SEQ, 1);
    CHECK_INT(embed_seed(h, 3, out), 1);
    CHECK(same_bits(out, expected, DIM));
    c_embed_runtime_destroy(h);
    CHECK(c_embed_runtime_create(escaping, "CPU", SEQ, DIM, 1, 0) == NULL);
    CHECK_CONTAINS(c_embed_runtime_last_create_error(), "escapes model directory");
    free(expected);
    free(out);
}

/* ---- 2. fork() while threads embed ---------------------------------------------- */

typedef struct {
    void *h;
    atomic_int stop;
    atomic_int calls;
} busy_job;

static void *embed_until_stopped(void *arg)
{
    busy_job *job = arg;
    int64_t rows = 8;
    size_t n = (size_t)c_embed_runtime_seq_len(job->h);
    int64_t *ids = make_ids(n * (size_t)rows, 5);
    float *out = new_vec(DIM * (size_t)rows);
    while (!atomic_load(&job->stop)) {
        c_embed_runtime_embed_batch(job->h, rows, ids, NULL, NULL, out);
        atomic_fetch_add(&job->calls, 1);
    }
    free(ids);
    free(out);
    return NULL;
}

/* In the child: calls on the parent's handle return at once with a clear error;
 * a handle made in the child works. */
static int child_after_fork(void *old, const char *path)
{
    float *out = new_vec(DIM);
    CHECK_INT(embed_seed(old, 1, out), 0);
    CHECK_STR(c_embed_runtime_last_error(old), CREATED_BEFORE_FORK);
    CHECK_INT(c_embed_runtime_output_dim(old), DIM);
    void *fresh = OPEN(path, SEQ, 2);
    CHECK(fresh != old);
    CHECK_INT(embed_seed(fresh, 1, out), 1);
    CHECK_STR(c_embed_runtime_last_error(fresh), "");
    c_embed_runtime_destroy(old);
    c_embed_runtime_destroy(fresh);
    free(out);
    return g_failed == 0 ? 0 : 1;
}

static void case_fork_while_embedding(int64_t threads)
{
    char path[256];
    model_path(path, sizeof path, "tiny_bert");
    void *h = OPEN(path, SEQ, (int32_t)threads);
    busy_job job = {h, 0, 0};
    pthread_t tids[2];
    for (int t = 0; t < 2; t++) {
        pthread_create(&tids[t], NULL, embed_until_stopped, &job);
    }
    for (int round = 0; round < 6; round++) {
        struct timespec pause = {0, 30 * 1000 * 1000};
        nanosleep(&pause, NULL);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20);
            _exit(child_after_fork(h, path));
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    atomic_store(&job.stop, 1);
    for (int t = 0; t < 2; t++) {
        pthread_join(tids[t], NULL);
    }
    CHECK(atomic_load(&job.calls) > 0);
    c_embed_runtime_destroy(h);
}

/* ---- 3. pthread_cancel of a thread inside the library --------------------------- */

static void *create_and_embed_forever(void *arg)
{
    const char *path = arg;
    float *out = new_vec(DIM * 4);
    int64_t *ids = make_ids(SEQ * 4, 9);
    for (;;) {
        void *h = c_embed_runtime_create(path, "CPU", SEQ, DIM, 2, 0);
        for (int i = 0; i < 20 && h != NULL; i++) {
            c_embed_runtime_embed_batch(h, 4, ids, NULL, NULL, out);
            pthread_testcancel();
        }
        c_embed_runtime_destroy(h);
        pthread_testcancel();
    }
    return NULL;
}

/* Cancelling a thread while it is inside the library never aborts the process;
 * the cancellation takes effect once the call has returned. */
static void case_thread_cancel(int64_t unused)
{
    (void)unused;
    char path[256];
    model_path(path, sizeof path, "tiny_bert");
    for (int round = 0; round < 10; round++) {
        pthread_t tid;
        pthread_create(&tid, NULL, create_and_embed_forever, path);
        struct timespec pause = {0, (long)(20 + 17 * round) * 1000 * 1000};
        nanosleep(&pause, NULL);
        CHECK(pthread_cancel(tid) == 0);
        void *result = NULL;
        pthread_join(tid, &result);
        CHECK(result == PTHREAD_CANCELED);
    }
    void *h = OPEN(path, SEQ, 1);
    float *out = new_vec(DIM);
    CHECK_INT(embed_seed(h, 1, out), 1);
    c_embed_runtime_destroy(h);
    free(out);
}

/* A thread that only calls the library: its cancel stays pending (every call
 * runs with cancellation disabled, and none is a cancellation point once it
 * has returned) until the thread reaches a cancellation point of its own. */
static atomic_int g_may_test_cancel;
static atomic_long g_calls_after_cancel;

static void *only_library_calls(void *arg)
{
    const char *path = arg;
    float *out = new_vec(DIM);
    int64_t *ids = make_ids(SEQ, 5);
    void *h = c_embed_runtime_create(path, "CPU", SEQ, DIM, 1, 0);
    for (;;) {
        c_embed_runtime_embed(h, ids, NULL, NULL, out);
        if (atomic_load(&g_may_test_cancel)) {
            atomic_fetch_add(&g_calls_after_cancel, 1);
            pthread_testcancel();
        }
    }
    return NULL;
}

static void case_cancel_waits_for_the_callers_cancellation_point(int64_t unused)
{
    (void)unused;
    char path[256];
    model_path(path, sizeof path, "tiny_bert");
    pthread_t tid;
    CHECK(pthread_create(&tid, NULL, only_library_calls, path) == 0);
    struct timespec pause = {0, 200L * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK(pthread_cancel(tid) == 0);
    nanosleep(&pause, NULL);
    /* Still running: it has reached no cancellation point of its own. */
    CHECK_INT(pthread_tryjoin_np(tid, NULL), EBUSY);
    atomic_store(&g_may_test_cancel, 1);
    void *result = NULL;
    CHECK(pthread_join(tid, &result) == 0);
    CHECK(result == PTHREAD_CANCELED);
    CHECK(atomic_load(&g_calls_after_cancel) == 1);
}

/* ---- 4. runs that never finish ------------------------------------------------ */

/* Create of a model whose self-check run never ends fails after the limit. */
static void case_run_limit_at_create(int64_t unused)
{
    (void)unused;
    char path[256];
    model_path(path, sizeof path, "slow_loop_forever");
    setenv("C_EMBED_RUNTIME_RUN_TIMEOUT_MS", "1000", 1);
    double start = now_s();
    CHECK(c_embed_runtime_create(path, "CPU", SEQ, DIM, 1, 0) == NULL);
    double took = now_s() - start;
    CHECK_PREFIX(c_embed_runtime_last_create_error(), STD_CREATE_ERROR RUN_TIME_LIMIT);
    CHECK_CONTAINS(c_embed_runtime_last_create_error(), "C_EMBED_RUNTIME_RUN_TIMEOUT_MS");
    CHECK(took < 20);
    printf("  figure: create of a never-ending model failed after %.2f s (limit 1 s)\n", took);
}

/* An embed whose run never ends fails after the limit; the handle still works. */
static void case_run_limit_at_embed(int64_t unused)
{
    (void)unused;
    char path[256];
    model_path(path, sizeof path, "slow_loop_by_types");
    setenv("C_EMBED_RUNTIME_RUN_TIMEOUT_MS", "1000", 1);
    void *h = OPEN(path, SEQ, 1);
    int64_t *ids = make_ids(SEQ, 1);
    int64_t *types = make_filled(SEQ, 1);
    float *out = new_vec(DIM);
    double start = now_s();
    CHECK_INT(c_embed_runtime_embed(h, ids, NULL, types, out), 0);
    double took = now_s() - start;
    CHECK_PREFIX(c_embed_runtime_last_error(h), STD_ERROR RUN_TIME_LIMIT);
    CHECK_CONTAINS(c_embed_runtime_last_error(h), "1000 ms");
    CHECK(took < 20);
    CHECK_INT(c_embed_runtime_embed(h, ids, NULL, NULL, out), 1);
    printf("  figure: a never-ending embed failed after %.2f s (limit 1 s)\n", took);
    c_embed_runtime_destroy(h);
    free(ids);
    free(types);
    free(out);
}

typedef struct {
    void *h;
    int result;
    atomic_int started;
} hung_job;

static void *embed_hung(void *arg)
{
    hung_job *job = arg;
    int64_t *ids = make_ids(SEQ, 1);
    int64_t *types = make_filled(SEQ, 1);
    float *out = new_vec(DIM);
    atomic_store(&job->started, 1);
    job->result = c_embed_runtime_embed(job->h, ids, NULL, types, out);
    free(ids);
    free(types);
    free(out);
    return NULL;
}

/* Destroy stops the runs in flight on the handle (no limit set): their callers
 * get 0 and destroy returns. */
static void case_destroy_stops_runs(int64_t unused)
{
    (void)unused;
    char path[256];
    model_path(path, sizeof path, "slow_loop_by_types");
    setenv("C_EMBED_RUNTIME_RUN_TIMEOUT_MS", "0", 1);
    void *h = OPEN(path, SEQ, 1);
    hung_job jobs[2] = {{h, -1, 0}, {h, -1, 0}};
    pthread_t tids[2];
    for (int t = 0; t < 2; t++) {
        pthread_create(&tids[t], NULL, embed_hung, &jobs[t]);
    }
    while (!atomic_load(&jobs[0].started) || !atomic_load(&jobs[1].started)) {
        sched_yield();
    }
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    double start = now_s();
    c_embed_runtime_destroy(h);
    double took = now_s() - start;
    for (int t = 0; t < 2; t++) {
        pthread_join(tids[t], NULL);
        CHECK_INT(jobs[t].result, 0);
    }
    CHECK(took < 20);
    printf("  figure: destroy with 2 runs in flight returned after %.3f s\n", took);
}

/* ---- 5. handles of another copy or an earlier load ------------------------------- */

typedef struct {
    void *dl;
    void *(*create)(const char *, const char *, int64_t, int32_t, int32_t, int32_t);
    int32_t (*embed)(void *, const int64_t *, const int64_t *, const int64_t *, float *);
    int32_t (*output_dim)(void *);
    const char *(*last_error)(void *);
    void (*destroy)(void *);
} library_copy;

static void load_copy(library_copy *lib, const char *path)
{
    lib->dl = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!record(HERE, lib->dl != NULL, "dlopen(%s): %s", path, dlerror())) {
        exit(1);
    }
    *(void **)&lib->create = dlsym(lib->dl, "c_embed_runtime_create");
    *(void **)&lib->embed = dlsym(lib->dl, "c_embed_runtime_embed");
    *(void **)&lib->output_dim = dlsym(lib->dl, "c_embed_runtime_output_dim");
    *(void **)&lib->last_error = dlsym(lib->dl, "c_embed_runtime_last_error");
    *(void **)&lib->destroy = dlsym(lib->dl, "c_embed_runtime_destroy");
    if (!CHECK(lib->create && lib->embed && lib->output_dim && lib->last_error && lib->destroy)) {
        exit(1);
    }
}

/* A handle is valid only in the library instance that made it: not in a copy
 * loaded from another path, not after destroy and a reload. */
static void case_handles_per_instance(int64_t unused)
{
    (void)unused;
    char dir[64], copy[256], cmd[1024], path[256];
    temp_dir(dir, sizeof dir);
    snprintf(copy, sizeof copy, "%s/libc_embed_runtime.so", dir);
    copy_file(g_lib, copy);
    /* The copy finds ONNX Runtime beside itself, as the original does. */
    snprintf(cmd, sizeof cmd, "ln -s \"$(dirname '%s')\"/libonnxruntime*.so* '%s'/", g_lib, dir);
    CHECK(system(cmd) == 0);
    model_path(path, sizeof path, "tiny_bert");

    void *linked = OPEN(path, SEQ, 1); /* the instance this program links */
    library_copy other;
    load_copy(&other, copy);
    void *theirs = other.create(path, "CPU", SEQ, DIM + 1, 1, 0);
    CHECK(theirs != NULL);
    CHECK(theirs != linked);
    CHECK_INT(other.output_dim(theirs), DIM + 1);
    CHECK_INT(other.output_dim(linked), 0);
    CHECK_INT(c_embed_runtime_output_dim(theirs), 0);
    CHECK_INT(c_embed_runtime_output_dim(linked), DIM);
    int64_t *ids = make_ids(SEQ, 1);
    float *out = new_vec(DIM + 1);
    CHECK_INT(other.embed(linked, ids, NULL, NULL, out), 0);
    CHECK_STR(other.last_error(linked), INVALID_HANDLE);
    CHECK_INT(c_embed_runtime_embed(theirs, ids, NULL, NULL, out), 0);

    /* Destroyed, unloaded, loaded again: the old value is nothing. */
    other.destroy(theirs);
    dlclose(other.dl);
    load_copy(&other, copy);
    void *again = other.create(path, "CPU", SEQ, DIM + 1, 1, 0);
    CHECK(again != NULL);
    CHECK(again != theirs);
    CHECK_INT(other.output_dim(theirs), 0);
    CHECK_INT(other.output_dim(again), DIM + 1);
    other.destroy(again);
    c_embed_runtime_destroy(linked);
    CHECK_INT(c_embed_runtime_output_dim(linked), 0);
    free(ids);
    free(out);
    rm_rf(dir);
}

/* ---- 6. many short-lived threads that fail once ---------------------------------- */

enum { SHORT_THREADS = 100000, LATENCY_CALLS = 2000 };

/* Returns h if the call failed as documented (the string dies with the thread). */
static void *fail_once(void *h)
{
    int64_t ids[SEQ] = {1};
    int rc = c_embed_runtime_embed(h, ids, NULL, NULL, NULL); /* out_vec NULL: an error */
    return rc == 0 && strcmp(c_embed_runtime_last_error(h), NULL_ARRAYS) == 0 ? h : NULL;
}

/* Median time of a successful embed, in microseconds. */
static double embed_latency_us(void *h)
{
    static double times[LATENCY_CALLS];
    float *out = new_vec(DIM);
    int64_t *ids = make_ids(SEQ, 2);
    for (int i = 0; i < LATENCY_CALLS; i++) {
        double start = now_s();
        c_embed_runtime_embed(h, ids, NULL, NULL, out);
        times[i] = (now_s() - start) * 1e6;
    }
    for (int i = 1; i < LATENCY_CALLS; i++) { /* insertion sort: small and clear */
        double t = times[i];
        int j = i - 1;
        while (j >= 0 && times[j] > t) {
            times[j + 1] = times[j];
            j--;
        }
        times[j + 1] = t;
    }
    free(out);
    free(ids);
    return times[LATENCY_CALLS / 2];
}

/* 100,000 threads that each fail once on a handle leave RSS and the latency of
 * a successful call flat. */
static void case_many_short_threads(int64_t unused)
{
    (void)unused;
    char path[256];
    model_path(path, sizeof path, "tiny_bert");
    void *h = OPEN(path, SEQ, 1);
    double before_us = embed_latency_us(h);
    long before_rss = rss_bytes();
    int wrong = 0;
    for (int i = 0; i < SHORT_THREADS; i++) {
        pthread_t tid;
        void *failed_as_documented = NULL;
        if (pthread_create(&tid, NULL, fail_once, h) != 0) {
            CHECK(!"pthread_create");
            break;
        }
        pthread_join(tid, &failed_as_documented);
        wrong += failed_as_documented != h;
    }
    long after_rss = rss_bytes();
    double after_us = embed_latency_us(h);
    CHECK_INT(wrong, 0);
    printf("  figure: %d threads failing once: RSS %+.2f MiB (%.1f -> %.1f MiB), "
           "embed median %.1f -> %.1f us\n",
           SHORT_THREADS, (double)(after_rss - before_rss) / (1 << 20),
           (double)before_rss / (1 << 20), (double)after_rss / (1 << 20), before_us, after_us);
    CHECK(after_rss - before_rss < 4L << 20);
    CHECK(after_us < before_us * 2 + 20);
    c_embed_runtime_destroy(h);
}

/* ---- 8. memory follows the work ------------------------------------------------ */

/* One mask-NULL call at seq_len 262144 (every position runs) gives its memory
 * back when it returns. */
static void case_huge_run_memory(int64_t unused)
{
    (void)unused;
    char path[256];
    model_path(path, sizeof path, "tiny_bert");
    enum { HUGE = 262144 };
    void *h = OPEN(path, HUGE, 1);
    float *out = new_vec(DIM);
    int64_t *short_mask = make_mask(HUGE, 8);
    int64_t *ids = make_ids(HUGE, 4);
    CHECK_INT(c_embed_runtime_embed(h, ids, short_mask, NULL, out), 1);
    long before = rss_bytes();
    CHECK_INT(c_embed_runtime_embed(h, ids, NULL, NULL, out), 1);
    long after = rss_bytes();
    printf("  figure: RSS after a seq_len %d mask-NULL call: %+.1f MiB (%.1f -> %.1f MiB)\n", HUGE,
           (double)(after - before) / (1 << 20), (double)before / (1 << 20),
           (double)after / (1 << 20));
    CHECK(after - before < 64L << 20);
    c_embed_runtime_destroy(h);
    free(out);
    free(short_mask);
    free(ids);
}

/* A static extra input too large for a sane model is refused at create, with
 * the size it would need, before anything is allocated for it. */
static void case_huge_static_input(int64_t unused)
{
    (void)unused;
    char path[256];
    model_path(path, sizeof path, "bad_huge_extra");
    long before = rss_bytes();
    CHECK(c_embed_runtime_create(path, "CPU", SEQ, DIM, 1, 0) == NULL);
    CHECK_PREFIX(c_embed_runtime_last_create_error(), STD_CREATE_ERROR INPUT_TOO_LARGE);
    CHECK_CONTAINS(c_embed_runtime_last_create_error(), "400000000 bytes");
    CHECK(rss_bytes() - before < 128L << 20);
}

/* ---- the stack-size probe ------------------------------------------------------ */

/* Create with `threads` intra-op threads and one embed; returns 1 if both worked. */
static int create_and_embed_with(const char *path, int32_t threads)
{
    void *h = c_embed_runtime_create(path, "CPU", 128, DIM, threads, 0);
    float *out = new_vec(DIM);
    int ok = h != NULL && embed_seed(h, 1, out);
    if (h == NULL) {
        fprintf(stderr, "%s\n", c_embed_runtime_last_create_error());
    }
    c_embed_runtime_destroy(h);
    free(out);
    return ok;
}

static void *create_and_embed_once(void *path)
{
    return create_and_embed_with(path, 1) ? path : NULL;
}

/* Exit 0 if create + embed work on a thread with a kib KiB stack. */
static int probe_stack(long kib, const char *path)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (pthread_attr_setstacksize(&attr, (size_t)kib * 1024) != 0) {
        return 2;
    }
    pthread_t tid;
    void *result = NULL;
    if (pthread_create(&tid, &attr, create_and_embed_once, (void *)path) != 0) {
        return 2;
    }
    pthread_join(tid, &result);
    return result == path ? 0 : 1;
}

static const child_case CASES[] = {
    {"model file replaced after create", case_model_replaced, 1},
    {"model file replaced after create, threads 2", case_model_replaced, 2},
    {"model path not a regular file", case_not_a_regular_file, 0},
    {"external data from the model's directory only", case_external_data, 0},
    {"fork while two threads embed", case_fork_while_embedding, 1},
    {"fork while two threads embed, threads 2", case_fork_while_embedding, 2},
    {"pthread_cancel inside the library", case_thread_cancel, 0},
    {"pthread_cancel of a thread that only calls the library", case_cancel_waits_for_the_callers_cancellation_point, 0},
    {"run-time limit at create", case_run_limit_at_create, 0},
    {"run-time limit at embed", case_run_limit_at_embed, 0},
    {"destroy stops runs in flight", case_destroy_stops_runs, 0},
    {"handles of another copy or an earlier load", case_handles_per_instance, 0},
    {"100000 short-lived threads failing once", case_many_short_threads, 0},
    {"memory after a huge run", case_huge_run_memory, 0},
    {"static input too large", case_huge_static_input, 0},
};

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && strcmp(argv[1], "--stack") == 0) {
        return probe_stack(strtol(argv[2], NULL, 10), argv[3]);
    }
    if (argc == 4 && strcmp(argv[1], "--threads") == 0) {
        return create_and_embed_with(argv[3], (int32_t)strtol(argv[2], NULL, 10)) ? 0 : 1;
    }
    if (argc < 3 || argc > 4) {
        fprintf(stderr,
                "usage: %s MODEL_DIR LIB [FILTER]\n       %s --stack KIB MODEL\n       %s "
                "--threads N MODEL\n",
                argv[0], argv[0], argv[0]);
        return 2;
    }
    /* Absolute: some cases change the current directory. */
    static char model_dir[PATH_MAX], lib[PATH_MAX];
    if (realpath(argv[1], model_dir) == NULL || realpath(argv[2], lib) == NULL) {
        perror("realpath");
        return 2;
    }
    g_model_dir = model_dir;
    g_lib = lib;
    const char *filter = argc == 4 ? argv[3] : NULL;
    return run_cases_in_children(CASES, sizeof CASES / sizeof CASES[0], filter, CASE_TIMEOUT);
}
