#!/usr/bin/env python3
"""The manual page cmd/sshmux.1 against the program: every option token and command name that
`sshmux --help` prints, every long option in cmd/cli.c's getopt_long table, every short option
in its option strings (one per kind of command) and every command name main.c dispatches on has
an entry of its own (a .TP tag, hyphens written \\- so that they render as ASCII minus signs);
every option the page gives an entry exists; the exit statuses that --help, cli.h and the
commands' literal `rc = N;` name are listed; the required sections are there, in order; and
groff renders the page without a single warning.

The lists come from the binary's output and the sources, never from a list kept here: an option
added without documentation fails this test. No sshd is needed; without $SSHMUX the checks of
the --help text are skipped (the source checks still run)."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import fixture  # noqa: E402
from fixture import check, skip, Failure  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PAGE = os.path.join(ROOT, "cmd", "sshmux.1")
CLI_C = os.path.join(ROOT, "cmd", "cli.c")
CLI_H = os.path.join(ROOT, "cmd", "cli.h")
MAIN_C = os.path.join(ROOT, "cmd", "main.c")

SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS", "HOST LISTS", "OUTPUT",
            "EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"]

# An option token: -x or --long-name, not the tail of a word (forward-tcp, non-zero) and not
# "--" alone. The hyphens must be ASCII: an unescaped roff hyphen is read as U+2010 below.
OPTION = re.compile(r"(?<![\w\-\u2010])(--?[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)")
HYPHEN = "\u2010"
NAMED = {"aq": "'", "dq": '"', "ti": "~", "ha": "^", "ga": "`", "mu": "\u00d7", "em": "\u2014",
         "en": "\u2013", "bu": "\u2022", "rs": "\\", "lq": '"', "rq": '"'}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ------------------------------------------------------------------ roff -> text

def roff_args(s):
    """A macro line's arguments, with roff's double-quote rules."""
    out, i, n = [], 0, len(s)
    while i < n:
        while i < n and s[i] in " \t":
            i += 1
        if i >= n:
            break
        if s[i] == '"':
            j, arg = i + 1, ""
            while j < n:
                if s[j] == '"' and j + 1 < n and s[j + 1] == '"':
                    arg, j = arg + '"', j + 2
                elif s[j] == '"':
                    j += 1
                    break
                else:
                    arg, j = arg + s[j], j + 1
            out.append(arg)
            i = j
        else:
            j = i
            while j < n and s[j] not in " \t":
                j += 1
            out.append(s[i:j])
            i = j
    return out


def unescape(s):
    """Roff text as a reader sees it: font changes and \\% \\& dropped, \\- a minus sign (ASCII
    '-'), a bare '-' a typographic hyphen (U+2010, what groff prints for it in UTF-8), named
    characters replaced."""
    def repl(m):
        tok = m.group(0)
        if tok == "-":
            return HYPHEN
        body = tok[1:]
        if body == "-":
            return "-"
        if body[0] == "f" or body in ("%", "&", ":", "c"):
            return ""
        if body[0] == "(":
            return NAMED.get(body[1:], "")
        if body[0] == "[":
            return NAMED.get(body[1:-1], "")
        if body == "e":
            return "\\"
        if body == " ":
            return " "
        return body
    return re.sub(r"\\(?:f(?:\(..|\[[^\]]*\]|.)|\(..|\[[^\]]*\]|.)|-", repl, s)


def line_text(line):
    """The text a source line contributes: macro arguments joined as the macro sets them."""
    if not line.startswith((".", "'")):
        return unescape(line)
    words = line[1:].split(None, 1)
    if not words:
        return ""
    name, rest = words[0], (words[1] if len(words) > 1 else "")
    args = roff_args(rest)
    if name in ("B", "I", "SM", "SB"):
        return unescape(" ".join(args))
    if name in ("BR", "RB", "IR", "RI", "BI", "IB"):
        return unescape("".join(args))
    return ""   # any other request or macro sets no text of its own


def page_source():
    if not os.path.exists(PAGE):
        raise Failure(f"{PAGE} does not exist")
    return [l for l in read(PAGE).split("\n") if not l.startswith(('.\\"', "'\\\""))]


def page_tags():
    """{section name: [tag text of each .TP in it]}."""
    tags, section, lines = {}, None, page_source()
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            section = " ".join(roff_args(line[3:]))
            tags.setdefault(section, [])
        elif line.startswith(".TP") and i + 1 < len(lines):
            tags.setdefault(section, []).append(line_text(lines[i + 1]).strip())
    return tags


def tag_options(tags, sections=None):
    """Option tokens in the .TP tags of the given sections (all if None)."""
    found = set()
    for name, items in tags.items():
        if sections is None or name in sections:
            for t in items:
                found.update(OPTION.findall(t))
    return found


def command_tags(tags):
    """The names each COMMANDS entry starts with: `version, --version` -> both."""
    names = set()
    for t in tags.get("COMMANDS", []):
        m = re.match(r"[^\s,]+(?:, [^\s,]+)*", t)
        if m:
            names.update(m.group(0).split(", "))
    return names


def missing_message(what, missing, where):
    return (f"{len(missing)} {what} without an entry of their own (a .TP tag in {where}, hyphens "
            f"written \\-) in cmd/sshmux.1: {' '.join(sorted(missing))}")


# ------------------------------------------------------------------ what the program has

_help = {}


def help_text():
    """The usage text of the binary under test ($SSHMUX): the first of --help, help, -h that
    exits 0 with a usage text."""
    if "text" not in _help:
        tried = []
        for arg in ("--help", "help", "-h"):
            r = fixture.run_sshmux([arg], timeout=30)
            text = r.stdout + r.stderr
            if r.returncode == 0 and "usage" in text.lower():
                _help["text"] = text
                break
            tried.append(f"sshmux {arg}: exit {r.returncode}\n{text}")
        else:
            raise Failure("no usage text from the binary:\n" + "\n".join(tried))
    return _help["text"]


def help_options():
    opts = set(OPTION.findall(help_text()))
    check(len(opts) >= 10, f"only {len(opts)} options found in the usage text: {sorted(opts)}")
    return opts


def help_commands():
    """Command names from the usage text's `commands:` block (first word of each line)."""
    m = re.search(r"^commands:\s*\n((?:[ \t]+\S.*\n?)+)", help_text(), re.M)
    if not m:
        raise Failure(f"no 'commands:' block in the usage text:\n{help_text()}")
    names = {re.match(r"\s*(\S+)", l).group(1) for l in m.group(1).splitlines() if l.strip()}
    check(len(names) >= 5, f"only {len(names)} commands in the usage text: {sorted(names)}")
    return names


def cli_table():
    """(long options of cli.c's getopt_long table, short options of its option string)."""
    src = read(CLI_C)
    call = re.search(r"getopt_long\s*\(\s*\w+\s*,\s*\w+\s*,\s*(\"[^\"]*\"|\w+)\s*,\s*(\w+)", src)
    if not call:
        raise Failure(f"no getopt_long(argc, argv, optstring, table, ...) call in {CLI_C}")
    arg, table = call.groups()
    optstring = arg[1:-1] if arg.startswith('"') else "".join(optstring_literals(src, arg))
    decl = re.search(r"struct\s+option\s+" + re.escape(table) + r"\s*\[\s*\]\s*=\s*\{(.*?)\};",
                     src, re.S)
    if not decl:
        raise Failure(f"the option table {table!r} passed to getopt_long is not declared in "
                      f"{CLI_C}")
    longs = {"--" + n for n in re.findall(r"\{\s*\"([^\"]+)\"\s*,", decl.group(1))}
    shorts = {"-" + ch for ch in re.sub(r"[^A-Za-z0-9]", "", optstring)}
    check(len(longs) >= 10, f"only {len(longs)} long options found in {table}: {sorted(longs)}")
    check(len(shorts) >= 5, f"only {len(shorts)} short options in {optstring!r}")
    return longs, shorts


def optstring_literals(src, var):
    """The option strings a variable passed to getopt_long can hold: the literal it is set to,
    or every literal the function it is set from returns (one per kind of command)."""
    m = re.search(r"\b" + re.escape(var) + r"\s*=\s*(?:\"([^\"]*)\"|(\w+)\s*\()", src)
    if not m:
        raise Failure(f"getopt_long's option string {var!r} is not set in {CLI_C}")
    if m.group(1) is not None:
        return [m.group(1)]
    body = re.search(r"^[\w \t*]*\b" + re.escape(m.group(2)) + r"\s*\([^)]*\)\s*\{(.*?)^\}",
                     src, re.S | re.M)
    found = re.findall(r"return\s+\"([^\"]*)\"", body.group(1)) if body else []
    if not found:
        raise Failure(f"no option strings returned by {m.group(2)}() in {CLI_C}")
    return found


def main_commands():
    """Every name main() compares argv[1] with: commands and their aliases (--version, -h)."""
    names = set(re.findall(r"strcmp\s*\(\s*cmd\s*,\s*\"([^\"]+)\"\s*\)", read(MAIN_C)))
    check(len(names) >= 5, f"only {len(names)} command names found in {MAIN_C}: {sorted(names)}")
    return names


# ------------------------------------------------------------------ tests

def test_usage_options_documented():
    opts = help_options()
    documented = tag_options(page_tags())
    missing = opts - documented
    check(not missing, missing_message("options of `sshmux --help`", missing,
                                       "OPTIONS or COMMANDS"))


def test_cli_options_documented():
    longs, shorts = cli_table()
    documented = tag_options(page_tags())
    missing = (longs | shorts) - documented
    check(not missing, missing_message("options of cmd/cli.c's getopt_long table and option "
                                       "string", missing, "OPTIONS or COMMANDS"))


def test_commands_documented():
    tags = page_tags()
    documented = command_tags(tags)
    names = main_commands()
    try:
        names |= help_commands()
    except fixture.Skip:
        pass   # no binary: main.c's names are still checked
    missing = names - documented
    check(not missing, missing_message("command names (main.c, --help)", missing, "COMMANDS"))
    synopsis = []
    lines, inside = page_source(), False
    for line in lines:
        if line.startswith(".SH"):
            inside = " ".join(roff_args(line[3:])) == "SYNOPSIS"
        elif inside:
            synopsis.append(line_text(line))
    synopsis = " ".join(synopsis)
    plain = {n for n in names if not n.startswith("-")}
    absent = {n for n in plain
              if not re.search(r"(?<![\w\-])sshmux " + re.escape(n) + r"(?![\w\-])", synopsis)}
    check(not absent, f"commands missing from SYNOPSIS (as `sshmux NAME`): {sorted(absent)}")


def test_page_options_exist():
    """Nothing documented that the program does not accept (an option removed or renamed)."""
    longs, shorts = cli_table()
    known = longs | shorts | main_commands()
    try:
        known |= help_options()
    except fixture.Skip:
        pass
    tags = page_tags()
    extra = tag_options(tags, {"OPTIONS", "COMMANDS"}) - known
    check(not extra, f"cmd/sshmux.1 has entries for options the program does not have: "
                     f"{sorted(extra)}")


def test_exit_statuses_documented():
    statuses = set(re.findall(r"#define\s+EXIT_\w+\s+(\d+)", read(CLI_H)))
    cmd_dir = os.path.dirname(CLI_C)   # literal statuses the commands return (130: interrupted)
    for name in sorted(os.listdir(cmd_dir)):
        if name.endswith(".c"):
            statuses |= set(re.findall(r"\brc\s*=\s*(\d+)\s*;", read(os.path.join(cmd_dir, name))))
    try:
        m = re.search(r"^exit status:(.*?)(?:\n\s*\n|\Z)", help_text(), re.S | re.M)
        check(m is not None, f"no 'exit status:' paragraph in the usage text:\n{help_text()}")
        statuses |= set(re.findall(r"(?<![\w+])(\d+(?:\+N)?)(?![\w+])", m.group(1)))
    except fixture.Skip:
        pass   # no binary: the statuses in the sources are still checked
    check(len(statuses) >= 3, f"only {sorted(statuses)} exit statuses found")
    listed = set()
    for t in page_tags().get("EXIT STATUS", []):
        listed.update(re.findall(r"\d+(?:\+N)?", t))
    missing = statuses - listed
    check(not missing, f"exit statuses without a .TP entry in EXIT STATUS: {sorted(missing)}")


def test_sections():
    found = [" ".join(roff_args(l[3:])) for l in page_source() if l.startswith(".SH")]
    check([s for s in found if s in SECTIONS] == SECTIONS,
          f"sections of cmd/sshmux.1: {found}; expected, in this order: {SECTIONS}")
    check(any(l.startswith(".TH SSHMUX 1") for l in page_source()),
          "no `.TH SSHMUX 1` line: the page must be section 1")


def test_hyphens_escaped():
    """An option written with a bare '-' renders as a typographic hyphen, which a reader cannot
    paste into a shell: every option-like word in the source must use \\-."""
    bad = []
    for n, line in enumerate(read(PAGE).split("\n"), 1):
        if line.startswith(('.\\"', "'\\\"")):
            continue
        body = line.split(None, 1)[1] if line.startswith(".") and " " in line else line
        if re.search(r"(?<![\\\w\-])-{1,2}[A-Za-z]", body):
            bad.append(f"line {n}: {line}")
    check(not bad, "unescaped hyphens in option names (write \\-):\n" + "\n".join(bad))


def test_groff_clean():
    if shutil.which("groff"):
        cmd = ["groff", "-man", "-Tutf8", "-ww", "-z", PAGE]
    elif shutil.which("man"):
        cmd = ["man", "--warnings=all", "-l", PAGE]
    else:
        skip("neither groff nor man is installed: cannot render cmd/sshmux.1")
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env=dict(os.environ, MANWIDTH="80", LANG="C.UTF-8"), timeout=60)
    check(r.returncode == 0 and not r.stderr.strip(),
          f"{' '.join(cmd)} exited {r.returncode} with warnings:\n{r.stderr}")


if __name__ == "__main__":
    fixture.main([test_usage_options_documented, test_cli_options_documented,
                  test_commands_documented, test_page_options_exist,
                  test_exit_statuses_documented, test_sections, test_hyphens_escaped,
                  test_groff_clean])
