/*
 * embed_text: a small C host of libc_embed_runtime.so that embeds text. Copy it
 * to start your own.
 *
 *   embed_text [options] MODEL.onnx TOKENIZER.json [TEXT_FILE]
 *
 * Reads UTF-8 text from TEXT_FILE, or from standard input when TEXT_FILE is
 * absent or "-": each line is one text (its line end removed; a blank line is the
 * empty text). The library tokenizes each text with TOKENIZER.json (the model's
 * Hugging Face tokenizer), truncated to seq_len tokens with the special tokens
 * kept. Prints one vector per line of input, one line of out_dim
 * space-separated floats, on standard output; messages go to standard error.
 *
 * Options:
 *   --device NAME   AUTO, CPU, GPU, NPU, ... (default CPU)
 *   --seq-len N     tokens per text (default 128)
 *   --out-dim N     length of each vector (default: the model's hidden size)
 *   --threads N     ONNX Runtime threads (default 1)
 *   --strict        fail when a GPU/NPU handle fell back to the CPU
 *
 * Exit status: 0 on success, 1 when the model, the tokenizer or an embed fails
 * (e.g. a line that is not UTF-8), 2 on bad usage.
 *
 * Needs a library built with the `text` feature (the default).
 *
 * Build (after `make install`; example_options.h beside it):
 *   cc -std=c11 -O2 embed_text.c $(pkg-config --cflags --libs c_embed_runtime) -o embed_text
 */

#define _POSIX_C_SOURCE 200809L /* getline */

#include "c_embed_runtime.h"
#include "example_options.h" /* the command line, shared with embed_ids.c */

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *to)
{
    fputs("usage: embed_text [--device NAME] [--seq-len N] [--out-dim N] [--threads N]\n"
          "                  [--strict] MODEL.onnx TOKENIZER.json [TEXT_FILE]\n"
          "Reads one UTF-8 text per line from TEXT_FILE or standard input and prints\n"
          "one vector per line.\n",
          to);
}

/* Creates a handle with the tokenizer, or prints why it could not and returns NULL. */
static void *open_model(const struct options *opt, int32_t out_dim)
{
    void *handle = c_embed_runtime_create_with_tokenizer(
        opt->paths[0], opt->paths[1], opt->device, opt->seq_len, out_dim, opt->threads, opt->strict);
    if (handle == NULL) {
        /* Owned by the library; read it before this thread's next create. */
        fprintf(stderr, "embed_text: cannot open %s with %s: %s\n", opt->paths[0], opt->paths[1],
                c_embed_runtime_last_create_error());
    }
    return handle;
}

int main(int argc, char **argv)
{
    struct options opt = default_options("embed_text");
    if (!parse_options(argc, argv, 2, "give the model and its tokenizer.json", usage, &opt)) {
        usage(stderr);
        return 2;
    }
    FILE *in = open_input(&opt);
    if (in == NULL) {
        return 2;
    }

    int status = 1;
    float *vector = NULL;
    char *line = NULL;
    size_t line_capacity = 0;
    ssize_t length = 0;
    int32_t out_dim = 0;
    long line_no = 0;

    void *handle = open_sized(&opt, open_model);
    if (handle == NULL) {
        goto done;
    }

    /* The effective (clamped) size: embed_text writes out_dim floats. */
    out_dim = c_embed_runtime_output_dim(handle);
    vector = calloc((size_t)out_dim, sizeof(float));
    if (vector == NULL) {
        fputs("embed_text: out of memory\n", stderr);
        goto done;
    }
    fprintf(stderr, "embed_text: %s on %s, seq_len %" PRId64 ", out_dim %" PRId32 "\n", opt.paths[0],
            c_embed_runtime_selected_device(handle), c_embed_runtime_seq_len(handle), out_dim);

    while ((length = getline(&line, &line_capacity, in)) >= 0) {
        line_no++;
        /* The line end is not part of the text. A NUL byte in the line ends the
         * text the library sees (C strings cannot hold one). */
        while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r')) {
            line[--length] = '\0';
        }
        if (!c_embed_runtime_embed_text(handle, line, vector)) {
            /* Owned by the handle; valid until this thread's next call on it. */
            fprintf(stderr, "embed_text: line %ld: %s\n", line_no,
                    c_embed_runtime_last_error(handle));
            goto done;
        }
        print_vector(vector, out_dim);
    }
    if (ferror(in)) {
        fputs("embed_text: error reading the text\n", stderr);
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
    if (in != stdin) {
        fclose(in);
    }
    return status;
}
