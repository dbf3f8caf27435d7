/* Host key policy for a session (StrictHostKeyChecking) against known_hosts files read once per
 * run: the caches and the run's counters live in one smx_hostkeys per smx_ctx. */
#ifndef SSHMUX_HOSTKEY_H
#define SSHMUX_HOSTKEY_H

typedef struct smx_hostkeys smx_hostkeys;
struct smx_session;

smx_hostkeys *smx_hostkeys_new(void);
void smx_hostkeys_free(smx_hostkeys *hk);
/* Keys accepted unverified (StrictHostKeyChecking=no) and keys recorded (accept-new) so far. */
unsigned smx_hostkeys_unverified(const smx_hostkeys *hk);
unsigned smx_hostkeys_added(const smx_hostkeys *hk);

/* Verifies the server key of an established session; 0 or a negative code with the message in
 * the session's result. */
int smx_hostkey_verify(struct smx_session *s);

#endif
