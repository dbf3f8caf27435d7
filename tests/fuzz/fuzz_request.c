/* sshmux request's line parser (cmd/request_parse.c) on arbitrary lines. Every "$S" in the input
 * becomes a secret (a password, a key, wherever the input puts it); whatever the line, an error
 * message must name the line and must not contain the secret, and a line that parses must give a
 * request the run can use (a host, something to run, both paths of a transfer, the grouping
 * keys). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "request_parse.h"

#define SECRET "Qv7-hunter2-SECRET-x9"
#define LINE 7

/* The input with each "$S" replaced by SECRET. */
static char *with_secrets(const uint8_t *data, size_t size, size_t *len)
{
    size_t n = 0;
    for (size_t i = 0; i + 1 < size; i++)
        n += data[i] == '$' && data[i + 1] == 'S';
    char *out = malloc(size + n * strlen(SECRET) + 1);
    if (!out)
        abort();
    size_t o = 0;
    for (size_t i = 0; i < size; i++) {
        if (i + 1 < size && data[i] == '$' && data[i + 1] == 'S') {
            memcpy(out + o, SECRET, strlen(SECRET));
            o += strlen(SECRET);
            i++;
        } else {
            out[o++] = (char)data[i];
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len;
    char *text = with_secrets(data, size, &len);
    req_spec r;
    char msg[SMX_MSG_MAX];
    memset(msg, 0, sizeof msg);
    if (req_parse(text, len, LINE, &r, msg, sizeof msg) < 0) {
        if (strncmp(msg, "line 7: ", 8) != 0)
            fz_fail("error message does not name the line: %s", msg);
        /* any 8 bytes of the secret would be a leak */
        const char *secret = SECRET;
        for (size_t i = 0; i + 8 <= strlen(secret); i++)
            if (memmem(msg, strlen(msg), secret + i, 8))
                fz_fail("error message quotes the secret: %s", msg);
        if (r.host || r.password || r.commands.n)
            fz_fail("a failed parse left fields behind");
    } else {
        if (!r.host || !r.host[0] || r.commands.n == 0 || !r.conn_key || !r.engine_key)
            fz_fail("a parsed request lacks its host, commands or keys");
        if ((r.op == REQ_OP_UPLOAD || r.op == REQ_OP_DOWNLOAD) &&
            (!r.local_path || !r.remote_path))
            fz_fail("a transfer without both paths");
        if (r.port < 0 || r.port > 65535 || r.line != LINE)
            fz_fail("port or line out of range");
        req_spec_free(&r);
    }
    smx_wipe_free(text, len + 1);
    return 0;
}
