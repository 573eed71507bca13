/*
 * header_twice.c: the header survives a second inclusion (include guard), and
 * declares every function of the contract with the contract's C types.
 *
 * Nothing is called: each function's address is assigned to a pointer of the
 * type abi.md gives it (a mismatch is an error under -Werror), and the addresses
 * are used at run time, so the link must resolve all ten symbols.
 */
#include "c_embed_runtime.h"
#include "c_embed_runtime.h"

#include <stdint.h>

static void *(*const create_fn)(const char *, const char *, int64_t, int32_t, int32_t, int32_t) =
    c_embed_runtime_create;
static const char *(*const last_create_error_fn)(void) = c_embed_runtime_last_create_error;
static int32_t (*const embed_fn)(void *, const int64_t *, const int64_t *, const int64_t *,
                                 float *) = c_embed_runtime_embed;
static const char *(*const last_error_fn)(void *) = c_embed_runtime_last_error;
static const char *(*const selected_device_fn)(void *) = c_embed_runtime_selected_device;
static int32_t (*const cpu_fallback_detected_fn)(void *) = c_embed_runtime_cpu_fallback_detected;
static const char *(*const cpu_fallback_detail_fn)(void *) = c_embed_runtime_cpu_fallback_detail;
static int32_t (*const output_dim_fn)(void *) = c_embed_runtime_output_dim;
static int64_t (*const seq_len_fn)(void *) = c_embed_runtime_seq_len;
static void (*const destroy_fn)(void *) = c_embed_runtime_destroy;

int main(void)
{
    /* volatile: the checks happen at run time, against the linked addresses. */
    int volatile all_resolved = create_fn != 0 && last_create_error_fn != 0 && embed_fn != 0 &&
                                last_error_fn != 0 && selected_device_fn != 0 &&
                                cpu_fallback_detected_fn != 0 && cpu_fallback_detail_fn != 0 &&
                                output_dim_fn != 0 && seq_len_fn != 0 && destroy_fn != 0;
    return all_resolved ? 0 : 1;
}
