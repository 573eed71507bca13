// header_cpp.cpp: the header compiles as C++17 (extern "C" linkage), declares
// every function with the contract's types, and the ten symbols link.
//
// Nothing is called: the static_asserts pin each signature at compile time, and
// the addresses are read at run time so the link must resolve them.
#include "c_embed_runtime.h"

#include <cstdint>
#include <type_traits>

#define SAME_TYPE(fn, type) \
    static_assert(std::is_same<decltype(&fn), type>::value, #fn " has the contract's type")

SAME_TYPE(c_embed_runtime_create,
          void *(*)(const char *, const char *, std::int64_t, std::int32_t, std::int32_t,
                    std::int32_t));
SAME_TYPE(c_embed_runtime_last_create_error, const char *(*)());
SAME_TYPE(c_embed_runtime_embed, std::int32_t (*)(void *, const std::int64_t *,
                                                  const std::int64_t *, const std::int64_t *,
                                                  float *));
SAME_TYPE(c_embed_runtime_last_error, const char *(*)(void *));
SAME_TYPE(c_embed_runtime_selected_device, const char *(*)(void *));
SAME_TYPE(c_embed_runtime_cpu_fallback_detected, std::int32_t (*)(void *));
SAME_TYPE(c_embed_runtime_cpu_fallback_detail, const char *(*)(void *));
SAME_TYPE(c_embed_runtime_output_dim, std::int32_t (*)(void *));
SAME_TYPE(c_embed_runtime_seq_len, std::int64_t (*)(void *));
SAME_TYPE(c_embed_runtime_destroy, void (*)(void *));

int main()
{
    // volatile: read the linked addresses at run time.
    const void *volatile addresses[] = {
        reinterpret_cast<const void *>(&c_embed_runtime_create),
        reinterpret_cast<const void *>(&c_embed_runtime_last_create_error),
        reinterpret_cast<const void *>(&c_embed_runtime_embed),
        reinterpret_cast<const void *>(&c_embed_runtime_last_error),
        reinterpret_cast<const void *>(&c_embed_runtime_selected_device),
        reinterpret_cast<const void *>(&c_embed_runtime_cpu_fallback_detected),
        reinterpret_cast<const void *>(&c_embed_runtime_cpu_fallback_detail),
        reinterpret_cast<const void *>(&c_embed_runtime_output_dim),
        reinterpret_cast<const void *>(&c_embed_runtime_seq_len),
        reinterpret_cast<const void *>(&c_embed_runtime_destroy),
    };
    for (const void *volatile address : addresses) {
        if (address == nullptr) {
            return 1;
        }
    }
    return 0;
}
