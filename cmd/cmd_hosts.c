/* sshmux hosts: the expanded target list, or each target's resolved settings (no connection). */
#include <stdlib.h>

#include "cli.h"

int cmd_hosts(int argc, char **argv)
{
    cli c;
    int rc = cli_parse(&c, argc, argv, "sshmux hosts");
    if (rc == 0 && c.args.n) {
        cli_error(&c, "unexpected argument \"%s\"", c.args.v[0]);
        rc = EXIT_USAGE;
    }
    if (rc == 0)
        rc = cli_resolve_hosts(&c, 1);
    for (size_t i = 0; rc == 0 && i < c.nhosts; i++) {
        const cli_host *h = &c.hosts[i];
        if (!c.json) {
            printf("%s\n", h->target);
            continue;
        }
        json_t *o = smx_hostcfg_to_json(h->hc);
        json_t *top = json_object();
        json_object_set_new(top, "target", json_string(h->target));
        json_object_set_new(top, "host", json_string(h->hc->host));
        json_object_update(top, o);
        json_decref(o);
        char *s = json_dumps(top, JSON_COMPACT);
        if (s) {
            puts(s);
            free(s);
        }
        json_decref(top);
    }
    cli_free(&c);
    return rc;
}
