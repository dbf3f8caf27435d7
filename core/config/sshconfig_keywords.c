/* The ssh_config keyword table: one row per keyword with its argument type and the field it
 * sets. Adding a modeled option means adding a field to smx_hostcfg, a row here, a default in
 * sshconfig_resolve.c and a key in sshconfig_json.c. */
#include "sshconfig_internal.h"

#include <stddef.h>
#include <strings.h>

#define F(field) offsetof(smx_resolving, field)
#define HC(field) offsetof(smx_resolving, hc.field)

static const smx_kwenum yesno[] = {
    {"yes", NULL, 1}, {"no", NULL, 0}, {NULL, NULL, 0}
};

/* PubkeyAuthentication also takes the 9.x binding modes; both mean "enabled". */
static const smx_kwenum pubkey_words[] = {
    {"yes", NULL, 1}, {"no", NULL, 0}, {"unbound", NULL, 1}, {"host-bound", NULL, 1},
    {NULL, NULL, 0}
};

static const smx_kwenum shk_words[] = {
    {"yes", "yes", 0}, {"true", "yes", 0}, {"no", "no", 0}, {"false", "no", 0},
    {"off", "no", 0}, {"ask", "ask", 0}, {"accept-new", "accept-new", 0}, {NULL, NULL, 0}
};

/* Stored the way ssh -G prints them (QUIET prints as SILENT, DEBUG1 as DEBUG). */
static const smx_kwenum loglevel_words[] = {
    {"quiet", "SILENT", 0}, {"silent", "SILENT", 0}, {"fatal", "FATAL", 0},
    {"error", "ERROR", 0}, {"info", "INFO", 0}, {"verbose", "VERBOSE", 0},
    {"debug", "DEBUG", 0}, {"debug1", "DEBUG", 0}, {"debug2", "DEBUG2", 0},
    {"debug3", "DEBUG3", 0}, {NULL, NULL, 0}
};

static const smx_kwenum af_words[] = {
    {"any", "any", 0}, {"inet", "inet", 0}, {"inet6", "inet6", 0}, {NULL, NULL, 0}
};

static const smx_kwenum canon_words[] = {
    {"yes", "yes", 0}, {"no", "no", 0}, {"always", "always", 0}, {NULL, NULL, 0}
};

#define IGN(name) {name, SMX_KW_IGNORED, 0, NULL}

static const smx_keyword keywords[] = {
    {"Host", SMX_KW_HOST, 0, NULL},
    {"Match", SMX_KW_MATCH, 0, NULL},
    {"Include", SMX_KW_INCLUDE, 0, NULL},
    {"HostName", SMX_KW_HOSTNAME, HC(hostname), NULL},
    {"User", SMX_KW_STR, HC(user), NULL},
    {"Port", SMX_KW_PORT, HC(port), NULL},
    {"IdentityFile", SMX_KW_IDFILE, 0, NULL},
    {"IdentitiesOnly", SMX_KW_BOOL, HC(identitiesonly), yesno},
    {"IdentityAgent", SMX_KW_AGENT, HC(identityagent), NULL},
    {"UserKnownHostsFile", SMX_KW_FILES, HC(userknownhostsfile), NULL},
    {"GlobalKnownHostsFile", SMX_KW_FILES, HC(globalknownhostsfile), NULL},
    {"StrictHostKeyChecking", SMX_KW_ENUM, HC(stricthostkeychecking), shk_words},
    {"ConnectTimeout", SMX_KW_TIME, HC(connecttimeout), NULL},
    {"ServerAliveInterval", SMX_KW_TIME, HC(serveraliveinterval), NULL},
    {"ServerAliveCountMax", SMX_KW_INT, HC(serveralivecountmax), NULL},
    {"Compression", SMX_KW_BOOL, HC(compression), yesno},
    {"Ciphers", SMX_KW_ALGOS, HC(ciphers), NULL},
    {"KexAlgorithms", SMX_KW_ALGOS, HC(kexalgorithms), NULL},
    {"HostKeyAlgorithms", SMX_KW_ALGOS, HC(hostkeyalgorithms), NULL},
    {"MACs", SMX_KW_ALGOS, HC(macs), NULL},
    {"PubkeyAcceptedAlgorithms", SMX_KW_ALGOS, HC(pubkeyacceptedalgorithms), NULL},
    {"PubkeyAcceptedKeyTypes", SMX_KW_ALGOS, HC(pubkeyacceptedalgorithms), NULL},
    {"PreferredAuthentications", SMX_KW_STR, HC(preferredauthentications), NULL},
    {"PubkeyAuthentication", SMX_KW_BOOL, HC(pubkeyauthentication), pubkey_words},
    {"DSAAuthentication", SMX_KW_BOOL, HC(pubkeyauthentication), yesno},
    {"PasswordAuthentication", SMX_KW_BOOL, HC(passwordauthentication), yesno},
    {"KbdInteractiveAuthentication", SMX_KW_BOOL, HC(kbdinteractiveauthentication), yesno},
    {"ChallengeResponseAuthentication", SMX_KW_BOOL, HC(kbdinteractiveauthentication), yesno},
    {"SkeyAuthentication", SMX_KW_BOOL, HC(kbdinteractiveauthentication), yesno},
    {"TisAuthentication", SMX_KW_BOOL, HC(kbdinteractiveauthentication), yesno},
    {"BatchMode", SMX_KW_BOOL, HC(batchmode), yesno},
    {"ProxyJump", SMX_KW_JUMP, HC(proxyjump), NULL},
    {"ProxyCommand", SMX_KW_PROXYCMD, HC(proxycommand), NULL},
    {"HostKeyAlias", SMX_KW_STR, HC(hostkeyalias), NULL},
    {"LogLevel", SMX_KW_ENUM, HC(loglevel), loglevel_words},
    {"HashKnownHosts", SMX_KW_BOOL, HC(hashknownhosts), yesno},
    {"ConnectionAttempts", SMX_KW_INT, HC(connectionattempts), NULL},
    {"TCPKeepAlive", SMX_KW_BOOL, HC(tcpkeepalive), yesno},
    {"KeepAlive", SMX_KW_BOOL, HC(tcpkeepalive), yesno},
    {"AddressFamily", SMX_KW_ENUM, HC(addressfamily), af_words},
    {"IgnoreUnknown", SMX_KW_IGNUNKNOWN, F(ignoreunknown), NULL},
    {"CanonicalizeHostname", SMX_KW_ENUM, F(canonicalize), canon_words},

    /* Valid in OpenSSH 9.2 but not modeled: accepted with any arguments. */
    IGN("AddKeysToAgent"), IGN("BindAddress"), IGN("BindInterface"),
    IGN("CanonicalDomains"), IGN("CanonicalizeFallbackLocal"), IGN("CanonicalizeMaxDots"),
    IGN("CanonicalizePermittedCNAMEs"), IGN("CASignatureAlgorithms"), IGN("CertificateFile"),
    IGN("CheckHostIP"), IGN("ClearAllForwardings"), IGN("ControlMaster"), IGN("ControlPath"),
    IGN("ControlPersist"), IGN("DynamicForward"), IGN("EnableEscapeCommandline"),
    IGN("EnableSSHKeysign"), IGN("EscapeChar"), IGN("ExitOnForwardFailure"),
    IGN("FingerprintHash"), IGN("ForkAfterAuthentication"), IGN("ForwardAgent"),
    IGN("ForwardX11"), IGN("ForwardX11Timeout"), IGN("ForwardX11Trusted"), IGN("GatewayPorts"),
    IGN("GSSAPIAuthentication"), IGN("GSSAPIClientIdentity"), IGN("GSSAPIDelegateCredentials"),
    IGN("GSSAPIKeyExchange"), IGN("GSSAPIKexAlgorithms"), IGN("GSSAPIRenewalForcesRekey"),
    IGN("GSSAPIServerIdentity"), IGN("GSSAPITrustDns"), IGN("HostbasedAcceptedAlgorithms"),
    IGN("HostbasedKeyTypes"), IGN("HostbasedAuthentication"), IGN("IPQoS"),
    IGN("KbdInteractiveDevices"), IGN("KnownHostsCommand"), IGN("LocalCommand"),
    IGN("LocalForward"), IGN("LogVerbose"), IGN("NoHostAuthenticationForLocalhost"),
    IGN("NumberOfPasswordPrompts"), IGN("PermitLocalCommand"), IGN("PermitRemoteOpen"),
    IGN("PKCS11Provider"), IGN("ProxyUseFdpass"), IGN("RekeyLimit"), IGN("RemoteCommand"),
    IGN("RemoteForward"), IGN("RequestTTY"), IGN("RequiredRSASize"), IGN("RevokedHostKeys"),
    IGN("SecurityKeyProvider"), IGN("SendEnv"), IGN("SessionType"), IGN("SetEnv"),
    IGN("StdinNull"), IGN("StreamLocalBindMask"), IGN("StreamLocalBindUnlink"),
    IGN("SyslogFacility"), IGN("Tunnel"), IGN("TunnelDevice"), IGN("UpdateHostKeys"),
    IGN("VerifyHostKeyDNS"), IGN("VisualHostKey"), IGN("XAuthLocation"),
    /* Newer OpenSSH releases: accepted so configs shared with newer clients load. */
    IGN("ChannelTimeout"), IGN("ObscureKeystrokeTiming"), IGN("Tag"), IGN("RefuseConnection"),
    IGN("WarnWeakCrypto"),
    /* Deprecated or removed: ssh accepts them silently or with a warning. */
    IGN("Protocol"), IGN("Cipher"), IGN("UsePrivilegedPort"), IGN("UseRoaming"),
    IGN("FallBackToRsh"), IGN("UseRsh"), IGN("GlobalKnownHostsFile2"),
    IGN("UserKnownHostsFile2"), IGN("IdentityFile2"), IGN("SmartcardDevice"),
    IGN("RSAAuthentication"), IGN("RhostsRSAAuthentication"), IGN("RhostsAuthentication"),
    IGN("CompressionLevel"), IGN("AFSTokenPassing"), IGN("KerberosAuthentication"),
    IGN("KerberosTGTPassing"),
};

const smx_keyword *smx__keyword_find(const char *name)
{
    /* ~130 rows, looked up once per line at load time: a linear scan is plenty. */
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (strcasecmp(keywords[i].name, name) == 0)
            return &keywords[i];
    return NULL;
}
