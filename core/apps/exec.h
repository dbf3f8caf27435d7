/* exec: one command on a session channel of a connection, its output split into lines and/or
 * captured into a result, its exit status or signal recorded. -u ends it as ssh users expect:
 * TERM, then KILL and the channel closed after the grace period.
 *
 * An exec is one channel: the connection may carry others at the same time (forwards while the
 * command runs, more commands in turn). */
#ifndef SSHMUX_EXEC_H
#define SSHMUX_EXEC_H

#include "conn.h"
#include "result.h"
#include "strvec.h"

typedef struct smx_exec smx_exec;

typedef struct smx_exec_events {
    /* A complete line of output (without its newline), as it arrives. NULL: no streaming. */
    void (*line)(void *ud, int is_stderr, const char *line, size_t len);
    /* The command is over: its status (or why not) is in the result. The exec frees itself
     * after this returns; the connection stays the caller's. */
    void (*done)(void *ud);
    /* Optional, with spec->sudo: sudo said the host's sudoers want a tty (requiretty); told
     * just before done. */
    void (*sudo_wants_tty)(void *ud);
    /* Optional: the output as it arrives, unsplit (a terminal, a send/expect matcher); when set,
     * `line` is not called. Runs inside libssh: queue input with smx_exec_write only. */
    void (*data)(void *ud, int is_stderr, const char *p, size_t n);
    /* Optional: the command (or shell) was started; input queued so far goes out now. */
    void (*started)(void *ud);
    void *ud;
} smx_exec_events;

/* Starts the command on c now (spec->command NULL: the user's login shell, a "shell" request;
 * with spec->pty on a terminal of spec->term, cols x rows) (the channel opens when c is ready). What to run is the public
 * header's smx_exec_opts (command, pty, env, -u, kill grace, capture). spec, ev and result must
 * outlive the exec (until done). NULL on ENOMEM. */
smx_exec *smx_exec_start(smx_conn *c, const smx_exec_opts *spec, smx_result *result,
                         const smx_exec_events *ev);
/* SIGINT/SIGTERM: a command that may be running gets TERM, then KILL after the grace (a second
 * call skips the grace); one not started yet ends at once. The result says `why`. */
void smx_exec_cancel(smx_exec *x, const char *why);

/* Input for the command's stdin (the terminal, on a PTY): copied and queued, sent from the
 * connection's next round as the peer's window allows. Callable from anywhere, libssh's
 * callbacks included. 0, SMX_ENOMEM, or SMX_ECLOSED once the command ended. */
int smx_exec_write(smx_exec *x, const void *p, size_t n);
/* Bytes queued and not yet taken by the channel (for a reader's back-pressure). */
size_t smx_exec_pending(const smx_exec *x);
/* EOF to stdin once the queued input is sent. */
void smx_exec_send_eof(smx_exec *x);
/* Output back-pressure: while paused, output waits in the SSH library and the server stops
 * sending once our window is full; resumed, what waited is delivered first. Whatever is left
 * when the command ends is delivered then. */
void smx_exec_pause_output(smx_exec *x, int paused);
/* The terminal's new size (window-change), sent once the command runs. */
void smx_exec_window_change(smx_exec *x, int cols, int rows);

#endif
