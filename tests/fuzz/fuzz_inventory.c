/* Ansible inventories (core/config/groups_ansible.c): INI by hand, YAML through libyaml, host
 * ranges, children, variables, and each host resolved with its ansible_host / ansible_port /
 * ansible_user. The file has no extension, so both readers see inputs: one that reads as a
 * YAML mapping is a YAML inventory, anything else INI. See fuzz_groups_check.h. */
#include <stdint.h>

#include "fuzz_groups_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fzg_run(data, size, "inventory", smx_config_add_inventory);
    return 0;
}
