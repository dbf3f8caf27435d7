/* Where a host's run stopped: the "stage" of an error in results and JSON. */
#ifndef SSHMUX_STAGE_H
#define SSHMUX_STAGE_H

enum smx_stage {
    SMX_STAGE_NONE = 0,
    SMX_STAGE_RESOLVE,
    SMX_STAGE_CONNECT,    /* TCP connect, banner and key exchange */
    SMX_STAGE_HOSTKEY,
    SMX_STAGE_AUTH,
    SMX_STAGE_EXEC,
    SMX_STAGE_TIMEOUT     /* the command ran past -u */
};

const char *smx_stage_name(enum smx_stage stage);

#endif
