/*
 * wisp.h: the Wisp host's imports for functions written in C (or anything that can use a C
 * header), for clang's wasm32 targets. See "Key-value store ABI" in functions/README.md.
 *
 * The key-value store: named stores of byte keys (1 to 1024 bytes) and byte values (at most
 * 1 MiB). The host keeps every key in the calling function's own namespace of the store (or
 * in the store's shared namespace, when the function's configuration declares the store
 * shared), and a function may use only the stores its configuration grants: `default` unless
 * it says otherwise. Every operation is atomic, and a write is durable before the HTTP
 * response that follows it is sent.
 *
 * Each function returns a non-negative result, or one of the negative WISP_KV_* error codes
 * below. Pointers and lengths are 32-bit on wasm32; a pointer/length pair outside the module's
 * memory fails with WISP_KV_BAD_POINTER and touches nothing.
 *
 *     #include "wisp.h"
 *
 *     int64_t hits;
 *     if (wisp_kv_increment(WISP_KV_STR("default"), WISP_KV_STR("hits"), 1, &hits) < 0)
 *         return 1;
 */
#ifndef WISP_H
#define WISP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__wasm__)
#define WISP_IMPORT(name) __attribute__((import_module("wisp"), import_name(name)))
#else
#define WISP_IMPORT(name)
#endif

/* Error codes: every function returns one of these (negative) when it fails. */
#define WISP_KV_NOT_FOUND (-1)        /* wisp_kv_get: there is no such key */
#define WISP_KV_NO_SUCH_STORE (-2)    /* the function's configuration does not grant the store */
#define WISP_KV_INVALID_KEY (-3)      /* the key is empty or longer than WISP_KV_MAX_KEY bytes */
#define WISP_KV_VALUE_TOO_LARGE (-4)  /* the value is longer than WISP_KV_MAX_VALUE bytes */
#define WISP_KV_BAD_POINTER (-5)      /* a pointer/length pair lies outside the module's memory */
#define WISP_KV_NOT_A_NUMBER (-6)     /* increment: not a decimal int64, or it would overflow */
#define WISP_KV_BUFFER_TOO_SMALL (-7) /* wisp_kv_list: the next key does not fit in buf at all */
#define WISP_KV_STORE_FAILED (-8)     /* the store failed (an I/O error); a write did not happen */

/* The longest key and the largest value, in bytes. */
#define WISP_KV_MAX_KEY 1024
#define WISP_KV_MAX_VALUE (1024 * 1024)

/* The length to pass as `expected_len` or `new_len` of wisp_kv_compare_and_swap for "none". */
#define WISP_KV_ABSENT (-1)

/* A string literal as the (pointer, length) pair the functions take, without its NUL:
 * wisp_kv_get(WISP_KV_STR("default"), WISP_KV_STR("greeting"), buf, sizeof buf). */
#define WISP_KV_STR(literal) (literal), (sizeof(literal) - 1)

/*
 * Reads the value of `key` in `store`. Returns the value's full length and copies
 * min(length, buf_len) bytes of it to `buf`; if the length is larger than `buf_len`, call
 * again with a buffer of at least that many bytes. WISP_KV_NOT_FOUND if there is no such key.
 */
WISP_IMPORT("kv_get")
int32_t wisp_kv_get(const char *store, size_t store_len, const void *key, size_t key_len,
                    void *buf, size_t buf_len);

/* Sets `key` to the `value_len` bytes at `value`, creating or replacing it. 0 on success. */
WISP_IMPORT("kv_set")
int32_t wisp_kv_set(const char *store, size_t store_len, const void *key, size_t key_len,
                    const void *value, size_t value_len);

/* Deletes `key`: 1 if it existed, 0 if there was no such key. */
WISP_IMPORT("kv_delete")
int32_t wisp_kv_delete(const char *store, size_t store_len, const void *key, size_t key_len);

/* 1 if `key` exists, 0 if it does not. */
WISP_IMPORT("kv_exists")
int32_t wisp_kv_exists(const char *store, size_t store_len, const void *key, size_t key_len);

/*
 * Atomically adds `delta` (which may be negative) to the counter at `key`, a missing key
 * counting from 0, and writes the new count to *result. 0 on success. Counters are stored as
 * decimal ASCII text, so wisp_kv_get of one returns, say, "42"; WISP_KV_NOT_A_NUMBER (and no
 * change) if the value is not a decimal int64 or the sum would overflow.
 */
WISP_IMPORT("kv_increment")
int32_t wisp_kv_increment(const char *store, size_t store_len, const void *key, size_t key_len,
                          int64_t delta, int64_t *result);

/*
 * Atomically: if the current value of `key` equals the `expected_len` bytes at `expected`
 * (expected_len WISP_KV_ABSENT: if the key is absent), sets it to the `new_len` bytes at
 * `new_value` (new_len WISP_KV_ABSENT: deletes the key). 1 if it swapped, 0 if the current
 * value differed and nothing changed.
 */
WISP_IMPORT("kv_compare_and_swap")
int32_t wisp_kv_compare_and_swap(const char *store, size_t store_len, const void *key,
                                 size_t key_len, const void *expected, int32_t expected_len,
                                 const void *new_value, int32_t new_len);

/*
 * Lists the keys that start with `prefix` (prefix_len 0: every key), in byte order, strictly
 * after `after` (after_len 0: from the first). Writes as many whole keys as fit into `buf`
 * (the host may write fewer), each as a uint32 little-endian length followed by the key's
 * bytes, and returns how many it wrote; 0 means there are no more. To page, call again with
 * `after` set to the last key returned. WISP_KV_BUFFER_TOO_SMALL if the next key does not fit
 * at all: a buffer of 4 + WISP_KV_MAX_KEY bytes always holds one. wisp_kv_list_next reads the
 * keys back.
 */
WISP_IMPORT("kv_list")
int32_t wisp_kv_list(const char *store, size_t store_len, const void *prefix, size_t prefix_len,
                     const void *after, size_t after_len, void *buf, size_t buf_len);

/*
 * Steps through the keys wisp_kv_list wrote: call it as many times as wisp_kv_list returned,
 * starting with *cursor = buf; each call points *key at the next key (inside buf, not
 * NUL-terminated), sets *key_len, and advances *cursor.
 *
 *     int32_t n = wisp_kv_list(WISP_KV_STR("default"), "", 0, "", 0, buf, sizeof buf);
 *     const uint8_t *cursor = buf;
 *     for (int32_t i = 0; i < n; i++) {
 *         const uint8_t *key;
 *         uint32_t key_len;
 *         wisp_kv_list_next(&cursor, &key, &key_len);
 *         ...
 *     }
 */
static inline void wisp_kv_list_next(const uint8_t **cursor, const uint8_t **key,
                                     uint32_t *key_len) {
    const uint8_t *p = *cursor;
    *key_len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
               (uint32_t)p[3] << 24;
    *key = p + 4;
    *cursor = p + 4 + *key_len;
}

/* A short English description of a WISP_KV_* error code, for logs. */
static inline const char *wisp_kv_strerror(int32_t code) {
    switch (code) {
    case WISP_KV_NOT_FOUND: return "no such key";
    case WISP_KV_NO_SUCH_STORE: return "the store is not granted to this function";
    case WISP_KV_INVALID_KEY: return "invalid key: a key is 1 to 1024 bytes";
    case WISP_KV_VALUE_TOO_LARGE: return "value too large: a value is at most 1048576 bytes";
    case WISP_KV_BAD_POINTER: return "a pointer or length was outside the module's memory";
    case WISP_KV_NOT_A_NUMBER: return "the value is not a decimal int64, or it would overflow";
    case WISP_KV_BUFFER_TOO_SMALL: return "the buffer cannot hold the next key";
    case WISP_KV_STORE_FAILED: return "the store failed; the write did not happen";
    default: return code >= 0 ? "no error" : "unknown error";
    }
}

#ifdef __cplusplus
}
#endif

#endif /* WISP_H */
