/* Helpers shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c).
 *
 * A harness that reads files gets a private scratch directory, created on first use and removed
 * at exit, with $HOME pointing at <scratch>/home so that "~" and ~/.ssh stay inside it. Every
 * glob() the library makes (ssh_config Include) is confined to that directory: fuzz input
 * saying `Include /dev/<glob>` or `Include ~/../../etc/<glob>` matches nothing rather than
 * reading devices or walking the whole filesystem (fuzz_common.c wraps glob with the linker's
 * --wrap). */
#ifndef SSHMUX_FUZZ_COMMON_H
#define SSHMUX_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* A NUL-terminated copy of the input (an embedded NUL ends the string early, as it would for
 * any C caller). Never NULL: aborts when out of memory, which libFuzzer reports. */
char *fz_cstring(const uint8_t *data, size_t size);

/* The scratch directory (absolute, no trailing '/'), made on first call; $HOME is set to its
 * "home" subdirectory, which holds an empty ".ssh". */
const char *fz_scratch(void);

/* "<scratch>/<rel>" into buf; aborts if it does not fit. */
void fz_path(char *buf, size_t cap, const char *rel);

/* Replaces the file at path with data[0..size). Aborts on failure (a broken harness, not a
 * finding in the code under test). */
void fz_write_file(const char *path, const void *data, size_t size);

/* Splits data at lines consisting of exactly `sep` (e.g. "--"), so one input can describe
 * several files. Fills at most max parts (the last takes the rest); returns how many. */
struct fz_part {
    const uint8_t *data;
    size_t size;
};
size_t fz_split(const uint8_t *data, size_t size, const char *sep, struct fz_part *parts,
                size_t max);

/* Aborts with a message: a property the code under test documents does not hold. */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
