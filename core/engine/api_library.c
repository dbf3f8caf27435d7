/* The SSH library's global state, behind the public header: libssh is linked in statically
 * (libsshmux.a carries it), where it must be initialised and finalised explicitly. */
#include <libssh/libssh.h>

#include "sshmux.h"

int smx_library_init(void)
{
    return ssh_init() == SSH_OK ? 0 : SMX_ESSH;
}

void smx_library_shutdown(void)
{
    ssh_finalize();
}

const char *smx_libssh_version(void)
{
    return ssh_version(0);
}
