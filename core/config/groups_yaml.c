/* YAML for group files, through libyaml's document API (a parsed tree of nodes with their
 * lines). Both YAML formats sshmux reads (ClusterShell's group files, Ansible's YAML
 * inventories) are small trees of mappings, sequences and scalars. */
#include "groups_internal.h"

#include <string.h>

/* Nodes one walk may visit: aliases let a few lines describe a tree far larger than the file
 * (each alias of an aliased mapping doubles it), which a walk would follow. */
#define GRP_YAML_MAX_VISITS 4000000u

int grp_yaml_load(grp_yaml *y, const char *path, const char *text, size_t len, smx_err *err)
{
    yaml_parser_t parser;
    memset(y, 0, sizeof *y);
    y->path = path;
    if (!yaml_parser_initialize(&parser))
        return smx_seterr(err, SMX_ENOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int ok = yaml_parser_load(&parser, &y->doc);
    if (!ok) {
        const char *why = parser.problem ? parser.problem : "malformed YAML";
        unsigned long line = (unsigned long)parser.problem_mark.line + 1;
        int rc = parser.error == YAML_MEMORY_ERROR
            ? smx_seterr(err, SMX_ENOMEM, "out of memory")
            : smx_seterr(err, SMX_EINVAL, "%s:%lu: YAML: %s%s%s", path, line, why,
                         parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_parser_delete(&parser);
    y->loaded = 1;
    return 0;
}

void grp_yaml_free(grp_yaml *y)
{
    if (y->loaded)
        yaml_document_delete(&y->doc);
    y->loaded = 0;
}

yaml_node_t *grp_yaml_root(grp_yaml *y)
{
    return y->loaded ? yaml_document_get_root_node(&y->doc) : NULL;
}

yaml_node_t *grp_yaml_node(grp_yaml *y, int id)
{
    return yaml_document_get_node(&y->doc, id);
}

const char *grp_yaml_scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

unsigned long grp_yaml_line(const yaml_node_t *n)
{
    return n ? (unsigned long)n->start_mark.line + 1 : 0;
}

int grp_yaml_is_null(const yaml_node_t *n)
{
    if (!n)
        return 1;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)n->data.scalar.value;
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

int grp_yaml_visit(grp_yaml *y, const yaml_node_t *n, smx_err *err)
{
    if (++y->visits > GRP_YAML_MAX_VISITS)
        return smx_seterr(err, SMX_ERANGE, "%s:%lu: the document expands (through aliases) to "
                          "more than %u nodes", y->path, grp_yaml_line(n), GRP_YAML_MAX_VISITS);
    return 0;
}
