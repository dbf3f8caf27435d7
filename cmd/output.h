/* How exec results reach the operator: streamed `host: line` (default), gathered and grouped by
 * identical output (-b, as clush -b), or one JSON object per host (--json). */
#ifndef SSHMUX_OUTPUT_H
#define SSHMUX_OUTPUT_H

#include <uv.h>

#include "cli.h"

typedef struct output output;

output *output_new(const cli *c, uv_loop_t *loop);
const smx_exec_callbacks *output_callbacks(output *o);
/* Prints gathered groups (if -b) and the summary (unless -q); returns the exit status. */
int output_finish(output *o, double wall_ms, smx_engine *e);
void output_free(output *o);

/* Called before anything is printed (a live status line hides itself). */
typedef void (*output_hook)(void *ud);
void output_set_hide_hook(output *o, output_hook hide, void *ud);
/* Hosts finished so far, and of them those not ok. */
void output_counts(const output *o, size_t *done, size_t *failed);

/* For engine warnings. */
void output_warn(void *ud, const char *host, const char *msg);

#endif
