#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

/* Secrets are asked on the controlling terminal, never on stdin (which may carry data) and never
 * echoed. Only called before the loop starts. */
char *cli_ask_secret(const char *prompt, void *ud)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct termios old, noecho;
    int have_termios = tcgetattr(fd, &old) == 0;
    if (have_termios) {
        noecho = old;
        noecho.c_lflag &= ~(tcflag_t)ECHO;
        noecho.c_lflag |= ECHONL;
        tcsetattr(fd, TCSAFLUSH, &noecho);
    }
    if (write(fd, prompt, strlen(prompt)) < 0) {
        /* nothing to do: the read below still works or fails on its own */
    }
    char buf[1024];
    size_t len = 0;
    while (len < sizeof buf - 1) {
        char ch;
        ssize_t n = read(fd, &ch, 1);
        if (n <= 0 || ch == '\n' || ch == '\r')
            break;
        buf[len++] = ch;
    }
    buf[len] = '\0';
    if (have_termios)
        tcsetattr(fd, TCSAFLUSH, &old);
    close(fd);
    char *out = strdup(buf);
    explicit_bzero(buf, sizeof buf);
    return out;
}
