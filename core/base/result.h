/* The outcome of one host's run (smx_result, in the public header): filled by the jobs, printed
 * by the CLI, serialised for --json. */
#ifndef SSHMUX_RESULT_H
#define SSHMUX_RESULT_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"
#include "sshmux.h"

/* Appends up to `limit` total bytes; returns 1 if something had to be dropped. */
int smx_buf_append(smx_buf *b, const void *p, size_t n, size_t limit);
void smx_buf_free(smx_buf *b);

void smx_result_init(smx_result *r);
void smx_result_free(smx_result *r);
void smx_result_set_error(smx_result *r, enum smx_stage stage, int code, const char *msg);
/* The recorded failure turned out not to be one (a command's status arrived before its
 * connection went). */
void smx_result_clear_error(smx_result *r);
json_t *smx_result_to_json(const smx_result *r);

#endif
