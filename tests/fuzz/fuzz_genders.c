/* genders files and nodeattr-style queries (core/config/groups_genders.c). See
 * fuzz_groups_check.h. */
#include <stdint.h>

#include "fuzz_groups_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fzg_run(data, size, "genders", smx_config_add_genders);
    return 0;
}
