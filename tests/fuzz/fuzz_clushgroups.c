/* ClusterShell YAML group files (core/config/groups_clush.c, through libyaml) and the
 * expansion of their groups: nesting, cycles, the , ! & ^ operators (groups.c). See
 * fuzz_groups_check.h for what is checked. */
#include <stdint.h>

#include "fuzz_groups_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fzg_run(data, size, "groups.yaml", smx_config_add_groups_file);
    return 0;
}
