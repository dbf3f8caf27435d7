/* The live status line on a terminal: hosts done / running / failed, and for copies files,
 * bytes, MB/s and ETA; for commands the host running longest. Redrawn in place on stderr,
 * hidden before any other output, gone when the run ends. */
#ifndef SSHMUX_PROGRESS_H
#define SSHMUX_PROGRESS_H

#include "output.h"

typedef struct progress progress;

/* Whether to show one: stderr is a terminal and not -q, or --progress. */
int progress_wanted(const cli *c);
/* copy may be NULL (exec). Hides itself through output's hook. NULL when out of memory. */
progress *progress_start(uv_loop_t *loop, smx_engine *e, smx_copy *copy, output *o,
                         size_t hosts);
/* Clears the line and stops. NULL is a no-op. */
void progress_stop(progress *p);

#endif
