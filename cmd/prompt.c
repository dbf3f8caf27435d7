#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

/* One line from the terminal, as long as it is (a fixed buffer would cut a long passphrase
 * short without a word). Grown by copying, never realloc, so that no unwiped copy is freed. */
static char *cli_read_tty_line(int fd)
{
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        char ch;
        ssize_t n = read(fd, &ch, 1);
        if (n <= 0 || ch == '\n' || ch == '\r')
            break;
        if (len + 1 == cap) {
            char *bigger = malloc(cap * 2);
            if (bigger)
                memcpy(bigger, buf, len);
            smx_wipe_free(buf, cap);
            buf = bigger;
            cap *= 2;
            if (!buf)
                break;
        }
        buf[len++] = ch;
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

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
    char *out = cli_read_tty_line(fd);
    if (have_termios)
        tcsetattr(fd, TCSAFLUSH, &old);
    close(fd);
    return out;
}
