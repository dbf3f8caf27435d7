/* smx-wire: a user-space network wire between two network namespaces, for tests and benches on
 * kernels without the netem qdisc.
 *
 *   smx-wire [-d MS] [-l LOSS] [-r BYTES_PER_S] [-q FRAMES] [-s SEED] NS_A TAP_A NS_B TAP_B
 *
 * Creates TAP device TAP_A inside network namespace NS_A and TAP_B inside NS_B (a name under
 * /run/netns, as `ip netns add` makes, or a path), then copies every Ethernet frame read from
 * one device to the other after holding it MS milliseconds (-d, default 0), dropping a fraction
 * LOSS of them (-l, 0..1, default 0; per frame, per direction, from a PRNG seeded by -s so a run
 * can be repeated), at most BYTES_PER_S per direction when -r is given (frames then also wait
 * for the previous ones to be "sent"). Each direction holds at most FRAMES frames (-q, default
 * 4096); beyond that frames are dropped at arrival, as a router's full queue does.
 * The caller configures addresses and brings the devices up (they exist once "ready" is
 * printed). The devices vanish when this program exits.
 *
 * stdout: "ready" once both devices exist; "stats a2b_in=N a2b_lost=N a2b_overflow=N
 * a2b_out=N a2b_wfail=N b2a_in=N ..." on SIGUSR1 and at exit (in = frames read, lost = dropped
 * by LOSS, overflow = dropped by the queue bound, out = frames delivered, wfail = writes the
 * kernel refused). Runs until SIGTERM/SIGINT/SIGHUP or until its parent dies.
 * Exit status: 0 after a signal, 1 setup error, 2 usage error. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define FRAME_MAX 65600   /* above any TAP MTU (64 KiB) plus the Ethernet header */
#define READ_BURST 64     /* frames read from one side before looking at the other */

struct frame {
    uint64_t due_ns;
    size_t len;
    unsigned char data[];
};

struct dir {
    const char *name;
    int in_fd, out_fd;
    struct frame **ring;   /* FIFO: due times never decrease, so the head is always next */
    size_t head, count;
    uint64_t busy_until_ns;   /* rate limit: when the previous frame has been "sent" */
    uint64_t in, lost, overflow, out, wfail;
};

static struct {
    uint64_t delay_ns, rate, seed;
    double loss;
    size_t qmax;
} cfg = {.qmax = 4096, .seed = 1};

static volatile sig_atomic_t stop_sig, dump_stats;

static void on_signal(int sig) {
    if (sig == SIGUSR1)
        dump_stats = 1;
    else
        stop_sig = sig;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: tiny, seedable, and good enough to decide which frames to drop. */
static uint64_t rng_next(void) {
    uint64_t z = (cfg.seed += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int tap_open(const char *ns, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, strchr(ns, '/') ? "%s" : "/run/netns/%s", ns);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
        fprintf(stderr, "smx-wire: network namespace %s: %s\n", path, strerror(errno));
        return -1;
    }
    close(nsfd);
    /* the device belongs to the namespace this fd is opened in, whatever we setns to later */
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0) {
        fprintf(stderr, "smx-wire: TAP %s in %s: %s\n", name, path, strerror(errno));
        return -1;
    }
    return fd;
}

static void enqueue(struct dir *d, const unsigned char *buf, size_t len, uint64_t now) {
    d->in++;
    if (cfg.loss > 0 && (double)(rng_next() >> 11) * 0x1p-53 < cfg.loss) {
        d->lost++;
        return;
    }
    struct frame *f = d->count < cfg.qmax ? malloc(sizeof *f + len) : NULL;
    if (!f) {
        d->overflow++;
        return;
    }
    uint64_t sent = now;
    if (cfg.rate) {
        sent = (d->busy_until_ns > now ? d->busy_until_ns : now) + len * 1000000000u / cfg.rate;
        d->busy_until_ns = sent;
    }
    f->due_ns = sent + cfg.delay_ns;
    f->len = len;
    memcpy(f->data, buf, len);
    d->ring[(d->head + d->count++) % cfg.qmax] = f;
}

static void read_side(struct dir *d, unsigned char *buf) {
    for (int i = 0; i < READ_BURST; i++) {
        ssize_t n = read(d->in_fd, buf, FRAME_MAX);
        if (n <= 0)
            return;   /* EAGAIN: drained */
        enqueue(d, buf, (size_t)n, now_ns());
    }
}

/* Writes every frame that is due; returns ns until the next one is (UINT64_MAX: none). */
static uint64_t deliver(struct dir *d, uint64_t now) {
    while (d->count) {
        struct frame *f = d->ring[d->head];
        if (f->due_ns > now)
            return f->due_ns - now;
        if (write(d->out_fd, f->data, f->len) == (ssize_t)f->len)
            d->out++;
        else
            d->wfail++;
        free(f);
        d->head = (d->head + 1) % cfg.qmax;
        d->count--;
    }
    return UINT64_MAX;
}

static void free_queue(struct dir *d) {
    while (d->count) {
        free(d->ring[d->head]);
        d->head = (d->head + 1) % cfg.qmax;
        d->count--;
    }
    free(d->ring);
}

static void print_stats(const struct dir *dirs) {
    printf("stats");
    for (int i = 0; i < 2; i++) {
        const struct dir *d = &dirs[i];
        printf(" %s_in=%" PRIu64 " %s_lost=%" PRIu64 " %s_overflow=%" PRIu64 " %s_out=%" PRIu64
               " %s_wfail=%" PRIu64, d->name, d->in, d->name, d->lost, d->name, d->overflow,
               d->name, d->out, d->name, d->wfail);
    }
    printf("\n");
    fflush(stdout);
}

static void run(struct dir *dirs, const sigset_t *waitmask) {
    static unsigned char buf[FRAME_MAX];
    struct pollfd pfd[2] = {{.fd = dirs[0].in_fd, .events = POLLIN},
                            {.fd = dirs[1].in_fd, .events = POLLIN}};
    while (!stop_sig) {
        if (dump_stats) {
            dump_stats = 0;
            print_stats(dirs);
        }
        uint64_t now = now_ns(), a = deliver(&dirs[0], now), b = deliver(&dirs[1], now);
        uint64_t wait = a < b ? a : b;
        struct timespec ts = {.tv_sec = (time_t)(wait / 1000000000u),
                              .tv_nsec = (long)(wait % 1000000000u)};
        if (ppoll(pfd, 2, wait == UINT64_MAX ? NULL : &ts, waitmask) < 0)
            continue;   /* EINTR: a signal; the flags say which */
        for (int i = 0; i < 2; i++)
            if (pfd[i].revents & POLLIN)
                read_side(&dirs[i], buf);
    }
}

static int usage(void) {
    fprintf(stderr, "usage: smx-wire [-d MS] [-l LOSS(0..1)] [-r BYTES_PER_S] [-q FRAMES] "
                    "[-s SEED] NS_A TAP_A NS_B TAP_B\n");
    return 2;
}

static int parse_args(int argc, char **argv) {
    int c;
    char *end;
    while ((c = getopt(argc, argv, "d:l:r:q:s:")) != -1) {
        errno = 0;
        double v = optarg ? strtod(optarg, &end) : 0;
        if (c == '?' || errno || end == optarg || *end || v < 0)
            return usage();
        switch (c) {
        case 'd': cfg.delay_ns = (uint64_t)(v * 1e6); break;
        case 'l': cfg.loss = v; break;
        case 'r': cfg.rate = (uint64_t)v; break;
        case 'q': cfg.qmax = (size_t)v; break;
        case 's': cfg.seed = (uint64_t)v; break;
        }
    }
    if (argc - optind != 4 || cfg.loss > 1 || cfg.qmax < 1)
        return usage();
    return 0;
}

int main(int argc, char **argv) {
    if (parse_args(argc, argv))
        return 2;
    pid_t parent = getppid();
    sigset_t block, waitmask;
    sigemptyset(&block);
    int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        sigaddset(&block, sigs[i]);
        signal(sigs[i], on_signal);
    }
    /* blocked except inside ppoll: a signal can never slip in between a check and the wait */
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        return 0;   /* the parent died before the line above */
    int fa = tap_open(argv[optind], argv[optind + 1]);
    int fb = fa < 0 ? -1 : tap_open(argv[optind + 2], argv[optind + 3]);
    struct frame **ra = calloc(cfg.qmax, sizeof *ra), **rb = calloc(cfg.qmax, sizeof *rb);
    if (fb < 0)
        return 1;
    if (!ra || !rb) {
        fprintf(stderr, "smx-wire: no memory for %zu queued frames per direction\n", cfg.qmax);
        return 1;
    }
    struct dir dirs[2] = {{.name = "a2b", .in_fd = fa, .out_fd = fb, .ring = ra},
                          {.name = "b2a", .in_fd = fb, .out_fd = fa, .ring = rb}};
    printf("ready\n");
    fflush(stdout);
    run(dirs, &waitmask);
    print_stats(dirs);
    free_queue(&dirs[0]);
    free_queue(&dirs[1]);
    return 0;
}
