#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define PROGRESS_PERIOD_MS 250
#define PROGRESS_DELAY_MS 1000   /* short runs never show it */

struct progress {
    uv_timer_t timer;
    smx_engine *e;
    smx_copy *copy;
    output *o;
    size_t hosts;
    uint64_t t0;
    int drawn;
};

int progress_wanted(const cli *c)
{
    return c->progress || (!c->quiet && isatty(STDERR_FILENO));
}

static void progress_hide(void *ud)
{
    progress *p = ud;
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        p->drawn = 0;
    }
}

/* 1536 -> "1.5 KiB" */
static void progress_bytes(char *out, size_t len, uint64_t n)
{
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

static void progress_copy_line(progress *p, char *line, size_t len, double secs)
{
    smx_copy_progress cp;
    smx_copy_get_progress(p->copy, &cp);
    char done[32], total[32], eta[32] = "?";
    progress_bytes(done, sizeof done, cp.bytes_done);
    progress_bytes(total, sizeof total, cp.bytes_total);
    double rate = secs > 0 ? (double)cp.bytes_done / secs : 0;
    if (rate > 0 && cp.bytes_total >= cp.bytes_done)
        snprintf(eta, sizeof eta, "%.0f s", (double)(cp.bytes_total - cp.bytes_done) / rate);
    snprintf(line, len, "%zu files, %s / %s, %.1f MB/s, ETA %s", cp.files_done, done, total,
             rate / 1e6, eta);
}

static void progress_on_timer(uv_timer_t *t)
{
    progress *p = t->data;
    double secs = (double)(uv_hrtime() - p->t0) / 1e9;
    smx_engine_progress ep;
    smx_engine_get_progress(p->e, &ep);
    size_t done, failed;
    output_counts(p->o, &done, &failed);
    char what[160] = "";
    if (p->copy)
        progress_copy_line(p, what, sizeof what, secs);
    else if (ep.oldest_host)
        snprintf(what, sizeof what, "slowest %s (%.1f s)", ep.oldest_host, ep.oldest_ms / 1000);
    fprintf(stderr, "\r\033[Ksshmux: %zu/%zu hosts done, %zu running, %zu failed%s%s", done,
            p->hosts, ep.running, failed, what[0] ? "; " : "", what);
    fflush(stderr);
    p->drawn = 1;
}

progress *progress_start(uv_loop_t *loop, smx_engine *e, smx_copy *copy, output *o,
                         size_t hosts)
{
    progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->e = e;
    p->copy = copy;
    p->o = o;
    p->hosts = hosts;
    p->t0 = uv_hrtime();
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, progress_on_timer, PROGRESS_DELAY_MS, PROGRESS_PERIOD_MS);
    uv_unref((uv_handle_t *)&p->timer);   /* never what keeps the run going */
    output_set_hide_hook(o, progress_hide, p);
    return p;
}

static void progress_on_closed(uv_handle_t *h)
{
    free(h->data);
}

void progress_stop(progress *p)
{
    if (!p)
        return;
    progress_hide(p);
    output_set_hide_hook(p->o, NULL, NULL);
    uv_close((uv_handle_t *)&p->timer, progress_on_closed);
}
