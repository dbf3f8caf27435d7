/* Private to the sshconfig_*.c files, which split the work as follows:
 *   sshconfig_keywords.c  the keyword table (name, argument type, field offset)
 *   sshconfig_parse.c     one line -> one validated smx_directive
 *   sshconfig_load.c      files, Include, -o lines, smx_config_load()
 *   sshconfig_resolve.c   per-host evaluation, defaults, smx_config_resolve()
 *   sshconfig_expand.c    ~, %-tokens, ${ENV}, ProxyJump syntax
 *   sshconfig_json.c      smx_hostcfg_to_json() */
#ifndef SSHMUX_SSHCONFIG_INTERNAL_H
#define SSHMUX_SSHCONFIG_INTERNAL_H

#include "sshconfig.h"

#include <stddef.h>

#define SMX_CFG_MAX_INCLUDE_DEPTH 16   /* same limit as ssh */
/* What one smx_config_load() reads at most, Includes counted each time they are followed: the
 * depth limit alone still lets a loop-free fan-out (each file including the next one 4 times)
 * read 4^16 files. ssh has no such cap; real configurations stay far below it. */
#define SMX_CFG_MAX_FILES 4096
#define SMX_CFG_MAX_LINES 1000000
#define SMX_CFG_MAX_BYTES (64 << 20)
#define SMX_CFG_MAX_IDENTITIES 100     /* ssh: "Too many identity files specified (max 100)" */
#define SMX_CFG_MAX_LINE 16384

/* How a keyword's arguments are parsed (at load) and applied (at resolve). */
enum smx_kwtype {
    SMX_KW_HOST,
    SMX_KW_MATCH,
    SMX_KW_INCLUDE,
    SMX_KW_STR,         /* one argument, first wins */
    SMX_KW_HOSTNAME,    /* one argument, may contain %h and %% */
    SMX_KW_AGENT,       /* IdentityAgent: one argument, "$NAME" must be a valid env name */
    SMX_KW_ALGOS,       /* one comma-separated algorithm list, first wins */
    SMX_KW_PROXYCMD,    /* ProxyCommand: rest of the line, verbatim */
    SMX_KW_JUMP,        /* ProxyJump: validated hop list, competes with ProxyCommand */
    SMX_KW_PORT,
    SMX_KW_BOOL,        /* yes/no */
    SMX_KW_TIME,        /* sshd_config(5) TIME FORMAT; "none" allowed (a no-op) */
    SMX_KW_INT,         /* non-negative decimal */
    SMX_KW_ENUM,        /* one of a fixed word list, stored canonicalised as a string */
    SMX_KW_IDFILE,      /* IdentityFile: accumulates */
    SMX_KW_FILES,       /* one or more file names, first wins as a whole */
    SMX_KW_IGNUNKNOWN,  /* IgnoreUnknown */
    SMX_KW_IGNORED      /* a valid OpenSSH keyword sshmux does not model */
};

/* An enum keyword's accepted words and what they are stored as. */
typedef struct smx_kwenum {
    const char *word;
    const char *value;           /* SMX_KW_ENUM: the canonical string stored */
    int ival;                    /* SMX_KW_BOOL: the flag stored */
} smx_kwenum;

typedef struct smx_keyword {
    const char *name;            /* canonical spelling, for messages */
    enum smx_kwtype type;
    size_t offset;               /* field in smx_resolving (0 if the type stores nothing there) */
    const smx_kwenum *words;     /* SMX_KW_ENUM / SMX_KW_BOOL variants only */
} smx_keyword;

enum smx_crit {
    SMX_CRIT_ALL, SMX_CRIT_CANONICAL, SMX_CRIT_FINAL, SMX_CRIT_EXEC,
    SMX_CRIT_HOST, SMX_CRIT_ORIGINALHOST, SMX_CRIT_USER, SMX_CRIT_LOCALUSER
};

typedef struct smx_criterion {
    enum smx_crit type;
    int negated;
    char *arg;                   /* NULL for all/canonical/final */
} smx_criterion;

typedef struct smx_cfgfile smx_cfgfile;
typedef struct smx__cfgindex smx__cfgindex;

/* One non-comment line. Values are validated and pre-parsed at load so that resolving a host
 * never re-parses text and syntax errors surface once, with file:line. */
typedef struct smx_directive {
    const smx_keyword *kw;       /* NULL for an unknown keyword: its spelling is args[0] */
    int line;
    int ival;                    /* parsed number / flag */
    char **args;                 /* owned, unquoted arguments */
    size_t nargs;
    smx_criterion *crit;         /* Match */
    size_t ncrit;
    smx_cfgfile **inc;           /* Include: the files the globs matched, in order */
    size_t ninc;
} smx_directive;

struct smx_cfgfile {
    char *display;               /* name for messages, with $HOME shown as "~" */
    smx_directive *d;
    size_t n, cap;
    smx__cfgindex *index;        /* literal Host blocks by name (sshconfig_index.c), or NULL */
};

struct smx_config {
    smx_cfgfile **files;         /* top level: the -F file, or user then system file */
    size_t nfiles;
    char *home;                  /* $HOME, else the passwd entry */
    char *localuser;             /* %u, Match localuser, default User */
    char *lhost_full, *lhost_short; /* %l, %L */
    unsigned long uid;           /* %i */
    smx_strvec warnings;
    struct smx_groups *groups;   /* @group sources (groups.h), NULL until one is added */
};

/* The per-host evaluation state. smx_hostcfg comes first and holds raw values while the
 * passes run (ints are -1 while unset); the extra fields only steer evaluation. Keyword table
 * offsets point into this struct. */
typedef struct smx_resolving {
    smx_hostcfg hc;
    char *ignoreunknown;
    char *canonicalize;          /* "no", "yes", "always" */
    int have_identity;           /* an IdentityFile/-i was given: no default list */
} smx_resolving;

/* Where a line came from, for "file:line: message" errors. line 0 = command line (-o). */
typedef struct smx__loc {
    const char *file;
    int line;
} smx__loc;

/* sshconfig_keywords.c */
const smx_keyword *smx__keyword_find(const char *name);

/* sshconfig_parse.c: one line -> one directive. Returns 0 with *blank set for comments and
 * empty lines. Include arguments are only tokenized; sshconfig_load.c expands them. */
int smx__parse_line(char *line, const smx__loc *loc, smx_directive *d, int *blank, smx_err *err);
void smx__directive_free(smx_directive *d);
/* "file:line: message" (or "file: message" for line 0) into e; returns code. */
int smx__cfgerr(smx_err *e, int code, const smx__loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* sshconfig_load.c */
int smx__parse_cmdline(const smx_strvec *options, smx_cfgfile **out, smx_err *err);
void smx__cfgfile_free(smx_cfgfile *f);

/* sshconfig_index.c: resolving a host used to walk every Host block of every file, so a
 * configuration with a block per host (a generated fleet config) cost O(N) per host and O(N^2)
 * for a fan-out. A "literal block" is a Host line whose patterns are all plain names (no '*',
 * '?' or '!') followed by known options only (no Include and no unknown keyword: those act
 * even inside a block that does not match). For a name that a literal block does not list,
 * walking it only sets the block state to inactive. Consecutive literal blocks form a run; of
 * a run only the blocks listing the name can apply anything, in file order, and after the run
 * the state is active only if its last block listed the name. Everything else (the global
 * section, wildcard and negated Host lines, Match, Include) is walked as before. */
typedef struct smx__litblock {
    const char *name;            /* one pattern of the Host line (owned by the directive) */
    size_t start, end;           /* the Host line's index, and the next block's (or f->n) */
} smx__litblock;

struct smx__cfgindex {
    size_t *run_end;             /* per directive: end of the run of literal blocks starting
                                  * at this Host line, 0 if none starts here */
    smx__litblock *v;            /* every (name, block), by name then start, no duplicates */
    size_t n;
};

/* Builds f->index if f has literal blocks; returns 0 or SMX_ENOMEM. */
int smx__cfgfile_index(smx_cfgfile *f);
void smx__cfgfile_unindex(smx_cfgfile *f);
/* The blocks that list name and start in [from, to), in file order: returns their count and
 * sets *first. */
size_t smx__cfgindex_find(const smx__cfgindex *ix, const char *name, size_t from, size_t to,
                          const smx__litblock **first);

/* sshconfig_expand.c */
typedef struct smx__tokens {
    const char *home, *localuser, *lhost_full, *lhost_short;
    const char *hostname, *orig, *alias, *user;   /* %h %n %k %r */
    int port;                                     /* %p */
    unsigned long uid;                            /* %i */
} smx__tokens;
/* Expand %x tokens listed in `allowed` (plus %%) and, if dollar, ${VAR}. `what` names the
 * keyword in error messages. */
int smx__expand(const char *in, const smx__tokens *t, const char *allowed, int dollar,
                const char *what, char **out, smx_err *err);
/* "~" and "~user" at the start of a path. Anything else is copied. */
int smx__tilde(const char *in, const char *home, char **out, smx_err *err);
/* ProxyJump as ssh -G prints it (last hop rebuilt from its parts). */
int smx__jump_normalize(const char *spec, char **out);

#endif
