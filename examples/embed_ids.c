/*
 * embed_ids: a small C host of libc_embed_runtime.so. Copy it to start your own.
 *
 *   embed_ids [options] MODEL.onnx [IDS_FILE]
 *
 * Reads token ids from IDS_FILE, or from standard input when IDS_FILE is absent
 * or "-": one sequence per line, whitespace-separated integers, optionally
 * followed by "|" and the attention mask, and by a second "|" and the token type
 * ids, e.g.
 *
 *   101 7592 2088 102
 *   101 7592 2088 102 | 1 1 1 0
 *
 * Blank lines and lines starting with '#' are skipped. Each sequence is padded
 * with 0 (ids, mask and types) or cut to the handle's seq_len. Without a mask,
 * the given tokens get 1 and the padding 0. Prints one vector per sequence, one
 * line of out_dim space-separated floats, on standard output; messages go to
 * standard error.
 *
 * Options:
 *   --device NAME   AUTO, CPU, GPU, NPU, ... (default CPU)
 *   --seq-len N     tokens per sequence (default 128)
 *   --out-dim N     length of each vector (default: the model's hidden size)
 *   --threads N     ONNX Runtime threads (default 1)
 *   --strict        fail when a GPU/NPU handle fell back to the CPU
 *
 * Exit status: 0 on success, 1 when the model or an embed fails, 2 on bad usage
 * or bad input.
 *
 * Build (after `make install`; example_options.h beside it):
 *   cc -std=c11 -O2 embed_ids.c $(pkg-config --cflags --libs c_embed_runtime) -o embed_ids
 */

#include "c_embed_runtime.h"
#include "example_options.h" /* the command line, shared with embed_text.c */

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One sequence, padded to seq_len: ids, mask and token types. */
struct row {
    int64_t *ids;
    int64_t *mask;
    int64_t *types;
};

static void usage(FILE *to)
{
    fputs("usage: embed_ids [--device NAME] [--seq-len N] [--out-dim N] [--threads N]\n"
          "                 [--strict] MODEL.onnx [IDS_FILE]\n"
          "Reads one sequence of token ids per line (\"ids [| mask [| types]]\") from\n"
          "IDS_FILE or standard input and prints one vector per line.\n",
          to);
}

/*
 * Reads one line of any length into *line (grown with realloc; the caller frees
 * it). Returns 1 with the line (without '\n'), 0 at the end of the input, -1 on a
 * read or allocation error.
 */
static int read_line(FILE *in, char **line, size_t *capacity)
{
    size_t length = 0;
    for (;;) {
        if (*capacity - length < 2) {
            size_t grown = *capacity ? *capacity * 2 : 256;
            char *bigger = realloc(*line, grown);
            if (bigger == NULL) {
                return -1;
            }
            *line = bigger;
            *capacity = grown;
        }
        if (fgets(*line + length, (int)(*capacity - length), in) == NULL) {
            if (ferror(in)) {
                return -1;
            }
            (*line)[length] = '\0';
            return length > 0 ? 1 : 0;
        }
        length += strlen(*line + length);
        if (length > 0 && (*line)[length - 1] == '\n') {
            (*line)[length - 1] = '\0';
            return 1;
        }
    }
}

/*
 * Parses the whitespace-separated integers of `text` into `out` (at most
 * `capacity` are kept, the rest only counted). Returns how many the text holds,
 * or -1 (after saying why) if a word is not an int64.
 */
static long parse_values(char *text, int64_t *out, int64_t capacity, long line_no)
{
    long count = 0;
    for (char *word = strtok(text, " \t\r\v\f"); word != NULL; word = strtok(NULL, " \t\r\v\f")) {
        long long value = 0;
        if (!parse_int(word, INT64_MIN, INT64_MAX, &value)) {
            fprintf(stderr, "embed_ids: line %ld: not an integer: %s\n", line_no, word);
            return -1;
        }
        if (count < capacity) {
            out[count] = (int64_t)value;
        }
        count++;
    }
    return count;
}

/*
 * Fills `row` (each array seq_len long) from one input line. Returns 1 on
 * success, 0 for a line with nothing to embed, -1 on bad input.
 */
static int parse_row(char *line, int64_t seq_len, struct row *row, long line_no)
{
    char *parts[3] = {line, NULL, NULL};
    for (int p = 1; p < 3; p++) {
        char *bar = strchr(parts[p - 1], '|');
        if (bar == NULL) {
            break;
        }
        *bar = '\0';
        parts[p] = bar + 1;
    }
    if (parts[2] != NULL && strchr(parts[2], '|') != NULL) {
        fprintf(stderr, "embed_ids: line %ld: more than three '|'-separated parts\n", line_no);
        return -1;
    }

    /* Padding is 0 everywhere: the model ignores positions whose mask is 0. */
    size_t bytes = (size_t)seq_len * sizeof(int64_t);
    memset(row->ids, 0, bytes);
    memset(row->mask, 0, bytes);
    memset(row->types, 0, bytes);

    long n_ids = parse_values(parts[0], row->ids, seq_len, line_no);
    if (n_ids < 0) {
        return -1;
    }
    if (n_ids == 0) {
        if (parts[1] != NULL) {
            fprintf(stderr, "embed_ids: line %ld: a mask but no ids\n", line_no);
            return -1;
        }
        return 0;
    }
    if (n_ids > seq_len) {
        fprintf(stderr, "embed_ids: line %ld: %ld ids cut to seq_len %" PRId64 "\n", line_no,
                n_ids, seq_len);
    }
    if (parts[1] != NULL) {
        long n_mask = parse_values(parts[1], row->mask, seq_len, line_no);
        if (n_mask < 0) {
            return -1;
        }
        if (n_mask != n_ids) {
            fprintf(stderr, "embed_ids: line %ld: %ld mask values for %ld ids\n", line_no,
                    n_mask, n_ids);
            return -1;
        }
    } else {
        for (long i = 0; i < n_ids && i < seq_len; i++) {
            row->mask[i] = 1;
        }
    }
    if (parts[2] != NULL) {
        long n_types = parse_values(parts[2], row->types, seq_len, line_no);
        if (n_types < 0) {
            return -1;
        }
        if (n_types != n_ids) {
            fprintf(stderr, "embed_ids: line %ld: %ld token types for %ld ids\n", line_no,
                    n_types, n_ids);
            return -1;
        }
    }
    return 1;
}

/* Creates a handle, or prints why it could not and returns NULL. */
static void *open_model(const struct options *opt, int32_t out_dim)
{
    void *handle = c_embed_runtime_create(opt->paths[0], opt->device, opt->seq_len, out_dim,
                                          opt->threads, opt->strict);
    if (handle == NULL) {
        /* Owned by the library; read it before this thread's next create. */
        fprintf(stderr, "embed_ids: cannot open %s: %s\n", opt->paths[0],
                c_embed_runtime_last_create_error());
    }
    return handle;
}

int main(int argc, char **argv)
{
    struct options opt = default_options("embed_ids");
    if (!parse_options(argc, argv, 1, "no model given", usage, &opt)) {
        usage(stderr);
        return 2;
    }
    FILE *in = open_input(&opt);
    if (in == NULL) {
        return 2;
    }

    int status = 1;
    struct row row = {NULL, NULL, NULL};
    float *vector = NULL;
    char *line = NULL;
    size_t line_capacity = 0;
    int64_t seq_len = 0;
    int32_t out_dim = 0;
    long line_no = 0;
    int got = 0;

    void *handle = open_sized(&opt, open_model);
    if (handle == NULL) {
        goto done;
    }

    /* The effective (clamped) sizes: embed reads seq_len values from each array and
     * writes out_dim floats, whatever was asked for. */
    seq_len = c_embed_runtime_seq_len(handle);
    out_dim = c_embed_runtime_output_dim(handle);
    row.ids = calloc((size_t)seq_len, sizeof(int64_t));
    row.mask = calloc((size_t)seq_len, sizeof(int64_t));
    row.types = calloc((size_t)seq_len, sizeof(int64_t));
    vector = calloc((size_t)out_dim, sizeof(float));
    if (row.ids == NULL || row.mask == NULL || row.types == NULL || vector == NULL) {
        fputs("embed_ids: out of memory\n", stderr);
        goto done;
    }
    fprintf(stderr, "embed_ids: %s on %s, seq_len %" PRId64 ", out_dim %" PRId32 "\n",
            opt.paths[0], c_embed_runtime_selected_device(handle), seq_len, out_dim);

    while ((got = read_line(in, &line, &line_capacity)) == 1) {
        line_no++;
        const char *start = line + strspn(line, " \t\r");
        if (*start == '#') {
            continue;
        }
        int parsed = parse_row(line, seq_len, &row, line_no);
        if (parsed < 0) {
            status = 2;
            goto done;
        }
        if (parsed == 0) {
            continue;
        }
        if (!c_embed_runtime_embed(handle, row.ids, row.mask, row.types, vector)) {
            /* Owned by the handle; valid until this thread's next call on it. */
            fprintf(stderr, "embed_ids: line %ld: %s\n", line_no,
                    c_embed_runtime_last_error(handle));
            goto done;
        }
        print_vector(vector, out_dim);
    }
    if (got < 0) {
        fputs("embed_ids: error reading the ids\n", stderr);
        status = 2;
        goto done;
    }
    if (!finish_output(&opt, handle)) {
        goto done;
    }
    status = 0;

done:
    c_embed_runtime_destroy(handle); /* NULL is ignored */
    free(line);
    free(vector);
    free(row.ids);
    free(row.mask);
    free(row.types);
    if (in != stdin) {
        fclose(in);
    }
    return status;
}
