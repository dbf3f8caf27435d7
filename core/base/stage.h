/* Where a host's run stopped: enum smx_stage and smx_stage_name(), in the public header. */
#ifndef SSHMUX_STAGE_H
#define SSHMUX_STAGE_H

#include "sshmux.h"

#endif
