/*
 * Heap-allocation counter for the whole process, loaded with LD_PRELOAD.
 *
 * Every allocating entry point of the C allocator is interposed, counted, and
 * forwarded to glibc's own allocator through its __libc_* entry points. Those
 * are used rather than dlsym(RTLD_NEXT, ...) because dlsym itself may call
 * calloc, which would recurse before the real function is known. free() is not
 * interposed: the blocks still come from glibc's allocator, so its free fits.
 *
 * C++ operator new, Rust's System allocator, numpy and Python's arenas all end
 * up in these functions, so the count covers every language in the process.
 * A benchmark reads the count with dlsym(RTLD_DEFAULT, "alloc_counter_count")
 * and reports "n/a" when the counter is not preloaded.
 *
 * Build: cc -shared -fPIC -O2 alloc_counter.c -o liballoc_counter.so
 */

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* glibc's allocator under its internal names (exported since glibc 2.2.5). */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

/* Relaxed: only the total matters, and readers look at it between phases. */
static atomic_uint_fast64_t allocations;

static void count_one(void) {
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
}

/* Allocations made by this process since it started (all threads). */
uint64_t alloc_counter_count(void) {
    return (uint64_t)atomic_load_explicit(&allocations, memory_order_relaxed);
}

void *malloc(size_t size) {
    count_one();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    count_one();
    return __libc_calloc(count, size);
}

/* A realloc may move the block: it counts as an allocation (except as a free). */
void *realloc(void *ptr, size_t size) {
    if (ptr == NULL || size != 0) {
        count_one();
    }
    return __libc_realloc(ptr, size);
}

void *reallocarray(void *ptr, size_t count, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(ptr, bytes);
}

void *memalign(size_t alignment, size_t size) {
    count_one();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_one();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    /* POSIX: a power of two that is a multiple of sizeof(void *). */
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment % sizeof(void *) != 0) {
        return EINVAL;
    }
    count_one();
    void *block = __libc_memalign(alignment, size);
    if (block == NULL) {
        return ENOMEM;
    }
    *out = block;
    return 0;
}

void *valloc(size_t size) {
    count_one();
    return __libc_valloc(size);
}

void *pvalloc(size_t size) {
    count_one();
    return __libc_pvalloc(size);
}
