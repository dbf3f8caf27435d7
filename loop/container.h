#ifndef SSHMUX_CONTAINER_H
#define SSHMUX_CONTAINER_H

#include <stddef.h>

/* The struct that embeds `ptr` as its `member`: libuv callbacks hand back the handle only. */
#define SMX_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
