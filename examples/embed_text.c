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
 * Build (after `make install`):
 *   cc -std=c11 -O2 embed_text.c $(pkg-config --cflags --libs c_embed_runtime) -o embed_text
 */

#define _POSIX_C_SOURCE 200809L /* getline */

#include "c_embed_runtime.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct options {
    const char *model;
    const char *tokenizer;
    const char *text_file;
    const char *device;
    int64_t seq_len;
    int32_t out_dim; /* 0: the model's hidden size */
    int32_t threads;
    int32_t strict;
};

static void usage(FILE *to)
{
    fputs("usage: embed_text [--device NAME] [--seq-len N] [--out-dim N] [--threads N]\n"
          "                  [--strict] MODEL.onnx TOKENIZER.json [TEXT_FILE]\n"
          "Reads one UTF-8 text per line from TEXT_FILE or standard input and prints\n"
          "one vector per line.\n",
          to);
}

/* Parses a whole decimal integer in [min, max]; returns 0 if it is not one. */
static int parse_int(const char *text, long long min, long long max, long long *value)
{
    char *end = NULL;
    errno = 0;
    long long parsed = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || parsed < min || parsed > max) {
        return 0;
    }
    *value = parsed;
    return 1;
}

static int parse_options(int argc, char **argv, struct options *opt)
{
    const char *positional[3] = {NULL, NULL, NULL};
    int n_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        long long value = 0;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--strict") == 0) {
            opt->strict = 1;
        } else if (strcmp(arg, "--device") == 0 || strcmp(arg, "--seq-len") == 0 ||
                   strcmp(arg, "--out-dim") == 0 || strcmp(arg, "--threads") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "embed_text: %s needs a value\n", arg);
                return 0;
            }
            const char *text = argv[++i];
            if (strcmp(arg, "--device") == 0) {
                opt->device = text;
            } else if (strcmp(arg, "--seq-len") == 0) {
                if (!parse_int(text, 1, 1048576, &value)) {
                    fprintf(stderr, "embed_text: --seq-len: not a number in 1..1048576: %s\n", text);
                    return 0;
                }
                opt->seq_len = (int64_t)value;
            } else if (strcmp(arg, "--out-dim") == 0) {
                if (!parse_int(text, 1, 1 << 20, &value)) {
                    fprintf(stderr, "embed_text: --out-dim: not a number in 1..1048576: %s\n", text);
                    return 0;
                }
                opt->out_dim = (int32_t)value;
            } else {
                if (!parse_int(text, 1, 64, &value)) {
                    fprintf(stderr, "embed_text: --threads: not a number in 1..64: %s\n", text);
                    return 0;
                }
                opt->threads = (int32_t)value;
            }
        } else if (arg[0] == '-' && arg[1] == '-') {
            fprintf(stderr, "embed_text: unknown option %s\n", arg);
            return 0;
        } else if (n_positional < 3) {
            positional[n_positional++] = arg;
        } else {
            fprintf(stderr, "embed_text: too many arguments: %s\n", arg);
            return 0;
        }
    }
    if (n_positional < 2) {
        fputs("embed_text: give the model and its tokenizer.json\n", stderr);
        return 0;
    }
    opt->model = positional[0];
    opt->tokenizer = positional[1];
    opt->text_file = positional[2];
    return 1;
}

/* Creates a handle with the tokenizer, or prints why it could not and returns NULL. */
static void *open_model(const struct options *opt, int32_t out_dim)
{
    void *handle = c_embed_runtime_create_with_tokenizer(
        opt->model, opt->tokenizer, opt->device, opt->seq_len, out_dim, opt->threads, opt->strict);
    if (handle == NULL) {
        /* Owned by the library; read it before this thread's next create. */
        fprintf(stderr, "embed_text: cannot open %s with %s: %s\n", opt->model, opt->tokenizer,
                c_embed_runtime_last_create_error());
    }
    return handle;
}

int main(int argc, char **argv)
{
    struct options opt = {NULL, NULL, NULL, "CPU", 128, 0, 1, 0};
    if (!parse_options(argc, argv, &opt)) {
        usage(stderr);
        return 2;
    }

    FILE *in = stdin;
    if (opt.text_file != NULL && strcmp(opt.text_file, "-") != 0) {
        in = fopen(opt.text_file, "r");
        if (in == NULL) {
            fprintf(stderr, "embed_text: cannot read %s: %s\n", opt.text_file, strerror(errno));
            return 2;
        }
    }

    int status = 1;
    float *vector = NULL;
    char *line = NULL;
    size_t line_capacity = 0;
    ssize_t length = 0;
    int32_t out_dim = 0;
    long line_no = 0;

    void *handle = open_model(&opt, opt.out_dim > 0 ? opt.out_dim : 1);
    if (handle == NULL) {
        goto done;
    }
    if (opt.out_dim == 0) {
        /* No --out-dim: reopen with the model's hidden size, so the vectors are
         * neither cut nor zero-padded. */
        int32_t hidden = c_embed_runtime_hidden_size(handle);
        c_embed_runtime_destroy(handle);
        handle = NULL;
        if (hidden <= 0) {
            fprintf(stderr, "embed_text: %s: no usable output; pass --out-dim to see why\n",
                    opt.model);
            goto done;
        }
        handle = open_model(&opt, hidden);
        if (handle == NULL) {
            goto done;
        }
    }

    /* The effective (clamped) size: embed_text writes out_dim floats. */
    out_dim = c_embed_runtime_output_dim(handle);
    vector = calloc((size_t)out_dim, sizeof(float));
    if (vector == NULL) {
        fputs("embed_text: out of memory\n", stderr);
        goto done;
    }
    fprintf(stderr, "embed_text: %s on %s, seq_len %" PRId64 ", out_dim %" PRId32 "\n", opt.model,
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
        for (int32_t i = 0; i < out_dim; i++) {
            printf(i ? " %.7g" : "%.7g", (double)vector[i]);
        }
        putchar('\n');
    }
    if (ferror(in)) {
        fputs("embed_text: error reading the text\n", stderr);
        status = 2;
        goto done;
    }
    if (c_embed_runtime_cpu_fallback_detected(handle)) {
        fprintf(stderr, "embed_text: warning: ONNX Runtime fell back to the CPU: %s\n",
                c_embed_runtime_cpu_fallback_detail(handle));
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "embed_text: cannot write the vectors: %s\n", strerror(errno));
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
