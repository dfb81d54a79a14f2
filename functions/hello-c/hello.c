/*
 * A Wisp function in plain C, with nothing but wasi-libc: the WAGI contract is CGI, so the
 * request is in environment variables and the response goes to stdout.
 *
 * printf would work too (wasi-libc's stdio imports fd_seek, which the host answers with ESPIPE
 * on stdio), but the response is put together by hand and written with one write(2): one
 * write is one host call, and the module stays small.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *env_or_empty(const char *name) {
    const char *value = getenv(name);
    return value ? value : "";
}

static int write_all(const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int main(void) {
    const char *parts[] = {
        "Content-Type: text/plain\n\nHello from C! method=",
        env_or_empty("REQUEST_METHOD"),
        " path=",
        env_or_empty("PATH_INFO"),
        "\n",
    };
    size_t count = sizeof parts / sizeof parts[0];
    size_t len = 0;
    for (size_t i = 0; i < count; i++)
        len += strlen(parts[i]);

    /* One buffer, so the host receives the whole response in one write. */
    char *response = malloc(len + 1);
    if (response == NULL)
        return 1;
    char *end = response;
    for (size_t i = 0; i < count; i++)
        end = stpcpy(end, parts[i]);
    return write_all(response, len) == 0 ? 0 : 1;
}
