/*
 * wisp.h: the Wisp host's imports for functions written in C (or anything that can use a C
 * header), for clang's wasm32 targets: the key-value store and topics. See "Host ABI" in
 * functions/README.md.
 *
 * The key-value store: named stores of byte keys (1 to 1024 bytes) and byte values (at most
 * 1 MiB). The host keeps every key in the calling function's own namespace of the store (or
 * in the store's shared namespace, when the function's configuration declares the store
 * shared), and a function may use only the stores its configuration grants: `default` unless
 * it says otherwise. Every operation is atomic, and a write is durable before the HTTP
 * response that follows it is sent.
 *
 * Topics: wisp_publish sends a message to every function subscribed to a topic, if the
 * invocation that publishes it succeeds. The comment before WISP_KV_NOT_FOUND lists the
 * environment variables that tell a function which event (message, timer tick, key change)
 * invoked it.
 *
 * Each function returns a non-negative result, or one of the negative error codes below.
 * Pointers and lengths are 32-bit on wasm32; a pointer/length pair outside the module's
 * memory fails with WISP_BAD_POINTER (WISP_KV_BAD_POINTER) and touches nothing.
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

/*
 * Events. Besides HTTP requests, the host invokes a function for messages on the topics it
 * subscribes to ("topics" in its configuration), for the ticks of its timers ("timers") and
 * for changes to the keys it watches ("watch"). Each arrives as an HTTP request would: the
 * payload on stdin, REQUEST_METHOD=POST, CONTENT_LENGTH, SERVER_PROTOCOL=HTTP/1.1, empty
 * SCRIPT_NAME, PATH_INFO and QUERY_STRING, WISP_FUNCTION and the function's own env, plus:
 *
 *   WISP_TRIGGER          topic, timer or kv; not set for an HTTP request
 *   topic:  WISP_TOPIC         the topic's name
 *           WISP_MESSAGE_ID    an opaque id, the same for every subscriber and every delivery
 *           WISP_ATTEMPT       1 on the first delivery, 2 on the first retry, ...
 *           stdin: the message
 *   timer:  WISP_TIMER         the schedule as the configuration writes it ("every 10s")
 *           WISP_SCHEDULED_AT  when the tick was due: ms since the Unix epoch, in decimal
 *           stdin: empty
 *   kv:     WISP_KV_STORE      the store's name
 *           WISP_KV_KEY        the key, as the function names it in that store
 *           WISP_KV_KEY_ENCODING  "percent" only when the key is not UTF-8 or holds a NUL:
 *                              then WISP_KV_KEY has every byte of the key as %XX
 *           WISP_KV_OP         set or delete
 *           stdin: the new value (empty for a delete)
 *
 * An event succeeds when the function exits with status 0 and writes no CGI "Status:" of 400
 * or more (writing nothing at all is fine). Otherwise it failed, and the host retries topic
 * messages and key changes with a backoff, then keeps them as dead letters.
 */

/*
 * Error codes: every function returns one of these (negative) when it fails. The key-value
 * functions return -1 to -9 and -13; wisp_publish returns -5 and -9 to -12.
 */
#define WISP_KV_NOT_FOUND (-1)        /* wisp_kv_get: there is no such key */
#define WISP_KV_NO_SUCH_STORE (-2)    /* the function's configuration does not grant the store */
#define WISP_KV_INVALID_KEY (-3)      /* the key is empty or longer than WISP_KV_MAX_KEY bytes */
#define WISP_KV_VALUE_TOO_LARGE (-4)  /* the value is longer than WISP_KV_MAX_VALUE bytes */
#define WISP_KV_BAD_POINTER (-5)      /* a pointer/length pair lies outside the module's memory */
#define WISP_KV_NOT_A_NUMBER (-6)     /* increment: not a decimal int64, or it would overflow */
#define WISP_KV_BUFFER_TOO_SMALL (-7) /* wisp_kv_list: the next key does not fit in buf at all */
#define WISP_KV_STORE_FAILED (-8)     /* the store failed (an I/O error); a write did not happen */
#define WISP_QUEUE_FULL (-9)          /* a queue is full: a subscriber or watcher is too far behind;
                                         the write or message did not happen: try later */
#define WISP_NOT_ALLOWED (-10)        /* wisp_publish: the topic is not in "publish", or invalid */
#define WISP_MESSAGE_TOO_LARGE (-11)  /* wisp_publish: the message is over WISP_MAX_MESSAGE bytes */
#define WISP_TOO_MANY_MESSAGES (-12)  /* wisp_publish: over WISP_MAX_MESSAGES messages or
                                         WISP_MAX_PUBLISHED bytes in all in this invocation */
#define WISP_STORE_UNAVAILABLE (-13)  /* the store is a fleet's shared one (Redis) and cannot be
                                         reached now: reads and writes fail; a write may or may
                                         not have happened. Try later, or answer 503 */
/* Outbound HTTP (wisp_http_send); nothing was sent for -14, -15 and -18. */
#define WISP_HTTP_NOT_ALLOWED (-14)   /* the URL's origin (or a redirect's) is not in allowed_hosts */
#define WISP_HTTP_INVALID (-15)       /* a malformed URL, method or header line */
#define WISP_HTTP_TIMEOUT (-16)       /* no response within 10 s or the invocation's deadline */
#define WISP_HTTP_TOO_LARGE (-17)     /* the request body (1 MiB), headers (16 KiB) or the
                                         response (4 MiB body, 64 KiB head) is over its cap */
#define WISP_HTTP_TOO_MANY_CALLS (-18) /* over WISP_HTTP_MAX_CALLS calls in this invocation */
#define WISP_HTTP_CONNECT_FAILED (-19) /* the name did not resolve, or the connection failed */
#define WISP_HTTP_TLS_FAILED (-20)    /* the TLS handshake failed: a certificate that does not
                                         verify, most often */
#define WISP_HTTP_BAD_RESPONSE (-21)  /* not HTTP/1.x, or over 5 redirects */
#define WISP_HTTP_NO_RESPONSE (-22)   /* wisp_http_read: no response is held, or a bad part */
#define WISP_HTTP_MAX_CALLS 32
#define WISP_KV_QUEUE_FULL WISP_QUEUE_FULL /* a kv write: a watcher of the key is too far behind */
#define WISP_KV_STORE_UNAVAILABLE WISP_STORE_UNAVAILABLE
#define WISP_BAD_POINTER WISP_KV_BAD_POINTER

/* The longest key and the largest value, in bytes. */
#define WISP_KV_MAX_KEY 1024
#define WISP_KV_MAX_VALUE (1024 * 1024)

/* The largest message, and the most messages and payload bytes one invocation publishes. */
#define WISP_MAX_MESSAGE (128 * 1024)
#define WISP_MAX_MESSAGES 256
#define WISP_MAX_PUBLISHED (1024 * 1024)

/* The length to pass as `expected_len` or `new_len` of wisp_kv_compare_and_swap for "none". */
#define WISP_KV_ABSENT (-1)

/* A string literal as the (pointer, length) pair the functions take, without its NUL:
 * wisp_kv_get(WISP_KV_STR("default"), WISP_KV_STR("greeting"), buf, sizeof buf). */
#define WISP_KV_STR(literal) (literal), (sizeof(literal) - 1)
#define WISP_STR(literal) WISP_KV_STR(literal)

/*
 * Reads the value of `key` in `store`. Returns the value's full length and copies
 * min(length, buf_len) bytes of it to `buf`; if the length is larger than `buf_len`, call
 * again with a buffer of at least that many bytes. WISP_KV_NOT_FOUND if there is no such key.
 */
WISP_IMPORT("kv_get")
int32_t wisp_kv_get(const char *store, size_t store_len, const void *key, size_t key_len,
                    void *buf, size_t buf_len);

/*
 * Sets `key` to the `value_len` bytes at `value`, creating or replacing it. 0 on success. Like
 * every write (wisp_kv_delete, wisp_kv_increment, wisp_kv_compare_and_swap), it fails with
 * WISP_KV_QUEUE_FULL, and does nothing, when a function watching the key is too far behind.
 */
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

/*
 * Publishes the `payload_len` bytes at `payload` on `topic` (1 to 63 of a-z, 0-9 and '-',
 * starting with a letter or digit, and listed in the function's "publish" configuration).
 * 0: the message is in this invocation's outbox, which the host commits, together with the
 * invocation's other writes, only if the invocation succeeds, and then delivers to every
 * subscriber of the topic; a trap, a limit, a non-zero exit or a failure status publishes
 * nothing. Errors: WISP_BAD_POINTER, WISP_QUEUE_FULL (a subscriber is too far behind: back off,
 * or fail the request), WISP_NOT_ALLOWED, WISP_MESSAGE_TOO_LARGE, WISP_TOO_MANY_MESSAGES.
 *
 *     if (wisp_publish(WISP_STR("orders"), body, body_len) < 0)
 *         ... answer "Status: 503" ...
 */
WISP_IMPORT("publish")
int32_t wisp_publish(const char *topic, size_t topic_len, const void *payload,
                     size_t payload_len);

/* A short English description of any error code above, for logs. */
static inline const char *wisp_strerror(int32_t code) {
    switch (code) {
    case WISP_KV_NOT_FOUND: return "no such key";
    case WISP_KV_NO_SUCH_STORE: return "the store is not granted to this function";
    case WISP_KV_INVALID_KEY: return "invalid key: a key is 1 to 1024 bytes";
    case WISP_KV_VALUE_TOO_LARGE: return "value too large: a value is at most 1048576 bytes";
    case WISP_KV_BAD_POINTER: return "a pointer or length was outside the module's memory";
    case WISP_KV_NOT_A_NUMBER: return "the value is not a decimal int64, or it would overflow";
    case WISP_KV_BUFFER_TOO_SMALL: return "the buffer cannot hold the next key";
    case WISP_KV_STORE_FAILED: return "the store failed; the write did not happen";
    case WISP_QUEUE_FULL: return "a queue is full: a subscriber or watcher is too far behind";
    case WISP_NOT_ALLOWED: return "the topic is not in this function's publish list, or invalid";
    case WISP_MESSAGE_TOO_LARGE: return "message too large: a message is at most 131072 bytes";
    case WISP_TOO_MANY_MESSAGES: return "too many messages published by this invocation";
    case WISP_STORE_UNAVAILABLE:
        return "the shared store cannot be reached now; a write may or may not have happened";
    case WISP_HTTP_NOT_ALLOWED: return "the host is not in this function's allowed_hosts";
    case WISP_HTTP_INVALID: return "a malformed URL, method or header";
    case WISP_HTTP_TIMEOUT: return "the outbound request timed out";
    case WISP_HTTP_TOO_LARGE: return "the outbound request or its response is over a size cap";
    case WISP_HTTP_TOO_MANY_CALLS: return "too many outbound requests in this invocation";
    case WISP_HTTP_CONNECT_FAILED: return "could not connect";
    case WISP_HTTP_TLS_FAILED: return "the TLS handshake failed (the certificate?)";
    case WISP_HTTP_BAD_RESPONSE: return "the answer was not HTTP, or redirected too often";
    case WISP_HTTP_NO_RESPONSE: return "no response is held";
    default: return code >= 0 ? "no error" : "unknown error";
    }
}

/*
 * Outbound HTTP. Sends one request to an absolute http:// or https:// URL whose origin the
 * function's "allowed_hosts" lists, following redirects to allowed origins only. `headers` is
 * "Name: value" lines separated by "\n" (Host, Content-Length and Connection are the host's).
 * The invocation is suspended until the response is in; a call never outlives the
 * invocation's deadline. Returns the response's status (100 to 599) and writes at out[0] the
 * length of its headers (as "name: value\n" lines, names in lowercase) and at out[1] the
 * length of its body; or a negative WISP_HTTP_* code. The response is held until the next
 * wisp_http_send:
 *
 *     uint32_t lens[2];
 *     int32_t status = wisp_http_send(WISP_STR("GET"), WISP_STR("https://api.example.com/x"),
 *                                     "", 0, "", 0, lens);
 *     if (status < 0) return status;
 *     char *body = malloc(lens[1]);
 *     wisp_http_read(WISP_HTTP_BODY, 0, body, lens[1]);
 */
WISP_IMPORT("http_send")
int32_t wisp_http_send(const char *method, size_t method_len, const char *url, size_t url_len,
                       const char *headers, size_t headers_len, const void *body,
                       size_t body_len, uint32_t out[2]);

#define WISP_HTTP_HEADERS 0
#define WISP_HTTP_BODY 1

/*
 * Copies the held response's headers (part WISP_HTTP_HEADERS) or body (WISP_HTTP_BODY), from
 * byte `offset` on, into `buf`; returns the number of bytes copied.
 */
WISP_IMPORT("http_read")
int32_t wisp_http_read(int32_t part, int32_t offset, void *buf, size_t buf_len);

/* The same as wisp_strerror, by its older name. */
static inline const char *wisp_kv_strerror(int32_t code) { return wisp_strerror(code); }

#ifdef __cplusplus
}
#endif

#endif /* WISP_H */
