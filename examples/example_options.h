/*
 * example_options.h: what the example hosts (embed_ids.c, embed_text.c) share:
 * their command line, and opening a handle whose out_dim defaults to the model's
 * hidden size. Copy it along with the example you start from.
 *
 *   PROGRAM [--device NAME] [--seq-len N] [--out-dim N] [--threads N] [--strict]
 *           PATH... [INPUT_FILE]
 */
#ifndef C_EMBED_RUNTIME_EXAMPLE_OPTIONS_H
#define C_EMBED_RUNTIME_EXAMPLE_OPTIONS_H

#include "c_embed_runtime.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct options {
    const char *program; /* for messages */
    const char *paths[2]; /* MODEL.onnx, and TOKENIZER.json for embed_text */
    const char *input;    /* INPUT_FILE, or NULL / "-" for standard input */
    const char *device;
    int64_t seq_len;
    int32_t out_dim; /* 0: the model's hidden size */
    int32_t threads;
    int32_t strict;
};

/* The defaults: CPU, seq_len 128, the model's hidden size, one thread, not strict. */
static struct options default_options(const char *program)
{
    struct options opt = {program, {NULL, NULL}, NULL, "CPU", 128, 0, 1, 0};
    return opt;
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

/* Parses one option's value into `opt`; returns 0 (after saying why) if it is bad. */
static int parse_value(const char *option, const char *text, struct options *opt)
{
    long long value = 0;
    if (strcmp(option, "--device") == 0) {
        opt->device = text;
        return 1;
    }
    int is_seq_len = strcmp(option, "--seq-len") == 0;
    int is_out_dim = strcmp(option, "--out-dim") == 0;
    long long max = is_seq_len || is_out_dim ? 1048576 : 64;
    if (!parse_int(text, 1, max, &value)) {
        fprintf(stderr, "%s: %s: not a number in 1..%lld: %s\n", opt->program, option, max, text);
        return 0;
    }
    if (is_seq_len) {
        opt->seq_len = (int64_t)value;
    } else if (is_out_dim) {
        opt->out_dim = (int32_t)value;
    } else {
        opt->threads = (int32_t)value;
    }
    return 1;
}

/*
 * Parses the command line into `opt`: the options, then `n_paths` required paths
 * (`missing` is the message when they are not all there) and an optional input
 * file. --help prints usage to standard output and exits 0. Returns 0 (after
 * saying why) on bad usage.
 */
static int parse_options(int argc, char **argv, int n_paths, const char *missing,
                         void (*usage)(FILE *), struct options *opt)
{
    const char *positional[3] = {NULL, NULL, NULL};
    int n_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(arg, "--strict") == 0) {
            opt->strict = 1;
        } else if (strcmp(arg, "--device") == 0 || strcmp(arg, "--seq-len") == 0 ||
                   strcmp(arg, "--out-dim") == 0 || strcmp(arg, "--threads") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: %s needs a value\n", opt->program, arg);
                return 0;
            }
            if (!parse_value(arg, argv[++i], opt)) {
                return 0;
            }
        } else if (arg[0] == '-' && arg[1] == '-') {
            fprintf(stderr, "%s: unknown option %s\n", opt->program, arg);
            return 0;
        } else if (n_positional < n_paths + 1) {
            positional[n_positional++] = arg;
        } else {
            fprintf(stderr, "%s: too many arguments: %s\n", opt->program, arg);
            return 0;
        }
    }
    if (n_positional < n_paths) {
        fprintf(stderr, "%s: %s\n", opt->program, missing);
        return 0;
    }
    for (int p = 0; p < n_paths; p++) {
        opt->paths[p] = positional[p];
    }
    opt->input = positional[n_paths];
    return 1;
}

/* Creates a handle with the given out_dim, or prints why it could not and returns NULL. */
typedef void *(*open_fn)(const struct options *opt, int32_t out_dim);

/*
 * Opens a handle with `open`: with --out-dim as given, else with the model's
 * hidden size (found by opening the model once with out_dim 1), so the vectors
 * are neither cut nor zero-padded. NULL (after saying why) on failure.
 */
static void *open_sized(const struct options *opt, open_fn open)
{
    void *handle = open(opt, opt->out_dim > 0 ? opt->out_dim : 1);
    if (handle == NULL || opt->out_dim > 0) {
        return handle;
    }
    int32_t hidden = c_embed_runtime_hidden_size(handle);
    c_embed_runtime_destroy(handle);
    if (hidden <= 0) {
        fprintf(stderr, "%s: %s: no usable output; pass --out-dim to see why\n", opt->program,
                opt->paths[0]);
        return NULL;
    }
    return open(opt, hidden);
}

/* The input file, or standard input for NULL or "-"; NULL (after saying why) on failure. */
static FILE *open_input(const struct options *opt)
{
    if (opt->input == NULL || strcmp(opt->input, "-") == 0) {
        return stdin;
    }
    FILE *in = fopen(opt->input, "r");
    if (in == NULL) {
        fprintf(stderr, "%s: cannot read %s: %s\n", opt->program, opt->input, strerror(errno));
    }
    return in;
}

/* Prints one vector as a line of space-separated floats. */
static void print_vector(const float *vector, int32_t out_dim)
{
    for (int32_t i = 0; i < out_dim; i++) {
        printf(i ? " %.7g" : "%.7g", (double)vector[i]);
    }
    putchar('\n');
}

/* After the last embed: warns of a CPU fallback, flushes the vectors; 0 if that failed. */
static int finish_output(const struct options *opt, void *handle)
{
    if (c_embed_runtime_cpu_fallback_detected(handle)) {
        fprintf(stderr, "%s: warning: ONNX Runtime fell back to the CPU: %s\n", opt->program,
                c_embed_runtime_cpu_fallback_detail(handle));
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: cannot write the vectors: %s\n", opt->program, strerror(errno));
        return 0;
    }
    return 1;
}

#endif /* C_EMBED_RUNTIME_EXAMPLE_OPTIONS_H */
