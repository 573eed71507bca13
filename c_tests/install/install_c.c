/*
 * install_c.c: a C program built against an installed c_embed_runtime, with only
 * `pkg-config --cflags --libs c_embed_runtime` (see `make test-install`).
 *
 *   install_c MODEL.onnx EXPECTED_VERSION
 *
 * Embeds with the generated tiny model (vocab 100, hidden 32), checks the results
 * and prints "install_c: ok ...", then the files the process mapped for
 * libc_embed_runtime and ONNX Runtime (from /proc/self/maps), so the test can
 * check that both came from the installed tree.
 */
#include <c_embed_runtime.h>

#include "../contract_errors.h" /* the test's expected strings, not a build flag */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEQ_LEN 16
#define OUT_DIM 32

static int failures = 0;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "install_c: FAILED: %s\n", what);
        failures++;
    }
}

/* Prints each distinct mapped file whose name contains `needle`. */
static void print_mapped(const char *label, const char *needle)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    char last[4096] = "";
    if (maps == NULL) {
        return;
    }
    while (fgets(line, sizeof line, maps) != NULL) {
        char *path = strchr(line, '/');
        if (path == NULL || strstr(path, needle) == NULL) {
            continue;
        }
        path[strcspn(path, "\n")] = '\0';
        if (strcmp(path, last) != 0) {
            printf("%s: %s\n", label, path);
            snprintf(last, sizeof last, "%s", path);
        }
    }
    fclose(maps);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: install_c MODEL.onnx EXPECTED_VERSION\n", stderr);
        return 2;
    }
    check(strcmp(c_embed_runtime_version(), argv[2]) == 0, "version is the installed one");

    void *bad = c_embed_runtime_create("/nonexistent/model.onnx", "CPU", SEQ_LEN, OUT_DIM, 1, 0);
    check(bad == NULL, "a missing model fails");
    check(strncmp(c_embed_runtime_last_create_error(), STD_CREATE_ERROR, strlen(STD_CREATE_ERROR)) == 0,
          "the create error says why");

    void *handle = c_embed_runtime_create(argv[1], "CPU", SEQ_LEN, OUT_DIM, 1, 0);
    if (handle == NULL) {
        fprintf(stderr, "install_c: create failed: %s\n", c_embed_runtime_last_create_error());
        return 1;
    }
    check(strcmp(c_embed_runtime_selected_device(handle), "CPU") == 0, "device is CPU");
    check(c_embed_runtime_output_dim(handle) == OUT_DIM, "output_dim");
    check(c_embed_runtime_seq_len(handle) == SEQ_LEN, "seq_len");
    check(c_embed_runtime_hidden_size(handle) == 32, "hidden size of tiny_bert");

    int64_t ids[2][SEQ_LEN] = {{1, 5, 9, 2}, {1, 7, 7, 3, 2}};
    int64_t mask[2][SEQ_LEN] = {{1, 1, 1, 1}, {1, 1, 1, 1, 1}};
    float one[2][OUT_DIM];
    float batch[2][OUT_DIM];
    for (int r = 0; r < 2; r++) {
        check(c_embed_runtime_embed(handle, ids[r], mask[r], NULL, one[r]) == 1, "embed");
        check(strcmp(c_embed_runtime_last_error(handle), "") == 0, "no error after embed");
    }
    check(c_embed_runtime_embed_batch(handle, 2, &ids[0][0], &mask[0][0], NULL, &batch[0][0]) == 1,
          "embed_batch");

    double norm = 0.0, dot = 0.0, max_diff = 0.0;
    for (int i = 0; i < OUT_DIM; i++) {
        norm += (double)one[0][i] * one[0][i];
        dot += (double)one[0][i] * one[1][i];
        for (int r = 0; r < 2; r++) {
            double diff = fabs((double)one[r][i] - batch[r][i]);
            max_diff = diff > max_diff ? diff : max_diff;
        }
    }
    check(fabs(norm - 1.0) < 1e-4, "the vector is L2-normalised");
    check(dot < 0.9999, "different ids give different vectors");
    check(max_diff < 1e-5, "embed_batch gives embed's vectors");

    int64_t out_of_vocab[SEQ_LEN] = {1, 100};
    check(c_embed_runtime_embed(handle, out_of_vocab, NULL, NULL, one[0]) == 0,
          "an id outside the vocabulary fails");
    check(strncmp(c_embed_runtime_last_error(handle), ORT_ERROR, strlen(ORT_ERROR)) == 0,
          "the embed error says why");

    if (failures == 0) {
        printf("install_c: ok version=%s device=%s dim=%d norm=%.6f cos=%.4f\n",
               c_embed_runtime_version(), c_embed_runtime_selected_device(handle),
               c_embed_runtime_output_dim(handle), norm, dot);
    }
    print_mapped("library", "libc_embed_runtime.so");
    print_mapped("onnxruntime", "libonnxruntime.so");
    c_embed_runtime_destroy(handle);
    return failures == 0 ? 0 : 1;
}
