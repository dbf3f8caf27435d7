#include "xfer.h"

#include <stdio.h>

void smx_xfer_fail_reply(smx_xfer_outcome *out, const smx_sftp_reply *r, const char *path)
{
    out->failed = 1;
    smx_sftp_status_message(r, path, out->err, sizeof out->err);
}
