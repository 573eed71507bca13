/*
 * A stand-in for libonnxruntime.so that the loader must refuse cleanly
 * (python/tests/test_versions.py): OrtGetApiBase() with the version string
 * FAKE_VERSION and a GetApi that returns NULL unless FAKE_HAS_API is 1 (then a
 * non-NULL table the loader must never reach for an unsupported version).
 */
#include <stdint.h>

#ifndef FAKE_VERSION
#define FAKE_VERSION "1.19.2"
#endif
#ifndef FAKE_HAS_API
#define FAKE_HAS_API 0
#endif

typedef struct OrtApiBase {
    const void *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} OrtApiBase;

static const char g_table[64];

static const void *get_api(uint32_t version)
{
    (void)version;
    return FAKE_HAS_API ? (const void *)g_table : (const void *)0;
}

static const char *get_version_string(void)
{
    return FAKE_VERSION;
}

static const OrtApiBase g_base = {get_api, get_version_string};

const OrtApiBase *OrtGetApiBase(void);

const OrtApiBase *OrtGetApiBase(void)
{
    return &g_base;
}
