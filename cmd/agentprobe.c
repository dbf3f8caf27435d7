/* Before the loop: does the ssh-agent answer, and with how many keys? libssh's agent client
 * waits on the agent socket without a timeout, inside the loop; an agent that does not answer
 * here is not used at all, and one with no keys is skipped (a round trip saved per host). */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define AGENTC_REQUEST_IDENTITIES 11
#define AGENT_IDENTITIES_ANSWER 12

static int agent_io(int fd, void *buf, size_t len, int want_write, int timeout_ms)
{
    char *p = buf;
    while (len > 0) {
        struct pollfd pfd = {.fd = fd, .events = want_write ? POLLOUT : POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0)
            return -1;
        ssize_t n = want_write ? write(fd, p, len) : read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Number of keys the agent at `path` holds, or -1 if it does not answer within timeout_ms. */
int cli_agent_probe(const char *path, int timeout_ms)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path)
        return -1;
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = -1;
    unsigned char req[5] = {0, 0, 0, 1, AGENTC_REQUEST_IDENTITIES}, hdr[9];
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0 &&
        agent_io(fd, req, sizeof req, 1, timeout_ms) == 0 &&
        agent_io(fd, hdr, sizeof hdr, 0, timeout_ms) == 0 && hdr[4] == AGENT_IDENTITIES_ANSWER)
        rc = (int)((uint32_t)hdr[5] << 24 | (uint32_t)hdr[6] << 16 | (uint32_t)hdr[7] << 8 | hdr[8]);
    close(fd);
    return rc;
}
