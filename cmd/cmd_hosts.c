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
        char *json = smx_hostcfg_json(h->hc, h->target);
        if (json) {
            puts(json);
            free(json);
        }
    }
    cli_free(&c);
    return rc;
}
