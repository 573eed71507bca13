/*
 * legacy_prototypes.c: a host written against the legacy library.
 *
 *   legacy_prototypes MODEL.onnx
 *
 * It does NOT include c_embed_runtime.h: it declares the ten functions itself,
 * with plain `void*` handles, exactly as the contract's table (abi.md) does. That
 * this compiles, links and runs pins that legacy hosts keep working unchanged.
 * Prints "N passed, M failed" and exits 1 on any failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The contract's prototypes, verbatim. */
void* c_embed_runtime_create(const char* model_path, const char* requested_device, int64_t seq_len, int32_t out_dim, int32_t threads, int32_t strict);
const char* c_embed_runtime_last_create_error(void);
int32_t c_embed_runtime_embed(void* handle, const int64_t* input_ids, const int64_t* attention_mask, const int64_t* token_type_ids, float* out_vec);
const char* c_embed_runtime_last_error(void* handle);
const char* c_embed_runtime_selected_device(void* handle);
int32_t c_embed_runtime_cpu_fallback_detected(void* handle);
const char* c_embed_runtime_cpu_fallback_detail(void* handle);
int32_t c_embed_runtime_output_dim(void* handle);
int64_t c_embed_runtime_seq_len(void* handle);
void c_embed_runtime_destroy(void* handle);

static int g_passed;
static int g_failed;

static void record(const char *file, int line, int ok, const char *what, const char *actual)
{
    if (ok) {
        g_passed++;
        return;
    }
    g_failed++;
    fprintf(stderr, "%s:%d: FAIL: %s (actual \"%s\")\n", file, line, what,
            actual != NULL ? actual : "(NULL)");
}

#define CHECK(cond) record(__FILE__, __LINE__, (cond) != 0, #cond, "")
#define CHECK_STR(actual, expected)                                                    \
    do {                                                                               \
        const char *actual_ = (actual);                                                \
        record(__FILE__, __LINE__, actual_ != NULL && strcmp(actual_, expected) == 0, \
               #actual " == \"" expected "\"", actual_);                               \
    } while (0)

enum { SEQ_LEN = 16, OUT_DIM = 24 };

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.onnx\n", argv[0]);
        return 2;
    }
    /* As the Python caller: CPU, out_dim 24, threads 1, strict 1. */
    void *handle = c_embed_runtime_create(argv[1], "CPU", SEQ_LEN, OUT_DIM, 1, 1);
    CHECK(handle != NULL);
    CHECK_STR(c_embed_runtime_last_create_error(), "");
    if (handle != NULL) {
        int64_t ids[SEQ_LEN] = {1, 17, 42, 9, 63, 2};
        int64_t mask[SEQ_LEN] = {1, 1, 1, 1, 1, 1};
        int64_t types[SEQ_LEN] = {0};
        float out[OUT_DIM];
        CHECK(c_embed_runtime_embed(handle, ids, mask, types, out) == 1);
        CHECK_STR(c_embed_runtime_last_error(handle), "");
        double norm_sq = 0;
        for (int i = 0; i < OUT_DIM; i++) {
            norm_sq += (double)out[i] * (double)out[i];
        }
        CHECK(norm_sq > 0.99998 && norm_sq < 1.00002);
        CHECK_STR(c_embed_runtime_selected_device(handle), "CPU");
        CHECK(c_embed_runtime_cpu_fallback_detected(handle) == 0);
        CHECK_STR(c_embed_runtime_cpu_fallback_detail(handle), "");
        CHECK(c_embed_runtime_output_dim(handle) == OUT_DIM);
        CHECK(c_embed_runtime_seq_len(handle) == SEQ_LEN);
        c_embed_runtime_destroy(handle);
    }

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
