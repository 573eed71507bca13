/*
 * test_support.h: helpers shared by the C test programs (test_abi.c, misuse.c,
 * stress.c). Everything is static (one copy per program) and marked unused, so a
 * program that needs only part of it still builds with -Wall -Wextra -Werror.
 *
 * Before including it a program may define:
 *   TEST_VOCAB                  the vocabulary size make_ids draws from (default 100)
 *   TEST_SUPPORT_NO_CHECK_FRAMEWORK
 *                               leave out the single-threaded check framework
 *                               (stress.c counts its checks with atomics)
 *   TEST_SUPPORT_CHILD_CASES    add run_case_in_child (needs _POSIX_C_SOURCE 200809L
 *                               or later, defined before any include)
 *
 * The check framework counts checks in g_passed / g_failed; a failure prints
 * "file:line: FAIL [context]: message", the context (set_context) left out when empty.
 *
 * Arrays are allocated with exactly the length asked for, so that an ASan build
 * catches any read or write past it.
 *
 * A program that includes c_embed_runtime.h and contract_errors.h before it also
 * gets CHECK_INVALID_HANDLE (every function's invalid-handle answer).
 */
#ifndef C_EMBED_RUNTIME_TEST_SUPPORT_H
#define C_EMBED_RUNTIME_TEST_SUPPORT_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TEST_VOCAB
#define TEST_VOCAB 100
#endif

#define TEST_UNUSED __attribute__((unused))

/* ---- the check framework ------------------------------------------------------ */

#ifndef TEST_SUPPORT_NO_CHECK_FRAMEWORK

static int g_passed;
static int g_failed;
/* Names the case, table row or model a failure belongs to ("" for none). */
static char g_context[256];

/* Where a check was written, so failures inside helpers point at their caller. */
typedef struct {
    const char *file;
    int line;
} where_t;

#define HERE ((where_t){__FILE__, __LINE__})

static void set_context(const char *fmt, ...) TEST_UNUSED __attribute__((format(printf, 1, 2)));
static void set_context(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vsnprintf(g_context, sizeof g_context, fmt, args);
    va_end(args);
}

/* Counts one check; on failure prints "file:line: FAIL [context]: message". */
static int record(where_t at, int ok, const char *fmt, ...) TEST_UNUSED
    __attribute__((format(printf, 3, 4)));
static int record(where_t at, int ok, const char *fmt, ...)
{
    if (ok) {
        g_passed++;
        return 1;
    }
    g_failed++;
    fprintf(stderr, "%s:%d: FAIL", at.file, at.line);
    if (g_context[0] != '\0') {
        fprintf(stderr, " [%s]", g_context);
    }
    fputs(": ", stderr);
    va_list args;
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputc('\n', stderr);
    return 0;
}

/* Long messages (a 1 MiB path inside an error) are shown by their first bytes. */
static TEST_UNUSED const char *shown(const char *s)
{
    static char buf[201];
    if (s == NULL) {
        return "(NULL)";
    }
    if (strlen(s) < sizeof buf) {
        return s;
    }
    memcpy(buf, s, sizeof buf - 4);
    memcpy(buf + sizeof buf - 4, "...", 4);
    return buf;
}

typedef enum { STR_EXACT, STR_PREFIX, STR_CONTAINS } str_match_t;

static TEST_UNUSED int check_str_at(where_t at, str_match_t match, const char *what,
                                    const char *actual, const char *expected)
{
    const char *verb = "to be";
    int ok = actual != NULL;
    switch (match) {
    case STR_EXACT: ok = ok && strcmp(actual, expected) == 0; break;
    case STR_PREFIX:
        verb = "to start with";
        ok = ok && strncmp(actual, expected, strlen(expected)) == 0;
        break;
    case STR_CONTAINS:
        verb = "to contain";
        ok = ok && strstr(actual, expected) != NULL;
        break;
    }
    return record(at, ok, "%s is \"%s\", expected %s \"%s\"", what, shown(actual), verb,
                  expected);
}

static TEST_UNUSED int check_int_at(where_t at, const char *what, long long actual,
                                    long long expected)
{
    return record(at, actual == expected, "%s is %lld, expected %lld", what, actual, expected);
}

#define CHECK(cond) record(HERE, (cond) != 0, "%s", #cond)
#define CHECK_INT(actual, expected) \
    check_int_at(HERE, #actual, (long long)(actual), (long long)(expected))
#define CHECK_STR(actual, expected) check_str_at(HERE, STR_EXACT, #actual, (actual), (expected))
#define CHECK_PREFIX(actual, prefix) check_str_at(HERE, STR_PREFIX, #actual, (actual), (prefix))
#define CHECK_CONTAINS(actual, needle) check_str_at(HERE, STR_CONTAINS, #actual, (actual), (needle))

/* ---- cases in child processes ---------------------------------------------- */

#ifdef TEST_SUPPORT_CHILD_CASES
#include <errno.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* A case of a program whose cases each run in their own child process. */
typedef struct {
    const char *name;
    void (*run)(int64_t arg);
    int64_t arg;
} child_case;

/*
 * Runs case c in a fork()ed child, so that one crash or hang cannot hide the
 * others: the case fails if the child dies from a signal (a crash, or SIGALRM
 * after timeout_s seconds), exits non-zero, or fails a check. Prints
 * "ok   [name]" or why it failed; returns 1 if it passed.
 */
static TEST_UNUSED int run_case_in_child(const child_case *c, unsigned timeout_s)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        alarm(timeout_s);
        set_context("%s", c->name);
        c->run(c->arg);
        if (g_failed > 0) {
            fprintf(stderr, "  [%s] %d checks passed, %d failed\n", c->name, g_passed, g_failed);
        }
        fflush(stdout);
        fflush(stderr);
        _exit(g_failed == 0 ? 0 : 1);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            exit(2);
        }
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        fprintf(stderr, "FAIL [%s]: child killed by signal %d (%s)%s\n", c->name, sig,
                strsignal(sig), sig == SIGALRM ? ": timed out" : "");
        return 0;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "FAIL [%s]: child exited with status %d\n", c->name,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return 0;
    }
    printf("ok   [%s]\n", c->name);
    return 1;
}

/*
 * Runs each of the n cases whose name contains filter (NULL: all) in its own
 * child; prints the count. Returns the program's exit status: 0 if at least
 * one case ran and none failed.
 */
static TEST_UNUSED int run_cases_in_children(const child_case *cases, size_t n, const char *filter,
                                             unsigned timeout_s)
{
    int ran = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (filter != NULL && strstr(cases[i].name, filter) == NULL) {
            continue;
        }
        ran++;
        failed += !run_case_in_child(&cases[i], timeout_s);
    }
    printf("%d cases, %d failed\n", ran, failed);
    return failed == 0 && ran > 0 ? 0 : 1;
}
#endif /* TEST_SUPPORT_CHILD_CASES */

#endif /* TEST_SUPPORT_NO_CHECK_FRAMEWORK */

/* ---- test data ---------------------------------------------------------------- */

/* Fills out_vec before each call: the library writes it only on success. */
static TEST_UNUSED const float SENTINEL = -777.0f;

static TEST_UNUSED void *xmalloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL) {
        fputs("out of memory\n", stderr);
        exit(2);
    }
    return p;
}

/* n in-vocabulary ids (1..TEST_VOCAB-1), varied by seed; token 0 is always 1 ("[CLS]"). */
static TEST_UNUSED int64_t *make_ids(size_t n, unsigned seed)
{
    int64_t *ids = xmalloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        ids[i] = i == 0 ? 1 : (int64_t)(1 + (seed * 37u + i * 11u) % (TEST_VOCAB - 1));
    }
    return ids;
}

/* n values, the first `ones` of them 1 and the rest 0. */
static TEST_UNUSED int64_t *make_mask(size_t n, size_t ones)
{
    int64_t *mask = xmalloc(n * sizeof *mask);
    for (size_t i = 0; i < n; i++) {
        mask[i] = i < ones ? 1 : 0;
    }
    return mask;
}

static TEST_UNUSED int64_t *make_filled(size_t n, int64_t value)
{
    int64_t *values = xmalloc(n * sizeof *values);
    for (size_t i = 0; i < n; i++) {
        values[i] = value;
    }
    return values;
}

/* n floats, all SENTINEL. */
static TEST_UNUSED float *new_vec(size_t n)
{
    float *v = xmalloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        v[i] = SENTINEL;
    }
    return v;
}

/* All n floats still hold SENTINEL, bit for bit. */
static TEST_UNUSED int is_untouched(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&v[i], &SENTINEL, sizeof SENTINEL) != 0) {
            return 0;
        }
    }
    return 1;
}

static TEST_UNUSED int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* ---- invalid handles ------------------------------------------------------------ */

/* For the programs that include c_embed_runtime.h and contract_errors.h first. */
#if defined(C_EMBED_RUNTIME_H) && defined(CONTRACT_ERRORS_H) && !defined(TEST_SUPPORT_NO_CHECK_FRAMEWORK)

/*
 * Every handle function on a value that is not a live handle: the documented
 * invalid-handle results, and no output written. The arrays passed are valid
 * (and large enough for the seq_len of the test programs' handles), so only the
 * handle is wrong. The one table of those answers: test_abi.c gives it NULL,
 * misuse.c destroyed, random and nearby values.
 */
static TEST_UNUSED void check_invalid_handle_at(where_t at, void *h)
{
    enum { BIG = 256 };
    int64_t *ids = make_ids(BIG, 1), *mask = make_filled(BIG, 1), *types = make_filled(BIG, 0);
    float *out = new_vec(BIG);
    check_int_at(at, "embed on an invalid handle", c_embed_runtime_embed(h, ids, mask, types, out),
                 0);
    check_int_at(at, "embed(NULL arrays) on an invalid handle",
                 c_embed_runtime_embed(h, NULL, NULL, NULL, NULL), 0);
    check_int_at(at, "embed_batch on an invalid handle",
                 c_embed_runtime_embed_batch(h, 1, ids, mask, types, out), 0);
    check_int_at(at, "embed_batch(rows 0, NULL arrays) on an invalid handle",
                 c_embed_runtime_embed_batch(h, 0, NULL, NULL, NULL, NULL), 0);
    check_int_at(at, "embed_batch(rows INT64_MAX) on an invalid handle",
                 c_embed_runtime_embed_batch(h, INT64_MAX, ids, NULL, NULL, out), 0);
    record(at, is_untouched(out, BIG), "out_vec written by a call on an invalid handle");
    check_str_at(at, STR_EXACT, "last_error", c_embed_runtime_last_error(h), INVALID_HANDLE);
    check_str_at(at, STR_EXACT, "selected_device", c_embed_runtime_selected_device(h), INVALID_DEVICE);
    check_int_at(at, "cpu_fallback_detected", c_embed_runtime_cpu_fallback_detected(h), 0);
    check_str_at(at, STR_EXACT, "cpu_fallback_detail", c_embed_runtime_cpu_fallback_detail(h),
                 INVALID_HANDLE);
    check_int_at(at, "output_dim", c_embed_runtime_output_dim(h), 0);
    check_int_at(at, "seq_len", c_embed_runtime_seq_len(h), 0);
    check_int_at(at, "hidden_size", c_embed_runtime_hidden_size(h), 0);
    /* the handle-free functions still answer */
    const char *version = c_embed_runtime_version();
    record(at, version != NULL && version[0] != '\0', "version is \"%s\"", shown(version));
    record(at, c_embed_runtime_last_create_error() != NULL, "last_create_error is NULL");
    c_embed_runtime_destroy(h); /* ignored */
    c_embed_runtime_destroy(h); /* still ignored */
    /* and still invalid afterwards */
    check_str_at(at, STR_EXACT, "last_error after destroy", c_embed_runtime_last_error(h),
                 INVALID_HANDLE);
    check_int_at(at, "output_dim after destroy", c_embed_runtime_output_dim(h), 0);
    free(out);
    free(ids);
    free(mask);
    free(types);
}

#define CHECK_INVALID_HANDLE(h) check_invalid_handle_at(HERE, (h))

#endif

#endif /* C_EMBED_RUNTIME_TEST_SUPPORT_H */
