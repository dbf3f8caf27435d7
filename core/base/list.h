/* An intrusive doubly-linked circular list: a node is embedded in the object it links, a head is
 * a node that links to itself when empty. Unlinking is O(1) and safe on a node that is on no list
 * (after smx_list_init or a previous removal). */
#ifndef SSHMUX_LIST_H
#define SSHMUX_LIST_H

#include <stddef.h>

typedef struct smx_list {
    struct smx_list *next, *prev;
} smx_list;

#define smx_list_entry(node, type, member) ((type *)((char *)(node) - offsetof(type, member)))

static inline void smx_list_init(smx_list *n)
{
    n->next = n->prev = n;
}

static inline int smx_list_empty(const smx_list *head)
{
    return head->next == head;
}

/* Whether n is on a list (only meaningful for nodes kept initialised when off-list). */
static inline int smx_list_linked(const smx_list *n)
{
    return n->next != n && n->next != NULL;
}

static inline void smx_list_append(smx_list *head, smx_list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void smx_list_remove(smx_list *n)
{
    if (n->next && n->next != n) {
        n->prev->next = n->next;
        n->next->prev = n->prev;
    }
    n->next = n->prev = n;
}

/* Moves every node of `from` to the end of `to`; `from` is left empty. */
static inline void smx_list_splice(smx_list *to, smx_list *from)
{
    if (smx_list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    smx_list_init(from);
}

#endif
