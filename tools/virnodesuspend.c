/*
 * virnodesuspend: the library at the shell, and an example of using it from C.
 *
 *   virnodesuspend caps [--json]            the targets this host supports, and the backend
 *   virnodesuspend suspend TARGET DURATION  sleep in TARGET (mem, disk, hybrid, as
 *                                           virsh nodesuspend), woken DURATION s later
 *   virnodesuspend status [--json]          the host's request, whichever process made it,
 *                                           and how the last one ended
 *   virnodesuspend abort                    cancels the host's pending request
 *   virnodesuspend wait                     waits until the host's request is over
 *
 * Exit status: 0 done, 1 the library refused or the suspend failed (its libvirt error is
 * printed), 2 bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <virnodesuspend.h>

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2 };

/* virsh nodesuspend's names for the targets, by virNodeSuspendTarget. */
static const char *const target_names[] = {"mem", "disk", "hybrid"};
#define TARGET_COUNT (sizeof(target_names) / sizeof(target_names[0]))

static const char caps_usage[] =
    "Usage: virnodesuspend caps [--json]\n"
    "\n"
    "Prints the suspend targets this host supports (mem, disk, hybrid) and the backend that\n"
    "answered (logind, pm-utils or kernel; none when no backend is available), which is\n"
    "also the one that would carry out a suspend.\n";

static const char suspend_usage[] =
    "Usage: virnodesuspend suspend TARGET DURATION\n"
    "\n"
    "Puts the host to sleep in TARGET (mem: Suspend-to-RAM, disk: Suspend-to-Disk,\n"
    "hybrid: both) and has the RTC wake it DURATION seconds from now (at least 60).\n"
    "The sleep starts after the library's delay (VIRNODESUSPEND_DELAY, 10 s by default);\n"
    "the command returns when the host is back, or the suspend failed.\n";

static const char status_usage[] =
    "Usage: virnodesuspend status [--json]\n"
    "\n"
    "Prints the host's suspend request, whichever process on the host made it: its state\n"
    "(idle, pending: the suspend starts after the delay, suspending: too late to abort),\n"
    "target, owner pid and backend, when it was accepted and when the RTC wakes the host\n"
    "(seconds since the epoch, and UTC); and how the last request ended (back, failed,\n"
    "aborted or abandoned), with its error. It reads the host's request record only.\n";

static const char abort_usage[] =
    "Usage: virnodesuspend abort\n"
    "\n"
    "Cancels the host's pending suspend request, whichever process on the host made it:\n"
    "the suspend never starts and its wake-up alarm is disarmed. Refused once the suspend\n"
    "has started, and when no request is in progress.\n";

static const char wait_usage[] =
    "Usage: virnodesuspend wait\n"
    "\n"
    "Waits until the host's suspend request in progress is over, whichever process on the\n"
    "host made it (with none in progress, tells how the last one ended). Exit status 0 when\n"
    "it ended with the host back, 1 when it failed, was aborted or abandoned, or none was made.\n";

/* The whole manual: --help prints it, and the man page virnodesuspend(1) is made from it
 * (help2man), so the two cannot disagree. */
static const char usage[] =
    "Usage: virnodesuspend COMMAND [ARGUMENT]...\n"
    "Puts the host to sleep and has its real-time clock wake it again, as libvirt's\n"
    "virsh nodesuspend does, through libvirnodesuspend. One suspend request at a time is\n"
    "in progress on a host, whichever process made it: a libvirt daemon with the library\n"
    "preloaded, this command, or a script. The library's C API is in libvirnodesuspend(3).\n"
    "\n"
    "Commands:\n"
    "  caps [--json]            print the suspend targets the host supports (mem, disk,\n"
    "                           hybrid) and the backend that answered (logind, pm-utils or\n"
    "                           kernel), which is the one that would suspend it\n"
    "  suspend TARGET DURATION  put the host to sleep in TARGET (mem: Suspend-to-RAM,\n"
    "                           disk: Suspend-to-Disk, hybrid: both) and have the RTC wake\n"
    "                           it DURATION seconds from now (at least 60); the sleep starts\n"
    "                           after the delay (VIRNODESUSPEND_DELAY); returns when the\n"
    "                           host is back or the suspend failed\n"
    "  status [--json]          print the host's request (state idle, pending or suspending;\n"
    "                           target, owner pid, backend, when it was accepted and when\n"
    "                           the RTC wakes the host) and how the last one ended (back,\n"
    "                           failed, aborted or abandoned, with its error)\n"
    "  abort                    cancel the host's pending request: the suspend never\n"
    "                           starts and its alarm is disarmed; refused once the suspend\n"
    "                           has started, and when no request is in progress\n"
    "  wait                     wait until the host's request in progress is over (with\n"
    "                           none, tell how the last one ended)\n"
    "\n"
    "Exit status:\n"
    "  0  done: the targets or the request printed, the request aborted, or the host back\n"
    "  1  the library refused, or the suspend failed, was aborted or abandoned (its\n"
    "     libvirt error is printed, with its code)\n"
    "  2  bad usage\n"
    "\n"
    "Options:\n"
    "      --json     (caps, status) print one JSON object instead of text\n"
    "      --help     print this help (after a command: that command's) and exit\n"
    "      --version  print the versions of this command and of the library it runs, and\n"
    "                 exit\n"
    "\n"
    "Environment:\n"
    "  VIRNODESUSPEND_DELAY     seconds between an accepted request and the start of the\n"
    "                           suspend, 0 to 3600 (default 10, libvirt's); a delay over 10\n"
    "                           raises the shortest DURATION to delay + 50\n"
    "  VIRNODESUSPEND_BACKENDS  the backends asked, in order (default\n"
    "                           logind,pm-utils,kernel)\n"
    "  VIRNODESUSPEND_ROOT      the directory below which the kernel's files are read and\n"
    "                           written (default /; for tests)\n"
    "  PATH                     where pm-is-supported and pm-suspend are found\n"
    "  DBUS_SYSTEM_BUS_ADDRESS  the system bus, where logind is asked\n";

static int report_library_error(const char *what)
{
    const virNodeSuspendError *error = virNodeSuspendGetLastError();
    fprintf(stderr, "virnodesuspend: %s: %s\n", what, virNodeSuspendGetLastErrorMessage());
    if (error != NULL)
        fprintf(stderr, "virnodesuspend: libvirt error code %d, domain %d\n", error->code, error->domain);
    return EXIT_REFUSED;
}

static int bad_usage(const char *text, const char *problem, const char *argument)
{
    fprintf(stderr, "virnodesuspend: %s%s\n\n%s", problem, argument, text);
    return EXIT_USAGE;
}

enum { OPTIONS_PARSED = -1 };

/* The options of a command that takes only --json (and --help): OPTIONS_PARSED with *json
 * set, or else the command's exit status (0 after --help, EXIT_USAGE). */
static int json_option(int argc, char **argv, const char *usage_text, int *json)
{
    *json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--json") != 0)
            return bad_usage(usage_text, "unknown argument: ", argv[i]);
        *json = 1;
    }
    return OPTIONS_PARSED;
}

static int caps(int argc, char **argv)
{
    int json;
    unsigned int mask;
    const char *backend;

    int parsed = json_option(argc, argv, caps_usage, &json);
    if (parsed != OPTIONS_PARSED)
        return parsed;
    if (virNodeSuspendGetTargetMask(&mask) < 0)
        return report_library_error("cannot query the host's suspend targets");
    if (virNodeSuspendGetBackend(&backend) < 0)
        return report_library_error("cannot query the host's suspend backend");

    if (json) {
        /* Backend and target names are plain ASCII words: nothing to escape. */
        if (backend)
            printf("{\"backend\": \"%s\", \"targets\": [", backend);
        else
            printf("{\"backend\": null, \"targets\": [");
        const char *separator = "";
        for (size_t t = 0; t < TARGET_COUNT; t++) {
            if (mask & (1u << t)) {
                printf("%s\"%s\"", separator, target_names[t]);
                separator = ", ";
            }
        }
        printf("]}\n");
        return 0;
    }
    printf("backend: %s\n", backend ? backend : "none");
    for (size_t t = 0; t < TARGET_COUNT; t++)
        printf("%s: %s\n", target_names[t], mask & (1u << t) ? "supported" : "unsupported");
    return 0;
}

/* A duration as virsh takes it: a whole number of seconds, nothing else. */
static int parse_duration(const char *text, unsigned long long *duration)
{
    char *end;
    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    *duration = strtoull(text, &end, 10);
    return errno == 0 && *end == '\0' ? 0 : -1;
}

static int suspend(int argc, char **argv)
{
    unsigned long long duration;
    unsigned int target = TARGET_COUNT;

    if (argc >= 1 && strcmp(argv[0], "--help") == 0) {
        fputs(suspend_usage, stdout);
        return 0;
    }
    if (argc != 2)
        return bad_usage(suspend_usage, "expected TARGET and DURATION", "");
    for (unsigned int t = 0; t < TARGET_COUNT; t++) {
        if (strcmp(argv[0], target_names[t]) == 0)
            target = t;
    }
    if (target == TARGET_COUNT)
        return bad_usage(suspend_usage, "unknown target (mem, disk or hybrid): ", argv[0]);
    if (parse_duration(argv[1], &duration) < 0)
        return bad_usage(suspend_usage, "invalid duration (whole seconds): ", argv[1]);

    if (virNodeSuspend(target, duration, 0) < 0)
        return report_library_error("suspend refused");
    printf("suspend to %s requested; the RTC wakes the host %llu s from now\n", target_names[target], duration);
    fflush(stdout);
    /* The library suspends from a thread of this process: stay until the host is back. */
    if (virNodeSuspendWait() < 0)
        return report_library_error("suspend failed");
    printf("the host is back\n");
    return 0;
}

/* Commands that take no argument but --help: 1 when they are to run. */
static int no_arguments(const char *text, int argc, char **argv, int *exit_status)
{
    *exit_status = 0;
    if (argc == 0)
        return 1;
    if (strcmp(argv[0], "--help") == 0)
        fputs(text, stdout);
    else
        *exit_status = bad_usage(text, "unknown argument: ", argv[0]);
    return 0;
}

/* virNodeSuspendState and virNodeSuspendOutcome, by value, as status names them. */
static const char *const state_names[] = {"idle", "pending", "suspending"};
static const char *const outcome_names[] = {NULL, "back", "failed", "aborted", "abandoned"};
#define NAME_OF(names, value) \
    ((value) >= 0 && (size_t)(value) < sizeof(names) / sizeof(names[0]) ? names[value] : NULL)

/* A JSON string, or null for NULL: quotes, backslashes and control characters escaped
 * (an error message names files, whose names may hold anything but NUL). */
static void print_json_string(const char *text)
{
    if (text == NULL) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (const unsigned char *c = (const unsigned char *)text; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\')
            printf("\\%c", *c);
        else if (*c < 0x20)
            printf("\\u%04x", *c);
        else
            putchar(*c);
    }
    putchar('"');
}

/* A time in seconds since the epoch, or null when it is not known (negative). */
static void print_json_time(long long seconds)
{
    if (seconds < 0)
        fputs("null", stdout);
    else
        printf("%lld", seconds);
}

/* "SECONDS (ISO 8601 UTC)", or "none". */
static void print_text_time(const char *label, long long seconds)
{
    char iso[64];
    struct tm utc;
    time_t t = (time_t)seconds;
    if (seconds < 0) {
        printf("%s: none\n", label);
        return;
    }
    if ((long long)t == seconds && gmtime_r(&t, &utc) != NULL &&
        strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &utc) > 0)
        printf("%s: %lld (%s)\n", label, seconds, iso);
    else
        printf("%s: %lld\n", label, seconds);
}

static int status(int argc, char **argv)
{
    int json;
    virNodeSuspendInfo info;

    int parsed = json_option(argc, argv, status_usage, &json);
    if (parsed != OPTIONS_PARSED)
        return parsed;
    /* The host's request record only: no capability query. */
    if (virNodeSuspendGetInfo(&info, 0) < 0)
        return report_library_error("cannot read the host's suspend request");

    const char *state = NAME_OF(state_names, info.state);
    const char *target = NAME_OF(target_names, info.target);
    const char *outcome = NAME_OF(outcome_names, info.lastOutcome);
    const char *last_target = NAME_OF(target_names, info.lastTarget);

    if (json) {
        fputs("{\"state\": ", stdout);
        print_json_string(state);
        fputs(", \"target\": ", stdout);
        print_json_string(target);
        if (info.pid > 0)
            printf(", \"pid\": %d", info.pid);
        else
            fputs(", \"pid\": null", stdout);
        fputs(", \"backend\": ", stdout);
        print_json_string(info.backend);
        fputs(", \"accepted_at\": ", stdout);
        print_json_time(info.acceptedAt);
        fputs(", \"wake_at\": ", stdout);
        print_json_time(info.wakeAt);
        fputs(", \"last\": ", stdout);
        if (outcome != NULL) {
            fputs("{\"outcome\": ", stdout);
            print_json_string(outcome);
            fputs(", \"target\": ", stdout);
            print_json_string(last_target);
            fputs(", \"error\": ", stdout);
            print_json_string(info.lastError);
            fputs("}", stdout);
        } else {
            fputs("null", stdout);
        }
        fputs("}\n", stdout);
        return 0;
    }
    printf("state: %s\n", state ? state : "unknown");
    printf("target: %s\n", target ? target : "none");
    if (info.pid > 0)
        printf("pid: %d\n", info.pid);
    else
        printf("pid: none\n");
    printf("backend: %s\n", info.backend ? info.backend : "none");
    print_text_time("accepted at", info.acceptedAt);
    print_text_time("wakes at", info.wakeAt);
    if (outcome == NULL) {
        printf("last: none\n");
        return 0;
    }
    printf("last: %s (%s)\n", outcome, last_target ? last_target : "no target");
    if (info.lastError != NULL)
        printf("last error: %s\n", info.lastError);
    return 0;
}

static int abort_request(int argc, char **argv)
{
    int ret;
    if (!no_arguments(abort_usage, argc, argv, &ret))
        return ret;
    if (virNodeSuspendAbort(0) < 0)
        return report_library_error("abort refused");
    printf("the pending suspend request was aborted\n");
    return 0;
}

static int wait_request(int argc, char **argv)
{
    int ret;
    if (!no_arguments(wait_usage, argc, argv, &ret))
        return ret;
    if (virNodeSuspendWait() < 0)
        return report_library_error("suspend request failed");
    printf("the host is back\n");
    return 0;
}

/* This tool's version, and the version of the library it runs (another one than it was
 * built with when LD_PRELOAD or LD_LIBRARY_PATH says so). */
static int print_version(void)
{
    unsigned long library;
    if (virNodeSuspendGetVersion(&library) < 0)
        return report_library_error("cannot tell the library's version");
    printf("virnodesuspend %s\nlibvirnodesuspend %lu.%lu.%lu\n", VIRNODESUSPEND_VERSION, library / 1000000,
           library / 1000 % 1000, library % 1000);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return bad_usage(usage, "expected a command", "");
    if (strcmp(argv[1], "caps") == 0)
        return caps(argc - 2, argv + 2);
    if (strcmp(argv[1], "suspend") == 0)
        return suspend(argc - 2, argv + 2);
    if (strcmp(argv[1], "status") == 0)
        return status(argc - 2, argv + 2);
    if (strcmp(argv[1], "abort") == 0)
        return abort_request(argc - 2, argv + 2);
    if (strcmp(argv[1], "wait") == 0)
        return wait_request(argc - 2, argv + 2);
    if (strcmp(argv[1], "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return print_version();
    return bad_usage(usage, "unknown command: ", argv[1]);
}
