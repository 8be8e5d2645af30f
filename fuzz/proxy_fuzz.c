/*
 * proxy_fuzz.c: bytes from the front of a connection through sv_proxy_parse
 * (what src/server/remote.c runs on every new connection under
 * set_remote_address proxy_protocol:), and the same bytes as a forwarded-for
 * header value through sv_xff_client. Aborts if:
 *   - a header length is longer than the input, or an address is not
 *     NUL-terminated, or a client address comes with "local";
 *   - a whole header is not found again, at the same length, with any bytes
 *     after it (a request, a ClientHello), or a prefix of it is not "more";
 *   - a forwarded-for answer is not an IP address of the list.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_result(long n, size_t size, const sv_proxy_result_t *r)
{
    if (n > (long)size || !memchr(r->addr, '\0', sizeof(r->addr)))
        abort();
    if (n > 0 && !r->local && r->addr[0] == '\0')
        abort();
}

static void check_header(const uint8_t *data, size_t size, int versions)
{
    sv_proxy_result_t r, again;
    long n = sv_proxy_parse(data, size, versions, &r);
    check_result(n, size, &r);
    if (n <= 0)
        return;
    for (size_t cut = 0; cut < (size_t)n; cut++) {
        long m = sv_proxy_parse(data, cut, versions, &again);
        check_result(m, cut, &again);
        if (m != 0)
            abort(); /* a prefix of a valid header must ask for more */
    }
    uint8_t *more = malloc((size_t)n + 8);
    if (!more)
        return;
    memcpy(more, data, (size_t)n);
    memcpy(more + n, "GET / HT", 8);
    long m = sv_proxy_parse(more, (size_t)n + 8, versions, &again);
    if (m != n || again.local != r.local || strcmp(again.addr, r.addr) != 0)
        abort();
    free(more);
}

static void check_xff(const uint8_t *data, size_t size)
{
    static sv_cidr_t trusted[SV_TRUSTED_MAX];
    static size_t ntrusted;
    if (!ntrusted && sv_trusted_parse(SV_TRUSTED_PROXIES_DEFAULT, trusted, SV_TRUSTED_MAX, &ntrusted, NULL, 0) < 0)
        abort();
    char out[64];
    memset(out, 'x', sizeof(out));
    if (sv_xff_client((const char *)data, size, trusted, ntrusted, out, sizeof(out)) < 0)
        return;
    unsigned char bin[16];
    if (!memchr(out, '\0', sizeof(out)) ||
        (inet_pton(AF_INET, out, bin) != 1 && inet_pton(AF_INET6, out, bin) != 1))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_header(data, size, SV_PROXY_V1);
    check_header(data, size, SV_PROXY_V2);
    check_header(data, size, SV_PROXY_V1 | SV_PROXY_V2);
    check_xff(data, size);
    return 0;
}
