"""@group in host lists, against the tools that own each format and a real sshd fleet.

Oracles, run on the very same files: ClusterShell's `nodeset -e` (YAML group files, found through
--groups and through groups.conf via $CLUSTERSHELL_CFGDIR: ranges, nested @groups, @source:group,
the , ! & ^ operators, @*), `ansible-inventory --list` (INI and YAML inventories: groups and their
children, ranges web[01:03] / db-[a:c] / steps, host:port, all, ungrouped, and the ansible_host,
ansible_port and ansible_user each host ends up with after group and host variables are merged)
and genders' `nodeattr -n` (attributes, values, %n, nodeattr's || && -- ~ queries, pdsh's -g).
Each oracle skips loudly when its tool is missing (scripts/install-deps.sh installs all three).

Against the fleet: `exec -w @group` reaches exactly the group's hosts, `-x @group` and a hostfile
line `@group` work, -g selects genders nodes; an inventory whose aliases exist nowhere else is
connected to through its ansible_host / ansible_port / ansible_user (a wrong ansible_port fails
the host, `-p` on the command line beats it); nested children; cycles and missing groups exit 2
with the group named."""
import json
import os
import shutil
import socket

from common import *  # noqa: F403

F = None
WD = None

CLUSH_YAML = """\
site:
  web: 'web[01-06]'
  db: "db[1-3] db9"
  front: '@web!web02,@db&db1'
  rack: ['r[1-2]n[1-3]', 'extra']
  odd: 'web[01-06/2]'
  mix: '@web^web[05-08]'
  inter: '@web&web[04-09],@db!db2'
  nested: '@front,@rack!r1n2'
  deep: '@nested,@lab:x'
lab:
  x: 'x[1-3]'
  ref: '@x,@site:db'
  all: '@x,lab9'
"""

INVENTORY_INI = """\
loose1 ansible_host=10.0.0.9
loose2:2200

[web]
web[01:03] ansible_user=deploy
web-[a:c]:2222
step[0:10:5]

[db]
db1 ansible_port=2201 ansible_host=127.0.0.2
db2 ansible_user='quoted'   # a comment

[prod:children]
web
db

[prod:vars]
ansible_user=produser
ansible_port=22

[dc:children]
prod
edge

[edge]
edge[x:z] ansible_ssh_port=2999 ansible_port=1

[all:vars]
ansible_user=everyone
"""

INVENTORY_YAML = """\
all:
  vars:
    ansible_user: alluser
  hosts:
    solo:
      ansible_port: 2022
  children:
    app:
      hosts:
        app[1:2]:
        app9:
          ansible_host: 127.0.0.9
      children:
        appdb:
          hosts:
            adb-[x:z]:
          vars:
            ansible_user: dbuser
    other:
      hosts: lone
      vars:
        ansible_group_priority: 5
        ansible_port: 2300
"""

GENDERS = """\
# a small cluster
n[1-2],n5 compute,rack=r1
n[3-4]    compute,rack=r2
n5        login,ipmi=%n-ipmi   # n5 is also compute
n6        login
mgmt      management,rack=r1
"""


def setup():
    global F, WD
    F = Fleet(n=8)
    WD = F.wd


def tool(name):
    path = shutil.which(name)
    if not path:
        skip(f"{name} is not installed (scripts/install-deps.sh installs it): no oracle")
    return path


def hosts(*args, env=None):
    """`sshmux hosts -F none ARGS` -> its lines; fails on a non-zero exit."""
    r = fixture.run_sshmux(["hosts", "-F", "none"] + list(args), env=env, workdir=WD)
    check_rc(r, 0)
    return r.stdout.split()


def hosts_json(*args):
    r = fixture.run_sshmux(["hosts", "-F", "none", "--json"] + list(args), workdir=WD)
    check_rc(r, 0)
    return {row["host"]: row for row in json_lines(r.stdout)}


# ------------------------------------------------------------------ ClusterShell

def clush_dir():
    """A ClusterShell configuration directory: groups.conf naming the YAML file's directory as
    autodir and `site` as the default source (the sources are not called "local", which
    /etc/clustershell/groups.conf already defines with upcalls)."""
    d = WD.mkdir("clush")
    WD.file("clush/groups.d/site.yaml", CLUSH_YAML)
    WD.file("clush/groups.conf", "[Main]\ndefault: site\nautodir: $CFGDIR/groups.d\n")
    return d


def nodeset(ref, cfgdir):
    r = fixture.run([tool("nodeset"), "-e", ref], env={"CLUSTERSHELL_CFGDIR": cfgdir},
                    workdir=WD)
    check_rc(r, 0, f"nodeset -e {ref}")
    return sorted(r.stdout.split())


def test_clustershell_groups_match_nodeset():
    cfgdir = clush_dir()
    path = os.path.join(cfgdir, "groups.d", "site.yaml")
    refs = ["@web", "@db", "@front", "@rack", "@odd", "@mix", "@inter", "@nested", "@deep",
            "@lab:x", "@lab:ref", "@lab:*", "@site:web", "@web,@lab:x"]
    for ref in refs:
        want = nodeset(ref, cfgdir)
        check(want, f"nodeset gave nothing for {ref}")
        check_eq(sorted(hosts("--groups", path, "-w", ref)), want, f"--groups: {ref}")
        # The same through ClusterShell's own configuration, as nodeset found it.
        check_eq(sorted(hosts("-w", ref, env={"CLUSTERSHELL_CFGDIR": cfgdir})), want,
                 f"groups.conf via $CLUSTERSHELL_CFGDIR: {ref}")
    # Order: as the file writes it, not sorted.
    check_eq(hosts("--groups", path, "-w", "@rack"),
             ["r1n1", "r1n2", "r1n3", "r2n1", "r2n2", "r2n3", "extra"])


def test_group_name_ranges():
    """ClusterShell expands ranges in group names too: @g[1-2] is @g1,@g2."""
    path = WD.file("ranges.yaml", "nums:\n  g1: 'a[1-2]'\n  g2: 'b1'\n  g3: 'c1'\n")
    d = WD.mkdir("clush-ranges")
    WD.file("clush-ranges/groups.d/r.yaml", open(path).read())
    WD.file("clush-ranges/groups.conf", "[Main]\ndefault: nums\nautodir: $CFGDIR/groups.d\n")
    want = nodeset("@g[1-2]", d)
    check_eq(want, ["a1", "a2", "b1"])
    check_eq(hosts("--groups", path, "-w", "@g[1-2]"), ["a1", "a2", "b1"])


def test_clustershell_xdg_config_and_upcalls():
    """groups.conf under $XDG_CONFIG_HOME/clustershell is read; a source defined by upcalls
    (never run) has no groups, and the error says why."""
    xdg = WD.mkdir("xdg")
    WD.file("xdg/clustershell/groups.d/site.yaml", CLUSH_YAML)
    WD.file("xdg/clustershell/groups.conf",
            "[Main]\ndefault: site\nautodir: $CFGDIR/groups.d\n\n"
            "[cmd]\nmap: echo never-run-$GROUP\n")
    env = {"XDG_CONFIG_HOME": xdg}
    check_eq(sorted(hosts("-w", "@db", env=env)), ["db1", "db2", "db3", "db9"])
    r = fixture.run_sshmux(["hosts", "-F", "none", "-v", "-w", "@cmd:x"], env=env, workdir=WD)
    check_rc(r, 2)
    check_in("upcalls", r.stderr)
    check("never-run" not in r.stdout + r.stderr, "an upcall ran")


def test_broken_default_file_only_stops_group_lookups():
    """A default group file that does not parse must not stop sshmux for runs that name no
    group; a lookup that fails says which file did not load."""
    d = WD.mkdir("clush-broken")
    bad = WD.file("clush-broken/groups.d/bad.yaml", "s: [\n")
    WD.file("clush-broken/groups.conf", "[Main]\nautodir: $CFGDIR/groups.d\n")
    env = {"CLUSTERSHELL_CFGDIR": d}
    check_eq(hosts("-w", "a,b", env=env), ["a", "b"])
    r = fixture.run_sshmux(["hosts", "-F", "none", "-w", "@x"], env=env, workdir=WD)
    check_rc(r, 2)
    check_in("@x", r.stderr)
    check_in(bad, r.stderr)
    # Named on the command line, the same file is an error at once.
    r = fixture.run_sshmux(["hosts", "-F", "none", "--groups", bad, "-w", "a"], workdir=WD)
    check_rc(r, 2)
    check_in(bad, r.stderr)


# ------------------------------------------------------------------ Ansible

def ansible_list(path):
    r = fixture.run([tool("ansible-inventory"), "-i", path, "--list"], workdir=WD, timeout=120)
    check_rc(r, 0, "ansible-inventory --list")
    return json.loads(r.stdout)


def ansible_members(data, group, seen=None):
    """A group's hosts from ansible-inventory's --list output: its own and its children's."""
    seen = set() if seen is None else seen
    if group in seen:
        return set()
    seen.add(group)
    g = data.get(group, {})
    out = set(g.get("hosts", []))
    for child in g.get("children", []):
        out |= ansible_members(data, child, seen)
    if group == "all":
        out |= set(data["_meta"]["hostvars"])
    return out


def check_inventory(path):
    data = ansible_list(path)
    groups = [g for g in data if g != "_meta"]
    check("all" in groups and len(groups) >= 3, f"groups from ansible-inventory: {groups}")
    for g in groups:
        want = sorted(ansible_members(data, g))
        if not want:
            continue   # an empty group (ungrouped, often) is an unknown group to nodeset too
        check_eq(sorted(hosts("--inventory", path, "-w", "@" + g)), want, f"@{g} of {path}")
    rows = hosts_json("--inventory", path, "-w", "@all")
    hostvars = data["_meta"]["hostvars"]
    check_eq(sorted(rows), sorted(hostvars), "every host of the inventory")
    for name, v in hostvars.items():
        row = rows[name]
        want_host = v.get("ansible_ssh_host", v.get("ansible_host", name))
        want_port = v.get("ansible_ssh_port", v.get("ansible_port", 22))
        check_eq((row["hostname"], row["port"]), (want_host, int(want_port)),
                 f"{name}: hostname and port, from {v}")
        if "ansible_user" in v or "ansible_ssh_user" in v:
            check_eq(row["user"], v.get("ansible_ssh_user", v.get("ansible_user")),
                     f"{name}: user, from {v}")
    return data, rows


def test_inventory_ini_matches_ansible():
    path = WD.file("inventory.ini", INVENTORY_INI)
    _, rows = check_inventory(path)
    check_eq(rows["edgey"]["port"], 2999, "ansible_ssh_port beats ansible_port")
    check_eq(rows["web02"]["user"], "deploy", "a host variable beats its groups'")
    check_eq(rows["db2"]["user"], "quoted", "a quoted INI value is unquoted")
    check_eq(sorted(hosts("--inventory", path, "-w", "@ungrouped")), ["loose1", "loose2"])
    check_eq(hosts("--inventory", path, "-w", "@web"),
             ["web01", "web02", "web03", "web-a", "web-b", "web-c", "step0", "step5", "step10"])


def test_inventory_yaml_matches_ansible():
    path = WD.file("inventory.yml", INVENTORY_YAML)
    _, rows = check_inventory(path)
    check_eq(rows["lone"]["port"], 2300)
    check_eq(rows["adb-y"]["user"], "dbuser", "the child group's variable beats all's")


def test_inventory_errors():
    cases = {
        "[p:children]\nmissing\n": "undefined group: missing",
        "[v:vars]\nx=1\n": "not valid for undefined group",
        "[web]\nweb[01:3]\n": "equal-length",
        "[a:children]\nb\n[b:children]\na\n": "recursive dependency loop",
        "#!/bin/sh\necho '{}'\n": "inventory script",
    }
    for i, (text, why) in enumerate(cases.items()):
        path = WD.file(f"bad{i}.ini", text)
        r = fixture.run_sshmux(["hosts", "-F", "none", "--inventory", path, "-w", "x"],
                               workdir=WD)
        check_rc(r, 2, f"inventory {text!r}")
        check_in(why, r.stderr)
        check_in(path, r.stderr, "the error names the file")


# ------------------------------------------------------------------ genders

def test_genders_match_nodeattr():
    path = WD.file("genders", GENDERS)
    nodeattr = tool("nodeattr")
    for q in ["compute", "rack=r1", "login", "ipmi=n5-ipmi", "compute&&rack=r2",
              "compute||management", "~compute", "compute--rack=r1", "(login||rack=r2)&&compute"]:
        r = fixture.run([nodeattr, "-f", path, "-n", q], workdir=WD)
        check_rc(r, 0, f"nodeattr -n {q}")
        want = sorted(r.stdout.split())
        check(want, f"nodeattr gave nothing for {q}")
        check_eq(sorted(hosts("--genders", path, "-g", q)), want, f"-g {q}")
        check_eq(sorted(hosts("--genders", path, "-w", "@genders:" + q)), want, f"@genders:{q}")
    # pdsh's -g a,b: nodes with any of them.
    check_eq(sorted(hosts("--genders", path, "-g", "login,management")), ["mgmt", "n5", "n6"])
    r = fixture.run_sshmux(["hosts", "-F", "none", "--genders", path, "-g", "nosuch"],
                           workdir=WD)
    check_rc(r, 2)
    check_in("nosuch", r.stderr)


# ------------------------------------------------------------------ a real fleet

def exec_hosts(r):
    """The hosts that answered: the prefixes of `host: ok` lines."""
    return sorted(l.split(":", 1)[0] for l in r.stdout.splitlines() if l.endswith(": ok"))


def test_exec_reaches_exactly_the_group():
    path = WD.file("fleet.yaml", "fleet:\n  odd: 'h[0001-0008/2]'\n  low: 'h[0001-0004]'\n"
                                 "  both: '@odd&@low'\n  up: '@low^h[0001-0006]'\n")
    r = F.run("--groups", path, "-w", "@odd", "echo ok")
    check_rc(r, 0)
    check_eq(exec_hosts(r), ["h0001", "h0003", "h0005", "h0007"])
    r = F.run("--groups", path, "-w", "@low,@up", "-x", "@both", "echo ok")
    check_rc(r, 0)
    check_eq(exec_hosts(r), ["h0002", "h0004", "h0005", "h0006"])
    hostfile = WD.file("hostfile", "# groups in a hostfile\n@both\nh0008\n")
    r = F.run("--groups", path, "--hostfile", hostfile, "echo ok")
    check_rc(r, 0)
    check_eq(exec_hosts(r), ["h0001", "h0003", "h0008"])


def test_exec_genders_g():
    path = WD.file("fleet.genders", "h[0001-0003] web\nh[0004-0006] db,web\nh0007 db\n")
    r = F.run("--genders", path, "-g", "db", "echo ok")
    check_rc(r, 0)
    check_eq(exec_hosts(r), ["h0004", "h0005", "h0006", "h0007"])
    r = F.run("--genders", path, "-g", "web&&db", "-x", "h0005", "echo ok")
    check_rc(r, 0)
    check_eq(exec_hosts(r), ["h0004", "h0006"])


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_inventory_connection_variables_are_used():
    """Aliases that only the inventory knows: ansible_host, ansible_port and ansible_user are
    what sshmux connects with; ssh_config beneath them gives the key and known_hosts."""
    cfg = WD.file("inv_ssh_config",
                  f"Host *\n    IdentityFile {F.keys.ed25519}\n    IdentitiesOnly yes\n"
                  f"    UserKnownHostsFile {F.kh}\n    StrictHostKeyChecking yes\n"
                  f"    Port 1\n    User nobody-from-ssh-config\n")
    bad = closed_port()
    inv = WD.file("connect.ini",
                  f"[direct]\ninv1 ansible_host=127.0.0.1 ansible_port={F.sshd.port} "
                  f"ansible_user={F.user}\n"
                  f"[viagroup]\ninv2 ansible_host=127.0.0.1\ninv3 ansible_host=127.0.0.1\n"
                  f"[viagroup:vars]\nansible_port={F.sshd.port}\nansible_user={F.user}\n"
                  f"[both:children]\ndirect\nviagroup\n"
                  f"[wrong]\ninv9 ansible_host=127.0.0.1 ansible_port={bad} "
                  f"ansible_user={F.user}\n")
    base = ["exec", "-F", cfg, "--inventory", inv, "--connect-timeout", "10"]
    r = fixture.run_sshmux(base + ["--json", "-w", "@both", "echo $USER"], workdir=WD)
    check_rc(r, 0)
    rows = {row["host"]: row for row in json_lines(r.stdout)}
    check_eq(sorted(rows), ["inv1", "inv2", "inv3"])
    for name, row in rows.items():
        check_eq((row["hostname"], row["port"], row["user"], row["ok"]),
                 ("127.0.0.1", F.sshd.port, F.user, True), name)
        check_eq(row["stdout"].strip(), F.user, f"{name}: the remote login is ansible_user")
    # The wrong port is really used ...
    r = fixture.run_sshmux(base + ["--json", "-w", "@wrong", "echo ok"], workdir=WD)
    check_rc(r, 255)
    row = json_lines(r.stdout)[0]
    check_eq((row["port"], row["error"]["stage"]), (bad, "connect"))
    # ... and the command line beats it, as it beats ssh_config.
    r = fixture.run_sshmux(base + ["-p", str(F.sshd.port), "-w", "@wrong", "echo ok"],
                           workdir=WD)
    check_rc(r, 0)
    check_eq(exec_hosts(r), ["inv9"])


def test_nested_children():
    inv = WD.file("nested.ini", "[a]\nh0001\n[b]\nh0002\n[c]\nh0003\n"
                                "[ab:children]\na\nb\n[top:children]\nab\nc\n")
    r = F.run("--inventory", inv, "-w", "@top", "echo ok")
    check_rc(r, 0)
    check_eq(exec_hosts(r), ["h0001", "h0002", "h0003"])
    check_eq(sorted(hosts("--inventory", inv, "-w", "@ab")), ["h0001", "h0002"])


def test_missing_group_and_cycles():
    path = WD.file("cycle.yaml", "s:\n  a: '@b,n1'\n  b: '@c'\n  c: '@a'\n  ok: 'n[1-2]'\n")
    for args, want in [(["-w", "@nosuch"], "@nosuch"),
                       (["-w", "h0001", "-x", "@gone"], "@gone"),
                       (["-w", "@s:nosuch"], "@s:nosuch"),
                       (["-w", "@a"], "@a -> @b -> @c -> @a")]:
        r = fixture.run_sshmux(["exec", "-F", F.cfg, "--groups", path] + args + ["true"],
                               workdir=WD)
        check_rc(r, 2, f"{args}")
        check_in(want, r.stderr)
        check_eq(r.stdout, "", "nothing ran")
    hostfile = WD.file("badhostfile", "h0001\n@missing\n")
    r = fixture.run_sshmux(["hosts", "-F", "none", "--groups", path, "--hostfile", hostfile],
                           workdir=WD)
    check_rc(r, 2)
    check_in(f"{hostfile}:2", r.stderr)
    check_in("@missing", r.stderr)
    r = fixture.run_sshmux(["hosts", "-F", "none", "--groups", WD.file("none.yaml"),
                            "-w", "x"], workdir=WD)
    check_rc(r, 2)
    check_in("none.yaml", r.stderr)


if __name__ == "__main__":
    setup()
    fixture.main([test_clustershell_groups_match_nodeset, test_group_name_ranges,
                  test_clustershell_xdg_config_and_upcalls,
                  test_broken_default_file_only_stops_group_lookups,
                  test_inventory_ini_matches_ansible,
                  test_inventory_yaml_matches_ansible, test_inventory_errors,
                  test_genders_match_nodeattr, test_exec_reaches_exactly_the_group,
                  test_exec_genders_g, test_inventory_connection_variables_are_used,
                  test_nested_children, test_missing_group_and_cycles])
