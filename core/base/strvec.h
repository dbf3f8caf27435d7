/* A growable vector of owned C strings: smx_strvec and its functions are in the public header
 * (the library takes string lists in that form). */
#ifndef SSHMUX_STRVEC_H
#define SSHMUX_STRVEC_H

#include <stddef.h>

#include "sshmux.h"

#endif
